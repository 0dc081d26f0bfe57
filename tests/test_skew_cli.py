"""`fpipe skew-report` end to end on a tiny project: exit codes, every output format, bad input."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fpipe.app import main

T0 = datetime(2024, 1, 1, tzinfo=UTC)
YAML = """
timezone: UTC
entities:
  user: {keys: [user_id]}
sources:
  events:
    path: ../data/events.parquet
    event_time: ts
    available_time: ingested_at
    keys: {user: user_id}
features:
  n_events_1d: {entity: user, source: events, agg: count, window: 1d}
  spend_1d: {entity: user, source: events, column: amount, agg: sum, window: 1d}
  last_kind: {entity: user, source: events, column: kind, agg: latest}
spines:
  ev: {source: events, offset: 0s}
training_sets:
  s1: {spine: ev, features: [n_events_1d, spend_1d, last_kind]}
serving_logs:
  s1: {path: ../data/served.parquet, time: served_at, row_id: request_id}
"""
FEATURES = ["n_events_1d", "spend_1d", "last_kind"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("skewproj")
    (root / "defs").mkdir()
    (root / "data").mkdir()
    (root / "defs" / "p.yaml").write_text(YAML)
    rng = np.random.default_rng(0)
    n = 3000
    ts = [T0 + timedelta(seconds=int(s)) for s in np.sort(rng.integers(0, 5 * 86400, n))]
    pl.DataFrame(
        {
            "user_id": rng.integers(0, 60, n),
            "ts": ts,
            "amount": np.round(rng.gamma(2, 20, n), 2),
            "kind": rng.choice(["a", "b", "c"], n),
        }
    ).with_columns((pl.col("ts") + pl.duration(seconds=5)).alias("ingested_at")).write_parquet(
        root / "data" / "events.parquet"
    )
    from fpipe.project import Project

    req = pl.DataFrame(
        {
            "request_id": np.arange(2000),
            "user_id": rng.integers(0, 60, 2000),
            "served_at": [T0 + timedelta(seconds=int(s)) for s in np.sort(rng.integers(3600, 5 * 86400, 2000))],
        }
    )
    clean = Project.load(root / "defs").compute_features(FEATURES, req, "served_at", {"user": ("user_id",)})
    clean.write_parquet(root / "data" / "served.parquet")
    clean.with_columns(pl.col("spend_1d") * 100).write_parquet(root / "data" / "cents.parquet")
    return root


def run(project: Path, *args: str) -> int:
    try:
        main(["--defs", str(project / "defs"), "--no-color", "skew-report", *args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_clean_log_passes_with_exit_0(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(project, "s1") == 0
    out = capsys.readouterr().out
    assert "skew report: training set s1: PASS (3 pass)" in out


def test_unit_bug_exits_1_and_names_the_cause_in_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(project, "s1", "--served", str(project / "data" / "cents.parquet"), "--format", "json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema_version"] == "1.0" and doc["status"] == "fail" and doc["exit_code"] == 1
    assert doc["summary"] == {"pass": 2, "inconclusive": 0, "warn": 0, "fail": 1}
    assert doc["training_set"] == "s1" and doc["time_column"] == "served_at" and doc["key_columns"] == ["user_id"]
    by_name = {f["name"]: f for f in doc["features"]}
    spend = by_name["spend_1d"]
    assert spend["status"] == "fail"
    checks = {c["name"]: c for c in spend["checks"]}
    assert checks["mismatch_rate"]["status"] == "fail" and checks["mismatch_rate"]["fail"] == 0.01
    assert spend["diagnosis"]["cause"] == "scale" and spend["diagnosis"]["parameters"]["factor"] == 100.0
    assert spend["diagnosis"]["evidence"].startswith("with offline values x 100 (cents vs dollars?) the match rate rises")
    assert by_name["last_kind"]["kind"] == "categorical" and by_name["last_kind"]["diagnosis"] is None


def test_fail_on_warn_and_threshold_flags(project: Path) -> None:
    cents = str(project / "data" / "cents.parquet")
    # a huge tolerance makes x100 match; PSI still sees the shift, but not as a failure once relaxed
    assert run(project, "s1", "--served", cents, "--rtol", "1", "--psi-warn", "100", "--psi-fail", "200",
               "--no-diagnose") == 0


def test_junit_has_a_testcase_per_feature_and_check(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "skew.xml"
    assert run(project, "s1", "--served", str(project / "data" / "cents.parquet"), "--format", "junit",
               "--out", str(out)) == 1
    root = ET.parse(out).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    names = {(c.get("classname"), c.get("name")) for c in cases}
    assert ("skew.spend_1d", "mismatch_rate") in names and ("skew.last_kind", "category_share_change") in names
    failed = {(c.get("classname"), c.get("name")) for c in cases if c.find("failure") is not None}
    assert ("skew.spend_1d", "mismatch_rate") in failed
    assert not any(cls != "skew.spend_1d" for cls, _ in failed)
    assert suite.get("failures") == str(len(failed))
    failure = next(c for c in cases if c.get("name") == "mismatch_rate" and c.get("classname") == "skew.spend_1d").find("failure")
    assert failure is not None and "likely cause: constant scale" in (failure.text or "")


def test_markdown_html_and_samples(project: Path, tmp_path: Path) -> None:
    cents = str(project / "data" / "cents.parquet")
    md, page, samples = tmp_path / "s.md", tmp_path / "s.html", tmp_path / "bad.parquet"
    assert run(project, "s1", "--served", cents, "--format", "markdown", "--out", str(md), "--samples-out", str(samples)) == 1
    text = md.read_text()
    assert "| `spend_1d` | ❌ fail |" in text and "cause: constant scale (unit bug)" in text
    bad = pl.read_parquet(samples)
    assert set(bad["mismatched_features"].unique()) == {"spend_1d"}
    assert {"request_id", "user_id", "served_at", "spend_1d.served", "spend_1d.offline"} <= set(bad.columns)
    assert run(project, "s1", "--served", cents, "--format", "html", "--out", str(page), "--no-diagnose") == 1
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "<svg" in html and "<script" not in html and "http" not in html
    assert len(html.encode()) < 200_000


def test_table_to_a_file(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.txt"
    assert run(project, "s1", "--out", str(out)) == 0
    assert "n_events_1d" in out.read_text()


# ---------- bad input: exit 2 and one clear message ----------
def write(project: Path, name: str, frame: pl.DataFrame) -> str:
    path = project / "data" / name
    frame.write_parquet(path)
    return str(path)


def test_unknown_served_column(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    served = pl.read_parquet(project / "data" / "served.parquet").rename({"spend_1d": "spend_1day"})
    path = write(project, "unknown_col.parquet", served)
    assert run(project, "s1", "--served", path) == 2
    err = capsys.readouterr().err
    assert "unknown_col.parquet: error: column 'spend_1day' matches no feature of training set 's1'" in err
    assert "hint: did you mean 'spend_1d'? (or `columns:` under `serving_logs:`, or skip it with --ignore-column spend_1day)" in err


def test_wrong_key_type(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    served = pl.read_parquet(project / "data" / "served.parquet").with_columns(pl.col("user_id").cast(pl.String))
    path = write(project, "string_keys.parquet", served)
    assert run(project, "s1", "--served", path) == 2
    err = capsys.readouterr().err
    assert "string_keys.parquet: error: key column 'user_id' is String, but entity 'user' is keyed by Int64" in err


def test_no_time_column(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    served = pl.read_parquet(project / "data" / "served.parquet").rename({"served_at": "when"})
    path = write(project, "no_time.parquet", served)
    assert run(project, "s1", "--served", path) == 2
    err = capsys.readouterr().err
    assert "no_time.parquet: error: no time column 'served_at'" in err and "--time-col (when look like times)" in err
    assert run(project, "s1", "--served", path, "--time-col", "when") == 0


def test_empty_log(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    served = pl.read_parquet(project / "data" / "served.parquet").head(0)
    path = write(project, "empty.parquet", served)
    assert run(project, "s1", "--served", path) == 2
    assert "empty.parquet: error: the serving log is empty" in capsys.readouterr().err


def test_bad_options(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(project, "s1", "--format", "pdf") == 2
    assert "unknown format 'pdf'" in capsys.readouterr().err
    assert run(project, "nope") == 2
    assert "unknown training set 'nope'" in capsys.readouterr().err
    assert run(project, "s1", "--served", str(project / "data" / "missing.parquet")) == 2


# ---------- the published JSON Schema ----------
SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "skew-report.schema.json"
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def validate(value: object, schema: dict[str, object], path: str = "$") -> list[str]:
    """A small validator for the keywords the schema uses (type, enum, const, required, properties, items)."""
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        ok = False
        for t in names:
            if t == "integer":
                ok |= isinstance(value, int) and not isinstance(value, bool)
            elif t == "number":
                ok |= isinstance(value, int | float) and not isinstance(value, bool)
            else:
                ok |= isinstance(value, _TYPES[str(t)])
        if not ok:
            return [f"{path}: {value!r} is not {names}"]
    if "enum" in schema and value not in schema["enum"]:  # type: ignore[operator]
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: {value!r} != {schema['const']!r}")
    if isinstance(value, dict):
        for key in schema.get("required", []):  # type: ignore[attr-defined]
            if key not in value:
                errors.append(f"{path}: missing {key}")
        for key, sub in schema.get("properties", {}).items():  # type: ignore[attr-defined]
            if key in value:
                errors += validate(value[key], sub, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += validate(item, schema["items"], f"{path}[{i}]")  # type: ignore[arg-type]
    return errors


def test_json_output_follows_the_published_schema(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schema = json.loads(SCHEMA.read_text())
    assert run(project, "s1", "--served", str(project / "data" / "cents.parquet"), "--json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert validate(doc, schema) == []
    assert validate({**doc, "status": "bad"}, schema) == ["$.status: 'bad' not in ['pass', 'warn', 'fail', 'inconclusive']"]
