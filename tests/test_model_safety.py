"""Model files: no code runs without --trust-model, hostile files end fast and small, nonsense models are refused.

Every refusal is tested with a real payload (unpickling or running it touches a marker file):
without the flag, exit 3 with the exact line and no marker; with it, the marker appears, so the
refusal is not vacuous. The torch.export payloads are made by editing a real
``torch.export.save`` archive, one path of ``torch.export.load`` each (see tsreport/archive.py).
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import pickle
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import models
import numpy as np
import pytest
import torch
import yaml
from helpers import explain, run_cli
from torch import nn

from tsreport import archive
from tsreport.data import build_windows, read_table
from tsreport.exceptions import ModelLoadError
from tsreport.model import _trial_picks, load_model
from tsreport.schema import load_schema

FAST = ("--analyses", "performance", "--format", "json", "--samples", "8")
GiB = 1024**3
REPO = Path(__file__).resolve().parents[1]


class Payload:
    """Unpickling this calls Path.touch(marker): proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def pickled(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save(Payload(marker), buffer)
    return buffer.getvalue()


def error_line(result: Any, code: int = 3) -> str:
    """The one stderr line of a failed run (exit ``code``), without its 'tsreport: error: ' prefix."""
    assert result.exit_code == code, f"exit {result.exit_code}, expected {code}:\n{result.output}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    prefix = "tsreport: error: " if code == 3 else "Error: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix) :]


def refused_export(path: Path, why: str) -> str:
    return (
        f"Model file {path} is a torch.export archive whose loading would run code from the file: {why}. "
        "Export the model again with torch.export.save from plain tensors, or pass --trust-model only if you "
        "trust the file's author."
    )


