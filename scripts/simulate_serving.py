"""A seeded simulator of an online feature server for the shop sample, with known injected faults.

It does NOT use fpipe's engine. Like a real feature server it walks the source events in arrival order
(max(event time, ingested_at); sessions arrive 10 minutes after they start), keeps running per-user and
per-merchant state, and at each checkout request (a transaction, at its event time) serves the features
of `fraud_v1` from that state. The log goes to sample_data/shop/serving_log.parquet:
request_id, user_id, merchant_id, served_at, then one column per feature.

Injected faults (one per feature; every other feature is served exactly):
- user_sessions_24h           ingestion lag: sessions reach the server 1 hour later than declared (1h10m)
- user_max_amount_7d          unit bug: served in cents (x100)
- user_avg_amount_30d         stale cache: a value is cached per user for 1 hour (cache-aside)
- merchant_txn_count_24h      inclusive boundary: counts events at the request instant, the scored
                              checkout included (avail <= t, t - 24h < et <= t)
- user_secs_since_last_txn    nulls served as 0 (a user's first transaction)

Usage: python scripts/simulate_serving.py [--seed 11] [--out sample_data/shop/serving_log.parquet]
"""

from __future__ import annotations

import argparse
import heapq
import random
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "sample_data" / "shop"
H, D = timedelta(hours=1), timedelta(days=1)
SESSION_LAG = timedelta(minutes=10)
FAULT_SESSION_EXTRA_LAG = timedelta(hours=1)
FAULT_CACHE_TTL = timedelta(hours=1)
FEATURES = [
    "user_txn_count_1h", "user_txn_count_24h", "user_spend_7d", "user_spend_30d", "user_avg_amount_30d",
    "user_max_amount_7d", "user_declines_24h", "user_distinct_merchants_7d", "user_secs_since_last_txn",
    "user_secs_since_first_txn", "user_country", "user_tier", "user_signup_country", "user_country_changed",
    "user_sessions_24h", "merchant_txn_count_24h", "merchant_declines_24h", "spend_ratio",
]


def load() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    tx = pl.read_parquet(DATA / "transactions.parquet").with_row_index("_pos")
    profiles = pl.read_parquet(DATA / "profiles.parquet").with_row_index("_pos")
    users = pl.read_parquet(DATA / "users.parquet")
    sessions = pl.read_csv(DATA / "sessions.csv", schema_overrides={"started_at": pl.String}).with_columns(
        pl.col("started_at")
        .str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S")
        .dt.replace_time_zone("America/New_York", ambiguous="earliest")
        .dt.convert_time_zone("UTC")
    )
    return tx, profiles, users, sessions


class Server:
    """Running state, updated as events arrive."""

    def __init__(self) -> None:
        self.user_tx: dict[int, list[tuple[datetime, float | None, str | None, int | None]]] = defaultdict(list)
        self.merchant_tx: dict[int, list[tuple[datetime, str | None]]] = defaultdict(list)
        self.profile: dict[int, tuple[tuple[datetime, datetime, int], str | None, str | None]] = {}
        self.profile_hist: dict[int, list[tuple[tuple[datetime, datetime, int], str | None, str | None]]] = defaultdict(list)
        self.sessions_on_time: dict[int, list[datetime]] = defaultdict(list)
        self.sessions_late: dict[int, list[datetime]] = defaultdict(list)
        self.cache: dict[int, tuple[datetime, float | None]] = {}
        self.first_last: dict[int, tuple[datetime, datetime]] = {}

    def latest_profile(self, user: int, t: datetime) -> tuple[tuple[datetime, datetime, int], str | None, str | None] | None:
        rows = [r for r in self.profile_hist.get(user, ()) if r[0][0] < t]
        return max(rows, key=lambda r: r[0]) if rows else None


