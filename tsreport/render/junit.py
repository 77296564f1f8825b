"""``junit.xml``: one run as JUnit test results, which Jenkins, GitLab and GitHub test reporters show
natively (``tsreport explain --format junit``).

Two test suites:

- ``tsreport.sanity``: one testcase per sanity check x attribution method (classname
  ``tsreport.sanity.<check>``, name the method), from :mod:`tsreport.verdicts`, the one verdict
  logic that the HTML/PDF cover and summary.md read too. A failed check is a ``<failure>``; a check
  or method that did not run is ``<skipped>`` with the reason (a check that did not run at all is
  one testcase named ``all methods``). A planted control that did not run is not a pass: a method
  that passed the linear control while the nonlinear one did not run (for it, or for every method)
  is ``<skipped>``, its message naming the control that did not run and the one that passed. So a
  document with no failure and no skipped sanity testcase is exactly a run whose cover and
  summary.md say that every check passed.
- ``tsreport.analyses``: one testcase per analysis (classname ``tsreport.analyses``, name the
  analysis), timed by its ``seconds``. A skipped analysis is ``<skipped>``; a failed one is an
  ``<error>``, not a ``<failure>``: JUnit keeps ``<failure>`` for an assertion that was checked
  and did not hold (a sanity verdict), and ``<error>`` for a test that could not be carried out,
  which is what a failed analysis is. The run's warnings are that suite's ``<system-out>``.

The document validates against the JUnit schema the Jenkins xUnit plugin uses (``junit-10.xsd``,
stored in tests/data). That schema has no ``skipped`` attribute on ``<testsuites>``, so the
skipped count is given on each ``<testsuite>`` only. Built with :mod:`xml.etree.ElementTree`;
characters that XML 1.0 forbids (control characters in a field name or a reason) are written as
``\\xHH``.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from typing import Any

from tsreport.verdicts import FAILED, NOT_RUN, check_outcomes

#: Characters XML 1.0 does not allow anywhere (not even as character references).
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: Any) -> str:
    """``value`` as text XML 1.0 can hold: forbidden characters become ``\\xHH`` / ``\\uHHHH``."""

    def replace(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _ILLEGAL_XML.sub(replace, str(value))


def _seconds(value: Any) -> str:
    """A duration as the schema's SUREFIRE_TIME wants it: digits, a dot, digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        value = 0.0
    return f"{value:.3f}"


def _element(parent: ET.Element, tag: str, attributes: dict[str, Any], text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag, {key: xml_text(value) for key, value in attributes.items()})
    if text is not None:
        element.text = xml_text(text)
    return element


def _suite(parent: ET.Element, name: str, cases: list[dict[str, Any]], timestamp: Any) -> ET.Element:
    counts = _counts(cases)
    attributes = {"name": name, **{key: str(value) for key, value in counts.items()}}
    attributes["time"] = _seconds(sum(case["time"] for case in cases))
    if timestamp:
        attributes["timestamp"] = timestamp
    suite = _element(parent, "testsuite", attributes)
    for case in cases:
        testcase = _element(
            suite, "testcase", {"classname": case["classname"], "name": case["name"], "time": _seconds(case["time"])}
        )
        if case["outcome"]:
            tag, kind, message = case["outcome"]
            _element(testcase, tag, {"type": kind, "message": message}, message)
    return suite


def _counts(cases: list[dict[str, Any]]) -> dict[str, int]:
    outcomes = [case["outcome"][0] if case["outcome"] else "passed" for case in cases]
    return {
        "tests": len(cases),
        "failures": outcomes.count("failure"),
        "errors": outcomes.count("error"),
        "skipped": outcomes.count("skipped"),
    }


def _sanity_cases(results: dict[str, Any]) -> list[dict[str, Any]]:
    cases = []
    for outcome in check_outcomes(results):
        if outcome.outcome == FAILED:
            result = ("failure", "SanityCheckFailed", outcome.reason or "failed")
        elif outcome.outcome == NOT_RUN:
            result = ("skipped", "NotRun", outcome.reason or "not run")
        else:
            result = None
        cases.append(
            {
                "classname": f"tsreport.sanity.{outcome.check}",
                "name": outcome.method or "all methods",
                "time": 0.0,
                "outcome": result,
            }
        )
    return cases


def _analysis_cases(results: dict[str, Any]) -> list[dict[str, Any]]:
    cases = []
    for name, entry in (results.get("analyses") or {}).items():
        entry = entry if isinstance(entry, dict) else {}
        status, reason = entry.get("status"), entry.get("reason") or "no reason given"
        if status == "skipped":
            result = ("skipped", "Skipped", reason)
        elif status == "failed":
            result = ("error", "AnalysisFailed", reason)
        elif status == "ok":
            result = None
        else:
            result = ("error", "UnknownStatus", f"unknown status {status!r}")
        cases.append({"classname": "tsreport.analyses", "name": name, "time": entry.get("seconds"), "outcome": result})
    for case in cases:
        seconds = case["time"]
        ok = isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and math.isfinite(seconds)
        case["time"] = float(seconds) if ok and seconds >= 0 else 0.0
    return cases


def render_junit(results: dict[str, Any]) -> str:
    """``junit.xml`` for a results.json dict (``Report.to_dict()``).

    Parameters
    ----------
    results : dict
        The run's results.json, parsed.

    Returns
    -------
    str
        A UTF-8 XML document (with its declaration) valid against the Jenkins JUnit schema.
    """
    run = results.get("run") or {}
    sanity, analyses = _sanity_cases(results), _analysis_cases(results)
    totals = _counts(sanity + analyses)
    root = ET.Element(
        "testsuites",
        {
            "name": "tsreport",
            "tests": str(totals["tests"]),
            "failures": str(totals["failures"]),
            "errors": str(totals["errors"]),
            "time": _seconds(run.get("seconds")),
        },
    )
    timestamp = run.get("started")
    suite = _suite(root, "tsreport.sanity", sanity, timestamp)
    properties = ET.Element("properties")
    suite.insert(0, properties)
    inputs = results.get("inputs") or {}
    for key, value in (
        ("tsreport_version", results.get("tsreport_version")),
        ("results_version", results.get("results_version")),
        ("seed", run.get("seed")),
        ("model.sha256", (inputs.get("model") or {}).get("sha256")),
        ("data.sha256", (inputs.get("data") or {}).get("sha256")),
        ("ranking", ", ".join(str(field) for field in results.get("ranking") or [])),
    ):
        if value is not None and value != "":
            _element(properties, "property", {"name": key, "value": value})
    suite = _suite(root, "tsreport.analyses", analyses, timestamp)
    warnings = [str(w) for w in results.get("warnings") or []]
    if warnings:
        _element(suite, "system-out", {}, "Warnings:\n" + "\n".join(f"- {w}" for w in warnings) + "\n")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=False).join(
        ['<?xml version="1.0" encoding="UTF-8"?>\n', "\n"]
    )


def files(report: Any, context: Any) -> dict[str, bytes]:
    """The junit format (render.registry): junit.xml."""
    return {"junit.xml": render_junit(context.get("results")).encode("utf-8")}
