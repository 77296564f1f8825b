"""Tests of :func:`tsreport.infer.draft_schema`: the YAML it drafts, parsed back."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers import results, run_cli

from tsreport.data import build_windows, read_table
from tsreport.exceptions import DataError, InputError
from tsreport.infer import draft_schema
from tsreport.schema import parse_schema

CONTRACT_KEY_ORDER = [
    "version",
    "task",
    "time",
    "group",
    "window",
    "stride",
    "horizon",
    "target",
    "layout",
    "missing",
    "baseline",
    "fields",
]
DOW = [f"dow_{day}" for day in range(7)]


def retail_frame(days: int = 40, stores: tuple[str, ...] = ("A", "B")) -> pd.DataFrame:
    """Daily sales of a few stores with a one-hot weekday, as a shop's CSV would hold them."""
    rng = np.random.default_rng(0)
    dates = pd.date_range("2024-01-01", periods=days, freq="D")
    parts = []
    for store in stores:
        part = pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "store": store})
        for day, name in enumerate(DOW):
            part[name] = (dates.day_of_week == day).astype(int)
        part["price"] = 10.0 + rng.normal(size=days)
        part["promo"] = (np.arange(days) % 5 == 0).astype(int)
        part["sales"] = rng.poisson(30, size=days).astype(float) + rng.random(days)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def parsed(text: str) -> dict:
    return yaml.safe_load(text)


def test_retail_frame_gives_the_expected_schema() -> None:
    text = draft_schema(retail_frame(), target="sales", source="shop.csv")
    assert parsed(text) == {
        "version": 1,
        "task": "regression",
        "time": "date",
        "group": "store",
        "window": 10,  # shortest series 40 rows // 4
        "stride": 1,
        "horizon": 1,
        "target": "sales",
        "layout": "btc",
        "missing": "error",
        "baseline": "mean",
        "fields": [
            {"name": "dow", "columns": DOW, "kind": "categorical"},
            {"name": "price", "columns": ["price"]},
            {"name": "promo", "columns": ["promo"]},
            {"name": "sales", "columns": ["sales"]},
        ],
    }
    assert list(parsed(text)) == CONTRACT_KEY_ORDER
    assert "guessed (last numeric column)" not in text
    assert "history" in text  # the comment explaining why the target is an input too


def test_datetime_dtype_is_the_time_column_and_integers_are_not() -> None:
    frame = pd.DataFrame(
        {
            "year": [2019, 2020, 2021, 2022] * 3,
            "when": pd.date_range("2024-01-01", periods=12, freq="h"),
            "value": np.linspace(0.0, 1.0, 12),
        }
    )
    schema = parsed(draft_schema(frame))
    assert schema["time"] == "when"
    assert [entry["name"] for entry in schema["fields"]] == ["year", "value"]


def test_dates_written_with_and_without_time_are_one_time_column() -> None:
    stamps = [
        "2024-01-01",
        "2024-01-01 06:00",
        "2024-01-01T12:00:00",
        "2024-01-01 18:00",
    ]
    frame = pd.DataFrame({"stamp": stamps * 5, "value": np.arange(20.0) / 3})
    frame.loc[7, "stamp"] = "n/a"  # one bad cell in 20 stays within the 5% allowed
    assert parsed(draft_schema(frame))["time"] == "stamp"


def test_month_names_are_a_group_not_a_time_column() -> None:
    frame = pd.DataFrame({"month": ["Jan", "Feb", "Mar"] * 5, "value": np.arange(15.0) / 3})
    schema = parsed(draft_schema(frame))
    assert "time" not in schema
    assert schema["group"] == "month"


def test_no_date_column_leaves_time_out() -> None:
    frame = pd.DataFrame({"x": np.arange(20.0) * 0.5, "y": np.arange(20.0) ** 2})
    schema = parsed(draft_schema(frame))
    assert "time" not in schema and "group" not in schema
    assert schema["window"] == 5


def test_small_integer_target_is_classification() -> None:
    frame = retail_frame()
    frame["label"] = np.arange(len(frame)) % 3
    text = draft_schema(frame, target="label")
    schema = parsed(text)
    assert schema["task"] == "classification"
    assert "horizon" not in schema
    order = [key for key in CONTRACT_KEY_ORDER if key != "horizon"]
    assert list(schema) == order[: order.index("target") + 1] + ["classes"] + order[order.index("target") + 1 :]
    assert schema["classes"] == [0, 1, 2]
    # The label of a window is its last row's value: as an input, the model would see its own answer.
    assert "label" not in [column for entry in schema["fields"] for column in entry["columns"]]


