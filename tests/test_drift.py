"""`fpipe drift`: a training set whose feature distributions shift at a known date is flagged from that
bucket on; the stable features are not (seeded synthetic data, no clock)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fpipe.app import main
from fpipe.skew.drift import DRIFT, FEW, OK, REFERENCE, compute_drift

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SHIFT = datetime(2024, 1, 29, tzinfo=UTC)  # the start of week 5
STABLE = ["stable_num", "stable_cat", "stable_nulls"]
SHIFTING = ["mean_shift", "share_shift", "null_jump"]


def _training_set(n: int = 16_000, seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    secs = np.sort(rng.uniform(0, 10 * 7 * 86400, n))
    ts = [T0 + timedelta(seconds=float(s)) for s in secs]
    after = secs >= (SHIFT - T0).total_seconds()
    base = rng.normal(0, 1, n)
    return pl.DataFrame(
        {
            "user_id": rng.integers(0, 500, n),
            "t": ts,
            "stable_num": rng.normal(10, 2, n),
            "stable_cat": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
            "stable_nulls": np.where(rng.uniform(size=n) < 0.1, np.nan, base),
            "mean_shift": rng.normal(0, 1, n) + np.where(after, 1.0, 0.0),
            "share_shift": np.where(after, rng.choice(["x", "y"], n, p=[0.35, 0.65]), rng.choice(["x", "y"], n, p=[0.65, 0.35])),
            "null_jump": np.where(rng.uniform(size=n) < np.where(after, 0.25, 0.02), np.nan, base),
        }
    ).with_columns(pl.col("stable_nulls", "null_jump").fill_nan(None))


def test_shift_is_flagged_from_its_bucket_on_and_stable_features_are_not() -> None:
    report = compute_drift(_training_set(), "t", STABLE + SHIFTING, timedelta(weeks=1), training_set="s")
    by = {f.feature: f for f in report.features}
    assert report.bucket_starts[0] == T0 and len(report.bucket_starts) == 10
    for f in SHIFTING:
        assert by[f].status == DRIFT, f
        assert by[f].drifting_from == SHIFT, f
        statuses = [b.status for b in by[f].buckets]
        assert statuses[0] == REFERENCE
        assert all(s != DRIFT for s in statuses[1:4]), (f, statuses)
        assert all(s == DRIFT for s in statuses[4:]), (f, statuses)
    for f in STABLE:
        assert by[f].status == OK, (f, [(b.status, b.reasons) for b in by[f].buckets])
        assert by[f].drifting_from is None
    assert sorted(f.feature for f in report.drifting) == sorted(SHIFTING)
    shares = by["share_shift"].buckets[6]
    assert shares.share_change_category in ("x", "y") and shares.share_change is not None and shares.share_change > 0.2
    nulls = by["null_jump"].buckets[6]
    assert nulls.null_rate_change > 0.15 and nulls.null_rate_floor is not None and nulls.null_rate_change > nulls.null_rate_floor


def test_reference_range_after_the_shift_flags_the_early_buckets() -> None:
    report = compute_drift(
        _training_set(), "t", ["mean_shift", "stable_num"], timedelta(weeks=1), reference=(SHIFT, SHIFT + timedelta(weeks=3))
    )
    by = {f.feature: f for f in report.features}
    assert [b.status == DRIFT for b in by["mean_shift"].buckets] == [True] * 4 + [False] * 6
    assert by["stable_num"].status == OK


def test_small_buckets_are_not_flagged_for_noise() -> None:
    rng = np.random.default_rng(5)
    frame = pl.DataFrame({"t": [T0 + timedelta(hours=7 * i) for i in range(60)], "v": rng.normal(0, 1, 60)})
    report = compute_drift(frame, "t", ["v"], timedelta(days=3))
    assert report.features[0].status == OK  # ~10 rows per bucket: PSI is large and says nothing
    assert {b.status for b in report.features[0].buckets} == {REFERENCE, FEW}


DEFS = """
entities: {user: {keys: [user_id]}}
sources:
  events: {path: ../events.parquet, event_time: t, keys: {user: user_id}}
features:
  stable_num: {entity: user, source: events, column: stable_num, agg: latest}
  stable_cat: {entity: user, source: events, column: stable_cat, agg: latest}
  stable_nulls: {entity: user, source: events, column: stable_nulls, agg: latest}
  mean_shift: {entity: user, source: events, column: mean_shift, agg: latest}
  share_shift: {entity: user, source: events, column: share_shift, agg: latest}
  null_jump: {entity: user, source: events, column: null_jump, agg: latest}
spines:
  all: {source: events}
training_sets:
  s: {spine: all, features: [stable_num, stable_cat, stable_nulls, mean_shift, share_shift, null_jump]}
"""


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "p.yaml").write_text(DEFS)
    table = tmp_path / "s.parquet"
    _training_set().write_parquet(table)
    return defs, table


def test_cli_json_exits_1_and_names_the_drifting_features(project: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    defs, table = project
    with pytest.raises(SystemExit) as exc:
        main(["--defs", str(defs), "drift", "s", "--training-set", str(table), "--every", "1w", "--format", "json"])
    assert exc.value.code == 1
    out = json.loads(capsys.readouterr().out)
    assert sorted(out["drifting"]) == sorted(SHIFTING)
    assert out["every"] == "7d" and out["failed"] is True
    f = next(x for x in out["features"] if x["feature"] == "mean_shift")
    assert f["drifting_from"] == SHIFT.isoformat()
    assert f["buckets"][5]["psi"] > f["buckets"][5]["psi_floor"]


def test_cli_html_plots_each_drifting_feature(project: tuple[Path, Path], tmp_path: Path) -> None:
    defs, table = project
    out = tmp_path / "drift.html"
    with pytest.raises(SystemExit) as exc:
        main(["--defs", str(defs), "drift", "--training-set", str(table), "--format", "html", "--out", str(out)])
    assert exc.value.code == 1
    html = out.read_text()
    assert html.count("<svg") == len(SHIFTING)
    assert "mean_shift: PSI per bucket" in html and "stable_num: PSI per bucket" not in html


def test_cli_threshold_and_table(project: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    defs, table = project
    with pytest.raises(SystemExit) as exc:
        main(["--defs", str(defs), "--no-color", "drift", "--training-set", str(table), "-f", "stable_num", "-f", "stable_cat"])
    assert exc.value.code == 0
    assert "no feature drifts" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["--defs", str(defs), "drift", "--training-set", str(table), "--format", "markdown"])
    assert exc.value.code == 1
    md = capsys.readouterr().out
    assert md.startswith("# drift of s every 7d") and "| mean_shift | drifts from 2024-01-29 |" in md