# ---------------------------------------------------------------- torch.export archives


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real torch.export archive of LastStepLinear, dynamic batch (window 8, 6 channels)."""
    path = tmp_path_factory.mktemp("export") / "model.pt2"
    return models.save_export(models.LastStepLinear(), path, torch.randn(4, 8, 6), dynamic_batch=True)


def rewrite_zip(source: Path, target: Path, edit: Callable[[dict[str, bytes]], None]) -> Path:
    """Copy a zip member by member (stored, as torch writes), letting ``edit`` change the members first."""
    with zipfile.ZipFile(source) as zin:
        members = {info.filename: zin.read(info) for info in zin.infolist()}
    edit(members)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
        for name, data in members.items():
            zout.writestr(name, data)
    return target


def prefix_of(members: dict[str, bytes]) -> str:
    return next(iter(members)).split("/", 1)[0]


def edit_json(members: dict[str, bytes], suffix: str, change: Callable[[Any], None]) -> None:
    name = next(n for n in members if n.endswith(suffix))
    document = json.loads(members[name])
    change(document)
    members[name] = json.dumps(document).encode()


def pickled_weight(marker: Path) -> Callable[[dict[str, bytes]], None]:
    """linear.bias becomes a pickle, as torch.export.save writes tensors it cannot store raw."""

    def edit(members: dict[str, bytes]) -> None:
        def change(config: Any) -> None:
            entry = config["config"]["linear.bias"]
            entry["use_pickle"] = True
            members[f"{prefix_of(members)}/data/weights/{entry['path_name']}"] = pickled(marker)

        edit_json(members, "data/weights/model_weights_config.json", change)

    return edit


def opaque_constant(marker: Path) -> Callable[[dict[str, bytes]], None]:
    def edit(members: dict[str, bytes]) -> None:
        edit_json(
            members,
            "data/constants/model_constants_config.json",
            lambda config: config["config"].update(
                {"c": {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}}
            ),
        )
        members[f"{prefix_of(members)}/data/constants/opaque_obj_0"] = pickle.dumps(Payload(marker))

    return edit


def pickled_constant(marker: Path) -> Callable[[dict[str, bytes]], None]:
    """A tensor constant stored as a pickle: torch.load(weights_only=False) in _load_constants."""

    def edit(members: dict[str, bytes]) -> None:
        edit_json(
            members,
            "data/constants/model_constants_config.json",
            lambda config: config["config"].update(
                {"c": {"path_name": "tensor_constant_9", "is_param": False, "use_pickle": True, "tensor_meta": None}}
            ),
        )
        members[f"{prefix_of(members)}/data/constants/tensor_constant_9"] = pickled(marker)

    return edit


def custom_object(marker: Path) -> Callable[[dict[str, bytes]], None]:
    """A torchbind constant (custom_obj_*, use_pickle as torch writes it) holding a Python pickle."""

    def edit(members: dict[str, bytes]) -> None:
        edit_json(
            members,
            "data/constants/model_constants_config.json",
            lambda config: config["config"].update(
                {"c": {"path_name": "custom_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}}
            ),
        )
        members[f"{prefix_of(members)}/data/constants/custom_obj_0"] = pickle.dumps(Payload(marker), protocol=2)

    return edit


def sample_inputs(marker: Path) -> Callable[[dict[str, bytes]], None]:
    def edit(members: dict[str, bytes]) -> None:
        members[f"{prefix_of(members)}/data/sample_inputs/model.pt"] = pickled(marker)

    return edit


def legacy_weights(marker: Path) -> Callable[[dict[str, bytes]], None]:
    """A pre-2.8 weights file, which torch.export.load still prefers when present."""

    def edit(members: dict[str, bytes]) -> None:
        members[f"{prefix_of(members)}/data/weights/model.pt"] = pickled(marker)

    return edit


def guard_code(marker: Path) -> Callable[[dict[str, bytes]], None]:
    def edit(members: dict[str, bytes]) -> None:
        code = f"__import__('pathlib').Path({str(marker)!r}).touch() is None"
        edit_json(members, "models/model.json", lambda program: program.__setitem__("guards_code", [code]))

    return edit


def shape_expression(marker: Path) -> Callable[[dict[str, bytes]], None]:
    """Every symbolic size evaluates to itself, after touching the marker (sympy.sympify runs eval)."""

    def edit(members: dict[str, bytes]) -> None:
        name = next(n for n in members if n.endswith("models/model.json"))
        text = members[name].decode()
        touch = f" if __import__('pathlib').Path({str(marker)!r}).touch() is None else 0"
        text = re.sub(
            r'"expr_str": "((?:[^"\\]|\\.)*)"', lambda m: f'"expr_str": {json.dumps(m.group(1) + touch)}', text
        )
        members[name] = text.encode()

    return edit


def injected_name(marker: Path) -> Callable[[dict[str, bytes]], None]:
    """A parameter name that FX pastes into the forward it generates: code without dots or newlines."""
    code = ",".join(str(byte) for byte in f"open({str(marker)!r}, 'w')".encode())
    name = f'lin") if exec(str(bytes(({code},)), "ascii")) else getattr(self, "x.bias'

    def edit(members: dict[str, bytes]) -> None:
        for member in members:
            if member.endswith(".json"):
                members[member] = members[member].replace(b'"linear.bias"', json.dumps(name).encode())

    return edit


EXPORT_PAYLOADS = {
    "pickled-weight": (
        pickled_weight,
        "its weight 'linear.bias' is stored as a pickle (use_pickle in 'model/data/weights/model_weights_config.json')",
    ),
    "opaque-constant": (opaque_constant, "its constant 'c' is a pickled Python object ('opaque_obj_0')"),
    "pickled-constant": (
        pickled_constant,
        "its constant 'c' is stored as a pickle (use_pickle in 'model/data/constants/model_constants_config.json')",
    ),
    "sample-inputs": (
        sample_inputs,
        "its member 'model/data/sample_inputs/model.pt' is a pickle that needs the Python global getattr, which "
        "torch.export.load then unpickles in full (weights_only=False)",
    ),
    "legacy-weights": (
        legacy_weights,
        "its member 'model/data/weights/model.pt' is a pickle that needs the Python global getattr, which "
        "torch.export.load then unpickles in full (weights_only=False)",
    ),
    "guards-code": (guard_code, None),
    "sympy-expression": (shape_expression, None),
    "injected-name": (injected_name, None),
}


def export_payload_reason(kind: str, path: Path, marker: Path) -> str:
    reason = EXPORT_PAYLOADS[kind][1]
    if reason is not None:
        return reason
    if kind == "guards-code":
        code = f"__import__('pathlib').Path({str(marker)!r}).touch() is None"
        return (
            f"in 'model/models/model.json', its shape guard {archive._short(code)} is not a plain comparison "
            "(torch runs guards as Python code)"
        )
    if kind == "sympy-expression":
        with zipfile.ZipFile(path) as zin:
            text = zin.read("model/models/model.json").decode()
        first = json.loads('"' + re.search(r'"expr_str": "((?:[^"\\]|\\.)*)"', text).group(1) + '"')
        return (
            f"in 'model/models/model.json', its symbolic shape {archive._short(first)} is not a plain expression "
            "(torch parses it with sympy, which evaluates it as Python)"
        )
    code = ",".join(str(byte) for byte in f"open({str(marker)!r}, 'w')".encode())
    name = f'lin") if exec(str(bytes(({code},)), "ascii")) else getattr(self, "x.bias'
    return f"its weight name {archive._short(name)} is not a plain dotted name (torch pastes names into generated code)"


@pytest.mark.parametrize("kind", list(EXPORT_PAYLOADS))
def test_export_payload_is_refused_without_trust_model(case: dict, exported: Path, kind: str) -> None:
    marker = case["dir"] / "MARKER"
    model = rewrite_zip(exported, case["dir"] / "model.pt2", EXPORT_PAYLOADS[kind][0](marker))
    result = run_cli("explain", model, case["data"], "--schema", case["schema"], "--out", case["out"], *FAST)
    assert error_line(result) == refused_export(model, export_payload_reason(kind, model, marker))
    assert not marker.exists()
    assert not case["out"].exists()


@pytest.mark.parametrize("kind", list(EXPORT_PAYLOADS))
def test_export_payload_is_real(case: dict, exported: Path, kind: str) -> None:
    """With --trust-model the same file runs its payload: the refusal above is not vacuous."""
    marker = case["dir"] / "MARKER"
    model = rewrite_zip(exported, case["dir"] / "model.pt2", EXPORT_PAYLOADS[kind][0](marker))
    result = run_cli(
        "explain", model, case["data"], "--schema", case["schema"], "--out", case["out"], *FAST, "--trust-model"
    )
    assert marker.exists()
    assert "Traceback" not in result.stderr  # torch's own log of the failed load is kept quiet too


@pytest.mark.parametrize("trust", [False, True], ids=["plain", "trusted"])
def test_export_custom_object_is_read_by_the_restricted_unpickler(case: dict, exported: Path, trust: bool) -> None:
    """custom_obj_* constants go through torch._C._pickle_load_obj, which refuses Python globals: allowed, and
    a Python payload there fails to load without running, trusted or not."""
    marker = case["dir"] / "MARKER"
    model = rewrite_zip(exported, case["dir"] / "model.pt2", custom_object(marker))
    result = explain({**case, "model": model}, *FAST, *(["--trust-model"] if trust else []))
    assert error_line(result).startswith(f"Cannot load torch.export program {model}: ")
    assert not marker.exists()


def test_plain_export_archive_passes_the_audit(case: dict, exported: Path) -> None:
    result = run_cli("explain", exported, case["data"], "--schema", case["schema"], "--out", case["out"], *FAST)
    assert result.exit_code == 0, result.output


def test_export_with_real_shape_guards_passes_the_audit(tmp_path: Path) -> None:
    """A program whose guards and symbolic sizes torch wrote itself (floor division, modulo) is not refused."""

    class EvenBatch(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x.reshape(x.shape[0] // 2, -1) if x.shape[0] % 2 == 0 else x.reshape(x.shape[0], -1)
            return y.sum(1, keepdim=True)

    program = torch.export.export(EvenBatch(), (torch.randn(4, 8, 6),), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    path = tmp_path / "guards.pt2"
    torch.export.save(program, str(path))
    with zipfile.ZipFile(path) as zin:
        document = json.loads(zin.read("guards/models/model.json"))
    assert len(document["guards_code"]) > 3 and "//" in " ".join(document["guards_code"])
    assert archive._program_problem(document) is None
    loaded = load_model(path)
    assert loaded.format == "export"


def test_aotinductor_member_is_refused(case: dict, exported: Path) -> None:
    model = rewrite_zip(
        exported,
        case["dir"] / "model.pt2",
        lambda members: members.update({"model/data/aotinductor/model/model.so": b"\x7fELF"}),
    )
    result = explain({**case, "model": model}, *FAST)
    assert error_line(result) == refused_export(
        model,
        "it holds AOTInductor compiled code ('model/data/aotinductor/model/model.so'), a native library torch loads",
    )


def test_graph_calling_a_file_writing_operator_is_refused(case: dict, exported: Path) -> None:
    def edit(members: dict[str, bytes]) -> None:
        def change(program: Any) -> None:
            program["graph_module"]["graph"]["nodes"][0]["target"] = "torch.ops.aten.save.default"

        edit_json(members, "models/model.json", change)

    model = rewrite_zip(exported, case["dir"] / "model.pt2", edit)
    result = explain({**case, "model": model}, *FAST)
    assert error_line(result) == refused_export(
        model,
        "in 'model/models/model.json', its graph calls 'torch.ops.aten.save.default', which writes or maps files "
        "named by the graph",
    )


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("torch.ops.aten.linear.default", None),
        ("torch.ops.aten._native_batch_norm_legit_no_training.default", None),
        ("torch.ops.higher_order.cond", None),
        ("_operator.getitem", None),
        ("torch.sym_max", None),
        ("torch.os.system", "is not a torch operator"),
        ("_operator.call", "is not a torch operator"),
        ("torch.ops.aten.__class__.__init__", "is not a torch operator"),
        ("torch.ops.aten.from_file.default", "writes or maps files named by the graph"),
        ("builtins.exec", "is not a torch operator"),
    ],
)
def test_node_targets(target: str, problem: str | None) -> None:
    assert archive._target_problem(target) == problem


@pytest.mark.parametrize(
    "text",
    [
        "Symbol('s77', positive=True, integer=True)",
        "Mul(Integer(96), FloorDiv(Symbol('s77', positive=True, integer=True), Integer(2)))",
        "Min(Integer(16), Mul(Integer(16), Symbol('s0', positive=True, integer=True)))",
        "Pow(Symbol('s0', integer=True), Integer(2))",
        "2*s0 + 1",
    ],
)
def test_plain_shape_expressions_pass(text: str) -> None:
    archive._check_expression(text, guard=False)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "Symbol('s0').__class__",
        "open('x', 'w')",
        "Integer(10)**Integer(10)**Integer(10)",  # bounded work: sympy would compute it exactly
        "Pow(Integer(10), Integer(10000000000))",
        "LShift(Integer(1), Integer(10000000000))",
        "[s0 for s0 in ()]",
        "lambda: 0",
        "s0 # comment",
        "Symbol('a b')",
    ],
)
def test_unsafe_shape_expressions_are_refused(text: str) -> None:
    with pytest.raises(archive._Unsafe):
        archive._check_expression(text, guard=False)


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("L['x'].size()[0] <= 100000", True),
        ("((96*L['x'].size()[0]) % (L['x'].size()[0] // 2)) == 0", True),
        ("L['x'].stride()[1] == 6 and L['x'].dim() == 3", True),
        ("math.floor(L['x'].size()[0] / 2) >= 1", True),
        ("L['x'].size()[0] != 7", True),
        ("L['x'].size()[0] ** 10**10 > 0", False),
        ("L['x'].size.__self__", False),
        ("L['x'].numpy().tofile('/tmp/x')", False),
        ("L[\"x');import os;('\"].size()[0] == 1", False),
        ("__import__('os').system('true') == 0", False),
        ("L['x'].size()[0] == 1\n", False),
    ],
)
def test_shape_guards(text: str, safe: bool) -> None:
    if safe:
        archive._check_expression(text, guard=True)
    else:
        with pytest.raises(archive._Unsafe):
            archive._check_expression(text, guard=True)


# ---------------------------------------------------------------- TorchScript and torch.save


def replace_member(source: Path, target: Path, leaf: str, data: bytes) -> Path:
    def edit(members: dict[str, bytes]) -> None:
        name = next(n for n in members if n.split("/", 1)[-1] == leaf)
        members[name] = data

    return rewrite_zip(source, target, edit)


@pytest.mark.parametrize("leaf", ["data.pkl", "constants.pkl"])
@pytest.mark.parametrize("trust", [False, True], ids=["plain", "trusted"])
def test_torchscript_pickles_never_run_python(case: dict, leaf: str, trust: bool) -> None:
    """torch.jit.load reads its pickles with torch's C++ unpickler: a Python payload fails, even trusted."""
    marker = case["dir"] / "MARKER"
    model = replace_member(case["model"], case["dir"] / "evil.pt", leaf, pickle.dumps(Payload(marker), protocol=2))
    result = explain({**case, "model": model}, *FAST, *(["--trust-model"] if trust else []))
    line = error_line(result)
    assert line.startswith(f"Cannot load TorchScript model {model}: ")
    assert not marker.exists()


