"""The local platform's Dask-Gateway backend: dask-gateway's local backend on loopback only.

dask-gateway's local backends start every scheduler and worker with ``--host 0.0.0.0`` and
dashboards on ``0.0.0.0:0`` (``default_host``), and workers with no ``--host`` at all, so a
worker (the nanny's multiprocessing child) listened on every interface of the machine. The local platform serves
127.0.0.1 only; the gateway's proxy, which connects to them, is on the same machine.
"""

from __future__ import annotations

import asyncio
import os

from dask_gateway_server.backends.local import UnsafeLocalBackend


def _s3_settings():
    if not os.environ.get("ROMAN_PLATFORM_SETTINGS"):
        return None
    from hub_config.local.s3_identities import S3Settings
    from hub_config.local.settings import load_settings

    return S3Settings.from_settings(load_settings())


class LoopbackUnsafeLocalBackend(UnsafeLocalBackend):
    """UnsafeLocalBackend (one OS account for every cluster) listening on 127.0.0.1 only."""

    default_host = "127.0.0.1"

    async def start_cluster(self, user, cluster_options):
        # The owner's own scoped S3 identity (as their server gets), refreshed for their teams.
        s3 = _s3_settings()
        if s3 is not None:
            from hub_config.local.s3_identities import ensure_identity

            await asyncio.to_thread(ensure_identity, s3, user.name, sorted(user.groups or ()))
        return await super().start_cluster(user, cluster_options)

    def get_env(self, cluster):
        """Schedulers and workers hold the owner's S3 key, never the platform's."""
        env = super().get_env(cluster)
        s3 = _s3_settings()
        if s3 is not None:
            from hub_config.local.s3_identities import user_store_env

            env.update(user_store_env(s3, cluster.username))
        return env

    def get_worker_command(self, cluster, worker_name, scheduler_address=None):
        return [
            *super().get_worker_command(cluster, worker_name, scheduler_address),
            "--host",
            self.default_host,
        ]
