"""The environment-variable contract: every ``ROMAN_*`` name the platform sets or reads, in one home.

The hub (``hub_config``) sets most of these and the notebook side (``platform_lib``) reads them,
so the one module both may import is here, at the bottom of the notebook-side layers: it imports
nothing and ``platform_lib`` never imports ``hub_config``. Python code names a variable through
these constants, never as a string literal; the Helm chart cannot import Python, so
``tests/helm/test_env_contract.py`` checks that every ``ROMAN_*`` name its templates write is one
of :data:`ALL`.

Three groups:

* :data:`USER_SERVER` -- set in every user server (by the spawner) and, where the cluster needs
  it, in Dask schedulers and workers (by the gateway's options handler); read by ``platform_lib``.
* :data:`HUB` -- read by the hub's own processes (the hub, the quota service, the gateway server,
  the one-machine supervisor), never by a notebook.
* :data:`IMAGE` -- baked into the notebook image at build time.
"""

from __future__ import annotations

__all__ = [
    "DATA_URL",
    "DATA_S3_ENDPOINT",
    "USER_STORE_URL",
    "TEAM_STORE_URL",
    "ENVIRONMENT",
    "TIER",
    "PROFILE",
    "SCRATCH",
    "LIMITS_ENFORCED",
    "QUOTA_URL",
    "QUOTA_PUBLIC_URL",
    "TAP_URL",
    "IMAGE_ENVIRONMENT",
    "DATA_MOUNT",
    "DATAMODELS_VERSION",
    "POLICY_FILE",
    "QUOTA_DB_URL",
    "QUOTA_SETTINGS",
    "PLATFORM_SETTINGS",
    "CHART_VALUES",
    "CHART_SECRETS",
    "HUB_DB_URL",
    "OIDC_CLIENT_SECRET",
    "OIDC_DEV_IN_CLUSTER",
    "LOCAL_ENVIRONMENTS_DIR",
    "TAP_ROOT",
    "TAP_PORT",
    "TAP_PG_PORT",
    "TAP_SECRET",
    "TAP_PUBLIC_URL",
    "TAP_CACHE_SECONDS",
    "TAP_USER_JOBS",
    "TAP_DACHS_URL",
    "TAP_PG_URL",
    "TAP_PG_PASSWORD",
    "TAP_PUBLISH_INTERVAL",
    "USER_SERVER",
    "HUB",
    "IMAGE",
    "ALL",
]

# --- set in every user server (and its Dask cluster where noted); read by platform_lib ---------

#: The survey store: ``s3://bucket/prefix`` or a folder (read-only for users). Also on workers.
DATA_URL = "ROMAN_DATA_URL"
#: The S3 endpoint for :data:`DATA_URL` and the user stores (unset: AWS). Also on workers.
DATA_S3_ENDPOINT = "ROMAN_DATA_S3_ENDPOINT"
#: The user's own writable prefix (``.../users/<name>/``). Also on workers.
USER_STORE_URL = "ROMAN_USER_STORE_URL"
#: The base of team spaces (``<base><team>/``). Also on workers.
TEAM_STORE_URL = "ROMAN_TEAM_STORE_URL"
#: The software environment (release) the user chose in the form. Also on workers.
ENVIRONMENT = "ROMAN_ENVIRONMENT"
#: The tier the server (or the Dask cluster) runs under.
TIER = "ROMAN_TIER"
#: The server profile chosen in the form.
PROFILE = "ROMAN_PROFILE"
#: Where the node-local scratch volume is mounted (Kubernetes only).
SCRATCH = "ROMAN_SCRATCH"
#: A human-readable note of the limits the spawner enforced ("memory: ...; cpu: ...").
LIMITS_ENFORCED = "ROMAN_LIMITS_ENFORCED"
#: The quota service as the server reaches it (``platform_lib.account``, ``roman account``).
QUOTA_URL = "ROMAN_QUOTA_URL"
#: The quota service as the user's browser reaches it (the account panel), when it differs.
QUOTA_PUBLIC_URL = "ROMAN_QUOTA_PUBLIC_URL"
#: The TAP service over the store's index (one-machine set-up, when enabled).
TAP_URL = "ROMAN_TAP_URL"

# --- baked into the notebook image ----------------------------------------------------------------

#: The release the image was built for.
IMAGE_ENVIRONMENT = "ROMAN_IMAGE_ENVIRONMENT"
#: Where the chart mounts the cloud-staged data volume (read-only): CRDS and STPSF caches.
DATA_MOUNT = "ROMAN_DATA_MOUNT"
#: The roman_datamodels version an environment pins (an image label and build arg).
DATAMODELS_VERSION = "ROMAN_DATAMODELS_VERSION"

# --- read by the hub's own processes ---------------------------------------------------------------

