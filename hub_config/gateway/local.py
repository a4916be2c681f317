"""The one-machine platform's Dask-Gateway: dask-gateway's local backend on loopback, and its config.

Everything comes from the settings file the supervisor wrote (``ROMAN_PLATFORM_SETTINGS``), so
the ports and tokens always agree with the hub's. Users are authenticated through JupyterHub: the
client sends the user's own hub token (``JUPYTERHUB_API_TOKEN`` inside their server), the gateway
asks the hub who owns it and requires the token to carry access to the 'dask-gateway' service.

Backend: :class:`LoopbackUnsafeLocalBackend`. Schedulers and workers are local processes running
as the same OS user as the gateway (the whole local platform runs as one OS user, so
LocalBackend's per-user Unix accounts would add nothing but a requirement for root and one account
per hub user). It gives NO isolation between users' clusters: the local platform is for
development and demonstration; on Kubernetes the chart uses the Kubernetes backend instead
(:mod:`hub_config.gateway.kubernetes`).

dask-gateway's local backends start every scheduler and worker with ``--host 0.0.0.0`` and
dashboards on ``0.0.0.0:0`` (``default_host``), and workers with no ``--host`` at all, so a
worker (the nanny's multiprocessing child) listened on every interface of the machine. The local
platform serves 127.0.0.1 only; the gateway's proxy, which connects to them, is on the same
machine.

This is the one module of the package that reads the one-machine set-up (hub_config.local).
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from dask_gateway_server.backends.local import UnsafeLocalBackend

from hub_config.gateway.configure import configure_gateway
from hub_config.gateway.environment import data_environment
from platform_lib import env_contract

if TYPE_CHECKING:
    from hub_config.local.s3_identities import S3Settings
    from hub_config.settings import PlatformSettings

BACKEND = "hub_config.gateway.local.LoopbackUnsafeLocalBackend"
AUTHENTICATOR = "hub_config.gateway.auth.HubTokenAuthenticator"


def _s3_settings() -> S3Settings | None:
    if not os.environ.get(env_contract.PLATFORM_SETTINGS):
        return None
    from hub_config.local.s3_identities import S3Settings
    from hub_config.settings import load_settings

    return S3Settings.from_settings(load_settings())


class LoopbackUnsafeLocalBackend(UnsafeLocalBackend):
    """UnsafeLocalBackend (one OS account for every cluster) listening on 127.0.0.1 only."""

    default_host = "127.0.0.1"

    async def start_cluster(self, user: Any, cluster_options: Any) -> str:
        # The owner's own scoped S3 identity (as their server gets), refreshed for their teams.
        s3 = _s3_settings()
        if s3 is not None:
            from hub_config.local.s3_identities import ensure_identity

            await asyncio.to_thread(ensure_identity, s3, user.name, sorted(user.groups or ()))
        return str(await super().start_cluster(user, cluster_options))

    def get_env(self, cluster: Any) -> dict[str, str]:
        """Schedulers and workers hold the owner's S3 key, never the platform's."""
        env: dict[str, str] = super().get_env(cluster)
        s3 = _s3_settings()
        if s3 is not None:
            from hub_config.local.s3_identities import user_store_env

            env.update(user_store_env(s3, cluster.username))
        return env

    def get_worker_command(
        self, cluster: Any, worker_name: str, scheduler_address: str | None = None
    ) -> list[str]:
        return [
            *super().get_worker_command(cluster, worker_name, scheduler_address),
            "--host",
            self.default_host,
        ]


def configure_local(c: Any, settings: PlatformSettings) -> None:
    """The local platform's whole dask-gateway-server config, from the supervisor's settings."""
    gw = settings.gateway

    # ------------------------------------------------------------------------- server and proxy
    c.DaskGateway.address = gw.private_listen
    c.DaskGateway.log_level = settings.log_level
    c.Proxy.address = gw.listen
    c.Proxy.tcp_address = gw.tcp_listen
    c.Proxy.api_token = gw.proxy_token

    # ------------------------------------------------------------------------- authentication
    c.DaskGateway.authenticator_class = AUTHENTICATOR
    c.HubTokenAuthenticator.jupyterhub_api_url = settings.hub.api_url
    c.HubTokenAuthenticator.jupyterhub_api_token = gw.api_token
    c.HubTokenAuthenticator.jupyterhub_service_name = gw.service_name
    c.HubTokenAuthenticator.use_service_access_scopes = True

    # ------------------------------------------------------------------------- backend
    c.UnsafeLocalBackend.db_url = gw.db_url  # clusters survive a gateway restart's bookkeeping
    c.UnsafeLocalBackend.db_encrypt_keys = [gw.encrypt_key]
    c.UnsafeLocalBackend.clusters_directory = gw.clusters_dir
    c.UnsafeLocalBackend.stop_clusters_on_shutdown = True  # Ctrl-C leaves no scheduler behind
    # Only the software environment is inherited from the gateway's own process; the data
    # settings and credentials come from the user's data environment below, never the gateway's.
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
    # the backend expands per-user templates ({username}) for each cluster's owner.
    c.ClusterConfig.environment = data_environment(settings.singleuser.environment)

    # ------------------------------------------------------------------------- quota (issue 5)
    # Cluster start and scale-up ask the quota database, the same one the hub's quota service
    # writes (its check is handed to the backend: hub_config.gateway.limits knows no quota).
    os.environ.setdefault(env_contract.QUOTA_DB_URL, f"sqlite:///{settings.state_dir}/quota.sqlite")
    from hub_config.quota.services.enforcement import cluster_check

    # ------------------------------------------------------------------------- identity (issue 4)
    # The user's tier comes from their hub groups (the authenticator): worker cores/memory ranges,
    # per-cluster limits and idle timeout from the policy, and per-user totals (clusters,
    # workers, cores, memory) checked on create, scale, adapt and scheduler heartbeats.
    configure_gateway(c, BACKEND, cluster_checks=[cluster_check])
