"""TAP/ObsCore on Kubernetes (``data.tap``): what the chart renders, checked for meaning.

Beyond the Kubernetes schemas: every address a TAP pod connects to is a rendered Service whose
port leads to a container port of the pods its selector picks; the NetworkPolicies open exactly
the paths the service needs (the proxy -> the TAP proxy -> DaCHS -> PostgreSQL, the publisher ->
PostgreSQL) and none from user pods to DaCHS or PostgreSQL; every Secret key a pod reads exists;
and the hub, loaded from the rendered values by the real jupyterhub_config.py, registers the
service with the token and URL the TAP proxy's pod has and grants the scope the proxy's HubAuth
checks. With ``data.tap.enabled`` false nothing of it is rendered.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import kubernetes_validate
import pytest

#: the TAP pods' components
TAP = ("tap-proxy", "tap-dachs", "tap-postgresql", "tap-publisher")
#: an external database instead of the in-chart StatefulSet
EXTERNAL = {
    "data.tap.enabled": "true",
    "data.tap.postgresql.type": "external",
    "data.tap.postgresql.external.url": "postgresql://dachs@tapdb.example.org:6432/obscore",
    "data.tap.postgresql.external.existingSecret": "tap-db",
}
EXTERNAL_DB = "203.0.113.5"  # where tapdb.example.org would resolve (outside the cluster)
#: (config, --set overrides) of each way TAP can be deployed
VARIANTS = {"in-chart": ("kind", {}), "external": ("kind", EXTERNAL)}


@pytest.fixture(params=list(VARIANTS))
def variant(request):
    return request.param


def _render(chart, variant):
    config, sets = VARIANTS[variant]
    return chart.render(config, sets)


def _component(obj):
    labels = obj["metadata"].get("labels", {})
    return labels.get("app.kubernetes.io/component", "")


def _tap_objects(objs):
    return [o for o in objs if _component(o).startswith("tap")]


def _pod(chart, objs, component):
    """(spec, labels, the one container) of a component's pod template."""
    for o in objs:
        found = chart.pod_template(o)
        if found and found[1].get("app.kubernetes.io/component") == component:
            return found[0], found[1], found[0]["containers"][0]
    raise AssertionError(f"no pod of component {component}")


