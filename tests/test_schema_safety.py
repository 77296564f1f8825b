"""Hostile and mistyped schema, config and results files (issue 9, item 4; CONTRACT §1 exit 3).

Each case ends with its exit code and one exact stderr line, within seconds: alias bombs,
deep nesting, duplicate keys, oversized files, values of the wrong type and absurd window
sizes. Loading is :mod:`tsreport.safeload`; the type checks are :func:`tsreport.schema.parse_schema`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from helpers import run_cli

from tsreport import safeload
from tsreport.exceptions import InputError, SchemaError
from tsreport.schema import load_schema, parse_schema

FAST = ("--analyses", "performance", "--format", "json", "--samples", "8")
#: The conftest case's schema, written by hand so that the line numbers below are plain to see.
SCHEMA = """\
version: 1
task: regression
time: time
group: series
window: 8
target: y
baseline: zero
fields: [a, b, noise, {name: w, columns: [w_0, w_1, w_2], kind: categorical}]
"""
#: Nine levels of ten aliases: 10**9 values once expanded (the "billion laughs").
LAUGHS = "".join(
    f"  - &l{level} [" + ", ".join([f"*l{level - 1}" if level else "lol"] * 10) + "]\n" for level in range(10)
)
SECONDS = 10  # generous for a shared CI machine; the unbounded versions took 30 s and gigabytes


def run_timed(*args: Any) -> Any:
    started = time.perf_counter()
    result = run_cli(*args)
    assert time.perf_counter() - started < SECONDS
    return result


def explain_with(case: dict, schema_text: str, name: str = "schema.yaml", *extra: Any) -> tuple[Any, Path]:
    schema = case["dir"] / name
    schema.write_text(schema_text)
    return run_timed(
        "explain", case["model"], case["data"], "--schema", schema, "--out", case["out"], *FAST, *extra
    ), schema


def assert_line(result: Any, code: int, line: str) -> None:
    """Exit ``code`` and ``line`` as the whole of stderr: one line, no traceback."""
    assert result.exit_code == code, result.output
    assert result.stderr.splitlines() == [line], result.stderr


def write_config(case: dict, text: str) -> Path:
    config = case["dir"] / "config.yaml"
    config.write_text(text)
    return config


def write_results(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


GOOD_RESULTS = json.dumps({"results_version": 1, "analyses": {}})


# ---------------------------------------------------------------- the schema as written still runs


def test_the_hand_written_schema_runs(case: dict) -> None:
    result, _ = explain_with(case, SCHEMA)
    assert result.exit_code == 0, result.output


def test_a_few_anchors_still_work(case: dict) -> None:
    text = SCHEMA.replace(
        "fields: [a, b, noise, {name: w, columns: [w_0, w_1, w_2], kind: categorical}]",
        "fields:\n"
        "  - {name: a, columns: [a], scale: &unit {mean: 0.0, std: 1.0}}\n"
        "  - {name: b, columns: [b], scale: *unit}\n"
        "  - {name: noise, columns: [noise], scale: *unit}\n"
        "  - &onehot {name: w, columns: [w_0, w_1, w_2], kind: categorical}\n",
    )
    result, schema = explain_with(case, text)
    assert result.exit_code == 0, result.output
    assert [field.scale for field in load_schema(schema).fields[:3]] == [load_schema(schema).fields[0].scale] * 3


def test_merge_keys_may_override_what_they_merge() -> None:
    text = "base: &base {mean: 0.0, std: 1.0}\nscale: {<<: *base, std: 2.0}\n"
    loaded = safeload.parse_yaml(text, "s.yaml", role="schema", limits=safeload.SCHEMA_LIMITS, error=SchemaError)
    assert loaded["scale"] == {"mean": 0.0, "std": 2.0}


# ---------------------------------------------------------------- alias bombs


def test_billion_laughs_in_the_schema_is_refused(case: dict) -> None:
    # before: 30 s and 2.5 GB, then MemoryError (exit 4); 12 GB without a memory limit
    text = SCHEMA.replace("baseline: zero\n", "classes:\n" + LAUGHS + "baseline: *l9\n")
    result, schema = explain_with(case, text)
    assert_line(
        result,
        3,
        f"tsreport: error: {schema}:13:45: YAML aliases expand to more than 1,000,000 values (an alias bomb?); "
        "the schema is refused. Write the values out instead of nesting aliases.",
    )


def test_billion_laughs_in_the_config_is_refused(case: dict) -> None:
    config = write_config(case, "samples: 8\nlol:\n" + LAUGHS)
    result, _ = explain_with(case, SCHEMA, "schema.yaml", "--config", config)
    assert_line(
        result,
        3,
        f"tsreport: error: {config}:8:45: YAML aliases expand to more than 1,000,000 values (an alias bomb?); "
        "the config file is refused. Write the values out instead of nesting aliases.",
    )


def test_recursive_alias_is_refused(case: dict) -> None:
    result, schema = explain_with(case, SCHEMA + "classes: &loop [*loop]\n")
    assert_line(
        result,
        3,
        f"tsreport: error: {schema}:9:17: the alias *loop refers to the collection that contains it; "
        "recursive values are not allowed; the schema is not valid YAML.",
    )


def test_aliases_count_towards_the_depth() -> None:
    text = "a: &a " + "[" * 60 + "]" * 60 + "\nb: " + "[" * 45 + "*a" + "]" * 45 + "\n"
    with pytest.raises(SchemaError, match=r"^s\.yaml:2:49: nested more than 100 levels deep once its aliases"):
        safeload.parse_yaml(text, "s.yaml", role="schema", limits=safeload.SCHEMA_LIMITS, error=SchemaError)


# ---------------------------------------------------------------- deep nesting


def test_deep_flow_yaml_schema_is_refused(case: dict) -> None:
    # before: RecursionError, exit 4
    result, schema = explain_with(case, SCHEMA + "classes: " + "[" * 5000 + "]" * 5000 + "\n")
    assert_line(result, 3, f"tsreport: error: {schema}:9:109: nested more than 100 levels deep; the schema is refused.")


def test_deep_block_yaml_schema_is_refused(case: dict) -> None:
    result, schema = explain_with(case, SCHEMA + "classes:\n  " + "- " * 5000 + "x\n")
    assert_line(
        result, 3, f"tsreport: error: {schema}:10:201: nested more than 100 levels deep; the schema is refused."
    )


def test_deep_json_schema_is_refused(case: dict) -> None:
    # before: RecursionError, exit 4
    raw = json.dumps(yaml.safe_load(SCHEMA))[:-1] + ', "classes": ' + "[" * 5000 + "]" * 5000 + "}"
    result, schema = explain_with(case, raw, "schema.json")
    column = raw.index("[" * 101) + 100  # the document's own {} is level 1
    assert_line(
        result, 3, f"tsreport: error: {schema}:1:{column}: nested more than 100 levels deep; the schema is refused."
    )


def test_deep_json_results_in_diff_is_refused(tmp_path: Path) -> None:
    # before: RecursionError, exit 4
    good = write_results(tmp_path, "old.json", GOOD_RESULTS)
    deep = write_results(
        tmp_path, "new.json", '{"results_version": 1, "analyses": {"x": ' + "[" * 5000 + "]" * 5000 + "}}"
    )
    assert_line(
        run_timed("diff", good, deep),
        3,
        f"tsreport: error: {deep}:1:140: nested more than 100 levels deep; the results file is refused.",
    )


def test_deep_yaml_config_is_refused(case: dict) -> None:
    config = write_config(case, "samples: " + "[" * 5000 + "]" * 5000 + "\n")
    result, _ = explain_with(case, SCHEMA, "schema.yaml", "--config", config)
    assert_line(
        result, 3, f"tsreport: error: {config}:1:109: nested more than 100 levels deep; the config file is refused."
    )


def test_brackets_inside_json_strings_do_not_count() -> None:
    text = json.dumps({"note": "[" * 5000 + "{" * 5000, "x": [[[1]]]})
    loaded = safeload.parse_json(text, "r.json", role="results file", limits=safeload.RESULTS_LIMITS, error=InputError)
    assert loaded["x"] == [[[1]]]


@pytest.mark.parametrize("language", ["json", "yaml"])
def test_depth_limit_is_exactly_max_depth(language: str) -> None:
    parse = safeload.parse_json if language == "json" else safeload.parse_yaml
    limits = safeload.SCHEMA_LIMITS
    assert parse("[" * 100 + "]" * 100, "f", role="schema", limits=limits, error=SchemaError) is not None
    with pytest.raises(SchemaError, match=r"^f:1:101: nested more than 100 levels deep; the schema is refused\.$"):
        parse("[" * 101 + "]" * 101, "f", role="schema", limits=limits, error=SchemaError)


def test_deep_json_is_never_a_recursion_error_whatever_the_size() -> None:
    text = "[" * 200_000 + "]" * 200_000  # 400 KB
    with pytest.raises(InputError, match="nested more than 100 levels deep"):
        safeload.parse_json(text, "r.json", role="results file", limits=safeload.RESULTS_LIMITS, error=InputError)


# ---------------------------------------------------------------- duplicate keys


def test_duplicate_yaml_key_in_the_schema_is_refused(case: dict) -> None:
    # before: the last 'window' won silently
    result, schema = explain_with(case, SCHEMA + "window: 4\n")
    assert_line(
        result,
        3,
        f"tsreport: error: {schema}:9:1: duplicate key 'window' (first at line 5); the schema is not valid YAML.",
    )


def test_nested_columns_hidden_by_a_duplicate_key_are_refused(case: dict) -> None:
    # Issue 9 item 4, "a field whose columns: is a nested list runs to a report": the nested list alone was
    # always refused; it ran to a report when a second 'columns:' followed it, since the last key won.
    text = (
        SCHEMA.replace("fields: [a, b,", "fields:\n  - name: a\n    columns: [[a, b]]\n    columns: [a]\n  - b\n  -")
        .replace("noise, {name", "noise\n  - {name")
        .replace("categorical}]", "categorical}")
    )
    result, schema = explain_with(case, text)
    assert_line(
        result,
        3,
        f"tsreport: error: {schema}:11:5: duplicate key 'columns' (first at line 10); the schema is not valid YAML.",
    )


def test_duplicate_json_key_in_the_schema_is_refused(case: dict) -> None:
    raw = json.dumps(yaml.safe_load(SCHEMA), indent=1).replace('"window": 8,', '"window": 8,\n "window": 4,')
    result, schema = explain_with(case, raw, "schema.json")
    assert_line(
        result,
        3,
        f"tsreport: error: {schema}:7:2: duplicate key 'window' (first at line 6, column 2); "
        "the schema is not valid JSON.",
    )


def test_duplicate_json_key_in_an_inner_object_is_located(tmp_path: Path) -> None:
    text = '{"a": 1, "b": {"a": 2, "c": [1, {"a": 1}], "a": 7}}'
    with pytest.raises(SchemaError) as raised:
        safeload.parse_json(text, "s.json", role="schema", limits=safeload.SCHEMA_LIMITS, error=SchemaError)
    assert (
        str(raised.value)
        == "s.json:1:44: duplicate key 'a' (first at line 1, column 16); the schema is not valid JSON."
    )


def test_duplicate_json_key_in_results_is_refused(tmp_path: Path) -> None:
    good = write_results(tmp_path, "old.json", GOOD_RESULTS)
    dup = write_results(tmp_path, "new.json", '{"results_version": 1, "analyses": {}, "results_version": 2}')
    assert_line(
        run_timed("diff", good, dup),
        3,
        f"tsreport: error: {dup}:1:40: duplicate key 'results_version' (first at line 1, column 2); "
        "not valid JSON: give a results.json written by tsreport.",
    )


def test_duplicate_key_in_the_config_is_a_usage_error(case: dict) -> None:
    config = write_config(case, "samples: 8\nseed: 1\nsamples: 16\n")
    result, _ = explain_with(case, SCHEMA, "schema.yaml", "--config", config)
    assert_line(
        result, 2, f"Error: {config}:3:1: duplicate key 'samples' (first at line 1); the config file is not valid YAML."
    )


# ---------------------------------------------------------------- oversized files and odd scalars


def test_oversized_schema_is_refused_unread(case: dict) -> None:
    result, schema = explain_with(case, SCHEMA + "# " + "x" * 1_000_000 + "\n")
    assert_line(
        result,
        3,
        f"tsreport: error: {schema} is larger than 1 MB, the most a schema may be; it is refused unread. "
        "Check that this is the right file.",
    )


def test_oversized_config_is_refused_unread(case: dict) -> None:
    config = write_config(case, "samples: 8\n# " + "x" * 1_000_000 + "\n")
    result, _ = explain_with(case, SCHEMA, "schema.yaml", "--config", config)
    assert_line(
        result,
        3,
        f"tsreport: error: {config} is larger than 1 MB, the most a config file may be; it is refused unread. "
        "Check that this is the right file.",
    )


def test_oversized_results_are_refused_unread(tmp_path: Path) -> None:
    good = write_results(tmp_path, "old.json", GOOD_RESULTS)
    huge = tmp_path / "new.json"
    with huge.open("wb") as stream:
        stream.truncate(250_000_000)  # sparse: no disk used, and never read
    assert_line(
        run_timed("diff", good, huge),
        3,
        f"tsreport: error: {huge} is larger than 200 MB, the most a results file may be; it is refused unread. "
        "Check that this is the right file.",
    )


def test_yaml_syntax_error_is_one_line(case: dict) -> None:
    result, schema = explain_with(case, SCHEMA.replace("window: 8", "window: 8: 9"))
    assert_line(
        result, 3, f"tsreport: error: {schema}:5:10: mapping values are not allowed here; the schema is not valid YAML."
    )


def test_yaml_syntax_error_in_the_config_stays_a_usage_error(case: dict) -> None:
    config = write_config(case, "samples: [8\n")
    result, _ = explain_with(case, SCHEMA, "schema.yaml", "--config", config)
    assert_line(
        result,
        2,
        f"Error: {config}:2:1: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence); "
        "the config file is not valid YAML.",
    )


def test_json_syntax_error_is_one_line(case: dict) -> None:
    result, schema = explain_with(case, '{"window": 8,}', "schema.json")
    assert_line(
        result,
        3,
        f"tsreport: error: {schema}:1:14: Expecting property name enclosed in double quotes; "
        "the schema is not valid JSON.",
    )


def test_control_character_is_located(case: dict) -> None:
    result, schema = explain_with(case, SCHEMA.replace("target: y", "target: y\x07"))
    assert_line(
        result,
        3,
        f"tsreport: error: {schema}:6:10: unacceptable character #x0007: control characters are not allowed; "
        "the schema is not valid YAML.",
    )


def test_a_megabyte_base_60_integer_is_refused_fast(case: dict) -> None:
    # before: 34 s of CPU, then exit 4 (int conversion limit); YAML 1.1 reads 1:30 as 90
    result, schema = explain_with(case, SCHEMA.replace("window: 8", "window: 1" + ":1" * 400_000))
    assert_line(
        result,
        3,
        f"tsreport: error: {schema}:5:9: an integer of 800,001 characters is not a usable number; "
        "the schema is not valid YAML.",
    )


def test_a_json_integer_of_thousands_of_digits_is_refused(case: dict) -> None:
    result, schema = explain_with(case, '{"window": ' + "1" * 5000 + "}", "schema.json")
    assert_line(
        result,
        3,
        f"tsreport: error: {schema}: an integer of 5,000 digits is not a usable number; the schema is not valid JSON.",
    )


def test_schema_that_is_not_utf8(case: dict) -> None:
    schema = case["dir"] / "schema.yaml"
    schema.write_bytes(SCHEMA.encode() + b"# caf\xe9\n")
    result = run_timed("explain", case["model"], case["data"], "--schema", schema, "--out", case["out"], *FAST)
    assert_line(result, 3, f"tsreport: error: {schema}:9:6: the schema is not UTF-8 text; save it as UTF-8.")


# ---------------------------------------------------------------- values of the wrong type


def _with(line: str, replacement: str) -> str:
    assert line in SCHEMA
    return SCHEMA.replace(line, replacement)


FIELDS = "fields: [a, b, noise, {name: w, columns: [w_0, w_1, w_2], kind: categorical}]"
FIELD_A = "fields: [{name: a, columns: [a]{}}, b, noise, {name: w, columns: [w_0, w_1, w_2], kind: categorical}]"


@pytest.mark.parametrize(
    ("schema_text", "message"),
    [
        pytest.param(
            _with("window: 8", 'window: "48"'),
            "'window' must be an integer in [1, 100000]; got '48' (a string: write the number without quotes).",
            id="window-string",
        ),
        pytest.param(
            _with("window: 8", "window: true"),
            "'window' must be an integer in [1, 100000]; got True (a boolean).",
            id="window-bool",
        ),
        pytest.param(
            _with("window: 8", "window: 8\nstride: 1.5"),
            "'stride' must be an integer in [1, 1000000000]; got 1.5 (a number with a fraction).",
            id="stride-float",
        ),
        pytest.param(
            _with(FIELDS, "fields: {a: 1}"),
            "'fields' must be a non-empty list of fields; got {'a': 1} (a mapping). "
            "Write each field as a list item: - {name: .., columns: [..]}.",
            id="fields-mapping",
        ),
        pytest.param(
            _with(FIELDS, FIELD_A.replace("columns: [a]{}", "columns: [[a, b]]")),
            ", field #1 'a': 'columns' must be a non-empty list of column names (strings); got [['a', 'b']] (a list). "
            "Write it flat: columns: [a, b].",
            id="columns-nested",
        ),
        pytest.param(
            _with(FIELDS, FIELD_A.replace("columns: [a]{}", "columns: [a, [[b]]]")),
            ", field #1 'a': 'columns' must be a non-empty list of column names (strings); got ['a', [['b']]] "
            "(a list). Write it flat: columns: [a, b].",
            id="columns-deeply-nested",
        ),
        pytest.param(
            _with(FIELDS, FIELD_A.replace("name: a, columns: [a]{}", "name: 3, columns: [a]")),
            ", field #1: 'name' must be a non-empty string (the field's name); got 3 (an integer).",
            id="name-int",
        ),
        pytest.param(
            _with(FIELDS, FIELD_A.replace("{}", ", kind: [x]")),
            ", field #1 'a': 'kind' must be one of numeric, categorical; got ['x'] (a list).",
            id="kind-list",
        ),
        pytest.param(
            _with(FIELDS, FIELD_A.replace("{}", ", scale: {mean: x}")),
            ", field #1 'a': 'scale: mean' must be a number; got 'x' (a string).",
            id="scale-mean-string",
        ),
        pytest.param(
            _with(FIELDS, FIELD_A.replace("{}", ', scale: {mean: 0, std: "2"}')),
            ", field #1 'a': 'scale: std' must be a number; got '2' (a string: write the number without quotes).",
            id="scale-std-quoted",
        ),
        pytest.param(
            _with(FIELDS, FIELD_A.replace("{}", ", scale: [0, 1]")),
            ", field #1 'a': 'scale' must be a mapping {mean: .., std: ..}; got [0, 1] (a list).",
            id="scale-list",
        ),
        pytest.param(
            _with("time: time", "time: [a]"), "'time' must be a column name (a string); got ['a'] (a list).", id="time"
        ),
        pytest.param(
            _with("group: series", "group: 7"),
            "'group' must be a column name (a string); got 7 (an integer).",
            id="group",
        ),
        pytest.param(
            _with("baseline: zero", "baseline: [1]"),
            "'baseline' must be one of mean, median, zero or a finite number; got [1] (a list).",
            id="baseline-list",
        ),
        pytest.param(
            _with("baseline: zero", "baseline: .inf"),
            "'baseline' must be one of mean, median, zero or a finite number; got inf (a float).",
            id="baseline-inf",
        ),
        pytest.param(
            _with("task: regression", "task: classification\nclasses: [{a: 1}, {b: 2}]"),
            "'classes' must list label values (strings, numbers or booleans); item #1 is {'a': 1} (a mapping).",
            id="classes-mappings",
        ),
        pytest.param(
            _with("target: y", "target: 3"),
            "'target' must be a column name or {column: .., scale: ..}; got 3 (an integer).",
            id="target-int",
        ),
        pytest.param(
            _with("target: y", "target: {column: [y]}"),
            "'target: column' must be a column name (a string); got ['y'] (a list).",
            id="target-column-list",
        ),
        pytest.param(
            _with("version: 1", "version: '1'"),
            "'version' must be 1 (the only schema version); got '1' (a string: write the number without quotes).",
            id="version-string",
        ),
        pytest.param(
            _with("task: regression", "task: [x]"),
            "'task' must be one of regression, classification; got ['x'] (a list).",
            id="task-list",
        ),
        pytest.param(
            _with("baseline: zero", "baseline: zero\nlayout: null"),
            "'layout' must be one of btc, bct, flat; got nothing (null).",
            id="layout-null",
        ),
        pytest.param(
            _with(FIELDS, "fields: [a, [b, c]]"),
            ": field #2 must be a column name or a mapping with name and columns; got ['b', 'c'] (a list).",
            id="field-list",
        ),
        pytest.param(
            _with("time: time", "time: time\ntime_format: 3"),
            "'time_format' must be a strptime format such as \"%d/%m/%Y\"; got 3 (an integer).",
            id="time-format-int",
        ),
        pytest.param(
            _with("baseline: zero", "baseline: zero\noutput: [0.5]"),
            "'output' must be a mapping such as {quantiles: [0.1, 0.5, 0.9]}; got [0.5] (a list).",
            id="output-list",
        ),
        pytest.param(
            SCHEMA + "x" * 200 + ": 1\n",
            f": unknown key '{'x' * 30}...{'x' * 20}'. Valid keys: version, task, time, group, window, "
            "stride, horizon, target, layout, missing, baseline, fields, classes, time_format, output.",
            id="long-unknown-key",
        ),
    ],
)
def test_wrong_type_names_the_key_and_the_expected_type(case: dict, schema_text: str, message: str) -> None:
    result, schema = explain_with(case, schema_text)
    separator = "" if message[0] in ",:" else ": "
    assert_line(result, 3, f"tsreport: error: Schema {schema}{separator}{message}")


def test_wrong_types_from_python_are_refused_and_numpy_integers_accepted() -> None:
    raw = yaml.safe_load(SCHEMA)
    assert parse_schema({**raw, "window": np.int64(8)}).window == 8
    with pytest.raises(SchemaError, match=r"'window' must be an integer in \[1, 100000\]; got 8\.0 \(a float\)\.$"):
        parse_schema({**raw, "window": np.float64(8.0)})


# ---------------------------------------------------------------- absurd sizes


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "window: 1000000000",
            "'window' must be an integer in [1, 100000]; got 1000000000. A window holds this many time steps of "
            "every channel, and the explained windows are all in memory. Check the value.",
        ),
        (
            "window: 8\nhorizon: 100001",
            "'horizon' must be an integer in [1, 100000]; got 100001. Each window's truth and prediction hold this "
            "many steps, and they are all in memory. Check the value.",
        ),
        (
            "window: 8\nstride: 1000000000000",
            "'stride' must be an integer in [1, 1000000000]; got 1000000000000. A stride longer than any series is "
            "surely a typo. Check the value.",
        ),
        (
            "window: 50000",
            "a window of 50000 steps × 6 channels holds 300,000 values, above the limit of 262,144 (1 MiB of float32 "
            "per window, so that 512 explained windows fit in 512 MiB). Use a shorter window or fewer columns.",
        ),
    ],
)
def test_absurd_window_sizes_are_refused(case: dict, line: str, message: str) -> None:
    result, schema = explain_with(case, _with("window: 8", line))
    assert_line(result, 3, f"tsreport: error: Schema {schema}: {message}")


def test_largest_window_within_the_cell_limit_parses() -> None:
    raw = yaml.safe_load(SCHEMA)
    assert parse_schema({**raw, "window": 262_144 // 6}).window == 43_690
    with pytest.raises(SchemaError, match="holds 262,146 values"):
        parse_schema({**raw, "window": 262_144 // 6 + 1})
