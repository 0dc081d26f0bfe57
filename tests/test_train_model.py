"""Training on seeded synthetic training sets: beats the baseline, byte-identical retrain, leakage warning,
every objective kind, gates, and the immutable export."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fpipe.errors import DefinitionError
from fpipe.spec.model import LabelSpec, ModelSpec
from fpipe.train import export
from fpipe.train.export import export_model
from fpipe.train.trainer import train_model

LABEL = LabelSpec(name="label", horizon=timedelta(days=7))
FEATURES = ["a", "b", "c"]


def make_frame(n: int = 4000, seed: int = 0, leaky: bool = False, kind: str = "binary") -> pl.DataFrame:
    """Spine keys, time, features a (signal), b (noise, 10% missing), c (categorical signal), label."""
    rng = np.random.default_rng(seed)
    minutes = np.sort(rng.integers(0, 60 * 24 * 120, n))
    a = rng.normal(size=n)
    b = np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n))
    c = rng.choice(["AA", "DL", "UA", "WN"], n)
    logit = 1.5 * a + np.where(c == "DL", 1.0, 0.0) - 0.5
    cols: dict[str, object] = {
        "user_id": np.arange(n),
        "ts": [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=int(m)) for m in minutes],
        "a": a,
        "b": b,
        "c": c,
    }
    if kind == "binary":
        y: object = rng.random(n) < 1 / (1 + np.exp(-logit))
    elif kind == "regression":
        y = logit + rng.normal(scale=0.5, size=n)
    else:
        y = np.where(logit + rng.normal(size=n) > 0.5, "high", np.where(logit > -1, "mid", "low"))
    if leaky:
        cols["leak"] = np.asarray(y, dtype=np.float64) + rng.normal(scale=0.01, size=n)
    cols["label"] = y
    return pl.DataFrame(cols).with_columns(pl.col("b").fill_nan(None))


def spec(**kw: object) -> ModelSpec:
    return ModelSpec(name="m", training_set="s", **kw)  # type: ignore[arg-type]


@pytest.mark.slow
def test_model_clearly_beats_the_baseline_on_the_later_period() -> None:
    r = train_model(spec(), make_frame(), "ts", FEATURES, "label", label_spec=LABEL)
    assert r.beats_baseline and not r.failed
    assert r.metrics["auc"] > 0.75 and r.baseline["auc"] == 0.5
    assert r.metrics["logloss"] < r.baseline["logloss"] - 0.05
    assert r.split["gap"] == "7d" and r.split["purged_rows"]["train"] > 0
    assert r.split["ranges"]["train"]["end"] < r.split["ranges"]["valid"]["start"] < r.split["ranges"]["test"]["start"]
    assert [c.name for c in r.contract] == FEATURES
    assert r.contract[2].kind == "categorical" and r.contract[2].categories == ("AA", "DL", "UA", "WN")
    assert r.warnings == []


@pytest.mark.slow
def test_retraining_gives_byte_identical_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = make_frame(seed=3)
    first = train_model(spec(seed=7), frame, "ts", FEATURES, "label", label_spec=LABEL)
    second = train_model(spec(seed=7), frame, "ts", FEATURES, "label", label_spec=LABEL)
    assert first.model_bytes == second.model_bytes
    args = {"training_set": "s", "spine_time_col": "ts", "key_columns": ["user_id"], "label": "label", "label_dtype": "Boolean", "manifest": None}
    v1, p1, _ = export_model(tmp_path, first, spec(seed=7), **args)
    v2, p2, _ = export_model(tmp_path, second, spec(seed=7), **args)
    assert (v1, v2) == ("v1", "v2")
    assert (p1 / "model.ubj").read_bytes() == (p2 / "model.ubj").read_bytes()
    # the version directory holds exactly the files export builds, byte for byte (io/models.py only writes them)
    monkeypatch.setattr(export, "_now", lambda: "2024-06-01T00:00:00Z")
    v3, p3, meta = export_model(tmp_path, first, spec(seed=7), **args)
    files, built_meta = export.model_files(first, spec(seed=7), export.make_plots(first), "v3", **args)
    assert meta == built_meta and meta["created_at"] == "2024-06-01T00:00:00Z"
    assert sorted(files) == ["calibration.svg", "importance.svg", "metadata.json", "model.ubj", "model_card.md", "pr.svg", "roc.svg"]
    assert {f.name: f.read_bytes() for f in p3.iterdir()} == {n: c if isinstance(c, bytes) else c.encode() for n, c in files.items()}


@pytest.mark.slow
def test_leaky_feature_triggers_the_warning_in_output_and_card(tmp_path: Path) -> None:
    r = train_model(spec(), make_frame(leaky=True), "ts", [*FEATURES, "leak"], "label", label_spec=LABEL)
    assert len(r.warnings) == 1
    assert r.warnings[0].startswith("possible leakage: feature 'leak' alone predicts the label almost perfectly (AUC 1.000 > 0.98)")
    assert r.single_feature["leak"] > 0.98 and r.single_feature["b"] < 0.6
    _, path, meta = export_model(
        tmp_path, r, spec(), training_set="s", spine_time_col="ts", key_columns=["user_id"], label="label",
        label_dtype="Boolean", manifest=None,
    )
    assert meta["warnings"] == r.warnings
    assert "possible leakage: feature 'leak'" in (path / "model_card.md").read_text()


@pytest.mark.slow
def test_regression_and_multiclass_beat_their_baselines() -> None:
    reg = train_model(spec(objective="reg:squarederror"), make_frame(kind="regression"), "ts", FEATURES, "label", label_spec=LABEL)
    assert reg.kind == "regression" and reg.beats_baseline and reg.metrics["r2"] > 0.5
    mc = train_model(spec(objective="multi:softprob"), make_frame(kind="multiclass"), "ts", FEATURES, "label", label_spec=LABEL)
    assert mc.kind == "multiclass" and mc.classes == ["high", "low", "mid"]
    assert mc.beats_baseline and mc.metrics["accuracy"] > 0.6


@pytest.mark.slow
def test_gates_and_folds() -> None:
    r = train_model(spec(gates={"min_auc": 0.99, "max_logloss": 5.0}), make_frame(), "ts", FEATURES, "label", label_spec=LABEL, folds=3)
    assert r.failed and len(r.gate_failures) == 1 and r.gate_failures[0].startswith("auc 0.")
    assert r.gate_failures[0].endswith(" < min_auc 0.99")
    assert [f["fold"] for f in r.folds] == [1, 2, 3]
    assert all(f["metric"] == "auc" and f["model"] > f["baseline"] for f in r.folds)


def test_unknown_gate_and_short_gap_fail_before_training() -> None:
    with pytest.raises(DefinitionError, match="unknown gate 'min_rmse' for a binary model"):
        train_model(spec(gates={"min_rmse": 1.0}), make_frame(n=50), "ts", FEATURES, "label", label_spec=LABEL)
    with pytest.raises(DefinitionError, match="split.gap 1d is shorter than label 'label' looks ahead"):
        train_model(spec(split={"gap": "1d"}), make_frame(n=50), "ts", FEATURES, "label", label_spec=LABEL)


# ---------- end to end through the CLI, on a tiny project ----------

PROJECT_YAML = """
timezone: UTC
entities:
  user: {keys: [user_id]}