class WritesAFile(nn.Module):
    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.save(x, self.target)
        return x[:, -1, :1]


def test_torchscript_that_writes_files_is_refused(case: dict) -> None:
    marker = case["dir"] / "MARKER"
    model = models.save_torchscript(WritesAFile(str(marker)), case["dir"] / "writer.pt")
    result = explain({**case, "model": model}, *FAST)
    assert error_line(result) == (
        f"Model file {model} is a TorchScript model whose code calls aten::save, which writes or maps files named "
        "by the model: running it could overwrite your files. Save the model without it, or pass --trust-model "
        "only if you trust the file's author."
    )
    assert not marker.exists()
    explain({**case, "model": model}, *FAST, "--trust-model")
    assert marker.exists()  # the model does write when run


def test_state_dict_zip_with_a_pickled_object_is_never_unpickled(case: dict) -> None:
    """torch.save zips: data.pkl goes through torch's weights-only unpickler (and our opcode scan)."""
    marker = case["dir"] / "MARKER"
    state = case["dir"] / "state.pt"
    torch.save(models.LastStepLinear().state_dict(), str(state))
    model = replace_member(state, case["dir"] / "evil.pt", "data.pkl", pickle.dumps(Payload(marker), protocol=2))
    line = error_line(explain({**case, "model": model}, *FAST))
    assert "--trust-model" in line and str(model) in line
    assert not marker.exists()


