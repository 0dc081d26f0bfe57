"""Distribution statistics: pinned values on hand-made data, and an independent pure-Python implementation."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pytest

from fpipe.skew import stats


# ---------- an independent, deliberately naive implementation (no numpy) ----------
def ref_quantile_inverted_cdf(values: list[float], q: float) -> float:
    """Smallest x with F(x) >= q (the inverted-CDF definition), computed with exact fractions."""
    xs = sorted(values)
    n = len(xs)
    for i, x in enumerate(xs, start=1):
        if Fraction(i, n) >= Fraction(q).limit_denominator(1000):
            return x
    return xs[-1]


def ref_psi(offline: list[float], served: list[float], bins: int = 10, eps: float = 1e-4) -> float:
    edges = sorted({ref_quantile_inverted_cdf(offline, k / bins) for k in range(1, bins)})

    def shares(vals: list[float]) -> list[float]:
        counts = [0] * (len(edges) + 1)
        for v in vals:
            i = 0
            while i < len(edges) and v > edges[i]:  # right-closed bins
                i += 1
            counts[i] += 1
        return [c / len(vals) for c in counts]

    p, q = shares(offline), shares(served)
    return sum((max(b, eps) - max(a, eps)) * math.log(max(b, eps) / max(a, eps)) for a, b in zip(p, q, strict=True))


def ref_ks(x: list[float], y: list[float]) -> float:
    best = 0.0
    for v in set(x) | set(y):
        fx = sum(1 for a in x if a <= v) / len(x)
        fy = sum(1 for b in y if b <= v) / len(y)
        best = max(best, abs(fx - fy))
    return best


def ref_wasserstein(x: list[float], y: list[float]) -> float:
    pts = sorted(set(x) | set(y))
    total = 0.0
    for lo, hi in zip(pts, pts[1:], strict=False):
        fx = sum(1 for a in x if a <= lo) / len(x)
        fy = sum(1 for b in y if b <= lo) / len(y)
        total += abs(fx - fy) * (hi - lo)
    return total


def ref_js(p: list[float], q: list[float]) -> float:
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    kl_p = sum(a * math.log2(a / c) for a, c in zip(p, m, strict=True) if a > 0)
    kl_q = sum(b * math.log2(b / c) for b, c in zip(q, m, strict=True) if b > 0)
    return math.sqrt(0.5 * kl_p + 0.5 * kl_q)


# ---------- pinned values ----------
def test_psi_pinned_on_hand_made_shares() -> None:
    p = np.array([0.5, 0.5])
    q = np.array([0.25, 0.75])
    # (0.25-0.5) ln(0.5) + (0.75-0.5) ln(1.5) = 0.25 ln 3
    assert stats.psi_from_shares(p, q) == pytest.approx(0.25 * math.log(3), abs=1e-12)


def test_psi_epsilon_floors_empty_bins_without_renormalising() -> None:
    p = np.array([1.0, 0.0])
    q = np.array([0.0, 1.0])
    eps = stats.PSI_EPSILON
    expected = (eps - 1.0) * math.log(eps / 1.0) + (1.0 - eps) * math.log(1.0 / eps)
    assert stats.psi_from_shares(p, q) == pytest.approx(expected, rel=1e-12)
    assert stats.PSI_EPSILON == 1e-4


def test_quantile_edges_are_observed_values_and_merge_ties() -> None:
    x = np.array([0, 0, 0, 0, 0, 0, 1, 2, 3, 4], dtype=float)
    assert stats.quantile_edges(x).tolist() == [0.0, 1.0, 2.0, 3.0]  # 60% of mass at 0: one edge
    assert stats.quantile_edges(np.arange(1, 101, dtype=float)).tolist() == [10, 20, 30, 40, 50, 60, 70, 80, 90]


def test_bins_are_right_closed() -> None:
    edges = np.array([1.0, 2.0])
    assert stats.bin_shares(np.array([1.0, 1.5, 2.0, 2.5]), edges).tolist() == [0.25, 0.5, 0.25]


def test_ks_and_wasserstein_pinned() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([3.0, 4.0, 5.0, 6.0])
    assert stats.ks_statistic(x, y) == pytest.approx(0.5)
    assert stats.wasserstein_1(x, y) == pytest.approx(2.0)  # every value moved by 2


def test_js_distance_pinned() -> None:
    assert stats.js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    assert stats.js_distance(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0


def test_identical_samples_are_all_zero() -> None:
    x = np.random.default_rng(0).normal(size=500)
    d = stats.compare_numeric(x, x.copy())
    assert (d.psi, d.ks, d.wasserstein_over_std, d.js_distance) == (0.0, 0.0, 0.0, 0.0)
    assert d.psi_bins == 10


# ---------- against the independent implementation ----------
@pytest.mark.parametrize("seed", range(6))
def test_numeric_statistics_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    kind = seed % 3
    n, m = rng.randint(20, 120), rng.randint(20, 120)
    if kind == 0:  # continuous, shifted
        x = [rng.gauss(0, 1) for _ in range(n)]
        y = [rng.gauss(0.4, 1.3) for _ in range(m)]
    elif kind == 1:  # heavy ties (counts)
        x = [float(rng.randint(0, 4)) for _ in range(n)]
        y = [float(rng.randint(0, 6)) for _ in range(m)]
    else:  # zero-inflated
        x = [0.0 if rng.random() < 0.6 else rng.expovariate(0.1) for _ in range(n)]
        y = [0.0 if rng.random() < 0.3 else rng.expovariate(0.1) for _ in range(m)]
    d = stats.compare_numeric(np.array(x), np.array(y))
    assert d.psi == pytest.approx(ref_psi(x, y), rel=1e-9, abs=1e-12)
    assert d.ks == pytest.approx(ref_ks(x, y), abs=1e-12)
    std = float(np.std(x))
    assert d.wasserstein_over_std == pytest.approx(ref_wasserstein(x, y) / std, rel=1e-9)
    edges = stats.quantile_edges(np.sort(np.array(x)))
    p = stats.bin_shares(np.array(x), edges).tolist()
    q = stats.bin_shares(np.array(y), edges).tolist()
    assert d.js_distance == pytest.approx(ref_js(p, q), abs=1e-12)


def test_categorical_statistics_match_the_reference() -> None:
    x = {"a": 50, "b": 30, "c": 20}
    y = {"a": 40, "b": 30, "d": 30}
    d = stats.compare_categorical(list(x), np.array(list(x.values())), list(y), np.array(list(y.values())))
    cats = ["a", "b", "c", "d"]
    p = [x.get(c, 0) / 100 for c in cats]
    q = [y.get(c, 0) / 100 for c in cats]
    eps = 1e-4
    psi = sum((max(b, eps) - max(a, eps)) * math.log(max(b, eps) / max(a, eps)) for a, b in zip(p, q, strict=True))
    assert d.psi == pytest.approx(psi, rel=1e-12)
    assert d.js_distance == pytest.approx(ref_js(p, q), abs=1e-12)
    assert d.share_change == pytest.approx(0.30) and d.share_change_category == "d"
    assert d.unseen_share == pytest.approx(0.30)


# ---------- noise floors ----------
def test_chi2_quantile_is_close_to_tabulated_values() -> None:
    # chi2_0.95 for df 1, 5, 9, 20 (tables)
    for df, table in ((1, 3.841), (5, 11.070), (9, 16.919), (20, 31.410)):
        assert stats.chi2_quantile(0.95, df) == pytest.approx(table, rel=0.02)


def test_psi_floor_matches_a_seeded_permutation_of_the_null() -> None:
    """The analytic floor is close to the 95th percentile of PSI between two samples of one distribution."""
    rng = np.random.default_rng(3)
    n = 2000
    psis = []
    for _ in range(300):
        x, y = rng.normal(size=n), rng.normal(size=n)
        psis.append(stats.compare_numeric(x, y).psi)
    empirical = float(np.quantile(psis, 0.95))
    analytic = stats.psi_floor(n, n, 10)
    assert analytic == pytest.approx(empirical, rel=0.25)


def test_null_rate_floor_matches_simulation() -> None:
    rng = np.random.default_rng(4)
    n, p = 1000, 0.1
    diffs = [abs(rng.binomial(n, p) / n - rng.binomial(n, p) / n) for _ in range(4000)]
    empirical = float(np.quantile(diffs, 0.95))
    assert stats.null_rate_floor(100, n, 100, n) == pytest.approx(empirical, rel=0.2)
