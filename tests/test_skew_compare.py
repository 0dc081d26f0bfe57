"""Row-level comparison and gating: pinned values on hand-made frames (no engine)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from fpipe.skew.compare import change_point, compare_served, mismatched_rows
from fpipe.skew.report import gate_status
from fpipe.spec.model import Thresholds

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def frames(served_x: list[object], offline_x: list[object], *, dtype: pl.DataType = pl.Float64) -> tuple[pl.DataFrame, pl.DataFrame]:
    n = len(served_x)
    base = {
        "request_id": list(range(n)),
        "user_id": [i % 3 for i in range(n)],
        "served_at": [T0 + timedelta(minutes=i) for i in range(n)],
    }
    served = pl.DataFrame({**base, "x": pl.Series(served_x, dtype=dtype)})
    offline = pl.DataFrame({**base, "x": pl.Series(offline_x, dtype=dtype)})
    return served, offline


def run(served: pl.DataFrame, offline: pl.DataFrame, th: Thresholds | None = None, features: list[str] | None = None):
    return compare_served(served, offline, features or ["x"], th or Thresholds(), keys=["user_id"],
                          time_col="served_at", row_id="request_id")[0]


def test_tolerance_nan_and_null_rules() -> None:
    nan = float("nan")
    served = [1.0, 1.0 + 1e-7, 2.0, nan, nan, None, None, 5.0, math.inf]
    offline = [1.0, 1.0, 2.1, nan, 1.0, None, 3.0, None, math.inf]
    report = run(*frames(served, offline))
    r = report.feature("x").row
    # matches: exact, within rtol (1e-7 <= 1e-9 + 1e-6 * 1.0000001), NaN==NaN, null==null, inf==inf
    assert (r.compared, r.matches, r.mismatches) == (9, 5, 4)
    assert r.served_null_only == 2  # served null vs 3.0, and served NaN vs 1.0 (NaN counts as missing)
    assert r.offline_null_only == 1


def test_served_nan_against_a_number_is_missing_on_one_side() -> None:
    report = run(*frames([float("nan")], [1.0]))
    assert report.feature("x").row.served_null_only == 1


def test_bias_mae_and_relative_errors_pinned() -> None:
    served = [1.0, 2.0, 3.0, 4.0, 0.0]
    offline = [1.0, 1.0, 1.0, 2.0, 0.0]
    r = run(*frames(served, offline)).feature("x").row
    assert r.bias == pytest.approx((0 + 1 + 2 + 2 + 0) / 5)
    assert r.mae == pytest.approx(1.0)
    # relative errors |s-o|/max(|s|,|o|): 0, 0.5, 2/3, 0.5, 0 (both zero)
    assert r.rel_err_median == pytest.approx(0.5)
    assert r.rel_err_p95 == pytest.approx(0.5 + 0.8 * (2 / 3 - 0.5))  # linear interpolation at 0.95*(5-1)=3.8
    assert r.mismatch_rate == pytest.approx(0.6)


def test_strings_compare_by_equality() -> None:
    report = run(*frames(["a", "b", None, "c"], ["a", "B", None, None], dtype=pl.String))
    f = report.feature("x")
    assert f.kind == "categorical"
    assert (f.row.matches, f.row.mismatches) == (2, 2)
    assert f.distribution.category_share_change is not None


def test_worst_rows_name_keys_time_and_both_values() -> None:
    served, offline = frames([1.0, 50.0, 3.0, 4.0], [1.0, 5.0, 2.0, 4.0])
    r = run(served, offline).feature("x").row
    assert r.worst_rows[0] == {
        "request_id": 1, "user_id": 1, "served_at": T0 + timedelta(minutes=1), "served": 50.0, "offline": 5.0,
    }
    assert [w["request_id"] for w in r.worst_rows] == [1, 2]


def test_mismatch_onset_is_found() -> None:
    n = 400
    offline = [float(i) for i in range(n)]
    served = [float(i) + (1.0 if i >= 300 else 0.0) for i in range(n)]
    r = run(*frames(served, offline)).feature("x").row
    assert r.started_at == T0 + timedelta(minutes=300)
    assert (r.rate_before, r.rate_after) == (0.0, 1.0)
    assert sum(b.mismatches for b in r.over_time) == 100
    assert r.bucket == "15m"
    assert r.over_time[0].mismatches == 0 and r.over_time[-1].rate == 1.0


def test_change_point_pinned() -> None:
    split, before, after, gain = change_point(pl.Series([0, 0, 0, 0, 1, 1, 1, 1]).cast(pl.Float64).to_numpy())  # type: ignore[misc]
    assert (split, before, after) == (4, 0.0, 1.0)
    assert gain == pytest.approx(8 * math.log(2))


def test_gates_use_thresholds_and_strictness() -> None:
    # mismatch rate exactly at the warn threshold passes (strict >), PSI at the threshold warns (>=)
    assert gate_status(0.001, 0.001, 0.01, 0.0, "above_strict") == "pass"
    assert gate_status(0.0011, 0.001, 0.01, 0.0, "above_strict") == "warn"
    assert gate_status(0.1, 0.1, 0.25, 0.0, "above") == "warn"
    assert gate_status(0.94, 0.99, 0.95, 0.0, "below") == "fail"
    # a floor above a threshold makes the check inconclusive
    assert gate_status(0.5, 0.1, 0.25, 0.3, "above") == "inconclusive"
    assert gate_status(0.3, 0.1, 0.25, 0.12, "above") == "fail"
    assert gate_status(0.0, 0.1, 0.25, 0.12, "above") == "inconclusive"


def test_small_samples_make_distribution_checks_inconclusive_but_rows_decide() -> None:
    served, offline = frames([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0])
    f = run(served, offline).feature("x")
    psi = f.check("psi")
    assert psi is not None and psi.status == "inconclusive" and psi.noise_floor > 0.25
    assert f.status == "pass"  # identical rows: the row-level checks settle it


def test_per_feature_thresholds_and_fail_on_warn() -> None:
    served, offline = frames([float(i) for i in range(1000)], [float(i) for i in range(1000)])
    served = served.with_columns(pl.when(pl.col("request_id") < 5).then(-1.0).otherwise(pl.col("x")).alias("x"))
    th = Thresholds()
    report = run(served, offline, th)
    assert report.feature("x").status == "warn" and report.exit_code == 0  # 0.5% > 0.1% warn, < 1% fail
    report, _ = compare_served(served, offline, ["x"], th, keys=["user_id"], time_col="served_at", fail_on="warn")
    assert report.exit_code == 1
    loose = Thresholds(mismatch_warn=0.01, mismatch_fail=0.02)
    assert run(served, offline, loose).feature("x").status == "pass"


def test_coverage_counts_missing_offline_rows_and_notes_null_keys() -> None:
    served, offline = frames([1.0] * 100, [1.0] * 100)
    served = served.with_columns(pl.when(pl.col("request_id") == 0).then(None).otherwise(pl.col("user_id")).alias("user_id"))
    offline = offline.filter(~pl.col("request_id").is_in([1, 2]))
    report = run(served, offline)
    assert report.log.null_keys == 1 and report.log.unmatched == 2
    assert report.log.coverage == pytest.approx(0.98)  # a null key is compared, a missing offline row is not
    cov = report.feature("x").check("coverage")
    assert cov is not None and cov.status == "warn"


def test_duplicates_are_counted() -> None:
    served, offline = frames([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    served = served.with_columns(pl.lit(T0).alias("served_at"), pl.lit(7).alias("user_id"), pl.Series("request_id", [1, 1, 2]))
    offline = offline.with_columns(pl.Series("request_id", [1, 2, 3]))
    report = run(served, offline)
    assert report.log.duplicate_keys == 2 and report.log.duplicate_row_ids == 1


def test_mismatched_rows_frame() -> None:
    served, offline = frames([1.0, 2.0, 3.0], [1.0, 2.5, 3.0])
    served = served.with_columns(pl.Series("y", ["a", "b", "c"]))
    offline = offline.with_columns(pl.Series("y", ["a", "b", "z"]))
    _, j = compare_served(served, offline, ["x", "y"], Thresholds(), keys=["user_id"], time_col="served_at",
                                 row_id="request_id")
    bad = mismatched_rows(j)
    assert bad["request_id"].to_list() == [1, 2]
    assert bad["mismatched_features"].to_list() == ["x", "y"]
    assert bad.columns[:3] == ["request_id", "user_id", "served_at"]
    assert bad["x.served"].to_list() == [2.0, 3.0] and bad["y.offline"].to_list() == ["b", "z"]


def test_json_document_fields() -> None:
    served, offline = frames([1.0, 2.0, float("nan")], [1.0, 2.5, float("nan")])
    doc = run(served, offline).to_json()
    assert doc["schema_version"] == "1.0"
    assert doc["status"] == "fail" and doc["exit_code"] == 1
    f = doc["features"][0]
    assert f["name"] == "x" and f["row"]["mismatches"] == 1 and f["row"]["match_rate"] == pytest.approx(2 / 3)
    assert f["row"]["worst_rows"][0]["served_at"] == "2024-01-01T00:01:00+00:00"
    assert doc["methods"]["psi"]["epsilon"] == 1e-4
    assert {c["name"] for c in f["checks"]} == {"coverage", "mismatch_rate", "psi", "null_rate_change"}


def test_a_million_rows_stay_fast() -> None:
    import time

    import numpy as np

    n = 1_000_000
    rng = np.random.default_rng(0)
    served = pl.DataFrame({
        "request_id": np.arange(n), "user_id": rng.integers(0, 50_000, n),
        "served_at": pl.datetime_range(T0, T0 + timedelta(seconds=n - 1), "1s", eager=True),
        **{f"f{i}": rng.normal(size=n) for i in range(4)},
    })
    offline = served.with_columns(pl.col("f0") * 100)
    t = time.perf_counter()
    report, _ = compare_served(served, offline, [f"f{i}" for i in range(4)], Thresholds(), keys=["user_id"],
                            time_col="served_at", row_id="request_id")
    assert time.perf_counter() - t < 20
    assert report.feature("f0").status == "fail" and report.feature("f1").status == "pass"


def test_numbers_logged_as_strings_are_compared_as_numbers() -> None:
    served, _ = frames(["1.0", "2.0", None], ["1.0", "2.0", None], dtype=pl.String)
    _, offline = frames([1.0, 2.5, None], [1.0, 2.5, None])
    f = run(served, offline).feature("x")
    assert f.kind == "numeric" and f.row.mismatches == 1


def test_incompatible_types_are_a_data_error() -> None:
    from fpipe.errors import DataError

    served, _ = frames(["a", "b"], ["a", "b"], dtype=pl.String)
    _, offline = frames([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(DataError, match="column 'x' is String, but feature 'x' is Float64"):
        compare_served(served, offline, ["x"], Thresholds(), keys=["user_id"], time_col="served_at",
                       served_file="log.csv")