# ---------------------------------------------------------------- bounded work: sizes and zip bombs


def zip_bomb(source: Path, target: Path, size: int = GiB) -> Path:
    """A torch archive whose first tensor record is ``size`` zero bytes, deflated (~1000:1), streamed."""
    with zipfile.ZipFile(source) as zin:
        members = [(info.filename, zin.read(info)) for info in zin.infolist()]
    bomb = next(name for name, _ in members if name.endswith("/data/0"))
    chunk = bytes(16 * 1024**2)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
        for name, data in members:
            if name != bomb:
                zout.writestr(name, data)
                continue
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zout.open(info, "w", force_zip64=True) as handle:
                for _ in range(size // len(chunk)):
                    handle.write(chunk)
    return target


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1 GiB zip bomb inside an otherwise valid TorchScript archive (about 1 MiB on disk)."""
    folder = tmp_path_factory.mktemp("bomb")
    source = models.save_torchscript(models.LastStepLinear(), folder / "source.pt")
    return zip_bomb(source, folder / "bomb.pt")


def bomb_message(path: Path) -> str:
    with zipfile.ZipFile(path) as zin:
        info = next(i for i in zin.infolist() if i.filename.endswith("/data/0"))
    return (
        f"Model file {path} is a zip bomb: its member '{info.filename}' would inflate from "
        f"{archive.format_size(info.compress_size)} to 1.0 GiB ({GiB / info.compress_size:.0f}:1), while torch stores "
        "tensors uncompressed; refused before inflating anything (--max-model-size does not lift this). Save the "
        "model again with torch.jit.save, torch.export.save or torch.save."
    )


def test_zip_bomb_is_refused_before_inflating(case: dict, bomb: Path) -> None:
    assert bomb.stat().st_size < 2 * 1024**2
    began = time.perf_counter()
    result = explain({**case, "model": bomb}, *FAST)
    seconds = time.perf_counter() - began
    assert error_line(result) == bomb_message(bomb)
    assert seconds < 5, seconds


def test_zip_bomb_costs_seconds_and_megabytes_not_gigabytes(case: dict, bomb: Path) -> None:
    """In a fresh process: exit 3 in seconds; peak memory far below the 1 GiB the bomb would inflate to."""
    began = time.perf_counter()
    # The child reports its own peak (VmHWM belongs to its address space; ru_maxrss would carry over
    # the forking pytest process's peak across exec).
    report_peak = (
        "import atexit, sys\n"
        "def peak():\n"
        "    line = next(l for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
        "    print('PEAK_KB', line.split()[1], file=sys.stderr)\n"
        "atexit.register(peak)\n"
        "from tsreport.cli import main\n"
        "sys.argv = ['tsreport'] + sys.argv[1:]\n"
        "main()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", report_peak, "explain", str(bomb), str(case["data"]), "--schema", str(case["schema"]),
         "--out", str(case["out"])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])},
    )  # fmt: skip
    assert child.stderr is not None
    stderr, _, peak_line = child.stderr.read().decode().rpartition("PEAK_KB ")
    child.wait()
    seconds = time.perf_counter() - began
    peak_mib = int(peak_line.split()[0]) / 1024
    assert child.returncode == 3, stderr
    assert stderr.strip() == f"tsreport: error: {bomb_message(bomb)}"
    assert seconds < 30, seconds  # mostly importing torch; the check itself is milliseconds
    assert peak_mib < 700, peak_mib


def test_nested_zip_bomb_in_an_export_archive(case: dict, exported: Path) -> None:
    """A torch.save zip inside the .pt2 (sample inputs) gets the same bounds, checked with or without trust."""
    inner_source = case["dir"] / "inner_source.pt"
    torch.save((torch.zeros(2),), str(inner_source))
    inner = zip_bomb(inner_source, case["dir"] / "inner.pt", size=64 * 1024**2).read_bytes()
    model = rewrite_zip(
        exported,
        case["dir"] / "model.pt2",
        lambda members: members.update({"model/data/sample_inputs/model.pt": inner}),
    )
    for extra in ([], ["--trust-model"]):
        line = error_line(explain({**case, "model": model}, *FAST, *extra))
        assert line.startswith(f"Member 'model/data/sample_inputs/model.pt' of model file {model} is a zip bomb: ")
        assert "to 64.0 MiB" in line


class WithZeroBuffer(models.LastStepLinear):
    """LastStepLinear carrying a 1 MiB buffer of zeros it never uses."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("padding", torch.zeros(256 * 1024))


def test_total_size_above_the_limit_is_refused_and_the_flag_raises_it(case: dict) -> None:
    """A re-zipped (deflated) model is small on disk; its unzipped size is what the limit caps."""
    source = models.save_torchscript(WithZeroBuffer(), case["dir"] / "source.pt")
    model = case["dir"] / "deflated.pt"
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(model, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    with zipfile.ZipFile(model) as zin:
        infos = zin.infolist()
    total = sum(info.file_size for info in infos)
    largest = max(infos, key=lambda info: info.file_size)
    assert model.stat().st_size < 100_000 < total
    result = explain({**case, "model": model}, *FAST, "--max-model-size", "100KB")
    assert error_line(result) == (
        f"Model file {model} would inflate to {archive.format_size(total)} ({len(infos)} zip members, the largest "
        f"'{largest.filename}' at 1.0 MiB), above the model size limit of 97.7 KiB: refused before inflating "
        "anything. If the model really is that large, raise the limit, e.g. --max-model-size 1GiB."
    )
    assert explain({**case, "model": model}, *FAST, "--max-model-size", "2MB").exit_code == 0


def test_file_size_above_the_limit_is_refused(case: dict) -> None:
    model = case["dir"] / "model.pkl"
    model.write_bytes(pickle.dumps(list(range(20000))))
    size = model.stat().st_size
    result = explain({**case, "model": model}, *FAST, "--max-model-size", "10000")
    assert error_line(result) == (
        f"Model file {model} is {archive.format_size(size)}, above the model size limit of 9.8 KiB: refused before "
        "reading it. If the model really is that large, raise the limit, e.g. --max-model-size 1GiB."
    )


def test_max_model_size_from_the_config_file(case: dict) -> None:
    config = case["dir"] / "config.yaml"
    config.write_text(yaml.safe_dump({"max_model_size": "1KB"}))
    line = error_line(explain(case, *FAST, "--config", config))
    assert "above the model size limit of 1000 bytes" in line
    config.write_text(yaml.safe_dump({"max_model_size": 10_000_000}))
    assert explain(case, *FAST, "--config", config).exit_code == 0


@pytest.mark.parametrize("value", ["lots", "0", "-5MB", "1.5XB", ""])
def test_invalid_max_model_size_is_a_usage_error(case: dict, value: str) -> None:
    line = error_line(explain(case, *FAST, "--max-model-size", value), code=2)
    assert line == f"Invalid --max-model-size '{value}': give a size such as 500MB, 4GiB or a number of bytes."


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("500MB", 500 * 1000**2),
        ("4GiB", 4 * GiB),
        ("1.5 GB", 1_500_000_000),
        ("123", 123),
        (2048, 2048),
        ("2kib", 2048),
    ],
)
def test_parse_size(text: Any, size: int) -> None:
    assert archive.parse_size(text) == size


