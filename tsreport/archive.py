"""What a model file holds, read from its zip directory and its metadata: before any torch loader runs.

Two jobs, both done before ``torch.jit.load``, ``torch.export.load`` or ``torch.load`` sees the file:

**Bounded work** (:func:`check_model_file`). torch stores tensor data uncompressed
(``ZIP_STORED``; only TorchScript's small code files are deflated), and its zip reader (miniz)
inflates whatever the central
directory declares. So the directory, read without inflating anything, is where a hostile
file is stopped: the file's size on disk, the number of members and their total declared
uncompressed size are capped (``--max-model-size``), duplicate member names are refused (two
readers could pick different ones), and a compressed member with a zip bomb's ratio is refused
outright. Declared sizes are an upper bound for both readers: neither inflates past them.

**No code without --trust-model** (:func:`audit_export`). ``torch.export.load`` is not a safe
loader. Reading torch 2.13's own source (``torch/export/__init__.py``,
``torch/export/pt2_archive/_package.py``, ``torch/_export/serde/serialize.py``,
``torch/export/_unlift.py``), a ``.pt2`` runs code from the file along these paths, each of
which :func:`audit_export` refuses from the archive's metadata alone:

1. a weight or tensor constant whose payload config says ``use_pickle``:
   ``torch.load(..., weights_only=False)``;
2. a constant stored as ``opaque_obj_*``: ``pickle.loads``;
3. ``data/sample_inputs/*.pt`` (and the legacy ``data/weights/<model>.pt``,
   ``data/constants/<model>.pt`` and pre-2.8 ``serialized_*`` members): ``deserialize_torch_artifact``
   tries ``weights_only=True`` and, on any failure, unpickles again with ``weights_only=False``;
   a member that the weights-only unpickler refuses is therefore refused here;
4. ``data/aotinductor/``: compiled native libraries that ``load_pt2`` loads;
5. ``guards_code`` in ``models/<model>.json``: pasted into Python source and ``exec``-ed by
   ``ExportedProgram.module()``, then run on every forward;
6. symbolic shape expressions (``expr_str``): parsed with ``sympy.sympify``, which ``eval``-s them;
7. names (parameter and buffer FQNs, node and argument names...): pasted unescaped into the
   Python source that FX generates for the graph module (``getattr(self, "<name>")``), and a
   string input's value into a guard (``== '<value>'``);
8. node targets: resolved by ``getattr`` on ``torch``, ``operator`` and ``math``; torch's verifier
   then allows operators and a few builtins. Checked here too, and the operators that write
   files (``aten.save``, ``aten.from_file``) are refused: they are "the model running", but
   running it must not write the user's files.

Constants stored as ``custom_obj_*`` are read by ``torch._C._pickle_load_obj``, torch's restricted
C++ unpickler (the one ``torch.jit.load`` uses, see :func:`script_file_writes`), and are allowed.
Every other member is read as raw bytes or parsed as JSON.
"""

from __future__ import annotations

import ast
import io
import json
import math
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from tsreport.exceptions import ModelLoadError

#: Default cap on a model file's size on disk and on its members' total uncompressed size.
DEFAULT_MAX_MODEL_SIZE = 2 * 1024**3
#: A compressed member that inflates more than this many times its stored size ...
BOMB_RATIO = 100
#: ... to more than this many bytes is a zip bomb (small text members compress well: ignore them).
BOMB_MIN_BYTES = 8 * 1024**2
#: More zip members than any model file needs (a large model has a few thousand tensors).
MAX_MEMBERS = 100_000

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}  # fmt: skip

TRUST_HINT = "pass --trust-model only if you trust the file's author"


