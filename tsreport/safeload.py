"""Bounded reading of the YAML and JSON files tsreport is given: schema, ``--config``, results.json.

A hostile file must end in a one-line error within seconds and bounded memory, never in a
``RecursionError``, a multi-gigabyte alias expansion or a silently overwritten key. Every
loader here therefore

- refuses a file above its size cap before reading it (and reads at most the cap, so a
  device file or a file that grows while read cannot get past it);
- refuses nesting deeper than ``max_depth`` before the parser can recurse: the YAML
  composer counts its depth as it goes, and JSON text is pre-scanned for bracket depth;
- refuses YAML whose aliases would expand to more than ``max_values`` values (the "billion
  laughs"), and aliases that refer to the collection that holds them;
- refuses duplicate mapping keys (YAML and JSON), naming the key and where it is;
- reports syntax errors as one line, ``FILE:LINE:COLUMN: what``.

Errors are raised as the caller's exception class (a schema error, a usage error for
``--config``...), except the size/depth/alias limits, which are always bad input (exit 3).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode

from tsreport.exceptions import InputError, TsReportError

_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"
#: Above this many characters a YAML integer is refused: base-60 integers ("1:2:3") of a
#: megabyte take minutes to convert, and no schema or config holds such a number.
_MAX_INT_CHARS = 100
#: Texts longer than this are not re-scanned in pure Python just to locate an error.
_LOCATE_MAX_CHARS = 20_000_000


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one kind of file may cost to load.

    ``max_bytes``: the file size cap, checked before reading; ``max_depth``: nesting levels of
    lists and mappings (the document itself is level 1); ``max_values``: YAML values after
    expanding aliases (every scalar, list and mapping counts one).
    """

    max_bytes: int
    max_depth: int = 100
    max_values: int = 1_000_000


SCHEMA_LIMITS = Limits(max_bytes=1_000_000)
CONFIG_LIMITS = Limits(max_bytes=1_000_000)
RESULTS_LIMITS = Limits(max_bytes=200_000_000)

SyntaxMessage = Callable[[Path, "int | None", "int | None", str], str]


