"""One way to get a Dask cluster, so the same notebook code runs on the platform and elsewhere.

On the platform the spawner sets ``DASK_GATEWAY__ADDRESS`` (dask-gateway's own configuration
variable): work then goes to a Dask-Gateway cluster that the user's tier bounds on the server
side. Anywhere else (a laptop, CI, a batch job) the same call starts a ``LocalCluster``. A
client that is already active (a notebook that made one itself) is reused and left running.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import dask
import yaml
from distributed import Client, as_completed

from .locations import user_store_url as user_store_url  # notebooks and workers reach it here

#: The platform's Dask settings (``platform_lib/dask-config``). Installed into
#: ``{sys.prefix}/etc/dask`` they reach every Dask process of an environment, Dask-Gateway workers
#: in the notebook image included; read here too, as defaults a user's own configuration still
#: overrides, they also hold wherever platform_lib is imported (an editable install skips the
#: data files).
DASK_CONFIG_FILE = Path(__file__).with_name("dask-config") / "roman-platform.yaml"
dask.config.update_defaults(yaml.safe_load(DASK_CONFIG_FILE.read_text()))


def gateway_configured() -> bool:
    """Whether this environment points at a Dask-Gateway server."""
    return bool(os.environ.get("DASK_GATEWAY__ADDRESS") or dask.config.get("gateway.address", None))


def _active_client() -> Client | None:
    try:
        from distributed import get_client as _get

        return _get()
    except ValueError:
        return None


def gateway_options(gateway: Any, requested: dict[str, Any] | None = None) -> Any:
    """The gateway's cluster options with ``requested`` applied, in the server's environment.

    The cluster runs the software environment the notebook runs (``ROMAN_ENVIRONMENT``, set by
    the spawner) unless ``requested`` names another; the gateway checks either against the
    policy and gives the scheduler and workers that environment's image. An unknown option
    fails here, with dask-gateway's message, before any cluster exists."""
    from platform_lib.environment import ENVIRONMENT_VAR

    options = gateway.cluster_options()
    requested = dict(requested or {})
    name = os.environ.get(ENVIRONMENT_VAR)
    if name and "environment" in options and "environment" not in requested:
        requested["environment"] = name
    elif name and requested.get("environment") not in (None, name):
        import warnings

        warnings.warn(
            f"the cluster's workers will run environment {requested['environment']} while this "
            f"server runs {name}: results may differ from what this notebook computes itself",
            stacklevel=2,
        )
    options.update(requested)
    return options


@contextlib.contextmanager
def get_client(
    n_workers: int | None = None,
    *,
    adapt: tuple[int, int] | None = None,
    memory_limit: str | None = None,
    reuse: bool = True,
    **cluster_options: Any,
) -> Iterator[Client]:
    """Yield a ``distributed.Client``; shut down on exit whatever this call started.

    ``n_workers`` fixed-size, or ``adapt=(min, max)`` adaptive. ``cluster_options`` go to the
    Dask-Gateway cluster (e.g. ``worker_cores``, ``worker_memory``, ``environment``: by default
    the server's own, :func:`gateway_options`) and are checked against the user's tier by the
    gateway; locally they are ignored except ``memory_limit``, which bounds
    each local worker the way the gateway's ``worker_memory`` bounds a gateway worker.
    """
    existing = _active_client() if reuse else None
    if existing is not None:
        yield existing
        return

    if gateway_configured():
        from dask_gateway import Gateway

        gateway = Gateway()
        cluster = gateway.new_cluster(gateway_options(gateway, cluster_options))
        try:
            if adapt:
                cluster.adapt(minimum=adapt[0], maximum=adapt[1])
            else:
                cluster.scale(n_workers or 2)
            client = cluster.get_client()
            try:
                yield client
            finally:
                client.close()
        finally:
            cluster.shutdown()
            gateway.close()
        return

    from distributed import LocalCluster

    workers = (
        n_workers if n_workers is not None else (adapt[1] if adapt else min(2, os.cpu_count() or 1))
    )
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        memory_limit=memory_limit or "auto",
        dashboard_address="127.0.0.1:0",  # a free loopback port: never collide, never expose
        host="127.0.0.1",
    )
    try:
        if adapt:
            cluster.adapt(minimum=adapt[0], maximum=adapt[1])
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def progress(
    client: Client,
    futures: Sequence[Any],
    *,
    desc: str = "tasks",
    show: bool | None = None,
) -> list[Any]:
    """Wait for ``futures`` with a progress bar and return their results in submission order.

    Errors are returned in place (as the exception instance) rather than raised, so one failed
    exposure or detector does not hide the results of the others; callers decide what to do.
    """
    from tqdm.auto import tqdm

    if show is None:
        show = sys.stderr.isatty() or "ipykernel" in sys.modules
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    with tqdm(total=len(futures), desc=desc, disable=not show) as bar:
        for fut in as_completed(futures):
            i = index[fut.key]
            if fut.status == "error":
                results[i] = fut.exception()
            else:
                results[i] = fut.result()
            bar.update(1)
    return results


def map_with_progress(
    client: Client, func: Any, items: Iterable[Any], *, desc: str = "tasks", **kwargs: Any
) -> list[Any]:
    """``client.map`` over ``items`` (pure=False: each item is real work) with a progress bar."""
    futures = client.map(func, list(items), pure=False, **kwargs)
    return progress(client, futures, desc=desc)