def test_text_target_is_classification_and_not_an_input_field() -> None:
    frame = pd.DataFrame({"signal": np.sin(np.arange(30.0)), "state": ["up", "down", "flat"] * 10})
    schema = parsed(draft_schema(frame, target="state"))
    assert schema["task"] == "classification"
    assert schema["target"] == "state"
    assert "group" not in schema  # the target is never the series id
    assert schema["fields"] == [{"name": "signal", "columns": ["signal"]}]


def test_many_integers_are_regression() -> None:
    frame = pd.DataFrame({"units": np.arange(40) % 25})
    assert parsed(draft_schema(frame))["task"] == "regression"


def test_guessed_target_is_the_last_numeric_column_and_says_so() -> None:
    frame = retail_frame()
    frame["note"] = [f"row {i}" for i in range(len(frame))]  # text after the last number
    text = draft_schema(frame)
    assert parsed(text)["target"] == "sales"
    assert "# target: guessed (last numeric column); pass --target COL to choose" in text
    assert '# ignored text columns: "note"' in text


def test_missing_target_names_the_file_and_the_closest_column() -> None:
    with pytest.raises(DataError) as caught:
        draft_schema(retail_frame(), target="sale", source="data/shop.csv")
    message = str(caught.value)
    assert "'sale'" in message
    assert "data/shop.csv" in message
    assert "did you mean 'sales'" in message
    assert isinstance(caught.value, InputError)


def test_window_longer_than_the_shortest_series_is_an_error() -> None:
    frame = pd.concat(
        [retail_frame(days=40, stores=("A",)), retail_frame(days=12, stores=("B",))],
        ignore_index=True,
    )
    with pytest.raises(DataError, match=r"shop\.csv.*store = B\) has 12 rows.*--window 11"):
        draft_schema(frame, target="sales", window=30, source="shop.csv")
    # The largest window that leaves room for the horizon is accepted.
    assert parsed(draft_schema(frame, target="sales", window=11))["window"] == 11


def test_guessed_window_is_capped() -> None:
    frame = pd.DataFrame({"value": np.arange(1000.0)})
    assert parsed(draft_schema(frame))["window"] == 48
    # Five whole numbers would pass for class labels, and a label is no input: say it is a quantity.
    assert parsed(draft_schema(frame.head(5), task="regression"))["window"] == 2


@pytest.mark.parametrize("window", [0, -3, 2.5, True])
def test_window_must_be_a_positive_integer(window: object) -> None:
    with pytest.raises(DataError, match="positive integer"):
        draft_schema(pd.DataFrame({"value": np.arange(10.0)}), window=window)


SPECIAL_NAMES = [
    "unit price",
    "key: value",
    "it's",
    '"quoted"',
    "température °C",
    "销售",
    "#hash",
    "- dash",
    "yes",
    "null",
    "2020",
    "a, b",
    "[x]",
    "{y}",
    "*star",
    "&anchor",
    "!tag",
    "% pct",
    "@at",
    "`tick`",
    "a # b",
    " lead",
    "trail ",
    "line\nbreak",
    "tab\there",
    "sep\u2028line",
    "emoji 😀",
]


def test_special_column_names_round_trip() -> None:
    # Not ramps: an increasing column named like "`tick`" would rightly be taken as a step counter.
    frame = pd.DataFrame({name: np.cos(np.arange(12.0) + index) for index, name in enumerate(SPECIAL_NAMES)})
    frame["group: id"] = ["g1", "g2"] * 6
    target = SPECIAL_NAMES[0]
    schema = parsed(draft_schema(frame, target=target, source="odd: file.csv"))
    assert schema["group"] == "group: id"
    assert schema["target"] == target
    assert schema["fields"] == [{"name": name, "columns": [name]} for name in SPECIAL_NAMES]


def test_special_names_in_a_one_hot_group_and_in_comments_round_trip() -> None:
    names = ["colour\n_red", "colour\n_blue"]
    frame = pd.DataFrame(
        {
            names[0]: [1, 0] * 6,
            names[1]: [0, 1] * 6,
            "text\u2028col": [f"u{i}" for i in range(12)],  # named in the ignored-columns comment
            "value\n#x": np.arange(12.0) / 5,
        }
    )
    # A guessed target and a source with a line break put names into comments too.
    schema = parsed(draft_schema(frame, source="file\nname.csv"))
    assert schema["target"] == "value\n#x"
    assert schema["fields"] == [
        {"name": "colour\n", "columns": names, "kind": "categorical"},
        {"name": "value\n#x", "columns": ["value\n#x"]},
    ]


