"""Out-of-core builds (`--partitions N`, `--memory-limit`): hash-partitioned by entity key, the same bytes as
an unpartitioned build. The fixture has two entities (an integer user key, partitioned by modulo, and a
string merchant key, partitioned by FNV-1a), a source spine, lookups with a ttl, windows, a derived
feature across entities, a label with censoring, null keys and late rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from fpipe.app import app
from fpipe.distributed.partitioned import build_partitioned, parse_size, plan_groups
from fpipe.engine import partition as P
from fpipe.errors import UsageError
from fpipe.project import Project

DEFS = """
timezone: UTC
entities:
  user: {keys: [user_id]}
  merchant: {keys: [merchant]}
sources:
  txns: {path: ../txns.parquet, event_time: ts, available_time: ingested_at, keys: {user: user_id, merchant: merchant}}
  profiles: {path: ../profiles.parquet, event_time: updated_at, lag: 1h, keys: {user: user_id}}
  chargebacks: {path: ../chargebacks.parquet, event_time: reported_at, keys: {user: user_id}}
features:
  user_count_1d: {entity: user, source: txns, agg: count, window: 1d}
  user_sum_7d: {entity: user, source: txns, column: amount, agg: sum, window: 7d}
  user_max_7d: {entity: user, source: txns, column: amount, agg: max, window: 7d}
  user_last_amount: {entity: user, source: txns, column: amount, agg: latest}
  user_tier: {entity: user, source: profiles, column: tier, agg: latest, ttl: 10d}
  merchant_mean_7d: {entity: merchant, source: txns, column: amount, agg: mean, window: 7d}
  merchant_distinct_users_7d: {entity: merchant, source: txns, column: user_id, agg: count_distinct, window: 7d}
  ratio: {expr: "user_sum_7d / (merchant_mean_7d + 1)"}
labels:
  cb_14d: {entity: user, source: chargebacks, agg: count, horizon: 14d, expr: "cb_14d > 0"}
spines:
  checkouts: {source: txns, columns: [txn_id, user_id, merchant]}
training_sets:
  ts1: {spine: checkouts, features: [user_count_1d, ratio, user_sum_7d, merchant_mean_7d, user_max_7d,
        user_last_amount, user_tier, merchant_distinct_users_7d], label: cb_14d}
"""


def _times(rng: np.random.Generator, n: int) -> pl.Series:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    us = rng.integers(0, 60 * 86_400 * 10**6, n)  # microsecond times: no equal instants
    return pl.Series([start + timedelta(microseconds=int(u)) for u in us]).cast(pl.Datetime("us", "UTC"))


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("partitioned")
    rng = np.random.default_rng(6)
    n = 4000
    ts = _times(rng, n)
    late = pl.Series(rng.exponential(3600 * 6, n).astype(np.int64) * 10**6).cast(pl.Duration("us"))
    users = rng.integers(1, 120, n).astype(float)
    users[rng.random(n) < 0.01] = np.nan
    merchants = np.array([f"m{i}" for i in rng.integers(0, 40, n)], dtype=object)
    merchants[rng.random(n) < 0.01] = None
    pl.DataFrame(
        {
            "txn_id": np.arange(n),
            "user_id": pl.Series(users).fill_nan(None).cast(pl.Int64),
            "merchant": pl.Series(merchants, dtype=pl.String),
            "ts": ts,
            "ingested_at": ts + late,
            "amount": np.round(rng.lognormal(3, 1, n), 2),
        }
    ).write_parquet(root / "txns.parquet")
    m = 300
    pl.DataFrame(
        {"user_id": rng.integers(1, 120, m), "updated_at": _times(rng, m), "tier": rng.choice(["a", "b", "c"], m)}
    ).write_parquet(root / "profiles.parquet")
    pl.DataFrame({"user_id": rng.integers(1, 120, 80), "reported_at": _times(rng, 80)}).write_parquet(
        root / "chargebacks.parquet"
    )
    (root / "defs").mkdir()
    (root / "defs" / "defs.yaml").write_text(DEFS)
    return root


def test_integer_keys_partition_by_modulo_and_nulls_go_to_zero() -> None:
    frame = pl.DataFrame({"k": [0, 1, 5, -3, None, 12]})
    assert P.partition_ids(frame, ["k"], 4).to_list() == [0, 1, 1, 1, 0, 0]


def test_string_hash_is_fnv1a_and_stable() -> None:
    # pinned values: FNV-1a 64 of the UTF-8 bytes; must never change with the Polars version
    assert P.fnv1a(pl.Series(["", "x", "hello world"])).tolist() == [
        14695981039346656037,
        12638214688346347271,
        8618312879776256743,
    ]
    frame = pl.DataFrame({"a": ["x", "hello world", None], "b": [1, 2, 3]})
    def combined(part: int) -> int:  # one key part folded into the FNV state, as partition_ids does
        return ((14695981039346656037 ^ part) * 1099511628211) % 2**64

    expected = [combined(12638214688346347271) % 7, combined(8618312879776256743) % 7, 0]
    assert P.partition_ids(frame, ["a"], 7).to_list() == expected
    assert P.partition_ids(frame, ["a", "b"], 5).to_list() == P.partition_ids(frame, ["a", "b"], 5).to_list()


def test_groups_per_entity(project_dir: Path) -> None:
    groups = plan_groups(Project.load(project_dir / "defs").defs, "ts1")
    assert [(g.entity, g.with_label) for g in groups] == [("user", True), ("merchant", False)]
    assert groups[1].features == ("merchant_mean_7d", "merchant_distinct_users_7d")


@pytest.mark.parametrize("n", [1, 3, 8])
def test_partitioned_build_equals_unpartitioned(project_dir: Path, n: int) -> None:
    project = Project.load(project_dir / "defs")
    ref = project.build_training_set("ts1")
    _, _, cols = project.training_set_inputs("ts1")
    got = build_partitioned(project.defs, "ts1", cols, n)
    assert got.frame.equals(ref.frame)
    assert got.frame.schema == ref.frame.schema
    assert got.censored.equals(ref.censored)
    assert ref.stats.rows_censored > 0
    assert (got.stats.rows_in, got.stats.rows_out, got.stats.rows_censored) == (
        ref.stats.rows_in,
        ref.stats.rows_out,
        ref.stats.rows_censored,
    )
    assert got.spine_columns == ref.spine_columns and got.time_column == ref.time_column


def test_cli_partitions_and_memory_limit_write_identical_bytes(project_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    outs = {}
    for label, extra in {"plain": [], "p5": ["--partitions", "5"], "mem": ["--memory-limit", "20KB"]}.items():
        out = tmp_path / f"{label}.parquet"
        res = runner.invoke(app, ["--defs", str(project_dir / "defs"), "-q", "backfill", "--out", str(out), *extra])
        assert res.exit_code == 0, res.output
        outs[label] = out.read_bytes()
    assert outs["p5"] == outs["plain"]
    assert outs["mem"] == outs["plain"]


def test_parse_size() -> None:
    assert parse_size("4GB") == 4 * 10**9
    assert parse_size("512MiB") == 512 * 2**20
    with pytest.raises(UsageError):
        parse_size("lots")


def test_choose_partitions() -> None:
    assert P.choose_partitions(10**9, 4 * 10**9, expansion=12, base=0) == 3
    # the L measurement: 1.15 GB of inputs under 4 GB needs ~2.4 GB + 16.7 GB / N -> N >= 11
    assert P.choose_partitions(1_152_000_000, 4 * 10**9) == 12
    assert P.choose_partitions(10, 4 * 10**9) == 1
