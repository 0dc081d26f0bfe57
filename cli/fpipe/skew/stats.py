"""Distribution statistics for skew reports: pure numpy, arrays in, numbers out.

Every statistic compares an offline sample `x` (the recomputed values, the reference) with a served
sample `y`. Nulls and NaNs are removed by the caller (they are measured by the null-rate change).

- PSI: 10 quantile bins of the offline values. Interior edges are the offline quantiles at
  10%, 20%, ..., 90% with the inverted-CDF definition (each edge is an observed offline value); repeated
  edges are merged, so heavily tied data gets fewer bins. Bins are right-closed: (-inf, e1], (e1, e2], ...,
  (e_k, +inf). With offline shares p_i and served shares q_i, both floored at PSI_EPSILON (no
  renormalisation): PSI = sum_i (q_i - p_i) * ln(q_i / p_i).
- Categorical PSI: the same formula over the union of categories.
- KS: the two-sample Kolmogorov-Smirnov statistic sup_v |F_x(v) - F_y(v)|.
- Wasserstein: the first Wasserstein distance (the area between the two empirical CDFs) divided by
  the offline population standard deviation (ddof=0).
- JS: the Jensen-Shannon distance in base 2 (sqrt of the divergence, in [0, 1]) over the PSI bins,
  without epsilon (0 * log 0 = 0).

Noise floors (`*_floor`): the value a statistic reaches by chance, at the 95% level, when served and
offline are two independent samples of the same distribution with these sizes. They are analytic
approximations (no resampling, so they are fast and deterministic):
- PSI: the symmetric KL divergence scaled by n1*n2/(n1+n2) is asymptotically chi-square with
  (bins - 1) degrees of freedom, so floor = chi2_0.95(bins - 1) * (1/n1 + 1/n2) (Wilson-Hilferty quantile).
- Largest category share change: z_{1 - 0.05/(2k)} * sqrt(max_c pbar_c (1 - pbar_c) * (1/n1 + 1/n2)),
  a Bonferroni bound over k categories with pooled shares pbar.
- Null-rate change: z_0.975 * sqrt(pt (1 - pt) * (1/n1 + 1/n2)) with pt = (nulls + 1) / (n + 2) pooled.
- Unseen-category share: the Good-Turing missing mass of the offline sample (singletons / n1) plus
  z_0.95 * sqrt(m (1 - m) / n2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

PSI_BINS = 10
PSI_EPSILON = 1e-4
FLOOR_LEVEL = 0.95

_NORMAL = NormalDist()


def z_quantile(p: float) -> float:
    """Standard normal quantile."""
    return _NORMAL.inv_cdf(p)


def chi2_quantile(p: float, df: int) -> float:
    """Chi-square quantile: exact for df 1 and 2, else Wilson-Hilferty (within 1% for df >= 3 at p = 0.95)."""
    if df <= 0:
        return 0.0
    if df == 1:
        return z_quantile((1.0 + p) / 2.0) ** 2
    if df == 2:
        return -2.0 * math.log(1.0 - p)
    z = z_quantile(p)
    a = 2.0 / (9.0 * df)
    return float(df * (1.0 - a + z * math.sqrt(a)) ** 3)


def quantile_edges(x: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """Unique interior edges: the offline quantiles at 1/bins, ..., (bins-1)/bins (inverted CDF)."""
    if x.size == 0:
        return np.empty(0, dtype=np.float64)
    qs = np.arange(1, bins) / bins
    return np.unique(np.quantile(x, qs, method="inverted_cdf"))


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of `values` in the right-closed bins (-inf, e1], (e1, e2], ..., (e_k, inf)."""
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
    total = counts.sum()
    return counts / total if total else counts.astype(np.float64)