def test_non_one_hot_prefix_stays_separate_numeric_fields() -> None:
    frame = pd.DataFrame(
        {
            "flag_a": [1, 1, 0, 0] * 5,  # 0/1 values, but rows sum to 0 or 2
            "flag_b": [1, 0, 0, 1] * 5,
            "value": np.arange(20.0) / 3,
        }
    )
    schema = parsed(draft_schema(frame))
    assert schema["fields"] == [
        {"name": "flag_a", "columns": ["flag_a"]},
        {"name": "flag_b", "columns": ["flag_b"]},
        {"name": "value", "columns": ["value"]},
    ]


def test_one_hot_with_missing_values_and_bools_keeps_frame_order() -> None:
    frame = pd.DataFrame(
        {
            "color_red": [True, False, False, True] * 3,
            "size": np.arange(12.0) / 7,
            "color_blue": [False, True, False, False] * 3,
            "color_green": [False, False, True, False] * 3,
        }
    )
    frame["color_green"] = frame["color_green"].astype(float)
    frame.loc[5, "color_green"] = np.nan
    text = draft_schema(frame, target="size")
    schema = parsed(text)
    assert schema["fields"] == [
        {
            "name": "color",
            "columns": ["color_red", "color_blue", "color_green"],
            "kind": "categorical",
        },
        {"name": "size", "columns": ["size"]},
    ]
    assert schema["missing"] == "ffill"
    assert '"color_green"' in text  # the comment names the column with gaps


def test_constant_column_is_kept_with_a_warning() -> None:
    frame = pd.DataFrame({"level": 3.0, "value": np.arange(10.0) / 3})
    text = draft_schema(frame)
    assert parsed(text)["fields"][0] == {"name": "level", "columns": ["level"]}
    assert "- name: level  # warning: constant column" in text


def test_second_repeated_text_column_is_ignored_with_a_comment() -> None:
    frame = pd.DataFrame(
        {
            "store": ["A", "B"] * 10,
            "region": ["north"] * 20,
            "value": np.arange(20.0) / 3,
        }
    )
    text = draft_schema(frame)
    assert parsed(text)["group"] == "store"
    assert '# ignored text columns: "region"' in text


def test_date_target_is_rejected() -> None:
    frame = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=8), "v": np.arange(8.0)})
    with pytest.raises(DataError, match="holds dates"):
        draft_schema(frame, target="day")


@pytest.mark.parametrize(
    "frame",
    [pd.DataFrame(), pd.DataFrame(columns=["date", "sales"])],
    ids=["no columns", "header only"],
)
def test_empty_frame_is_an_error_naming_the_source(frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"^empty\.csv: "):
        draft_schema(frame, source="empty.csv")


def test_frame_without_numbers_is_an_error() -> None:
    frame = pd.DataFrame({"name": ["a", "b", "c"], "city": ["x", "y", "z"]})
    with pytest.raises(DataError, match="no numeric column"):
        draft_schema(frame, source="names.csv")


# ======================================================================================
# Issue 9: numeric group ids, step counters, --horizon/--task, time_format, real tables.
# The tables below are real public data that statsmodels ships (nothing is downloaded), written the
# way exports write them: a panel with a numeric firm id, a long "recording + step" export as
# sktime/UCR tools write it, day-first dates, a one-hot calendar, real gaps.


def datasets():
    """statsmodels' bundled data sets (the test extra); only the real-table tests need them."""
    return pytest.importorskip("statsmodels.datasets")


def checked(text: str) -> tuple[dict, object]:
    """The draft as YAML and as tsreport parses it: every draft must pass parse_schema."""
    raw = yaml.safe_load(text)
    return raw, parse_schema(raw, source="draft")


def windows_of(text: str, frame: pd.DataFrame):
    """Cut the table with the draft, as explain does (the data half of "runs as-is")."""
    return build_windows(parse_schema(yaml.safe_load(text), source="draft"), frame, "data.csv")


