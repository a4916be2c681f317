"""Pydantic models in the API and configuration references: a table of their fields.

autodoc alone shows a model as a constructor signature with every ``Annotated[...]`` spelled out
and its fields as bare attributes, without defaults or constraints. For a configuration file
(the tier policy, the quota settings) the reader needs the key, its type, its default and its
limits: this replaces the signature with nothing and appends that table to the class docstring,
from ``model_fields``, so it cannot drift from the code.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from sphinx.application import Sphinx

_SYMBOLS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel) and obj is not BaseModel


def _type_name(annotation: Any) -> str:
    """``Annotated[list[Annotated[str, ...]], ...]`` -> ``list[str]``; ``X | None`` as written."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if annotation is type(None):
        return "None"
    if origin is not None:
        inner = ", ".join(_type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(annotation, "__name__", str(annotation))


def _constraint(meta: Any) -> str:
    if isinstance(meta, FieldInfo):  # Annotated[str, Field(pattern=..., description=...)]
        return ", ".join(
            [*(_constraint(m) for m in meta.metadata), *filter(None, [meta.description])]
        )
    for attr, symbol in _SYMBOLS.items():
        if getattr(meta, attr, None) is not None:
            return f"{symbol} {getattr(meta, attr)}"
    if getattr(meta, "min_length", None) is not None:
        return f"length ≥ {meta.min_length}"
    if getattr(meta, "max_length", None) is not None:
        return f"length ≤ {meta.max_length}"
    if getattr(meta, "pattern", None) is not None:
        return f"matches {meta.pattern}"
    return str(meta)


def _constraints(field: Any) -> str:
    """The field's own limits and those of the items of a list of constrained values."""
    parts = [_constraint(m) for m in field.metadata]
    for arg in typing.get_args(field.annotation):
        if typing.get_origin(arg) is typing.Annotated:
            parts += [f"each {_constraint(m)}" for m in typing.get_args(arg)[1:]]
    return ", ".join(parts)


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:  # a factory that wants the validated data
            return "(computed)"
    else:
        value = field.default
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        return "(defaults below)"
    return repr(value)


def _cell(text: str) -> str:
    text = " ".join(text.split())
    return f"``{text}``" if text and "``" not in text else text


def field_table(model: type[BaseModel]) -> list[str]:
    lines = [
        "",
        ".. list-table:: Fields",
        "   :header-rows: 1",
        "   :widths: 20 20 15 45",
        "",
        "   * - key",
        "     - type",
        "     - default",
        "     - constraints and notes",
    ]
    for name, field in model.model_fields.items():
        key = field.alias or name
        note = " ".join(filter(None, [_cell(_constraints(field)), field.description or ""]))
        lines += [
            f"   * - ``{key}``",
            f"     - {_cell(_type_name(field.annotation))}",
            f"     - {_cell(_default(field))}",
            f"     - {note}",
        ]
    return [*lines, ""]


def add_fields(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]):
    if what == "class" and _is_model(obj) and obj.model_fields:
        lines.extend(field_table(obj))


def drop_signature(app: Sphinx, what: str, name: str, obj: Any, options: Any, signature, ret):
    if what == "class" and _is_model(obj):
        return "", ret
    return None


def setup(app: Sphinx) -> dict:
    app.connect("autodoc-process-docstring", add_fields)
    app.connect("autodoc-process-signature", drop_signature)
    return {"parallel_read_safe": True, "version": "1"}
