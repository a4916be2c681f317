"""Which software environment is running: its release name and the versions it carries.

The one home for software versions in the platform. On the platform every user server and its
Dask scheduler and workers get ``ROMAN_ENVIRONMENT``, the release name the user chose in the
spawn form (the tier policy's ``environments``, docs/environments.md); anywhere else (a laptop,
CI) the name is ``development``. The versions are read from the installed distributions'
metadata (milliseconds; importing romancal would take seconds), the CRDS context from
``CRDS_CONTEXT`` when the environment pins one.

    >>> from platform_lib.environment import current
    >>> env = current()
    >>> env.name, env.versions["romancal"]            # doctest: +SKIP
    ('2026.3', '1.1.0')

Products record it (provenance): the calibration and L5 publishing code do so themselves, and
:func:`stamp` writes it into any product's metadata (a roman_datamodels model, an ``asdf``
file, an astropy ``Table``) before a notebook saves it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from . import env_contract

#: Set by the spawner (the server) and the gateway (schedulers and workers).
ENVIRONMENT_VAR = env_contract.ENVIRONMENT
#: Set in the notebook image at build time: the release the image was built for.
IMAGE_ENVIRONMENT_VAR = env_contract.IMAGE_ENVIRONMENT
#: The name when no platform environment was chosen (a laptop, CI, a development checkout).
DEVELOPMENT = "development"
#: The project's own distribution.
DISTRIBUTION = "roman-science-platform"
#: The mission pipeline packages an environment pins (the policy's ``versions``).
PIPELINE_PACKAGES: tuple[str, ...] = ("romancal", "romanisim", "roman_datamodels")
#: Every package whose version an environment report and a product's provenance carry.
PACKAGES: tuple[str, ...] = (
    *PIPELINE_PACKAGES,
    "stcal",
    "stpipe",
    "rad",
    "galsim",
    "photutils",
    "asdf",
    "astropy",
    "gwcs",
    "tweakwcs",
    "numpy",
    "crds",
)
#: Where :func:`stamp` writes the environment in a product's metadata.
META_KEY = "platform_environment"


def package_versions(packages: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` (distribution names); absent ones are left out."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def platform_version() -> str:
    return package_versions((DISTRIBUTION,)).get(DISTRIBUTION, "not installed")


@dataclass(frozen=True)
class Environment:
    """A running environment: what :func:`current` reports."""

    name: str
    platform: str
    versions: dict[str, str] = field(default_factory=dict)
    crds_context: str | None = None
    #: The release the image was built for (None outside the notebook image).
    image: str | None = None

    @property
    def is_development(self) -> bool:
        return self.name == DEVELOPMENT

    @property
    def image_mismatch(self) -> str | None:
        """Why the chosen environment is not the image's own release, or None when it is (or
        when this is not the notebook image): a server told ``2026.2`` on the ``2026.3`` image
        runs 2026.3's versions, and says so instead of recording the wrong name silently."""
        if self.image is None or self.is_development or self.image == self.name:
            return None
        return f"environment {self.name} was chosen, but this image was built as {self.image}"

    def as_dict(self) -> dict[str, Any]:
        """A plain, JSON- and ASDF-serialisable record (what provenance stores)."""
        out = asdict(self)
        out["versions"] = dict(self.versions)
        return {k: v for k, v in out.items() if v is not None}

    def describe(self) -> str:
        """One line for logs and notebooks."""
        pipe = ", ".join(f"{p} {self.versions[p]}" for p in PIPELINE_PACKAGES if p in self.versions)
        crds = f", CRDS {self.crds_context}" if self.crds_context else ""
        warn = f" WARNING: {self.image_mismatch}" if self.image_mismatch else ""
        return f"environment {self.name} (platform {self.platform}; {pipe}{crds}){warn}"


def current() -> Environment:
    """The environment this process runs: name, platform version, package versions, CRDS context.

    A mismatch between the chosen environment and the image (a server started with
    ``ROMAN_ENVIRONMENT=2026.2`` on the 2026.3 image) is reported, never hidden: ``image``
    carries the image's own release next to ``name``."""
    return Environment(
        name=os.environ.get(ENVIRONMENT_VAR) or DEVELOPMENT,
        platform=platform_version(),
        versions=package_versions(),
        crds_context=os.environ.get("CRDS_CONTEXT") or None,
        image=os.environ.get(IMAGE_ENVIRONMENT_VAR) or None,
    )


def software_versions() -> dict[str, str]:
    """Installed versions of :data:`PACKAGES` and of the platform (a product's ``software``)."""
    return {**package_versions(), DISTRIBUTION: platform_version()}


def version_text() -> str:
    """``roman-platform --version``: the platform, the pipeline and the environment."""
    env = current()
    lines = [f"roman-platform {env.platform}"]
    lines += [f"{p} {env.versions.get(p, 'not installed')}" for p in PIPELINE_PACKAGES]
    lines.append(f"environment {env.name}")
    if env.crds_context:
        lines.append(f"CRDS context {env.crds_context}")
    return "\n".join(lines)


def stamp(product: Any, environment: Environment | None = None) -> Any:
    """Record the running environment in ``product``'s metadata and return the product.

    ``product``: a roman_datamodels model (``meta.platform_environment``), an ``asdf.AsdfFile``
    (the tree's ``platform_environment``) or an astropy ``Table`` (``meta``; written to Parquet,
    ECSV and FITS headers as the table's metadata). Anything else is refused with a TypeError
    rather than silently left unstamped."""
    record = (environment or current()).as_dict()
    meta = getattr(product, "meta", None)
    tree = getattr(product, "tree", None)
    if meta is not None and hasattr(product, "save"):  # a roman_datamodels model
        meta[META_KEY] = record
    elif isinstance(tree, dict):  # asdf.AsdfFile
        tree[META_KEY] = record
    elif isinstance(meta, dict):  # astropy Table / QTable (OrderedDict meta)
        meta[META_KEY] = record
    else:
        raise TypeError(
            f"cannot record the environment in a {type(product).__name__}: give a "
            "roman_datamodels model, an asdf.AsdfFile or an astropy Table"
        )
    return product


def recorded(product: Any) -> dict[str, Any] | None:
    """The environment :func:`stamp` (or the platform's provenance) recorded in ``product``."""
    meta = getattr(product, "meta", None)
    tree = getattr(product, "tree", None)
    for holder in (meta, tree):
        try:
            if holder is not None and META_KEY in holder:
                value = holder[META_KEY]
                return dict(value) if value is not None else None
        except TypeError:
            continue
    return None
