"""Keys and time ranges at the edges of int64, found by review of the packed (key, time) paths (label counts
by positions, numbered sparse keys, Int128 sorts, grouped position finders) and of partitioning:
- one Int64 key column whose values span 2**63 or more (signed 64-bit hashed ids) wrapped `max - min` and
  was not numbered, then `(key - k0)` wrapped again before the Int128 casts and in numpy: now the range is
  taken in Python integers (so such keys are numbered) and every packing casts before it subtracts;
- a group of keys could pack to exactly 2**62, which `PositionFinder.packed` refuses (counts of 0);
- `--partitions` cast UInt64 keys to Int64 strictly: ids >= 2**63 failed; the modulo is now taken in Int128.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from typer.testing import CliRunner

from fpipe.app import app
from fpipe.engine import windows as W
from fpipe.engine.build import build_frame
from fpipe.spec.model import Definitions
from oracle import build_oracle
from strategies import (
    SOURCE_COLUMN_TYPES,
    feature,
    frame_mismatches,
    label,
    make_defs,
    mins,
    row,
    source_schema,
    spine_schema,
    srow,
    to_frame,
)

LOW, HIGH = -(2**62), 2**62  # HIGH - LOW == 2**63: one past Int64's maximum


def _engine_vs_oracle(defs: Definitions, sources: dict[str, list[dict[str, Any]]], spine: list[dict[str, Any]]) -> list[str]:
    frames = {n: to_frame(r, source_schema()) for n, r in sources.items()}
    res = build_frame(defs, "ts", sources=frames, spine=to_frame(spine, spine_schema()))
    types = {n: dict(SOURCE_COLUMN_TYPES) for n in sources}
    expected = build_oracle(defs, "ts", sources, spine, types, ["uid", "k2", "t"])
    return frame_mismatches(res.frame, expected.columns, expected.rows, expected.families,
                            tolerances=expected.tolerances)


def test_label_count_with_int64_keys_spanning_2_63() -> None:
    """Finding 1 (e5152da). A count label over two users with ids -2**62 and 2**62, one event each inside
    the horizon: the oracle gives 1 and 1; the engine raises ValueError ('minlength' must not be negative)
    in windows.GroupedFinder.build, called from windows.range_counts, whose Int128 sort computes
    `(pl.col("k") - k0)` in Int64 (2**62 - (-2**62) wraps to -2**63) and so sorts the higher key first.
    `fpipe backfill` exits 70 with an internal error; `--partitions 3` of the same inputs succeeds."""
    ev = [row(LOW, 1), row(HIGH, 2), row(LOW, 100)]  # the event at minute 100: nothing is censored
    spine = [srow(LOW, 0), srow(HIGH, 0)]
    defs = make_defs([feature("c", "count")], label("lbl", "count", horizon=mins(5)))
    assert _engine_vs_oracle(defs, {"ev": ev, "cb": []}, spine) == []


def test_windowed_count_with_int64_keys_spanning_2_63_at_one_instant() -> None:
    """Finding 2 (660fb72). Events of users -2**62 and 2**62 at one instant (a time span of 1 us, so the
    key range needs 3 groups of 2**62 keys and windows.position_finder uses GroupedFinder). Spine one minute
    later, window 5m: the oracle counts 1 event for each user (sum 1.0 and 2.0); the engine silently gives
    0 and 0.0 for user 2**62: in GroupedFinder.build `(kid_s - k0) // per_group` overflows int64
    (2**63 wraps to -2**63), is clipped to group 0, and the row reads an empty range; the group edges
    `k0 + per_group * np.arange(groups + 1)` overflow the same way."""
    ev = [row(LOW, 0, x=1.0), row(HIGH, 0, x=2.0)]
    spine = [srow(LOW, 1), srow(HIGH, 1)]
    defs = make_defs([feature("c", "count", window=mins(5)), feature("s", "sum", "x", window=mins(5))])
    assert _engine_vs_oracle(defs, {"ev": ev, "cb": []}, spine) == []


def test_windowed_count_over_50k_events_with_int64_keys_spanning_2_63() -> None:
    """Finding 3 (660fb72), default thresholds. 50,000 events (kernels.PACKED_SORT_MIN_ROWS) alternating
    between users -2**62 and 2**62, one a minute; a windowed count must not depend on which integers name
    the users: the same build with ids 1 and 2 is the reference. With the wide ids the engine raises
    ValueError ('minlength' must not be negative): kernels.sort_by_key_time's Int128 branch computes
    `(pl.col("_kid") - k0)` in Int64 before the cast, puts the 2**62 block first, and
    windows.position_finder reads a negative key range. Same crash from `fpipe backfill` on 500 users with
    random signed 64-bit ids and 60,000 events (exit 70); `--partitions 3` succeeds."""
    n = 50_000
    start = datetime(2024, 1, 1, tzinfo=UTC)
    times = pl.Series([start + timedelta(minutes=i) for i in range(n)]).cast(pl.Datetime("us", "UTC"))

    def build(a: int, b: int) -> pl.Series:
        uid = pl.Series(np.where(np.arange(n) % 2 == 0, a, b).astype(np.int64))
        ev = to_frame([], source_schema()).vstack(
            pl.DataFrame({"uid": uid, "k2": ["p"] * n, "ts": times, "avail": times}).with_columns(
                pl.lit(None, pl.Float64).alias("x"), pl.lit(None, pl.Int64).alias("n"), pl.lit(None, pl.String).alias("s")
            )
        )
        spine = to_frame([srow(a, 600), srow(b, 600), srow(a, 49_999)], spine_schema())
        defs = make_defs([feature("c", "count", window=mins(10))])
        res = build_frame(defs, "ts", sources={"ev": ev, "cb": to_frame([], source_schema())}, spine=spine)
        return res.frame.get_column("c")

    reference = build(1, 2)
    assert reference.to_list() == [5, 5, 5]
    assert build(LOW, HIGH).to_list() == reference.to_list()


def test_range_counts_with_a_full_key_group() -> None:
    """Finding 4 (e5152da, 660fb72), windows.range_counts called directly with default constants. Events of
    keys 0, 2**62 - 1 and 2**62 + 5, all at time 5; count in [0, 10) per key: expected 1, 1, 1; got
    0, 0, 0. `_keys_per_group` allows 2**62 keys per group at a span of 1 us, but PositionFinder.packed
    rejects keys x span >= 2**62, so group 0 gets finder None and GroupedFinder.find returns the group's
    first position for both ends (count 0); group 1's upper edge `k0 + per_group * 2` (2**63) wraps to
    -2**63, so its slice is empty. In a build, keys spanning < 2**63 are numbered first (entity_spine), so
    this is reached through findings 1-3's unnumbered keys, or with key ranges x time spans of exactly 2**62."""
    kid = np.array([0, 2**62 - 1, 2**62 + 5], dtype=np.int64)
    et = np.full(3, 5, dtype=np.int64)
    got = W.range_counts(kid, et, kid.copy(), np.zeros(3, dtype=np.int64), np.full(3, 10, dtype=np.int64), False)
    assert got is None  # keys 2**62 apart: no int64 packing of their offsets, left to the prefix tables
    # keys x span of exactly 2**62 (keys 0 and 2**61 - 1 over 2 us): two groups, each packs
    kid, et = np.array([0, 2**61 - 1]), np.array([5, 6])
    got = W.range_counts(kid, et, np.array([0, 2**61 - 1, 7]), np.zeros(3, dtype=np.int64), np.full(3, 10, dtype=np.int64), False)
    assert got is not None and got.tolist() == [1, 1, 0]


