"""`fpipe explain` agrees with `fpipe backfill` exactly on random spine rows of both sample projects, and the
rows it lists are the rows behind each value (counts and sums recomputed from them); the same for the
training set's label (value, censoring, rows at the label window's edges)."""

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
from fpipe.engine.expr import compile_expr
from fpipe.lineage import explain_features, explanation_json
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
def fraud_result(project: Project) -> Any:
    return project.build_training_set("fraud_v1")


@pytest.fixture(scope="module")
def fraud(fraud_result: Any) -> pl.DataFrame:
    return fraud_result.frame


@pytest.fixture(scope="module")
def flights(project: Project) -> pl.DataFrame:
    return project.build_training_set(
        "flights_delay_v1", start=datetime(2013, 7, 10), end=datetime(2013, 7, 11)
    ).frame


def _check_rows(project: Project, set_name: str, frame: pl.DataFrame, key_cols: list[str], n: int, seed: int) -> None:
    rng = random.Random(seed)
    time_col = project.spine_time_column(set_name)
    feats = list(project.defs.training_sets[set_name].features)
    label = project.defs.training_sets[set_name].label
    assert label is not None
    spec = project.defs.labels[label]
    frames = project.source_frames_for(feats, labels=[label])
    compared, listed = 0, 0  # feature values compared with backfill's; features whose listed rows were re-aggregated
    for i in rng.sample(range(frame.height), n):
        row = frame.row(i, named=True)
        keys = {k: str(row[k]) for k in key_cols if row[k] is not None}
        ex = explain_features(project, row[time_col], keys, training_set=set_name, limit=None, sources=frames)
        values = ex.values()
        for f in feats:
            if f in ex.skipped:
                continue
            assert _same(values[f], row[f]), (set_name, i, f, values[f], row[f])
            compared += 1
        # the rows listed are the rows behind the value
        for fe in ex.features:
            s = fe.spec
            if fe.rows is None or s.agg not in ("count", "sum"):
                continue
            used = fe.rows.filter(pl.col("_status") == "in window")
            listed += 1
            if s.agg == "count" and s.column is None:
                assert used.height == fe.value, (fe.name, i)
            if s.agg == "sum" and s.column is not None:
                assert math.isclose(used.get_column(s.column).sum() or 0, fe.value, rel_tol=1e-9, abs_tol=1e-9), (fe.name, i)
        # the label: backfill's value, a kept row is not censored, and the rows in the window give the value
        lab = ex.label
        assert lab is not None and lab.skipped is None and lab.rows is not None, (set_name, i)
        assert _same(lab.value, row[label]), (set_name, i, lab.value, row[label])
        assert lab.censored is False and lab.action == "kept"
        in_window = lab.rows.filter(pl.col("_status") == "in label window")
        assert lab.counts.get("in label window", 0) == in_window.height
        agg = {"count": pl.len(), "max": pl.col(spec.column or "").max()}[spec.agg].alias(label)
        raw = in_window.select(agg)
        recomputed = raw.select(compile_expr(spec.expr)).item() if spec.expr else raw.item()
        assert _same(recomputed, lab.value), (set_name, i, recomputed, lab.value)
    # most features of most rows were compared (a row with a null key skips that entity's features), and some
    # features' listed rows were checked: the loops above did not pass by skipping everything
    assert compared >= n * len(feats) // 2, (set_name, compared, n * len(feats))
    assert listed > 0, set_name


def test_explain_equals_backfill_on_random_fraud_rows(project: Project, fraud: pl.DataFrame) -> None:
    _check_rows(project, "fraud_v1", fraud, ["user_id", "merchant_id"], 20, seed=7)


def test_explain_equals_backfill_on_random_flights_rows(project: Project, flights: pl.DataFrame) -> None:
    _check_rows(project, "flights_delay_v1", flights, ["tailnum", "carrier", "origin", "flight_id"], 10, seed=11)


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


