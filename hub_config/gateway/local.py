"""The one-machine platform's Dask-Gateway: dask-gateway's local backend on loopback, and its config.

Everything comes from the settings file the supervisor wrote (``ROMAN_PLATFORM_SETTINGS``), so
the ports and tokens always agree with the hub's. Users are authenticated through JupyterHub: the
client sends the user's own hub token (``JUPYTERHUB_API_TOKEN`` inside their server), the gateway
asks the hub who owns it and requires the token to carry access to the 'dask-gateway' service.

Backends, by the platform's account mode (hub_config/local/accounts.py):

* :class:`AccountLocalBackend` (system accounts, the platform runs as root): dask-gateway's
  LocalBackend, whose schedulers and workers run as the cluster owner's account. The hub user is
  mapped to the account (``roman-<name>``, made here when the user starts a cluster before any
  server), the processes run the user runtime's ``dask`` with the account's HOME, and the
  working folder is made by this class: upstream's ``setup_working_directory`` passes the
  certificate paths to ``list.extend`` (one path per *character*), so its ``chown`` loop would
  hand ``/`` to the user and then fail on ``'t'``.
* :class:`LoopbackUnsafeLocalBackend` (single-account mode): every cluster runs as the
  gateway's own OS user, NO isolation between users' clusters (development and demonstration).

On Kubernetes the chart uses the Kubernetes backend instead (:mod:`hub_config.gateway.kubernetes`).

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

from dask_gateway_server.backends.local import LocalBackend, UnsafeLocalBackend

from hub_config.gateway.configure import configure_gateway
from hub_config.gateway.environment import data_environment
from platform_lib import env_contract

if TYPE_CHECKING:
    from hub_config.local.s3_identities import S3Settings
    from hub_config.settings import PlatformSettings

BACKEND = "hub_config.gateway.local.LoopbackUnsafeLocalBackend"
ACCOUNT_BACKEND = "hub_config.gateway.local.AccountLocalBackend"
AUTHENTICATOR = "hub_config.gateway.auth.HubTokenAuthenticator"


def _s3_settings() -> S3Settings | None:
    if not os.environ.get(env_contract.PLATFORM_SETTINGS):
        return None
    from hub_config.local.s3_identities import S3Settings
    from hub_config.settings import load_settings

    return S3Settings.from_settings(load_settings())


class _PlatformLocal:
    """What both local backends add: loopback listeners and the owner's own S3 identity."""

    default_host = "127.0.0.1"

    async def start_cluster(self, user: Any, cluster_options: Any) -> str:
        # The owner's own scoped S3 identity (as their server gets), refreshed for their teams.
        s3 = _s3_settings()
        if s3 is not None:
            from hub_config.local.s3_identities import ensure_identity

            await asyncio.to_thread(ensure_identity, s3, user.name, sorted(user.groups or ()))
        return str(await super().start_cluster(user, cluster_options))  # type: ignore[misc]

    def get_env(self, cluster: Any) -> dict[str, str]:
        """Schedulers and workers hold the owner's S3 key, never the platform's."""
        env: dict[str, str] = super().get_env(cluster)  # type: ignore[misc]
        s3 = _s3_settings()
        if s3 is not None:
            from hub_config.local.s3_identities import user_store_env

            env.update(user_store_env(s3, cluster.username))
        return env

    def get_worker_command(
        self, cluster: Any, worker_name: str, scheduler_address: str | None = None
    ) -> list[str]:
        return [
            *super().get_worker_command(cluster, worker_name, scheduler_address),  # type: ignore[misc]
            "--host",
            self.default_host,
        ]


class LoopbackUnsafeLocalBackend(_PlatformLocal, UnsafeLocalBackend):
    """UnsafeLocalBackend (one OS account for every cluster) listening on 127.0.0.1 only."""


def _system_accounts() -> Any:
    from hub_config.local.accounts import from_settings
    from hub_config.settings import load_settings

    system = from_settings(load_settings().accounts)
    if system is None:
        raise RuntimeError("AccountLocalBackend needs the platform's system-account mode")
    return system


class AccountLocalBackend(_PlatformLocal, LocalBackend):
    """LocalBackend: each cluster's scheduler and workers run as its owner's system account."""

    async def start_cluster(self, user: Any, cluster_options: Any) -> str:
        accounts, _runtime = _system_accounts()
        await asyncio.to_thread(accounts.ensure, user.name)  # a cluster before any server
        return await super().start_cluster(user, cluster_options)

    def _account(self, hub_user: str) -> Any:
        import pwd

        accounts, _runtime = _system_accounts()
        return pwd.getpwnam(accounts.name(hub_user))

    def set_file_permissions(self, paths: list[str], username: str) -> None:
        entry = self._account(username)
        for p in paths:
            os.chown(p, entry.pw_uid, entry.pw_gid)

    def setup_working_directory(self, cluster: Any) -> str:
        workdir = os.path.join(self.clusters_directory, cluster.name)
        certs, logs = self.get_certs_directory(workdir), self.get_logs_directory(workdir)
        for path in (workdir, certs, logs):
            os.makedirs(path, 0o700, exist_ok=True)
        cert_path, key_path = self._get_tls_paths(workdir)
        for path, data in ((cert_path, cluster.tls_cert), (key_path, cluster.tls_key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        self.set_file_permissions([workdir, certs, logs, cert_path, key_path], cluster.username)
        return workdir

    def make_preexec_fn(self, cluster: Any):
        from hub_config.local.accounts import drop_privileges

        accounts, _runtime = _system_accounts()
        entry = self._account(cluster.username)
        groups = accounts.groups(entry)
        workdir = cluster.state["workdir"]

        def preexec() -> None:
            drop_privileges(entry, groups, workdir)

        return preexec

    def get_env(self, cluster: Any) -> dict[str, str]:
        """The user runtime's PATH and Python, the account's own HOME, never the gateway's."""
        env = super().get_env(cluster)
        accounts, runtime = _system_accounts()
        entry = self._account(cluster.username)
        env.update(runtime.environment(str(accounts.home(cluster.username)), entry.pw_name))
        return env

    def _user_command(self, cmd: list[str]) -> list[str]:
        _accounts, runtime = _system_accounts()
        return [runtime.program(cmd[0]), *cmd[1:]] if cmd else cmd

    def get_scheduler_command(self, cluster: Any) -> list[str]:
        return self._user_command(super().get_scheduler_command(cluster))

    def get_worker_command(
        self, cluster: Any, worker_name: str, scheduler_address: str | None = None
    ) -> list[str]:
        return self._user_command(
            super().get_worker_command(cluster, worker_name, scheduler_address)
        )


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
    c.LocalBackend.db_url = gw.db_url  # clusters survive a gateway restart's bookkeeping
    c.LocalBackend.db_encrypt_keys = [gw.encrypt_key]
    c.LocalBackend.clusters_directory = gw.clusters_dir
    c.LocalBackend.stop_clusters_on_shutdown = True  # Ctrl-C leaves no scheduler behind
    # Only the software environment is inherited from the gateway's own process; the data
    # settings and credentials come from the user's data environment below, never the gateway's.
    c.LocalBackend.inherited_environment = [
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
    c.LocalBackend.cluster_status_period = 5.0
    c.LocalBackend.worker_status_period = 5.0
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
    system = settings.accounts is not None and settings.accounts.mode == "system"
    configure_gateway(c, ACCOUNT_BACKEND if system else BACKEND, cluster_checks=[cluster_check])
