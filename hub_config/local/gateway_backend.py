"""The local platform's Dask-Gateway backend: dask-gateway's local backend on loopback only.

dask-gateway's local backends start every scheduler and worker with ``--host 0.0.0.0`` and
dashboards on ``0.0.0.0:0`` (``default_host``), and workers with no ``--host`` at all, so a
worker (the nanny's multiprocessing child) listened on every interface of the machine. The local platform serves
127.0.0.1 only; the gateway's proxy, which connects to them, is on the same machine.
"""

from __future__ import annotations

from dask_gateway_server.backends.local import UnsafeLocalBackend


class LoopbackUnsafeLocalBackend(UnsafeLocalBackend):
    """UnsafeLocalBackend (one OS account for every cluster) listening on 127.0.0.1 only."""

    default_host = "127.0.0.1"

    def get_worker_command(self, cluster, worker_name, scheduler_address=None):  # noqa: ANN001, ANN201
        return [*super().get_worker_command(cluster, worker_name, scheduler_address),
                "--host", self.default_host]