def parse_size(value: Any) -> int:
    """``500MB``, ``4GiB``, ``1.5 GB`` or plain bytes (an int or digits) -> bytes. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        number, unit = float(value), ""
    else:
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
        if not match or match.group(2).lower() not in _UNITS:
            raise ValueError(value)
        number, unit = float(match.group(1)), match.group(2).lower()
    size = int(number * _UNITS[unit])
    if size < 1:
        raise ValueError(value)
    return size


def format_size(size: int) -> str:
    """Bytes as a short binary-unit text: ``1.0 GiB``, ``512 KiB``, ``37 bytes``."""
    if size < 1024:
        return f"{size} bytes"
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{size} bytes"  # pragma: no cover


def _suggest(size: int) -> str:
    """A --max-model-size value comfortably above ``size``."""
    return f"{max(1, math.ceil(size * 1.25 / 1024**3))}GiB"


def _over_limit(path: Path, what: str, size: int, limit: int) -> ModelLoadError:
    return ModelLoadError(
        f"Model file {path} {what}, above the model size limit of {format_size(limit)}: refused before reading "
        f"it. If the model really is that large, raise the limit, e.g. --max-model-size {_suggest(size)}."
    )


# ---------------------------------------------------------------- the zip directory


def _end_record(handle: BinaryIO) -> tuple[int, int] | None:
    """(member count, central directory bytes) from the end record, or None when there is none.

    Uses ``zipfile._EndRecData`` (private, unchanged since Python 2): it reads only the end of
    the file, so a directory of millions of entries is refused before Python builds one
    ``ZipInfo`` per entry.
    """
    reader = getattr(zipfile, "_EndRecData", None)
    if reader is None:  # pragma: no cover - a future Python; ZipFile still parses the directory
        return None
    record = reader(handle)
    if not record:
        return None
    return int(record[zipfile._ECD_ENTRIES_TOTAL]), int(record[zipfile._ECD_SIZE])


def check_zip_directory(source: str | Path | BinaryIO, label: str, max_size: int) -> list[zipfile.ZipInfo]:
    """The members of a zip whose directory promises bounded work; ModelLoadError otherwise.

    ``label`` names the file (or "member X of file Y" for a zip inside a zip) in messages.
    Raises ``zipfile.BadZipFile`` when the directory cannot be read (the caller words that).
    """
    handle: BinaryIO = open(source, "rb") if isinstance(source, (str, Path)) else source  # noqa: SIM115
    try:
        end = _end_record(handle)
        if end is not None and (end[0] > MAX_MEMBERS or end[1] > 64 * MAX_MEMBERS + 1024**2):
            raise ModelLoadError(
                f"{label} lists {end[0]} zip members in a {format_size(end[1])} directory, more than the "
                f"{MAX_MEMBERS} any model file needs: it is not a model torch saved. Save the model again "
                "with torch.jit.save, torch.export.save or torch.save."
            )
        handle.seek(0)
        with zipfile.ZipFile(handle) as archive:
            infos = archive.infolist()
    finally:
        if handle is not source:
            handle.close()
    seen: set[str] = set()
    for info in infos:
        # torch's reader (miniz) may match names without regard to case or slash direction: two
        # such members could be read differently by torch and by the checks below.
        key = info.filename.replace("\\", "/").lower()
        if key in seen:
            raise ModelLoadError(
                f"{label} holds the zip member '{info.filename}' twice: torch never writes that, and two "
                "readers could pick different copies. Save the model again with torch."
            )
        seen.add(key)
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > BOMB_MIN_BYTES:
            ratio = info.file_size / max(1, info.compress_size)
            if ratio > BOMB_RATIO:
                raise ModelLoadError(
                    f"{label} is a zip bomb: its member '{info.filename}' would inflate from "
                    f"{format_size(info.compress_size)} to {format_size(info.file_size)} ({ratio:.0f}:1), while "
                    "torch stores tensors uncompressed; refused before inflating anything (--max-model-size does not "
                    "lift this). Save the model again with torch.jit.save, torch.export.save or torch.save."
                )
    total = sum(info.file_size for info in infos)
    if total > max_size:
        largest = max(infos, key=lambda info: info.file_size)
        raise ModelLoadError(
            f"{label} would inflate to {format_size(total)} ({len(infos)} zip members, the largest "
            f"'{largest.filename}' at {format_size(largest.file_size)}), above the model size limit of "
            f"{format_size(max_size)}: refused before inflating anything. If the model really is that large, "
            f"raise the limit, e.g. --max-model-size {_suggest(total)}."
        )
    return infos


def check_model_file(path: Path, max_size: int) -> list[zipfile.ZipInfo] | None:
    """Check the file's size and, for a zip, its directory; return its members (None: not a zip).

    Raises ModelLoadError for a file over ``max_size``, a zip bomb, or a damaged zip.
    """
    size = path.stat().st_size
    if size > max_size:
        raise _over_limit(path, f"is {format_size(size)}", size, max_size)
    if not zipfile.is_zipfile(path):
        return None
    try:
        return check_zip_directory(path, f"Model file {path}", max_size)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise ModelLoadError(
            f"Model file {path} is a damaged zip archive (truncated?); save the model again."
        ) from None


def leaf(name: str) -> str:
    """A member's name inside torch's archive folder (torch prefixes every member with one)."""
    return name.replace("\\", "/").split("/", 1)[-1]


# ---------------------------------------------------------------- torch.export archives

# Targets the torch 2.13 verifier allows besides torch.ops operators (torch/_export/verifier.py),
# as the serializer writes them.
_BUILTIN_TARGETS = {
    *(f"_operator.{name}" for name in (
        "getitem", "add", "mul", "sub", "truediv", "ge", "le", "gt", "lt", "eq", "ne", "floordiv", "mod",
        "and_", "or_", "not_", "pow", "neg", "pos", "abs", "lshift", "rshift",
    )),
    "math.ceil", "math.floor", "math.trunc", "math.sqrt",
    *(f"torch.{name}" for name in (
        "sym_int", "sym_float", "sym_ite", "sym_max", "sym_min", "sym_not", "sym_sqrt", "sym_sum", "_sym_sqrt",
    )),
    "torch._C._set_grad_enabled", "torch.autograd.grad_mode.set_grad_enabled",
    "torch.amp.autocast_mode._enter_autocast", "torch.amp.autocast_mode._exit_autocast",
    "torch.export.custom_ops._call_custom_autograd_function_in_pre_dispatch",
}  # fmt: skip
_OP_TARGET = re.compile(r"torch\.ops\.[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
#: Operators whose job is to read or write files named by the graph.
FILE_OPS = ("save", "from_file")

#: A name FX or the guards may paste into Python source: dotted words, no quotes or brackets.
_NAME = re.compile(r"[A-Za-z0-9_.]*")
#: JSON keys whose strings are free text that torch only stores or displays.
_FREE_TEXT = {"stack_trace", "nn_module_stack", "torch_fn", "torch_version", "custom", "metadata"}

# Functions a symbolic shape expression may call (sympy core and torch.utils._sympy.functions).
_SYMPY_CALLS = {
    "Symbol", "Integer", "Float", "Rational", "Add", "Mul", "Pow", "Max", "Min", "Mod", "Abs", "Eq", "Ne", "Lt",
    "Le", "Gt", "Ge", "And", "Or", "Not", "floor", "ceiling", "sqrt", "Piecewise", "ITE", "StrictLessThan",
    "LessThan", "StrictGreaterThan", "GreaterThan", "Equality", "Unequality",
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv",
    "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat",
    "Identity",
}  # fmt: skip
_SYMPY_NAMES = {"oo", "zoo", "nan", "true", "false", "pi", "E", "I"}
#: Calls whose second argument must be a small integer: sympy and Python compute them exactly.
_POWERS = {"Pow", "PowByNatural", "FloatPow", "LShift"}
# What a shape guard may use (torch/export/_unlift.py runs them with sympy's and math's names).
_GUARD_CALLS = {"Max", "Min", "Abs", "Eq", "Ne", "Mod", "FloorDiv", "CeilDiv", "PythonMod", "IntTrueDiv",
                "FloatTrueDiv", "TruncToInt", "FloorToInt", "CeilToInt", "RoundToInt", "max", "min", "abs"}  # fmt: skip
_GUARD_METHODS = {"size", "stride", "storage_offset", "dim", "numel"}
_MATH_ATTRS = {"floor", "ceil", "trunc", "isnan", "isinf", "inf", "sqrt"}
_MAX_EXPRESSION_CHARS = 10_000
_MAX_CONSTANT = 2**63
_MAX_EXPONENT = 64


class _Unsafe(Exception):
    """An expression that is more than a plain arithmetic expression."""


def _short(text: str, limit: int = 80) -> str:
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _check_expression(text: str, *, guard: bool) -> None:
    """Raise _Unsafe unless ``text`` is a plain arithmetic expression of the allowed kind.

    Shape expressions (``guard=False``) may call the sympy/torch functions of ``_SYMPY_CALLS`` on
    symbols and numbers; guards (``guard=True``) compare ``L['x'].size()[0]``-like values.
    Nothing else parses: no attribute access (but ``.size()`` in a guard and ``math.floor``),
    no subscripts outside a guard's input path, no strings but names, no big powers (sympy and
    Python would compute them exactly: bounded work too), no comments or line breaks (the text
    is pasted into generated source).
    """
    if len(text) > _MAX_EXPRESSION_CHARS or any(c in text for c in "#\\\n\r;"):
        raise _Unsafe
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise _Unsafe from None
    # A stack, not recursion: a deeply nested expression must not exhaust Python's stack.
    stack: list[ast.AST] = [tree.body]
    while stack:
        node = stack.pop()
        check = _NODE_CHECKS.get(type(node))  # ast.parse builds these exact classes, never subclasses
        if check is None:
            raise _Unsafe
        stack += check(node, guard)


def _small_integer(node: ast.AST) -> bool:
    """Whether ``node`` is an integer literal of at most ``_MAX_EXPONENT``, signed or wrapped in ``Integer(...)``."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Integer":
        node = node.args[0] if len(node.args) == 1 and not node.keywords else node
    return isinstance(node, ast.Constant) and type(node.value) is int and abs(node.value) <= _MAX_EXPONENT


