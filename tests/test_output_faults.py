"""Fault injection on the output folder: --out is always one whole run, the previous one or the new one.

Every change tsreport makes to the disk goes through ``tsreport.output.FS``. These
tests wrap it to SIGKILL a forked writer before and after each step, or to raise
ENOSPC/EROFS/EFBIG at each step, and check what a user then finds in --out.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import models
import pytest
from helpers import explain, run_cli

from tsreport import analyses, output
from tsreport.config import build_config
from tsreport.exceptions import OutputError
from tsreport.output import MANIFEST, OutputFolder, report_files, verify
from tsreport.pipeline import explain as run_pipeline

REPO = Path(__file__).resolve().parent.parent
FAILING = ("mkdir", "write", "carry", "exchange", "rename")  # FS steps that change the disk and can fail
STEPS = (*FAILING, "sync_folder", "remove_tree")  # and those that cannot (errors ignored): kill points too


class Killed(BaseException):
    pass


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two different runs' files (A: permutation + performance, seed 0; B: performance, seed 1)."""
    folder = tmp_path_factory.mktemp("case")
    data, schema = models.write_case(folder)
    model = models.save_torchscript(models.LastStepLinear(), folder / "model.pt")
    files = {}
    for name, extra in (("a", {"analyses": "performance,permutation", "seed": 0}), ("b", {"seed": 1})):
        values = {"analyses": "performance", "samples": "16", "quiet": True, **extra}
        config = build_config({}, values, analysis_names=analyses.NAMES)
        report = run_pipeline(model, data, schema, config)
        files[name] = report_files(report, ("html",), None)
    assert set(files["a"]) != set(files["b"])  # the two runs can be told apart by their files
    return {"files": files, "case": {"model": model, "data": data, "schema": schema}}


def write_run(out: Path, files: dict[str, bytes], **options: Any) -> list[Path]:
    folder = OutputFolder(out, **options)
    folder.prepare()
    return folder.commit(files)


def state(out: Path, files: dict[str, dict[str, bytes]]) -> str | None:
    """'a' or 'b' when --out is exactly that run, whole (every file, no other tsreport file); else None."""
    if not out.is_dir():
        return None
    try:
        listed = verify(out)
    except OutputError:
        return None
    present = {
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and not p.name.startswith(".tsreport-")
    }
    for name, run in files.items():
        expected = {k: output.hashlib.sha256(v).hexdigest() for k, v in run.items()}
        if listed == expected and present - {"notes.txt"} == set(run):
            return name
    return None