def grunfeld_panel() -> pd.DataFrame:
    """Grunfeld's investment panel (11 firms x 20 years) with the firm as a number, as exports write it."""
    data = datasets().grunfeld.load_pandas().data
    return pd.DataFrame(
        {
            "firm_id": pd.factorize(data["firm"])[0] + 1,
            "year": data["year"].astype(int),
            "invest": data["invest"],
            "value": data["value"],
            "capital": data["capital"],
        }
    )


def elnino_recordings() -> pd.DataFrame:
    """El Nino sea temperatures as a long export: a recording per year, a 0-based step, a label per recording."""
    wide = datasets().elnino.load_pandas().data
    long = wide.melt(id_vars="YEAR", var_name="month_name", value_name="sst")
    long["month"] = long["month_name"].map({name: i for i, name in enumerate(wide.columns[1:])})
    long = long.sort_values(["YEAR", "month"], kind="stable").reset_index(drop=True)
    frame = pd.DataFrame({"recording": long["YEAR"].astype(int), "t": long["month"], "sst": long["sst"]})
    yearly = frame.groupby("recording")["sst"].transform("mean")
    frame["el_nino"] = (yearly > frame["sst"].mean() + 0.5).astype(int)
    return frame


def co2_weekly(date_format: str = "%Y-%m-%d") -> pd.DataFrame:
    """Weekly Mauna Loa CO2 with its 59 real gaps and a month one-hot (a calendar table)."""
    raw = datasets().co2.load_pandas().data
    frame = pd.DataFrame({"date": raw.index.strftime(date_format), "co2": raw["co2"].to_numpy()})
    for month in range(1, 13):
        frame[f"month_{month}"] = (raw.index.month == month).astype(int)
    frame["noise"] = np.random.default_rng(0).normal(size=len(frame))
    return frame


def test_panel_numeric_firm_id_and_year_counter_are_group_and_time() -> None:
    frame = grunfeld_panel()
    text = draft_schema(frame, target="invest", horizon=2, source="grunfeld.csv")
    raw, schema = checked(text)
    assert (schema.group, schema.time, schema.target.column, schema.horizon) == ("firm_id", "year", "invest", 2)
    assert schema.columns == ["invest", "value", "capital"]  # neither id nor year is an input
    assert 'integer values in 11 contiguous blocks, and "year" starts over in each' in text
    assert "step counter: integers increasing by 1 at every row within each series" in text
    windows = windows_of(text, frame)
    assert len(windows.group_names) == 11
    assert windows.count == 11 * (20 - raw["window"] - 2 + 1)


def test_panel_year_exported_as_floats_is_still_the_time() -> None:
    """Exporters write 1935.0 for a year column that once held a gap: its name and structure still say time."""
    frame = grunfeld_panel()
    frame["year"] = frame["year"].astype(float)
    _, schema = checked(draft_schema(frame, target="invest"))
    assert (schema.group, schema.time) == ("firm_id", "year")


def test_recording_id_and_zero_based_step_counter_with_a_label_per_recording() -> None:
    """The sktime/UCR long format: a classifier of whole recordings."""
    frame = elnino_recordings()
    text = draft_schema(frame, source="elnino_long.csv")
    raw, schema = checked(text)
    assert (schema.group, schema.time, schema.target.column, schema.task) == (
        "recording",
        "t",
        "el_nino",
        "classification",
    )
    assert "horizon" not in raw
    assert raw["classes"] == [0, 1]
    assert raw["window"] == 12  # a window is a whole recording
    assert schema.columns == ["sst"]  # the label is never an input
    assert "integers 0, 1, 2, ... restarting in each series" in text
    assert "# target: guessed (last numeric column)" in text
    windows = windows_of(text, frame)
    assert windows.count == 61  # one window per recording


def test_one_based_counter_restarting_per_group_with_missing_steps() -> None:
    """A store number and a 1-based day counter with dropped days: the counter is time, the gaps are named."""
    rng = np.random.default_rng(1)
    parts, gaps = [], 0
    for store in (101, 205, 317):
        steps = np.setdiff1d(np.arange(1, 41), rng.choice(np.arange(2, 40), size=3, replace=False))
        gaps += int((np.diff(steps) != 1).sum())
        parts.append(pd.DataFrame({"store_nr": store, "day": steps, "visitors": rng.poisson(30, steps.size)}))
    frame = pd.concat(parts, ignore_index=True)
    text = draft_schema(frame, target="visitors")
    _, schema = checked(text)
    assert (schema.group, schema.time) == ("store_nr", "day")
    assert f"each starting at 1; {gaps} uneven step(s): a window may span a gap" in text


