"""Benchmark of the skew comparison core: `python -m fpipe.skew.bench --rows 1000000 --features 20`.

Synthetic served/offline frames (a quarter of the features faulty: scale, offset, nulls as 0, noise),
then `compare_served` and the transform-only diagnosis (no engine). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta


def run_bench(rows: int, features: int, seed: int = 0) -> dict[str, float | int]:
    import numpy as np
    import polars as pl

    from fpipe.skew.compare import compare_served
    from fpipe.skew.diagnose import diagnose
    from fpipe.spec.model import Thresholds

    rng = np.random.default_rng(seed)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    base = pl.DataFrame(
        {
            "request_id": np.arange(rows),
            "user_id": rng.integers(0, max(rows // 20, 1), rows),
            "served_at": pl.datetime_range(t0, t0 + timedelta(seconds=rows - 1), "1s", eager=True),
        }
    )
    names = [f"f{i}" for i in range(features)]
    off_cols, srv_cols = {}, {}
    for i, name in enumerate(names):
        v = rng.gamma(2.0, 10.0, rows)
        if i % 5 == 4:
            v = np.where(rng.random(rows) < 0.1, np.nan, v)
        s = v.copy()
        if i % 4 == 1:
            s = s * 100
        elif i % 8 == 3:
            s = s + 1
        elif i % 8 == 7:
            s = np.where(np.isnan(v), 0.0, v)
        off_cols[name], srv_cols[name] = v, s
    offline = base.with_columns([pl.Series(k, v).fill_nan(None) for k, v in off_cols.items()])
    served = base.with_columns([pl.Series(k, v).fill_nan(None) for k, v in srv_cols.items()])
    t = time.perf_counter()
    report, joined = compare_served(
        served, offline, names, Thresholds(), keys=["user_id"], time_col="served_at", row_id="request_id"
    )
    t_compare = time.perf_counter() - t
    t = time.perf_counter()
    diagnose(joined, report)
    t_diag = time.perf_counter() - t
    return {
        "rows": rows,
        "features": features,
        "compare_seconds": round(t_compare, 2),
        "diagnose_seconds": round(t_diag, 2),
        "failing": report.counts()["fail"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(json.dumps(run_bench(a.rows, a.features, a.seed)))


if __name__ == "__main__":
    main()
