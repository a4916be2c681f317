"""What a cluster's scheduler and workers run with: the user's data environment and the release.

* The data environment: the configured ``ClusterConfig.environment`` (the same variables the
  spawner gives the user's server, see :func:`data_environment`) with per-user templates
  (``{username}``) expanded for the cluster's owner (:func:`user_environment`), as KubeSpawner
  expands them for the server. Nothing from the client is trusted for it, and nothing of another
  user (their hub token included) is in it.
* The software environment (docs/environments.md): :func:`apply_software_environment` gives the
  scheduler and workers the release's image on Kubernetes, its local Python environment
  otherwise, and ``ROMAN_ENVIRONMENT`` everywhere.
* Kubernetes pods run as the user's own service account (:func:`user_pod_identity`).
"""

from __future__ import annotations

from typing import Any

from dask_gateway_server.backends.base import PublicException

from hub_config.policy import Policy, SoftwareEnvironment
from platform_lib import env_contract

#: The cluster's tier, set by the options handler (platform_lib.env_contract.TIER).
TIER_ENV = env_contract.TIER
#: The software environment (release) of a cluster: the same variable the user's server has.
ENVIRONMENT_ENV = env_contract.ENVIRONMENT

#: The variables of a user server's environment that its Dask processes need to read and write
#: the data the way the notebook does (the shared env contract): the survey store, the user's and
#: teams' spaces, the S3 endpoint and credentials, the reference files.
DATA_ENV_NAMES = (
    env_contract.DATA_URL,
    env_contract.DATA_S3_ENDPOINT,
    env_contract.USER_STORE_URL,
    env_contract.TEAM_STORE_URL,
    "CRDS_PATH",
    "CRDS_SERVER_URL",
    "STPSF_PATH",
)
DATA_ENV_PREFIXES = ("AWS_",)


def data_environment(env: dict[str, str]) -> dict[str, str]:
    """The data part of a user server's environment (what the gateway passes on to workers)."""
    return {
        k: str(v) for k, v in env.items() if k in DATA_ENV_NAMES or k.startswith(DATA_ENV_PREFIXES)
    }


def _slug(username: str) -> str:
    try:  # the hub image has KubeSpawner: expand {username} exactly as it does for the server
        from kubespawner.slugs import safe_slug
    except ImportError:  # pragma: no cover - local platforms without kubespawner
        import re

        return re.sub(r"[^a-z0-9-]", "-", username.lower())[:48]
    return str(safe_slug(username, max_length=48))


def user_environment(env: dict[str, str], username: str) -> dict[str, str]:
    """``env`` for ``username``: ``{username}`` (KubeSpawner's safe slug) and
    ``{unescaped_username}`` expanded in every value, nothing else touched."""
    subs = {"{username}": _slug(username), "{unescaped_username}": username}
    out = {}
    for key, value in env.items():
        value = str(value)
        for tpl, real in subs.items():
            value = value.replace(tpl, real)
        out[key] = value
    return out


def user_pod_identity(config: Any, username: str) -> None:
    """Kubernetes: scheduler and worker pods run as the user's own service account (workload
    identity), when the chart names it with a template (``serviceAccountName: "{username}-..."``
    in ``KubeClusterConfig.*_extra_pod_config``), expanded as KubeSpawner expands it for the
    server. Other backends have no pod config and are left alone."""
    for trait in ("scheduler_extra_pod_config", "worker_extra_pod_config"):
        pod = getattr(config, trait, None)
        if isinstance(pod, dict) and isinstance(pod.get("serviceAccountName"), str):
            name = user_environment({"sa": pod["serviceAccountName"]}, username)["sa"]
            setattr(config, trait, {**pod, "serviceAccountName": name})


def default_environment(policy: Policy) -> SoftwareEnvironment:
    """The policy's default release (only asked when the policy lists releases)."""
    env = policy.default_environment
    if env is None:
        raise ValueError("the tier policy lists environments but marks none as the default")
    return env


def apply_software_environment(policy: Policy, config: Any) -> None:
    """The cluster's software environment (``ROMAN_ENVIRONMENT``, set by the options handler).

    Kubernetes (a config with an ``image``): scheduler and workers run the environment's image,
    with its CRDS context, as the user's server does. Local backends run the environment's local
    Python environment (the gateway's own, or the environment's overlay: its ``dask`` program);
    an environment no local Python environment has is refused rather than started with other
    versions under its name (hub_config.environments.local_runtime)."""
    if not policy.environments:
        return
    name = dict(config.environment).get(ENVIRONMENT_ENV) or default_environment(policy).name
    try:
        env = policy.environment(name)
    except KeyError as exc:
        raise PublicException(str(exc.args[0])) from None
    if config.has_trait("image"):
        config.image = env.image
        config.environment = {**dict(config.environment), "CRDS_CONTEXT": env.versions.crds_context}
        return
    from hub_config.environments import EnvironmentUnavailable, local_runtime

    try:
        runtime = local_runtime(env)
        config.scheduler_cmd = runtime.command(list(config.scheduler_cmd))
        config.worker_cmd = runtime.command(list(config.worker_cmd))
    except (EnvironmentUnavailable, FileNotFoundError) as exc:
        raise PublicException(f"Cannot start a cluster in environment {name}: {exc}") from None
    extra = {ENVIRONMENT_ENV: env.name}
    if runtime.prefix is not None:  # its overlay's programs first, as in the user's server
        extra["PATH"] = runtime.path(dict(config.environment).get("PATH"))
    config.environment = {**dict(config.environment), **extra}
