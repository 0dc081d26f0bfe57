"""The feature contract: one encoding for training and scoring, and which type changes are refused."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fpipe.errors import DataError, DefinitionError
from fpipe.train.contract import FeatureColumn, check_frame, contract_from_frame, encode_features


@given(
    st.lists(st.sampled_from(["a", "b", "c", None]), min_size=1, max_size=20),
    st.lists(st.sampled_from(["a", "b", "c", "d", None]), min_size=1, max_size=20),
)
def test_category_codes_match_a_brute_force_mapping(train: list[str | None], score: list[str | None]) -> None:
    contract = contract_from_frame(pl.DataFrame({"c": train}, schema={"c": pl.String}), ["c"])
    cats = sorted({v for v in train if v is not None})
    assert contract[0].categories == tuple(cats)
    got = encode_features(pl.DataFrame({"c": score}, schema={"c": pl.String}), contract)[:, 0]
    want = [float(cats.index(v)) if v in cats else math.nan for v in score]
    assert [(g if not math.isnan(g) else None) for g in got] == [(w if not math.isnan(w) else None) for w in want]


def test_kinds_and_numeric_encodings() -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "i": [1, None],
            "f": [0.5, float("nan")],
            "b": [True, False],
            "d": [timedelta(seconds=90), None],
            "t": [t0, t0 + timedelta(seconds=1)],
            "e": pl.Series([None, None], dtype=pl.Null),
            "k": pl.Series(["x", "y"], dtype=pl.Categorical),
        }
    )
    contract = contract_from_frame(frame, frame.columns)
    assert [c.kind for c in contract] == ["integer", "float", "boolean", "duration", "datetime", "null", "categorical"]
    x = encode_features(frame, contract)
    assert x[0, :4].tolist() == [1.0, 0.5, 1.0, 90.0] and np.isnan(x[1, [0, 1, 3]]).all()
    assert x[1, 4] - x[0, 4] == 1.0 and np.isnan(x[:, 5]).all() and x[:, 6].tolist() == [0.0, 1.0]


def test_list_features_are_refused_at_training() -> None:
    with pytest.raises(DataError, match="feature 'last3' is List\\(Int64\\); XGBoost takes only scalar features"):
        contract_from_frame(pl.DataFrame({"last3": [[1, 2, 3]]}), ["last3"])


def test_compatible_and_incompatible_type_changes() -> None:
    contract = [FeatureColumn("n", "Int64", "integer"), FeatureColumn("c", "String", "categorical", ("a", "b"))]
    ok = pl.DataFrame({"n": pl.Series([1], dtype=pl.Int32), "c": pl.Series(["a"], dtype=pl.Enum(["a", "b"]))})
    assert check_frame(ok, contract, "f.parquet", "m") == []
    all_null = pl.DataFrame({"n": pl.Series([None], dtype=pl.Null), "c": pl.Series([None], dtype=pl.String)})
    assert check_frame(all_null, contract, "f.parquet", "m") == []
    # integers where floats are expected (a CSV of whole numbers) are fine; floats for integers are not
    assert check_frame(pl.DataFrame({"x": [1]}), [FeatureColumn("x", "Float64", "float")], "f.parquet", "m") == []
    with pytest.raises(DataError) as exc:
        check_frame(pl.DataFrame({"n": [1.0], "c": ["a"]}), contract, "f.parquet", "m")
    assert str(exc.value) == (
        "f.parquet: error: column 'n' is Float64, m expects Int64 (integer)\n"
        "  hint: cast 'n' to Int64 upstream, or retrain the model on the new type"
    )


def test_round_trip_through_json() -> None:
    col = FeatureColumn("c", "String", "categorical", ("a", "b"), default="a")
    assert FeatureColumn.from_json(col.to_json()) == col


def test_definition_error_class_is_exit_2() -> None:
    assert int(DefinitionError("x").exit_code) == 2


def test_availability_ignored_is_flagged_from_the_definitions() -> None:
    from fpipe.spec.model import Definitions, FeatureSpec, SourceSpec
    from fpipe.train.leakage import availability_warnings

    keys = {"user": ("user_id",)}
    defs = Definitions(
        root="/p",
        sources={
            "tx": SourceSpec("tx", "/d/tx.parquet", "ts", keys, available_time="ingested_at"),
            "tx_raw": SourceSpec("tx_raw", "/d/tx.parquet", "ts", keys),
            "other": SourceSpec("other", "/d/other.parquet", "ts", keys),
        },
        features={
            "spend": FeatureSpec("spend", "user", "tx", "amount", "sum", timedelta(days=7)),
            "spend_raw": FeatureSpec("spend_raw", "user", "tx_raw", "amount", "sum", timedelta(days=7)),
            "ratio": FeatureSpec("ratio", expr="spend_raw / (spend + 1)"),
            "n_other": FeatureSpec("n_other", "user", "other", None, "count"),
        },
    )
    assert availability_warnings(defs, ["spend", "n_other"]) == []
    assert availability_warnings(defs, ["spend", "spend_raw", "ratio"]) == [
        "possible leakage: features 'spend_raw', 'ratio' read source 'tx_raw', which ignores availability: "
        "source 'tx' reads the same file with available_time 'ingested_at', so its rows become known later than "
        "their event time"
    ]