def _tensor_path(node: ast.AST) -> bool:
    """Whether ``node`` is an input path as a guard writes one: ``L['x'][0]``..., word or integer keys only."""
    while isinstance(node, ast.Subscript):
        key = node.slice
        if not (
            isinstance(key, ast.Constant) and isinstance(key.value, (str, int)) and not isinstance(key.value, bool)
        ):
            return False
        if isinstance(key.value, str) and not re.fullmatch(r"[A-Za-z0-9_]+", key.value):
            return False
        node = node.value
    return isinstance(node, ast.Name) and node.id == "L"


def _check_constant(node: ast.Constant, guard: bool) -> list[ast.AST]:
    """A literal: True/False/None, or a number of at most ``_MAX_CONSTANT`` (or infinite); never a string here."""
    value = node.value
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        if abs(value) > _MAX_CONSTANT and not (isinstance(value, float) and math.isinf(value)):
            raise _Unsafe
        return []
    raise _Unsafe  # strings only as a call's arguments, in _call_arguments


def _check_name(node: ast.Name, guard: bool) -> list[ast.AST]:
    """A bare name: ``L`` or ``inf`` in a guard; a sympy constant or a symbol such as ``s0`` in a shape."""
    if guard and node.id not in ("L", "inf"):
        raise _Unsafe
    if not guard and not (node.id in _SYMPY_NAMES or re.fullmatch(r"[a-z]+[0-9]+", node.id)):
        raise _Unsafe
    return []


