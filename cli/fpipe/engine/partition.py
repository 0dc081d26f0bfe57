"""Hash partitioning by entity key, stable across Polars versions, and reassembly of partitioned builds.

Lookups and aggregations are per entity key, so a training set can be built partition by partition: spine
rows and source rows whose key falls in partition p see exactly the rows they would see unpartitioned.
Several entities (user and merchant) are handled per *entity group*: each entity's features are computed
with that entity's own partitioning, and the groups are joined back on the spine row (`_spine_row`).

The partition of a key (never Polars `hash()`, which is stable only within one Polars version):
- one integer key column: `key mod n` (floor modulo), a Polars expression that a lazy scan pushes down,
  so each partition is read from disk on its own;
- anything else (strings, composite keys): FNV-1a 64 over the UTF-8 bytes of each part cast to string,
  parts joined by 0x1f, computed with NumPy over Arrow buffers; then `mod n`.
A row with a null key part goes to partition 0 (it matches nothing, whichever partition holds it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

FNV_OFFSET = np.uint64(14695981039346656037)
FNV_PRIME = np.uint64(1099511628211)
SPINE_ROW = "_spine_row"


def is_integer_key(dtypes: Sequence[pl.DataType]) -> bool:
    return len(dtypes) == 1 and dtypes[0].is_integer()


def modulo_partition(column: str, n: int) -> pl.Expr:
    """Partition id (UInt32) of one integer key column; nulls in partition 0. (Int128 holds every Int64 and
    UInt64 key; the floor modulo is the same number as in Int64 wherever both exist.)"""
    k = pl.col(column).cast(pl.Int128)
    return (((k % n) + n) % n).fill_null(0).cast(pl.UInt32)


def partition_predicate(column: str, n: int, p: int) -> pl.Expr:
    """Rows of partition p for an integer key (pushed down into a scan)."""
    k = pl.col(column).cast(pl.Int128)
    pred = (((k % n) + n) % n) == p
    return (pred | k.is_null()) if p == 0 else pred.fill_null(False)


def fnv1a(values: pl.Series) -> np.ndarray:
    """FNV-1a 64 of each value's UTF-8 bytes (values cast to String; a null hashes as the empty string)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pc.cast(values.cast(pl.String).fill_null("").to_arrow(), pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    starts = offsets[:-1]
    lengths = np.diff(offsets)
    h = np.full(n, FNV_OFFSET, dtype=np.uint64)
    for j in range(int(lengths.max()) if n else 0):
        active = np.flatnonzero(lengths > j)
        h[active] = (h[active] ^ data[starts[active] + j].astype(np.uint64)) * FNV_PRIME
    return h


def partition_ids(frame: pl.DataFrame, columns: Sequence[str], n: int) -> pl.Series:
    """Partition id (UInt32, in [0, n)) of every row, from its key columns."""
    if n <= 1:
        return pl.Series("_part", np.zeros(frame.height, dtype=np.uint32))
    dtypes = [frame.schema[c] for c in columns]
    if is_integer_key(dtypes):
        return frame.select(modulo_partition(columns[0], n).alias("_part")).to_series()
    null = frame.select(pl.any_horizontal([pl.col(c).is_null() for c in columns])).to_series().to_numpy()
    h = np.full(frame.height, FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, c in enumerate(columns):
            if i:
                h = (h ^ np.uint64(0x1F)) * FNV_PRIME
            part = fnv1a(frame.get_column(c))
            h = (h ^ part) * FNV_PRIME
    ids = (h % np.uint64(n)).astype(np.uint32)
    ids[null] = 0
    return pl.Series("_part", ids)


def split(frame: pl.DataFrame, columns: Sequence[str], n: int) -> list[pl.DataFrame]:
    """The rows of each partition, in input order (partition p at index p; empty frames included)."""
    ids = partition_ids(frame, columns, n)
    tagged = frame.with_columns(ids)
    return [tagged.filter(pl.col("_part") == p).drop("_part") for p in range(n)]


def assemble(
    parts: Sequence[pl.DataFrame], order_column: str = SPINE_ROW
) -> pl.DataFrame:
    """Concatenate per-partition results and restore spine order."""
    nonempty = [p for p in parts if p.height] or list(parts[:1])
    frame = pl.concat(nonempty, how="vertical") if len(nonempty) > 1 else nonempty[0]
    return frame.sort(order_column, maintain_order=True)


def join_groups(
    base: pl.DataFrame, others: Sequence[pl.DataFrame], columns: Mapping[int, Sequence[str]]
) -> pl.DataFrame:
    """Add each other group's columns (`columns[i]` of `others[i]`) to `base` by spine row, keeping base order."""
    out = base
    for i, other in enumerate(others):
        cols = list(columns[i])
        if cols:
            out = out.join(other.select([SPINE_ROW, *cols]), on=SPINE_ROW, how="left", maintain_order="left")
    return out


MAX_PARTITIONS = 1024  # a limit far below the inputs (or a mistyped one) gets this many, then the over-limit warning


def choose_partitions(input_bytes: int, memory_limit: int, expansion: float = 15.0, base: float = 2.2) -> int:
    """Partitions needed so that the peak (a part that does not shrink with N, about `base` x the input
    bytes: the spine, the output, the assembly; plus `expansion` x input bytes / N for one partition's
    working set) fits the limit.

    Measured at the L benchmark size (1.15 GB of parquet, 50M events, 5M spine rows, 18 features): peak
    RSS 6.57 GB with 4 partitions and 3.44 GB with 16, i.e. about 2.4 GB + 16.7 GB / N. The constants are
    fitted to those runs; the engine has since become leaner (4.09 GB at 4, 3.55 GB at 8, 3.24 GB at 12:
    about 3.0 GB + 4.3 GB / N), so they now over-estimate, which costs nothing measurable at L (49.7 s
    with 4 partitions, 48.4 s with the 12 that a 4GB limit chooses) and leaves room for wider rows.
    """
    if memory_limit <= 0:
        return 1
    room = max(memory_limit - base * input_bytes, 0.25 * memory_limit)
    need = input_bytes * expansion / room
    return min(MAX_PARTITIONS, max(1, int(np.ceil(need))))