def test_yearly_series_with_float_years_is_a_counter_and_horizon_is_drafted() -> None:
    """statsmodels' sunspots: YEAR 1700.0 ... 2008.0 stored as floats, one series, a 3-year forecaster."""
    frame = datasets().sunspots.load_pandas().data
    text = draft_schema(frame, target="SUNACTIVITY", window=22, horizon=3)
    raw, schema = checked(text)
    assert (schema.time, schema.group, schema.horizon, schema.window) == ("YEAR", None, 3, 22)
    assert schema.columns == ["SUNACTIVITY"]
    assert "named like a time step" in text or "increasing by 1" in text
    assert "# output: {quantiles: [0.1, 0.5, 0.9]}" in text  # the key a quantile head needs, named
    assert windows_of(text, frame).count == len(frame) - 22 - 3 + 1


def test_integer_features_are_not_taken_for_ids_or_counters() -> None:
    """Counts, cumulative counts, calendar numbers and flags stay fields: the structure is required strictly."""
    rng = np.random.default_rng(2)
    days = pd.date_range("2019-01-01", "2020-12-31", freq="D")
    frame = pd.DataFrame(
        {
            "date": days.strftime("%Y-%m-%d"),
            "year": days.year,  # two contiguous blocks, but the dates run on across them: not a series id
            "month": days.month,  # a calendar number that comes back: not a block, not a counter
            "visits": rng.poisson(20, len(days)),  # a count
            "cumulative": np.cumsum(rng.poisson(3, len(days)) + 1),  # increasing, uneven, not named as a step
            "promo": (np.arange(len(days)) >= 400).astype(int),  # a flag in two blocks
            "sales": rng.normal(100, 10, len(days)),
        }
    )
    text = draft_schema(frame, target="sales")
    _, schema = checked(text)
    assert schema.time == "date" and schema.group is None
    assert schema.columns == ["year", "month", "visits", "cumulative", "promo", "sales"]
    assert "like a series id" not in text and "counts the steps" not in text


def test_text_that_alternates_along_one_dated_series_is_not_the_group() -> None:
    """A regime or label column (up/down) along one series: grouping by it would cut the series into pieces."""
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=50).strftime("%Y-%m-%d"),
            "regime": ["up", "up", "down", "down", "flat"] * 10,
            "y": np.cos(np.arange(50.0)),
        }
    )
    text = draft_schema(frame, target="y")
    assert "group" not in parsed(text)
    assert '# not the group: "regime" alternates along one series whose times in "date" never repeat' in text
    # The same column in contiguous blocks (two stores covering different dates) stays the group.
    frame["regime"] = ["north"] * 25 + ["south"] * 25
    assert parsed(draft_schema(frame, target="y"))["group"] == "regime"


def test_integer_blocks_without_any_time_are_only_suggested_as_group() -> None:
    """Without a time column, blocks alone do not decide: an unnamed one is a field whose comment names the edit."""
    frame = pd.DataFrame({"level": np.repeat([3, 5, 9, 4], 10), "value": np.sin(np.arange(40.0))})
    text = draft_schema(frame, target="value")
    _, schema = checked(text)
    assert schema.group is None
    assert (
        "- name: level  # its values fill 4 contiguous blocks, like a series id: if it numbers separate series, "
        "set group: level and remove this field" in text
    )
    named = frame.rename(columns={"level": "sensor_id"})
    _, schema = checked(draft_schema(named, target="value"))
    assert schema.group == "sensor_id"


def test_the_coarsest_confirmed_id_is_the_group() -> None:
    """A finer id (a split within each series) would cut series apart; the text id wins a tie with its number."""
    frame = grunfeld_panel()
    frame.insert(0, "firm", datasets().grunfeld.load_pandas().data["firm"].astype(str))
    frame["half"] = frame["firm_id"] * 10 + (frame["year"] >= 1945)  # blocks of 10 rows inside each firm
    _, schema = checked(draft_schema(frame, target="invest"))
    assert (schema.group, schema.time) == ("firm", "year")
    assert "firm_id" in schema.columns  # a second id of the same series: a constant field, the user's call


def test_counter_beside_a_date_column_is_a_field_that_says_what_it_is() -> None:
    frame = retail_frame(days=30)
    frame["step"] = np.tile(np.arange(30), 2)
    text = draft_schema(frame, target="sales")
    _, schema = checked(text)
    assert (schema.time, schema.group) == ("date", "store")
    assert (
        "- name: step  # counts the steps of each series (integers 0, 1, 2, ... restarting in each series): "
        "remove this field unless the model sees it" in text
    )