def psi_from_shares(p: np.ndarray, q: np.ndarray, eps: float = PSI_EPSILON) -> float:
    """sum (q - p) ln(q / p), shares floored at eps; p offline, q served."""
    pp = np.maximum(p, eps)
    qq = np.maximum(q, eps)
    return float(np.sum((qq - pp) * np.log(qq / pp)))


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2, in [0, 1]."""
    m = (p + q) / 2.0

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    div = 0.5 * kl(p) + 0.5 * kl(q)
    return math.sqrt(max(div, 0.0))


def ks_statistic(x_sorted: np.ndarray, y_sorted: np.ndarray) -> float:
    """Two-sample KS statistic of two sorted samples."""
    return ks_and_wasserstein(x_sorted, y_sorted)[0]


def wasserstein_1(x_sorted: np.ndarray, y_sorted: np.ndarray) -> float:
    """First Wasserstein distance between two sorted samples (area between their empirical CDFs)."""
    return ks_and_wasserstein(x_sorted, y_sorted)[1]


def ks_and_wasserstein(x_sorted: np.ndarray, y_sorted: np.ndarray) -> tuple[float, float]:
    """(KS statistic, W1) of two sorted samples, from their empirical CDFs on the merged sorted values."""
    if x_sorted.size == 0 or y_sorted.size == 0:
        return float("nan"), float("nan")
    allv = np.concatenate([x_sorted, y_sorted])
    allv.sort(kind="stable")  # two sorted runs: a linear merge
    fx = np.searchsorted(x_sorted, allv, side="right") / x_sorted.size
    fy = np.searchsorted(y_sorted, allv, side="right") / y_sorted.size
    gap = np.abs(fx - fy)
    ks = float(np.max(gap))
    if not (np.isfinite(allv[0]) and np.isfinite(allv[-1])):
        return ks, float("nan")
    return ks, float(np.dot(gap[:-1], np.diff(allv)))


def psi_floor(n_offline: int, n_served: int, bins: int) -> float:
    if n_offline == 0 or n_served == 0:
        return float("inf")
    return chi2_quantile(FLOOR_LEVEL, max(bins - 1, 1)) * (1.0 / n_offline + 1.0 / n_served)


def share_change_floor(pooled_shares: np.ndarray, n_offline: int, n_served: int) -> float:
    if n_offline == 0 or n_served == 0:
        return float("inf")
    k = max(int(pooled_shares.size), 1)
    z = z_quantile(1.0 - (1.0 - FLOOR_LEVEL) / (2.0 * k))
    var = float(np.max(pooled_shares * (1.0 - pooled_shares))) if pooled_shares.size else 0.25
    return z * math.sqrt(var * (1.0 / n_offline + 1.0 / n_served))


def null_rate_floor(nulls_offline: int, n_offline: int, nulls_served: int, n_served: int) -> float:
    if n_offline == 0 or n_served == 0:
        return float("inf")
    pt = (nulls_offline + nulls_served + 1.0) / (n_offline + n_served + 2.0)
    z = z_quantile(1.0 - (1.0 - FLOOR_LEVEL) / 2.0)
    return z * math.sqrt(pt * (1.0 - pt) * (1.0 / n_offline + 1.0 / n_served))


def unseen_floor(singletons_offline: int, n_offline: int, n_served: int) -> float:
    if n_offline == 0 or n_served == 0:
        return float("inf")
    m = singletons_offline / n_offline
    return m + z_quantile(FLOOR_LEVEL) * math.sqrt(m * (1.0 - m) / n_served)


@dataclass(frozen=True)
class NumericDistribution:
    psi: float
    psi_bins: int
    psi_floor: float
    ks: float
    wasserstein_over_std: float | None
    js_distance: float


def compare_numeric(x: np.ndarray, y: np.ndarray) -> NumericDistribution:
    """x offline, y served; both finite-or-inf floats without NaN."""
    if x.size == 0 or y.size == 0:
        nan = float("nan")
        return NumericDistribution(nan, 0, float("inf"), nan, None, nan)
    if x.shape == y.shape and np.array_equal(x, y):  # paired and identical: every distance is 0
        bins = int(quantile_edges(x).size + 1)
        return NumericDistribution(0.0, bins, psi_floor(x.size, y.size, bins), 0.0, 0.0, 0.0)
    xs = np.sort(x)
    ys = np.sort(y)
    edges = quantile_edges(xs)
    p = bin_shares(xs, edges)
    q = bin_shares(ys, edges)
    finite = xs[np.isfinite(xs)]
    std = float(np.std(finite)) if finite.size else 0.0
    ks, w = ks_and_wasserstein(xs, ys)
    if std > 0:
        w_std: float | None = w / std
    else:
        w_std = 0.0 if w == 0 else None
    return NumericDistribution(
        psi=psi_from_shares(p, q),
        psi_bins=int(edges.size + 1),
        psi_floor=psi_floor(x.size, y.size, int(edges.size + 1)),
        ks=ks,
        wasserstein_over_std=w_std,
        js_distance=js_distance(p, q),
    )


@dataclass(frozen=True)
class CategoricalDistribution:
    psi: float
    psi_bins: int
    psi_floor: float
    js_distance: float
    share_change: float
    share_change_category: str | None
    share_change_floor: float
    unseen_share: float
    unseen_floor: float


def compare_categorical(
    x_values: list[str], x_counts: np.ndarray, y_values: list[str], y_counts: np.ndarray
) -> CategoricalDistribution:
    """Category counts of offline (x) and served (y); values are the categories as strings."""
    n_x = int(x_counts.sum())
    n_y = int(y_counts.sum())
    cats = sorted(set(x_values) | set(y_values))
    index = {c: i for i, c in enumerate(cats)}
    cx = np.zeros(len(cats))
    cy = np.zeros(len(cats))
    for v, c in zip(x_values, x_counts, strict=True):
        cx[index[v]] += c
    for v, c in zip(y_values, y_counts, strict=True):
        cy[index[v]] += c
    if n_x == 0 or n_y == 0:
        nan = float("nan")
        return CategoricalDistribution(nan, len(cats), float("inf"), nan, nan, None, float("inf"), nan, float("inf"))
    p = cx / n_x
    q = cy / n_y
    diff = np.abs(q - p)
    i = int(np.argmax(diff)) if diff.size else 0
    seen = set(x_values)
    unseen = float(sum(c for v, c in zip(y_values, y_counts, strict=True) if v not in seen)) / n_y
    pooled = (cx + cy) / (n_x + n_y)
    singletons = int(np.sum(x_counts == 1))
    return CategoricalDistribution(
        psi=psi_from_shares(p, q),
        psi_bins=len(cats),
        psi_floor=psi_floor(n_x, n_y, len(cats)),
        js_distance=js_distance(p, q),
        share_change=float(diff[i]) if diff.size else 0.0,
        share_change_category=cats[i] if cats else None,
        share_change_floor=share_change_floor(pooled, n_x, n_y),
        unseen_share=unseen,
        unseen_floor=unseen_floor(singletons, n_x, n_y),
    )