#: An alternative tier policy file; unset: the bundled ``hub_config/policy.yaml``. The one road
#: to the policy for every hub process (hub, quota service, gateway server): see
#: :func:`hub_config.policy.load_policy`. The chart mounts one; tests point it at theirs.
POLICY_FILE = "ROMAN_POLICY_FILE"
#: The quota database (SQLAlchemy URL), shared by the quota service, the hub's spawn check and
#: the gateway server's cluster check.
QUOTA_DB_URL = "ROMAN_QUOTA_DB_URL"
#: The quota service's settings YAML.
QUOTA_SETTINGS = "ROMAN_QUOTA_SETTINGS"
#: The one-machine set-up's settings file, written by the supervisor for the hub and the gateway.
PLATFORM_SETTINGS = "ROMAN_PLATFORM_SETTINGS"
#: The chart's rendered values (JSON file) the in-cluster hub config reads.
CHART_VALUES = "ROMAN_CHART_VALUES"
#: The chart's secret values (JSON file) beside :data:`CHART_VALUES`.
CHART_SECRETS = "ROMAN_CHART_SECRETS"
#: The hub's own database in the cluster (default: SQLite on the hub's volume).
HUB_DB_URL = "ROMAN_HUB_DB_URL"
#: The hub's OIDC client secret in the cluster.
OIDC_CLIENT_SECRET = "ROMAN_OIDC_CLIENT_SECRET"
#: Set when the development identity provider runs inside the cluster.
OIDC_DEV_IN_CLUSTER = "ROMAN_OIDC_DEV_IN_CLUSTER"
#: Where the one-machine set-up keeps its per-environment overlays.
LOCAL_ENVIRONMENTS_DIR = "ROMAN_LOCAL_ENVIRONMENTS_DIR"
#: The hub-facing TAP service (hub_config/tap/proxy.py): the DaCHS instance it attaches to
#: (folder, TAP port, PostgreSQL port, the platform's TAP secret), the address clients use, how
#: long a hub answer (user, teams) is trusted, and how many unfinished async jobs a user may hold.
TAP_ROOT = "ROMAN_TAP_ROOT"
TAP_PORT = "ROMAN_TAP_PORT"
TAP_PG_PORT = "ROMAN_TAP_PG_PORT"
TAP_SECRET = "ROMAN_TAP_SECRET"
TAP_PUBLIC_URL = "ROMAN_TAP_PUBLIC_URL"
TAP_CACHE_SECONDS = "ROMAN_TAP_CACHE_SECONDS"
TAP_USER_JOBS = "ROMAN_TAP_USER_JOBS"
#: The chart's TAP pods (hub_config/tap/cluster.py): DaCHS's address in the cluster (its
#: Service), the PostgreSQL database (``postgresql://user@host:port/dbname``) and its superuser's
#: password, and the publisher's seconds between two looks at the store's index.
TAP_DACHS_URL = "ROMAN_TAP_DACHS_URL"
TAP_PG_URL = "ROMAN_TAP_PG_URL"
TAP_PG_PASSWORD = "ROMAN_TAP_PG_PASSWORD"
TAP_PUBLISH_INTERVAL = "ROMAN_TAP_PUBLISH_INTERVAL"

USER_SERVER: frozenset[str] = frozenset(
    {
        DATA_URL,
        DATA_S3_ENDPOINT,
        USER_STORE_URL,
        TEAM_STORE_URL,
        ENVIRONMENT,
        TIER,
        PROFILE,
        SCRATCH,
        LIMITS_ENFORCED,
        QUOTA_URL,
        QUOTA_PUBLIC_URL,
        TAP_URL,
    }
)
IMAGE: frozenset[str] = frozenset({IMAGE_ENVIRONMENT, DATA_MOUNT, DATAMODELS_VERSION})
HUB: frozenset[str] = frozenset(
    {
        TAP_ROOT,
        TAP_PORT,
        TAP_PG_PORT,
        TAP_SECRET,
        TAP_PUBLIC_URL,
        TAP_CACHE_SECONDS,
        TAP_USER_JOBS,
        TAP_DACHS_URL,
        TAP_PG_URL,
        TAP_PG_PASSWORD,
        TAP_PUBLISH_INTERVAL,
        POLICY_FILE,
        QUOTA_DB_URL,
        QUOTA_SETTINGS,
        PLATFORM_SETTINGS,
        CHART_VALUES,
        CHART_SECRETS,
        HUB_DB_URL,
        OIDC_CLIENT_SECRET,
        OIDC_DEV_IN_CLUSTER,
        LOCAL_ENVIRONMENTS_DIR,
    }
)
#: Every ``ROMAN_*`` name of the contract.
ALL: frozenset[str] = USER_SERVER | IMAGE | HUB
