"""The report's verdicts on its sanity checks, worked out once, from a results.json dict alone.

Every output that says what was checked reads this module, so they cannot disagree: the HTML/PDF
cover (``templates/sections/summary.html``, through :func:`check_verdicts`), each check's own section
(``templates/sections/sanity_*.html``: its badge and method rows, from ``check_verdicts(...)["by_name"]``),
``summary.md`` (:mod:`tsreport.render.markdown`) and ``junit.xml`` (:mod:`tsreport.render.junit`), both
through :func:`check_outcomes` and :func:`overall_verdict`. It needs no model, jinja2 or matplotlib.

The rules
---------
- A check that did not run (left out by ``--analyses``, skipped, failed, or ran but judged no method)
  is *not run*, with the reason, for every method.
- A check that ran judges each method. A method *fails* the check when any part of it failed (for
  the planted positive control: the linear or the nonlinear control); it *passes* only when every
  part of the check ran for it and passed.
- A planted control that did not run is not a pass. That holds whether it did not run for one
  method (the method could not explain the control's model) or for every method (the control's model
  did not learn the planted target). A method that passed the controls that ran but not the other one
  is *not run* for that check, "in part": ``summary.md`` lists it as not run, ``junit.xml`` makes its
  testcase ``<skipped>``, each with a reason that names the control that did not run; the cover says
  that the method passed what ran and names the control that did not; the check's section badges it
  "not run in full", for the method and for the check.
- A check's own badge is "pass" only when every method it judged passed in full; a method it could
  not test (skipped) makes it "not run in full", never "pass".
- ``all_passed``: every check ran, and every check x method passed in full. It is the only case in
  which any output may say that every check passed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

#: The sanity checks, in the order the report lists them, with the names a reader sees on the cover.
CHECKS = {"sanity_randomization": "model randomisation", "sanity_positive_control": "planted positive control"}
NOT_REQUESTED = "not requested (--analyses)"
NO_REASON = "no reason was recorded"
#: A check x method outcome, as summary.md and junit.xml word it.
PASSED, FAILED, NOT_RUN = "passed", "failed", "not run"
#: The sentence that may only be said when ``all_passed``.
EVERY_CHECK_PASSED = "passed every check"

_OUTCOME_WORDS = {"pass": PASSED, "fail": FAILED, "not run": NOT_RUN}


@dataclasses.dataclass(frozen=True)
class CheckOutcome:
    """One sanity check x attribution method: ``outcome`` is passed | failed | not run, with why.

    ``method`` is None when the whole check did not run (no per-method verdicts exist then).
    ``partial`` is True for a method that passed the parts of the check that ran, while another
    part (a planted control) did not run: its outcome is ``not run`` and ``reason`` names that part.
    """

    check: str
    method: str | None
    outcome: str
    reason: str | None
    partial: bool = False


def check_verdicts(report: Mapping[str, Any]) -> dict[str, Any]:
    """What was checked, from results.json alone: each sanity check passed, failed or not run, and why.

    Parameters
    ----------
    report : mapping
        The run's results.json, parsed (``Report.to_dict()``).

    Returns
    -------
    dict with
        ``checks``: one dict per check in :data:`CHECKS` order: ``name``, ``title``,
        ``verdict`` ("fail" when any method failed it, else "pass" when one passed, else "not run"), ``reason`` (why
        not run, as the cover words it, else None), ``detail`` (the same, as summary.md and junit.xml
        word it), ``methods``, ``notes`` (the planted controls that did not run for any method),
        ``outcome`` (the check's badge: "fail" when any method's outcome is "fail", "pass" only when every
        method's is "pass", else "not run") and ``in_part`` (``outcome`` is "not run" although some method
        passed what ran: the badge reads "not run in full", as summary.md words it);
        ``by_name``: the same check dicts by check name (for a check's own report section);
        ``methods`` maps each method the check judged to ``verdict`` (the method's own verdict on what
        ran: "pass" | "fail" | "not run"), ``reason`` (why not run), ``partial`` (the parts that did
        not run for this method alone), ``outcome`` (the one verdict every output reports: "pass"
        only when every part ran for it and passed; a part that did not run makes it "not run"),
        ``detail`` (why the outcome is not "pass": the failure's figures, or what did not run) and
        ``in_part`` (the outcome is "not run" but the method passed what ran: "not run in full");
        ``outcomes``: the same as a flat list of :class:`CheckOutcome` (see :func:`check_outcomes`);
        ``passed_every_check``: methods that every check tested, fully, and passed;
        ``passed_what_ran``: methods that passed every check that tested them, but not every check did;
        ``failed``: methods that failed a check;
        ``all_passed``: every check ran in full, for every method, and passed: the only case in which a
        report may say that everything passed;
        ``not_run``: [(analysis, status, reason)] for analyses that were skipped or failed, and
        ``not_requested``: the analyses left out by --analyses (the checks excepted: they are in ``checks``);
        ``complete``: every check passed and nothing at all was left out.
    """
    verdicts = sanity_verdicts(report)
    analyses = report.get("analyses") or {}
    not_run = [
        (name, entry.get("status"), entry.get("reason") or NO_REASON)
        for name, entry in analyses.items()
        if name not in CHECKS and isinstance(entry, Mapping) and entry.get("status") != "ok"
    ]
    not_requested = [name for name in _all_analyses() if name not in analyses and name not in CHECKS]
    return {
        **verdicts,
        "not_run": not_run,
        "not_requested": not_requested,
        "complete": verdicts["all_passed"] and not not_run and not not_requested,
    }


def sanity_verdicts(report: Mapping[str, Any]) -> dict[str, Any]:
    """The sanity-check part of :func:`check_verdicts` (all of it but ``not_run``, ``not_requested``
    and ``complete``), which needs no list of every analysis and so imports nothing heavy."""
    analyses = report.get("analyses") or {}
    sanity = report.get("sanity") or {}
    checks = [_judge_check(name, title, analyses.get(name), sanity.get(name)) for name, title in CHECKS.items()]

    methods: list[str] = []
    for check in checks:
        methods += [m for m in check["methods"] if m not in methods]

    def outcomes_of(method: str) -> list[str | None]:
        return [(check["methods"].get(method) or {}).get("outcome") for check in checks]

    failed = [m for m in methods if "fail" in outcomes_of(m)]
    fully_passed = [m for m in methods if all(outcome == "pass" for outcome in outcomes_of(m))]
    passed_what_ran = [
        m
        for m in methods
        if m not in failed
        and m not in fully_passed
        and any((check["methods"].get(m) or {}).get("verdict") == "pass" for check in checks)
    ]
    outcomes = _flatten(checks)
    return {
        "checks": checks,
        "by_name": {check["name"]: check for check in checks},
        "outcomes": outcomes,
        "passed_every_check": fully_passed,
        "passed_what_ran": passed_what_ran,
        "failed": failed,
        "all_passed": bool(outcomes) and all(outcome.outcome == PASSED for outcome in outcomes),
    }


def check_outcomes(report: Mapping[str, Any]) -> list[CheckOutcome]:
    """Every sanity check x method of a results.json dict, in report order.

    A check that ran has one outcome per method it judged; a check that did not run (not requested,
    skipped, failed) has one ``not run`` outcome, ``method`` None, with the reason.
    """
    return sanity_verdicts(report)["outcomes"]


def overall_verdict(outcomes: list[CheckOutcome]) -> str:
    """The run's verdict in a few words: :data:`EVERY_CHECK_PASSED` only when every check ran and every
    method passed it in full (exactly when :func:`check_verdicts` says ``all_passed``)."""
    total = len(outcomes)
    failed = sum(o.outcome == FAILED for o in outcomes)
    not_run = sum(o.outcome == NOT_RUN for o in outcomes)
    partial = any(o.partial for o in outcomes)
    not_run_words = f"{not_run} not run" + (" in full" if partial else "")
    if failed:
        return f"failed {failed} of {total} {_checks_word(total)}" + (f" ({not_run_words})" if not_run else "")
    if not_run or not total:
        passed = total - not_run
        if not passed and not partial:
            return "no sanity check ran"
        if partial:
            return f"passed {passed} of {total} {_checks_word(total)} in full; {not_run_words}"
        return f"passed the {passed} {_checks_word(passed)} that ran; {not_run_words}"
    return EVERY_CHECK_PASSED


def _checks_word(count: int) -> str:
    return "check" if count == 1 else "checks"


# ---------------------------------------------------------------- one check


def _judge_check(name: str, title: str, entry: Any, summary: Any) -> dict[str, Any]:
    check: dict[str, Any] = {
        "name": name,
        "title": title,
        "verdict": "not run",
        "reason": None,
        "detail": None,
        "methods": {},
        "notes": [],
        "outcome": "not run",
        "in_part": False,
    }
    summary = summary if isinstance(summary, Mapping) else {}
    if not isinstance(entry, Mapping):
        check["reason"] = check["detail"] = str(summary.get("reason") or NOT_REQUESTED)
        return check
    status = entry.get("status")
    if status != "ok":
        reason = str(entry.get("reason") or NO_REASON)
        check["reason"] = reason if status == "skipped" else f"it failed: {reason}"
        check["detail"] = f"{status}: {reason}"
        return check
    methods = entry.get("methods")
    if not isinstance(methods, Mapping) or not methods:
        check["reason"] = check["detail"] = "it ran but judged no method"
        return check

    # A planted control that did not run at all did not run for any method.
    skipped_controls = {
        kind: str(control.get("reason") or NO_REASON)
        for kind, control in (entry.get("controls") or {}).items()
        if isinstance(control, Mapping) and control.get("verdict") == "skipped"
    }
    check["notes"] = [f"the {kind} control did not run: {reason}" for kind, reason in skipped_controls.items()]
    for method, result in methods.items():
        check["methods"][method] = _judge_method(name, result, entry, skipped_controls)
    verdicts = [result["verdict"] for result in check["methods"].values()]
    if "fail" in verdicts:
        check["verdict"] = "fail"
    elif "pass" in verdicts:
        check["verdict"] = "pass"
    else:  # it ran, but could test none of the methods: no badge may say "pass"
        check["verdict"] = "not run"
        why = "; ".join(f"{method}: {result['reason']}" for method, result in check["methods"].items())
        check["reason"] = check["detail"] = f"it could test no method ({why})"
    for result in check["methods"].values():
        result["in_part"] = result["outcome"] == "not run" and result["verdict"] == "pass"
    check["outcome"] = _check_outcome([result["outcome"] for result in check["methods"].values()])
    check["in_part"] = check["outcome"] == "not run" and check["verdict"] == "pass"
    return check


def _check_outcome(outcomes: list[str]) -> str:
    """A check's badge from its methods' outcomes: a part that did not run for one method is not a pass."""
    if "fail" in outcomes:
        return "fail"
    return "pass" if outcomes and all(outcome == "pass" for outcome in outcomes) else "not run"


def _judge_method(
    check: str, result: Any, entry: Mapping[str, Any], skipped_controls: dict[str, str]
) -> dict[str, Any]:
    """One method's verdict on what ran, and its outcome once the parts that did not run are counted."""
    result = result if isinstance(result, Mapping) else {"verdict": result}
    parts = {
        kind: part for kind, part in result.items() if isinstance(part, Mapping) and part.get("verdict") is not None
    }
    skipped_parts = {
        kind: str(part.get("reason") or NO_REASON) for kind, part in parts.items() if part["verdict"] == "skipped"
    }
    # What did not run for this method: its own skipped parts, and the controls that ran for nobody
    # (whatever verdict a method records for those: a control that did not run passed no method).
    missing = {**skipped_parts, **skipped_controls}
    missing_text = "; ".join(f"the {kind} control did not run: {why}" for kind, why in missing.items())
    partial = [f"{kind} control: {why}" for kind, why in skipped_parts.items()]

    own = result.get("verdict")
    if own == "fail" or any(part["verdict"] == "fail" for part in parts.values()):
        detail = _failure_reason(check, result, entry)
        detail = f"{detail}; {missing_text}" if missing_text else detail
        return {"verdict": "fail", "reason": None, "partial": partial, "outcome": "fail", "detail": detail}
    if own != "pass":
        reason = str(result.get("reason") or "; ".join(partial) or "the method gave no verdict")
        return {"verdict": "not run", "reason": reason, "partial": [], "outcome": "not run", "detail": reason}
    if missing:
        passed = [kind for kind, part in parts.items() if part["verdict"] == "pass" and kind not in missing]
        ran = f"; the {' and '.join(passed)} control{'s' if len(passed) > 1 else ''} passed" if passed else ""
        return {
            "verdict": "pass",
            "reason": None,
            "partial": partial,
            "outcome": "not run",
            "detail": missing_text + ran,
        }
    return {"verdict": "pass", "reason": None, "partial": [], "outcome": "pass", "detail": None}


def _failure_reason(check: str, result: Mapping[str, Any], entry: Mapping[str, Any]) -> str:
    """Why a method failed its check, in the check's own figures."""
    if check == "sanity_randomization":
        final = result.get("final") or {}
        thresholds = entry.get("thresholds") or {}
        figures = []
        for key, limit_key in (("spearman", "max_spearman"), ("field_rank_tau", "max_field_rank_tau")):
            if _is_number(final.get(key)) and _is_number(thresholds.get(limit_key)):
                figures.append(f"{key} {final[key]:.2f} > {thresholds[limit_key]:g}")
        detail = f" ({', '.join(figures)})" if figures else ""
        return f"the explanation barely changed after randomising the model's weights{detail}"
    failed = []
    for kind, control in result.items():
        if isinstance(control, Mapping) and control.get("verdict") == "fail":
            ranks = control.get("ranks") or {}
            placed = ", ".join(f"{field} #{rank}" for field, rank in ranks.items())
            failed.append(f"{kind} control: planted field ranked {placed}" if placed else f"{kind} control failed")
    return "; ".join(failed) or "the planted fields were not ranked first"


def _flatten(checks: list[dict[str, Any]]) -> list[CheckOutcome]:
    outcomes = []
    for check in checks:
        if not check["methods"]:
            outcomes.append(CheckOutcome(check["name"], None, NOT_RUN, check["detail"]))
            continue
        for method, result in check["methods"].items():
            outcomes.append(
                CheckOutcome(
                    check["name"], method, _OUTCOME_WORDS[result["outcome"]], result["detail"], result["in_part"]
                )
            )
    return outcomes


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _all_analyses() -> list[str]:
    """The default battery: every analysis a run without --analyses makes (opt-in ones such as
    gradient_shap are never 'not requested'). The registry imports torch: only when a report is rendered."""
    from tsreport.analyses import DEFAULT_NAMES

    return list(DEFAULT_NAMES)
