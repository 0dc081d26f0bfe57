"""YAML as a tree of located nodes: composing files, walking mappings, telling scalars apart.

PyYAML's composer keeps a start mark on every node; we read values from nodes (never `yaml.load`) so
that every error can point at `file:line:col`, duplicate keys are seen (a plain load keeps the last one
silently) and YAML 1.1 surprises (`no` read as false) can be told from a real `false`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

# Plain scalars that YAML 1.1 reads as booleans although the author probably meant a word.
YAML11_BOOL_WORDS = frozenset({"yes", "no", "on", "off", "y", "n"})

_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """SafeLoader whose marks carry the display name of the file."""


_CONSTRUCTOR = _Loader("")


@dataclass(frozen=True)
class YamlSyntaxError(Exception):
    message: str
    line: int  # 1-based
    col: int  # 1-based
    hint: str


def compose_text(text: str, name: str) -> yaml.Node | None:
    """Compose one YAML document into a node tree (None for an empty file).

    Raises YamlSyntaxError with the parser's position.
    """
    loader = _Loader(text)
    loader.name = name
    try:
        return loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = exc.problem or "invalid YAML"
        hint = ""
        if exc.context and exc.context_mark:
            hint = f"{exc.context} that starts at line {exc.context_mark.line + 1}: check brackets, quotes and indentation"
        if "found character '\\t'" in problem:
            hint = "YAML does not allow tabs for indentation; use spaces"
        elif not hint:
            hint = "check the indentation and quoting here"
        raise YamlSyntaxError(f"invalid YAML: {problem}", line, col, hint) from None
    except yaml.YAMLError as exc:  # reader errors (bad bytes) have no problem_mark
        raise YamlSyntaxError(f"invalid YAML: {exc}", 1, 1, "the file must be UTF-8 text") from None
    finally:
        loader.dispose()


def is_mapping(node: yaml.Node) -> bool:
    return isinstance(node, yaml.MappingNode)


def is_sequence(node: yaml.Node) -> bool:
    return isinstance(node, yaml.SequenceNode)


def is_scalar(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode)


def scalar_value(node: yaml.Node) -> Any:
    """The Python value of a scalar node, as YAML resolves it (str, int, float, bool, None, date...).

    A scalar YAML cannot construct (a timestamp like 2024-13-01) stays its raw text, so the field's own
    check reports it.
    """
    try:
        return _CONSTRUCTOR.construct_object(node, deep=True)
    except (ValueError, OverflowError, yaml.YAMLError):
        _CONSTRUCTOR.recursive_objects.pop(node, None)
        return node.value


def yaml11_bool_word(node: yaml.Node) -> str | None:
    """The raw word (`no`, `On`) when a plain scalar was read as a boolean from a YAML 1.1 word."""
    if (
        isinstance(node, yaml.ScalarNode)
        and node.tag == _BOOL_TAG
        and node.style is None
        and str(node.value).lower() in YAML11_BOOL_WORDS
    ):
        return str(node.value)
    return None


def describe(value: Any, node: yaml.Node | None = None) -> str:
    """A short type description for messages: 'a string', 'a list', 'the boolean true'."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"a {type(value).__name__}"


def flatten_merges(node: yaml.MappingNode) -> None:
    """Apply `<<: *anchor` merge keys in place (explicit keys win over merged ones)."""
    if any(k.tag == _MERGE_TAG for k, _ in node.value):
        _CONSTRUCTOR.flatten_mapping(node)


@dataclass(frozen=True)
class Pair:
    key: Any  # the key's Python value (usually a str)
    key_node: yaml.Node
    value_node: yaml.Node


def pairs(node: yaml.MappingNode) -> Iterator[Pair]:
    """The key/value pairs of a mapping, after merge keys; duplicates are NOT removed (see duplicates())."""
    flatten_merges(node)
    for k, v in node.value:
        key = scalar_value(k) if isinstance(k, yaml.ScalarNode) else None
        yield Pair(key, k, v)
