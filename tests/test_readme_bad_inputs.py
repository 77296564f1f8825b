"""README's bad-input table is exact: every row is run here and must print exactly its message.

Each row of the table between ``<!-- bad-inputs -->`` and ``<!-- /bad-inputs -->`` names a case
(first cell, in backticks), the exit code and the exact stderr line. The case builders below
write the hostile file into an empty folder (file names as in the table) and return the command.
``python tests/test_readme_bad_inputs.py`` prints the rows as they are today, to paste.
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import pathlib
import pickle
import re
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import models  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from helpers import run_cli  # noqa: E402
from torch import nn  # noqa: E402

README = Path(__file__).resolve().parent.parent / "README.md"
EXPLAIN = ["explain", "model.pt", "data.csv", "--schema", "schema.yaml", "--out", "out", "--analyses", "performance"]


def _standard(frame: pd.DataFrame | None = None, **schema: object) -> list[str]:
    models.write_case(Path("."), frame, **schema)
    models.save_torchscript(models.LastStepLinear(), Path("model.pt"))
    return list(EXPLAIN)


def _dated(times: list[str]) -> pd.DataFrame:
    frame = models.make_frame(groups=1, length=len(times))
    frame["time"] = times
    return frame


def case_duplicate_header() -> list[str]:
    command = _standard()
    frame = pd.read_csv("data.csv")
    text = Path("data.csv").read_text().splitlines()
    text[0] = text[0].replace(",b,", ",a,")  # two columns named 'a'
    Path("data.csv").write_text("\n".join(text) + "\n")
    assert len(frame.columns) == len(text[0].split(","))
    return command


def case_ambiguous_dates() -> list[str]:
    days = pd.date_range("2020-01-01", periods=12, freq="MS")
    return _standard(_dated([d.strftime("%d/%m/%Y") for d in days]), group=None, window=4)


def case_mixed_date_formats() -> list[str]:
    times = [d.strftime("%Y-%m-%d") for d in pd.date_range("2020-01-01", periods=20, freq="D")]
    times[10] = "11/01/2020"
    return _standard(_dated(times), group=None)


def case_offset_and_naive_times() -> list[str]:
    times = [f"2021-03-01T{h:02d}:00:00+01:00" for h in range(20)]
    times[5] = "2021-03-01T05:00:00"
    return _standard(_dated(times), group=None)


def case_time_format_mismatch() -> list[str]:
    times = [d.strftime("%d/%m/%Y") for d in pd.date_range("2020-01-01", periods=20, freq="D")]
    times[6] = "2020-01-07"
    return _standard(_dated(times), group=None, time_format="%d/%m/%Y")


def case_inf_value() -> list[str]:
    frame = models.make_frame()
    frame.loc[4, "b"] = np.inf
    return _standard(frame)


def case_gzip_bomb() -> list[str]:
    command = _standard()
    with gzip.open("data.csv.gz", "wb", compresslevel=9) as handle:
        handle.write(b"a,b\n")
        chunk = (b"1" * 1021 + b",2\n") * 1024  # long rows: the inflation ratio trips before the cell count
        for _ in range(300):
            handle.write(chunk)
    return [part if part != "data.csv" else "data.csv.gz" for part in command]


def case_billion_laughs() -> list[str]:
    command = _standard()
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [
        f"a{i}: &a{i} [*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1}]"
        for i in range(1, 9)
    ]
    Path("schema.yaml").write_text("\n".join(lines) + "\n" + Path("schema.yaml").read_text())
    return command


def case_deep_json_schema() -> list[str]:
    command = _standard()
    Path("schema.json").write_text('{"fields": ' + "[" * 5000 + "]" * 5000 + "}")
    return [part if part != "schema.yaml" else "schema.json" for part in command]


def case_duplicate_yaml_key() -> list[str]:
    command = _standard()
    Path("schema.yaml").write_text(Path("schema.yaml").read_text() + "window: 4\n")
    return command


def case_nested_columns() -> list[str]:
    raw = models.make_schema()
    raw["fields"][3]["columns"] = [["w_0", "w_1"], "w_2"]
    command = _standard()
    Path("schema.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return command


def case_absurd_window() -> list[str]:
    return _standard(window=10**9)


class _ConstantOutput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:1, -1, :1] * 0.0 + 1.0  # (1, 1) whatever the batch


def case_batch_ignored() -> list[str]:
    command = _standard()
    models.save_torchscript(_ConstantOutput(), Path("model.pt"))
    return command


class _Quantiles(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        median = x[:, -1:, 0:1]
        return torch.cat([median - 1.0, median, median + 1.0], dim=2)  # (B, 1, 3)


def case_quantiles_not_named() -> list[str]:
    command = _standard()
    models.save_torchscript(_Quantiles(), Path("model.pt"))
    return command


def case_deep_json_in_diff() -> list[str]:
    Path("old.json").write_text('{"results_version": 1, "analyses": ' + "[" * 5000 + "]" * 5000 + "}")
    Path("new.json").write_text(json.dumps({"tsreport_version": "0.1.0", "results_version": 1, "analyses": {}}))
    return ["diff", "old.json", "new.json"]


class _Touch:
    """Unpickling this touches a file named MARKER: a real payload."""

    def __reduce__(self) -> tuple:
        return (pathlib.Path.touch, (pathlib.Path("MARKER"),))


def _rewrite_zip(source: Path, target: Path, edit) -> None:
    with zipfile.ZipFile(source) as zin:
        members = {info.filename: zin.read(info) for info in zin.infolist()}
    edit(members)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
        for name, data in members.items():
            zout.writestr(name, data)


def case_export_pickled_weight() -> list[str]:
    command = _standard()
    Path("exported").mkdir()
    source = models.save_export(
        models.LastStepLinear(), Path("exported/model.pt2"), torch.randn(4, 8, 6), dynamic_batch=True
    )

    def edit(members: dict[str, bytes]) -> None:
        name = next(n for n in members if n.endswith("data/weights/model_weights_config.json"))
        config = json.loads(members[name])
        entry = config["config"]["linear.bias"]
        entry["use_pickle"] = True
        members[name] = json.dumps(config).encode()
        members[name.replace("model_weights_config.json", entry["path_name"])] = pickle.dumps(_Touch())

    _rewrite_zip(source, Path("model.pt2"), edit)
    return [part if part != "model.pt" else "model.pt2" for part in command]


class _WritesAFile(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.save(x, "MARKER")
        return x[:, -1, :1]


def case_torchscript_writes_files() -> list[str]:
    command = _standard()
    models.save_torchscript(_WritesAFile(), Path("model.pt"))
    return command


def case_model_zip_bomb() -> list[str]:
    command = _standard()
    with zipfile.ZipFile("model.pt") as zin:
        members = [(info.filename, zin.read(info)) for info in zin.infolist()]
    bomb = next(name for name, _ in members if name.endswith("/data/0"))
    chunk = bytes(16 * 1024**2)
    with zipfile.ZipFile("bomb.pt", "w", zipfile.ZIP_STORED) as zout:
        for name, data in members:
            if name != bomb:
                zout.writestr(name, data)
                continue
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zout.open(info, "w", force_zip64=True) as handle:
                for _ in range(16):  # 256 MiB of zeros, deflated to about 250 KiB
                    handle.write(chunk)
    return [part if part != "model.pt" else "bomb.pt" for part in command]


def case_model_over_size_limit() -> list[str]:
    command = _standard()
    Path("model.pt").write_bytes(bytes(3584))  # a fixed size: the limit is checked before the file is read
    return [*command, "--max-model-size", "2KB"]


def case_invalid_max_model_size() -> list[str]:
    return [*_standard(), "--max-model-size", "lots"]


def case_truncated_model() -> list[str]:
    command = _standard()
    data = Path("model.pt").read_bytes()
    Path("model.pt").write_bytes(data[: len(data) // 2])
    return command


def case_random_bytes_model() -> list[str]:
    command = _standard()
    Path("model.pt").write_bytes(np.random.default_rng(0).bytes(64 * 1024))
    return command


def case_non_model_zip() -> list[str]:
    command = _standard()
    Path("model.pt").unlink()
    with zipfile.ZipFile("model.pt", "w") as zout:
        zout.writestr("holiday/readme.txt", "not a model\n" * 100)
    return command


class _BatchCentred(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = x[:, -1, :1]
        return last + last.mean(dim=0, keepdim=True)  # each row depends on the rest of the batch


def case_model_mixes_windows() -> list[str]:
    command = _standard()
    models.save_torchscript(_BatchCentred(), Path("model.pt"))
    return command


class _Constant(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 1) + 0.5


def case_model_ignores_input() -> list[str]:
    command = _standard()
    models.save_torchscript(_Constant(), Path("model.pt"))
    return command


class _InfAboveOne(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x[:, -1, :1]
        return torch.where(a > 1.0, torch.full_like(a, float("inf")), a)


def case_model_inf_output() -> list[str]:
    command = _standard()
    models.save_torchscript(_InfAboveOne(), Path("model.pt"))
    return command


def case_schema_classification_with_horizon() -> list[str]:
    _standard()
    return ["schema", "data.csv", "--target", "label", "--task", "classification", "--horizon", "3"]


def case_schema_unknown_target() -> list[str]:
    _standard()
    return ["schema", "data.csv", "--target", "yy"]


def case_day_first_dates():
    days = pd.date_range("2020-01-01", periods=40, freq="D")
    return _standard(_dated([d.strftime("%d/%m/%Y") for d in days]), group=None)


def case_xz_data():
    command = _standard()
    Path("data.csv.xz").write_bytes(lzma.compress(Path("data.csv").read_bytes()))
    return [part if part != "data.csv" else "data.csv.xz" for part in command]


def case_comma_flood():
    command = _standard()
    with open("data.csv", "wb") as handle:
        handle.write(b"time,series,a,b,noise,w_0,w_1,w_2,y,label\n")
        chunk = b",,,,,,,,,\n" * (1 << 20)
        for _ in range(6):
            handle.write(chunk)
    return command


def case_parquet_dictionary_bomb():
    command = _standard()
    frame = pd.read_csv("data.csv")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    note = pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(frame), dtype=np.int32)), pa.array(["x" * 2**24]))
    pq.write_table(table.append_column("note", note), "data.parquet")
    return [part if part != "data.csv" else "data.parquet" for part in command]


class _Payload:
    def __reduce__(self):
        return (exec, ("open('pwned', 'w').write('ran')",))


def case_parquet_pickled_column():
    command = _standard()

    class Pickled(pa.ExtensionType):
        def __init__(self):
            super().__init__(pa.binary(), "arrow.py_extension_type")

        def __arrow_ext_serialize__(self):
            return pickle.dumps(_Payload())

        @classmethod
        def __arrow_ext_deserialize__(cls, storage_type, serialized):
            return cls()

    frame = pd.read_csv("data.csv")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    blob = pa.ExtensionArray.from_storage(Pickled(), pa.array([b"x"] * len(frame), type=pa.binary()))
    pq.write_table(table.append_column("blob", blob), "data.parquet")
    return [part if part != "data.csv" else "data.parquet" for part in command]


def case_scaled_beyond_float32():
    frame = models.make_frame()
    frame.loc[6, "a"] = 1e10
    raw = models.make_schema()
    raw["fields"][0]["scale"] = {"mean": 0.0, "std": 1e-30}
    return _standard(frame, fields=raw["fields"])


def case_out_is_the_current_folder() -> list[str]:
    return [*_standard()[:-4], "--out", ".", "--analyses", "performance"]


def case_out_holds_other_files() -> list[str]:
    Path("out").mkdir()
    Path("out/notes.txt").write_text("mine")
    return _standard()


def case_history_of_one_run() -> list[str]:
    Path("one").mkdir()
    Path("one/results.json").write_text(
        json.dumps({"tsreport_version": "0.1.0", "results_version": 1, "run": {"started": "2026-01-01T00:00:00"},
                    "fields": ["a"], "analyses": {}})
    )  # fmt: skip
    return ["history", "one/results.json", "--out", "h"]


def case_nan_in_results() -> list[str]:
    Path("old.json").write_text(json.dumps({"tsreport_version": "0.1.0", "results_version": 1, "analyses": {}}))
    entry = {"status": "ok", "reason": None, "field_importance": {"price": float("nan")}}
    results = {"tsreport_version": "0.1.0", "results_version": 1, "analyses": {"permutation": entry}}
    Path("new.json").write_text(json.dumps(results))  # json.dumps writes NaN
    return ["diff", "old.json", "new.json"]


def case_wrong_type_in_results() -> list[str]:
    Path("old.json").write_text(json.dumps({"tsreport_version": "0.1.0", "results_version": 1, "analyses": {}}))
    results = {"tsreport_version": "0.1.0", "results_version": 1, "analyses": {"occlusion": {"status": "done"}}}
    Path("odd.json").write_text(json.dumps(results))
    return ["diff", "old.json", "odd.json"]


def case_gradient_shap_samples() -> list[str]:
    Path("config.yaml").write_text("gradient_shap: {n_samples: 0}\n")
    return [*_standard(), "--config", "config.yaml"]


def case_gradient_shap_stdevs() -> list[str]:
    Path("config.yaml").write_text("gradient_shap: {stdevs: -1}\n")
    return [*_standard(), "--config", "config.yaml"]


def case_scheduler_unreachable() -> list[str]:
    pytest.importorskip("distributed")
    return [*_standard(), "--scheduler", "tcp://127.0.0.1:9"]


def case_workers_not_a_number() -> list[str]:
    return [*_standard(), "--workers", "many"]


CASES: dict[str, Callable[[], list[str]]] = {
    name[len("case_") :].replace("_", "-"): function
    for name, function in list(globals().items())
    if name.startswith("case_") and callable(function)
}


def table_rows() -> list[tuple[str, int, str]]:
    """(case, exit code, message) for every row of README's bad-input table."""
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- bad-inputs -->", 1)[1].split("<!-- /bad-inputs -->", 1)[0]
    rows = []
    for line in block.splitlines():
        match = re.match(r"^\| `([a-z0-9-]+)`[^|]*\| (\d) \| `(.*)` \|$", line.strip())
        if match:
            rows.append((match.group(1), int(match.group(2)), match.group(3).replace("\\|", "|")))
    return rows


def run_case(name: str, folder: Path) -> tuple[int, str]:
    previous = os.getcwd()
    os.chdir(folder)
    try:
        result = run_cli(*CASES[name]())
    finally:
        os.chdir(previous)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return result.exit_code, lines[-1] if lines else ""


def test_every_case_has_a_row_and_every_row_a_case() -> None:
    assert sorted(name for name, _, _ in table_rows()) == sorted(CASES)


@pytest.mark.parametrize(("name", "code", "message"), table_rows())
def test_readme_row_is_exact(tmp_path: Path, name: str, code: int, message: str) -> None:
    assert run_case(name, tmp_path) == (code, message)


if __name__ == "__main__":  # print the table rows as they are today
    import tempfile

    for case in CASES:
        with tempfile.TemporaryDirectory() as folder:
            code, line = run_case(case, Path(folder))
        print(f"| `{case}` | {code} | `{line.replace('|', chr(92) + '|')}` |")
