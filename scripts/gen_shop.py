"""Generate the synthetic "shop" sample project (card-not-present fraud) for fpipe.

    .venv/bin/python scripts/gen_shop.py --seed 7 --out sample_data/shop [--users 2000] [--days 120]

Writes, into --out:
- `users.parquet`        static table: user_id, signup_ts, country (nullable)
- `profiles.parquet`     slowly changing profile (CDC feed): user_id, country, tier, updated_at, ingested_at;
                         several versions per user, the feed starts with a full snapshot 60 days before the
                         first transaction; most changes arrive within minutes, some only in the nightly batch
- `transactions.parquet` txn_id, user_id (a few null: guest checkouts), merchant_id, ts (event time),
                         ingested_at (late: mostly 0-60 s, a tail of minutes to hours, a few > 1 day),
                         amount (float, some null), currency (USD/EUR), status (approved/declined), channel
                         (web/app/pos). Stored in arrival (ingestion) order, so out of order on `ts`;
                         POS terminals report whole minutes and split payments share a timestamp (ties).
- `chargebacks.parquet`  user_id, txn_id, reported_at (event time), ingested_at, reason; only those reported
                         before the end of the data (the snapshot), so late spine rows are censored
- `sessions.csv`         session_id, user_id, started_at (NAIVE local time, America/New_York), device, pages

Fraud is planted so that a model can learn it from point-in-time features: account takeovers (a burst of
high-value transactions at risky merchants, many declines, often right after a profile country change),
and fraudster accounts that cash out within days of signing up; plus a little "friendly fraud" noise.

Deterministic: the same arguments give byte-identical files (numpy Generator seeded once, parquet
written by pyarrow with fixed settings and no wall-clock metadata).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
from parquet_io import write_parquet as shared_write_parquet

DAY = 86_400
HOUR = 3_600
START = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())  # first transaction day (UTC)
PROFILE_FEED_START = START - 60 * DAY  # the CDC feed began with a full snapshot of every existing user

COUNTRIES = np.array(["US", "GB", "DE", "FR", "ES", "NL", "IT", "CA", "BR", "MX"])
COUNTRY_WEIGHTS = np.array([0.40, 0.10, 0.10, 0.08, 0.06, 0.05, 0.05, 0.07, 0.05, 0.04])
EUR_COUNTRIES = {"DE", "FR", "ES", "NL", "IT"}
TIERS = ["basic", "plus", "premium"]
DEVICES = np.array(["web", "ios", "android"])
N_MERCHANTS = 300
N_RISKY_MERCHANTS = 15  # gift cards, electronics, crypto top-ups: where stolen cards are cashed out


def hour_weights() -> np.ndarray:
    """Share of activity per UTC hour: a mix of US and European evenings, quiet around 08:00 UTC."""
    h = np.arange(24)
    w = 1.0 + 0.7 * np.cos(2 * np.pi * (h - 20) / 24) + 0.3 * np.cos(2 * np.pi * (h - 13) / 12)
    w = np.clip(w, 0.15, None)
    return w / w.sum()


HOUR_W = hour_weights()


def random_times(rng: np.random.Generator, lo: int, hi: int, n: int) -> np.ndarray:
    """n epoch seconds in [lo, hi) with a daily activity curve."""
    if n == 0 or hi <= lo:
        return np.empty(0, dtype=np.int64)
    out = np.empty(0, dtype=np.int64)
    while out.size < n:  # rejection sampling keeps the [lo, hi) bounds exact
        m = 2 * (n - out.size) + 8
        day0 = lo - lo % DAY
        days = rng.integers(0, (hi - day0) // DAY + 1, m)
        secs = rng.choice(24, m, p=HOUR_W) * HOUR + rng.integers(0, HOUR, m)
        t = day0 + days * DAY + secs
        out = np.concatenate([out, t[(t >= lo) & (t < hi)]])
    return np.sort(out[:n])


def to_datetime(col: str, epoch_s: pl.Expr | str) -> pl.Expr:
    e = pl.col(epoch_s) if isinstance(epoch_s, str) else epoch_s
    return pl.from_epoch(e, time_unit="s").dt.cast_time_unit("us").dt.replace_time_zone("UTC").alias(col)


# --------------------------------------------------------------------------------------------- users
def make_users(rng: np.random.Generator, n_users: int, end: int) -> dict[str, np.ndarray]:
    user_id = np.arange(1, n_users + 1, dtype=np.int64)
    new = rng.random(n_users) < 0.25  # a quarter sign up during the data window
    signup = np.where(
        new,
        rng.integers(START, START + int((end - START) * 0.95), n_users),
        rng.integers(START - 540 * DAY, START - DAY, n_users),
    )
    signup = signup - signup % 60 + rng.integers(0, 60, n_users)
    country = rng.choice(COUNTRIES, n_users, p=COUNTRY_WEIGHTS).astype(object)
    country[rng.random(n_users) < 0.03] = None
    # fraudster accounts: sign up during the window, cash out within days
    fraudster = new & (rng.random(n_users) < 0.10) & (signup < end - 3 * DAY)
    return {"user_id": user_id, "signup": signup, "country": country, "fraudster": fraudster}


# ------------------------------------------------------------------------------------- transactions
def make_transactions(
    rng: np.random.Generator, users: dict[str, np.ndarray], end: int
) -> tuple[pl.DataFrame, dict[int, int]]:
    """All transactions (not yet ordered for disk) and the takeover instant of each compromised user."""
    n_users = users["user_id"].size
    merchant_pop = 1.0 / np.arange(1, N_MERCHANTS + 1) ** 0.9
    merchant_pop /= merchant_pop.sum()
    merchant_ids = np.arange(101, 101 + N_MERCHANTS, dtype=np.int64)
    risky = rng.choice(merchant_ids[30:], N_RISKY_MERCHANTS, replace=False)  # not the very popular ones

    rate = np.exp(rng.normal(-1.62, 0.9, n_users))  # transactions per day
    rate[rng.random(n_users) < 0.08] *= 0.1  # dormant accounts
    typical = np.exp(rng.normal(np.log(38.0), 0.55, n_users))  # a user's typical basket

    established = (~users["fraudster"]) & (users["signup"] < START - 30 * DAY)
    ato = established & (rng.random(n_users) < 0.035)
    ato_at: dict[int, int] = {}

    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("user", "merchant", "ts", "amount", "declined", "channel", "fraud")}

    def add(uid: int, merchant: np.ndarray, ts: np.ndarray, amount: np.ndarray, declined: np.ndarray,
            channel: np.ndarray, fraud: bool) -> None:
        rows["user"].append(np.full(ts.size, uid, dtype=np.int64))
        rows["merchant"].append(merchant.astype(np.int64))
        rows["ts"].append(ts.astype(np.int64))
        rows["amount"].append(amount)
        rows["declined"].append(declined)
        rows["channel"].append(channel)
        rows["fraud"].append(np.full(ts.size, fraud))

    for i in range(n_users):
        uid = int(users["user_id"][i])
        lo = max(int(users["signup"][i]), START)
        if users["fraudster"][i]:
            # a fraudster account: maybe one or two innocuous purchases, then the cash-out burst
            n_legit = int(rng.integers(0, 3))
            t0 = lo + int(rng.exponential(1.5 * DAY)) + 600
            if t0 >= end - HOUR:
                t0 = lo + 600
            ts = random_times(rng, lo, min(t0, end), n_legit)
            add(uid, rng.choice(merchant_ids, ts.size, p=merchant_pop), ts,
                typical[i] * np.exp(rng.normal(0, 0.3, ts.size)), rng.random(ts.size) < 0.03,
                rng.choice(["web", "app"], ts.size), False)
            ato_at[uid] = t0
            add_burst(rng, add, uid, t0, end, merchant_ids, risky, n=int(rng.integers(6, 26)), card_testing=True)
            continue
        n = rng.poisson(rate[i] * max(end - lo, 0) / DAY)
        ts = random_times(rng, lo, end, n)
        favourites = rng.choice(merchant_ids, int(rng.integers(3, 9)), replace=False, p=merchant_pop)
        merchant = np.where(rng.random(n) < 0.75, rng.choice(favourites, n), rng.choice(merchant_ids, n, p=merchant_pop))
        amount = typical[i] * np.exp(rng.normal(0, 0.6, n))
        channel = rng.choice(["web", "app", "pos"], n, p=[0.45, 0.35, 0.20])
        add(uid, merchant, ts, amount, rng.random(n) < 0.03, channel, False)
        if ato[i]:
            t0 = int(rng.integers(START + 5 * DAY, end - DAY))
            ato_at[uid] = t0
            add_burst(rng, add, uid, t0, end, merchant_ids, risky, n=int(rng.integers(4, 21)), card_testing=False)

    frame = pl.DataFrame(
        {
            "user_id": np.concatenate(rows["user"]),
            "merchant_id": np.concatenate(rows["merchant"]),
            "ts_s": np.concatenate(rows["ts"]),
            "amount": np.round(np.concatenate(rows["amount"]), 2),
            "declined": np.concatenate(rows["declined"]),
            "channel": np.concatenate(rows["channel"]).astype(str),
            "fraud": np.concatenate(rows["fraud"]),
        }
    )
    return frame, ato_at


def add_burst(rng: np.random.Generator, add: Callable[..., None], uid: int, t0: int, end: int, merchant_ids: np.ndarray,
              risky: np.ndarray, n: int, card_testing: bool) -> None:
    """A cash-out burst: high velocity, high amounts, risky merchants, many declines."""
    gaps = rng.exponential(rng.choice([240.0, 900.0, 2400.0]), n)
    ts = t0 + np.cumsum(gaps).astype(np.int64)
    ts = ts[ts < end]
    if ts.size == 0:
        return
    m = ts.size
    merchant = np.where(rng.random(m) < 0.7, rng.choice(risky, m), rng.choice(merchant_ids, m))
    amount = np.exp(rng.normal(np.log(190.0), 0.7, m))
    if card_testing:  # the first few are tiny test charges
        k = min(int(rng.integers(1, 4)), m)
        amount[:k] = rng.uniform(1.0, 5.0, k)
    declined = rng.random(m) < 0.38
    channel = rng.choice(["web", "app"], m, p=[0.75, 0.25])
    add(uid, merchant, ts, amount, declined, channel, True)


def finish_transactions(rng: np.random.Generator, tx: pl.DataFrame, users: dict[str, np.ndarray]) -> pl.DataFrame:
    n = tx.height
    # POS terminals report whole minutes (many timestamp ties)
    ts = tx["ts_s"].to_numpy().copy()
    pos = (tx["channel"] == "pos").to_numpy()
    ts[pos] -= ts[pos] % 60
    tx = tx.with_columns(pl.Series("ts_s", ts))
    # split payments: ~1% of legit web/app purchases are paid in two parts at the same second
    split = (~tx["fraud"].to_numpy()) & (~pos) & (rng.random(n) < 0.01)
    halves = tx.filter(pl.Series(split)).with_columns((pl.col("amount") / 2).round(2))
    tx = pl.concat([tx.filter(~pl.Series(split)), halves, halves])

    # txn ids follow event time (ties in a random order)
    n = tx.height
    tx = tx.with_columns(pl.Series("_r", rng.permutation(n))).sort(["ts_s", "_r"])
    tx = tx.with_columns(txn_id=pl.int_range(1, n + 1, dtype=pl.Int64) + 500_000).drop("_r")

    # currency from the user's signup country
    country = pl.DataFrame({"user_id": users["user_id"], "_country": users["country"].astype(str)})
    tx = tx.join(country, on="user_id", how="left", maintain_order="left")
    eur = tx["_country"].is_in(sorted(EUR_COUNTRIES)).fill_null(False).to_numpy()

    # ingestion lag: mostly 0-60 s, a tail of minutes to hours, a few over a day (offline POS batches)
    u = rng.random(n)
    lag = np.minimum(rng.exponential(9.0, n), 60.0)
    tail = (u >= 0.93) & (u < 0.993)
    lag[tail] = np.exp(rng.uniform(np.log(61), np.log(6 * HOUR), int(tail.sum())))
    late = u >= 0.993
    lag[late] = rng.uniform(DAY + 60, 3 * DAY, int(late.sum()))
    ingested_ms = tx["ts_s"].to_numpy() * 1000 + np.round(lag * 1000).astype(np.int64)

    amount = tx["amount"].to_numpy().copy()
    amount[rng.random(n) < 0.004] = np.nan  # amount missing (pre-auth holds): read as null
    user_id = tx["user_id"].to_numpy().astype(object)
    guest = np.flatnonzero((~tx["fraud"].to_numpy()) & (rng.random(n) < 0.0004))
    user_id[guest] = None  # guest checkouts: null key

    out = pl.DataFrame(
        {
            "txn_id": tx["txn_id"],
            "user_id": pl.Series(user_id.tolist(), dtype=pl.Int64),
            "merchant_id": tx["merchant_id"],
            "ts_s": tx["ts_s"],
            "ingested_ms": ingested_ms,
            "amount": pl.Series(amount).fill_nan(None),
            "currency": np.where(eur, "EUR", "USD"),
            "status": np.where(tx["declined"].to_numpy(), "declined", "approved"),
            "channel": tx["channel"],
            "fraud": tx["fraud"],
        }
    )
    # on disk in arrival order: out of order on ts
    return out.sort(["ingested_ms", "txn_id"]).with_columns(
        to_datetime("ts", "ts_s"),
        pl.from_epoch("ingested_ms", time_unit="ms").dt.cast_time_unit("us").dt.replace_time_zone("UTC").alias("ingested_at"),
    )


# -------------------------------------------------------------------------------------- chargebacks
def make_chargebacks(rng: np.random.Generator, tx: pl.DataFrame, end: int) -> pl.DataFrame:
    approved = tx.filter((pl.col("status") == "approved") & pl.col("user_id").is_not_null())
    fraud = approved.filter(pl.col("fraud"))
    # the cardholder notices the statement: one report date per user's burst, plus a little jitter
    first = fraud.group_by("user_id").agg(pl.col("ts_s").max().alias("_burst_end")).sort("user_id")
    delay = (rng.gamma(2.0, 5.0, first.height) + 1.0) * DAY
    first = first.with_columns(_report=(pl.col("_burst_end") + pl.Series(delay.astype(np.int64))))
    fraud = fraud.sort("txn_id").join(first, on="user_id", how="left", maintain_order="left")
    keep = rng.random(fraud.height) < 0.88
    jitter = rng.integers(0, 2 * DAY, fraud.height)
    fraud = fraud.with_columns(
        reported_s=pl.col("_report") + pl.Series(jitter), reason=pl.lit("fraud")
    ).filter(pl.Series(keep))

    legit = approved.filter(~pl.col("fraud")).sort("txn_id")
    friendly = rng.random(legit.height) < 0.002  # "friendly fraud" / disputes: noise
    legit = legit.filter(pl.Series(friendly))
    legit = legit.with_columns(
        reported_s=pl.col("ts_s") + pl.Series(rng.integers(7 * DAY, 60 * DAY, legit.height)),
        reason=pl.Series(rng.choice(["not_received", "not_as_described", "fraud"], legit.height, p=[0.5, 0.3, 0.2])),
    )
    cb = pl.concat([fraud.select("user_id", "txn_id", "reported_s", "reason"),
                    legit.select("user_id", "txn_id", "reported_s", "reason")])
    cb = cb.filter(pl.col("reported_s") < end)  # only what had been reported when the data was extracted
    # the processor's chargeback file lands daily at 06:00 UTC
    day_start = pl.col("reported_s") - pl.col("reported_s") % DAY
    ingested = day_start + DAY + 6 * HOUR + pl.Series(rng.integers(0, 1800, cb.height))
    cb = cb.with_columns(ingested_s=ingested).sort(["reported_s", "txn_id"])
    return cb.select(
        "user_id", "txn_id", to_datetime("reported_at", "reported_s"), to_datetime("ingested_at", "ingested_s"), "reason"
    )


# ----------------------------------------------------------------------------------------- profiles
def make_profiles(rng: np.random.Generator, users: dict[str, np.ndarray], ato_at: dict[int, int], end: int) -> pl.DataFrame:
    uid_l: list[int] = []
    country_l: list[str | None] = []
    tier_l: list[str] = []
    upd_l: list[int] = []
    for i in range(users["user_id"].size):
        uid = int(users["user_id"][i])
        signup = int(users["signup"][i])
        country = users["country"][i]
        if signup < PROFILE_FEED_START:  # existing users: the snapshot row of the feed
            t = PROFILE_FEED_START + int(rng.integers(0, 3 * HOUR))
            tier = int(rng.choice(3, p=[0.6, 0.3, 0.1]))
        else:
            t = signup + int(rng.integers(1, 120))
            tier = 0
        events = [(t, country, tier)]
        ato_t = ato_at.get(uid) if not users["fraudster"][i] else None
        changed_before_ato = False
        while True:
            t += int(rng.exponential(20 * DAY)) + 60
            if ato_t is not None and not changed_before_ato and t > ato_t - 3 * HOUR:
                changed_before_ato = True
                if rng.random() < 0.6:  # the attacker changes the address right before cashing out
                    others = [c for c in COUNTRIES if c != country]
                    country = str(rng.choice(others))
                    events.append((ato_t - int(rng.integers(10 * 60, 3 * HOUR)), country, tier))
            if t >= end:
                break
            u = rng.random()
            if u < 0.45:
                tier = int(np.clip(tier + rng.choice([1, -1], p=[0.55, 0.45]), 0, 2))
            elif u < 0.53:
                country = None if rng.random() < 0.1 else str(rng.choice(COUNTRIES, p=COUNTRY_WEIGHTS))
            events.append((t, country, tier))
        events.sort(key=lambda e: e[0])
        for t_e, c_e, tier_e in events:
            uid_l.append(uid)
            country_l.append(c_e)
            tier_l.append(TIERS[tier_e])
            upd_l.append(t_e)
    n = len(uid_l)
    upd = np.array(upd_l, dtype=np.int64)
    # change data capture: usually within minutes, 6% only in the nightly batch (02:00 UTC next day)
    lag = np.exp(rng.normal(np.log(90.0), 1.0, n)).astype(np.int64)
    nightly = rng.random(n) < 0.06
    next_night = upd - upd % DAY + DAY + 2 * HOUR
    ingested = np.where(nightly, np.maximum(next_night, upd + 60), upd + lag)
    out = pl.DataFrame(
        {
            "user_id": np.array(uid_l, dtype=np.int64),
            "country": pl.Series(country_l, dtype=pl.String),
            "tier": tier_l,
            "upd_s": upd,
            "ing_s": ingested,
        }
    ).sort(["ing_s", "user_id", "upd_s"])
    return out.select("user_id", "country", "tier", to_datetime("updated_at", "upd_s"), to_datetime("ingested_at", "ing_s"))


# ----------------------------------------------------------------------------------------- sessions
def make_sessions(rng: np.random.Generator, users: dict[str, np.ndarray], ato_at: dict[int, int], end: int) -> pl.DataFrame:
    n_users = users["user_id"].size
    uid_l: list[np.ndarray] = []
    ts_l: list[np.ndarray] = []
    dev_l: list[np.ndarray] = []
    rate = np.exp(rng.normal(np.log(0.04), 0.8, n_users))
    for i in range(n_users):
        uid = int(users["user_id"][i])
        lo = max(int(users["signup"][i]), START)
        n = rng.poisson(rate[i] * max(end - lo, 0) / DAY)
        ts = random_times(rng, lo, end, n)
        home = rng.choice(DEVICES)
        dev = np.where(rng.random(n) < 0.85, home, rng.choice(DEVICES, n))
        if uid in ato_at:  # attacker / fraudster sessions right before the burst
            k = int(rng.integers(1, 4))
            t0 = ato_at[uid]
            extra = np.sort(t0 - rng.integers(5 * 60, 2 * HOUR, k))
            extra = extra[extra >= lo]
            ts = np.concatenate([ts, extra])
            dev = np.concatenate([dev, np.full(extra.size, "web")])
        uid_l.append(np.full(ts.size, uid, dtype=np.int64))
        ts_l.append(ts)
        dev_l.append(dev)
    n_anon = max(1, int(0.02 * sum(a.size for a in ts_l)))  # logged-out sessions: no user_id
    uid_arr = np.concatenate([*uid_l, np.zeros(n_anon, dtype=np.int64)]).astype(object)
    uid_arr[-n_anon:] = None
    ts_arr = np.concatenate([*ts_l, random_times(rng, START, end, n_anon)])
    dev_arr = np.concatenate([*dev_l, rng.choice(DEVICES, n_anon)])
    pages = 1 + rng.geometric(0.25, ts_arr.size)
    frame = pl.DataFrame(
        {
            "user_id": pl.Series(uid_arr.tolist(), dtype=pl.Int64),
            "ts_s": ts_arr.astype(np.int64),
            "device": dev_arr.astype(str),
            "pages": pages.astype(np.int64),
        }
    ).with_columns(pl.Series("_r", rng.permutation(ts_arr.size))).sort(["ts_s", "_r"])
    frame = frame.with_columns(
        session_id=pl.format("s{}", pl.int_range(1, frame.height + 1).cast(pl.String).str.pad_start(6, "0")),
        # the web analytics export writes NAIVE wall-clock time in New York
        started_at=to_datetime("x", "ts_s").dt.convert_time_zone("America/New_York").dt.strftime("%Y-%m-%d %H:%M:%S"),
    )
    return frame.select("session_id", "user_id", "started_at", "device", "pages")


# -------------------------------------------------------------------------------------------- write
def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    shared_write_parquet(frame, path, dictionary=[c for c, t in frame.schema.items() if t == pl.String])


def write_csv(frame: pl.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.write_csv(tmp, line_terminator="\n", null_value="")
    tmp.replace(path)


def generate(seed: int, out: Path, n_users: int = 2000, days: int = 120) -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    end = START + days * DAY
    users = make_users(rng, n_users, end)
    raw, ato_at = make_transactions(rng, users, end)
    tx = finish_transactions(rng, raw, users)
    chargebacks = make_chargebacks(rng, tx, end)
    profiles = make_profiles(rng, users, ato_at, end)
    sessions = make_sessions(rng, users, ato_at, end)

    users_df = pl.DataFrame(
        {"user_id": users["user_id"], "signup_s": users["signup"], "country": pl.Series(users["country"].tolist(), dtype=pl.String)}
    ).select("user_id", to_datetime("signup_ts", "signup_s"), "country")
    transactions = tx.select("txn_id", "user_id", "merchant_id", "ts", "ingested_at", "amount", "currency", "status", "channel")

    out.mkdir(parents=True, exist_ok=True)
    write_parquet(users_df, out / "users.parquet")
    write_parquet(profiles, out / "profiles.parquet")
    write_parquet(transactions, out / "transactions.parquet")
    write_parquet(chargebacks, out / "chargebacks.parquet")
    write_csv(sessions, out / "sessions.csv")
    return {
        "users": users_df,
        "profiles": profiles,
        "transactions": transactions,
        "chargebacks": chargebacks,
        "sessions": sessions,
        "_fraud": tx.select("txn_id", "fraud"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the synthetic shop sample data (deterministic).")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "sample_data" / "shop")
    parser.add_argument("--users", type=int, default=2000, help="number of users (default 2000)")
    parser.add_argument("--days", type=int, default=120, help="days of transactions from 2024-01-01 (default 120)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.users < 10 or args.days < 7:
        print("error: --users must be >= 10 and --days >= 7", file=sys.stderr)
        return 2
    frames = generate(args.seed, args.out, args.users, args.days)
    if not args.quiet:
        for name, ext in (("users", "parquet"), ("profiles", "parquet"), ("transactions", "parquet"),
                          ("chargebacks", "parquet"), ("sessions", "csv")):
            p = args.out / f"{name}.{ext}"
            digest = hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            print(f"{p}: {frames[name].height:,} rows, {p.stat().st_size:,} bytes, sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
