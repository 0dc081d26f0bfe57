"""The training set hand-written in plain Polars (eager, in-memory engine): the floor for fpipe's overhead.

Lookups: rank rows by (event_time, available_time, position); per user, a running max of the rank in
visibility order; one backward as-of join at t (strict). Windows: per spine row, the index range of the
user's events with event_time in [t - 30d, t) (two as-of joins on the events sorted by user and time),
exploded into (spine row, event) pairs of that 30-day range only, filtered by visibility, then one
group-by computing all 15 aggregates with a mask per window.
"""

from __future__ import annotations

import polars as pl

from bench.generate import LOOKUPS, WINDOW_AGGS, WINDOWS
from bench.tools.common import TTL_US, WINDOW_US, parse_args, part_features

US = pl.Datetime("us", "UTC")


def read_events(path: str, value: str) -> pl.DataFrame:
    time_cols = ("ts", "ingested_at") if "events" in path else ("updated_at", "ingested_at")
    ev = pl.read_parquet(path, columns=["user_id", *time_cols, value]).with_row_index("pos")
    ev = ev.rename({time_cols[0]: "et", time_cols[1]: "av"}).filter(
        pl.col("user_id").is_not_null() & pl.col("et").is_not_null() & pl.col("av").is_not_null()
    )
    return ev.with_columns(pl.max_horizontal("et", "av").alias("vis"))


def latest(sp: pl.DataFrame, ev: pl.DataFrame, value: str, ttl_us: int | None) -> pl.DataFrame:
    ranked = ev.sort(["user_id", "et", "av", "pos"]).with_row_index("r")
    best = (
        ranked.group_by(["user_id", "vis"])
        .agg(pl.col("r").max())
        .sort(["user_id", "vis"])
        .with_columns(pl.col("r").cum_max().over("user_id"))
    )
    hit = sp.sort(["user_id", "t"]).join_asof(
        best, left_on="t", right_on="vis", by="user_id", strategy="backward", allow_exact_matches=False,
        check_sortedness=False,
    )
    hit = hit.join(ranked.select("r", "et", value), on="r", how="left")
    ok = pl.col("r").is_not_null()
    if ttl_us is not None:
        ok = ok & ((pl.col("t") - pl.col("et")) <= pl.duration(microseconds=ttl_us))
    return hit.select("row", pl.when(ok).then(pl.col(value)).alias(value))


def windows(sp: pl.DataFrame, ev: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    widest = max(WINDOW_US.values())
    # a row whose lateness is >= the widest window is visible only after it left every window
    e = ev.filter((pl.col("vis") - pl.col("et")) < pl.duration(microseconds=widest))
    e = e.sort(["user_id", "et"]).with_row_index("i").with_columns(pl.col("i").cast(pl.Int64))
    g = e.group_by(["user_id", "et"]).agg(pl.col("i").min().alias("lo"), pl.col("i").max().alias("hi"))
    g = g.sort(["user_id", "et"])
    s = sp.with_columns((pl.col("t") - pl.duration(microseconds=widest)).alias("start"))
    s = s.sort(["user_id", "t"]).join_asof(
        g.select("user_id", "et", "hi"), left_on="t", right_on="et", by="user_id", strategy="backward",
        allow_exact_matches=False, check_sortedness=False,
    )
    s = s.drop("et").sort(["user_id", "start"]).join_asof(
        g.select("user_id", "et", "lo"), left_on="start", right_on="et", by="user_id", strategy="forward",
        allow_exact_matches=True, check_sortedness=False,
    )
    s = s.filter(pl.col("lo").is_not_null() & pl.col("hi").is_not_null() & (pl.col("lo") <= pl.col("hi")))
    pairs = s.select("row", "t", pl.int_ranges("lo", pl.col("hi") + 1).alias("i")).explode("i")
    idx = pairs.get_column("i")
    pairs = pairs.with_columns(
        e.get_column("et").gather(idx).alias("et"),
        e.get_column("vis").gather(idx).alias("vis"),
        e.get_column("amount").gather(idx).alias("amount"),
    ).filter(pl.col("vis") < pl.col("t"))
    aggs = []
    for w in WINDOWS:
        inside = pl.col("et") >= pl.col("t") - pl.duration(microseconds=WINDOW_US[w])
        v = pl.col("amount").filter(inside)
        exprs = {"count": inside.sum().cast(pl.Int64), "sum": v.sum(), "mean": v.mean(), "min": v.min(), "max": v.max()}
        for a in WINDOW_AGGS:
            name = f"amount_{a}_{w}"
            if name in names:
                aggs.append(exprs[a].alias(name))
    return pairs.group_by("row").agg(aggs)


def build(data: str, part: str) -> pl.DataFrame:
    names = part_features(part)
    spine = pl.read_parquet(f"{data}/spine.parquet").with_row_index("row")
    sp = spine.filter(pl.col("user_id").is_not_null() & pl.col("t").is_not_null()).select("row", "user_id", "t")
    out = spine
    events: dict[str, pl.DataFrame] = {}
    for name, (source, column, ttl) in LOOKUPS.items():
        if name not in names:
            continue
        key = f"{source}:{column}"
        if key not in events:
            events[key] = read_events(f"{data}/{source}.parquet", column)
        res = latest(sp, events[key], column, TTL_US[ttl] if ttl else None).rename({column: name})
        out = out.join(res, on="row", how="left", maintain_order="left")
    wnames = [n for n in names if n not in LOOKUPS]
    if wnames:
        ev = events["events:amount"] if "events:amount" in events else read_events(f"{data}/events.parquet", "amount")
        res = windows(sp, ev, wnames)
        out = out.join(res, on="row", how="left", maintain_order="left")
        zero = [pl.col(n).fill_null(0) for n in wnames if "_count_" in n or "_sum_" in n]
        out = out.with_columns(zero)
    return out.select([*spine.columns[1:], *names])


def main() -> None:
    args = parse_args(__doc__ or "")
    build(str(args.data), args.part).write_parquet(args.out)


if __name__ == "__main__":
    main()