def test_censored_fraud_row_is_explained_as_dropped(project: Project, fraud_result: Any) -> None:
    censored = fraud_result.censored
    assert censored.height > 0
    row = censored.row(censored.height // 2, named=True)
    ex = explain_features(project, row["ts"], {"user_id": str(row["user_id"]), "merchant_id": str(row["merchant_id"])},
                          training_set="fraud_v1", limit=5)
    assert ex.label is not None and ex.label.censored is True and ex.label.action == "dropped"
    assert ex.label.window is not None and ex.label.observed_until is not None
    assert ex.label.window[1] > ex.label.observed_until
    out = explanation_json(ex)["label"]
    assert (out["censored"], out["backfill"], out["censor"]) == (True, "dropped", "drop")


def _label_project(tmp_path: Path, *, cutoff: str, censor: str) -> Project:
    """user 1: chargebacks exactly at both edges of the label window of t = 2024-01-10 (gap 1d, horizon 2d:
    01-11 .. 01-13), one inside that only becomes available much later, one before t+gap, one after."""
    defs = tmp_path / "defs"
    defs.mkdir(exist_ok=True)
    pl.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 1, 1, 2],
            "ts": ["2024-01-10 00:00", "2024-01-11 00:00", "2024-01-12 00:00", "2024-01-13 00:00", "2024-01-10 12:00",
                   "2024-01-20 00:00", "2024-01-12 00:00"],
            "seen": ["2024-01-10 00:00", "2024-01-11 00:00", "2024-03-01 00:00", "2024-01-13 00:00", "2024-01-10 12:00",
                     "2024-01-20 00:00", "2024-01-12 00:00"],
            "amount": [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
        }
    ).write_csv(tmp_path / "cb.csv")
    pl.DataFrame({"user_id": [1, 1], "t": ["2024-01-10 00:00", "2024-01-19 00:00"]}).write_csv(tmp_path / "spine.csv")
    (defs / "p.yaml").write_text(
        "entities: {user: {keys: [user_id]}}\n"
        "sources: {cb: {path: ../cb.csv, event_time: ts, available_time: seen, keys: {user: user_id}}}\n"
        "features:\n  n_cb: {entity: user, source: cb, agg: count}\n"
        f"labels:\n  cb_sum: {{entity: user, source: cb, column: amount, agg: sum, gap: 1d, horizon: 2d, cutoff: {cutoff}, censor: {censor}}}\n"
        "spines: {s: {path: ../spine.csv, time: t, keys: {user: user_id}}}\n"
        "training_sets:\n  with_label: {spine: s, features: [n_cb], label: cb_sum}\n  no_label: {spine: s, features: [n_cb]}\n"
    )
    return Project.load(defs)


@pytest.mark.parametrize(("cutoff", "edges"), [("exclusive", (2.0, 8.0)), ("inclusive", (8.0, 2.0))])
def test_label_rows_at_both_window_edges(tmp_path: Path, cutoff: str, edges: tuple[float, float]) -> None:
    """Exclusive: [t+gap, t+gap+h), so the row at t+gap is in and the one at t+gap+h after; inclusive: the mirror."""
    project = _label_project(tmp_path, cutoff=cutoff, censor="flag")
    backfill = project.build_training_set("with_label").frame
    ex = explain_features(project, "2024-01-10T00:00:00Z", {"user_id": "1"}, training_set="with_label", limit=None)
    lab = ex.label
    assert lab is not None and lab.rows is not None
    status = dict(zip(lab.rows.get_column("amount").to_list(), lab.rows.get_column("_status").to_list(), strict=True))
    in_edge, out_edge = edges
    assert status[in_edge] == "in label window"
    assert status[out_edge] == ("after label window" if cutoff == "exclusive" else "before label window")
    assert status[4.0] == "in label window"  # available only in March: availability does not matter for labels
    assert status[1.0] == status[16.0] == "before label window"  # at t, and between t and t+gap
    assert status[32.0] == "after label window"
    assert 64.0 not in status  # another user's row
    assert lab.value == in_edge + 4.0 == backfill.get_column("cb_sum")[0]
    assert lab.inclusive is (cutoff == "inclusive") and lab.censored is False and lab.action == "kept"
    expected = {"exclusive": {"in label window": 2, "before label window": 2, "after label window": 2},
                "inclusive": {"in label window": 2, "before label window": 3, "after label window": 1}}
    assert lab.counts == expected[cutoff]
    out = explanation_json(ex)["label"]
    assert out["window"]["closed"] == ("right" if cutoff == "inclusive" else "left")
    assert "availability does not matter" in out["note"]
    assert [r["_status"] for r in out["rows"]].count("in label window") == 2


def test_label_rows_limit_keeps_the_rows_nearest_the_window(tmp_path: Path) -> None:
    project = _label_project(tmp_path, cutoff="exclusive", censor="flag")
    ex = explain_features(project, "2024-01-10T00:00:00Z", {"user_id": "1"}, training_set="with_label", limit=1)
    assert ex.label is not None and ex.label.rows is not None
    rows = dict(zip(ex.label.rows.get_column("_status").to_list(), ex.label.rows.get_column("amount").to_list(), strict=True))
    assert rows == {"in label window": 2.0, "before label window": 16.0, "after label window": 8.0}
    assert ex.label.counts["before label window"] == 2  # still counted


