"""The parquet writer shared by the sample-data scripts (gen_shop.py, prep_flights.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq


def write_parquet(frame: pl.DataFrame, path: Path, dictionary: Sequence[str], delta: Sequence[str] = ()) -> None:
    """Deterministic zstd parquet (pyarrow, fixed settings), written atomically: dictionary encoding for the
    `dictionary` columns, DELTA_BINARY_PACKED for the `delta` columns (those present in the frame)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    delta_present = [c for c in delta if c in frame.columns]
    pq.write_table(
        frame.to_arrow(),
        tmp,
        compression="zstd",
        compression_level=19,
        use_dictionary=[c for c in dictionary if c in frame.columns],
        column_encoding=dict.fromkeys(delta_present, "DELTA_BINARY_PACKED") if delta_present else None,
        write_statistics=True,
        row_group_size=1 << 20,
    )
    tmp.replace(path)
