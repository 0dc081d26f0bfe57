"""Cause diagnosis on synthetic faults: a tiny event world, a brute-force recompute, one fault per feature."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from fpipe.skew.compare import compare_served
from fpipe.skew.diagnose import FeatureOrigin, Overrides, diagnose
from fpipe.spec.model import Thresholds

T0 = datetime(2024, 3, 1, tzinfo=UTC)


class World:
    """Events of 40 users over two days (ingested 1..20 s after they happen) and 3,000 requests."""

    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        n_ev = 4000
        self.ev_user = rng.integers(0, 40, n_ev)
        self.ev_t = np.sort(rng.integers(0, 2 * 86400, n_ev)).astype(np.int64)  # seconds since T0
        self.ev_avail = self.ev_t + rng.integers(1, 21, n_ev)
        self.ev_amount = np.round(rng.gamma(2.0, 20.0, n_ev), 2)
        n_req = 3000
        req_user = rng.integers(0, 40, n_req)
        req_t = rng.integers(3600, 2 * 86400, n_req).astype(np.int64)
        # a third of the requests land exactly when an event of the user becomes available (boundary ties)
        tie = rng.random(n_req) < 0.33
        pick = rng.integers(0, n_ev, n_req)
        req_user = np.where(tie, self.ev_user[pick], req_user)
        req_t = np.where(tie, self.ev_avail[pick], req_t)
        order = np.argsort(req_t, kind="stable")
        self.req_user, self.req_t = req_user[order], req_t[order]

    def compute(self, users: np.ndarray, t: np.ndarray, lag: int = 0, inclusive: bool = False) -> dict[str, np.ndarray]:
        n = users.size
        count = np.zeros(n, dtype=np.int64)
        total = np.zeros(n)
        last = np.full(n, np.nan)
        for i in range(n):
            sel = self.ev_user == users[i]
            if inclusive:
                vis = sel & (self.ev_avail + lag <= t[i]) & (self.ev_t <= t[i])
            else:
                vis = sel & (self.ev_avail + lag < t[i]) & (self.ev_t < t[i])
            idx = np.flatnonzero(vis)
            count[i] = idx.size
            total[i] = self.ev_amount[idx].sum()
            if idx.size:
                last[i] = self.ev_amount[idx[-1]]
        return {"n_tx": count, "spend": total, "last_amount": last}

    def frame(self, values: dict[str, np.ndarray]) -> pl.DataFrame:
        cols: dict[str, object] = {
            "request_id": np.arange(self.req_t.size),
            "user_id": self.req_user,
            "served_at": [T0 + timedelta(seconds=int(s)) for s in self.req_t],
        }
        for k, v in values.items():
            cols[k] = v if k != "last_amount" else pl.Series(k, v).fill_nan(None)
        return pl.DataFrame(cols)

    def recompute(self, spine: pl.DataFrame, features: list[str], ov: Overrides) -> pl.DataFrame:
        t = np.array([int((x - T0).total_seconds()) for x in spine["served_at"]]) + int(ov.time_shift.total_seconds())
        if ov.time_floor is not None:  # T0 is midnight UTC: flooring since T0 is flooring since the epoch
            period = int(ov.time_floor.total_seconds())
            t = t // period * period
        lag = int(ov.source_lags.get("tx", timedelta(0)).total_seconds())
        vals = self.compute(spine["user_id"].to_numpy(), t, lag=lag, inclusive=ov.cutoff == "inclusive")
        return pl.DataFrame({f: vals[f] for f in features}).with_columns(
            pl.col(f).fill_nan(None) for f in features if f == "last_amount"
        )


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def _run(world: World, served_values: dict[str, np.ndarray]):
    truth = world.compute(world.req_user, world.req_t)
    offline = world.frame(truth)
    served = world.frame(served_values)
    feats = list(served_values)
    report, j = compare_served(served, offline, feats, Thresholds(), keys=["user_id"], time_col="served_at",
                                      row_id="request_id")
    origins = {f: FeatureOrigin(sources=("tx",), cutoff="exclusive") for f in feats}
    diagnose(j, report, world.recompute, origins, lag_grid=[timedelta(seconds=s) for s in (5, 15, 30, 60, 120)],
             hour_shifts=[1, -1, 2, -2], stale_ages=[timedelta(minutes=5)],
             refresh_periods=[timedelta(minutes=5), timedelta(minutes=15)])
    return report, truth


def test_ingestion_lag_is_found_with_its_size(world: World) -> None:
    lagged = world.compute(world.req_user, world.req_t, lag=30)
    report, _ = _run(world, {"n_tx": lagged["n_tx"]})
    d = report.feature("n_tx").diagnosis
    assert d is not None and d.cause == "ingestion_lag"
    assert d.parameters["source"] == "tx" and d.parameters["lag_seconds"] == 30
    assert d.match_rate_after == pytest.approx(1.0)
    assert d.evidence.startswith("with an extra 30s lag on source tx the match rate rises from ")


def test_inclusive_boundary_is_found(world: World) -> None:
    incl = world.compute(world.req_user, world.req_t, inclusive=True)
    report, _ = _run(world, {"n_tx": incl["n_tx"], "spend": incl["spend"]})
    for f in ("n_tx", "spend"):
        d = report.feature(f).diagnosis
        assert d is not None and d.cause == "cutoff_boundary", (f, d)
        assert d.parameters == {"cutoff": "inclusive"}


def test_unit_bug_is_a_scale_of_100(world: World) -> None:
    truth = world.compute(world.req_user, world.req_t)
    report, _ = _run(world, {"spend": np.round(truth["spend"] * 100, 6)})
    d = report.feature("spend").diagnosis
    assert d is not None and d.cause == "scale" and d.parameters["factor"] == 100.0
    assert "cents vs dollars" in d.summary


def test_constant_offset(world: World) -> None:
    truth = world.compute(world.req_user, world.req_t)
    report, _ = _run(world, {"spend": truth["spend"] + 5.0})
    d = report.feature("spend").diagnosis
    assert d is not None and d.cause == "offset" and d.parameters["offset"] == pytest.approx(5.0)


def test_nulls_served_as_zero(world: World) -> None:
    truth = world.compute(world.req_user, world.req_t)
    report, _ = _run(world, {"last_amount": np.nan_to_num(truth["last_amount"], nan=0.0)})
    d = report.feature("last_amount").diagnosis
    assert d is not None and d.cause == "null_filling" and d.parameters["served_for_null"] == 0.0
    assert d.match_rate_after == pytest.approx(1.0)


def test_stale_cache_is_a_stale_value(world: World) -> None:
    truth = world.compute(world.req_user, world.req_t)
    # a cache-aside server: a value computed at a request is reused for 2 hours for the same user
    served = truth["last_amount"].copy()
    cache: dict[int, tuple[int, float]] = {}
    for i, (u, t) in enumerate(zip(world.req_user, world.req_t, strict=True)):
        hit = cache.get(int(u))
        if hit is not None and t - hit[0] < 7200:
            served[i] = hit[1]
        else:
            cache[int(u)] = (int(t), float(truth["last_amount"][i]))
    report, _ = _run(world, {"last_amount": served})
    d = report.feature("last_amount").diagnosis
    assert d is not None and d.cause == "stale_value", d
    assert d.match_rate_after is not None and d.match_rate_after > 0.98  # 8 requests deep


def test_time_shift_of_one_hour(world: World) -> None:
    shifted = world.compute(world.req_user, world.req_t - 3600)
    report, _ = _run(world, {"n_tx": shifted["n_tx"]})
    d = report.feature("n_tx").diagnosis
    assert d is not None and d.cause == "time_shift" and d.parameters["hours"] == -1


def test_clean_feature_gets_no_diagnosis(world: World) -> None:
    truth = world.compute(world.req_user, world.req_t)
    report, _ = _run(world, {"n_tx": truth["n_tx"], "spend": truth["spend"]})
    assert report.status == "pass"
    assert [f.name for f in report.features] == ["n_tx", "spend"]
    assert all(f.diagnosis is None for f in report.features)


def test_random_noise_has_no_single_explanation(world: World) -> None:
    truth = world.compute(world.req_user, world.req_t)
    rng = np.random.default_rng(1)
    noisy = truth["spend"] + rng.normal(0, 3, truth["spend"].size) * (rng.random(truth["spend"].size) < 0.5)
    report, _ = _run(world, {"spend": noisy})
    d = report.feature("spend").diagnosis
    assert d is not None and d.cause is None
    assert d.summary == "no single explanation found"


def test_periodic_refresh_is_a_stale_value(world: World) -> None:
    refreshed = world.compute(world.req_user, world.req_t // 900 * 900)
    report, _ = _run(world, {"n_tx": refreshed["n_tx"]})
    d = report.feature("n_tx").diagnosis
    assert d is not None and d.cause == "stale_value", d
    assert d.parameters == {"refresh_seconds": 900.0}
    assert d.summary == "stale value (cache or TTL): values refreshed every 15m"
