"""load_definitions on valid input: what the loader builds (errors are in test_spec_errors.py)."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fpipe.spec.loader import count_definitions, load_definitions
from fpipe.spec.model import Cutoff, Thresholds
from helpers import VALID_COUNTS

ROOT = Path(__file__).resolve().parent.parent
VALID = ROOT / "tests" / "fixtures" / "defs" / "valid_spec_example"

BASE = """
entities:
  user: {keys: [user_id]}
sources:
  transactions: {path: data/tx.parquet, event_time: ts, keys: {user: user_id}}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_spec_example_loads() -> None:
    defs = load_definitions(VALID)
    assert count_definitions(defs) == VALID_COUNTS
    assert defs.root == str(VALID)
    assert defs.timezone == "UTC"
    assert defs.cutoff is Cutoff.EXCLUSIVE
    tx = defs.sources["transactions"]
    assert tx.path == str(VALID.parent / "sample_data" / "transactions.parquet")
    assert tx.event_time == "ts"
    assert tx.available_time == "ingested_at"
    assert tx.keys == {"user": ("user_id",)}
    assert [c.column for c in tx.checks] == ["amount", "currency"]
    assert tx.checks[0].not_null is True and tx.checks[0].min == 0.0
    assert tx.checks[1].allowed == ("USD", "EUR")
    f = defs.features["user_spend_7d"]
    assert (f.entity, f.source, f.column, f.agg, f.window) == ("user", "transactions", "amount", "sum", timedelta(days=7))
    assert f.where == "status = 'approved'" and f.default == 0
    assert defs.features["user_country"].ttl == timedelta(days=30)
    assert defs.features["spend_ratio"].is_derived
    label = defs.labels["fraud_30d"]
    assert (label.agg, label.horizon, label.gap, label.expr, label.censor) == ("count", timedelta(days=30), timedelta(0), "fraud_30d > 0", "drop")
    assert defs.spines["checkouts"].kind == "source"
    ts = defs.training_sets["fraud_v1"]
    assert ts.features == ("user_spend_7d", "user_country", "spend_ratio") and ts.label == "fraud_30d"
    assert defs.models["fraud_xgb"].params == {"max_depth": 6}
    log = defs.serving_logs["fraud_v1"]
    assert (log.time, log.row_id) == ("served_at", "request_id")
    assert log.path == str(VALID.parent / "sample_data" / "serving_log.parquet")


def test_definition_order_is_file_order_then_yaml_order() -> None:
    defs = load_definitions(VALID)
    assert list(defs.features) == ["user_spend_7d", "user_spend_30d", "user_country", "spend_ratio"]
    assert list(defs.sources) == ["transactions", "profiles", "chargebacks"]


def test_locations_point_at_the_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    defs = load_definitions(VALID)
    assert str(defs.features["spend_ratio"].loc) == "tests/fixtures/defs/valid_spec_example/features.yaml:6:3"


def test_recursive_sorted_yaml_and_yml(tmp_path: Path) -> None:
    write(tmp_path, "b/features.yml", "features:\n  n: {entity: user, source: transactions, agg: count}\n")
    write(tmp_path, "a.yaml", BASE)
    write(tmp_path, "notes.txt", "features: {broken")
    write(tmp_path, "empty.yaml", "# nothing here\n")
    defs = load_definitions(tmp_path)
    assert [Path(p).relative_to(tmp_path).as_posix() for p in defs.files] == ["a.yaml", "b/features.yml", "empty.yaml"]
    assert "n" in defs.features


def test_a_single_file_can_be_loaded(tmp_path: Path) -> None:
    path = write(tmp_path, "one.yaml", BASE)
    defs = load_definitions(path)
    assert defs.root == str(tmp_path)
    assert defs.sources["transactions"].path == str(tmp_path / "data" / "tx.parquet")