def test_interleaved_numeric_ids_get_a_comment_naming_the_fix() -> None:
    """Rows sorted by date then store: the ids are not in blocks, and the repeated dates say what to edit."""
    frame = retail_frame(days=20).sort_values(["date", "store"], kind="stable").reset_index(drop=True)
    frame["store"] = frame["store"].map({"A": 1, "B": 2})
    text = draft_schema(frame, target="sales")
    assert (
        "# EDIT: row 1 (line 2) and row 2 (line 3) share the time '2024-01-01' and explain refuses that; "
        "if the rows are several series, set group: store and remove it from fields (it tells them apart)" in text
    )


# ---------------------------------------------------------------- horizon and task


def test_horizon_is_drafted_and_implies_regression() -> None:
    frame = retail_frame()
    frame["units"] = np.arange(len(frame)) % 3  # few integers: would be guessed as labels
    text = draft_schema(frame, target="units", horizon=7)
    raw, schema = checked(text)
    assert (raw["task"], raw["horizon"], schema.horizon) == ("regression", 7, 7)
    assert "horizon: 7  # as given" in text
    default = draft_schema(frame, target="sales")
    assert (
        "horizon: 1  # steps predicted after each window; set it to your model's forecast length (--horizon H)"
        in default
    )


def test_guessed_window_leaves_room_for_the_horizon() -> None:
    text = draft_schema(retail_frame(days=40), target="sales", horizon=35)
    assert parsed(text)["window"] == 5
    assert "shortened to 5 to leave room for the horizon" in text


def test_horizon_must_fit_in_the_shortest_series() -> None:
    with pytest.raises(DataError, match=r"a window of 10 plus a horizon of 31 needs 41 rows"):
        draft_schema(retail_frame(days=40), target="sales", window=10, horizon=31)


def test_task_classification_lists_classes_and_has_no_horizon() -> None:
    frame = pd.DataFrame({"signal": np.sin(np.arange(40.0)), "state": ["up", "down", "flat", "down"] * 10})
    text = draft_schema(frame, target="state", task="classification")
    raw, schema = checked(text)
    assert raw["classes"] == ["down", "flat", "up"] and schema.classes == ("down", "flat", "up")
    assert "horizon" not in raw and "# output:" not in text  # quantile heads are regression only


def test_task_regression_overrides_the_label_guess() -> None:
    frame = pd.DataFrame({"x": np.cos(np.arange(30.0)), "grade": np.arange(30) % 4})
    raw, schema = checked(draft_schema(frame, target="grade", task="regression"))
    assert (schema.task, raw["horizon"]) == ("regression", 1)
    assert "grade" in schema.columns


