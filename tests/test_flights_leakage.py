"""The flights example: rows not yet available at a spine row's time cannot change that row.

Cut the timeline at T0. Every flights/weather row that becomes visible at or after T0 (its departure,
for flights, is the availability) is perturbed: delays changed, some rows deleted, rows appended. Every
spine row with t <= T0 must keep exactly the same features. A feature computed from the scheduled time
alone (the classic leak) fails this, which the last test shows.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from fpipe.engine.build import build_frame
from fpipe.project import Project

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2013, 6, 4, 15, 0, tzinfo=UTC)
LO, HI = datetime(2013, 5, 25, tzinfo=UTC), datetime(2013, 6, 8, tzinfo=UTC)


@pytest.fixture(scope="module")
def inputs() -> tuple[Project, dict[str, pl.DataFrame]]:
    project = Project.load(ROOT / "feature_defs")
    _, _, cols = project.training_set_inputs("flights_delay_v1")
    frames = project.read_inputs(cols)
    for name in ("flights", "weather"):
        et = project.defs.sources[name].event_time
        frames[name] = frames[name].filter(pl.col(et).is_between(LO, HI))
    return project, frames


def _perturb(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    out = dict(frames)
    fl = frames["flights"]
    vis = pl.max_horizontal("sched_dep_utc", "dep_utc")
    future = (vis >= T0) | pl.col("dep_utc").is_null()
    changed = fl.with_columns(
        pl.when(future).then(pl.col("dep_delay") * 3 + 97).otherwise(pl.col("dep_delay")).alias("dep_delay"),
    )
    # delete every third future row, and append copies of future rows moved a little earlier in event time
    changed = changed.with_row_index("_i").filter(~(future & (pl.col("_i") % 3 == 0))).drop("_i")
    extra = fl.filter(future).head(500).with_columns(
        (pl.col("sched_dep_utc") - timedelta(minutes=30)).alias("sched_dep_utc"),
        pl.lit(999).cast(fl.schema["dep_delay"]).alias("dep_delay"),
        (pl.col("flight_id") + 10_000_000).cast(fl.schema["flight_id"]).alias("flight_id"),
    )
    extra = extra.with_columns(pl.max_horizontal("dep_utc", pl.lit(T0)).alias("dep_utc"))
    out["flights"] = pl.concat([changed, extra.select(changed.columns)], how="vertical_relaxed")
    wx = frames["weather"]
    out["weather"] = wx.with_columns(
        pl.when(pl.col("time_hour") >= T0).then(pl.col("temp") + 40).otherwise(pl.col("temp")).alias("temp")
    )
    return out


def _features_before_t0(project: Project, frames: dict[str, pl.DataFrame], training_set: str) -> pl.DataFrame:
    result = build_frame(project.defs, training_set, frames)
    feats = result.features
    return result.frame.filter(pl.col(result.time_column) <= T0).select(["flight_id", *feats]).sort("flight_id")


def test_future_rows_do_not_change_past_spine_rows(inputs: tuple[Project, dict[str, pl.DataFrame]]) -> None:
    project, frames = inputs
    before = _features_before_t0(project, frames, "flights_delay_v1")
    after = _features_before_t0(project, _perturb(frames), "flights_delay_v1")
    # the spine comes from the flights source too: compare the spine rows present in both runs
    after = after.join(before.select("flight_id"), on="flight_id", how="semi")
    before = before.join(after.select("flight_id"), on="flight_id", how="semi")
    assert before.height > 9000
    assert before.equals(after)


def test_scheduled_time_as_availability_leaks(inputs: tuple[Project, dict[str, pl.DataFrame]]) -> None:
    """Without `available_time: dep_utc`, the same perturbation changes past rows: the leak is real."""
    project, frames = inputs
    defs = project.defs
    leaky_src = dataclasses.replace(defs.sources["flights"], available_time=None)
    leaky = Project(dataclasses.replace(defs, sources={**defs.sources, "flights": leaky_src}))
    before = _features_before_t0(leaky, frames, "flights_delay_v1")
    after = _features_before_t0(leaky, _perturb(frames), "flights_delay_v1")
    after = after.join(before.select("flight_id"), on="flight_id", how="semi")
    before = before.join(after.select("flight_id"), on="flight_id", how="semi")
    assert before.height > 9000
    assert not before.equals(after)
