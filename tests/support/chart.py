"""Rendering the chart for the tests: helm (the real binary) and the objects it produces.

The helpers of tests/helm (its conftest hands this module to the tests as the ``chart``
fixture), kept together because each check reads the objects the same render produced:
the render, the pod and NetworkPolicy checks, network reachability, RBAC against the calls
the upstream code makes.

Size: one suite's helpers over the same rendered objects; split by check if it grows further.

There is no Kubernetes API server here. Everything is checked offline: ``helm lint`` and
``helm template`` produce the objects, ``kubernetes-validate`` checks each against the OpenAPI
schema of a current Kubernetes release, and custom resources against the chart's own CRDs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "roman-platform"
EXAMPLES = REPO / "helm" / "examples"
#: The Kubernetes release the objects are validated against (kubectl v1.35 ships with helm here).
K8S_VERSION = "1.35.0"
RELEASE = "rp"
NAMESPACE = "roman"

#: name -> values files (relative to helm/examples); None is the chart's default values.
CONFIGS: dict[str, list[str]] = {
    "default": [],
    "kind": ["kind.yaml"],
    "minikube": ["minikube.yaml"],
    "cloud-production": ["cloud-production.yaml"],
}


def helm_bin() -> str:
    found = shutil.which(
        "helm", path=f"{REPO / '.local' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    if not found:
        raise RuntimeError(
            "helm not found: run scripts/install-k8s-tools.sh (installs .local/bin/helm)"
        )
    return found


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm_bin(), *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def value_args(files: list[str], sets: dict[str, str] | None = None) -> list[str]:
    args: list[str] = []
    for f in files:
        args += ["-f", str(EXAMPLES / f)]
    for k, v in (sets or {}).items():
        args += ["--set", f"{k}={v}"]
    return args


def template(
    files: list[str], sets: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return helm(
        "template",
        RELEASE,
        str(CHART),
        "-n",
        NAMESPACE,
        "--include-crds",
        *value_args(files, sets),
        check=check,
    )


@lru_cache(maxsize=16)
def _render_cached(config: str, sets: tuple[tuple[str, str], ...]) -> tuple[dict[str, Any], ...]:
    out = template(CONFIGS[config], dict(sets)).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def render(config: str, sets: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The objects one configuration (plus --set overrides) renders; cached, do not mutate."""
    return list(_render_cached(config, tuple(sorted((sets or {}).items()))))


def obj_id(obj: dict[str, Any]) -> str:
    ns = obj["metadata"].get("namespace", NAMESPACE)
    return f"{obj['kind']}/{ns}/{obj['metadata']['name']}"


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for o in objs:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    raise AssertionError(f"no {kind} named {name} among {[obj_id(o) for o in objs]}")


# --------------------------------------------------------------------------- policy checks
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod"}


def pod_template(obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]] | None:
    """(pod spec, pod labels) of anything that runs pods, else None."""
    kind = obj.get("kind")
    if kind == "Pod":
        return obj["spec"], obj["metadata"].get("labels", {})
    if kind == "CronJob":
        tpl = obj["spec"]["jobTemplate"]["spec"]["template"]
        return tpl["spec"], tpl.get("metadata", {}).get("labels", {})
    if kind in POD_KINDS:
        tpl = obj["spec"]["template"]
        return tpl["spec"], tpl.get("metadata", {}).get("labels", {})
    return None


def image_problem(image: str) -> str | None:
    if "@sha256:" in image:
        return None
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return f"image {image!r} has no tag"
    if tag == "latest":
        return f"image {image!r} uses the floating 'latest' tag"
    return None