def test_paths_resolve_against_the_file_that_names_them(tmp_path: Path) -> None:
    write(tmp_path, "project.yaml", "entities:\n  user: {keys: [user_id]}\n")
    write(tmp_path, "sub/dir/src.yaml", "sources:\n  s: {path: ../../../data/*.parquet, event_time: ts, keys: {user: user_id}}\n")
    write(tmp_path, "abs.yaml", "sources:\n  t: {path: /srv/data/t.csv, event_time: ts}\n")
    defs = load_definitions(tmp_path)
    assert defs.sources["s"].path == str(tmp_path.parent / "data" / "*.parquet")
    assert defs.sources["t"].path == "/srv/data/t.csv"


def test_naive_datetimes_are_in_the_project_timezone(tmp_path: Path) -> None:
    write(
        tmp_path,
        "defs.yaml",
        """
timezone: Europe/Paris
entities:
  user: {keys: [user_id]}
sources:
  transactions: {path: tx.parquet, event_time: ts, keys: {user: user_id}}
  logins: {path: l.parquet, event_time: ts, keys: {user: user_id}, observed_until: "2024-07-01 12:00"}
spines:
  daily: {every: 1d, start: 2024-01-01, end: 2024-01-31T12:00:00+02:00, entities_from: transactions, lookback: 30d}
""",
    )
    defs = load_definitions(tmp_path)
    spine = defs.spines["daily"]
    assert spine.kind == "schedule" and spine.every == timedelta(days=1)
    assert spine.start == datetime(2023, 12, 31, 23, 0, tzinfo=UTC)
    assert spine.end == datetime(2024, 1, 31, 10, 0, tzinfo=UTC)
    assert defs.sources["logins"].observed_until == datetime(2024, 7, 1, 10, 0, tzinfo=UTC)
    assert spine.start is not None and spine.start.tzinfo is UTC


def test_static_source_composite_keys_and_optional_fields(tmp_path: Path) -> None:
    write(
        tmp_path,
        "defs.yaml",
        """
cutoff: inclusive
entities:
  account: {keys: [bank, number]}
sources:
  accounts: {path: acc.csv, keys: {account: [bank_code, acct_no]}, format: csv}
  payments: {path: pay.parquet, event_time: ts, lag: 30s, cutoff: exclusive, keys: {account: [bank, number]}}
features:
  segment: {entity: account, source: accounts, column: segment, agg: latest, default: unknown}
  last_5: {entity: account, source: payments, column: amount, agg: last_k, k: 5, hop: 1h, window: 1d}
  spread: {entity: account, source: payments, column: amount, agg: std, ddof: 0, window: 7d, cutoff: inclusive}
""",
    )
    defs = load_definitions(tmp_path)
    assert defs.cutoff is Cutoff.INCLUSIVE
    assert defs.sources["accounts"].event_time is None
    assert defs.sources["accounts"].keys == {"account": ("bank_code", "acct_no")}
    assert defs.sources["payments"].lag == timedelta(seconds=30)
    assert defs.features["segment"].default == "unknown"
    assert defs.features["last_5"].k == 5 and defs.features["last_5"].hop == timedelta(hours=1)
    assert defs.features["spread"].ddof == 0
    assert defs.feature_cutoff(defs.features["last_5"]) is Cutoff.EXCLUSIVE
    assert defs.feature_cutoff(defs.features["spread"]) is Cutoff.INCLUSIVE
    assert defs.feature_cutoff(defs.features["segment"]) is Cutoff.INCLUSIVE


def test_file_spine_spine_column_label_and_model_options(tmp_path: Path) -> None:
    write(
        tmp_path,
        "defs.yaml",
        BASE
        + """
features:
  n_7d: {entity: user, source: transactions, agg: count, window: 7d}
labels:
  churned: {spine_column: churned}
spines:
  snapshots: {path: snaps.parquet, time: as_of, keys: {user: uid}, columns: [churned]}
training_sets:
  churn: {spine: snapshots, features: [n_7d], label: churned}
models:
  churn_xgb:
    training_set: churn
    objective: reg:logistic
    features: [n_7d]
    gates: {min_auc: 0.6}
    num_boost_round: 50
""",
    )
    defs = load_definitions(tmp_path)
    assert defs.labels["churned"].spine_column == "churned"
    spine = defs.spines["snapshots"]
    assert (spine.kind, spine.time, spine.keys, spine.columns) == ("file", "as_of", {"user": ("uid",)}, ("churned",))
    model = defs.models["churn_xgb"]
    assert (model.objective, model.features, model.gates, model.num_boost_round) == ("reg:logistic", ("n_7d",), {"min_auc": 0.6}, 50)


