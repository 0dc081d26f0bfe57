"""The training set in DuckDB SQL.

Times are compared as epoch microseconds (no session-time-zone or calendar-interval surprises; see
PITFALLS). Input position is the parquet `file_row_number`.

Lookups: `ASOF JOIN ... ON s.t > b.vis` against a per-user running max (in visibility order) of each row's
rank in (event_time, available_time, position) order. A plain ASOF JOIN on availability would be wrong
with late rows (the most recently *arrived* row is not the latest *event*), and DuckDB breaks ties among
equal right-hand times arbitrarily; the running max makes every tie resolve to the same row.

Windows: a `RANGE ... PRECEDING` window frame orders by one column, but a window here has two bounds on two
columns (event_time >= t - w and visibility < t), so frames over markers cannot be exact with late rows
(they count rows that have happened but not arrived). The exact SQL is a range join on the user with both
bounds (DuckDB filters during the hash-join probe, so pairs outside the 30-day range are never kept) and
one GROUP BY with a FILTER clause per window.
"""

from __future__ import annotations

import duckdb

from bench.generate import LOOKUPS, WINDOW_AGGS, WINDOWS
from bench.tools.common import TTL_US, WINDOW_US, parse_args, part_features

SQL_AGG = {"count": "count(*)", "sum": "coalesce(sum(e.amount){f}, 0)", "mean": "avg(e.amount)", "min": "min(e.amount)", "max": "max(e.amount)"}


def build(data: str, part: str, out: str) -> None:
    names = part_features(part)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f"""CREATE TEMP TABLE spine AS
            SELECT file_row_number AS row_, request_id, user_id, t, epoch_us(t) AS t_us
            FROM read_parquet('{data}/spine.parquet', file_row_number = true)"""
    )
    selects = ["s.request_id", "s.user_id", "s.t"]
    joins = []
    loaded: set[str] = set()
    for name, (source, column, ttl) in LOOKUPS.items():
        if name not in names:
            continue
        et, av = ("ts", "ingested_at") if source == "events" else ("updated_at", "ingested_at")
        if source not in loaded:
            loaded.add(source)
            con.execute(
                f"""CREATE TEMP TABLE ranked_{source} AS
                    SELECT *, row_number() OVER (ORDER BY user_id, et, av, pos) AS r FROM (
                      SELECT user_id, epoch_us({et}) AS et, epoch_us({av}) AS av,
                             greatest(epoch_us({et}), epoch_us({av})) AS vis, file_row_number AS pos, *
                      FROM read_parquet('{data}/{source}.parquet', file_row_number = true)
                      WHERE user_id IS NOT NULL AND {et} IS NOT NULL AND {av} IS NOT NULL)"""
            )
            con.execute(
                f"""CREATE TEMP TABLE best_{source} AS
                    SELECT user_id, vis, max(max(r)) OVER (PARTITION BY user_id ORDER BY vis
                                                          ROWS UNBOUNDED PRECEDING) AS r
                    FROM ranked_{source} GROUP BY user_id, vis"""
            )
            con.execute(
                f"""CREATE TEMP TABLE hit_{source} AS
                    SELECT s.row_, s.t_us, b.r FROM spine s
                    ASOF LEFT JOIN best_{source} b ON s.user_id = b.user_id AND s.t_us > b.vis"""
            )
        alias = f"l_{name}"
        ttl_cond = f" AND h_{alias}.t_us - {alias}.et <= {TTL_US[ttl]}" if ttl else ""
        joins.append(
            f"LEFT JOIN hit_{source} h_{alias} ON h_{alias}.row_ = s.row_ "
            f"LEFT JOIN ranked_{source} {alias} ON {alias}.r = h_{alias}.r{ttl_cond}"
        )
        selects.append(f"{alias}.{column} AS {name}")
    wnames = [n for n in names if n not in LOOKUPS]
    if wnames:
        widest = max(WINDOW_US.values())
        con.execute(
            f"""CREATE TEMP TABLE ev AS
                SELECT user_id, epoch_us(ts) AS et, greatest(epoch_us(ts), epoch_us(ingested_at)) AS vis, amount
                FROM read_parquet('{data}/events.parquet')
                WHERE user_id IS NOT NULL AND ts IS NOT NULL AND ingested_at IS NOT NULL
                  AND greatest(epoch_us(ts), epoch_us(ingested_at)) - epoch_us(ts) < {widest}"""
        )
        cols = []
        for w in WINDOWS:
            f = f" FILTER (WHERE e.et >= s.t_us - {WINDOW_US[w]})"
            for a in WINDOW_AGGS:
                name = f"amount_{a}_{w}"
                if name not in wnames:
                    continue
                expr = SQL_AGG[a].format(f=f) if a == "sum" else SQL_AGG[a] + f
                cols.append(f"{expr} AS {name}")
        con.execute(
            f"""CREATE TEMP TABLE win AS
                SELECT s.row_, {', '.join(cols)}
                FROM spine s JOIN ev e
                  ON e.user_id = s.user_id AND e.et >= s.t_us - {widest} AND e.vis < s.t_us
                GROUP BY s.row_"""
        )
        joins.append("LEFT JOIN win w ON w.row_ = s.row_")
        for n in wnames:
            empty_zero = "_count_" in n or "_sum_" in n
            selects.append(f"coalesce(w.{n}, 0) AS {n}" if empty_zero else f"w.{n}")
    con.execute(
        f"""COPY (SELECT {', '.join(selects)} FROM spine s {' '.join(joins)} ORDER BY s.row_)
            TO '{out}' (FORMAT parquet)"""
    )


def main() -> None:
    args = parse_args(__doc__ or "")
    build(str(args.data), args.part, str(args.out))


if __name__ == "__main__":
    main()