class _Refusal(Exception):
    """Raised inside the loaders; turned into the caller's error class at the boundary below."""

    def __init__(self, message: str, mark: Any = None, *, limit: bool = False, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark  # a yaml Mark (0-based line/column), or None
        self.limit = limit
        self.hint = hint


# ---------------------------------------------------------------- reading


def _megabytes(count: int) -> str:
    return f"{count / 1_000_000:g} MB"


def read_text(path: str | Path, *, role: str, limits: Limits, error: type[TsReportError]) -> str:
    """Read a UTF-8 text file of at most ``limits.max_bytes`` bytes (checked before reading)."""
    path = Path(path)
    limit_error = _limit_error(error)
    too_big = (
        f"{path} is larger than {_megabytes(limits.max_bytes)}, the most a {role} may be; "
        "it is refused unread. Check that this is the right file."
    )
    try:
        if path.stat().st_size > limits.max_bytes:
            raise limit_error(too_big)
        with path.open("rb") as stream:
            data = stream.read(limits.max_bytes + 1)  # at most the cap, even from a device or a growing file
    except OSError as os_error:
        raise error(f"Cannot read {role} {path}: {os_error.strerror or os_error}.") from None
    if len(data) > limits.max_bytes:
        raise limit_error(too_big)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as decode_error:
        line, column = _line_column(data, decode_error.start)
        raise error(f"{path}:{line}:{column}: the {role} is not UTF-8 text; save it as UTF-8.") from None


def _limit_error(error: type[TsReportError]) -> type[TsReportError]:
    """Limits are bad input (exit 3) whatever the file; keep the caller's class when it is one."""
    return error if issubclass(error, InputError) else InputError


def _line_column(text: str | bytes, offset: int) -> tuple[int, int]:
    newline = "\n" if isinstance(text, str) else b"\n"
    line = text.count(newline, 0, offset) + 1
    column = offset - (text.rfind(newline, 0, offset) + 1) + 1
    return line, column


def default_syntax_message(role: str, language: str) -> SyntaxMessage:
    """``FILE:LINE:COLUMN: what; the ROLE is not valid LANGUAGE.`` (one line)."""

    def message(path: Path, line: int | None, column: int | None, what: str) -> str:
        where = f"{path}:{line}:{column}" if line is not None else f"{path}"
        return f"{where}: {what}; the {role} is not valid {language}."

    return message


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _show_key(key: Any) -> str:
    text = repr(key)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------- YAML


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that counts depth and alias-expanded values, and refuses duplicate keys.

    The pure-Python loader is used on purpose: the C loader composes nodes recursively in C
    (no depth control), and the files read here are small.
    """

    limits: Limits = SCHEMA_LIMITS

    def __init__(self, stream: str, limits: Limits) -> None:
        super().__init__(stream)
        self.limits = limits
        self._depth = 0  # nesting level of the node being composed (the document's root is 1)
        self._deepest = 0  # deepest level reached, aliases expanded
        self._values = 0  # values composed so far, aliases expanded
        self._expanded: dict[int, tuple[int, int]] = {}  # id(anchored node) -> (values, height)

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(AliasEvent):
            return self._compose_alias(parent, index)
        event = self.peek_event()
        level = self._depth + 1
        if level > self.limits.max_depth:
            raise _Refusal(self._too_deep(), event.start_mark, limit=True)
        self._count(1, event.start_mark)
        values_before, deepest_before = self._values, self._deepest
        self._depth, self._deepest = level, level
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth = level - 1
        subtree_deepest = self._deepest
        self._deepest = max(deepest_before, subtree_deepest)
        if event.anchor is not None:  # what each alias to it will cost
            self._expanded[id(node)] = (self._values - values_before + 1, subtree_deepest - level + 1)
        return node

    def _compose_alias(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        node = super().compose_node(parent, index)  # the anchored node (or PyYAML's undefined-alias error)
        if id(node) not in self._expanded:
            raise _Refusal(
                f"the alias *{event.anchor} refers to the collection that contains it; "
                "recursive values are not allowed",
                event.start_mark,
            )
        values, height = self._expanded[id(node)]
        deepest = self._depth + height  # the alias stands at level depth + 1
        if deepest > self.limits.max_depth:
            raise _Refusal(self._too_deep(" once its aliases are expanded"), event.start_mark, limit=True)
        self._deepest = max(self._deepest, deepest)
        self._count(values, event.start_mark)
        return node

    def _count(self, values: int, mark: Any) -> None:
        self._values += values
        if self._values > self.limits.max_values:
            raise _Refusal(
                f"YAML aliases expand to more than {self.limits.max_values:,} values (an alias bomb?)",
                mark,
                limit=True,
                hint=" Write the values out instead of nesting aliases.",
            )

    def _too_deep(self, how: str = "") -> str:
        return f"nested more than {self.limits.max_depth} levels deep{how}"

    def compose_mapping_node(self, anchor: str | None) -> MappingNode:
        node = super().compose_mapping_node(anchor)
        first: dict[Any, Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue  # merged keys (<<) may be overridden; complex keys are PyYAML's to refuse
            key = self.construct_object(key_node)
            try:
                earlier = first.get(key)
            except TypeError:  # unhashable: left to PyYAML's own error
                continue
            if earlier is not None:
                raise _Refusal(
                    f"duplicate key {_show_key(key)} (first at line {earlier.start_mark.line + 1})", key_node.start_mark
                )
            first[key] = key_node
        return node

    def construct_yaml_int(self, node: ScalarNode) -> int:
        if len(node.value) > _MAX_INT_CHARS:
            raise ConstructorError(
                None, None, f"an integer of {len(node.value):,} characters is not a usable number", node.start_mark
            )
        return super().construct_yaml_int(node)


_BoundedLoader.add_constructor(_INT_TAG, _BoundedLoader.construct_yaml_int)


def parse_yaml(
    text: str,
    path: str | Path,
    *,
    role: str,
    limits: Limits,
    error: type[TsReportError],
    syntax: SyntaxMessage | None = None,
) -> Any:
    """Parse YAML ``text`` read from ``path`` within ``limits`` (see the module docstring)."""
    path = Path(path)
    syntax = syntax or default_syntax_message(role, "YAML")
    loader = None
    try:
        loader = _BoundedLoader(text, limits)  # the reader checks every character here
        return loader.get_single_data()
    except _Refusal as refusal:
        line, column = (refusal.mark.line + 1, refusal.mark.column + 1) if refusal.mark else (None, None)
        if refusal.limit:
            where = f"{path}:{line}:{column}" if line is not None else str(path)
            raise _limit_error(error)(f"{where}: {refusal.message}; the {role} is refused.{refusal.hint}") from None
        raise error(syntax(path, line, column, refusal.message)) from None
    except yaml.MarkedYAMLError as yaml_error:
        mark = yaml_error.problem_mark or yaml_error.context_mark
        what = _one_line(yaml_error.problem or yaml_error.context or "invalid YAML")
        if yaml_error.context and yaml_error.problem:
            what = f"{what} ({_one_line(yaml_error.context)})"
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise error(syntax(path, line, column, what)) from None
    except yaml.reader.ReaderError as reader_error:  # a control character
        line, column = _line_column(text, reader_error.position)
        what = f"unacceptable character #x{reader_error.character:04X}: control characters are not allowed"
        raise error(syntax(path, line, column, what)) from None
    except yaml.YAMLError as yaml_error:
        raise error(syntax(path, None, None, _one_line(str(yaml_error)))) from None
    except (ValueError, OverflowError) as value_error:  # a value the constructors cannot build
        raise error(syntax(path, None, None, _one_line(str(value_error)))) from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml(
    path: str | Path, *, role: str, limits: Limits, error: type[TsReportError], syntax: SyntaxMessage | None = None
) -> Any:
    """Read and parse a YAML file within ``limits``; errors are one line, raised as ``error``."""
    text = read_text(path, role=role, limits=limits, error=error)
    return parse_yaml(text, path, role=role, limits=limits, error=error, syntax=syntax)


# ---------------------------------------------------------------- JSON

# A JSON string token (escapes included) or a bracket: what the depth pre-scan needs to see.
_JSON_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_JSON_STRING_BYTES = re.compile(_JSON_STRING.encode(), re.DOTALL)
_JSON_TOKEN = re.compile(_JSON_STRING + r"|[\[\]{}]", re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_CHUNK = 1 << 20


def _json_max_depth(text: str, max_depth: int) -> int:
    """The deepest bracket nesting of JSON ``text`` outside strings, in C/numpy time and bounded memory.

    Returns at most the number of opening brackets when that is within ``max_depth``.
    """
    data = text.encode("utf-8")
    opening = data.count(b"[") + data.count(b"{")
    if opening <= max_depth:
        return opening
    brackets = _JSON_STRING_BYTES.sub(b"", data).translate(None, _NOT_BRACKETS)
    del data
    deepest, depth = 0, 0
    for start in range(0, len(brackets), _CHUNK):
        chunk = np.frombuffer(brackets, dtype=np.uint8, count=min(_CHUNK, len(brackets) - start), offset=start)
        steps = np.where((chunk == ord("[")) | (chunk == ord("{")), 1, -1).astype(np.int64)
        levels = depth + np.cumsum(steps)
        deepest = max(deepest, int(levels.max()))
        depth = int(levels[-1])
    return deepest


def _json_too_deep_at(text: str, max_depth: int) -> int | None:
    """Offset of the first bracket beyond ``max_depth`` (pure Python: only run once it is known to exist)."""
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                return match.start()
        elif token in "]}":
            depth -= 1
    return None


def _json_int(digits: str) -> int:
    if len(digits) > _MAX_INT_CHARS:
        raise ValueError(f"an integer of {len(digits):,} digits is not a usable number")
    return int(digits)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _locate_duplicate(text: str, key: str) -> tuple[int, int] | None:
    """Offsets of the first and the second ``key`` of one JSON object in ``text`` (pure Python; error path only).

    Walks the tokens, keeping each open object's keys (and where they are) at its own level.
    """
    stack: list[dict[str, int] | None] = []  # per open bracket: an object's keys and offsets, None for an array
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            stack.append({} if token == "{" else None)
        elif token in "]}":
            if stack:
                stack.pop()
        elif stack and stack[-1] is not None and re.match(r"\s*:", text[match.end() : match.end() + 64]):
            name = json.loads(token)
            if name == key and name in stack[-1]:
                return stack[-1][name], match.start()
            stack[-1].setdefault(name, match.start())
    return None


def parse_json(
    text: str,
    path: str | Path,
    *,
    role: str,
    limits: Limits,
    error: type[TsReportError],
    syntax: SyntaxMessage | None = None,
) -> Any:
    """Parse JSON ``text`` read from ``path``: depth pre-scanned, duplicate keys refused, one-line errors."""
    path = Path(path)
    syntax = syntax or default_syntax_message(role, "JSON")
    if _json_max_depth(text, limits.max_depth) > limits.max_depth:
        offset = _json_too_deep_at(text, limits.max_depth) if len(text) <= _LOCATE_MAX_CHARS else None
        where = f"{path}:{':'.join(map(str, _line_column(text, offset)))}" if offset is not None else str(path)
        raise _limit_error(error)(f"{where}: nested more than {limits.max_depth} levels deep; the {role} is refused.")
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicates, parse_int=_json_int)
    except _DuplicateKey as duplicate:
        found = _locate_duplicate(text, duplicate.key) if len(text) <= _LOCATE_MAX_CHARS else None
        what = f"duplicate key {_show_key(duplicate.key)}"
        if found is None:
            raise error(syntax(path, None, None, what)) from None
        first, second = (_line_column(text, offset) for offset in found)
        raise error(syntax(path, *second, f"{what} (first at line {first[0]}, column {first[1]})")) from None
    except json.JSONDecodeError as json_error:
        raise error(syntax(path, json_error.lineno, json_error.colno, json_error.msg)) from None
    except RecursionError:  # cannot happen below max_depth; kept so that it can never escape
        raise _limit_error(error)(f"{path}: nested too deeply; the {role} is refused.") from None
    except ValueError as value_error:  # e.g. an integer of more than 4300 digits
        raise error(syntax(path, None, None, _one_line(str(value_error)))) from None


def load_json(
    path: str | Path, *, role: str, limits: Limits, error: type[TsReportError], syntax: SyntaxMessage | None = None
) -> Any:
    """Read and parse a JSON file within ``limits``; errors are one line, raised as ``error``."""
    text = read_text(path, role=role, limits=limits, error=error)
    return parse_json(text, path, role=role, limits=limits, error=error, syntax=syntax)
