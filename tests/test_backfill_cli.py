"""`fpipe backfill` end to end: outputs, manifest, determinism, readers, and bad data (exit 2, one message)."""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from helpers import run_cli as run


def T(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2024, 1, day, hour, minute, tzinfo=UTC)


DEFS = """
timezone: UTC
entities:
  user: {keys: [user_id]}
sources:
  tx:
    path: ../data/tx.parquet
    event_time: ts
    available_time: ingested_at
    keys: {user: user_id}
  cb:
    path: ../data/cb.parquet
    event_time: ts
    keys: {user: user_id}
features:
  n_1d: {entity: user, source: tx, agg: count, window: 1d}
  spend_1d: {entity: user, source: tx, column: amount, agg: sum, window: 1d}
  last_amount: {entity: user, source: tx, column: amount, agg: latest, ttl: 2d}
  ratio: {expr: "spend_1d / n_1d"}
labels:
  fraud: {entity: user, source: cb, agg: count, horizon: 2d, expr: "fraud > 0"}
spines:
  every_tx: {source: tx}
  from_file: {path: ../data/spine.csv, time: at, keys: {user: user_id}}
training_sets:
  main: {spine: every_tx, features: [n_1d, spend_1d, last_amount, ratio], label: fraud}
  by_file: {spine: from_file, features: [n_1d, last_amount]}
"""


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "defs").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "defs" / "defs.yaml").write_text(DEFS)
    tx = pl.DataFrame(
        {
            "user_id": [1, 1, 1, 2, None, 1],
            "ts": [T(1, 1), T(1, 2), T(1, 3), T(1, 2), T(1, 2), T(2, 3)],
            "ingested_at": [T(1, 1), T(1, 2, 30), T(1, 3), T(1, 2), T(1, 2), T(2, 4)],
            "amount": [10.0, 20.0, None, 5.0, 1.0, 7.0],
        }
    )
    tx.write_parquet(tmp_path / "data" / "tx.parquet")
    pl.DataFrame({"user_id": [1, 2], "ts": [T(2, 1), T(9)]}).write_parquet(tmp_path / "data" / "cb.parquet")
    (tmp_path / "data" / "spine.csv").write_text("user_id,at\n1,2024-01-01T03:00:00Z\n2,2024-01-01T12:00:00Z\n,2024-01-01T12:00:00Z\n")
    os.chdir(tmp_path)
    return tmp_path


def test_backfill_writes_table_and_manifest(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["--defs", "defs", "-q", "backfill", "main", "--out", "out/main.parquet"], capsys)
    assert code == 0, err
    frame = pl.read_parquet(project / "out" / "main.parquet")
    assert frame.columns == ["user_id", "ts", "n_1d", "spend_1d", "last_amount", "ratio", "fraud"]
    assert frame.height == 6  # every spine row; nothing censored (cb's last event is 2024-01-09)
    # the spine row at 01-01 03:00 for user 1: row 2 (ingested 02:30) visible, row 3 itself not (strict <)
    row = frame.row(2, named=True)
    assert (row["n_1d"], row["spend_1d"], row["last_amount"], row["ratio"], row["fraud"]) == (2, 30.0, 20.0, 15.0, True)
    # the spine row with a null key is kept and sees nothing
    null_row = frame.row(4, named=True)
    assert null_row["user_id"] is None and null_row["n_1d"] == 0 and null_row["last_amount"] is None
    manifest = json.loads((project / "out" / "main.parquet.manifest.json").read_text())
    assert manifest["training_set"] == "main"
    assert manifest["fpipe_manifest"] == 2  # input digests renamed blake2b -> sha256
    assert manifest["rows"] == {"spine": 6, "output": 6, "censored": 0, "spine_rows_without_time_or_key": 1}
    assert manifest["features"] == ["n_1d", "spend_1d", "last_amount", "ratio"]
    assert manifest["label"] == "fraud"
    assert set(manifest["feature_definition_hashes"]) == {"n_1d", "spend_1d", "last_amount", "ratio"}
    assert len(manifest["definition_hash"]) == 16
    tx = manifest["inputs"]["tx"]["files"][0]
    tx_bytes = (project / tx["path"]).read_bytes()  # shown relative to the working directory, the project
    assert tx["bytes"] == len(tx_bytes) > 0
    assert tx["sha256"] == hashlib.sha256(tx_bytes).hexdigest()
    assert manifest["versions"]["polars"] == pl.__version__


