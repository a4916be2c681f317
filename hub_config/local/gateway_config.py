# dask-gateway-server configuration for the local platform (``dask-gateway-server -f THIS``).
#
# Everything comes from the settings file the supervisor wrote (ROMAN_PLATFORM_SETTINGS), so the
# ports and tokens always agree with the hub's. Users are authenticated through JupyterHub: the
# client sends the user's own hub token (JUPYTERHUB_API_TOKEN inside their server), the gateway
# asks the hub who owns it and requires the token to carry access to the 'dask-gateway' service.
#
# Backend: UnsafeLocalBackend. Schedulers and workers are local processes running as the same OS
# user as the gateway (the whole local platform runs as one OS user, so LocalBackend's per-user
# Unix accounts would add nothing but a requirement for root and one account per hub user). It
# gives NO isolation between users' clusters: the local platform is for development and
# demonstration; on Kubernetes the chart uses the Kubernetes backend instead.
# ruff: noqa: F821  (``c`` is injected by traitlets when it loads this file)

from hub_config.local.settings import load_settings

settings = load_settings()
gw = settings.gateway

# ----------------------------------------------------------------------------- server and proxy
c.DaskGateway.address = gw.private_listen
c.DaskGateway.log_level = settings.log_level
c.Proxy.address = gw.listen
c.Proxy.tcp_address = gw.tcp_listen
c.Proxy.api_token = gw.proxy_token

# ----------------------------------------------------------------------------- authentication
c.DaskGateway.authenticator_class = "hub_config.local.gateway_auth.HubTokenAuthenticator"
c.HubTokenAuthenticator.jupyterhub_api_url = settings.hub.api_url
c.HubTokenAuthenticator.jupyterhub_api_token = gw.api_token
c.HubTokenAuthenticator.jupyterhub_service_name = gw.service_name
c.HubTokenAuthenticator.use_service_access_scopes = True

# ----------------------------------------------------------------------------- backend
c.DaskGateway.backend_class = "hub_config.local.gateway_backend.LoopbackUnsafeLocalBackend"
c.UnsafeLocalBackend.db_url = gw.db_url  # clusters survive a gateway restart's bookkeeping
c.UnsafeLocalBackend.db_encrypt_keys = [gw.encrypt_key]
c.UnsafeLocalBackend.clusters_directory = gw.clusters_dir
c.UnsafeLocalBackend.stop_clusters_on_shutdown = True  # Ctrl-C leaves no scheduler behind
# Only the software environment is inherited from the gateway's own process; the data settings
# and credentials come from the user's data environment below, never from the gateway's.
c.UnsafeLocalBackend.inherited_environment = [
    "PATH",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "LANG",
    "LC_ALL",
    "HOME",
]
# A crashed scheduler or worker is noticed within 5 s (default 30 s; 95 s measured after a
# gateway crash), so the per-user cluster limit stops counting it promptly. A check is one
# kill(pid, 0) per process: negligible on one machine.
c.UnsafeLocalBackend.cluster_status_period = 5.0
c.UnsafeLocalBackend.worker_status_period = 5.0
# distributed 2026 ships no dask-scheduler/dask-worker scripts: use the `dask` command.
c.ClusterConfig.scheduler_cmd = gw.scheduler_cmd
c.ClusterConfig.worker_cmd = gw.worker_cmd
c.ClusterConfig.worker_cores = gw.worker_cores
c.ClusterConfig.worker_memory = gw.worker_memory
c.ClusterConfig.idle_timeout = gw.idle_timeout
# Workers the data store can reach: the data part of what the spawner gives every user server
# (hub_config/jupyterhub_config.py: Spawner.environment = settings.singleuser.environment);
# hub_config.gateway expands per-user templates ({username}) for each cluster's owner.
from hub_config.gateway import data_environment

c.ClusterConfig.environment = data_environment(settings.singleuser.environment)

# ----------------------------------------------------------------------------- identity (issue 4)
# The tier-aware options handler and per-user limits (hub_config/gateway.py) are wired here.
# The user's tier comes from their hub groups (JupyterHubAuthenticator): worker cores/memory
# ranges, per-cluster limits and idle timeout from the policy, and per-user totals (clusters,
# workers, cores, memory) checked on create, scale, adapt and scheduler heartbeats.
from hub_config.gateway import configure_gateway

configure_gateway(c, "hub_config.local.gateway_backend.LoopbackUnsafeLocalBackend")

# ----------------------------------------------------------------------------- quota (issue 5)
# Cluster start and scale-up ask the quota database (hub_config.quota.services.enforcement.check_cluster,
# called from hub_config/gateway.py): the same database the hub's quota service writes.
import os as _os

_os.environ.setdefault("ROMAN_QUOTA_DB_URL", f"sqlite:///{settings.state_dir}/quota.sqlite")