sources:
  events: {path: events.parquet, event_time: ts, keys: {user: user_id}}
  outcomes: {path: outcomes.parquet, event_time: ts, keys: {user: user_id}}
features:
  x_last: {entity: user, source: events, column: x, agg: latest}
  country: {entity: user, source: events, column: country, agg: latest}
  n_events_30d: {entity: user, source: events, agg: count, window: 30d}
labels:
  converted_7d: {entity: user, source: outcomes, agg: count, horizon: 7d, expr: "converted_7d > 0"}
spines:
  at_event: {source: events, offset: 1s}
training_sets:
  conv_v1: {spine: at_event, features: [x_last, country, n_events_30d], label: converted_7d}
models:
  conv_xgb: {training_set: conv_v1, objective: binary:logistic, params: {max_depth: 3}}
  conv_gated: {training_set: conv_v1, objective: binary:logistic, gates: {min_auc: 0.999}}
  conv_short_gap: {training_set: conv_v1, split: {gap: 2d}}
"""


def write_project(root: Path, seed: int = 0, n: int = 3000) -> Path:
    rng = np.random.default_rng(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    ts = [start + timedelta(minutes=int(m)) for m in np.sort(rng.integers(0, 60 * 24 * 200, n))]
    users = rng.integers(0, 400, n)
    x = rng.normal(size=n)
    country = rng.choice(["DE", "FR", "US"], n)
    p = 1 / (1 + np.exp(-(2.0 * x + np.where(country == "US", 1.0, 0.0) - 1.0)))
    conv = rng.random(n) < p
    pl.DataFrame({"user_id": users, "ts": ts, "x": x, "country": country}).write_parquet(root / "events.parquet")
    out_ts = [t + timedelta(hours=int(h)) for t, h, c in zip(ts, rng.integers(1, 100, n), conv, strict=True) if c]
    out_users = users[conv]
    pl.DataFrame({"user_id": out_users, "ts": out_ts}).write_parquet(root / "outcomes.parquet")
    defs = root / "defs"
    defs.mkdir()
    (defs / "project.yaml").write_text(PROJECT_YAML.replace("path: ", "path: ../"))
    return defs


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from fpipe.app import main

    with pytest.raises(SystemExit) as exc:
        main(list(args))
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err


@pytest.mark.slow
def test_cli_train_with_split_dates(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Split dates are parsed by the loader (naive ones in the project's zone); the metadata records them as written."""
    monkeypatch.setenv("NO_COLOR", "1")
    defs = write_project(tmp_path)
    yaml_file = defs / "project.yaml"
    yaml_file.write_text(
        "timezone: Europe/Paris\n"
        + yaml_file.read_text().replace("timezone: UTC\n", "")
        + "  conv_dates: {training_set: conv_v1, split: {valid_start: 2024-05-01, test_start: '2024-06-01T00:00:00Z', gap: 8d}}\n"
    )
    code, out, err = cli(capsys, "--defs", str(defs), "-q", "train", "conv_dates", "--models-dir", str(tmp_path / "models"), "--json")
    assert code == 0, err
    meta = json.loads((tmp_path / "models" / "conv_dates" / "v1" / "metadata.json").read_text())
    split = meta["split"]
    assert split["method"] == "dates"
    assert (split["valid_start"], split["test_start"], split["gap"]) == ("2024-04-30T22:00:00Z", "2024-06-01T00:00:00Z", "8d")
    assert split["config"] == {"valid_start": "2024-05-01", "test_start": "2024-06-01T00:00:00Z", "gap": "8d"}


