"""README's bad-input table is exact: every row is run here and must print exactly its message.

Each row of the table between ``<!-- bad-inputs -->`` and ``<!-- /bad-inputs -->`` names a case
(first cell, in backticks), the exit code and the exact stderr line. The case builders below
write the hostile file into an empty folder (file names as in the table) and return the command.
``python tests/test_readme_bad_inputs.py`` prints the rows as they are today, to paste.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import models  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
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
        chunk = b"1,2\n" * (1 << 18)
        for _ in range(300):
            handle.write(chunk)
    return [part if part != "data.csv" else "data.csv.gz" for part in command]


def case_billion_laughs() -> list[str]:
    command = _standard()
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1}]" for i in range(1, 9)]
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
