"""Late and out-of-order report: quantiles, shares and counts against a brute-force pure-Python oracle."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from fpipe.app import main
from fpipe.engine.lateness import human_seconds, lateness_report, round_up_duration
from fpipe.engine.visibility import normalise_source
from fpipe.spec.model import SourceSpec

T0 = datetime(2024, 1, 1, tzinfo=UTC)
NOW = datetime(2024, 3, 1, tzinfo=UTC)


def _rows(seed: int = 1, n: int = 500) -> list[dict[str, object]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        et = T0 + timedelta(seconds=rng.randrange(0, 30 * 86400))
        late = rng.choice([0, 5, 30, 600, 3600, 3601, 7200, 86400 * 2, -60])
        rows.append({"k": rng.randrange(5), "et": et, "av": et + timedelta(seconds=late)})
    rows.append({"k": 1, "et": NOW + timedelta(days=3), "av": NOW + timedelta(days=3)})  # in the future
    rows.append({"k": 1, "et": T0, "av": None})  # never visible
    return rows


def _oracle_quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[math.ceil((len(s) - 1) * q)]


def test_report_matches_brute_force() -> None:
    rows = _rows()
    src = SourceSpec(name="e", path="e.parquet", event_time="et", available_time="av", keys={"u": ("k",)})
    norm, _ = normalise_source(pl.DataFrame(rows), src, "UTC")
    rep = lateness_report("e", norm, threshold=timedelta(hours=1), now=NOW, has_available_time=True)
    lates = [(r["av"] - r["et"]).total_seconds() for r in rows if r["av"] is not None]  # type: ignore[operator]
    assert rep.rows == len(rows) and rep.rows_with_times == len(lates) and rep.never_visible == 1
    assert rep.p50_s == _oracle_quantile(lates, 0.5)
    assert rep.p95_s == _oracle_quantile(lates, 0.95)
    assert rep.p99_s == _oracle_quantile(lates, 0.99)
    assert rep.max_s == max(lates)
    assert rep.later_than_threshold == sum(1 for x in lates if x > 3600)  # 3600 exactly is not late
    ooo, running = 0, None
    for r in rows:
        if running is not None and r["et"] < running:  # type: ignore[operator]
            ooo += 1
        running = r["et"] if running is None or r["et"] > running else running  # type: ignore[operator]
    assert rep.out_of_order == ooo
    assert rep.future_event_time == 1
    assert rep.available_before_event == sum(1 for x in lates if x < 0)
    assert rep.suggested_lag == "2d"


@pytest.mark.parametrize(
    ("seconds", "expected"), [(0, "0s"), (0.4, "1s"), (7, "10s"), (61, "2m"), (3601, "2h"), (4 * 3600 + 1, "6h"), (86401, "2d"), (8 * 86400, "14d"), (30 * 86400, "35d")]
)
def test_round_up_duration(seconds: float, expected: str) -> None:
    from fpipe.spec.durations import format_duration

    assert format_duration(round_up_duration(seconds)) == expected if seconds else round_up_duration(seconds) == timedelta(0)


def test_human_seconds() -> None:
    assert [human_seconds(x) for x in (None, 0.5, 59, 3600, 5400, 15737, 90061, -120)] == ["-", "0.5s", "59s", "1h", "1h30m", "4h22m", "1d1h", "-2m"]


def test_late_command_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pl.DataFrame(_rows()).write_parquet(tmp_path / "e.parquet")
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "p.yaml").write_text(
        "entities: {u: {keys: [k]}}\n"
        "sources:\n  e: {path: ../e.parquet, event_time: et, available_time: av, keys: {u: k}}\n"
        "  s: {path: ../e.parquet, keys: {u: k}}\n"
    )
    with pytest.raises(SystemExit) as exc:
        main(["--defs", str(defs), "late", "--late-threshold", "2h", "--json"])
    assert exc.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["threshold_s"] == 7200
    assert [s["source"] for s in out["sources"]] == ["e"]  # the static table has no lateness
    assert out["sources"][0]["suggested_lag"] == "2d"
    with pytest.raises(SystemExit) as exc:
        main(["--defs", str(defs), "late", "s"])
    assert exc.value.code == 2
    assert "source 's' is a static table" in capsys.readouterr().err