@pytest.mark.slow
def test_cli_train_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    defs = write_project(tmp_path)
    models = tmp_path / "models"
    code, out, err = cli(capsys, "--defs", str(defs), "train", "conv_xgb", "--models-dir", str(models), "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["version"] == "v1" and res["passed"] is True
    assert res["metrics"]["test"]["auc"] > res["metrics"]["baseline"]["auc"] + 0.15
    vdir = models / "conv_xgb" / "v1"
    assert sorted(p.name for p in vdir.iterdir()) == [
        "calibration.svg", "importance.svg", "metadata.json", "model.ubj", "model_card.md", "pr.svg", "roc.svg",
    ]
    for svg in vdir.glob("*.svg"):
        assert ET.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    meta = json.loads((vdir / "metadata.json").read_text())
    assert [f["name"] for f in meta["features"]] == ["x_last", "country", "n_events_30d"]
    assert meta["features"][1]["categories"] == ["DE", "FR", "US"]
    assert meta["feature_definitions_hash"] and set(meta["feature_definition_hashes"]) == {"x_last", "country", "n_events_30d"}
    assert meta["training_set_manifest"]["training_set"] == "conv_v1"
    assert meta["split"]["gap"] == "7d" and meta["spine"]["key_columns"] == ["user_id"]
    assert not list((models / "conv_xgb").glob(".tmp-*"))

    # the same training set from a backfill output (parquet + manifest) gives the same bytes
    table = tmp_path / "out" / "conv_v1.parquet"
    assert cli(capsys, "--defs", str(defs), "-q", "backfill", "conv_v1", "--out", str(table))[0] == 0
    code, out, err = cli(capsys, "--defs", str(defs), "-q", "train", "conv_xgb", "--models-dir", str(models), "--training-set", str(table))
    assert code == 0, err
    assert (models / "conv_xgb" / "v2" / "model.ubj").read_bytes() == (vdir / "model.ubj").read_bytes()

    # a gate that cannot be met: exit 1, the version is still written (immutable record), not promoted
    code, out, err = cli(capsys, "--defs", str(defs), "-q", "train", "conv_gated", "--models-dir", str(models))
    assert code == 1
    assert "error: model 'conv_gated' v1 misses a gate: auc 0." in err and "< min_auc 0.999" in err

    # a purge gap shorter than the label horizon: exit 2, nothing trained
    code, out, err = cli(capsys, "--defs", str(defs), "train", "conv_short_gap", "--models-dir", str(models))
    assert code == 2
    assert "error: model 'conv_short_gap': split.gap 2d is shorter than label 'converted_7d' looks ahead (horizon 7d = 7d)" in err
    assert not (models / "conv_short_gap").exists()

    code, _, err = cli(capsys, "--defs", str(defs), "train", "conv_xbg", "--models-dir", str(models))
    assert code == 2 and err == "error: unknown model 'conv_xbg'\n  hint: did you mean 'conv_xgb'?\n"


@pytest.mark.slow
def test_naive_spine_times_are_read_in_the_project_timezone() -> None:
    frame = make_frame(n=1500)
    aware = train_model(spec(), frame, "ts", FEATURES, "label", label_spec=LABEL)
    naive = train_model(spec(), frame.with_columns(pl.col("ts").dt.replace_time_zone(None)), "ts", FEATURES, "label", label_spec=LABEL)
    assert aware.model_bytes == naive.model_bytes and aware.split == naive.split
