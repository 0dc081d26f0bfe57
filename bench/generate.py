"""Seeded synthetic data for the benchmark: events, profiles (a slowly changing dimension) and a file spine.

Timestamps cover 2024 (UTC), rounded to `grain_s` seconds (coarse at tiny sizes so that ties and
boundary-exact window edges are common), and are stored unsorted (generation order). Availability
(`ingested_at`) models realistic lateness: most rows arrive within seconds, some after minutes, hours or
days; a few arrive "before" their event time (clock skew) and 0.1% never arrive (null).

Layout of `bench/data/<size>/`: events.parquet, profiles.parquet, spine.parquet, defs/bench.yaml.
The definitions also hold a label (`active_7d`: the user has an event in the 7 days after the request),
a training set `bench_train` (all 18 features + that label) and a model `bench_xgb`, for the
`fpipe train` timing; the peers compute only the feature sets.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

YEAR_START_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
YEAR_US = 366 * 86_400 * 1_000_000
DATA_ROOT = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Size:
    name: str
    events: int
    entities: int
    spine: int
    grain_s: int = 1  # timestamps are multiples of this many seconds
    seed: int = 20240


SIZES = {
    "T": Size("T", 20_000, 400, 2_000, grain_s=3_600),  # tiny: the smoke test (ties everywhere)
    "S": Size("S", 1_000_000, 100_000, 100_000),
    "M": Size("M", 10_000_000, 100_000, 1_000_000),
    "L": Size("L", 50_000_000, 1_000_000, 5_000_000),
}

WINDOWS = ("1d", "7d", "30d")
WINDOW_AGGS = ("count", "sum", "mean", "min", "max")
LOOKUPS = {  # name -> (source, column, ttl)
    "last_amount": ("events", "amount", None),
    "user_country": ("profiles", "country", "30d"),
    "user_tier": ("profiles", "tier", None),
}
LABEL = "active_7d"
MODEL = "bench_xgb"
TRAIN_SET = "bench_train"
TRAIN_ROUNDS = 200  # bounded so the train timing stays comparable between sizes (early stopping usually ends first)
COUNTRIES = ["US", "DE", "FR", "GB", "BR", "IN", "JP", "NG", "MX", "CA"]
TIERS = ["basic", "plus", "premium"]


def feature_names() -> list[str]:
    return [*LOOKUPS, *(f"amount_{a}_{w}" for w in WINDOWS for a in WINDOW_AGGS)]


def _times(rng: np.random.Generator, n: int, grain_s: int) -> np.ndarray:
    us = rng.integers(0, YEAR_US, n, dtype=np.int64)
    g = grain_s * 1_000_000
    return YEAR_START_US + (us // g) * g


def _lateness_us(rng: np.random.Generator, n: int, grain_s: int) -> np.ndarray:
    """Seconds to days, heavy-tailed; a few negative (available 'before' the event: clock skew)."""
    u = rng.random(n)
    late = np.empty(n, dtype=np.float64)
    a = u < 0.85
    b = (u >= 0.85) & (u < 0.97)
    c = (u >= 0.97) & (u < 0.995)
    d = (u >= 0.995) & (u < 0.998)
    e = u >= 0.998
    late[a] = rng.exponential(5.0, a.sum())
    late[b] = rng.exponential(600.0, b.sum())
    late[c] = rng.exponential(6 * 3600.0, c.sum())
    late[d] = rng.uniform(86_400, 5 * 86_400, d.sum())
    late[e] = -rng.uniform(1, 60, e.sum())
    us = (late * 1e6).astype(np.int64)
    if grain_s > 1:  # keep lateness on the grain too: equal availabilities happen
        g = grain_s * 1_000_000
        us = (us // g) * g
    return us


def _entity_ids(rng: np.random.Generator, n: int, entities: int) -> np.ndarray:
    """Skewed activity: per-entity weights from a gamma(0.7) draw (some users are far busier)."""
    w = rng.gamma(0.7, 1.0, entities)
    w /= w.sum()
    return rng.choice(entities, size=n, p=w).astype(np.int64) + 1


def _ts(us: np.ndarray) -> pl.Series:
    return pl.Series(us).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def generate(size: Size, root: Path = DATA_ROOT, *, force: bool = False) -> Path:
    out = root / size.name
    stamp = out / "meta.json"
    if stamp.exists() and not force and json.loads(stamp.read_text()).get("size") == asdict(size):
        write_defs(out / "defs")
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(size.seed)

    # events
    n = size.events
    uid = _entity_ids(rng, n, size.entities)
    ts = _times(rng, n, size.grain_s)
    ing = ts + _lateness_us(rng, n, size.grain_s)
    amount = np.round(rng.lognormal(3.0, 1.0, n), 2)
    events = pl.DataFrame(
        {
            "event_id": np.arange(n, dtype=np.int64),
            "user_id": uid,
            "ts": _ts(ts),
            "ingested_at": _ts(ing),
            "amount": amount,
        }
    ).with_columns(
        pl.when(pl.Series(rng.random(n) < 0.001)).then(None).otherwise(pl.col("ingested_at")).alias("ingested_at"),
        pl.when(pl.Series(rng.random(n) < 0.01)).then(None).otherwise(pl.col("amount")).alias("amount"),
    )
    events.write_parquet(out / "events.parquet", row_group_size=1_000_000)
    del events

    # profiles: about 3 versions per entity
    p = size.entities * 3
    pid = rng.integers(1, size.entities + 1, p, dtype=np.int64)
    pts = _times(rng, p, size.grain_s)
    ping = pts + np.abs(_lateness_us(rng, p, size.grain_s)) * 20  # CDC batches: later than events
    profiles = pl.DataFrame(
        {
            "user_id": pid,
            "updated_at": _ts(pts),
            "ingested_at": _ts(ping),
            "country": np.array(COUNTRIES)[rng.integers(0, len(COUNTRIES), p)],
            "tier": np.array(TIERS)[rng.integers(0, len(TIERS), p)],
        }
    ).with_columns(
        pl.when(pl.Series(rng.random(p) < 0.02)).then(None).otherwise(pl.col("country")).alias("country"),
    )
    profiles.write_parquet(out / "profiles.parquet")

    # spine: prediction requests at random instants (file spine, unsorted)
    m = size.spine
    sid = _entity_ids(rng, m, size.entities)
    st = _times(rng, m, size.grain_s)
    spine = pl.DataFrame({"request_id": np.arange(m, dtype=np.int64), "user_id": sid, "t": _ts(st)}).with_columns(
        pl.when(pl.Series(rng.random(m) < 0.001)).then(None).otherwise(pl.col("user_id")).alias("user_id")
    )
    spine.write_parquet(out / "spine.parquet")

    write_defs(out / "defs")
    stamp.write_text(json.dumps({"size": asdict(size)}, indent=2) + "\n")
    return out


def write_defs(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "# generated by bench/generate.py: 3 latest lookups (one with a ttl) and 15 windowed aggregations",
        "timezone: UTC",
        "entities:",
        "  user: {keys: [user_id]}",
        "sources:",
        "  events: {path: ../events.parquet, event_time: ts, available_time: ingested_at, keys: {user: user_id}}",
        "  profiles: {path: ../profiles.parquet, event_time: updated_at, available_time: ingested_at, keys: {user: user_id}}",
        "spines:",
        "  requests: {path: ../spine.parquet, time: t, keys: {user: user_id}}",
        "features:",
    ]
    for name, (source, column, ttl) in LOOKUPS.items():
        extra = f", ttl: {ttl}" if ttl else ""
        lines.append(f"  {name}: {{entity: user, source: {source}, column: {column}, agg: latest{extra}}}")
    for w in WINDOWS:
        for a in WINDOW_AGGS:
            col = "" if a == "count" else ", column: amount"
            lines.append(f"  amount_{a}_{w}: {{entity: user, source: events{col}, agg: {a}, window: {w}}}")
    names = feature_names()
    lookups, windows = names[: len(LOOKUPS)], names[len(LOOKUPS) :]
    lines += [
        "labels:",
        f'  {LABEL}: {{entity: user, source: events, agg: count, horizon: 7d, expr: "{LABEL} > 0"}}',
        "training_sets:",
        f"  bench: {{spine: requests, features: [{', '.join(names)}]}}",
        f"  bench_lookups: {{spine: requests, features: [{', '.join(lookups)}]}}",
        f"  bench_windows: {{spine: requests, features: [{', '.join(windows)}]}}",
        f"  {TRAIN_SET}: {{spine: requests, features: [{', '.join(names)}], label: {LABEL}}}",
        "models:",
        f"  {MODEL}: {{training_set: {TRAIN_SET}, objective: binary:logistic, num_boost_round: {TRAIN_ROUNDS}}}",
    ]
    (folder / "bench.yaml").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("sizes", nargs="?", default="S")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    for s in args.sizes.split(","):
        print(generate(SIZES[s], force=args.force))


if __name__ == "__main__":
    main()