def test_model_split_is_parsed_at_load(tmp_path: Path) -> None:
    write(
        tmp_path,
        "defs.yaml",
        "timezone: Europe/Paris\n"
        + BASE
        + """
features:
  n_7d: {entity: user, source: transactions, agg: count, window: 7d}
spines:
  at_tx: {source: transactions}
training_sets:
  s: {spine: at_tx, features: [n_7d]}
models:
  by_dates: {training_set: s, split: {valid_start: 2024-03-01, test_start: "2024-04-01T12:00:00Z", gap: 10d}}
  by_shares: {training_set: s, split: {train: 0.8, valid: 0.1, test: 0.1}}
  default: {training_set: s}
""",
    )
    models = load_definitions(tmp_path).models
    assert models["by_dates"].split == {
        "valid_start": datetime(2024, 2, 29, 23, tzinfo=UTC),  # midnight in Paris
        "test_start": datetime(2024, 4, 1, 12, tzinfo=UTC),
        "gap": timedelta(days=10),
    }
    assert models["by_dates"].split_as_written == {"valid_start": "2024-03-01", "test_start": "2024-04-01T12:00:00Z", "gap": "10d"}
    assert models["by_shares"].split == {"train": 0.8, "valid": 0.1, "test": 0.1}
    assert (models["default"].split, models["default"].split_as_written) == ({}, None)


def test_merge_keys_and_anchors(tmp_path: Path) -> None:
    write(
        tmp_path,
        "defs.yaml",
        BASE
        + """
features:
  base: &user_tx {entity: user, source: transactions, column: amount, window: 7d, agg: sum}
  mean_7d: {<<: *user_tx, agg: mean}
""",
    )
    defs = load_definitions(tmp_path)
    assert defs.features["mean_7d"].agg == "mean"
    assert defs.features["mean_7d"].window == timedelta(days=7)


def test_skew_thresholds_merge_over_defaults(tmp_path: Path) -> None:
    write(
        tmp_path,
        "defs.yaml",
        BASE
        + """
features:
  n_7d: {entity: user, source: transactions, agg: count, window: 7d}
  n_1d: {entity: user, source: transactions, agg: count, window: 1d}
skew:
  defaults: {psi_fail: 0.3, atol: 0.001}
  features:
    n_7d: {mismatch_fail: 0.05}
""",
    )
    defs = load_definitions(tmp_path)
    assert defs.skew.defaults == Thresholds(psi_fail=0.3, atol=0.001)
    assert defs.skew.for_feature("n_7d") == Thresholds(psi_fail=0.3, atol=0.001, mismatch_fail=0.05)
    assert defs.skew.for_feature("n_1d") == defs.skew.defaults


def test_same_timezone_in_two_files_is_fine(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "timezone: UTC\n" + BASE)
    write(tmp_path, "b.yaml", "timezone: UTC\n")
    assert load_definitions(tmp_path).timezone == "UTC"


def test_quoted_yaml11_words_are_strings(tmp_path: Path) -> None:
    write(
        tmp_path,
        "defs.yaml",
        BASE.replace("keys: {user: user_id}}", "keys: {user: user_id}, checks: {country: {in: [SE, 'NO', DK]}}}")
        + "features:\n  c: {entity: user, source: transactions, column: 'on', agg: latest}\n",
    )
    defs = load_definitions(tmp_path)
    assert defs.sources["transactions"].checks[0].allowed == ("SE", "NO", "DK")
    assert defs.features["c"].column == "on"