def test_partitioned_build_with_uint64_keys_above_2_63(tmp_path: Path) -> None:
    """Finding 5 (pre-existing at d0a0c3d, from 351f337; found while checking partition invariance for every
    key dtype). UInt64 user ids 1 and 2**63 + 5: the plain backfill exits 0; with --partitions 3 it exits
    70 (ComputeError: conversion from u64 to i64 failed) because partition_predicate / modulo_partition
    cast the key with `pl.col(column).cast(pl.Int64)`. Expected: exit 0 and the plain build's bytes."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    ids = pl.Series([1, 2**63 + 5, 1, 2**63 + 5], dtype=pl.UInt64)
    pl.DataFrame({"user_id": ids, "ts": [start + timedelta(hours=h) for h in range(4)]}).write_parquet(tmp_path / "ev.parquet")
    pl.DataFrame({"user_id": pl.Series([1, 2**63 + 5], dtype=pl.UInt64), "t": [start + timedelta(days=1)] * 2}).write_parquet(
        tmp_path / "sp.parquet"
    )
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "p.yaml").write_text(
        "timezone: UTC\n"
        "entities:\n  user: {keys: [user_id]}\n"
        "sources:\n  ev: {path: ../ev.parquet, event_time: ts, keys: {user: user_id}}\n"
        "features:\n  n_2d: {entity: user, source: ev, agg: count, window: 2d}\n"
        "spines:\n  sp: {path: ../sp.parquet, time: t, keys: {user: user_id}}\n"
        "training_sets:\n  ts1: {spine: sp, features: [n_2d]}\n"
    )
    outs = []
    for extra in ([], ["--partitions", "3"]):
        out = tmp_path / f"out{len(extra)}.parquet"
        res = CliRunner().invoke(app, ["--defs", str(defs), "-q", "backfill", "ts1", "--out", str(out), *extra])
        assert res.exit_code == 0, res.output
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