def _check_binary(node: ast.BinOp, guard: bool) -> list[ast.AST]:
    """Arithmetic (+ - * / // % **), a power only to a small integer exponent."""
    if isinstance(node.op, ast.Pow) and not _small_integer(node.right):
        raise _Unsafe
    if not isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)):
        raise _Unsafe
    return [node.left, node.right]


def _check_unary(node: ast.UnaryOp, guard: bool) -> list[ast.AST]:
    """A sign or ``not``; no bit inversion."""
    if not isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        raise _Unsafe
    return [node.operand]


def _check_boolean(node: ast.BoolOp, guard: bool) -> list[ast.AST]:
    """``and`` / ``or``: allowed, their operands checked in turn."""
    return list(node.values)


def _check_comparison(node: ast.Compare, guard: bool) -> list[ast.AST]:
    """Comparisons by value (== != < <= > >=); no ``is`` or ``in``."""
    if not all(isinstance(op, (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)) for op in node.ops):
        raise _Unsafe
    return [node.left, *node.comparators]


def _check_subscript(node: ast.Subscript, guard: bool) -> list[ast.AST]:
    """In a guard only: ``x.size()[0]`` (a call indexed by a small integer) or a bare input path ``L['x'][0]``."""
    if not guard:
        raise _Unsafe
    if isinstance(node.value, ast.Call):
        if not _small_integer(node.slice):
            raise _Unsafe
        return [node.value]
    if not _tensor_path(node):
        raise _Unsafe
    return []


