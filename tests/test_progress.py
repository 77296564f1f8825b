"""Progress: bars on a TTY, timestamped start/end lines elsewhere, nothing with --quiet; never a number changed."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import strip_timings

from tsreport import analyses
from tsreport.config import build_config
from tsreport.pipeline import explain
from tsreport.progress import LOG_LINE, BarProgress, CallbackProgress, LineProgress, Progress

FAST = "performance,permutation,occlusion"


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(case: dict[str, Any], progress: Any, *, names: str = FAST, verbose: bool = False, **options: Any) -> Any:
    config = build_config(
        {}, {"analyses": names, "samples": "16", "verbose": verbose, **options}, analysis_names=analyses.NAMES
    )
    return explain(case["model"], case["data"], case["schema"], config, progress=progress)


LINE = re.compile(
    r"^(?P<stamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) tsreport: \[(?P<position>\d+)/(?P<count>\d+)\] (?P<name>\w+) "
    r"(?:(?P<started>started)|done in (?P<seconds>\d+\.\d) s \((?P<status>ok|skipped|failed)\))$"
)


def test_not_a_tty_gives_one_timestamped_start_and_end_line_per_analysis(case: dict[str, Any]) -> None:
    stream = io.StringIO()
    progress = Progress.create(quiet=False, verbose=False, stream=stream)
    assert isinstance(progress, LineProgress)
    report = run(case, progress, names="performance,permutation,occlusion,attention")
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 8, text  # no notes without --verbose: only the starts and ends
    matches = [LINE.match(line) for line in lines]
    assert all(matches), text
    names = ["performance", "permutation", "occlusion", "attention"]
    for index, name in enumerate(names):
        start, end = matches[2 * index], matches[2 * index + 1]
        assert (start["name"], start["started"], start["position"], start["count"]) == (
            name,
            "started",
            str(index + 1),
            "4",
        )
        assert end["name"] == name and end["started"] is None
        assert end["status"] == report.analyses[name]["status"]
        assert float(end["seconds"]) == pytest.approx(report.analyses[name]["seconds"], abs=0.051)
    assert matches[-1]["status"] == "skipped"  # a linear TorchScript model has no attention
    stamps = [dt.datetime.fromisoformat(m["stamp"].replace("Z", "+00:00")) for m in matches]
    assert all(stamp.tzinfo == dt.timezone.utc for stamp in stamps)
    assert stamps == sorted(stamps)
    assert abs((dt.datetime.now(dt.timezone.utc) - stamps[-1]).total_seconds()) < 60


def test_not_a_tty_with_verbose_adds_the_notes_as_timestamped_lines(case: dict[str, Any]) -> None:
    stream = io.StringIO()
    run(case, Progress.create(quiet=False, verbose=True, stream=stream), names="performance")
    lines = stream.getvalue().splitlines()
    notes = [line for line in lines if not LINE.match(line)]
    assert [re.sub(r"^\S+Z tsreport: ", "", n) for n in notes] == [
        f"reading {case['data']}",
        "104 windows of 8 steps x 6 channels",
        "probing batch sizes",
    ]
    assert all(LOG_LINE.match(line) for line in lines)


def test_a_tty_shows_one_bar_per_analysis_with_elapsed_and_eta(case: dict[str, Any]) -> None:
    stream = FakeTTY()
    progress = Progress.create(quiet=False, verbose=False, stream=stream)
    assert isinstance(progress, BarProgress)
    run(case, progress)
    text = stream.getvalue()
    assert "\r" in text  # redrawn in place
    finals = text.split("\n")[-4:-1]  # each bar is kept, finished, on a line of its own
    for position, (name, final) in enumerate(zip(FAST.split(","), finals), start=1):
        assert re.search(rf"\[{position}/3\] {name}: 100%\|#+\| \[\d\d:\d\d<\d\d:\d\d, ok\]$", final), final
    # While running, the ETA is unknown ('?') at 0%, then estimated.
    assert re.search(r"\[2/3\] permutation:\s+0%\|\s+\| \[\d\d:\d\d<\?", text)
    assert re.search(r"\[2/3\] permutation:\s+[1-9]\d?%\|#*[^|]*\| \[\d\d:\d\d<\d\d:\d\d", text)


def test_quiet_prints_nothing(case: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    for stream in (io.StringIO(), FakeTTY()):
        run(case, Progress.create(quiet=True, verbose=True, stream=stream))
        assert stream.getvalue() == ""
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_a_plain_callback_still_gets_the_notes_and_each_analysis(case: dict[str, Any]) -> None:
    messages: list[str] = []
    run(case, messages.append)
    assert messages[0] == f"reading {case['data']}"
    assert messages[1].endswith("windows of 8 steps x 6 channels")
    assert "[1/3] performance" in messages and "[3/3] occlusion" in messages
    assert "permutation: a" in messages  # an analysis's own notes
    assert isinstance(Progress.of(messages.append), CallbackProgress)


def test_progress_never_changes_a_number(case: dict[str, Any], tmp_path: Path) -> None:
    import models

    lstm = models.save_torchscript(models.TinyLSTM(), tmp_path / "lstm.pt")
    names = "performance,permutation,occlusion,integrated_gradients,sensitivity,shap,sanity_randomization"
    runs = [
        run({**case, "model": lstm}, progress, names=names)
        for progress in (None, Progress.create(quiet=False, verbose=True, stream=FakeTTY()), io.StringIO().write)
    ]
    plain, *others = (strip_timings(report.to_dict()) for report in runs)
    for other in others:
        assert other == plain


def test_steps_move_the_bar_forward_only_and_nested_blocks_do_not_count() -> None:
    stream = FakeTTY()
    progress = Progress.create(quiet=False, verbose=False, stream=stream)
    windows = [0]
    with progress.analysis("toy", 1, 1) as run:
        with progress.steps(4) as counts:
            assert counts
            for _ in range(2):
                progress.update()
            with progress.steps(100) as inner:  # another analysis's code reused inside this one
                assert not inner
                progress.update(50)  # clamped to the outer block
            assert (run.total, run.done) == (4, 4)
        for _ in progress.counted(range(3)):  # a second block adds to the total
            assert run.total == 7
        with progress.steps(10, counter=lambda: windows[0]):
            windows[0] = 6
            run.poll()
            assert run.done == 7 + 6
            windows[0] = 99
            run.poll()
            assert run.done == 17  # never past the block
        run.finish("ok", 0.01)
    assert (run.total, run.done) == (17, 17)
    percents = [int(p) for p in re.findall(r"toy:\s+(\d+)%", stream.getvalue())]
    assert percents[-1] == 100 and percents[0] == 0


def test_steps_outside_an_analysis_and_silent_progress_are_harmless() -> None:
    progress = Progress()
    with progress.steps(3) as counts:
        progress.update()
    assert counts is False
    assert list(progress.counted([1, 2])) == [1, 2]
    with progress.analysis("toy", 1, 1) as run:
        progress("a note")
        with progress.steps(2):
            progress.update(2)
        run.finish("ok", 0.0)


def test_an_interrupted_analysis_says_so_in_the_log() -> None:
    stream = io.StringIO()
    progress = Progress.create(quiet=False, verbose=False, stream=stream)
    with pytest.raises(KeyboardInterrupt), progress.analysis("occlusion", 3, 14):
        raise KeyboardInterrupt
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith(" tsreport: [3/14] occlusion started")
    assert re.search(r" tsreport: \[3/14\] occlusion stopped after \d+\.\d s \(KeyboardInterrupt\)$", lines[1])
    tty = FakeTTY()
    bars = Progress.create(quiet=False, verbose=False, stream=tty)
    with pytest.raises(KeyboardInterrupt), bars.analysis("occlusion", 3, 14):
        raise KeyboardInterrupt
    assert "stopped (KeyboardInterrupt)" in tty.getvalue()
