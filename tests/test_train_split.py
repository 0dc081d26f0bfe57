"""Time splits: the purge gap against a brute-force oracle, and a gap shorter than the label's reach refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fpipe.engine.timecols import to_utc
from fpipe.errors import DefinitionError
from fpipe.spec.model import LabelSpec, Location
from fpipe.train.split import apply_split, boundaries, epoch_us, resolve_gap, rolling_folds

H = 3_600_000_000  # one hour in microseconds
LABEL_7D = LabelSpec(name="churn_7d", horizon=timedelta(days=7))


@given(
    st.lists(st.integers(0, 20), min_size=1, max_size=40),
    st.integers(0, 20),
    st.integers(0, 10),
    st.integers(0, 5),
)
def test_apply_split_matches_oracle(hours: list[int], vs: int, width: int, gap_h: int) -> None:
    times = np.array(hours, dtype=np.int64) * H
    valid_start, test_start = vs * H, (vs + width) * H
    s = apply_split(times, valid_start, test_start, timedelta(hours=gap_h))
    g = gap_h * H
    train = [i for i, t in enumerate(times) if t < valid_start and t + g <= valid_start]
    valid = [i for i, t in enumerate(times) if valid_start <= t < test_start and t + g <= test_start]
    test = [i for i, t in enumerate(times) if t >= test_start]
    assert s.train.tolist() == train and s.valid.tolist() == valid and s.test.tolist() == test
    assert s.purged["train"] == sum(1 for t in times if valid_start - g < t < valid_start)
    assert s.purged["valid"] == sum(1 for t in times if valid_start <= t < test_start and t > test_start - g)
    # no training label window [t, t + gap) reaches into a later part
    assert all(times[i] + g <= valid_start for i in s.train)


def test_gap_defaults_to_label_horizon_plus_gap() -> None:
    label = LabelSpec(name="fraud_30d", horizon=timedelta(days=30), gap=timedelta(days=2))
    assert resolve_gap({}, label, "m") == timedelta(days=32)
    assert resolve_gap({"gap": "40d"}, label, "m") == timedelta(days=40)


def test_gap_shorter_than_horizon_is_refused() -> None:
    loc = Location("feature_defs/models.yaml", 3, 5)
    with pytest.raises(DefinitionError) as exc:
        resolve_gap({"gap": "1d"}, LABEL_7D, "churn_xgb", loc)
    assert str(exc.value) == (
        "feature_defs/models.yaml:3:5: error: model 'churn_xgb': split.gap 1d is shorter than label 'churn_7d' "
        "looks ahead (horizon 7d = 7d); training labels would overlap the validation and test periods\n"
        "  hint: set split.gap to at least 7d, or leave it out (it defaults to the label's reach)"
    )


def test_bad_gap_duration_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="split.gap: invalid duration '3 months'"):
        resolve_gap({"gap": "3 months"}, LABEL_7D, "m")


def test_fraction_boundaries_and_dates() -> None:
    times = np.arange(100, dtype=np.int64) * H
    assert boundaries(times, {}, "m") == (70 * H, 85 * H)
    assert boundaries(times, {"train": 0.5, "valid": 0.25, "test": 0.25}, "m") == (50 * H, 75 * H)
    # with a gap, valid and test keep their share of rows; the gaps come out of the earlier rows
    vs, ts = boundaries(times, {}, "m", gap=timedelta(hours=10))
    s = apply_split(times, vs, ts, timedelta(hours=10))
    assert (len(s.test), len(s.valid), len(s.train), s.purged) == (15, 15, 52, {"train": 9, "valid": 9})
    # dates arrive parsed by the loader: aware datetimes as they are, naive ones (API callers) in the zone given
    vs, ts = boundaries(times, {"valid_start": datetime(1970, 1, 2, tzinfo=UTC), "test_start": datetime(1970, 1, 3, 12)}, "m")
    assert (vs, ts) == (24 * H, 60 * H)
    vs, ts = boundaries(times, {"valid_start": datetime(1970, 1, 2, 1), "test_start": datetime(1970, 1, 3, 13)}, "m", tz="Europe/Paris")
    assert (vs, ts) == (24 * H, 60 * H)
    with pytest.raises(DefinitionError, match="split.valid_start must be a datetime, got '1970-01-02'"):
        boundaries(times, {"valid_start": "1970-01-02", "test_start": datetime(1970, 1, 3)}, "m")
    with pytest.raises(DefinitionError, match="sum to 1"):
        boundaries(times, {"train": 0.5, "valid": 0.1, "test": 0.1}, "m")
    with pytest.raises(DefinitionError, match="unknown split key 'tset'"):
        boundaries(times, {"tset": 0.1}, "m")
    with pytest.raises(DefinitionError, match="test_start must be after"):
        boundaries(times, {"valid_start": datetime(1970, 1, 3), "test_start": datetime(1970, 1, 2)}, "m")


def test_rolling_folds_move_forward_and_respect_the_gap() -> None:
    times = np.arange(400, dtype=np.int64) * H
    gap = timedelta(hours=5)
    folds = rolling_folds(times, 3, gap)
    assert len(folds) == 3
    starts = [f.test_start for f in folds]
    assert starts == sorted(starts) and len(set(starts)) == 3
    for f in folds:
        assert times[f.train].max() + 5 * H <= f.valid_start
        assert times[f.valid].max() + 5 * H <= f.test_start
        assert len(f.test) > 0
    # the test blocks do not overlap
    assert set(folds[0].test.tolist()).isdisjoint(folds[1].test.tolist())


def test_epoch_us_reads_naive_times_as_the_engine_does() -> None:
    # 01:30 happens twice in New York on 2024-11-03: the engine (to_utc) takes the earlier instant
    naive = pl.Series("t", [datetime(2024, 1, 1), datetime(2024, 11, 3, 1, 30), None], dtype=pl.Datetime("ns"))
    engine = to_utc(naive.to_frame(), "t", tz="America/New_York", where="x").to_series().dt.epoch("us")
    got = epoch_us(naive, "America/New_York")
    assert got[:2].tolist() == engine[:2].to_list() == [1704085200000000, 1730611800000000]
    aware = naive.dt.replace_time_zone("UTC", ambiguous="earliest")
    assert epoch_us(aware, "America/New_York")[:2].tolist() == aware.dt.epoch("us")[:2].to_list()