def test_backfill_is_byte_identical_across_runs(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        code, _, err = run(["--defs", "defs", "-q", "backfill", "main", "--out", f"out/{name}.parquet"], capsys)
        assert code == 0, err
    assert (project / "out" / "a.parquet").read_bytes() == (project / "out" / "b.parquet").read_bytes()


def test_backfill_leaves_no_temporary_files(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(["--defs", "defs", "-q", "backfill", "main", "--out", "out/x.parquet"], capsys)
    assert sorted(p.name for p in (project / "out").iterdir()) == ["x.parquet", "x.parquet.manifest.json"]


def test_backfill_csv_and_time_range(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        ["--defs", "defs", "-q", "backfill", "main", "--format", "csv", "--out", "out/m.csv",
         "--start", "2024-01-01T02:00:00", "--end", "2024-01-02"],
        capsys,
    )
    assert code == 0, err
    frame = pl.read_csv(project / "out" / "m.csv")
    assert frame.height == 4  # 02:00 (x3 incl. null key) and 03:00; 01:00 and 01-02 are outside


def test_backfill_file_spine_keeps_every_row(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["--defs", "defs", "backfill", "by_file", "--json", "--out", "out/f.parquet"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["rows_in"] == 3 and summary["rows_out"] == 3 and summary["spine_rows_without_time_or_key"] == 1
    frame = pl.read_parquet(project / "out" / "f.parquet")
    assert frame.get_column("n_1d").to_list() == [2, 1, 0]


def test_spine_override(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "data" / "other.csv").write_text("user_id,at\n1,2024-01-03T00:00:00Z\n")
    code, _, err = run(["--defs", "defs", "-q", "backfill", "by_file", "--spine", "data/other.csv", "--out", "out/o.parquet"], capsys)
    assert code == 0, err
    assert pl.read_parquet(project / "out" / "o.parquet").get_column("last_amount").to_list() == [7.0]


def bad(project: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code, _, err = run(["--defs", "defs", "-q", "backfill", "main", "--out", "out/bad.parquet"], capsys)
    assert not (project / "out" / "bad.parquet").exists()
    assert "Traceback" not in err
    return code, err


def test_unparseable_timestamp(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pl.DataFrame({"user_id": [1, 2], "ts": ["2024-01-02T00:00:00", "yesterday"]}).write_parquet(project / "data" / "cb.parquet")
    code, err = bad(project, capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "data/cb.parquet: error: column 'ts' has 1 unparseable timestamp(s), first at row 1: 'yesterday'",
        "  hint: set `timestamp_format:` (strftime codes, e.g. '%d/%m/%Y %H:%M') on the source",
    ]


def test_missing_column(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pl.DataFrame({"user_id": [1], "ts": [T(2)], "ingested_at": [T(2)], "amout": [1.0]}).write_parquet(project / "data" / "tx.parquet")
    code, err = bad(project, capsys)
    assert code == 2
    assert err.strip().splitlines() == ["data/tx.parquet: error: column 'amount' is missing", "  hint: did you mean 'amout'?"]


def test_string_where_number_needed(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pl.DataFrame({"user_id": [1], "ts": [T(2)], "ingested_at": [T(2)], "amount": ["12.50"]}).write_parquet(project / "data" / "tx.parquet")
    code, err = bad(project, capsys)
    assert code == 2
    assert err.startswith("data/tx.parquet: error: column 'amount' is String, but feature 'spend_1d' takes its sum\n")


def test_empty_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "data" / "cb.parquet").write_bytes(b"")
    code, err = bad(project, capsys)
    assert code == 2
    assert err.startswith("data/cb.parquet: error: file is empty (0 bytes)")


def test_naive_aware_mix(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pl.DataFrame({"user_id": [1, 2], "ts": ["2024-01-02T00:00:00", "2024-01-03T00:00:00+01:00"]}).write_parquet(
        project / "data" / "cb.parquet"
    )
    code, err = bad(project, capsys)
    assert code == 2
    assert err.startswith(
        "data/cb.parquet: error: column 'ts' mixes naive and aware timestamps "
        "(e.g. '2024-01-02T00:00:00' and '2024-01-03T00:00:00+01:00')"
    )


def test_missing_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "data" / "cb.parquet").unlink()
    code, err = bad(project, capsys)
    assert code == 2
    assert err.startswith("data/cb.parquet: error: file not found")


def test_empty_sources(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty feature source gives empty windows; an empty label source observed nothing: all censored."""
    empty = pl.DataFrame(schema={"user_id": pl.Int64, "ts": pl.Datetime("us", "UTC")})
    empty.write_parquet(project / "data" / "cb.parquet")
    empty.with_columns(pl.col("ts").alias("ingested_at"), pl.lit(None, pl.Float64).alias("amount")).write_parquet(
        project / "data" / "tx_empty.parquet"
    )
    code, out, err = run(["--defs", "defs", "backfill", "main", "--json", "--out", "out/e.parquet", "--censored-out", "out/c.csv"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["rows_in"], summary["rows_out"], summary["rows_censored"]) == (6, 0, 6)
    censored = pl.read_csv(project / "out" / "c.csv")
    assert censored.height == 6 and set(censored.get_column("_reason")) == {"label window ends after the label source's observed end"}
    os.replace(project / "data" / "tx_empty.parquet", project / "data" / "tx.parquet")
    code, _, err = run(["--defs", "defs", "-q", "backfill", "by_file", "--out", "out/f.parquet"], capsys)
    assert code == 0, err
    frame = pl.read_parquet(project / "out" / "f.parquet")
    assert frame.get_column("n_1d").to_list() == [0, 0, 0]
    assert frame.get_column("last_amount").to_list() == [None, None, None]


def test_unknown_training_set(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["--defs", "defs", "backfill", "mian"], capsys)
    assert code == 2
    assert err.strip().splitlines() == ["error: unknown training set 'mian'", "  hint: did you mean 'main'?"]


def test_readers_csv_ndjson_glob_and_hive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same events as CSV (naive local time), NDJSON, a glob of parquet files and a hive folder."""
    (tmp_path / "defs").mkdir()
    data = tmp_path / "data"
    (data / "parts").mkdir(parents=True)
    (data / "hive" / "day=1").mkdir(parents=True)
    (data / "hive" / "day=2").mkdir(parents=True)
    rows = pl.DataFrame({"user_id": [1, 1, 1], "ts": [T(1, 1), T(1, 2), T(2, 1)], "amount": [1.0, 2.0, 4.0]})
    # New York is UTC-5 in January: 01:00Z is 20:00 the day before
    (data / "tx.csv").write_text("user_id,ts,amount\n1,2023-12-31 20:00:00,1.0\n1,2023-12-31 21:00:00,2.0\n1,2024-01-01 20:00:00,4.0\n")
    rows.with_columns(pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%S%z")).write_ndjson(data / "tx.ndjson")
    rows.slice(0, 1).write_parquet(data / "parts" / "a.parquet")
    rows.slice(1, 2).write_parquet(data / "parts" / "b.parquet")
    rows.slice(0, 2).write_parquet(data / "hive" / "day=1" / "x.parquet")
    rows.slice(2, 1).write_parquet(data / "hive" / "day=2" / "x.parquet")
    spine = "spine: {source: hive}"
    (tmp_path / "defs" / "d.yaml").write_text(
        textwrap.dedent(
            """
            entities: {user: {keys: [user_id]}}
            sources:
              csv: {path: ../data/tx.csv, event_time: ts, timezone: America/New_York, keys: {user: user_id}}
              nd: {path: ../data/tx.ndjson, event_time: ts, keys: {user: user_id}}
              glob: {path: "../data/parts/*.parquet", event_time: ts, keys: {user: user_id}}
              hive: {path: ../data/hive, event_time: ts, keys: {user: user_id}}
            features:
              a: {entity: user, source: csv, column: amount, agg: sum}
              b: {entity: user, source: nd, column: amount, agg: sum}
              c: {entity: user, source: glob, column: amount, agg: sum}
              d: {entity: user, source: hive, column: amount, agg: sum}
            spines:
              SPINE
            training_sets:
              t: {spine: spine, features: [a, b, c, d]}
            """
        ).replace("spine: {source: hive}", "").replace("SPINE", spine)
    )
    os.chdir(tmp_path)
    code, _, err = run(["--defs", "defs", "-q", "backfill", "t", "--out", "out/t.parquet"], capsys)
    assert code == 0, err
    frame = pl.read_parquet(tmp_path / "out" / "t.parquet")
    for col in "abcd":
        assert frame.get_column(col).to_list() == [0.0, 1.0, 3.0], col