def pod_problems(who: str, spec: dict[str, Any], writable_root_ok: bool = False) -> list[str]:
    """Everything wrong with one pod spec against the chart's container rules."""
    problems: list[str] = []
    psc = spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(f"{who}: {flag} is set")
    for vol in spec.get("volumes") or []:
        if "hostPath" in vol:
            problems.append(f"{who}: volume {vol['name']} is a hostPath")
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    if not containers:
        problems.append(f"{who}: no containers")
    for ct in containers:
        where = f"{who}: container {ct.get('name')}"
        res = ct.get("resources") or {}
        for part in ("requests", "limits"):
            for key in ("cpu", "memory"):
                if key not in (res.get(part) or {}):
                    problems.append(f"{where} has no {key} {part[:-1]}")
        bad_image = image_problem(ct.get("image", ""))
        if bad_image:
            problems.append(f"{where}: {bad_image}")
        sc = ct.get("securityContext") or {}
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        if non_root is not True:
            problems.append(f"{where} may run as root (runAsNonRoot not true)")
        if uid == 0:
            problems.append(f"{where} runs as uid 0")
        if sc.get("privileged"):
            problems.append(f"{where} is privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where} allows privilege escalation")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{where} does not drop ALL capabilities")
        if caps.get("add"):
            problems.append(f"{where} adds capabilities {caps['add']}")
        if not writable_root_ok and sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where} has a writable root filesystem")
    return problems


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Does a LabelSelector (matchLabels/matchExpressions) select these labels?"""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, vals = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and labels.get(key) in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def netpol_problems(
    objs: list[dict[str, Any]], pods: list[tuple[str, str, dict[str, str]]]
) -> list[str]:
    """Each (who, namespace, labels) must sit behind a default deny and a policy of its own."""
    problems = []
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    for who, ns, labels in pods:
        here = [p for p in policies if p["metadata"].get("namespace", NAMESPACE) == ns]
        deny = [
            p
            for p in here
            if selects(p["spec"]["podSelector"], labels)
            and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
        ]
        # (the default deny is the "network" component's; a pod's own may allow nothing too)
        own = [
            p
            for p in here
            if selects(p["spec"]["podSelector"], labels)
            and p["metadata"].get("labels", {}).get("app.kubernetes.io/component") != "network"
        ]
        if not deny:
            problems.append(f"{who}: no default-deny NetworkPolicy in namespace {ns}")
        if not own:
            problems.append(f"{who}: no NetworkPolicy selects its pods (labels {labels})")
    return problems


# --------------------------------------------------------------------------- network reachability
def _peer_matches(
    peer: dict[str, Any], policy_ns: str, other: tuple[str, dict[str, str]] | str
) -> bool:
    """Does one NetworkPolicyPeer match a pod (namespace, labels) or an external IP?"""
    import ipaddress

    if isinstance(other, str):  # an address outside the cluster
        block = peer.get("ipBlock")
        if not block:
            return False
        ip = ipaddress.ip_address(other)
        if ip not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(ip in ipaddress.ip_network(e) for e in block.get("except", []))
    if "ipBlock" in peer:
        return False
    ns, labels = other
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": ns}):
            return False
    elif ns != policy_ns:
        return False
    return selects(peer.get("podSelector") or {}, labels)


def _rules_allow(rules: list[dict[str, Any]], key: str, policy_ns: str, other, port: int) -> bool:
    for rule in rules or []:
        ports = rule.get("ports")
        if ports and not any(p.get("port") == port for p in ports):
            continue
        peers = rule.get(key)
        if not peers or any(_peer_matches(p, policy_ns, other) for p in peers):
            return True
    return False


def _direction_allows(
    objs, pod: tuple[str, dict[str, str]], direction: str, key: str, other, port: int
) -> bool:
    ns, labels = pod
    selecting = [
        p
        for p in objs
        if p["kind"] == "NetworkPolicy"
        and p["metadata"].get("namespace", NAMESPACE) == ns
        and direction in p["spec"].get("policyTypes", [])
        and selects(p["spec"]["podSelector"], labels)
    ]
    if not selecting:
        return True  # no policy isolates this pod in this direction
    return any(
        _rules_allow(p["spec"].get(direction.lower()), key, ns, other, port) for p in selecting
    )


def reachable(objs, src, dst, port: int) -> bool:
    """Do the rendered NetworkPolicies let ``src`` open a TCP connection to ``dst``:``port``?

    ``src``/``dst`` are (namespace, pod labels); ``dst`` may be an IP outside the cluster.
    """
    if not _direction_allows(objs, src, "Egress", "to", dst, port):
        return False
    if isinstance(dst, str):
        return True
    return _direction_allows(objs, dst, "Ingress", "from", src, port)


# --------------------------------------------------------------------------- names
def services(objs) -> dict[tuple[str, str], set[int]]:
    """(namespace, Service name) -> its ports, from the rendered objects."""
    return {
        (o["metadata"].get("namespace", NAMESPACE), o["metadata"]["name"]): {
            p["port"] for p in o["spec"]["ports"]
        }
        for o in objs
        if o["kind"] == "Service"
    }


DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def url_problems(
    who: str, env: dict[str, str], pod_ns: str, objs, extra_services=None
) -> list[str]:
    """Every in-cluster URL in a pod's environment must name a Service and port that exist in
    the namespace the name implies (a short name: the pod's own, as its DNS search path says).

    Hosts with a public DNS name (a dot, not ``.svc``/``.cluster.local``) and IP literals are not
    in-cluster Service names and are left alone; every other host is checked.
    """
    import ipaddress
    from urllib.parse import urlsplit

    known = {**services(objs), **(extra_services or {})}
    namespaces = {ns for ns, _ in known}
    problems = []
    for key, value in sorted(env.items()):
        if not isinstance(value, str) or "://" not in value:
            continue
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https", "ws", "wss", "gateway", "tls", "tcp"):
            continue  # s3://bucket/..., file paths: not network names
        host = parts.hostname or ""
        try:
            ipaddress.ip_address(host)
            continue
        except ValueError:
            pass
        labels = host.split(".")
        if len(labels) == 1:
            ns, svc = pod_ns, host
        elif host.endswith((".svc", ".svc.cluster.local")) or (
            len(labels) == 2 and labels[1] in namespaces
        ):
            svc, ns = labels[0], labels[1]
        else:
            continue  # a public name (the hub's public URL, the OIDC issuer, S3)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
        if (ns, svc) not in known:
            problems.append(f"{who}: {key}={value}: no Service {svc!r} in namespace {ns!r}")
        elif port not in known[(ns, svc)]:
            problems.append(f"{who}: {key}={value}: Service {ns}/{svc} has no port {port}")
    return problems


# --------------------------------------------------------------------------- permissions
def rbac_allows(
    objs, sa_ns: str, sa: str, verb: str, group: str, resource: str, ns: str | None
) -> bool:
    """Would the API server's RBAC authorizer allow this service account the call?

    ``ns=None`` is a cluster-scope call (``list_pod_for_all_namespaces``, nodes): only a
    ClusterRole bound by a ClusterRoleBinding grants it. A namespaced call is granted by a
    RoleBinding in that namespace (to a Role there or a ClusterRole) or a ClusterRoleBinding.
    """
    roles = {
        (
            o["kind"],
            o["metadata"].get("namespace", NAMESPACE) if o["kind"] == "Role" else None,
            o["metadata"]["name"],
        ): o
        for o in objs
        if o["kind"] in ("Role", "ClusterRole")
    }

    def grants(role) -> bool:
        for rule in (role or {}).get("rules", []):
            if (
                (group in rule.get("apiGroups", []) or "*" in rule.get("apiGroups", []))
                and (resource in rule.get("resources", []) or "*" in rule.get("resources", []))
                and (verb in rule.get("verbs", []) or "*" in rule.get("verbs", []))
            ):
                return True
        return False

    for b in objs:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(
            s.get("kind") == "ServiceAccount"
            and s["name"] == sa
            and s.get("namespace", sa_ns) == sa_ns
            for s in b.get("subjects") or []
        ):
            continue
        ref = b["roleRef"]
        if b["kind"] == "ClusterRoleBinding":
            if ref["kind"] == "ClusterRole" and grants(
                roles.get(("ClusterRole", None, ref["name"]))
            ):
                return True
            continue
        bns = b["metadata"].get("namespace", NAMESPACE)
        if ns is None or bns != ns:
            continue
        role = (
            roles.get(("Role", bns, ref["name"]))
            if ref["kind"] == "Role"
            else roles.get(("ClusterRole", None, ref["name"]))
        )
        if grants(role):
            return True
    return False


def pod_specs(objs):
    """(who, namespace, pod spec) of every pod the rendered objects run."""
    out = []
    for o in objs:
        found = pod_template(o)
        if found:
            out.append(
                (
                    f"{o['kind']}/{o['metadata']['name']}",
                    o["metadata"].get("namespace", NAMESPACE),
                    found[0],
                )
            )
    return out


def supply_problems(
    who: str, spec: dict[str, Any], registry: str, pull_secrets: list[str]
) -> list[str]:
    """Every image of the pod from the configured registry; the pod carries every pull secret."""
    problems = []
    if registry:
        for ct in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            if not ct["image"].startswith(registry.rstrip("/") + "/"):
                problems.append(f"{who}: image {ct['image']} is not from the registry {registry}")
    have = {s["name"] for s in spec.get("imagePullSecrets") or []}
    missing = set(pull_secrets) - have
    if missing:
        problems.append(f"{who}: no pull secret {sorted(missing)}")
    return problems


# --------------------------------------------------------------------------- upstream API calls
#: client method verb -> RBAC verb
_VERBS = {
    "create": "create",
    "delete": "delete",
    "read": "get",
    "list": "list",
    "patch": "patch",
    "replace": "update",
}
#: kubernetes client singular (snake case) -> (API group, resource)
_KINDS = {
    "pod": ("", "pods"),
    "persistent_volume_claim": ("", "persistentvolumeclaims"),
    "secret": ("", "secrets"),
    "service": ("", "services"),
    "event": ("", "events"),
    "endpoints": ("", "endpoints"),
    "namespace": ("", "namespaces"),
}


def _source(module: str) -> str:
    import importlib

    return Path(importlib.import_module(module).__file__).read_text()


def _typed_calls(src: str, client: str, scope: str) -> set[tuple[str, str, str, str]]:
    """``<client>.<verb>_namespaced_<kind>(`` calls in a source file."""
    import re

    out = set()
    for verb, kind in re.findall(
        rf"{client}\.(create|delete|read|list|patch|replace)_namespaced_(\w+?)\(", src
    ):
        if kind.endswith(("custom_object", "custom_object_status")):
            continue
        group, res = _KINDS[kind]
        out.add((_VERBS[verb], group, res, scope))
    return out


def _custom_calls(src: str, scope: str) -> set[tuple[str, str, str, str]]:
    """``custom_client.<verb>_namespaced_custom_object[_status](group, version, ns, plural, ...)``."""
    import re

    out = set()
    for verb, status, args in re.findall(
        r"custom_client\.(\w+?)_namespaced_custom_object(_status)?\(\s*(.*?)\)", src, re.S
    ):
        parts = [a.strip().strip('"') for a in args.split(",")]
        out.add((_VERBS[verb], parts[0], parts[3] + ("/status" if status else ""), scope))
    return out


def _informers(src: str) -> set[tuple[str, str, str, str]]:
    """dask-gateway ``Informer(method=...)``: a list and a watch, cluster-wide for *_for_all_namespaces."""
    import re

    out = set()
    for block in re.findall(r"Informer\((.*?)on_update", src, re.S):
        method = re.search(r'method="(\w+)"', block).group(1)
        if method == "list_cluster_custom_object":
            group, res = (
                re.search(r'group="([\w.]+)"', block).group(1),
                re.search(r'plural="(\w+)"', block).group(1),
            )
        else:
            group, res = _KINDS[re.match(r"list_(\w+)_for_all_namespaces", method).group(1)]
        out |= {("list", group, res, "cluster"), ("watch", group, res, "cluster")}
    return out


def kubespawner_calls(cfg) -> set[tuple[str, str, str, str]]:
    """The calls kubespawner makes for this hub config, read from the installed kubespawner:
    its typed ``self.api.*_namespaced_*`` calls and its reflectors (list + watch of the kinds it
    starts watching). Services/secrets (internal_ssl, services_enabled) and namespace creation
    (enable_user_namespaces) are only made when enabled: the caller asserts they are not."""
    import re

    src = _source("kubespawner.spawner")
    calls = _typed_calls(src, r"self\.api", "user")
    for kind in re.findall(r'_start_watching_\w+\(self.*?kind="(\w+)"', src, re.S):
        group, res = _KINDS[kind.rstrip("s")]
        calls |= {("list", "", res, "user"), ("watch", "", res, "user")}
    return calls


def gateway_backend_calls() -> set[tuple[str, str, str, str]]:
    src = _source("dask_gateway_server.backends.kubernetes.backend")
    return (
        _custom_calls(src, "user")
        | _typed_calls(src, r"self\.core_client", "user")
        | _informers(src)
    )


def gateway_controller_calls() -> set[tuple[str, str, str, str]]:
    src = _source("dask_gateway_server.backends.kubernetes.controller")
    return (
        _custom_calls(src, "user")
        | _typed_calls(src, r"self\.core_client", "user")
        | _informers(src)
    )


#: traefik v3 kubernetescrd provider (pkg/provider/kubernetes/crd/client.go, kubernetes_*.go;
#: the RBAC in traefik's docs, "Kubernetes IngressRoute > RBAC", and traefik-helm-chart's
#: templates/rbac/clusterrole.yaml that dask-gateway's chart copies): per watched namespace, list
#: and watch of every traefik.io kind, of services, secrets and endpointslices (plus get of
#: services and secrets); and, cluster-scope, list+watch of nodes, unless
#: --providers.kubernetescrd.disableClusterScopeResources=true (then nothing cluster-scope).
TRAEFIK_CRD_KINDS = [
    "ingressroutes",
    "ingressroutetcps",
    "ingressrouteudps",
    "middlewares",
    "middlewaretcps",
    "serverstransports",
    "serverstransporttcps",
    "tlsoptions",
    "tlsstores",
    "traefikservices",
]


def traefik_calls(args: list[str]) -> set[tuple[str, str, str, str]]:
    calls = set()
    for verb in ("list", "watch"):
        calls |= {(verb, "traefik.io", k, "each") for k in TRAEFIK_CRD_KINDS}
        calls |= {(verb, "", r, "each") for r in ("services", "secrets")}
        calls.add((verb, "discovery.k8s.io", "endpointslices", "each"))
    if "--providers.kubernetescrd.disableClusterScopeResources=true" not in args:
        calls |= {("list", "", "nodes", "cluster"), ("watch", "", "nodes", "cluster")}
    return calls


# --------------------------------------------------------------------------- connectivity (NCA)
def nca_bin() -> str:
    found = shutil.which(
        "nca",
        path=f"{Path(__import__('sys').executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    if not found:
        raise RuntimeError("nca not found: pip install the 'k8s' extra (network-config-analyzer)")
    return found


def connectivity(objs, pods: list[dict[str, Any]], workdir: Path) -> list[tuple[str, str, str]]:
    """The connectivity map network-config-analyzer (IBM's NetworkPolicy evaluator) computes for
    the rendered NetworkPolicies over the chart's workloads plus ``pods`` (the ones KubeSpawner
    and the gateway controller create): (source, destination, connections) lines, where an
    endpoint is ``<ns>/<name>`` or IP ranges ``a.b.c.d-e.f.g.h,...``."""
    keep = [
        dict(o, metadata={**o["metadata"], "namespace": o["metadata"].get("namespace", NAMESPACE)})
        for o in objs
        if o["kind"] in ("Deployment", "StatefulSet", "NetworkPolicy")
    ]
    namespaces = (
        {o["metadata"]["namespace"] for o in keep}
        | {p["metadata"]["namespace"] for p in pods}
        | {"kube-system"}
    )
    ns_objs = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}},
        }
        for n in sorted(namespaces)
    ]
    path = workdir / "resources.yaml"
    path.write_text(yaml.safe_dump_all([*ns_objs, *keep, *pods]))
    proc = subprocess.run(
        [
            nca_bin(),
            "--connectivity",
            str(path),
            "--ns_list",
            str(path),
            "--pod_list",
            str(path),
            "-o",
            "txt_no_fw_rules",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=workdir,
    )
    lines = []
    for line in proc.stdout.splitlines():
        if " => " not in line:
            continue
        src, rest = line.split(" => ", 1)
        dst, conns = rest.split(" : ", 1)
        strip = lambda e: ",".join(x.split("[", 1)[0] for x in e.split(","))  # noqa: E731
        lines.append((strip(src.strip()), strip(dst.strip()), conns.strip()))
    if not lines:
        raise AssertionError(f"nca produced no connectivity map:\n{proc.stdout}\n{proc.stderr}")
    return lines


def _in_ranges(endpoint: str, ip: str) -> bool:
    import ipaddress

    addr = ipaddress.ip_address(ip)
    for part in endpoint.split(","):
        if "-" in part and part[0].isdigit():
            lo, hi = part.split("-")
            if ipaddress.ip_address(lo) <= addr <= ipaddress.ip_address(hi):
                return True
    return False


def _conns_allow(conns: str, port: int, protocol: str = "TCP") -> bool:
    import re

    if conns.startswith("All connections"):
        return True
    for proto, ports in re.findall(r"\{protocols:([A-Z, ]+)(?:,dst_ports:([0-9,-]+))?\}", conns):
        if protocol not in [p.strip() for p in proto.split(",")]:
            continue
        if not ports:
            return True
        for rng in ports.split(","):
            lo, _, hi = rng.partition("-")
            if int(lo) <= port <= int(hi or lo):
                return True
    return False


def nca_allows(lines, src: str, dst: str, port: int) -> bool:
    """Does the map allow ``src`` to open TCP ``port`` on ``dst`` (``ns/name`` or an IP)?"""
    is_ip = dst[0].isdigit()
    for s, d, conns in lines:
        if s.split(",") and src not in s.split(","):
            continue
        if (is_ip and _in_ranges(d, dst)) or (not is_ip and dst in d.split(",")):
            if _conns_allow(conns, port):
                return True
    return False


# --------------------------------------------------------------------------- the hub's config
@contextmanager
def hub_config(objs, workdir: Path):
    """(traitlets Config, chart values) of the hub as the rendered hub Deployment would load it:
    the real hub_config/jupyterhub_config.py in chart mode, on the rendered values ConfigMap,
    policy and Secret (written under ``workdir``); the environment is restored afterwards."""
    from traitlets.config.loader import PyFileConfigLoader

    from hub_config import chart_values

    cm = find(objs, "ConfigMap", f"{RELEASE}-hub")["data"]
    secret = find(objs, "Secret", f"{RELEASE}-hub")["stringData"]
    for folder, files in (("config", cm), ("secret", secret)):
        (workdir / folder).mkdir(parents=True, exist_ok=True)
        for key, text in files.items():
            (workdir / folder / key).write_text(text)
    hub = find(objs, "Deployment", f"{RELEASE}-hub")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in hub["env"] if "value" in e}
    env = {k: v.replace("/etc/roman-platform", str(workdir)) for k, v in env.items()}
    env.update(
        {
            "POD_IP": "100.64.1.3",
            "POD_NAMESPACE": NAMESPACE,
            "CONFIGPROXY_AUTH_TOKEN": secret["proxy-token"],
            "ROMAN_OIDC_CLIENT_SECRET": "from-the-oidc-secret",
            "ROMAN_QUOTA_DB_URL": f"sqlite:///{workdir}/quota.sqlite",
        }
    )
    saved = dict(os.environ)
    os.environ.update(env)
    chart_values._load.cache_clear()
    try:
        cfg = PyFileConfigLoader(
            "jupyterhub_config.py", path=str(REPO / "hub_config")
        ).load_config()
        yield cfg, yaml.safe_load((workdir / "config" / "values.yaml").read_text())
    finally:
        os.environ.clear()
        os.environ.update(saved)
        chart_values._load.cache_clear()
