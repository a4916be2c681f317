"""YAML that cannot hang a reader or say one thing twice.

Two hazards of plain ``yaml.safe_load`` that the platform meets in files it did not write:

* **Alias expansion** ("billion laughs"): a few hundred bytes of nested anchors and aliases
  expand to billions of nodes once constructed. PyYAML builds the graph lazily, but anything that
  walks it (asdf's tree conversion, ``json.dumps``, a validator) then runs at 100 % CPU for ever.
  :func:`check_limits` walks the *event stream* (linear in the file size, nothing expanded) and
  counts the nodes the document would have after expansion, its size in bytes and the time spent;
  it refuses the document when any of them is over its limit.
* **Duplicate keys**: YAML says keys are unique, PyYAML keeps the last one silently, so a limit
  written twice in a config file means whatever the last copy says. :class:`UniqueKeyLoader`
  refuses them with the line of the second copy.

Only PyYAML is used (libyaml's parser when present), so the hub and the notebook image share it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["YamlLimits", "YamlLimitError", "UniqueKeyLoader", "check_limits", "safe_load"]

_Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlLimitError(ValueError):
    """The document is over one of the limits (its message says which and by how much)."""


@dataclass(frozen=True)
class YamlLimits:
    """Bounds for one document. The defaults are ~100x what the largest Roman product tree or
    platform config needs (a full L2 tree has a few thousand nodes)."""

    max_bytes: int = 64 * 2**20
    max_nodes: int = 2_000_000
    max_seconds: float = 10.0


DEFAULT_LIMITS = YamlLimits()


def check_limits(
    text: str | bytes, limits: YamlLimits = DEFAULT_LIMITS, *, source: str = "YAML"
) -> int:
    """Raise :class:`YamlLimitError` if ``text`` is over ``limits``; return its expanded node count.

    An aliased node counts as many nodes as its anchor expands to, so nested aliases add up the
    way a constructor would multiply them, without anything being built.
    """
    size = len(text)
    if size > limits.max_bytes:
        raise YamlLimitError(f"{source} is {size} bytes, more than the limit of {limits.max_bytes}")
    anchors: dict[str, int] = {}
    stack: list[list[Any]] = [[None, 0]]  # open collections: [anchor, expanded node count]
    deadline = time.monotonic() + limits.max_seconds

    def add(n: int) -> None:
        stack[-1][1] += n
        if stack[-1][1] > limits.max_nodes:
            raise YamlLimitError(
                f"{source} expands to more than {limits.max_nodes} nodes through its aliases "
                "(an alias bomb?)"
            )

    for count, event in enumerate(yaml.parse(text, Loader=_Parser)):
        if isinstance(event, yaml.ScalarEvent):
            if event.anchor:
                anchors[event.anchor] = 1
            add(1)
        elif isinstance(event, yaml.AliasEvent):
            add(anchors.get(event.anchor, 1))
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            stack.append([event.anchor, 1])
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, n = stack.pop()
            if anchor:
                anchors[anchor] = n
            add(n)
        if count % 4096 == 0 and time.monotonic() > deadline:
            raise YamlLimitError(f"{source} took more than {limits.max_seconds} s to parse")
    return stack[0][1]


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with the same key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:
                continue  # unhashable: the base constructor reports it
            if first is not key_node.start_mark:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first on line {first.line + 1})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def safe_load(
    text: str | bytes, limits: YamlLimits = DEFAULT_LIMITS, *, source: str = "YAML"
) -> Any:
    """``yaml.safe_load`` within ``limits`` and without duplicate keys.

    Raises :class:`YamlLimitError` or ``yaml.YAMLError`` (whose marks give the line).
    """
    check_limits(text, limits, source=source)
    return yaml.load(text, Loader=UniqueKeyLoader)