def test_duplicate_members_are_refused(case: dict) -> None:
    model = case["dir"] / "dup.pt"
    with zipfile.ZipFile(case["model"]) as zin, zipfile.ZipFile(model, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
        zout.writestr(zin.infolist()[0].filename.upper(), b"x")  # the same name to a reader that ignores case
    line = error_line(explain({**case, "model": model}, *FAST))
    assert line == (
        f"Model file {model} holds the zip member '{zin.infolist()[0].filename.upper()}' twice: torch never writes "
        "that, and two readers could pick different copies. Save the model again with torch."
    )


def test_too_many_members_are_refused_from_the_end_record(case: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "MAX_MEMBERS", 3)
    with zipfile.ZipFile(case["model"]) as zin:
        count = len(zin.infolist())
    line = error_line(explain(case, *FAST))
    assert line.startswith(f"Model file {case['model']} lists {count} zip members in a ")
    assert line.endswith(
        "directory, more than the 3 any model file needs: it is not a model torch saved. Save the model again "
        "with torch.jit.save, torch.export.save or torch.save."
    )


# ---------------------------------------------------------------- hostile files: the right message each


def hostile_files(folder: Path, bomb: Path, exported: Path) -> dict[str, tuple[Path, str]]:
    truncated = folder / "truncated.pt2"
    truncated.write_bytes(exported.read_bytes()[: exported.stat().st_size // 2])
    noise = folder / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).bytes(64 * 1024))
    not_model = folder / "photos.zip"
    with zipfile.ZipFile(not_model, "w") as zout:
        zout.writestr("holiday/readme.txt", "not a model\n" * 100)
    return {
        "zip-bomb": (bomb, bomb_message(bomb)),
        "truncated-zip": (
            truncated,
            f"Model file {truncated} is a damaged zip archive (truncated?); save the model again.",
        ),
        "random-bytes": (
            noise,
            f"Model file {noise} is not a PyTorch model file (neither a zip archive nor a pickle torch.load can "
            "read): it may be truncated or not a model at all. Save the model with torch.jit.save, "
            "torch.export.save or torch.save(model.state_dict()).",
        ),
        "non-model-zip": (
            not_model,
            f"Model file {not_model} is a zip archive but not a saved PyTorch model; expected torch.jit.save, "
            "torch.export.save or torch.save output.",
        ),
    }


@pytest.mark.parametrize("kind", ["zip-bomb", "truncated-zip", "random-bytes", "non-model-zip"])
def test_hostile_model_file_gives_the_right_line(case: dict, bomb: Path, exported: Path, kind: str) -> None:
    model, message = hostile_files(case["dir"], bomb, exported)[kind]
    began = time.perf_counter()
    result = explain({**case, "model": model}, *FAST)
    assert error_line(result) == message
    assert time.perf_counter() - began < 5
    assert not case["out"].exists()


def test_load_model_checks_before_any_loader(tmp_path: Path, bomb: Path) -> None:
    with pytest.raises(ModelLoadError, match="is a zip bomb"):
        load_model(bomb)


# ---------------------------------------------------------------- the model check


class FixedShape(nn.Module):
    """Returns a (1, 1) tensor whatever the batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:1, -1, :1]


class BatchCentred(nn.Module):
    """Each window's output depends on the others in its batch (a batch mean is subtracted)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = x[:, -1, :1]
        return 3.0 * last - last.mean(dim=0, keepdim=True)


class IgnoresInput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 1) + 0.5


