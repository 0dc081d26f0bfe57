"""The training set in pandas (run at S only: it is the slow baseline).

Lookups: `merge_asof(..., by="user_id", allow_exact_matches=False)` against a per-user running max (in
visibility order) of each row's rank in (event_time, available_time, position) order. Windows: pandas'
time-based `rolling` orders by one column and so cannot apply both window bounds (event_time >= t - w and
visibility < t) with late rows; the exact pandas is a merge on the user, a filter, and a groupby per window.
Times are int64 epoch microseconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.generate import LOOKUPS, WINDOW_AGGS, WINDOWS
from bench.tools.common import TTL_US, WINDOW_US, parse_args, part_features


def _us(s: pd.Series) -> pd.Series:
    return s.astype("datetime64[us, UTC]").astype("int64")


def read_events(path: str, et: str, value: str) -> pd.DataFrame:
    ev = pd.read_parquet(path, columns=["user_id", et, "ingested_at", value])
    ev["pos"] = np.arange(len(ev))
    ev = ev[ev["user_id"].notna() & ev[et].notna() & ev["ingested_at"].notna()].copy()
    ev["et"] = _us(ev[et])
    ev["av"] = _us(ev["ingested_at"])
    ev["vis"] = np.maximum(ev["et"].to_numpy(), ev["av"].to_numpy())
    ev["user_id"] = ev["user_id"].astype("int64")
    return ev[["user_id", "et", "av", "vis", "pos", value]]


def latest(sp: pd.DataFrame, ev: pd.DataFrame, value: str, ttl_us: int | None) -> pd.Series:
    ranked = ev.sort_values(["user_id", "et", "av", "pos"], kind="stable").reset_index(drop=True)
    ranked["r"] = np.arange(len(ranked))
    best = ranked.groupby(["user_id", "vis"], sort=True)["r"].max().reset_index()
    best["r"] = best.groupby("user_id")["r"].cummax()
    best = best.sort_values("vis", kind="stable")
    left = sp.sort_values("t_us", kind="stable")
    hit = pd.merge_asof(
        left, best, left_on="t_us", right_on="vis", by="user_id", direction="backward", allow_exact_matches=False
    )
    r = hit["r"]
    found = r.notna().to_numpy()
    idx = r.fillna(0).astype("int64").to_numpy()
    vals = ranked[value].to_numpy(dtype=object)[idx]
    et = ranked["et"].to_numpy()[idx]
    ok = found
    if ttl_us is not None:
        ok = ok & ((hit["t_us"].to_numpy() - et) <= ttl_us)
    out = pd.Series(np.where(ok, vals, None), index=hit["row"].to_numpy(), dtype=object)
    return out


def windows(sp: pd.DataFrame, ev: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    widest = max(WINDOW_US.values())
    e = ev[(ev["vis"] - ev["et"]) < widest]
    pairs = sp.merge(e[["user_id", "et", "vis", "amount"]], on="user_id", how="inner")
    pairs = pairs[(pairs["vis"] < pairs["t_us"]) & (pairs["et"] >= pairs["t_us"] - widest)]
    cols = {}
    for w in WINDOWS:
        p = pairs[pairs["et"] >= pairs["t_us"] - WINDOW_US[w]]
        g = p.groupby("row")["amount"]
        stats = {"count": g.size(), "sum": g.sum(), "mean": g.mean(), "min": g.min(), "max": g.max()}
        for a in WINDOW_AGGS:
            name = f"amount_{a}_{w}"
            if name in names:
                cols[name] = stats[a]
    return pd.DataFrame(cols)


def build(data: str, part: str) -> pd.DataFrame:
    names = part_features(part)
    spine = pd.read_parquet(f"{data}/spine.parquet")
    spine.index = np.arange(len(spine))
    ok = spine["user_id"].notna() & spine["t"].notna()
    sp = pd.DataFrame({"row": spine.index[ok], "user_id": spine.loc[ok, "user_id"].astype("int64"), "t_us": _us(spine.loc[ok, "t"])})
    out = spine.copy()
    events: dict[str, pd.DataFrame] = {}
    for name, (source, column, ttl) in LOOKUPS.items():
        if name not in names:
            continue
        key = f"{source}:{column}"
        if key not in events:
            events[key] = read_events(f"{data}/{source}.parquet", "ts" if source == "events" else "updated_at", column)
        out[name] = latest(sp, events[key], column, TTL_US[ttl] if ttl else None).reindex(out.index)
    wnames = [n for n in names if n not in LOOKUPS]
    if wnames:
        ev = events["events:amount"] if "events:amount" in events else read_events(f"{data}/events.parquet", "ts", "amount")
        res = windows(sp, ev, wnames).reindex(out.index)
        for n in wnames:
            col = res[n]
            out[n] = col.fillna(0).astype("int64") if "_count_" in n else (col.fillna(0.0) if "_sum_" in n else col)
    return out[[*spine.columns, *names]]


def main() -> None:
    import polars as pl

    args = parse_args(__doc__ or "")
    frame = build(str(args.data), args.part)
    pl.from_pandas(frame, nan_to_null=True).with_columns(pl.col("user_id").cast(pl.Int64)).write_parquet(args.out)


if __name__ == "__main__":
    main()
