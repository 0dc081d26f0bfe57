"""Row checks with quarantine: injected bad rows all land in quarantine with their reasons, every good row
is used (the training set equals one built from the good rows alone), and the counts add up."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from fpipe.app import main
from fpipe.errors import ChecksFailed, DataError
from fpipe.project import Project

DEFS = """
timezone: UTC
entities:
  user: {{keys: [user_id]}}
sources:
  events:
    path: {path}
    event_time: ts
    keys: {{user: user_id}}
    on_fail: {on_fail}
    checks:
      event_id: {{not_null: true, unique: true}}
      amount: {{not_null: true, min: 0, max: 1000}}
      currency: {{in: [USD, EUR]}}
      code: {{regex: "[A-Z]{{3}}-[0-9]+"}}
features:
  spend_7d: {{entity: user, source: events, column: amount, agg: sum, window: 7d}}
  n_7d: {{entity: user, source: events, agg: count, window: 7d}}
  last_amount: {{entity: user, source: events, column: amount, agg: latest}}
spines:
  daily: {{path: spine.csv, time: at, keys: {{user: user_id}}}}
training_sets:
  s: {{spine: daily, features: [spend_7d, n_7d, last_amount]}}
"""

T0 = datetime(2024, 1, 1)


def _good_rows() -> list[dict[str, object]]:
    rows = []
    for i in range(40):
        rows.append(
            {
                "event_id": i,
                "user_id": i % 4,
                "ts": (T0 + timedelta(hours=7 * i)).isoformat(sep=" "),
                "amount": float(10 + i),
                "currency": "USD" if i % 3 else "EUR",
                "code": f"ABC-{i}",
                "bad": "",
            }
        )
    return rows


BAD = [
    # (overrides of a good row, reason fragment expected in `_reason`)
    ({"amount": None}, "amount is null"),
    ({"amount": -5.0}, "amount -5.0 < min 0"),
    ({"amount": 5000.0}, "amount 5000.0 > max 1000"),
    ({"currency": "GBP"}, "currency 'GBP' not in [USD, EUR]"),
    ({"code": "abc"}, "code 'abc' does not match"),
    ({"ts": "not a time"}, "ts 'not a time' is not a timestamp"),
    ({"ts": "2024-13-45 00:00:00"}, "ts '2024-13-45 00:00:00' is not a timestamp"),
    ({"event_id": 3}, "event_id 3 repeats row 3"),  # a duplicate key: the first occurrence stays
    ({"event_id": None}, "event_id is null"),
]


def _project(tmp_path: Path, rows: list[dict[str, object]], on_fail: str, name: str = "p") -> Path:
    root = tmp_path / name
    (root / "defs").mkdir(parents=True)
    pl.DataFrame(rows, schema_overrides={"amount": pl.Float64, "event_id": pl.Int64}).write_csv(root / "events.csv")
    spine = pl.DataFrame({"user_id": [u for d in range(0, 12) for u in range(4)],
                          "at": [(T0 + timedelta(days=d, hours=5)).isoformat() for d in range(0, 12) for _ in range(4)]})
    spine.write_csv(root / "defs" / "spine.csv")
    (root / "defs" / "p.yaml").write_text(DEFS.format(path="../events.csv", on_fail=on_fail))
    return root / "defs"


def _dirty_rows() -> list[dict[str, object]]:
    good = _good_rows()
    rows = list(good)
    for j, (override, _) in enumerate(BAD):
        base = dict(good[5 + j])
        base.update({"event_id": 100 + j, **override, "bad": str(j)})
        rows.insert(7 + 3 * j, base)  # interleaved with good rows, not at the end
    return rows


def test_quarantine_catches_every_bad_row_and_uses_every_good_row(tmp_path: Path) -> None:
    dirty = Project.load(_project(tmp_path, _dirty_rows(), "quarantine", "dirty"))
    clean = Project.load(_project(tmp_path, _good_rows(), "quarantine", "clean"))
    r_dirty = dirty.build_training_set("s")
    r_clean = clean.build_training_set("s")
    assert r_dirty.checks is not None
    q = r_dirty.checks.quarantine
    assert sorted(q.get_column("bad").to_list()) == sorted(str(j) for j in range(len(BAD)))
    for j, (_, fragment) in enumerate(BAD):
        reason = q.filter(pl.col("bad") == str(j)).get_column("_reason").item()
        assert fragment in reason, (j, reason)
    counts = r_dirty.checks.counts()["events"]
    assert counts["read"] == 40 + len(BAD)
    assert counts["quarantined"] == len(BAD)
    assert counts["used"] == 40
    assert counts["used"] + counts["quarantined"] == counts["read"]
    # every good row is used: the same table as from the good rows alone
    assert r_dirty.frame.equals(r_clean.frame)
    assert r_dirty.frame.get_column("n_7d").sum() > 0


def test_quarantine_positions_point_at_the_input_rows(tmp_path: Path) -> None:
    rows = _dirty_rows()
    project = Project.load(_project(tmp_path, rows, "quarantine"))
    q = project.build_training_set("s").checks.quarantine  # type: ignore[union-attr]
    for pos, bad in zip(q.get_column("_pos").to_list(), q.get_column("bad").to_list(), strict=True):
        assert rows[pos]["bad"] == bad


def test_fail_mode_exits_1_with_each_failing_check(tmp_path: Path) -> None:
    rows = [r for r in _dirty_rows() if "time" not in str(r["ts"]) and "13-45" not in str(r["ts"])]
    project = Project.load(_project(tmp_path, rows, "fail"))
    with pytest.raises(ChecksFailed) as exc:
        project.build_training_set("s")
    text = str(exc.value)
    assert "source 'events': 1 row fails check 'min' on 'amount', e.g. amount -5.0 < min 0" in text
    assert "source 'events': 1 row fails check 'unique' on 'event_id', e.g. event_id 3 repeats row 3" in text
    assert "hint: set `on_fail: quarantine`" in text


def test_fail_mode_unparseable_timestamp_is_a_data_error(tmp_path: Path) -> None:
    rows = _good_rows()
    rows[2] = {**rows[2], "ts": "yesterday"}
    project = Project.load(_project(tmp_path, rows, "fail"))
    with pytest.raises(DataError, match="unparseable timestamp"):
        project.build_training_set("s")


def test_warn_mode_keeps_rows_and_unparseable_times_are_never_visible(tmp_path: Path) -> None:
    rows = _good_rows()
    rows.insert(3, {**rows[3], "event_id": 999, "ts": "yesterday", "amount": 7.0})
    rows.insert(5, {**rows[5], "event_id": 998, "amount": -1.0})
    project = Project.load(_project(tmp_path, rows, "warn"))
    result = project.build_training_set("s")
    assert result.checks is not None
    c = result.checks.counts()["events"]
    assert (c["read"], c["used"], c["quarantined"], c["warned"]) == (42, 42, 0, 2)
    assert result.stats.sources["events"].never_visible == 1


def test_backfill_writes_quarantine_beside_output_and_counts_in_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    defs = _project(tmp_path, _dirty_rows(), "quarantine")
    out = tmp_path / "out" / "s.parquet"
    with pytest.raises(SystemExit) as exc:
        main(["--defs", str(defs), "backfill", "s", "--out", str(out), "--json"])
    assert exc.value.code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["checks"]["quarantined"] == len(BAD)
    q = pl.read_parquet(f"{out}.quarantine.parquet")
    assert q.height == len(BAD)
    assert q.columns[:3] == ["_source", "_pos", "_reason"]
    manifest = json.loads(Path(f"{out}.manifest.json").read_text())
    ev = manifest["checks"]["sources"]["events"]
    assert ev["read"] == ev["used"] + ev["quarantined"] == 40 + len(BAD)
    assert ev["failed_checks"]["amount: min"] == 1


@pytest.mark.parametrize(("on_fail", "severity", "code"), [("fail", "error", 1), ("quarantine", "warning", 0), ("warn", "warning", 0)])
def test_validate_data_reports_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], on_fail: str, severity: str, code: int
) -> None:
    defs = _project(tmp_path, _dirty_rows(), on_fail)
    with pytest.raises(SystemExit) as exc:
        main(["--defs", str(defs), "validate", "--data", "--json"])
    assert exc.value.code == code
    out = json.loads(capsys.readouterr().out)
    messages = [e["message"] for e in out["errors"] if e["severity"] == severity]
    assert "source 'events': 1 row fails check 'not_null' on 'amount', e.g. amount is null" in messages
    assert "source 'events': 2 rows have an unparseable timestamp in 'ts', e.g. ts 'not a time' is not a timestamp" in messages
    assert any(e["severity"] == "note" and "out of event-time order" in e["message"] for e in out["errors"])


def test_validate_data_on_clean_data_exits_0(tmp_path: Path) -> None:
    defs = _project(tmp_path, _good_rows(), "fail")
    with pytest.raises(SystemExit) as exc:
        main(["--defs", str(defs), "--quiet", "validate", "--data"])
    assert exc.value.code == 0


def test_validate_data_missing_file_exits_2(tmp_path: Path) -> None:
    defs = _project(tmp_path, _good_rows(), "fail")
    (defs.parent / "events.csv").unlink()
    with pytest.raises(SystemExit) as exc:
        main(["--defs", str(defs), "validate", "--data"])
    assert exc.value.code == 2


def test_time_range_backfill_quarantines_like_a_full_one(tmp_path: Path) -> None:
    """--start/--end must not change what is quarantined: here a duplicate's first occurrence lies long
    before the range, outside what the time-range pushdown would read."""
    good = [
        {"event_id": i, "user_id": i % 3, "ts": T0 + timedelta(hours=7 * i), "amount": float(i), "bad": ""} for i in range(100)
    ]
    rows = [*good[:80], {**good[79], "event_id": 3, "amount": 500.0, "bad": "dup"}, *good[80:], {**good[85], "event_id": 200, "amount": -1.0, "bad": "neg"}]
    root = tmp_path / "p"
    (root / "defs").mkdir(parents=True)
    pl.DataFrame(rows).with_columns(pl.col("ts").dt.replace_time_zone("UTC")).write_parquet(root / "events.parquet")
    pl.DataFrame({"user_id": [0, 1, 2] * 10, "at": [(T0 + timedelta(days=20, hours=5 * i)).isoformat() for i in range(30)]}).write_csv(
        root / "defs" / "spine.csv"
    )
    (root / "defs" / "p.yaml").write_text(
        "entities: {user: {keys: [user_id]}}\n"
        "sources:\n  events: {path: ../events.parquet, event_time: ts, keys: {user: user_id}, on_fail: quarantine,\n"
        "           checks: {event_id: {unique: true}, amount: {min: 0}}}\n"
        "features:\n  spend_1d: {entity: user, source: events, column: amount, agg: sum, window: 1d}\n"
        "spines:\n  s: {path: spine.csv, time: at, keys: {user: user_id}}\n"
        "training_sets:\n  s: {spine: s, features: [spend_1d]}\n"
    )
    project = Project.load(root / "defs")
    assert project.time_bounds("s", datetime(2024, 1, 22), None)["events"][0] is not None  # pushdown would prune
    full = project.build_training_set("s")
    ranged = project.build_training_set("s", start=datetime(2024, 1, 22), end=datetime(2024, 1, 25))
    assert full.checks is not None and ranged.checks is not None
    assert sorted(full.checks.quarantine.get_column("bad").to_list()) == ["dup", "neg"]
    assert ranged.checks.quarantine.equals(full.checks.quarantine)
    t = pl.col("at")
    expected = full.frame.filter((t >= datetime(2024, 1, 22, tzinfo=UTC)) & (t < datetime(2024, 1, 25, tzinfo=UTC)))
    assert ranged.frame.height > 0 and ranged.frame.equals(expected)