class InfAboveOne(nn.Module):
    """inf when a(T-1) > 1, a finite value otherwise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x[:, -1, :1]
        return torch.where(a > 1.0, torch.full_like(a, float("inf")), 3.0 * a)


def test_output_that_does_not_follow_the_batch(case: dict) -> None:
    model = models.save_torchscript(FixedShape(), case["dir"] / "fixed.pt")
    assert error_line(explain({**case, "model": model}, *FAST)) == (
        f"The output of model {model} does not follow the batch: 2 windows (input shape (2, 8, 6)) gave an output "
        "of shape (1, 1); its first dimension must be the batch, one row per window. Fix the model's forward so "
        "that it returns (batch, ...) without reducing or reshaping across windows."
    )


def test_output_that_mixes_windows(case: dict) -> None:
    model = models.save_torchscript(BatchCentred(), case["dir"] / "mixes.pt")
    line = error_line(explain({**case, "model": model}, *FAST))
    windows = _windows(case)
    last = torch.from_numpy(windows.inputs(_trial_picks(windows)[:4]))[:, -1, :1]
    together = float(BatchCentred()(last[:, None, :])[0, 0])
    alone = float(BatchCentred()(last[:1, None, :])[0, 0])
    assert line == (
        f"The model {model} does not treat windows independently: in a batch of 4 windows (output shape (4, 1)), "
        f"window 1's output is {together:.6g}, but {alone:.6g} when it is fed alone (output shape (1, 1)). Each "
        "window's prediction must depend on that window only: save the model in eval mode (model.eval(): "
        "BatchNorm running statistics, no dropout), and do not pool or normalise across the batch."
    )


def test_output_that_ignores_the_input(case: dict) -> None:
    model = models.save_torchscript(IgnoresInput(), case["dir"] / "constant.pt")
    line = error_line(explain({**case, "model": model}, *FAST))
    assert line == (
        f"The model {model} returned the same output for 32 different windows (output shape (32, 1), every row "
        f"[0.5]): it ignores its input. Check that the file holds the trained model, and that the fields and "
        f"'layout' of the schema {case['schema']} feed the inputs it uses."
    )


def _windows(case: dict) -> Any:
    schema = load_schema(case["schema"])
    return build_windows(schema, read_table(case["data"]), str(case["data"]))


def test_non_finite_output_names_the_first_window(case: dict) -> None:
    model = models.save_torchscript(InfAboveOne(), case["dir"] / "inf.pt")
    windows = _windows(case)
    picks = _trial_picks(windows)
    first = next(int(i) for i in picks if windows.inputs(np.array([i]))[0, -1, 0] > 1.0)
    assert first != int(picks[0])  # not simply the first window looked at
    line = error_line(explain({**case, "model": model}, *FAST))
    assert line == (
        f"The model {model} returned NaN or inf for the window ending at {windows.end_times[first]} in group "
        f"'{windows.groups[first]}', whose inputs are all finite: check the input scaling in the schema "
        f"{case['schema']} ('scale') and the model itself."
    )


def test_static_batch_export_passes_the_check(case: dict) -> None:
    """A program traced at batch 16 is padded: the check compares padded calls and accepts it."""
    model = models.save_export(models.LastStepLinear(), case["dir"] / "static.pt2", torch.randn(16, 8, 6))
    assert explain({**case, "model": model}, *FAST).exit_code == 0


# ---------------------------------------------------------------- training checkpoints with prefixed keys

MODELS_PY = str(Path(models.__file__).resolve())
LINEAR = ("--model-class", f"{MODELS_PY}:LastStepLinear", "--model-kwargs", '{"weights": [3,0,0,0,0,0]}')


class LightningLike(nn.Module):
    """What a LightningModule holds: the network as ``self.model``, so its keys start with ``model.``."""

    def __init__(self) -> None:
        super().__init__()
        self.model = models.LastStepLinear([3.0, 0, 0, 0, 0, 0], bias=0.5)


def lightning_checkpoint(wrapper: nn.Module) -> dict[str, Any]:
    optimiser = torch.optim.Adam(wrapper.parameters(), lr=1e-3)
    return {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": wrapper.state_dict(),
        "optimizer_states": [optimiser.state_dict()],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": {"weights": [3.0, 0, 0, 0, 0, 0], "lr": 1e-3},
    }


@pytest.mark.parametrize(
    ("layout", "prefix"),
    [("lightning", "model."), ("dataparallel", "module."), ("both", "module.model.")],
)
def test_prefixed_state_dict_is_stripped_to_fit(case: dict, layout: str, prefix: str) -> None:
    wrapper = LightningLike()
    path = case["dir"] / "checkpoint.ckpt"
    if layout == "lightning":
        torch.save(lightning_checkpoint(wrapper), path)
    elif layout == "dataparallel":
        torch.save(nn.DataParallel(wrapper.model).state_dict(), path)
    else:
        torch.save({"state_dict": nn.DataParallel(wrapper).state_dict(), "epoch": 1}, path)
    saved = torch.load(path, weights_only=True)
    assert all(key.startswith(prefix) for key in saved.get("state_dict", saved))
    loaded = load_model(path, model_class=LINEAR[1], model_kwargs={"weights": [3, 0, 0, 0, 0, 0]})
    assert loaded.format == "state_dict"
    assert float(loaded.module.linear.bias.detach()[0]) == 0.5  # the checkpoint's weights, not the class's init
    assert loaded.notes == [
        f"The state dict's keys all start with '{prefix}' (a training wrapper's attribute, e.g. a Lightning "
        f"module or DataParallel): it was stripped to fit {LINEAR[1]}."
    ]
    result = explain({**case, "model": path}, *FAST, *LINEAR)
    assert result.exit_code == 0, result.output
    report = json.loads((case["out"] / "results.json").read_text())
    assert loaded.notes[0] in report["warnings"]


def test_prefix_that_does_not_make_the_keys_fit_is_not_stripped(case: dict) -> None:
    """model.-prefixed keys of a different network: the strict loader's Missing/Unexpected keys, unchanged."""
    path = case["dir"] / "checkpoint.ckpt"
    other = nn.Module()
    other.model = nn.Sequential(nn.Linear(6, 1))
    torch.save({"state_dict": other.state_dict()}, path)
    line = error_line(explain({**case, "model": path}, *FAST, *LINEAR))
    assert line.startswith(f"The state dict in {path} does not fit {LINEAR[1]} with kwargs ")
    assert 'Unexpected key(s) in state_dict: "model.0.weight", "model.0.bias"' in line
