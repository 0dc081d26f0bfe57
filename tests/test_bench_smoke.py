"""The benchmark harness at a tiny size (20k events, hour-grained times: ties and boundary-exact window
edges everywhere): fpipe, hand-written Polars, DuckDB SQL and pandas must produce the same training set.
This also cross-checks the engine against two independent implementations."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import polars as pl
import pytest
from bench import run
from bench.compare import compare_frames, rows_differing
from bench.generate import SIZES, generate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(SIZES["T"], tmp_path_factory.mktemp("benchdata"))


def test_generator_is_deterministic(tiny: Path, tmp_path: Path) -> None:
    again = generate(SIZES["T"], tmp_path)
    for name in ("events.parquet", "profiles.parquet", "spine.parquet"):
        assert pl.read_parquet(tiny / name).equals(pl.read_parquet(again / name)), name


def test_all_tools_agree_at_tiny_size(tiny: Path, tmp_path: Path) -> None:
    tools = ["fpipe", "polars", "duckdb"]
    if importlib.util.find_spec("pandas") is not None:
        tools.append("pandas")
    frames = {}
    for tool in tools:
        out = tmp_path / f"{tool}.parquet"
        wall, cpu, rss, rc, err = run.measure(run.command(tool, tiny, "all", out, []))
        assert rc == 0, f"{tool} failed: {err}"
        assert wall > 0 and cpu > 0 and rss > 0
        frames[tool] = pl.read_parquet(out)
    ref = frames["fpipe"]
    assert ref.height == SIZES["T"].spine
    assert ref.get_column("amount_count_30d").sum() > 0
    peers = {tool: frame for tool, frame in frames.items() if tool != "fpipe"}  # not fpipe against itself
    assert len(peers) >= 2
    for tool, frame in peers.items():
        assert compare_frames(ref, frame) == [], tool


def test_skew_report_and_train_rows_at_tiny_size(tiny: Path, tmp_path: Path) -> None:
    """The serving log holds fpipe's own values, so the skew report passes; the model beats its baseline."""
    rows = run.extra_commands("T", tiny, tmp_path, None, [])
    assert [m.tool for m in rows] == ["fpipe skew-report", "fpipe backfill bench_train", "fpipe train"]
    for m in rows:
        assert m.problems == [] and m.returncode == 0 and m.wall > 0 and m.rss_mib > 0, (m.tool, m.problems)
    assert rows[0].note == "pass (18 pass); 2,000 served rows (fpipe's own backfill values)"
    assert rows[2].note.startswith("bench_xgb (local engine): ") and "(baseline 0.500)" in rows[2].note


def test_compare_reports_disagreement() -> None:
    a = pl.DataFrame({"x": [1.0, 2.0, None], "s": ["a", "b", None]})
    b = pl.DataFrame({"x": [1.0 + 1e-12, 2.1, float("nan")], "s": ["a", "c", None]})
    problems = compare_frames(a, b)
    assert problems == [
        "x: 1 of 3 rows differ (first at row 1: 2.0 vs 2.1)",
        "s: 1 of 3 rows differ (first at row 1: 'b' vs 'c')",
    ]


def test_range_frame_sql_differs_exactly_where_rows_had_not_arrived(tiny: Path, tmp_path: Path) -> None:
    """The reference-only DuckDB peer (RANGE-frame window functions) cannot check arrival. It must differ from
    fpipe on exactly the spine rows that have a row inside their 30-day window which had happened but not
    arrived by t (and agree on every other row): found here by brute force over the (row, event) pairs."""
    outs = {}
    for tool in ("fpipe", "duckdb_frames"):
        outs[tool] = tmp_path / f"{tool}.parquet"
        wall, cpu, rss, rc, err = run.measure(run.command(tool, tiny, "windows", outs[tool], []))
        assert rc == 0, f"{tool} failed: {err}"
    ref, frames = pl.read_parquet(outs["fpipe"]), pl.read_parquet(outs["duckdb_frames"])
    spine = pl.read_parquet(tiny / "spine.parquet").with_row_index("row")
    events = pl.read_parquet(tiny / "events.parquet").filter(pl.col("ingested_at").is_not_null())
    in_flight = (
        spine.join(events, on="user_id")
        .filter(
            (pl.col("ts") >= pl.col("t") - pl.duration(days=30))
            & (pl.col("ts") < pl.col("t"))
            & (pl.max_horizontal("ts", "ingested_at") >= pl.col("t"))
        )
        .get_column("row")
        .unique()
    )
    assert in_flight.len() > 0  # the tiny data has late rows, so the frames must leak somewhere
    assert rows_differing(ref, frames) == in_flight.len()
    agree = spine.filter(~pl.col("row").is_in(in_flight.implode())).get_column("row")
    assert compare_frames(ref[agree], frames[agree]) == []


def test_rows_differing_counts_rows_not_cells() -> None:
    a = pl.DataFrame({"x": [1.0, 2.0, None, 4.0], "s": ["a", "b", None, "d"]})
    b = pl.DataFrame({"x": [1.0 + 1e-12, 2.1, None, 5.0], "s": ["a", "c", None, "d"]})
    assert rows_differing(a, b) == 2
    assert rows_differing(a, a) == 0
    with pytest.raises(ValueError):
        rows_differing(a, b.head(2))