@pytest.mark.parametrize(
    ("frame", "options", "message"),
    [
        (
            pd.DataFrame({"x": np.arange(10.0), "y": np.linspace(0, 1, 10)}),
            {"target": "y", "task": "classification"},
            "holds non-integer numbers, not class labels",
        ),
        (
            pd.DataFrame({"x": np.arange(10.0), "s": list("abababcbab")}),
            {"target": "s", "task": "regression"},
            "is not numeric, so it cannot be a regression target",
        ),
        (
            pd.DataFrame({"x": np.arange(10.0), "s": list("abababcbab")}),
            {"target": "s", "horizon": 2},
            "is not numeric, so it cannot be a regression target",
        ),
        (pd.DataFrame({"x": np.arange(10.0)}), {"horizon": 0}, "the horizon must be a positive integer; got 0"),
        (
            pd.DataFrame({"x": np.arange(10.0)}),
            {"task": "forecast"},
            "the task must be one of regression, classification; got 'forecast'",
        ),
        (
            pd.DataFrame({"x": np.arange(10.0)}),
            {"task": "classification", "horizon": 2},
            "a horizon applies to regression only",
        ),
    ],
)
def test_bad_task_horizon_combinations_are_errors(frame: pd.DataFrame, options: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        draft_schema(frame, **options)


# ---------------------------------------------------------------- dates: time_format


def test_day_first_dates_set_time_format() -> None:
    frame = co2_weekly("%d/%m/%Y")
    text = draft_schema(frame, target="co2")
    raw, schema = checked(text)
    assert schema.time_format == "%d/%m/%Y"
    assert "(day first: '15/03/1958' is 15 March)" in text or "day first:" in text
    # Read day first, the windows are those of the same table written in ISO dates.
    iso = windows_of(text.replace("time_format: '%d/%m/%Y'", ""), co2_weekly())
    assert list(windows_of(text, frame).end_times) == list(iso.end_times)


def test_ambiguous_monthly_dates_pick_the_evenly_spaced_reading_and_say_check() -> None:
    """Monthly dates on the 1st: no value tells day from month, but only day first gives evenly spaced months."""
    frame = elnino_recordings()
    frame["date"] = [f"01/{t + 1:02d}/{year}" for year, t in zip(frame["recording"], frame["t"])]
    frame = frame[["date", "sst"]]
    text = draft_schema(frame, target="sst")
    _, schema = checked(text)
    assert schema.time_format == "%d/%m/%Y"
    assert "CHECK: no value tells day from month" in text
    assert windows_of(text, frame).end_times[-1] == "2010-11-01"  # the last window's truth is December


def test_ambiguous_irregular_dates_leave_time_format_for_the_user() -> None:
    dates = [
        "01/02/2020",
        "03/04/2020",
        "05/06/2020",
        "07/08/2020",
        "09/10/2020",
        "11/12/2020",
        "12/12/2020",
        "01/01/2021",
    ]
    frame = pd.DataFrame({"date": dates, "v": np.sin(np.arange(8.0))})
    text = draft_schema(frame)
    raw, schema = checked(text)
    assert "time_format" not in raw  # never guessed: explain refuses until the user picks
    assert (
        "# EDIT (required): no value tells day from month ('01/02/2020'); "
        "uncomment the next line with '%d/%m/%Y' or '%m/%d/%Y'" in text
    )
    edited = text.replace("# time_format: '%d/%m/%Y'", "time_format: '%d/%m/%Y'")
    assert checked(edited)[1].time_format == "%d/%m/%Y"
    windows_of(edited, frame)


def test_mixed_date_formats_are_named_in_an_edit_comment() -> None:
    frame = pd.DataFrame(
        {
            "date": ["2020-01-01", "2020-01-02", "03/01/2020", "2020-01-04"] * 3,
            "store": ["a"] * 4 + ["b"] * 4 + ["c"] * 4,
            "v": np.sin(np.arange(12.0)),
        }
    )
    text = draft_schema(frame)
    assert "# EDIT: explain refuses this time column as it is: Time column 'date' in data mixes date formats" in text
    checked(text)


def test_iso_dates_need_no_time_format() -> None:
    raw, _ = checked(draft_schema(co2_weekly(), target="co2"))
    assert "time_format" not in raw


# ---------------------------------------------------------------- one-hot calendar, gaps


def test_one_hot_calendar_with_real_gaps() -> None:
    frame = co2_weekly()
    text = draft_schema(frame, target="co2", horizon=4)
    raw, schema = checked(text)
    assert (schema.time, schema.group, schema.target.column, schema.horizon) == ("date", None, "co2", 4)
    assert raw["fields"][1] == {"name": "month", "columns": [f"month_{m}" for m in range(1, 13)], "kind": "categorical"}
    assert raw["missing"] == "ffill"
    assert 'missing values in "co2"' in text
    windows = windows_of(text, frame)
    assert windows.count > 2000 and np.isfinite(windows.values).all()


def test_scale_lines_name_what_to_edit() -> None:
    text = draft_schema(co2_weekly(), target="co2")
    assert "# target: {column: co2, scale: {mean: " in text
    assert "if the model predicts standardised values" in text
    co2_field = text.split("- name: co2")[1].split("- name:")[0]
    assert "    # scale: {mean: 3" in co2_field


def test_classification_label_gaps_are_counted() -> None:
    """A label left empty where it is unknown (the first year of a yearly growth rate) makes missing: ffill."""
    frame = pd.DataFrame(
        {"date": pd.date_range("2000-01-01", periods=24, freq="MS").strftime("%Y-%m-%d"), "x": np.sin(np.arange(24.0))}
    )
    frame["slow"] = pd.array([pd.NA] * 4 + [0, 1] * 10, dtype="Int64")
    raw, _ = checked(draft_schema(frame, target="slow"))
    assert raw["missing"] == "ffill" and raw["task"] == "classification"


# ---------------------------------------------------------------- the CLI: formats, options, headers


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    if path.name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    elif path.name.endswith(".gz"):
        with gzip.open(path, "wt", newline="") as handle:
            frame.to_csv(handle, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def test_csv_gz_and_parquet_give_the_same_draft(tmp_path: Path) -> None:
    frame = grunfeld_panel()
    drafts = {}
    for name in ("panel.csv", "panel.csv.gz", "panel.parquet"):
        path = write_table(frame, tmp_path / name)
        result = run_cli("schema", path, "--target", "invest", "--horizon", "2")
        assert result.exit_code == 0, result.output
        drafts[name] = result.output.split("\n", 1)[1]  # all but the line naming the file
    assert drafts["panel.csv"] == drafts["panel.csv.gz"] == drafts["panel.parquet"]
    assert "group: firm_id" in drafts["panel.csv"]


@pytest.mark.parametrize("name", ["dup.csv", "dup.csv.gz"])
def test_duplicate_header_is_never_drafted(tmp_path: Path, name: str) -> None:
    """schema reads DATA with explain's reader, which refuses a repeated header instead of drafting 'price.1'."""
    text = "date,price,price\n2020-01-01,1,2\n2020-01-02,3,4\n2020-01-03,5,6\n"
    data = tmp_path / name
    data.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    result = run_cli("schema", data)
    assert result.exit_code == 3
    assert result.output.startswith(f"tsreport: error: Data file {data} has two columns named 'price'")
    assert "price.1" not in result.output.split("'price.1'")[0]  # only named as what it would have become


@pytest.mark.parametrize(
    ("options", "line"),
    [
        (["--horizon", "0"], "Error: Invalid --horizon 0: give a positive integer, at most 100000."),
        (["--horizon", "100001"], "Error: Invalid --horizon 100001: give a positive integer, at most 100000."),
        (["--horizon", "abc"], "Error: Invalid value for '--horizon': 'abc' is not a valid integer."),
        (["--window", "0"], "Error: Invalid --window 0: give a positive integer, at most 100000."),
        (
            ["--task", "forecast"],
            "Error: Invalid value for '--task': 'forecast' is not one of 'regression', 'classification'.",
        ),
        (
            ["--task", "classification", "--horizon", "3"],
            "Error: --horizon applies to regression only; a classifier labels each window by its last row.",
        ),
    ],
)
def test_bad_option_values_exit_2(tmp_path: Path, options: list[str], line: str) -> None:
    data = write_table(pd.DataFrame({"x": np.sin(np.arange(20.0)), "y": np.cos(np.arange(20.0))}), tmp_path / "d.csv")
    result = run_cli("schema", data, *options)
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == line


def test_help_lists_the_options() -> None:
    text = run_cli("schema", "--help").output
    for option in ("--target", "--window", "--horizon", "--task"):
        assert option in text


class MeanForecaster(torch.nn.Module):
    """Any channel count in, H steps out: the mean of the window through a linear layer."""

    def __init__(self, horizon: int) -> None:
        super().__init__()
        self.head = torch.nn.Linear(1, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(1, 2)).unsqueeze(-1))


@pytest.mark.parametrize(
    ("table", "options"),
    [("panel", ["--target", "invest", "--horizon", "2"]), ("co2_day_first", ["--target", "co2", "--horizon", "3"])],
)
def test_draft_runs_as_is_with_explain(tmp_path: Path, table: str, options: list[str]) -> None:
    """The draft of a numeric-id panel and of a day-first, gappy calendar table runs through explain unchanged."""
    frame = grunfeld_panel() if table == "panel" else co2_weekly("%d/%m/%Y")
    data = write_table(frame, tmp_path / f"{table}.csv")
    result = run_cli("schema", data, *options)
    assert result.exit_code == 0, result.output
    schema = tmp_path / "schema.yaml"
    schema.write_text(result.output)
    horizon = int(options[-1])
    model = tmp_path / "model.pt"
    torch.jit.script(MeanForecaster(horizon)).save(str(model))
    out = tmp_path / "out"
    result = run_cli(
        "explain", model, data, "--schema", schema, "--out", out, "--analyses", "performance,occlusion",
        "--samples", "16", "--format", "json", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = results(out)
    assert report["windows"]["horizon"] == horizon
    assert {report["analyses"][name]["status"] for name in ("performance", "occlusion")} == {"ok"}


def test_read_table_frames_draft_like_the_cli(tmp_path: Path) -> None:
    data = write_table(elnino_recordings(), tmp_path / "rec.csv")
    assert draft_schema(read_table(data), source=str(data)) == run_cli("schema", data).output
