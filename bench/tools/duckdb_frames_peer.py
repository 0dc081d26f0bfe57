"""The 15 windows in DuckDB SQL as the speed goal's issue wrote them: window functions with `RANGE ...
PRECEDING` frames. Shown beside the exact peer (duckdb_peer.py) because it is the usual way to write
these windows, and because it is wrong here.

The spine rows are markers in a union with the events, partitioned by user and ordered by event time;
each marker's frame `RANGE BETWEEN w PRECEDING AND 1 PRECEDING` (integer microseconds) holds the events
with event time in [t - w, t), the exclusive cutoff. Rows that never arrive (`ingested_at` null) are
dropped. What a frame cannot express is the second bound: a row must also have *arrived* before t
(visibility = max(event time, available time) < t). A frame orders by one column, so rows that happened
inside the window but arrived after t are counted: the leakage fpipe exists to prevent. The harness
reports how many spine rows differ from fpipe; it is not an agreeing peer, only a timing reference.
"""

from __future__ import annotations

import duckdb

from bench.generate import WINDOW_AGGS, WINDOWS
from bench.tools.common import WINDOW_US, parse_args, part_features

SQL_AGG = {
    "count": "count(one) OVER {w}",
    "sum": "coalesce(sum(amount) OVER {w}, 0)",
    "mean": "avg(amount) OVER {w}",
    "min": "min(amount) OVER {w}",
    "max": "max(amount) OVER {w}",
}


def build(data: str, part: str, out: str) -> None:
    if part != "windows":
        raise SystemExit("duckdb_frames_peer computes only --part windows (its lookups would be duckdb_peer's)")
    names = part_features(part)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    frames, cols = [], []
    for w in WINDOWS:
        frames.append(f"w{w} AS (PARTITION BY user_id ORDER BY et_us RANGE BETWEEN {WINDOW_US[w]} PRECEDING AND 1 PRECEDING)")
        for a in WINDOW_AGGS:
            name = f"amount_{a}_{w}"
            if name in names:
                cols.append(f"{SQL_AGG[a].format(w=f'w{w}')} AS {name}")
    con.execute(
        f"""COPY (
              SELECT request_id, user_id, t, {', '.join(n for n in names)} FROM (
                SELECT row_, request_id, user_id, t, {', '.join(cols)} FROM (
                  SELECT user_id, epoch_us(ts) AS et_us, amount, 1 AS one,
                         NULL::BIGINT AS row_, NULL::BIGINT AS request_id, NULL::TIMESTAMPTZ AS t
                  FROM read_parquet('{data}/events.parquet')
                  WHERE user_id IS NOT NULL AND ts IS NOT NULL AND ingested_at IS NOT NULL
                  UNION ALL
                  SELECT user_id, epoch_us(t), NULL, NULL, file_row_number, request_id, t
                  FROM read_parquet('{data}/spine.parquet', file_row_number = true)
                ) u
                WINDOW {', '.join(frames)}
              ) WHERE row_ IS NOT NULL ORDER BY row_
            ) TO '{out}' (FORMAT parquet)"""
    )


def main() -> None:
    args = parse_args(__doc__ or "")
    build(str(args.data), args.part, str(args.out))


if __name__ == "__main__":
    main()
