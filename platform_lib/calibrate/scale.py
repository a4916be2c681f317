"""Survey-scale reprocessing: many exposures as a Dask graph, one exposure per task.

Why this shape: an exposure is the natural unit of failure and of memory (a full-detector ramp
needs a few GB while it is fitted), so each task calibrates one exposure end to end and returns
a small record; a worker's memory limit bounds what runs at once. The same code runs on a
LocalCluster and on a Dask-Gateway cluster (``platform_lib.compute.get_client``). Outputs go to
the store atomically and record their input checksum and settings, so a rerun skips what is
done and valid; a failure is caught in its task and reported with its error, never stopping the
others.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..env_contract import DATA_URL, USER_STORE_URL
from .config import StepConfig, parse_config
from .exposure import ExposureResult, calibrate_exposure
from .references import resolve

DEFAULT_WORKER_MEMORY = "8GiB"  # measured peak for one full-detector exposure, plus headroom


@dataclass
class BatchReport:
    results: list[ExposureResult] = field(default_factory=list)
    wall_s: float = 0.0
    indexed: int | None = None

    def by_status(self, status: str) -> list[ExposureResult]:
        return [r for r in self.results if r.status == status]

    @property
    def failed(self) -> list[ExposureResult]:
        return self.by_status("failed")

    def summary(self) -> str:
        counts = {s: len(self.by_status(s)) for s in ("done", "skipped", "failed")}
        lines = [
            f"{len(self.results)} exposures in {self.wall_s:.1f} s: "
            + ", ".join(f"{n} {s}" for s, n in counts.items())
        ]
        for r in self.failed:
            lines.append(f"  FAILED {r.input}: {r.error}")
        return "\n".join(lines)


def _one(item: tuple[str, str, Any, dict[str, Any], str | None]) -> ExposureResult:
    """Task body: calibrate one exposure; any error becomes a 'failed' record."""
    import time

    l1, output_dir, refs, cfg_dict, abs_refcat = item
    t0 = time.perf_counter()
    try:
        return calibrate_exposure(
            l1, output_dir, refs=refs, config=cfg_dict, abs_refcat=abs_refcat, skip_done=True
        )
    except Exception as exc:  # reported per exposure, by design
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
        return ExposureResult(
            input=str(l1),
            output=None,
            status="failed",
            error=f"{type(exc).__name__}: {exc}{where}",
            wall_s=time.perf_counter() - t0,
        )


def exposures_from_index(store: Any = None, **query: Any) -> list[str]:
    """L1 products from the data index (``platform_lib.data.search`` criteria: cone, detector,
    optical_element, program, start/end ...), as store URLs."""
    from platform_lib.data.search import search
    from platform_lib.data.store import get_store

    table = search(level="L1", store=store, **query)
    st = get_store(table.meta.get("store") or store)
    return [st.url(p) for p in table["path"]]


def _index_outputs(output_dir: str, client: Any) -> int | None:
    """Add the new products to the index of the store the output folder is in: the user's own
    (``$ROMAN_USER_STORE_URL``, searched alongside the survey) before the survey store."""
    import os

    from platform_lib.data.index import build_index
    from platform_lib.data.store import get_store

    for root in (os.environ.get(USER_STORE_URL), os.environ.get(DATA_URL)):
        if not root:
            continue
        store = get_store(root)
        try:
            prefix = store.relative(output_dir)
            break
        except ValueError:
            continue
    else:
        return None
    report = build_index(store, prefix=prefix, client=client, progress=False)
    return int(report.read)  # new or changed products (IndexReport has no "added")


def calibrate_many(
    exposures: Sequence[str | Path],
    output_dir: str | Path,
    *,
    refs: str | Path | None = None,
    config: dict[str, Any] | str | Path | StepConfig | None = None,
    abs_refcat: str | Path | None = None,
    client: Any = None,
    n_workers: int | None = None,
    worker_memory: str = DEFAULT_WORKER_MEMORY,
    index: bool = True,
    progress: bool | None = None,
) -> BatchReport:
    """Calibrate every exposure into ``output_dir``; see the module docstring.

    Settings and the reference source are checked here, before any task is sent, so a bad
    configuration fails once instead of once per exposure.
    """
    import time

    from platform_lib.compute import get_client
    from platform_lib.compute import progress as wait_with_progress

    t0 = time.perf_counter()
    resolve(refs)  # fail now, not in every task
    cfg = parse_config(config, default_pipeline="exposure")
    items = [
        (
            str(e),
            str(output_dir),
            str(refs) if refs else None,
            cfg.as_dict(),
            str(abs_refcat) if abs_refcat else None,
        )
        for e in exposures
    ]
    report = BatchReport()
    if not items:
        return report

    def run(c: Any) -> None:
        futures = c.map(_one, items, pure=False)
        results = wait_with_progress(c, futures, desc="calibrate L1->L2", show=progress)
        for item, res in zip(items, results):
            if isinstance(res, BaseException):  # the task itself died (e.g. worker killed)
                res = ExposureResult(
                    input=item[0],
                    output=None,
                    status="failed",
                    error=f"{type(res).__name__}: {res}",
                )
            report.results.append(res)
        if index:
            try:
                report.indexed = _index_outputs(str(output_dir), c)
            except Exception as exc:  # the products are safe; say why the index is stale
                report.indexed = None
                report.results.append(
                    ExposureResult(
                        input="(index)",
                        output=None,
                        status="failed",
                        error=f"adding products to the index failed: {exc}",
                    )
                )

    if client is not None:
        run(client)
    else:
        with get_client(
            n_workers, memory_limit=worker_memory, worker_memory=worker_memory_gib(worker_memory)
        ) as c:
            run(c)
    report.wall_s = time.perf_counter() - t0
    return report


def worker_memory_gib(spec: str) -> float:
    """'8GiB' -> 8.0 (Dask-Gateway's worker_memory option is in GiB)."""
    from dask.utils import parse_bytes

    return parse_bytes(spec) / 2**30
