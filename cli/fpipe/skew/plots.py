"""Plot data for failing features (histograms of served vs offline, and a scatter): numbers, not pictures."""

from __future__ import annotations

import numpy as np
import polars as pl

from fpipe.skew.compare import Joined, match_col, offline_col, served_col
from fpipe.skew.report import FAIL, WARN, PlotData, SkewReport

HIST_BINS = 24
MAX_CATEGORIES = 12
SCATTER_POINTS = 400


def attach_plots(j: Joined, report: SkewReport, *, seed: int = 0) -> None:
    cov = j.covered
    for fs in report.features:
        if fs.status not in (FAIL, WARN) or cov.height == 0:
            continue
        if fs.kind == "numeric":
            fs.plot = _numeric(cov, fs.name, seed)
        elif fs.kind == "categorical":
            fs.plot = _categorical(cov, fs.name)


def _finite(s: pl.Series) -> np.ndarray:
    a = s.drop_nulls().to_numpy().astype(np.float64, copy=False)
    return a[np.isfinite(a)]


def _numeric(cov: pl.DataFrame, f: str, seed: int) -> PlotData | None:
    x = _finite(cov.get_column(offline_col(f)))
    y = _finite(cov.get_column(served_col(f)))
    both = np.concatenate([x, y])
    if both.size == 0:
        return None
    lo, hi = np.quantile(both, [0.005, 0.995])
    if hi <= lo:
        lo, hi = float(both.min()), float(both.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, HIST_BINS + 1)
    hx = np.histogram(np.clip(x, lo, hi), bins=edges)[0]
    hy = np.histogram(np.clip(y, lo, hi), bins=edges)[0]
    pts = cov.select(
        pl.col(offline_col(f)).alias("o"), pl.col(served_col(f)).alias("s"), pl.col(match_col(f)).alias("m")
    ).filter(pl.col("o").is_finite() & pl.col("s").is_finite())
    bad, good = pts.filter(~pl.col("m")), pts.filter(pl.col("m"))
    n_bad = min(bad.height, SCATTER_POINTS // 2)
    n_good = min(good.height, SCATTER_POINTS - n_bad)
    parts = [p.sample(n=k, seed=seed) for p, k in ((bad, n_bad), (good, n_good)) if k]
    scatter = [(float(o), float(s), bool(m)) for o, s, m in pl.concat(parts).iter_rows()] if parts else []
    return PlotData(
        kind="numeric",
        labels=[f"{e:.4g}" for e in edges[:-1]],
        edges=[float(e) for e in edges],
        served=[float(v) for v in hy / max(hy.sum(), 1)],
        offline=[float(v) for v in hx / max(hx.sum(), 1)],
        scatter=scatter,
    )


def _categorical(cov: pl.DataFrame, f: str) -> PlotData:
    def shares(col: str) -> dict[str, float]:
        vc = cov.get_column(col).fill_null("(null)").value_counts(name="_n")
        total = max(int(vc.get_column("_n").sum()), 1)
        return {str(v): n / total for v, n in vc.iter_rows()}

    so, ss = shares(offline_col(f)), shares(served_col(f))
    cats = sorted(set(so) | set(ss), key=lambda c: -(so.get(c, 0.0) + ss.get(c, 0.0)))[:MAX_CATEGORIES]
    return PlotData(
        kind="categorical",
        labels=cats,
        edges=[],
        served=[ss.get(c, 0.0) for c in cats],
        offline=[so.get(c, 0.0) for c in cats],
    )