@pytest.mark.parametrize("censor", ["flag", "drop"])
def test_censored_label_row(tmp_path: Path, censor: str) -> None:
    """t = 01-19: the label window ends 01-22, after the source's last event (01-20)."""
    project = _label_project(tmp_path, cutoff="exclusive", censor=censor)
    result = project.build_training_set("with_label")
    ex = explain_features(project, "2024-01-19T00:00:00Z", {"user_id": "1"}, training_set="with_label", limit=None)
    lab = ex.label
    assert lab is not None and lab.censored is True
    assert lab.observed_until == datetime.fromisoformat("2024-01-20T00:00:00+00:00")
    assert lab.value == 32.0
    if censor == "flag":
        assert lab.action == "flagged (cb_sum_censored = true)"
        assert result.frame.row(1, named=True)["cb_sum_censored"] is True
        assert result.frame.get_column("cb_sum")[1] == lab.value
    else:
        assert lab.action == "dropped"
        assert result.frame.height == 1 and result.censored.height == 1
    uncensored = explain_features(project, "2024-01-10T00:00:00Z", {"user_id": "1"}, training_set="with_label")
    assert uncensored.label is not None and uncensored.label.censored is False


def test_training_set_without_label_is_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = _label_project(tmp_path, cutoff="exclusive", censor="flag")
    ex = explain_features(project, "2024-01-10T00:00:00Z", {"user_id": "1"}, training_set="no_label")
    assert ex.label is None
    assert set(explanation_json(ex)) == {"at", "keys", "training_set", "features", "skipped"}
    defs = str(tmp_path / "defs")
    for args in ([], ["--summary"]):
        with pytest.raises(SystemExit):
            main(["--defs", defs, "explain", "--at", "2024-01-10", "--key", "user_id=1", "--set", "no_label", *args])
        text = capsys.readouterr().out
        assert "n_cb" in text and "cb_sum" not in text and "label window" not in text
        with pytest.raises(SystemExit):
            main(["--defs", defs, "explain", "--at", "2024-01-10", "--key", "user_id=1", "--set", "with_label", *args])
        text = capsys.readouterr().out
        assert "cb_sum" in text and "availability does not matter" in text
        assert ("in label window" in text) is (not args)


def test_label_needs_its_entity_key(project: Project, fraud: pl.DataFrame) -> None:
    row = fraud.row(10, named=True)
    ex = explain_features(project, row["ts"], {"merchant_id": str(row["merchant_id"])}, training_set="fraud_v1")
    assert ex.label is not None and ex.label.skipped == "needs --key user_id=..."
    assert explanation_json(ex)["label"] == {"label": "fraud_30d", "value": None, "skipped": "needs --key user_id=..."}


def test_label_from_a_spine_column(tmp_path: Path) -> None:
    defs = tmp_path / "defs"
    defs.mkdir()
    pl.DataFrame({"user_id": [1, 1], "ts": ["2024-01-01", "2024-01-02"], "amount": [1.0, 2.0]}).write_csv(tmp_path / "tx.csv")
    pl.DataFrame({"user_id": [1, 1, 2], "t": ["2024-01-03", "2024-01-04", "2024-01-03"], "y": [1, 0, 7]}).write_csv(tmp_path / "spine.csv")
    (defs / "p.yaml").write_text(
        "entities: {user: {keys: [user_id]}}\n"
        "sources: {tx: {path: ../tx.csv, event_time: ts, keys: {user: user_id}}}\n"
        "features:\n  n_tx: {entity: user, source: tx, agg: count}\n"
        "labels:\n  target: {spine_column: y}\n"
        "spines: {s: {path: ../spine.csv, time: t, keys: {user: user_id}}}\n"
        "training_sets:\n  ts: {spine: s, features: [n_tx], label: target}\n"
    )
    project = Project.load(defs)
    ex = explain_features(project, "2024-01-03T00:00:00Z", {"user_id": "1"}, training_set="ts")
    assert project.build_training_set("ts").frame.get_column("target").to_list() == [1, 0, 7]
    assert ex.label is not None and ex.label.spine_values == [1]
    assert explanation_json(ex)["label"] == {"label": "target", "spine_column": "y", "spine_values": [1], "skipped": None}
    ex = explain_features(project, "2024-01-05T00:00:00Z", {"user_id": "1"}, training_set="ts")
    assert ex.label is not None and ex.label.spine_values == []