def simulate(seed: int) -> pl.DataFrame:
    rng = random.Random(seed)
    tx, profiles, users, sessions = load()
    signup_country = dict(zip(users["user_id"].to_list(), users["country"].to_list(), strict=True))

    # the timeline: (time, order, kind, payload); at one instant requests (order 0) come before arrivals (1)
    events: list[tuple[datetime, int, int, str, tuple[object, ...]]] = []
    seq = 0
    for _p, user, merchant, ts, ing, amount, status in tx.select(
        "_pos", "user_id", "merchant_id", "ts", "ingested_at", "amount", "status"
    ).iter_rows():
        events.append((max(ts, ing), 1, seq, "tx", (user, merchant, ts, amount, status)))
        seq += 1
    for pos, user, country, tier, upd, ing in profiles.select(
        "_pos", "user_id", "country", "tier", "updated_at", "ingested_at"
    ).iter_rows():
        events.append((max(upd, ing), 1, seq, "profile", (user, (upd, ing, pos), country, tier)))
        seq += 1
    for user, started in sessions.select("user_id", "started_at").iter_rows():
        if user is None or started is None:
            continue
        events.append((started + SESSION_LAG, 1, seq, "session", (user, started)))
        events.append((started + SESSION_LAG + FAULT_SESSION_EXTRA_LAG, 1, seq + 1, "session_late", (user, started)))
        seq += 2
    # same-instant arrivals per merchant, for the inclusive-boundary fault
    arriving_at: dict[tuple[int, datetime], list[tuple[datetime, str | None]]] = defaultdict(list)
    for avail, _, _, kind, p in events:
        if kind == "tx" and p[1] is not None:
            arriving_at[(p[1], avail)].append((p[2], p[4]))  # type: ignore[index]
    for rid, user, merchant, ts, status in tx.select("txn_id", "user_id", "merchant_id", "ts", "status").iter_rows():
        events.append((ts, 0, seq, "request", (rid, user, merchant, ts, status)))
        seq += 1
    heapq.heapify(events)

    srv = Server()
    out: list[dict[str, object]] = []
    while events:
        _, _, _, kind, p = heapq.heappop(events)
        if kind == "tx":
            user, merchant, ts, amount, status = p
            if user is not None:
                srv.user_tx[user].append((ts, amount, status, merchant))  # type: ignore[index]
                fl = srv.first_last.get(user)  # type: ignore[call-overload]
                srv.first_last[user] = (min(fl[0], ts), max(fl[1], ts)) if fl else (ts, ts)  # type: ignore[index, type-var]
            if merchant is not None:
                srv.merchant_tx[merchant].append((ts, status))  # type: ignore[index]
        elif kind == "profile":
            user, order, country, tier = p
            srv.profile_hist[user].append((order, country, tier))  # type: ignore[index, arg-type]
        elif kind == "session":
            srv.sessions_on_time[p[0]].append(p[1])  # type: ignore[index, arg-type]
        elif kind == "session_late":
            srv.sessions_late[p[0]].append(p[1])  # type: ignore[index, arg-type]
        else:
            out.append(serve(srv, p, arriving_at, signup_country, rng))
    return pl.DataFrame(out, schema_overrides={"served_at": pl.Datetime("us", "UTC")}, infer_schema_length=None)


