"""User-editable step settings for the exposure and mosaic pipelines, checked before any work.

Format (YAML)::

    pipeline: exposure            # or mosaic
    steps:
      rampfit: {algorithm: likely}
      tweakreg: {abs_minobj: 5, abs_fitgeometry: shift}
      source_catalog: {skip: true}
      flatfield: {replace: "mypackage.steps:MyFlatStep"}   # a RomanStep subclass

stpipe's own ASDF parameter files (what ``Step.export_config`` writes: a ``steps`` list of
``{class, name, parameters}``) are read too. Unknown step names and unknown parameters are
errors listing what is valid, so a typo never silently runs the default.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from stpipe import Pipeline


class ConfigError(ValueError):
    """A step configuration names something that does not exist or cannot be used."""


@dataclass
class StepConfig:
    """Validated settings: per-step parameters, skips, and replacement step classes."""

    pipeline: str = "exposure"
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    skip: set[str] = field(default_factory=set)
    replace: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        steps: dict[str, Any] = {}
        for name in sorted(set(self.params) | self.skip | set(self.replace)):
            entry = dict(self.params.get(name, {}))
            if name in self.skip:
                entry["skip"] = True
            if name in self.replace:
                entry["replace"] = self.replace[name]
            steps[name] = entry
        return {"pipeline": self.pipeline, "steps": steps}


def pipeline_class(kind: str) -> type[Pipeline]:
    if kind == "exposure":
        from romancal.pipeline import ExposurePipeline

        return ExposurePipeline
    if kind == "mosaic":
        from romancal.pipeline import MosaicPipeline

        return MosaicPipeline
    raise ConfigError(f"unknown pipeline {kind!r}: expected 'exposure' or 'mosaic'")


def step_parameters(step_class: type) -> set[str]:
    """Parameter names a step accepts (its spec plus stpipe's common ones)."""
    from stpipe import config_parser

    spec = config_parser.load_spec_file(step_class)
    names = set(spec.keys()) if spec is not None else set()
    return names


def load_step_class(path: str) -> type:
    from romancal.stpipe import RomanStep

    mod_name, _, cls_name = path.partition(":")
    if not cls_name:
        mod_name, _, cls_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(mod_name), cls_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"cannot import replacement step {path!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, RomanStep)):
        raise ConfigError(f"replacement {path!r} is not a romancal RomanStep subclass")
    return cls


def _from_stpipe_asdf(tree: dict[str, Any]) -> dict[str, Any]:
    steps: dict[str, Any] = {}
    for entry in tree.get("steps", []) or []:
        name = entry.get("name")
        if not name:
            raise ConfigError("an entry of the ASDF 'steps' list has no 'name'")
        steps[name] = dict(entry.get("parameters") or {})
    kind = "mosaic" if "mosaic" in str(tree.get("class", "")).lower() else "exposure"
    return {"pipeline": kind, "steps": steps}


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"step configuration {path} does not exist")
    if path.suffix == ".asdf":
        import asdf

        try:
            with asdf.open(path) as af:
                tree = dict(af.tree)
        except Exception as exc:  # asdf raises many types for a bad file
            raise ConfigError(f"{path} is not a readable ASDF parameter file: {exc}") from None
        return _from_stpipe_asdf(tree)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'steps'")
    return data


def parse_config(
    data: StepConfig | dict[str, Any] | str | Path | None, default_pipeline: str = "exposure"
) -> StepConfig:
    """Validate settings against the pipeline's actual steps and their specs."""
    if data is None:
        return StepConfig(pipeline=default_pipeline)
    if isinstance(data, StepConfig):
        return data
    if isinstance(data, (str, Path)):
        data = read_config_file(data)
    unknown_top = set(data) - {"pipeline", "steps"}
    if unknown_top:
        raise ConfigError(
            f"unknown top-level key(s) {sorted(unknown_top)}: use 'pipeline' and 'steps'"
        )
    kind = data.get("pipeline", default_pipeline)
    cls = pipeline_class(kind)
    step_defs = cls.step_defs
    cfg = StepConfig(pipeline=kind)
    steps = data.get("steps") or {}
    if not isinstance(steps, dict):
        raise ConfigError("'steps' must be a mapping of step name to settings")
    for name, settings in steps.items():
        if name not in step_defs:
            raise ConfigError(
                f"unknown step {name!r} for the {kind} pipeline; its steps are: "
                f"{', '.join(step_defs)}"
            )
        settings = dict(settings or {})
        step_cls = step_defs[name]
        if "replace" in settings:
            target = str(settings.pop("replace"))
            step_cls = load_step_class(target)
            cfg.replace[name] = target
        if settings.pop("skip", False):
            cfg.skip.add(name)
        allowed = step_parameters(step_cls)
        bad = sorted(k for k in settings if k not in allowed)
        if bad:
            raise ConfigError(
                f"step {name!r} has no parameter(s) {bad}; valid: {', '.join(sorted(allowed))}"
            )
        if settings:
            cfg.params[name] = settings
    return cfg


def build_pipeline_class(cfg: StepConfig) -> type[Pipeline]:
    """The pipeline class, with replaced steps swapped in (a subclass; romancal untouched)."""
    base = pipeline_class(cfg.pipeline)
    if not cfg.replace:
        return base
    defs = dict(base.step_defs)
    for name, target in cfg.replace.items():
        defs[name] = load_step_class(target)
    return type(f"Custom{base.__name__}", (base,), {"step_defs": defs})
