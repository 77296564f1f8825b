"""Run the real-world corpus (tests/corpus_models.py) end to end through the tsreport CLI.

Each case's model is trained (seconds, fixed seeds), saved, and explained by a separate
``tsreport explain ... --format html,pdf`` process, as a user would run it. Per case it prints the
wall-clock seconds, the exit code, the peak RSS of the process, each analysis's status (with the
reason of anything not ok), the field ranking and whether it is plausible (the field known to drive
the target in the top 2, the pure-noise field below every field the target depends on).

    python bench/run_corpus.py                       # the whole default battery, default settings
    python bench/run_corpus.py --samples 64 --quick  # what tests/test_corpus.py runs
    python bench/run_corpus.py --cases co2_tcn --threads 1

``--threads N`` sets OMP_NUM_THREADS for the explain processes (torch's intra-op threads): on a
machine whose cores are busy with other work, idle-spinning threads can make tiny models far slower.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import corpus_models  # noqa: E402


def run_case(case: corpus_models.CorpusCase, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "tsreport", "explain", *case.model_args(), str(case.data)]
    command += ["--schema", str(case.schema), "--out", str(out), "--format", "html,pdf", "--quiet"]
    if args.samples:
        command += ["--samples", str(args.samples)]
    if args.quick:
        command += ["--config", str(corpus_models.write_config(out.parent / f"{case.name}-config.yaml"))]
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    log = out.parent / f"{case.name}.log"
    started = time.perf_counter()
    with open(log, "wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=out.parent, env=env)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    row: dict[str, Any] = {
        "case": case.name,
        "model": case.primary,
        "seconds": round(seconds, 1),
        "exit": code,
        "peak_rss_mb": round(usage.ru_maxrss / 1024),  # Linux: kilobytes
        "train_seconds": round(case.train_seconds, 1),
    }
    results_path = out / "results.json"
    if code != 0 or not results_path.is_file():
        row["error"] = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        return row
    report = json.loads(results_path.read_text())
    entries = report["analyses"]
    row["statuses"] = {name: entry["status"] for name, entry in entries.items()}
    row["reasons"] = {name: entry.get("reason") for name, entry in entries.items() if entry["status"] != "ok"}
    row["analysis_seconds"] = {name: entry.get("seconds") for name, entry in entries.items()}
    row["sanity"] = {name: check.get("status") for name, check in report.get("sanity", {}).items()}
    row["ranking"] = report["ranking"]
    row["warnings"] = report.get("warnings", [])
    row["non_finite"] = corpus_models.non_finite_numbers(report)
    ranking = report["ranking"]
    row["implausible"] = case.plausible(ranking)
    row["noise_share"] = {name: _share(entries[name], case.noise) for name in ("combined", "permutation")}
    row["windows"] = report["windows"]
    return row


def _share(entry: dict[str, Any], field: str) -> float | None:
    """The field's share of the summed absolute field importance of one analysis."""
    importance = entry.get("field_importance") or {}
    total = sum(abs(v) for v in importance.values() if v is not None)
    return round(abs(importance[field]) / total, 3) if total and importance.get(field) is not None else None


def print_row(row: dict[str, Any]) -> None:
    print(
        f"\n== {row['case']} ({row['model']}): exit {row['exit']}, {row['seconds']} s, peak RSS {row['peak_rss_mb']} MB"
    )
    print(f"   trained in {row['train_seconds']} s")
    if "error" in row:
        print(f"   error: {row['error'][0]}")
        return
    counts: dict[str, list[str]] = {}
    for name, status in row["statuses"].items():
        counts.setdefault(status, []).append(name)
    print(f"   windows: {row['windows']['explained']} explained of {row['windows']['total']}")
    print("   statuses: " + "; ".join(f"{status} {len(names)}" for status, names in counts.items()))
    for name, reason in row["reasons"].items():
        print(f"     {row['statuses'][name]} {name}: {reason}")
    slowest = sorted(row["analysis_seconds"].items(), key=lambda item: -(item[1] or 0))[:3]
    print("   slowest: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in slowest if seconds is not None))
    print(f"   sanity: {row['sanity']}")
    print(f"   ranking: {' > '.join(row['ranking'])}   plausible: {'; '.join(row['implausible']) or 'yes'}")
    print(f"   noise field's share of importance: {row['noise_share']}")
    if row["non_finite"]:
        print(f"   NON-FINITE numbers: {row['non_finite'][:5]}")
    for warning in row["warnings"]:
        print(f"   warning: {warning}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(corpus_models.CASES), help="comma list of cases")
    parser.add_argument("--samples", default=None, help="--samples for explain [default: tsreport's]")
    parser.add_argument("--quick", action="store_true", help="the tests' smaller positive control (QUICK_CONFIG)")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the explain processes")
    parser.add_argument("--out", default=None, help="folder for the cases and reports [default: a temporary one]")
    args = parser.parse_args()

    import torch

    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="tsreport-corpus-"))
    torch.set_num_threads(1)  # training only: the models are tiny
    rows = []
    for name in args.cases.split(","):
        case = corpus_models.CASES[name](root / name)
        row = run_case(case, root / name / "report", args)
        print_row(row)
        rows.append(row)
    (root / "summary.json").write_text(json.dumps(rows, indent=1))
    print(f"\n{'case':<20} {'seconds':>8} {'exit':>5} {'RSS MB':>7}  ranking")
    for row in rows:
        print(
            f"{row['case']:<20} {row['seconds']:>8} {row['exit']:>5} {row['peak_rss_mb']:>7}  {' > '.join(row.get('ranking', []))}"
        )
    print(f"\nreports and summary.json in {root}")
    clean = all(
        r["exit"] == 0 and not r["non_finite"] and "failed" not in r["statuses"].values() and not r["implausible"]
        for r in rows
        if "error" not in r
    )
    return 0 if clean and all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