def leftovers(out: Path) -> list[str]:
    """Staging folders beside --out (the lock file is not one)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.tsreport-"))


def wrap_fs(
    monkeypatch: pytest.MonkeyPatch, act: Callable[[str, int, str], None], steps: tuple[str, ...] = STEPS
) -> None:
    """Call ``act(step, count, when)`` before ('before') and after ('after') every FS step."""
    counter = {"n": 0}
    for step in steps:
        original = getattr(output.FS, step)

        def wrapped(*args: Any, _original: Any = original, _step: str = step) -> Any:
            act(_step, counter["n"], "before")
            result = _original(*args)
            act(_step, counter["n"], "after")
            counter["n"] += 1
            return result

        monkeypatch.setattr(output.FS, step, wrapped)


def count_steps(
    tmp_path: Path, runs: dict[str, Any], monkeypatch: pytest.MonkeyPatch, steps: tuple[str, ...] = STEPS
) -> int:
    out = tmp_path / "count"
    write_run(out, runs["files"]["a"])
    (out / "notes.txt").write_text("a user's file")
    seen: list[int] = []
    with monkeypatch.context() as patch:
        wrap_fs(patch, lambda step, n, when: seen.append(n), steps)
        write_run(out, runs["files"]["b"])
    return max(seen) + 1


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames"])
def test_sigkill_at_every_step_leaves_a_whole_run(
    tmp_path: Path, runs: dict[str, Any], monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    if not exchange:
        monkeypatch.setattr(output.FS, "exchange", lambda first, second: False)
    else:
        (tmp_path / "x").mkdir()
        (tmp_path / "y").mkdir()
        if not output.FS.exchange(tmp_path / "x", tmp_path / "y"):
            pytest.skip("this filesystem has no RENAME_EXCHANGE")
    steps = count_steps(tmp_path, runs, monkeypatch)
    points = [(n, when) for n in range(steps) for when in ("before", "after")]
    rng = random.Random(20261205)
    chosen = points if len(points) <= 40 else rng.sample(points, 40)
    assert len(chosen) >= 20
    files = runs["files"]
    out = tmp_path / "out"
    outcomes = []
    for point in chosen:
        write_run(out, files["a"])
        (out / "notes.txt").write_text("a user's file, never deleted")
        pid = os.fork()
        if pid == 0:  # the writer: dies by SIGKILL at `point`
            try:

                def act(step: str, n: int, when: str, _point: tuple[int, str] = point) -> None:
                    if (n, when) == _point:
                        os.kill(os.getpid(), signal.SIGKILL)

                wrap_fs(monkeypatch, act)
                write_run(out, files["b"])
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, point
        found = state(out, files)
        if found is None and not exchange:
            # Two renames: a kill between them leaves --out absent; the next run puts the previous one back.
            assert not out.exists(), point
            folder = OutputFolder(out)
            folder.prepare()
            folder.release()
            found = state(out, files)
            assert found == "a", point
        assert found in ("a", "b"), f"kill at {point}: --out is not one whole run"
        assert (out / "notes.txt").read_text() == "a user's file, never deleted"
        outcomes.append(found)
        # The next run removes the dead writer's staging and leaves one whole run.
        write_run(out, files["a"])
        assert state(out, files) == "a"
        assert leftovers(out) == [], point
    assert set(outcomes) == {"a", "b"}  # kills landed both before and after the swap


@pytest.mark.parametrize(
    ("code", "text"),
    [(errno.ENOSPC, "No space left on device [ENOSPC]"), (errno.EROFS, "[EROFS]"), (errno.EFBIG, "[EFBIG]")],
)
def test_io_error_at_each_step_keeps_the_previous_report(
    tmp_path: Path, runs: dict[str, Any], monkeypatch: pytest.MonkeyPatch, code: int, text: str
) -> None:
    steps = count_steps(tmp_path, runs, monkeypatch, FAILING)
    files = runs["files"]
    out = tmp_path / "out"
    failures = 0
    for point in range(steps):
        write_run(out, files["a"])
        (out / "notes.txt").write_text("a user's file")

        def act(step: str, n: int, when: str, _point: int = point) -> None:
            if n == _point and when == "before":
                raise OSError(code, os.strerror(code), "ignored")

        with monkeypatch.context() as patch:
            wrap_fs(patch, act, FAILING)
            try:
                write_run(out, files["b"])
            except OutputError as error:
                failures += 1
                message = str(error)
                assert text in message
                assert str(out) in message and "is intact" in message
                assert state(out, files) == "a", point
            else:
                pytest.fail(f"no error at step {point}")
        assert leftovers(out) == [], point
    assert failures == steps


def test_disk_full_through_the_cli_is_exit_3_naming_the_file(
    tmp_path: Path, runs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    case = {**runs["case"], "out": tmp_path / "out"}
    fast = ("--analyses", "performance", "--samples", "8", "--quiet")
    assert explain(case, *fast).exit_code == 0
    before = verify(case["out"])
    original = output.FS.write

    def full(path: Path, data: bytes) -> None:
        if path.name == "report.html":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(path, data)

    monkeypatch.setattr(output.FS, "write", full)
    result = explain(case, *fast, "--seed", "3")
    assert result.exit_code == 3, result.output
    assert result.stderr.strip().splitlines() == [
        f"tsreport: error: Cannot write {case['out']}/report.html: No space left on device [ENOSPC]. The previous "
        f"report in {case['out']} is intact; free space or choose another --out."
    ]
    assert verify(case["out"]) == before


def test_rerun_with_fewer_formats_leaves_no_stale_file(tmp_path: Path, runs: dict[str, Any]) -> None:
    case = {**runs["case"], "out": tmp_path / "out"}
    fast = ("--analyses", "performance", "--samples", "8")
    assert explain(case, *fast, "--format", "html,pdf").exit_code == 0
    assert (case["out"] / "report.pdf").is_file()
    assert explain(case, *fast, "--format", "html").exit_code == 0
    assert not (case["out"] / "report.pdf").exists()
    assert set(verify(case["out"])) >= {"results.json", "report.html"}
    assert "report.pdf" not in verify(case["out"])


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("", "Error: Invalid --out '': give a folder name, e.g. --out tsreport-report."),
        (".", "Error: Invalid --out '.': it is the current folder, and the report replaces the whole folder. "
              "Give a folder of its own, e.g. --out tsreport-report."),
        ("..", "Error: Invalid --out '..': it is a parent of the current folder, and the report replaces the whole "
               "folder. Give a folder of its own, e.g. --out tsreport-report."),
    ],
)  # fmt: skip
def test_out_that_would_replace_the_users_folder_is_exit_2(
    tmp_path: Path, runs: dict[str, Any], monkeypatch: pytest.MonkeyPatch, out: str, message: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.txt").write_text("keep")
    monkeypatch.chdir(work)
    result = explain({**runs["case"], "out": out}, "--analyses", "performance")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [message]
    assert sorted(p.name for p in work.iterdir()) == ["mine.txt"]


def test_out_holding_the_data_is_exit_2(tmp_path: Path, runs: dict[str, Any]) -> None:
    folder = tmp_path / "inputs"
    folder.mkdir()
    data = folder / "data.csv"
    data.write_bytes(Path(runs["case"]["data"]).read_bytes())
    result = run_cli(
        "explain", runs["case"]["model"], data, "--schema", runs["case"]["schema"], "--out", tmp_path, "--analyses",
        "performance",
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"it holds the input {data}" in result.stderr


def test_a_users_folder_is_refused_without_force_and_kept_with_it(tmp_path: Path, runs: dict[str, Any]) -> None:
    case = {**runs["case"], "out": tmp_path / "mine"}
    case["out"].mkdir()
    (case["out"] / "notes.txt").write_text("mine")
    (case["out"] / "sub").mkdir()
    (case["out"] / "sub" / "data.bin").write_bytes(b"\x00\x01")
    result = explain(case, "--analyses", "performance")
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines() == [
        f"tsreport: error: --out {case['out']} is not empty ('notes.txt', 'sub/data.bin') and holds no earlier "
        "tsreport run. Choose a new or empty folder, or pass --force to write the report there (its files are kept)."
    ]
    assert sorted(p.name for p in case["out"].iterdir()) == ["notes.txt", "sub"]
    assert leftovers(case["out"]) == []
    assert explain(case, "--analyses", "performance", "--force").exit_code == 0
    assert (case["out"] / "notes.txt").read_text() == "mine"
    assert (case["out"] / "sub" / "data.bin").read_bytes() == b"\x00\x01"
    assert "results.json" in verify(case["out"])
    # The next run replaces tsreport's files and keeps the user's, without --force.
    assert explain(case, "--analyses", "performance", "--seed", "2").exit_code == 0
    assert (case["out"] / "notes.txt").read_text() == "mine"
    assert "notes.txt" not in verify(case["out"])


def test_a_run_of_an_older_tsreport_is_replaced_and_its_scratch_removed(tmp_path: Path, runs: dict[str, Any]) -> None:
    out = tmp_path / "old"
    (out / "figures").mkdir(parents=True)
    (out / "results.json").write_text(json.dumps({"tsreport_version": "0.0.9", "analyses": {}}))
    (out / "report.pdf").write_bytes(b"%PDF-old")
    (out / "figures" / "old.svg").write_text("<svg/>")
    (out / ".tsreport-tmp-abc123").mkdir()  # an older version's staging, inside --out
    write_run(out, runs["files"]["b"])
    assert state(out, runs["files"]) == "b"
    assert not (out / "report.pdf").exists() and not (out / ".tsreport-tmp-abc123").exists()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_staging_of_dead_runs_is_removed_and_of_live_ones_kept(tmp_path: Path, runs: dict[str, Any]) -> None:
    out = tmp_path / "out"
    host = output._host_tag()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.1)
        start = output._process_start(alive.pid)
        dead = tmp_path / f".out.tsreport-{_dead_pid()}-0-{host}-dead1"
        reused = tmp_path / f".out.tsreport-{alive.pid}-{start + 1}-{host}-reused"  # same pid, other process
        live = tmp_path / f".out.tsreport-{alive.pid}-{start}-{host}-live"
        other_host = tmp_path / f".out.tsreport-{_dead_pid()}-0-{'0' * 8 if host != '0' * 8 else '1' * 8}-far"
        for folder in (dead, reused, live, other_host):
            folder.mkdir()
            (folder / "results.json").write_text("{}")
        user = tmp_path / ".out.tsreport-notes"  # not a staging name: never touched
        user.mkdir()
        write_run(out, runs["files"]["a"])
        assert not dead.exists()
        assert live.exists() and other_host.exists() and user.exists()
        if start:  # /proc tells a reused pid apart
            assert not reused.exists()
    finally:
        alive.kill()
        alive.wait()


def _holder_script(out: Path, ready: Path) -> str:
    return (
        "import sys, time; from pathlib import Path; from tsreport.output import OutputFolder\n"
        f"folder = OutputFolder({str(out)!r}); folder.prepare()\n"
        f"Path({str(ready)!r}).write_text('ready'); time.sleep(60)\n"
    )


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def test_a_held_folder_is_exit_3_naming_the_holder(tmp_path: Path, runs: dict[str, Any]) -> None:
    out, ready = tmp_path / "out", tmp_path / "ready"
    holder = subprocess.Popen([sys.executable, "-c", _holder_script(out, ready)], env=_env())
    try:
        while not ready.exists():
            assert holder.poll() is None
            time.sleep(0.05)
        began = time.perf_counter()
        result = explain({**runs["case"], "out": out}, "--analyses", "performance", "--lock-timeout", "0.5")
        assert result.exit_code == 3
        assert result.stderr.strip().splitlines() == [
            f"tsreport: error: --out {out} is in use by tsreport process {holder.pid} (waited 0.5 s). Let that run "
            "finish, or pass --lock-timeout SECONDS to wait for it."
        ]
        assert 0.4 < time.perf_counter() - began < 10
    finally:
        holder.kill()
        holder.wait()
    assert not out.exists()


def test_two_runs_at_once_never_mix_files(tmp_path: Path, runs: dict[str, Any]) -> None:
    case = runs["case"]
    out = tmp_path / "out"
    common = [sys.executable, "-m", "tsreport", "explain", str(case["model"]), str(case["data"]), "--schema",
              str(case["schema"]), "--out", str(out), "--lock-timeout", "120", "--samples", "16"]  # fmt: skip
    first = subprocess.Popen([*common, "--analyses", "performance,permutation", "--format", "html,json"], env=_env())
    second = subprocess.Popen([*common, "--analyses", "performance", "--format", "json", "--seed", "5"], env=_env())
    assert first.wait(timeout=120) == 0 and second.wait(timeout=120) == 0
    files = verify(out)
    present = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != MANIFEST}
    assert present == set(files)
    analyses_run = json.loads((out / "results.json").read_text())["analyses"]
    # One whole run: the html run's report and figures, or the json run's bare results.
    assert ("report.html" in files) == ("permutation" in analyses_run)
    assert leftovers(out) == []