def _env(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def _refs(container):
    """Every (Secret, key) a container reads; (Secret, None) for a whole envFrom Secret."""
    out = set()
    for e in container.get("env", []):
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            out.add((ref["name"], ref["key"]))
    for e in container.get("envFrom", []):
        if "secretRef" in e:
            out.add((e["secretRef"]["name"], None))
    return out


def who(chart, component, ns=None):
    return (
        ns or chart.NAMESPACE,
        {
            "app.kubernetes.io/name": "roman-platform",
            "app.kubernetes.io/instance": chart.RELEASE,
            "app.kubernetes.io/component": component,
        },
    )


def service_problems(chart, objs, host: str, port: int, ns: str) -> list[str]:
    """A name a pod connects to must be a Service in ``ns`` with ``port``, whose selector picks
    a rendered pod and whose targetPort is a port that pod's container declares."""
    name = host.split(".")[0]
    svc = next(
        (
            o
            for o in objs
            if o["kind"] == "Service"
            and o["metadata"]["name"] == name
            and o["metadata"].get("namespace", chart.NAMESPACE) == ns
        ),
        None,
    )
    if svc is None:
        return [f"{host}: no Service {name} in {ns}"]
    sport = next((p for p in svc["spec"]["ports"] if p["port"] == port), None)
    if sport is None:
        return [f"{host}:{port}: Service {name} has no port {port}"]
    pods = [
        found
        for o in objs
        if (found := chart.pod_template(o))
        and o["metadata"].get("namespace", chart.NAMESPACE) == ns
        and chart.selects({"matchLabels": svc["spec"]["selector"]}, found[1])
    ]
    if not pods:
        return [f"{host}: Service {name} selects no rendered pod"]
    target = sport.get("targetPort", port)
    for spec, _labels in pods:
        declared = [p for c in spec["containers"] for p in c.get("ports", [])]
        if not any(target in (p.get("name"), p["containerPort"]) for p in declared):
            return [f"{host}:{port}: targetPort {target} is no container port of its pods"]
    return []


# ----------------------------------------------------------------------------- off by default
def test_disabled_renders_nothing_of_it(chart, tmp_path):
    for config in ("default", "cloud-production"):
        objs = chart.render(config)
        assert not _tap_objects(objs), [chart.obj_id(o) for o in _tap_objects(objs)]
        assert not [o for o in objs if "-tap" in o["metadata"]["name"]]
        assert "tap-token" not in chart.find(objs, "Secret", "rp-hub")["stringData"]
        # no policy opens a path to or from a TAP pod
        text = str([o for o in objs if o["kind"] == "NetworkPolicy"])
        assert "tap-" not in text
    objs = chart.render("kind", {"data.tap.enabled": "false"})
    assert not _tap_objects(objs)
    with chart.hub_config(objs, tmp_path) as (cfg, _values):
        assert "tap" not in {s["name"] for s in cfg.JupyterHub.services}
        scopes = [s for r in cfg.JupyterHub.load_roles for s in r.get("scopes", [])]
        assert not [s for s in [*scopes, *cfg.Spawner.server_token_scopes] if "tap" in s]
        assert "ROMAN_TAP_URL" not in cfg.KubeSpawner.environment


# ----------------------------------------------------------------------------- objects
def test_objects_are_valid_and_lint(chart, variant):
    config, sets = VARIANTS[variant]
    objs = _tap_objects(_render(chart, variant))
    kinds = sorted({o["kind"] for o in objs})
    expected = {
        "Deployment",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Secret",
        "Service",
        "ServiceAccount",
    }
    if variant == "in-chart":
        expected.add("StatefulSet")
    assert set(kinds) == expected, kinds
    problems = []
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, chart.K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{chart.obj_id(obj)}: {exc.message} at {list(exc.path)}")
    assert not problems, "\n".join(problems)
    proc = chart.helm(
        "lint", "--strict", str(chart.CHART), *chart.value_args(chart.CONFIGS[config], sets)
    )
    assert "0 chart(s) failed" in proc.stdout


def test_external_database_needs_its_url_and_secret(chart):
    proc = chart.template(
        chart.CONFIGS["kind"],
        {"data.tap.postgresql.type": "external"},
        check=False,
    )
    assert proc.returncode != 0
    assert "/data/tap/postgresql/external/url" in proc.stderr
    assert "/data/tap/postgresql/external/existingSecret" in proc.stderr
    bad = chart.template(
        chart.CONFIGS["kind"],
        {**EXTERNAL, "data.tap.postgresql.external.url": "postgresql://u:pw@db:5432/gavo"},
        check=False,
    )
    # no password in the values (it belongs in the Secret)
    assert bad.returncode != 0 and "/data/tap/postgresql/external/url" in bad.stderr


def test_pods_are_hardened(chart, variant):
    objs = _render(chart, variant)
    components = [c for c in TAP if variant == "in-chart" or c != "tap-postgresql"]
    problems = []
    for component in components:
        spec, _labels, ct = _pod(chart, objs, component)
        problems += chart.pod_problems(component, spec)  # read-only root included
        assert spec["automountServiceAccountToken"] is False, component
        assert ct["securityContext"]["runAsUser"] == 1000, component
        mounts = {m["mountPath"] for m in ct["volumeMounts"]}
        assert "/tmp" in mounts, component  # what they write goes to a volume
    assert not problems, "\n".join(problems)
    if variant == "in-chart":
        sts = chart.find(objs, "StatefulSet", "rp-tap-postgresql")
        claim = sts["spec"]["volumeClaimTemplates"][0]
        _spec, _labels, ct = _pod(chart, objs, "tap-postgresql")
        assert {"name": "data", "mountPath": "/var/lib/postgresql/data"} in ct["volumeMounts"]
        assert claim["metadata"]["name"] == "data"
        assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
        assert "/var/lib/postgresql/data/pgdata" in ct["args"]  # not the volume's root
    else:
        assert not [o for o in _tap_objects(objs) if o["kind"] == "StatefulSet"]


def test_the_proxy_runs_replicated_and_a_drain_keeps_one(chart, variant):
    """Its grants are serialised in PostgreSQL (tests/data/test_tap_upgrade.py), so it scales."""
    objs = _render(chart, variant)
    deployment = chart.find(objs, "Deployment", "rp-tap-proxy")
    assert deployment["spec"]["replicas"] == 2
    pdb = chart.find(objs, "PodDisruptionBudget", "rp-tap-proxy")
    assert pdb["spec"]["maxUnavailable"] == 1 < deployment["spec"]["replicas"]
    picked = [
        o["metadata"]["name"]
        for o in objs
        if (found := chart.pod_template(o))
        and pdb["spec"]["selector"]["matchLabels"].items() <= found[1].items()
    ]
    assert picked == ["rp-tap-proxy"]  # the budget covers the proxy's pods and nothing else
    one = chart.render(
        VARIANTS[variant][0],
        {
            **VARIANTS[variant][1],
            "data.tap.proxy.replicas": "1",
            "data.tap.proxy.pdb.enabled": "false",
        },
    )
    assert chart.find(one, "Deployment", "rp-tap-proxy")["spec"]["replicas"] == 1
    _spec, _labels, ct = _pod(chart, objs, "tap-proxy")
    env = {e["name"]: e.get("value") for e in ct["env"]}
    assert int(env["ROMAN_TAP_USER_JOBS"]) == 2  # read by hub_config.tap.proxy.main
    assert not [
        o for o in one if o["kind"] == "PodDisruptionBudget" and "tap" in o["metadata"]["name"]
    ]
    # DaCHS keeps async jobs in its own folder: one pod, replaced (not doubled) on upgrade
    dachs = chart.find(objs, "Deployment", "rp-tap-dachs")
    assert dachs["spec"]["replicas"] == 1 and dachs["spec"]["strategy"]["type"] == "Recreate"


def test_dachs_job_settings_reach_its_command_line_and_volume(chart):
    """The pod's args parsed by the command's own parser; the jobs' folder sized as set."""
    from hub_config.tap.cluster import parser

    sets = {
        "data.tap.enabled": "true",
        "data.tap.dachs.jobs.lifetimeSeconds": "3600",
        "data.tap.dachs.jobs.maxRunning": "6",
        "data.tap.dachs.jobs.storage": "20Gi",
    }
    for values, (lifetime, running, size) in (
        ({}, (86400, 4, "8Gi")),
        (sets, (3600, 6, "20Gi")),
    ):
        objs = chart.render("kind", {"data.tap.enabled": "true", **values})
        spec, _labels, ct = _pod(chart, objs, "tap-dachs")
        args = parser().parse_args(ct["command"][3:] + ct["args"])
        assert (args.command, args.job_lifetime, args.max_running) == ("dachs", lifetime, running)
        root = next(m for m in ct["volumeMounts"] if m["mountPath"] == args.root)
        volume = next(v for v in spec["volumes"] if v["name"] == root["name"])
        assert volume["emptyDir"]["sizeLimit"] == size
    bad = chart.template(
        chart.CONFIGS["kind"], {**sets, "data.tap.dachs.jobs.storage": "lots"}, check=False
    )
    assert bad.returncode != 0 and "storage" in bad.stderr


# ----------------------------------------------------------------------------- names
def test_every_address_is_a_service_with_that_port(chart, variant):
    objs = _render(chart, variant)
    problems = []
    dachs_urls = set()
    for component in TAP:
        if variant == "external" and component == "tap-postgresql":
            continue
        _spec, _labels, ct = _pod(chart, objs, component)
        env = _env(ct)
        problems += chart.url_problems(component, env, chart.NAMESPACE, objs)
        for key in ("ROMAN_TAP_DACHS_URL", "JUPYTERHUB_API_URL"):
            if env.get(key):
                url = urlsplit(env[key])
                problems += service_problems(chart, objs, url.hostname, url.port, chart.NAMESPACE)
        if component == "tap-dachs" or component == "tap-proxy":
            dachs_urls.add(env["ROMAN_TAP_DACHS_URL"])
        if component == "tap-dachs":
            # DaCHS listens where its Service sends (the port it is told is its container port)
            port = int(ct["args"][ct["args"].index("--port") + 1])
            assert {"name": "http", "containerPort": port} in ct["ports"]
        if env.get("ROMAN_TAP_PG_URL"):
            db = urlsplit(env["ROMAN_TAP_PG_URL"])
            if variant == "in-chart":
                assert db.hostname == "rp-tap-postgresql" and db.path == "/gavo"
                problems += service_problems(chart, objs, db.hostname, db.port, chart.NAMESPACE)
            else:
                assert env["ROMAN_TAP_PG_URL"] == EXTERNAL["data.tap.postgresql.external.url"]
    # the proxy rewrites DaCHS's own address in its answers: both must name it the same
    assert len(dachs_urls) == 1, dachs_urls
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------- network
ALLOWED = [
    ("proxy", "tap-proxy", 8190),  # users' requests under /services/tap/
    ("hub", "tap-proxy", 8190),  # the hub checks its services
    ("tap-proxy", "hub", 8081),  # who a token belongs to
    ("tap-proxy", "tap-dachs", 8080),  # the query, as the user
    ("singleuser-server", "proxy", 8000),  # how notebooks reach TAP (ROMAN_TAP_URL)
]
DB_CLIENTS = ("tap-dachs", "tap-publisher", "tap-proxy")
DENIED = [
    ("singleuser-server", "tap-dachs", 8080),
    ("singleuser-server", "tap-postgresql", 5432),
    ("singleuser-server", "tap-proxy", 8190),
    ("dask-worker", "tap-postgresql", 5432),
    ("dask-worker", "tap-dachs", 8080),
    ("proxy", "tap-dachs", 8080),  # not around the TAP proxy's token check
    ("hub", "tap-dachs", 8080),
    ("hub", "tap-postgresql", 5432),
    ("gateway-api", "tap-postgresql", 5432),
    ("culler", "tap-proxy", 8190),
    ("tap-publisher", "tap-dachs", 8080),
    ("tap-publisher", "hub", 8081),
    ("tap-dachs", "hub", 8081),
    ("tap-dachs", "tap-proxy", 8190),
    ("tap-postgresql", "tap-dachs", 8080),
]


def test_network_paths_are_exactly_the_needed_ones(chart, variant):
    objs = _render(chart, variant)  # (user pods run in the release namespace with kind's values)
    wrong = []
    flows = [(s, d, p, True) for s, d, p in ALLOWED] + [(s, d, p, False) for s, d, p in DENIED]
    for src, dst, port in [(c, "tap-postgresql", 5432) for c in DB_CLIENTS]:
        if variant == "in-chart":
            flows.append((src, dst, port, True))
    for src, dst, port, allowed in flows:
        if variant == "external" and "tap-postgresql" in (src, dst):
            continue
        s, d = who(chart, src), who(chart, dst)
        if chart.reachable(objs, s, d, port) != allowed:
            wrong.append(f"{src} -> {dst}:{port} should be {'allowed' if allowed else 'denied'}")
    # each TAP pod's own ingress decides too, not only its clients' egress: a pod no policy
    # restricts (someone else's, in the release namespace) reaches none of them
    stray = (chart.NAMESPACE, {"app": "someone-else"})
    for dst, port in (("tap-dachs", 8080), ("tap-postgresql", 5432), ("tap-proxy", 8190)):
        if variant == "in-chart" or dst != "tap-postgresql":
            if chart.reachable(objs, stray, who(chart, dst), port):
                wrong.append(f"an unrestricted pod -> {dst}:{port} should be denied")
    tap_pods = ("tap-proxy", "tap-dachs") + (("tap-postgresql",) if variant == "in-chart" else ())
    for src in tap_pods:  # only the publisher reaches outside the cluster (the store)
        if chart.reachable(objs, who(chart, src), "8.8.8.8", 443):
            wrong.append(f"{src} -> the internet should be denied")
    if not chart.reachable(objs, who(chart, "tap-publisher"), "52.217.1.10", 443):
        wrong.append("tap-publisher -> the store (S3, public) should be allowed")
    if chart.reachable(objs, who(chart, "tap-publisher"), "169.254.169.254", 80):
        wrong.append("tap-publisher -> the cloud metadata server should be denied")
    if variant == "external":
        for src in DB_CLIENTS:
            if not chart.reachable(objs, who(chart, src), EXTERNAL_DB, 6432):
                wrong.append(f"{src} -> the external database :6432 should be allowed")
            if src != "tap-publisher" and chart.reachable(objs, who(chart, src), EXTERNAL_DB, 5432):
                wrong.append(f"{src} -> :5432 is not the database's port")
    assert not wrong, "\n".join(wrong)
    # every TAP pod sits behind the default deny and a policy of its own
    pods = [
        (c, chart.NAMESPACE, who(chart, c)[1])
        for c in TAP
        if variant == "in-chart" or c != "tap-postgresql"
    ]
    assert not chart.netpol_problems(objs, pods)


# ----------------------------------------------------------------------------- secrets
def test_secrets_are_referenced_consistently(chart, variant):
    objs = _render(chart, variant)
    rendered = {
        o["metadata"]["name"]: set(o.get("stringData", {})) | set(o.get("data", {}))
        for o in objs
        if o["kind"] == "Secret"
    }
    external = {"tap-db": {"password"}}  # the operator's Secret, named in the values
    refs = {}
    for component in TAP:
        if variant == "external" and component == "tap-postgresql":
            continue
        refs[component] = _refs(_pod(chart, objs, component)[2])
    problems = []
    for component, found in refs.items():
        for name, key in found:
            keys = rendered.get(name, external.get(name) if variant == "external" else None)
            if keys is None:
                problems.append(f"{component}: Secret {name} is not rendered")
            elif key is not None and key not in keys:
                problems.append(f"{component}: Secret {name} has no key {key}")
    assert not problems, "\n".join(problems)
    password = {r for c in DB_CLIENTS for r in refs[c] if "password" in r[1]}
    if variant == "in-chart":
        assert password == {("rp-tap", "postgres-password")}
        assert refs["tap-postgresql"] == {("rp-tap", "postgres-password")}
    else:
        assert password == {("tap-db", "password")}
        assert "postgres-password" not in rendered["rp-tap"]
    # the service's key: DaCHS (its role passwords) and the proxy (users' passwords) only
    assert ("rp-tap", "secret") in refs["tap-dachs"] & refs["tap-proxy"]
    assert ("rp-tap", "secret") not in refs["tap-publisher"]
    assert ("rp-hub", "tap-token") in refs["tap-proxy"]
    data = chart.find(objs, "Secret", "rp-tap")["stringData"]
    assert len(data["secret"]) >= 32 and len(set(data.values())) == len(data)


def test_pinned_secrets_are_kept(chart):
    pinned = {"data.tap.secrets.secret": "s" * 40, "data.tap.secrets.postgres-password": "p" * 40}
    data = chart.find(chart.render("kind", pinned), "Secret", "rp-tap")["stringData"]
    assert data == {"secret": "s" * 40, "postgres-password": "p" * 40}
    # pinned values never reach the hub's values ConfigMap (readable by whoever reads the hub's)
    cm = chart.find(chart.render("kind", pinned), "ConfigMap", "rp-hub")["data"]["values.yaml"]
    assert "s" * 40 not in cm and "p" * 40 not in cm


# ----------------------------------------------------------------------------- the hub side
def test_hub_registers_the_service_the_proxy_pod_is(chart, tmp_path, monkeypatch):
    """The hub's service (name, URL, token) is the TAP proxy pod's, and the scope the proxy's
    HubAuth checks is what users' and servers' tokens are granted (the real TapProxy class)."""
    from jupyterhub.services.auth import HubAuth

    from hub_config.tap.proxy import TapProxy
    from hub_config.tap.service import TapService

    objs = chart.render("kind")
    _spec, _labels, ct = _pod(chart, objs, "tap-proxy")
    env = _env(ct)
    token = chart.find(objs, "Secret", "rp-hub")["stringData"]["tap-token"]
    with chart.hub_config(objs, tmp_path) as (cfg, _values):
        services = {s["name"]: s for s in cfg.JupyterHub.services}
        name = env["JUPYTERHUB_SERVICE_NAME"]
        svc = services[name]
        assert svc["api_token"] == token
        assert env["JUPYTERHUB_SERVICE_PREFIX"] == f"/services/{name}/"
        url = urlsplit(svc["url"])
        assert url.hostname == "rp-tap-proxy.roman.svc"
        assert not service_problems(chart, objs, url.hostname, url.port, chart.NAMESPACE)
        assert url.port == urlsplit(env["JUPYTERHUB_SERVICE_URL"]).port
        assert not chart.url_problems("hub", {"api": env["JUPYTERHUB_API_URL"]}, "roman", objs)
        # its own token needs no rights: it only asks who a user's token is
        assert not [r for r in cfg.JupyterHub.load_roles if name in r.get("services", [])]
        user_role = next(r for r in cfg.JupyterHub.load_roles if r["name"] == "user")
        server_scopes = set(cfg.Spawner.server_token_scopes)
        # notebooks get the address through the proxy's public port, which routes /services/tap
        tap_url = cfg.KubeSpawner.environment["ROMAN_TAP_URL"]
        assert tap_url == "http://rp-proxy-public.roman.svc:80/services/tap"
        assert not chart.url_problems("user pod", {"ROMAN_TAP_URL": tap_url}, "roman", objs)
    for key in ("JUPYTERHUB_SERVICE_NAME", "JUPYTERHUB_API_URL"):
        monkeypatch.setenv(key, env[key])
    proxy = TapProxy(
        TapService.attach(
            tmp_path, port=0, pg_port=0, secret="x", server_url=env["ROMAN_TAP_DACHS_URL"]
        ),
        prefix=env["JUPYTERHUB_SERVICE_PREFIX"],
        public_url=env["ROMAN_TAP_PUBLIC_URL"],
        hub_auth=HubAuth(api_token=token, api_url=env["JUPYTERHUB_API_URL"]),
    )
    needed = set(proxy.hub_auth.access_scopes)
    assert needed == {"access:services!service=tap"}
    assert needed <= set(user_role["scopes"]), user_role
    assert needed <= server_scopes
    # the proxy also reads the user's teams from the token's model (403 without the groups)
    assert "read:users:groups!user" in server_scopes
    assert proxy.public(f"{env['ROMAN_TAP_DACHS_URL']}/tap/sync") == (
        env["ROMAN_TAP_PUBLIC_URL"] + "/sync"
    )
