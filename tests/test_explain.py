"""`fpipe explain` agrees with `fpipe backfill` exactly on random spine rows of both sample projects, and the
rows it lists are the rows behind each value (counts and sums recomputed from them)."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from fpipe.app import main
from fpipe.lineage import explain_features
from fpipe.project import Project

ROOT = Path(__file__).resolve().parents[1]
DEFS = ROOT / "feature_defs"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b) and type(a) is type(b)


@pytest.fixture(scope="module")
def project() -> Project:
    return Project.load(DEFS)


@pytest.fixture(scope="module")
def fraud(project: Project) -> pl.DataFrame:
    return project.build_training_set("fraud_v1").frame


@pytest.fixture(scope="module")
def flights(project: Project) -> pl.DataFrame:
    return project.build_training_set(
        "flights_delay_v1", start=datetime(2013, 7, 10), end=datetime(2013, 7, 11)
    ).frame


def _check_rows(project: Project, set_name: str, frame: pl.DataFrame, key_cols: list[str], n: int, seed: int) -> None:
    rng = random.Random(seed)
    time_col = project.spine_time_column(set_name)
    feats = list(project.defs.training_sets[set_name].features)
    frames = project.source_frames_for(feats)
    for i in rng.sample(range(frame.height), n):
        row = frame.row(i, named=True)
        keys = {k: str(row[k]) for k in key_cols if row[k] is not None}
        ex = explain_features(project, row[time_col], keys, training_set=set_name, limit=None, sources=frames)
        values = ex.values()
        for f in feats:
            if f in ex.skipped:
                continue
            assert _same(values[f], row[f]), (set_name, i, f, values[f], row[f])
        # the rows listed are the rows behind the value
        for fe in ex.features:
            s = fe.spec
            if fe.rows is None or s.agg not in ("count", "sum"):
                continue
            used = fe.rows.filter(pl.col("_status") == "in window")
            if s.agg == "count" and s.column is None:
                assert used.height == fe.value, (fe.name, i)
            if s.agg == "sum" and s.column is not None:
                assert math.isclose(used.get_column(s.column).sum() or 0, fe.value, rel_tol=1e-9, abs_tol=1e-9), (fe.name, i)


def test_explain_equals_backfill_on_random_fraud_rows(project: Project, fraud: pl.DataFrame) -> None:
    _check_rows(project, "fraud_v1", fraud, ["user_id", "merchant_id"], 20, seed=7)


def test_explain_equals_backfill_on_random_flights_rows(project: Project, flights: pl.DataFrame) -> None:
    _check_rows(project, "flights_delay_v1", flights, ["tailnum", "carrier", "origin"], 10, seed=11)


def test_lookup_lists_winner_and_not_yet_available_rows(tmp_path: Path) -> None:
    defs = tmp_path / "defs"
    defs.mkdir()
    pl.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 2],
            "ts": ["2024-01-01 00:00", "2024-01-02 00:00", "2024-01-03 00:00", "2024-01-05 00:00", "2024-01-02 00:00"],
            "seen": ["2024-01-01 00:05", "2024-01-02 00:05", "2024-01-04 12:00", "2024-01-05 00:01", "2024-01-02 00:00"],
            "tier": ["a", "b", "c", "d", "z"],
        }
    ).write_csv(tmp_path / "p.csv")
    (defs / "p.yaml").write_text(
        "entities: {user: {keys: [user_id]}}\n"
        "sources: {p: {path: ../p.csv, event_time: ts, available_time: seen, keys: {user: user_id}}}\n"
        "features:\n  tier: {entity: user, source: p, column: tier, agg: latest}\n"
        "  n_2d: {entity: user, source: p, agg: count, window: 2d}\n"
    )
    project = Project.load(defs)
    ex = explain_features(project, "2024-01-04T00:00:00Z", {"user_id": "1"}, limit=None)
    tier = next(f for f in ex.features if f.name == "tier")
    assert tier.value == "b"  # the 01-03 row exists but only becomes visible on 01-04 12:00
    statuses = dict(zip(tier.rows.get_column("tier").to_list(), tier.rows.get_column("_status").to_list(), strict=True))  # type: ignore[union-attr]
    assert statuses == {"b": "won", "a": "candidate", "c": "not yet available"}
    late = tier.rows.filter(pl.col("_status") == "not yet available")  # type: ignore[union-attr]
    assert late.get_column("_vis").to_list() == [datetime.fromisoformat("2024-01-04T12:00:00+00:00")]
    assert tier.counts == {"won": 1, "candidate": 1, "not yet available": 1, "after t": 1}
    n2 = next(f for f in ex.features if f.name == "n_2d")
    assert n2.value == 1 and n2.counts == {"in window": 1, "not yet available": 1, "outside window": 1, "after t": 1}


def test_explain_cli_json(capsys: pytest.CaptureFixture[str], project: Project, fraud: pl.DataFrame) -> None:
    row = fraud.row(1234, named=True)
    argv = ["--defs", str(DEFS), "explain", "--at", row["ts"].isoformat(), "--key", f"user_id={row['user_id']}",
            "--feature", "user_spend_7d", "--feature", "user_country", "--json"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["keys"] == {"user_id": row["user_id"]}
    by_name = {f["feature"]: f for f in out["features"]}
    assert by_name["user_spend_7d"]["value"] == row["user_spend_7d"]
    assert by_name["user_country"]["value"] == row["user_country"]
    assert by_name["user_spend_7d"]["where"] == "status = 'approved'"
    assert all(r["_status"] in ("in window", "not yet available", "null (ignored)") for r in by_name["user_spend_7d"]["rows"])


def test_explain_unknown_key_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--defs", str(DEFS), "explain", "--at", "2024-01-05", "--key", "usr_id=3"])
    assert exc.value.code == 2
    assert "error: --key: 'usr_id' is not an entity key\n  hint: did you mean 'user_id'?" in capsys.readouterr().err
