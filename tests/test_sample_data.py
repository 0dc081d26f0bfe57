"""The committed sample data: deterministic generation, expected schemas, and the flights invariants."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "sample_data" / "shop"
FLIGHTS = ROOT / "sample_data" / "flights"
UTC_US = pl.Datetime("us", "UTC")

SHOP_FILES = ["users.parquet", "profiles.parquet", "transactions.parquet", "chargebacks.parquet", "sessions.csv"]


def _digests(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in SHOP_FILES}


def _gen(out: Path, *extra: str) -> None:
    cmd = [sys.executable, str(ROOT / "scripts" / "gen_shop.py"), "--out", str(out), "--quiet", *extra]
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def test_gen_shop_is_deterministic(tmp_path: Path) -> None:
    small = ["--seed", "11", "--users", "150", "--days", "30"]
    _gen(tmp_path / "a", *small)
    _gen(tmp_path / "b", *small)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    _gen(tmp_path / "c", "--seed", "12", "--users", "150", "--days", "30")
    assert _digests(tmp_path / "a")["transactions.parquet"] != _digests(tmp_path / "c")["transactions.parquet"]


@pytest.mark.slow
def test_committed_shop_data_matches_the_generator(tmp_path: Path) -> None:
    # compares contents, not bytes: the parquet footer names the pyarrow version that wrote it
    _gen(tmp_path, "--seed", "7")
    for name in SHOP_FILES:
        if name.endswith(".csv"):
            fresh, committed = (pl.read_csv(d / name, infer_schema=False) for d in (tmp_path, SHOP))
        else:
            fresh, committed = (pl.read_parquet(d / name) for d in (tmp_path, SHOP))
        assert fresh.equals(committed, null_equal=True), f"{name} is stale: rerun scripts/gen_shop.py --seed 7"


def test_shop_schemas() -> None:
    assert pl.read_parquet_schema(SHOP / "users.parquet") == {
        "user_id": pl.Int64,
        "signup_ts": UTC_US,
        "country": pl.String,
    }
    assert pl.read_parquet_schema(SHOP / "profiles.parquet") == {
        "user_id": pl.Int64,
        "country": pl.String,
        "tier": pl.String,
        "updated_at": UTC_US,
        "ingested_at": UTC_US,
    }
    assert pl.read_parquet_schema(SHOP / "transactions.parquet") == {
        "txn_id": pl.Int64,
        "user_id": pl.Int64,
        "merchant_id": pl.Int64,
        "ts": UTC_US,
        "ingested_at": UTC_US,
        "amount": pl.Float64,
        "currency": pl.String,
        "status": pl.String,
        "channel": pl.String,
    }
    assert pl.read_parquet_schema(SHOP / "chargebacks.parquet") == {
        "user_id": pl.Int64,
        "txn_id": pl.Int64,
        "reported_at": UTC_US,
        "ingested_at": UTC_US,
        "reason": pl.String,
    }
    sessions = pl.read_csv(SHOP / "sessions.csv", infer_schema=False)
    assert sessions.columns == ["session_id", "user_id", "started_at", "device", "pages"]


def test_shop_data_has_the_promised_mess() -> None:
    tx = pl.read_parquet(SHOP / "transactions.parquet")
    assert 50_000 <= tx.height <= 70_000
    assert tx["txn_id"].n_unique() == tx.height
    assert 0 < tx["user_id"].null_count() < 100  # guest checkouts: null key
    assert 0 < tx["amount"].null_count() < 0.01 * tx.height
    assert tx["amount"].min() >= 0
    assert set(tx["currency"].unique()) == {"USD", "EUR"}
    assert set(tx["status"].unique()) == {"approved", "declined"}
    assert (tx["ts"].diff().dt.total_microseconds() < 0).sum() > 100  # out of order on disk
    assert tx["ts"].is_duplicated().sum() > 0  # timestamp ties
    lag = (tx["ingested_at"] - tx["ts"]).dt.total_seconds()
    assert lag.min() >= 0
    assert (lag <= 60).mean() > 0.9  # mostly within a minute
    assert (lag > 60).sum() > 0 and (lag > 86_400).sum() > 0  # a tail, and a few over a day

    profiles = pl.read_parquet(SHOP / "profiles.parquet")
    per_user = profiles.group_by("user_id").len()["len"]
    assert per_user.min() >= 1 and per_user.mean() > 3  # several versions per user
    assert (profiles["ingested_at"] >= profiles["updated_at"]).all()
    assert profiles["country"].null_count() > 0

    cb = pl.read_parquet(SHOP / "chargebacks.parquet")
    assert cb.height > 100
    assert cb["reported_at"].max() <= tx["ts"].max() + timedelta(days=1)  # reported before the data was extracted
    assert cb.join(tx, on="txn_id", how="anti").height == 0  # every chargeback points at a transaction

    sessions = pl.read_csv(SHOP / "sessions.csv", infer_schema=False)
    # naive wall-clock strings (the YAML declares America/New_York), no offset
    assert sessions["started_at"].str.contains(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$").all()
    assert sessions["user_id"].null_count() > 0


def test_committed_files_are_small() -> None:
    shop = sum(p.stat().st_size for p in SHOP.iterdir() if p.name != "serving_log.parquet")
    flights = sum(p.stat().st_size for p in FLIGHTS.iterdir())
    assert shop < 3_000_000
    assert flights < 4_200_000


def test_flights_schema_and_ids() -> None:
    schema = pl.read_parquet_schema(FLIGHTS / "flights.parquet")
    for col, dtype in {
        "flight_id": pl.Int64,
        "sched_dep_utc": UTC_US,
        "dep_utc": UTC_US,
        "dep_time": pl.Int64,
        "dep_delay": pl.Int64,
        "carrier": pl.String,
        "tailnum": pl.String,
        "origin": pl.String,
        "dest": pl.String,
    }.items():
        assert schema[col] == dtype, col
    flights = pl.read_parquet(FLIGHTS / "flights.parquet", columns=["flight_id"])
    assert flights.height == 336_776
    assert flights["flight_id"].to_list() == list(range(1, 336_777))
    assert pl.read_parquet_schema(FLIGHTS / "weather.parquet")["time_hour"] == UTC_US
    assert "event_time" not in pl.read_parquet_schema(FLIGHTS / "planes.parquet")


def test_flights_dep_utc_is_the_actual_departure() -> None:
    f = pl.read_parquet(FLIGHTS / "flights.parquet")
    cancelled = f["dep_delay"].is_null()
    assert cancelled.sum() == 8_255
    assert (f["dep_utc"].is_null() == cancelled).all()
    assert (f["dep_time"].is_null() == cancelled).all()
    departed = f.filter(~cancelled)
    diff_us = departed["dep_utc"].dt.epoch("us") - departed["sched_dep_utc"].dt.epoch("us")
    assert (diff_us == departed["dep_delay"] * 60_000_000).all()
    # the local wall-clock dep_time (HHMM, New York) agrees with dep_utc
    local = departed["dep_utc"].dt.convert_time_zone("America/New_York")
    hhmm = local.dt.hour().cast(pl.Int64) * 100 + local.dt.minute().cast(pl.Int64)
    dep_time = departed["dep_time"] % 2400  # 2400 means midnight
    assert (hhmm == dep_time).mean() > 0.999


def test_sample_definitions_point_at_committed_files() -> None:
    for name in ("project.yaml", "shop.yaml", "flights.yaml"):
        doc = yaml.safe_load((ROOT / "feature_defs" / name).read_text())
        for src_name, src in (doc.get("sources") or {}).items():
            path = (ROOT / "feature_defs" / src["path"]).resolve()
            assert path.exists(), f"{name}: source {src_name} -> {path}"
            columns = (
                pl.read_csv(path, n_rows=1).columns if path.suffix == ".csv" else list(pl.read_parquet_schema(path))
            )
            for key in ("event_time", "available_time"):
                if key in src:
                    assert src[key] in columns, f"{src_name}.{key}"
            for cols in (src.get("keys") or {}).values():
                for col in [cols] if isinstance(cols, str) else cols:
                    assert col in columns, f"{src_name}.keys {col}"