def _check_call(node: ast.Call, guard: bool) -> list[ast.AST]:
    """A guard's ``.size()``-like method on an input path, or an allowed function (powers: small exponents)."""
    func = node.func
    if guard and isinstance(func, ast.Attribute) and func.attr in _GUARD_METHODS:
        if node.args or node.keywords or not _tensor_path(func.value):
            raise _Unsafe
        return []
    name = _callee_name(func, guard)
    if name in _POWERS and (len(node.args) != 2 or not _small_integer(node.args[1])):
        raise _Unsafe
    return _call_arguments(node, guard)


def _callee_name(func: ast.expr, guard: bool) -> str:
    """The called function's name: one of the allowed calls, or ``math.<attr>`` in a guard; else raise _Unsafe."""
    if guard and isinstance(func, ast.Attribute):
        if not (isinstance(func.value, ast.Name) and func.value.id == "math" and func.attr in _MATH_ATTRS):
            raise _Unsafe
        return func.attr
    if not isinstance(func, ast.Name) or func.id not in (_GUARD_CALLS if guard else _SYMPY_CALLS):
        raise _Unsafe
    return func.id


def _call_arguments(node: ast.Call, guard: bool) -> list[ast.AST]:
    """A call's arguments left to check: keywords only named, with literal values; strings only as a shape's names."""
    children: list[ast.AST] = []
    for keyword in node.keywords:
        if keyword.arg is None or not isinstance(keyword.value, ast.Constant):
            raise _Unsafe
        children.append(keyword.value)
    for argument in node.args:
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            if guard or not re.fullmatch(r"[A-Za-z0-9_.+\-]{1,100}", argument.value):
                raise _Unsafe
            continue  # Symbol('s0'), Float('1.5')
        children.append(argument)
    return children


def _check_attribute(node: ast.Attribute, guard: bool) -> list[ast.AST]:
    """Attribute access outside a call: only ``math.inf``, in a guard."""
    if not (guard and isinstance(node.value, ast.Name) and node.value.id == "math" and node.attr == "inf"):
        raise _Unsafe
    return []


#: The check of each node kind an expression may hold: it raises _Unsafe, or returns the children to check.
#: Any other kind (lambda, list, attribute chain, f-string...) is refused.
_NODE_CHECKS: dict[type[ast.AST], Callable[[Any, bool], list[ast.AST]]] = {
    ast.Constant: _check_constant,
    ast.Name: _check_name,
    ast.BinOp: _check_binary,
    ast.UnaryOp: _check_unary,
    ast.BoolOp: _check_boolean,
    ast.Compare: _check_comparison,
    ast.Subscript: _check_subscript,
    ast.Call: _check_call,
    ast.Attribute: _check_attribute,
}


def _target_problem(target: Any) -> str | None:
    """Why a node target (or an operator argument) is refused, or None."""
    if not isinstance(target, str):
        return "is not an operator name"
    if target in _BUILTIN_TARGETS:
        return None
    if not _OP_TARGET.fullmatch(target) or "__" in target:
        return "is not a torch operator"
    parts = target.split(".")
    if parts[2] == "aten" and parts[3] in FILE_OPS:
        return "writes or maps files named by the graph"
    return None


def _spec_keys(spec: Any) -> Iterator[str]:
    """Every string key in a serialized pytree spec (its contexts are JSON inside JSON)."""
    stack = [spec]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            context = item.get("context")
            if isinstance(context, str):
                try:
                    stack.append(json.loads(context))
                except (ValueError, RecursionError):
                    yield context
            stack += [v for k, v in item.items() if k != "context"]
        elif isinstance(item, list):
            stack += item
        elif isinstance(item, str) and item is not spec:
            yield item


