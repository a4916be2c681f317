"""Survey mode: pointings (dithers x epochs x optical elements) x detectors, as a Dask graph.

Every (pointing, detector) exposure is one task; tasks run on whatever cluster
``platform_lib.compute.get_client`` gives (Dask-Gateway on the platform, a LocalCluster
elsewhere) with a progress bar, and each writes its image and truth catalog straight into the
data store, so nothing large comes back to the notebook: the result is a manifest Table (one
row per product), also written to the store. When persistence is simulated, the exposures of
one detector form a chain (each task receives the previous exposure's persistence state),
so detectors still run in parallel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from .bands import DETECTORS, check_detector, check_element
from .cutout import Footprint
from .effects import InstrumentEffects, read_pattern
from .errors import SimulationInputError
from .images import ExposureSpec, simulate_exposure
from .scenes import validate_catalog

#: Dither patterns, offsets in arcsec along (RA, Dec).
DITHERS: dict[str, list[tuple[float, float]]] = {
    "none": [(0.0, 0.0)],
    "line2": [(0.0, 0.0), (0.55, 0.55)],
    "box4": [(0.0, 0.0), (0.55, 0.0), (0.55, 0.55), (0.0, 0.55)],
    "box4-large": [(0.0, 0.0), (11.0, 0.0), (11.0, 11.0), (0.0, 11.0)],
}


@dataclass
class Pointing:
    """One telescope pointing (WFI_CEN on ra/dec) with its element, MA table and time."""

    ra: float
    dec: float
    optical_element: str
    start_time: str
    pa: float = 0.0
    ma_table: int = 4
    epoch: int = 0
    dither: int = 0
    name: str = ""

    @property
    def mjd(self) -> float:
        from astropy.time import Time

        return float(Time(self.start_time).mjd)


def plan_survey(
    center: tuple[float, float],
    *,
    optical_elements: Sequence[str] = ("F158",),
    epochs: int = 1,
    cadence_days: float = 5.0,
    start_time: str = "2027-06-01T00:00:00",
    dithers: str | Sequence[tuple[float, float]] = "none",
    pa: float = 0.0,
    ma_table: int = 4,
) -> list[Pointing]:
    """Pointings: every epoch x optical element x dither offset around ``center``."""
    from astropy.time import Time, TimeDelta

    elements = [check_element(e) for e in optical_elements]
    read_pattern(ma_table)
    if epochs < 1:
        raise SimulationInputError("epochs must be >= 1")
    if isinstance(dithers, str):
        if dithers not in DITHERS:
            raise SimulationInputError(f"unknown dither pattern {dithers!r}; use {sorted(DITHERS)}")
        offsets = DITHERS[dithers]
    else:
        offsets = []
        for offset in dithers:
            if len(offset) != 2:
                raise SimulationInputError(
                    f"a dither offset is (dRA, dDec) in arcsec, got {offset!r}"
                )
            offsets.append((float(offset[0]), float(offset[1])))
    t0 = Time(start_time)
    ra0, dec0 = map(float, center)
    out = []
    for epoch in range(epochs):
        t_epoch = t0 + TimeDelta(epoch * cadence_days, format="jd")
        for k, element in enumerate(elements):
            for d, (dra, ddec) in enumerate(offsets):
                # exposures inside an epoch are ~3 minutes apart
                t = t_epoch + TimeDelta((k * len(offsets) + d) * 180.0, format="sec")
                ra = ra0 + dra / 3600.0 / np.cos(np.radians(dec0))
                out.append(
                    Pointing(
                        ra=ra,
                        dec=dec0 + ddec / 3600.0,
                        optical_element=element,
                        start_time=t.isot,
                        pa=pa,
                        ma_table=ma_table,
                        epoch=epoch,
                        dither=d,
                        name=f"e{epoch:03d}_{element.lower()}_d{d:02d}",
                    )
                )
    return out


@dataclass
class SurveyJob:
    """Everything one task needs (small; the catalog travels separately, scattered once)."""

    pointing: Pointing
    detector: str
    level: int
    footprint: Footprint
    effects: InstrumentEffects
    out_url: str
    seed: int
    reference_data: Any = None
    apportioner: str = "fast"
    extra: dict = field(default_factory=dict)


def run_job(job: SurveyJob, catalog, persistence_state=None) -> dict:
    """Simulate one exposure of a survey and write it to the store; return its manifest row.

    ``persistence_state`` is the previous exposure's (this detector) persistence, as a dict.
    """
    import romanisim.persistence
    from romanisim.models import parameters

    from .lightcurves import catalog_at
    from .output import write_product

    p = job.pointing
    # the scene as seen at mid-exposure
    exptime = parameters.read_time * read_pattern(p.ma_table)[-1][-1]
    scene = catalog_at(catalog, p.mjd + exptime / 2 / 86400.0)
    effects = job.effects
    if persistence_state is not None:
        effects = replace(
            effects, persistence=romanisim.persistence.Persistence.from_dict(persistence_state)
        )
    spec = ExposureSpec(
        optical_element=p.optical_element,
        detector=job.detector,
        ra=p.ra,
        dec=p.dec,
        pa=p.pa,
        start_time=p.start_time,
        ma_table=p.ma_table,
        level=job.level,
        footprint=job.footprint,
        seed=job.seed,
        name=p.name,
    )
    sim = simulate_exposure(
        scene, spec, effects, reference_data=job.reference_data, apportioner=job.apportioner
    )
    for col in ("flux_factor", "var_kind"):
        if col in scene.colnames:
            sim.truth[col] = scene[col]
    sim.truth.meta["mjd_mid"] = scene.meta["mjd"]
    paths = write_product(sim, job.out_url, f"{p.name}/{spec.filename}")
    row = {
        "name": p.name,
        "epoch": p.epoch,
        "dither": p.dither,
        "optical_element": p.optical_element,
        "detector": job.detector,
        "ra": p.ra,
        "dec": p.dec,
        "mjd_start": p.mjd,
        "level": job.level,
        "n_sources": int(np.sum(sim.truth["in_footprint"])),
        **paths,
    }
    persistence = sim.info.get("persistence")
    row["_persistence"] = persistence.to_dict() if persistence is not None else None
    return row


def _jobs(
    pointings, detectors, level, footprint, effects, out_url, seed, reference_data, apportioner
) -> list[SurveyJob]:
    jobs = []
    for i, p in enumerate(pointings):
        for det in detectors:
            jobs.append(
                SurveyJob(
                    p,
                    det,
                    level,
                    footprint,
                    effects,
                    str(out_url),
                    seed=seed + 1000 * i + int(det[3:]),
                    reference_data=reference_data,
                    apportioner=apportioner,
                )
            )
    return jobs


def run_survey(
    catalog,
    pointings: Sequence[Pointing],
    out_url: str,
    *,
    detectors: Sequence[str | int] = DETECTORS,
    level: int = 2,
    footprint: Footprint | None = None,
    effects: InstrumentEffects | None = None,
    seed: int = 0,
    reference_data: Any = None,
    apportioner: str = "fast",
    client: Any = None,
    serial: bool = False,
    show_progress: bool | None = None,
):
    """Simulate every pointing x detector into ``out_url``; return the manifest Table.

    ``client``: an existing ``distributed.Client``; by default one comes from
    ``platform_lib.compute.get_client()``. ``serial=True`` runs in this process instead (the
    benchmarks' baseline). Inputs are validated before any task starts.
    """
    from astropy.table import Table

    if not pointings:
        raise SimulationInputError("no pointings to simulate")
    detectors = [check_detector(d) for d in detectors]
    footprint = (footprint or Footprint()).check()
    effects = effects or InstrumentEffects()
    effects.crparam()
    for p in pointings:
        check_element(p.optical_element)
        read_pattern(p.ma_table)
        validate_catalog(catalog, [p.optical_element])
    jobs = _jobs(
        pointings, detectors, level, footprint, effects, out_url, seed, reference_data, apportioner
    )
    # the first exposure's spec check catches a bad level / footprint before anything runs
    ExposureSpec(level=level, footprint=footprint).check()
    chained = effects.persistence not in (False, None)

    if serial:
        rows: list[dict] = []
        state: dict[str, Any] = {}
        for job in jobs:
            row = run_job(job, catalog, state.get(job.detector))
            state[job.detector] = row["_persistence"]
            rows.append(row)
    else:
        rows = _run_distributed(jobs, catalog, chained, client, show_progress)
    errors = [r for r in rows if isinstance(r, BaseException)]
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(rows)} exposures failed; first: {errors[0]!r}")
    for r in rows:
        r.pop("_persistence", None)
    manifest = Table(rows=rows)
    manifest.meta["survey"] = {
        "n_pointings": len(pointings),
        "detectors": detectors,
        "footprint": asdict(footprint),
        "level": level,
    }
    from .output import get_store

    store = get_store(out_url)
    import io

    buf = io.StringIO()
    manifest.write(buf, format="ascii.ecsv")
    store.write_bytes("survey_manifest.ecsv", buf.getvalue().encode())
    return manifest


def _run_distributed(jobs, catalog, chained, client, show_progress):
    from platform_lib.compute import get_client, progress

    def submit_all(c):
        cat = c.scatter(catalog, broadcast=True)
        futures = []
        last: dict[str, Any] = {}
        for job in jobs:
            prev = last.get(job.detector) if chained else None
            fut = c.submit(_run_chained, job, cat, prev, pure=False)
            last[job.detector] = fut
            futures.append(fut)
        return progress(c, futures, desc="exposures", show=show_progress)

    if client is not None:
        return submit_all(client)
    with get_client() as c:
        return submit_all(c)


def _run_chained(job: SurveyJob, catalog, previous_row) -> dict:
    state = previous_row.get("_persistence") if isinstance(previous_row, dict) else None
    return run_job(job, catalog, state)
