"""Level 5: community products a user or a team publishes (a catalog, an image, a template, a mask).

``publish(product, name, ...)`` validates the product (an ASDF product must open with
roman_datamodels and pass its schemas; a table must match a declared schema in which every column
has a unit, ``""`` for a dimensionless number), records its provenance (who, from which inputs,
with which software versions, when), its visibility (``private``, ``team``, ``public``) and its
licence, and writes it under the publisher's own store (``$ROMAN_USER_STORE_URL``) or the team's
space (``${ROMAN_TEAM_STORE_URL}<team>/``), never into the survey store. Products live in an
``l5/`` folder, which the product index reads as level L5, so ``data.search(level="L5",
store=...)`` finds them; a ``registry`` (the platform's TAP service) makes them visible to others
by ObsCore/TAP under the visibility given.

Nothing is half-written: the product and its provenance are written under temporary names and
renamed into place only when both are complete; a name that exists is refused (no one
overwrites a product, their own included: publish a new name or remove first). Removal
(:func:`remove`) is the owner's (or an admin's) and is recorded by the registry.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import io
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..environment import current as current_environment
from ..environment import software_versions
from .store import Store, get_store
from .user_store import TEAM_STORE_ENV, USER_STORE_ENV

__all__ = [
    "L5Error",
    "L5Product",
    "publish",
    "remove",
    "validate_table",
    "validate_asdf",
    "VISIBILITIES",
    "L5_DIR",
    "destination",
    "did",
]

VISIBILITIES = ("private", "team", "public")
L5_DIR = "l5"
PROVENANCE_SUFFIX = ".provenance.json"
#: the user-store and team-space contract (issue 20); the fallback is a folder in the home


class L5Error(ValueError):
    """A product that cannot be published as given; the message says what to fix."""


@dataclass
class L5Product:
    name: str
    url: str
    store_url: str
    path: str
    provenance: dict[str, Any]


def _user() -> str:
    return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()


def destination(visibility: str, team: str | None = None) -> str:
    """The store URL an L5 product goes to: the user's own prefix, or the team's space."""
    if visibility == "team":
        base = os.environ.get(TEAM_STORE_ENV)
        if not base:
            raise L5Error(f"a team product needs the team spaces: {TEAM_STORE_ENV} is not set")
        return base.rstrip("/") + f"/{team}/"
    base = os.environ.get(USER_STORE_ENV)
    if base:
        return base
    return str(Path.home() / "roman-user-store") + "/"


def did(url: str) -> str:
    """The ObsCore publisher DID of an L5 product: its full store URL (unique across users)."""
    from .obscore import DID_BASE

    return f"{DID_BASE}?{url}"


# --------------------------------------------------------------------------- validation
def validate_table(table: Any, schema: Mapping[str, str]) -> None:
    """The table must have exactly the declared columns, each with the declared unit.

    ``schema`` maps column → unit string (``""`` for dimensionless numbers and text).
    """
    import astropy.units as u
    from astropy.table import Table

    if not isinstance(table, Table):
        raise L5Error(f"a catalog must be an astropy Table/QTable, not {type(table).__name__}")
    if not schema:
        raise L5Error("a table needs a declared schema: {column: unit, ...} ('' = dimensionless)")
    missing = [c for c in schema if c not in table.colnames]
    undeclared = [c for c in table.colnames if c not in schema]
    if missing or undeclared:
        raise L5Error(
            f"table does not match its schema: missing {missing}, undeclared {undeclared}"
        )
    for name, declared in schema.items():
        col = table[name]
        have = getattr(col, "unit", None)
        try:
            want = u.Unit(declared) if declared else None
        except ValueError as exc:
            raise L5Error(f"column {name!r}: {declared!r} is not a unit ({exc})") from None
        numeric = np.issubdtype(np.asarray(col).dtype, np.number)
        if want is None:
            if have is not None and have != u.dimensionless_unscaled:
                raise L5Error(f"column {name!r} has unit {have} but is declared dimensionless")
            continue
        if have is None:
            raise L5Error(
                f"column {name!r} has no unit (declared {want}); "
                f"set table[{name!r}].unit or use a Quantity"
            )
        if not numeric or have != want:
            raise L5Error(f"column {name!r} has unit {have}, declared {want}")
    if len(table) == 0:
        raise L5Error("an empty table is not a product")


def validate_asdf(data: bytes) -> str:
    """The roman_datamodels model name of an ASDF product's bytes, schemas checked."""
    import roman_datamodels as rdm

    try:
        with rdm.open(io.BytesIO(data)) as model:
            model.validate()
            return type(model).__name__
    except Exception as exc:
        raise L5Error(
            f"not a valid Roman ASDF product ({type(exc).__name__}: {str(exc)[:300]})"
        ) from None