def _program_problem(document: Any) -> str | None:
    """Why a serialized ExportedProgram (``models/<name>.json``) would run code, or None."""
    stack: list[tuple[str | None, Any]] = [(None, document)]
    while stack:
        key, value = stack.pop()
        if isinstance(value, dict):
            if key in _FREE_TEXT:
                if key == "metadata":  # source_fn_stack targets are resolved by getattr
                    source = value.get("source_fn_stack")
                    if isinstance(source, str):
                        for item in source.split(";"):
                            target = item.split(",")[-1]
                            if "__" in target or not _NAME.fullmatch(target):
                                return f"its node metadata names the function {_short(target)}, not a torch name"
                continue
            stack += reversed(value.items())  # in document order: the first problem is reported
            continue
        if isinstance(value, list):
            stack += [(key, item) for item in reversed(value)]
            continue
        if not isinstance(value, str) or key in _FREE_TEXT:
            continue
        if key in ("target", "as_operator"):
            problem = _target_problem(value)
            if problem:
                return f"its graph calls {_short(value)}, which {problem}"
        elif key == "expr_str":
            try:
                _check_expression(value, guard=False)
            except _Unsafe:
                return (
                    f"its symbolic shape {_short(value)} is not a plain expression (torch parses it with "
                    "sympy, which evaluates it as Python)"
                )
        elif key == "guards_code":
            try:
                _check_expression(value, guard=True)
            except _Unsafe:
                return f"its shape guard {_short(value)} is not a plain comparison (torch runs guards as Python code)"
        elif key in ("in_spec", "out_spec"):
            try:
                spec = json.loads(value)
            except (ValueError, RecursionError):
                continue  # torch cannot read it either
            for name in _spec_keys(spec):
                if not _NAME.fullmatch(name):
                    return f"its input/output structure names {_short(name)}, not a plain name"
        elif key == "as_string":
            if any(c in value for c in "'\"\\\n\r"):
                return f"a string in its graph, {_short(value)}, holds quotes (torch pastes it into guard code)"
        elif not _NAME.fullmatch(value):
            return f"its {key} {_short(value)} is not a plain dotted name (torch pastes names into generated code)"
    return None


def _weights_only_problem(raw: bytes) -> str | None:
    """Why torch would fall back to unpickling ``raw`` in full, or None when weights-only reads it.

    The same call as torch's first try (``torch.load(buffer, weights_only=True)``, no map_location),
    so it succeeds exactly when torch's does and torch never reaches its fallback.
    """
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.load(io.BytesIO(raw), weights_only=True)
    except Exception as error:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
        needed = re.search(r"GLOBAL ([A-Za-z0-9_.]+)", text)
        if needed:
            what = f"a pickle that needs the Python global {needed.group(1)}"
        else:
            first = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
            what = f"a pickle that the weights-only unpickler cannot read ({first[:120].rstrip('.')})"
        return f"is {what}, which torch.export.load then unpickles in full (weights_only=False)"
    return None


#: Members of the pre-2.8 layout that torch.export.load still reads (via deserialize_torch_artifact)
#: when the current layout fails to load.
_LEGACY_ARTIFACTS = {
    "serialized_state_dict.json", "serialized_constants.json", "serialized_state_dict.pt", "serialized_constants.pt",
    "serialized_example_inputs.pt",
}  # fmt: skip


def _names(info: zipfile.ZipInfo) -> tuple[str, str]:
    """(name inside torch's archive folder, whole name), lower case: torch's reader may ignore case."""
    whole = info.filename.replace("\\", "/").lower()
    return whole.split("/", 1)[-1], whole


def _is_artifact(info: zipfile.ZipInfo) -> bool:
    """A member torch.export.load unpickles with weights_only=True, and in full when that fails."""
    name, whole = _names(info)
    return (
        name.startswith("data/sample_inputs/")
        or (name.startswith(("data/weights/", "data/constants/")) and name.endswith(".pt"))
        or name in _LEGACY_ARTIFACTS
        or whole in _LEGACY_ARTIFACTS
    )


def _is_program(info: zipfile.ZipInfo) -> bool:
    name, whole = _names(info)
    legacy = "serialized_exported_program.json"
    return (name.startswith("models/") and name.endswith(".json")) or legacy in (name, whole)


def _config_problem(info: zipfile.ZipInfo, raw: bytes) -> str | None:
    """Why a weights or constants payload config would make torch unpickle something, or None."""
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError):
        return None  # torch cannot parse it either, and stops there
    entries = config.get("config") if isinstance(config, dict) else None
    kind = "weight" if _names(info)[0].startswith("data/weights/") else "constant"
    for fqn, entry in entries.items() if isinstance(entries, dict) else ():
        if not isinstance(entry, dict):
            continue
        stored = str(entry.get("path_name", ""))
        # torch's _load_constants picks the reader by the path's prefix first: opaque_obj_* ->
        # pickle.loads, custom_obj_* -> the C++ unpickler (both written with use_pickle true), and
        # a tensor constant with use_pickle -> torch.load(weights_only=False); _load_state_dict
        # unpickles any weight with use_pickle.
        if kind == "constant" and stored.startswith("opaque_obj_"):
            return f"its constant {_short(str(fqn))} is a pickled Python object ('{stored}')"
        custom = kind == "constant" and stored.startswith("custom_obj_")
        if entry.get("use_pickle") and not custom:  # torch tests truthiness, so must we
            return f"its {kind} {_short(str(fqn))} is stored as a pickle (use_pickle in '{info.filename}')"
        if not _NAME.fullmatch(str(fqn)):
            return f"its {kind} name {_short(str(fqn))} is not a plain dotted name (torch pastes names into generated code)"
    return None


