"""Atomic, deterministic writers: a temporary file in the target folder, then a rename.

An interrupted run never leaves a half-written output that looks complete.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from fpipe.errors import UsageError


@contextmanager
def atomic_path(target: str | Path, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it onto `target`, else remove it.

    The temporary file is created with the mode a plain `open(target, "w")` gives (0666 less the umask),
    so the output is as readable as any other file the user writes (mkstemp's 0600 was not). `fsync`:
    flush the file to disk before the rename (the model registry's `current` pointer).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp_path
        if fsync:
            with open(tmp_path, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_frame(frame: pl.DataFrame, target: str | Path, fmt: str = "parquet") -> None:
    """Write a table atomically; parquet (zstd level 1, statistics) or csv. Same frame -> same bytes.

    zstd level 1 rather than 3: a training set of 1M rows x 18 columns writes in 0.37 s against 0.55 s, for a
    file 12% larger (39.7 MB against 35.4 MB); lz4 was 0.29 s but 47% larger."""
    writer: Callable[[Path], None]
    if fmt == "parquet":

        def writer(p: Path) -> None:
            frame.write_parquet(p, compression="zstd", compression_level=1, statistics=True)

    elif fmt == "csv":

        def writer(p: Path) -> None:
            frame.write_csv(p)

    elif fmt == "ndjson":

        def writer(p: Path) -> None:
            frame.write_ndjson(p)

    else:
        raise ValueError(f"unknown format {fmt}")
    with atomic_path(target) as tmp:
        writer(tmp)


TABLE_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}


def write_table(frame: pl.DataFrame, target: str | Path) -> None:
    """Write a table atomically in the format its suffix names (`TABLE_FORMATS`); `fpipe score --out`."""
    fmt = TABLE_FORMATS.get(Path(target).suffix.lower())
    if fmt is None:
        raise UsageError(f"{target}: unknown output type '{Path(target).suffix}'", hint="use .parquet, .csv or .ndjson")
    write_frame(frame, target, fmt)


def remove_output(target: str | Path) -> None:
    """Delete an output a previous run left, if any (a quarantine file a clean run must not leave behind)."""
    Path(target).unlink(missing_ok=True)


def write_json(data: Any, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_text(text: str, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