def serve(
    srv: Server,
    req: tuple[object, ...],
    arriving_at: dict[tuple[int, datetime], list[tuple[datetime, str | None]]],
    signup_country: dict[int, str | None],
    rng: random.Random,
) -> dict[str, object]:
    rid, user, merchant, t, status = req
    assert isinstance(t, datetime)
    row: dict[str, object] = {"request_id": rid, "user_id": user, "merchant_id": merchant, "served_at": t}
    values: dict[str, object] = dict.fromkeys(FEATURES)
    values.update(user_txn_count_1h=0, user_txn_count_24h=0, user_spend_7d=0.0, user_spend_30d=0.0,
                  user_declines_24h=0, user_distinct_merchants_7d=0, user_sessions_24h=0,
                  spend_ratio=0.0)  # a guest checkout (no user): empty windows, spend 0
    if user is not None:
        u = int(user)  # type: ignore[call-overload]
        kept = srv.user_tx[u] = [x for x in srv.user_tx.get(u, ()) if x[0] >= t - 30 * D]  # prune the store
        txs = [x for x in kept if x[0] < t]  # always all: a row arrives at or after its event time

        def win(w: timedelta, rows: list[tuple[datetime, float | None, str | None, int | None]] = txs) -> list[tuple[datetime, float | None, str | None, int | None]]:
            return [x for x in rows if t - w <= x[0]]

        w1h, w24h, w7d, w30d = win(H), win(D), win(7 * D), win(30 * D)
        spend_7d = sum(a for _, a, s, _ in w7d if s == "approved" and a is not None)
        spend_30d = sum(a for _, a, s, _ in w30d if s == "approved" and a is not None)
        amounts_30d = [a for _, a, _, _ in w30d if a is not None]
        amounts_7d = [a for _, a, _, _ in w7d if a is not None]
        avg_30d = sum(amounts_30d) / len(amounts_30d) if amounts_30d else None
        # FAULT stale cache (cache-aside, 1h) on user_avg_amount_30d
        hit = srv.cache.get(u)
        if hit is not None and t - hit[0] < FAULT_CACHE_TTL:
            served_avg = hit[1]
        else:
            srv.cache[u] = (t, avg_30d)
            served_avg = avg_30d
        max_7d = max(amounts_7d) if amounts_7d else None
        first, last = srv.first_last.get(u, (None, None))
        prof = srv.latest_profile(u, t)
        country = prof[1] if prof is not None and t - prof[0][0] <= 30 * D else None
        tier = prof[2] if prof is not None else None
        signup = signup_country.get(u)
        values.update(
            user_txn_count_1h=len(w1h),
            user_txn_count_24h=len(w24h),
            user_spend_7d=spend_7d,
            user_spend_30d=spend_30d,
            user_avg_amount_30d=served_avg,
            # FAULT unit bug: cents
            user_max_amount_7d=None if max_7d is None else round(max_7d * 100),
            user_declines_24h=sum(1 for x in w24h if x[2] == "declined"),
            user_distinct_merchants_7d=len({x[3] for x in w7d if x[3] is not None}),
            # FAULT nulls served as 0
            user_secs_since_last_txn=(t - last).total_seconds() if last is not None else 0.0,
            user_secs_since_first_txn=(t - first).total_seconds() if first is not None else None,
            user_country=country,
            user_tier=tier,
            user_signup_country=signup,
            user_country_changed=None if country is None or signup is None else country != signup,
            # FAULT ingestion lag: the late session feed
            user_sessions_24h=sum(1 for s in srv.sessions_late.get(u, ()) if t - D <= s < t),
            spend_ratio=spend_7d / (spend_30d + 1) if spend_30d + 1 != 0 else None,
        )
    if merchant is not None:
        m = int(merchant)  # type: ignore[call-overload]
        mtx = srv.merchant_tx[m] = [x for x in srv.merchant_tx.get(m, []) if x[0] >= t - D]
        exclusive = [x for x in mtx if t - D <= x[0] < t]
        # FAULT inclusive boundary: the store already holds the scored checkout and what arrives at t
        inclusive = [x for x in mtx if t - D < x[0] <= t] + [
            x for x in arriving_at.get((m, t), []) if t - D < x[0] <= t
        ]
        inclusive.append((t, status))  # type: ignore[arg-type]
        values.update(
            merchant_txn_count_24h=len(inclusive),
            merchant_declines_24h=sum(1 for x in exclusive if x[1] == "declined"),
        )
    row.update(values)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", type=Path, default=DATA / "serving_log.parquet")
    args = ap.parse_args()
    log = simulate(args.seed).sort("served_at", "request_id")
    tmp = args.out.with_suffix(".tmp.parquet")
    log.write_parquet(tmp, compression="zstd", statistics=True)
    tmp.replace(args.out)
    print(f"wrote {args.out} ({log.height:,} requests, {len(FEATURES)} features)")


if __name__ == "__main__":
    main()