def _payload(product: Any, schema: Mapping[str, str] | None) -> tuple[bytes, str, str]:
    """(bytes, file suffix, kind) of a product, validated."""
    from astropy.table import Table

    if isinstance(product, Table):
        from .._parquet import table_bytes

        validate_table(product, schema or {})
        return table_bytes(product), "_cat.parquet", "catalog"
    if isinstance(product, (str, os.PathLike)):
        data = Path(product).read_bytes()
    elif isinstance(product, bytes):
        data = product
    elif hasattr(product, "save") and hasattr(product, "meta"):  # a roman_datamodels model
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "product.asdf"
            product.save(path)
            data = path.read_bytes()
    else:
        raise L5Error(
            f"cannot publish a {type(product).__name__}: give an astropy table, a "
            "roman_datamodels model, an ASDF file path or its bytes"
        )
    return data, ".asdf", validate_asdf(data)


# --------------------------------------------------------------------------- publish / remove
def publish(
    product: Any,
    name: str,
    *,
    licence: str,
    visibility: str = "private",
    team: str | None = None,
    inputs: Sequence[str] = (),
    schema: Mapping[str, str] | None = None,
    description: str = "",
    store: Store | str | None = None,
    registry: Any = None,
    owner: str | None = None,
) -> L5Product:
    """Validate and publish an L5 product (see module docstring); returns where it went.

    ``registry``: the TAP service (``hub_config.tap.service.TapService`` on the server side) that
    publishes its ObsCore row; ``owner`` is set by that server side from the authenticated user.
    """
    from .index import build_index, load_index
    from .obscore import obscore_row

    if visibility not in VISIBILITIES:
        raise L5Error(f"visibility must be one of {VISIBILITIES}, not {visibility!r}")
    if visibility == "team" and not team:
        raise L5Error("a team product needs team=")
    if not licence or not str(licence).strip():
        raise L5Error("an L5 product needs a licence (an SPDX id such as CC-BY-4.0)")
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise L5Error(f"product name {name!r}: letters, digits, '-' and '_' only")
    data, suffix, kind = _payload(product, schema)
    owner = owner or _user()
    store = get_store(store or destination(visibility, team))
    rel = f"{L5_DIR}/{name}{suffix}"
    side = f"{L5_DIR}/{name}{PROVENANCE_SUFFIX}"
    if store.exists(rel) or store.exists(side):
        raise L5Error(
            f"{store.url(rel)} exists: products are never overwritten "
            "(choose another name, or remove the old one first)"
        )
    provenance = {
        "name": name,
        "kind": kind,
        "owner": owner,
        "visibility": visibility,
        "team": team,
        "licence": licence,
        "description": description,
        "inputs": list(inputs),
        "software": software_versions(),
        "environment": current_environment().as_dict(),
        "schema": dict(schema) if schema else None,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    token = uuid.uuid4().hex[:8]
    temps = {
        rel: f"{L5_DIR}/.{name}{suffix}.{token}.tmp",
        side: f"{L5_DIR}/.{name}{PROVENANCE_SUFFIX}.{token}.tmp",
    }
    try:
        store.write_bytes(temps[rel], data)
        store.write_bytes(temps[side], json.dumps(provenance, indent=1).encode())
        for final, tmp in temps.items():
            store.fs.mv(store.path(tmp), store.path(final))
    except BaseException:
        for path in (*temps.values(), rel, side):
            try:
                store.fs.rm(store.path(path))
            except (FileNotFoundError, OSError):
                pass
        raise
    build_index(store, prefix=L5_DIR, progress=False)
    rows = {r["path"]: r for r in load_index(store).to_pylist()}
    if rel not in rows:
        raise L5Error(f"{store.url(rel)} was written but could not be indexed")
    if registry is not None:
        row = obscore_row(
            rows[rel],
            store.url(rel),
            visibility=visibility,
            team=team,
            owner_name=owner,
            licence=licence,
            obs_publisher_did=did(store.url(rel)),
            product_path=store.url(rel),
        )
        try:
            registry.add_product(row)
        except Exception:
            # not registered: take the files back, so nothing is half-published
            for path in (rel, side):
                store.fs.rm(store.path(path))
            build_index(store, prefix=L5_DIR, progress=False)
            raise
    return L5Product(name, store.url(rel), store.root_url, rel, provenance)


def remove(
    product: L5Product,
    *,
    by: str | None = None,
    registry: Any = None,
    admin: bool = False,
    reason: str = "",
) -> None:
    """Remove an L5 product: the owner's or an admin's act, recorded by the registry."""
    from .index import build_index

    by = by or _user()
    owner = product.provenance.get("owner")
    if owner != by and not admin:
        raise L5Error(f"{product.url} belongs to {owner}: only its owner or an admin may remove it")
    if registry is not None:
        registry.remove_product(did(product.url), by=by, admin=admin, reason=reason)
    store = get_store(product.store_url)
    for path in (
        product.path,
        product.path.replace(".asdf", "").replace("_cat.parquet", "") + PROVENANCE_SUFFIX,
    ):
        if store.exists(path):
            store.fs.rm(store.path(path))
    build_index(store, prefix=L5_DIR, progress=False)
