"""Tests of :func:`tsreport.infer.draft_schema`: the YAML it drafts, parsed back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from tsreport.exceptions import DataError, InputError
from tsreport.infer import draft_schema

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
    assert list(schema) == [key for key in CONTRACT_KEY_ORDER if key != "horizon"]
    assert schema["fields"][-1] == {"name": "label", "columns": ["label"]}


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
    assert parsed(draft_schema(frame.head(5)))["window"] == 2


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
    frame = pd.DataFrame({name: np.arange(12.0) * (index + 1) for index, name in enumerate(SPECIAL_NAMES)})
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