def audit_export(path: Path, infos: list[zipfile.ZipInfo], *, trust_model: bool, max_size: int) -> None:
    """Refuse a torch.export archive whose loading would run code from the file (see the module docstring).

    With ``trust_model`` only the bounds of zips nested in the archive are checked. Raises
    ModelLoadError: one line naming the member, why, and ``--trust-model``.
    """

    def refuse(why: str) -> ModelLoadError:
        return ModelLoadError(
            f"Model file {path} is a torch.export archive whose loading would run code from the file: {why}. "
            f"Export the model again with torch.export.save from plain tensors, or {TRUST_HINT}."
        )

    with zipfile.ZipFile(path) as archive:
        artifacts = [info for info in infos if _is_artifact(info)]
        for info in artifacts:  # torch.save zips inside the archive: torch inflates them too
            raw = archive.read(info)
            if raw[:4] == b"PK\x03\x04":
                check_zip_directory(io.BytesIO(raw), f"Member '{info.filename}' of model file {path}", max_size)
        if trust_model:
            return
        for info in infos:
            if _names(info)[0].startswith("data/aotinductor/"):
                raise refuse(f"it holds AOTInductor compiled code ('{info.filename}'), a native library torch loads")
        for info in infos:
            name = _names(info)[0]
            if name.startswith(("data/weights/", "data/constants/")) and name.endswith("_config.json"):
                problem = _config_problem(info, archive.read(info))
                if problem:
                    raise refuse(problem)
        for info in artifacts:
            problem = _weights_only_problem(archive.read(info))
            if problem:
                raise refuse(f"its member '{info.filename}' {problem}")
        for info in infos:
            if not _is_program(info):
                continue
            try:
                document = json.loads(archive.read(info))
            except (ValueError, RecursionError):
                continue  # torch cannot parse it either, and stops there
            problem = _program_problem(document)
            if problem:
                raise refuse(f"in '{info.filename}', {problem}")


# ---------------------------------------------------------------- TorchScript


def script_file_writes(module: Any) -> str | None:
    """The first file-touching operator in a loaded TorchScript module's code, or None.

    ``torch.jit.load`` itself runs no Python: ``constants.pkl`` and ``data.pkl`` are read by
    torch's C++ unpickler (torch/csrc/jit/serialization/unpickler.cpp), which knows a fixed set
    of globals (tensor rebuilders, ``torch.jit._pickle`` helpers, the archive's own TorchScript
    classes) and raises on any other instead of importing it; ``code/`` is compiled by the
    TorchScript compiler, which resolves calls to TorchScript builtins and registered operators
    only. But two operators touch files that the model names: ``aten::save`` writes one,
    ``aten::from_file`` maps one (shared, so writes reach it). A model that calls them would
    write the user's files when run, so every method and hook graph is searched for them,
    callees inlined, before the model is called.
    """
    wanted = {f"aten::{name}" for name in FILE_OPS}
    modules = module.modules() if hasattr(module, "modules") else [module]
    for submodule in modules:
        compiled = getattr(submodule, "_c", None)
        if compiled is None:
            continue
        graphs = []
        for name in compiled._method_names():
            try:
                graphs.append(getattr(submodule, name).inlined_graph)
            except Exception:
                graphs.append(compiled._get_method(name).graph)
        for hook in [*compiled._get_forward_pre_hooks(), *compiled._get_forward_hooks()]:
            graphs.append(getattr(hook, "inlined_graph", None) or hook.graph)
        for graph in graphs:
            blocks = [graph]
            while blocks:
                block = blocks.pop()
                for node in block.nodes():
                    if node.kind() in wanted:
                        return node.kind()
                    blocks.extend(node.blocks())
    return None
