"""L1 ramps -> L2 calibrated exposure with romancal's ExposurePipeline, recorded and atomic.

Why a layer over ``strun roman_elp``: a run here must (1) refuse bad input before doing any
work, (2) use a reference-file set or CRDS without the user wiring ``override_*`` for fourteen
reference types, (3) record in the product exactly which software, parameters, reference files
and input produced it (so a rerun can tell done-and-valid from stale), and (4) never leave a
partial product in the store. The calibration itself is romancal's, step for step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data import transfer
from ..data.refset import ReferenceSet, sha256_file
from ..instrument import REFERENCE_BORDER
from .config import StepConfig, build_pipeline_class, parse_config
from .references import (
    FULL_FRAME_ONLY,
    ReferenceSource,
    apply_overrides,
    environment,
    resolve,
    step_overrides,
)

log = logging.getLogger(__name__)
PROVENANCE_KEY = "platform_provenance"


class InputError(ValueError):
    """An input product is unreadable or does not fit the reference files."""


@dataclass
class ExposureResult:
    input: str
    output: str | None
    status: str  # "done" | "skipped" | "failed"
    error: str | None = None
    wall_s: float = 0.0
    provenance: dict[str, Any] = field(default_factory=dict)


def software_versions() -> dict[str, str]:
    """The installed software a product was made with (platform_lib.environment's list)."""
    from platform_lib.environment import software_versions as _versions

    return _versions()


def environment_record() -> dict[str, Any]:
    """The running environment (release name, versions, CRDS context) for provenance."""
    from platform_lib.environment import current

    return current().as_dict()


def output_name(l1_name: str, suffix: str = "cal", ext: str = "asdf") -> str:
    stem = Path(l1_name).name
    for tail in (".asdf",):
        stem = stem.removesuffix(tail)
    for tail in ("_uncal", "_l1", "_L1"):
        stem = stem.removesuffix(tail)
    return f"{stem}_{suffix}.{ext}"


def check_l1(path: Path, refset: ReferenceSet | None) -> dict[str, Any]:
    """Open the L1 file and check it is a WFI ramp matching the reference files' frame."""
    import roman_datamodels.datamodels as rdm

    from platform_lib.data.safe_asdf import AsdfInputError, check_asdf_path

    try:
        check_asdf_path(path)  # empty, truncated, alias bomb: refused before asdf reads it
    except AsdfInputError as exc:
        raise InputError(
            f"cannot read L1 file {path.name}: {str(exc).removeprefix(f'{path}: ')}"
        ) from None
    try:
        with rdm.open(path) as m:
            if not isinstance(m, rdm.ScienceRawModel):
                raise InputError(
                    f"{path.name} is a {type(m).__name__}, not an L1 ramp (ScienceRawModel)"
                )
            shape = tuple(m.data.shape)
            info = {
                "shape": shape,
                "optical_element": str(m.meta.instrument.optical_element),
                "detector": str(m.meta.instrument.detector),
                "exposure_type": str(m.meta.exposure.type),
            }
            np.asarray(m.data[-1, :1, :1])  # touch the array: a truncated block fails here
    except InputError:
        raise
    except Exception as exc:  # asdf/roman_datamodels raise many types for a damaged file
        raise InputError(f"cannot read L1 file {path.name}: {type(exc).__name__}: {exc}") from None
    if len(shape) != 3:
        raise InputError(f"{path.name}: L1 data must be 3-D (resultants, rows, cols), got {shape}")
    if shape[0] < 2:
        raise InputError(f"{path.name}: a ramp needs at least 2 resultants, got {shape[0]}")
    if refset is not None:
        if tuple(shape[1:]) != tuple(refset.shape):
            raise InputError(
                f"{path.name}: frame shape {shape[1:]} does not match the reference set's "
                f"{tuple(refset.shape)} ({refset.shape[0] - 2 * REFERENCE_BORDER} science pixels + "
                f"{REFERENCE_BORDER}-pixel border)"
            )
        if info["detector"] != refset.detector:
            raise InputError(
                f"{path.name} is from {info['detector']} but the reference set "
                f"is for {refset.detector}"
            )
    return info


def _skips(cfg: StepConfig, source: ReferenceSource, abs_refcat: str | None) -> dict[str, str]:
    reasons = dict.fromkeys(cfg.skip, "skipped in the step configuration")
    if source.refset is not None and source.refset.subarray:
        for name, why in FULL_FRAME_ONLY.items():
            reasons.setdefault(name, f"sub-array data: {why}")
    if abs_refcat is None and source.refset is not None:
        reasons.setdefault("tweakreg", "no absolute reference catalog given (offline)")
    return reasons


def alignment_residuals(
    catalog: Any,
    wcs: Any,
    refcat_path: str | Path,
    radius_arcsec: float = 0.3,
    snr_min: float = 50.0,
) -> dict[str, Any]:
    """Offsets of detected stars (PSF-fit positions through the tweaked WCS) from their
    reference-catalog matches: the achieved alignment as the data show it.

    Only stars with a clean PSF fit and S/N above ``snr_min`` count, so the figure measures the
    WCS rather than faint-star centroid noise.
    """
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    # An explicit format: left to guess, astropy would hand Arrow a Python file (see _parquet).
    path = str(refcat_path)
    fmt = {".parquet": "parquet", ".ecsv": "ascii.ecsv", ".fits": "fits"}.get(Path(path).suffix)
    ref = Table.read(path, format=fmt)
    cols = {c.lower(): c for c in ref.colnames}
    rc = SkyCoord(ref[cols["ra"]], ref[cols["dec"]], unit="deg")
    t = catalog
    if "x_psf" in t.colnames:
        x, y = np.asarray(t["x_psf"], float), np.asarray(t["y_psf"], float)
        flux, err = np.asarray(t["psf_flux"], float), np.asarray(t["psf_flux_err"], float)
        ok = np.asarray(t["psf_flags"]) == 0 if "psf_flags" in t.colnames else np.ones(len(t), bool)
        kind = "psf"
    else:
        x, y = np.asarray(t["x_centroid"], float), np.asarray(t["y_centroid"], float)
        flux, err = np.asarray(t["segment_flux"], float), np.asarray(t["segment_flux_err"], float)
        ok = np.ones(len(t), bool)
        kind = "centroid"
    with np.errstate(divide="ignore", invalid="ignore"):
        ok &= np.isfinite(x) & np.isfinite(y) & (flux / err > snr_min)
    if ok.sum() == 0:
        return {"n_matched": 0, "positions": kind}
    ra, dec = wcs(x[ok], y[ok])
    sc = SkyCoord(ra, dec, unit="deg")
    idx, sep, _ = sc.match_to_catalog_sky(rc)
    m = sep < radius_arcsec * u.arcsec
    if m.sum() == 0:
        return {"n_matched": 0, "positions": kind}
    dra, ddec = sc[m].spherical_offsets_to(rc[idx[m]])
    dra_mas, ddec_mas = dra.to_value(u.mas), ddec.to_value(u.mas)
    # saturated or blended stars give wild PSF positions: clip them as tweakreg does
    from astropy.stats import sigma_clip

    keep = ~(
        sigma_clip(dra_mas, sigma=3, maxiters=5).mask
        | sigma_clip(ddec_mas, sigma=3, maxiters=5).mask
    )
    n_clipped = int((~keep).sum())
    dra_mas, ddec_mas = dra_mas[keep], ddec_mas[keep]
    return {
        "n_matched": int(keep.sum()),
        "n_clipped": n_clipped,
        "positions": kind,
        "snr_min": snr_min,
        "rms_mas": float(np.sqrt(np.mean(dra_mas**2 + ddec_mas**2))),
        "rms_ra_mas": float(np.std(dra_mas)),
        "rms_dec_mas": float(np.std(ddec_mas)),
        "mean_ra_mas": float(np.mean(dra_mas)),
        "mean_dec_mas": float(np.mean(ddec_mas)),
        "match_radius_arcsec": radius_arcsec,
        "reference_catalog": Path(str(refcat_path)).name,
    }


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def is_done(output_url: str, input_sha: str, config_sha: str) -> bool:
    """The product exists, opens, and was made from this input with these settings."""
    import roman_datamodels.datamodels as rdm

    if not transfer.exists(output_url):
        return False
    with tempfile.TemporaryDirectory(prefix="l2-check-") as tmp:
        try:
            local = transfer.fetch(output_url, tmp)
            with rdm.open(local) as m:
                prov = m.meta[PROVENANCE_KEY] if PROVENANCE_KEY in m.meta else None
                if prov is None:
                    return False
                return (
                    prov["input"]["sha256"] == input_sha
                    and prov["config_sha256"] == config_sha
                    and m.meta.cal_step.ramp_fit == "COMPLETE"
                )
        except Exception:
            return False


def config_digest(cfg: StepConfig, source: ReferenceSource, abs_refcat: str | None) -> str:
    refs = (
        source.refset.manifest["files"]
        if source.refset is not None
        else {"crds": source.crds_server}
    )
    blob = json.dumps(
        {
            "cfg": cfg.as_dict(),
            "refs": refs,
            "abs_refcat": Path(abs_refcat).name if abs_refcat else None,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def calibrate_exposure(
    l1: str | Path,
    output_dir: str | Path,
    *,
    refs: str | Path | ReferenceSet | None = None,
    config: dict[str, Any] | str | Path | StepConfig | None = None,
    abs_refcat: str | Path | None = None,
    skip_done: bool = True,
    save_catalog: bool = True,
) -> ExposureResult:
    """Calibrate one L1 file into ``output_dir`` (a folder or ``s3://…`` prefix).

    Raises on bad input (before any output exists); returns ``status='skipped'`` when a valid
    product of the same input and settings is already there.
    """
    t0 = time.perf_counter()
    source = resolve(refs)  # fails at once with no reference source
    cfg = parse_config(config, default_pipeline="exposure")
    if cfg.pipeline != "exposure":
        raise InputError("calibrate_exposure needs an exposure-pipeline configuration")
    l1 = str(l1)
    out_name = output_name(l1)
    output_url = transfer.join(str(output_dir), out_name)

    with tempfile.TemporaryDirectory(prefix="l2-") as tmp:
        tmpd = Path(tmp)
        local_l1 = transfer.fetch(l1, tmpd / "in")
        info = check_l1(local_l1, source.refset)
        refcat_local = None
        if abs_refcat is not None:
            refcat_local = str(transfer.fetch(str(abs_refcat), tmpd / "refcat"))
        input_sha = sha256_file(local_l1)
        digest = config_digest(cfg, source, refcat_local)
        if skip_done and is_done(output_url, input_sha, digest):
            return ExposureResult(
                input=l1, output=output_url, status="skipped", wall_s=time.perf_counter() - t0
            )

        skips = _skips(cfg, source, refcat_local)
        overrides = step_overrides(source, info["optical_element"], set(skips))
        steps: dict[str, dict[str, Any]] = {}
        for name, params in cfg.params.items():
            steps.setdefault(name, {}).update(params)
        for name in skips:
            steps.setdefault(name, {})["skip"] = True
        if refcat_local is not None:
            steps.setdefault("tweakreg", {}).setdefault("abs_refcat", refcat_local)
        steps.setdefault("tweakreg", {}).setdefault("catalog_path", str(tmpd / "tweakreg"))

        pipe_cls = build_pipeline_class(cfg)
        with environment(source):
            pipe = pipe_cls(steps=steps)
            pipe.save_results = False
            apply_overrides(pipe, overrides)
            model, catalog, _segm = pipe.run(str(local_l1))

        residuals: dict[str, Any] = {}
        if (
            refcat_local is not None
            and catalog is not None
            and model.meta.cal_step.tweakreg == "COMPLETE"
        ):
            residuals = alignment_residuals(catalog.source_catalog, model.meta.wcs, refcat_local)

        ref_files = {}
        if "ref_file" in model.meta:
            for k, v in model.meta.ref_file.items():
                if isinstance(v, str):
                    ref_files[k] = Path(v).name if v not in ("N/A", "") else v
        provenance = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "software": software_versions(),
            "environment": environment_record(),
            "pipeline": f"{pipe_cls.__module__}.{pipe_cls.__name__}",
            "input": {"name": Path(l1).name, "url": l1, "sha256": input_sha},
            "config": cfg.as_dict(),
            "config_sha256": digest,
            "step_parameters": _jsonable(steps),
            "reference_overrides": _jsonable(
                {k: {p: Path(v).name for p, v in d.items()} for k, d in overrides.items()}
            ),
            "skipped_steps": skips,
            "reference_source": source.describe(),
            "reference_files": ref_files,
            "reference_set": (
                {k: v["sha256"] for k, v in source.refset.manifest["files"].items()}
                if source.refset is not None
                else None
            ),
            "alignment": residuals,
        }
        model.meta[PROVENANCE_KEY] = _jsonable(provenance)
        out_local = tmpd / out_name
        model.save(out_local)
        published_cat = None
        if save_catalog and catalog is not None:
            cat_name = output_name(l1, "cat", "parquet")
            cat_local = tmpd / cat_name
            catalog.source_catalog.write(str(cat_local), format="parquet", overwrite=True)
            published_cat = transfer.publish(cat_local, transfer.join(str(output_dir), cat_name))
        # the L2 product last: its presence means the exposure is done
        transfer.publish(out_local, output_url)
        model.close()
    provenance["catalog"] = published_cat
    return ExposureResult(
        input=l1,
        output=output_url,
        status="done",
        wall_s=time.perf_counter() - t0,
        provenance=provenance,
    )
