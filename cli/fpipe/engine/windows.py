"""Windowed count, sum, mean, min and max of spine rows whose windows hold few events, by direct enumeration,
in numpy.

A spine row is small for a window when the window (by event time, visible or not) holds at most `limit`
events of its key: decided from the row's own window, so the row takes the same path in a backfill, in
`explain` and in every partition, and float sums are bit-identical across them. Enumerating the windows of
small rows costs O(spine rows x limit). Only the events some window may hold are sorted (`covered`).

With the events of the entity sorted by (key, event time, input position), the events of spine row i
whose event time lies in the window are one contiguous range of positions [lo_i, hi_i) (two as-of
lookups). The pairs (spine row, event) of all rows are laid end to end, so every spine row owns one
segment, and visibility is a mask over it. Each aggregation is then one segment reduction over the pairs:
- count: a count of the masked pairs per segment (`np.bincount`), exact;
- sum of floats: `np.bincount` with weights, a sequential sum in event order per segment; of integers:
  differences of an int64 running sum at segment ends (exact, wrapping like Polars' int64 sum);
- mean: that sum over the count;
- min, max: `np.minimum.reduceat` / `np.maximum.reduceat` over the values with masked pairs replaced by
  +inf / -inf (or the integer limits); a segment with a count of 0 is empty whatever its extreme says.
The aggregations of one window share one enumeration, and spine rows are processed in chunks of at most
`PAIRS_PER_CHUNK` pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

AGGS = ("count", "sum", "mean", "min", "max")
PAIRS_PER_CHUNK = 1 << 17  # 1 MB per 8-byte array of a chunk: M, 15 windows, `compute` 0.40 s against 0.48-0.54 s
# with 1 << 20 and 0.42 s with 1 << 18 or 1 << 16 (medians of 5 in one process; 1 << 12: 1.07 s)
MAX_THREADS = 4  # chunks at once, whatever the core count (a chunk's temporaries: about ten 8-byte arrays of
# its 128k pairs, ~10 MB by that count, not measured)


def threads() -> int:
    """Threads for the chunks and the binary searches: Polars' thread count (POLARS_MAX_THREADS), at most
    `MAX_THREADS`, so that the chunks' temporary arrays stay within a few hundred MB on many cores."""
    return max(1, min(pl.thread_pool_size(), MAX_THREADS))


def supported(agg: str, value_dtype: pl.DataType) -> bool:
    """Aggregations this module computes (count of anything; the others over integer or float values)."""
    if agg == "count":
        return True
    wide = isinstance(value_dtype, (pl.Int128, pl.UInt128))  # numpy has no 128-bit integers
    return agg in AGGS and ((value_dtype.is_integer() and not wide) or value_dtype.is_float())


@dataclass(frozen=True)
class WindowAgg:
    alias: str
    agg: str
    reads_value: bool  # only rows with a (non-null) value count; a bare row count reads none


@dataclass
class Events:
    """The entity's events in (key, event time, position) order: visibility as int64 microseconds; values
    with nulls filled (any fill) and `valid` marking the non-null ones (None: no nulls)."""

    vis: np.ndarray
    values: np.ndarray | None
    valid: np.ndarray | None


def big_keys(kid: np.ndarray, et: np.ndarray, window_us: int, limit: int) -> np.ndarray:
    """Keys (sorted, unique) with more than `limit` events inside one window of `window_us`.

    `kid`, `et` in (key, event time) order. Event i closes a window holding more than `limit` events
    exactly when event i - limit has the same key and an event time >= et_i - w (all events between are
    then in the window too): one shifted comparison, O(n).
    """
    if limit <= 0:
        return np.unique(kid)
    if len(kid) <= limit:
        return np.empty(0, dtype=kid.dtype)
    same = kid[limit:] == kid[:-limit]
    near = et[:-limit] >= et[limit:] - window_us
    hits = kid[limit:][same & near]
    if hits.size == 0:
        return hits
    return hits[np.r_[True, hits[1:] != hits[:-1]]]  # sorted already


def small_rows(spine_kid: np.ndarray, big: np.ndarray) -> np.ndarray:
    """Spine rows whose key is not big (a key without events is small: every window of it is empty)."""
    return ~np.isin(spine_kid, big)


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
COVER_CELLS = 1 << 23  # at most this many (key, time bucket) cells in `covered`'s table (1 MB of bits)
COVER_BLOCK = 1 << 16  # events per block of `covered`'s lookups
COVER_THREADED = 1 << 20  # `covered` reads the events on its threads from this many on
COVER_SLICE = 1 << 19  # events read at a time (`CoverTable.keeps_read`): one thread's part
COVER_BUCKETS = 64  # at most this many time buckets per key: finer ones keep few events fewer (M: 52% of events
# kept with 63 buckets of 6.4 days, 56% with 32 of 12.7 days)


def covered(
    kid_e: np.ndarray, et_e: np.ndarray, kid_s: np.ndarray, t_s: np.ndarray, reach: int, threads: int = 1
) -> np.ndarray | None:
    """Which events (key `kid_e`, event time `et_e`, any order) some spine row (`kid_s`, `t_s`) may hold in a
    window reaching `reach` microseconds back: a superset of the events with t - reach <= et <= t for a spine
    row of their key, and never an event of a key no spine row has. None when the keys span too many values
    to tabulate, or the spine's times less the reach do not fit in int64 (then every event is kept).
    `CoverTable.build`, then `CoverTable.keeps`."""
    table = CoverTable.build(kid_s, t_s, reach)
    if table is None:
        return None
    return table.keeps(kid_e, et_e, threads)


@dataclass
class CoverTable:
    """Time is cut into buckets of a power of two microseconds; a spine row marks the buckets of its key that
    [t - reach, t] touches, and an event is kept when its (key, bucket) cell is marked: O(events + spine rows
    + cells) for spine rows in (key, time) order, as the engine's are (else a sort of the spine rows first);
    the events are not sorted. Only events no window holds are dropped, so every window's events, and their
    order, are unchanged. Built once, it reads events in any number of parts (`keeps`)."""

    bits: np.ndarray  # one bit a cell, `stride` cells per key from k0
    k0: int
    k1: int
    t0: int
    shift: int
    width: int
    stride: int

    @classmethod
    def build(cls, kid_s: np.ndarray, t_s: np.ndarray, reach: int) -> CoverTable | None:
        """The table of spine rows (`kid_s`, `t_s`) and `reach`; None when the keys span too many values or
        the times do not fit (a spine time within `reach` of the earliest int64 microsecond)."""
        if kid_s.size == 0:
            return cls(np.zeros(1, dtype=np.uint8), 1, 0, 0, 0, 0, 0)  # keys 1..0: no key, every event dropped
        k0, k1 = int(kid_s.min()), int(kid_s.max())
        keys = k1 - k0 + 1
        buckets = min(COVER_CELLS // keys - 2, COVER_BUCKETS)
        if buckets < 1:
            return None
        t0, t1 = int(t_s.min()) - reach, int(t_s.max())
        if t0 < INT64_MIN or t1 - t0 > INT64_MAX:  # the rows' offsets from t0 would not fit in int64
            return None
        shift = 0
        while ((t1 - t0) >> shift) + 1 > buckets:
            shift += 1
        width = ((t1 - t0) >> shift) + 1
        stride = width + 2  # per key: a cell before t0, the buckets, a cell after t1 (neither is ever marked)
        row = (kid_s - k0) * stride + 1
        first = row + ((t_s - reach - t0) >> shift)
        after = row + ((t_s - t0) >> shift) + 1  # at most row + width: inside the key's cells
        if (first[1:] < first[:-1]).any():  # rows not in (key, time) order
            order = np.argsort(first, kind="stable")
            first, after = first[order], after[order]
        # the rows' cell ranges [first, after), merged where they overlap or touch (first in order, so a range
        # starts a new one when it begins after every earlier range ends), marked by their two ends and one
        # running sum: O(spine rows + cells) (M, 6.4M cells: 0.045 s in a fresh process, against 0.09-0.23 s
        # for two bincounts over every cell, and 0.07-0.16 s marking each row's cells by index)
        ends_so_far = np.maximum.accumulate(after)
        opens = np.r_[True, first[1:] > ends_so_far[:-1]]
        starts = np.flatnonzero(opens)
        marks = np.zeros(keys * stride, dtype=np.int8)
        marks[first[starts]] = 1
        marks[ends_so_far[np.r_[starts[1:] - 1, first.size - 1]]] = -1  # every end < the next start: all distinct
        # one bit a cell (M: 0.8 MB, which the caches hold; the events' keys come in any order, so their
        # lookups are random: 0.09 s against 0.13-0.15 s for a byte a cell, one thread)
        bits = np.packbits(np.cumsum(marks, dtype=np.int8).view(bool), bitorder="little")
        return cls(bits, k0, k1, t0, shift, width, stride)

    def keeps(self, kid_e: np.ndarray, et_e: np.ndarray, threads: int = 1) -> np.ndarray:
        """Per event (key `kid_e`, event time `et_e`, int64), whether its cell is marked."""
        return self.keeps_read(kid_e.size, lambda a, b: (kid_e[a:b], et_e[a:b]), threads)

    def keeps_read(self, n: int, read: Callable[[int, int], tuple[np.ndarray, np.ndarray]], threads: int = 1) -> np.ndarray:
        """`keeps` of n events that `read(a, b)` gives, events a..b at a time (keys and event times, int64):
        slices of `COVER_SLICE` events, on `threads` threads from `COVER_THREADED` events on (numpy releases
        the GIL). A reader may take each slice from where its source holds it, without copying whole columns."""
        keep = np.zeros(n, dtype=bool)
        if n == 0 or self.k1 < self.k0:
            return keep

        def part(a: int) -> None:
            k, e = read(a, min(a + COVER_SLICE, n))
            keep[a : a + k.size] = self._probe(k, e)

        slices = range(0, n, COVER_SLICE)
        if threads > 1 and n >= COVER_THREADED and len(slices) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fpipe-cover") as pool:
                list(pool.map(part, slices))
        else:
            for a in slices:
                part(a)
        return keep

    def _probe(self, kid_e: np.ndarray, et_e: np.ndarray) -> np.ndarray:
        k0, k1, stride, shift, width = self.k0, self.k1, self.stride, self.shift, self.width
        keep = np.empty(kid_e.size, dtype=bool)
        outside = kid_e.size > 0 and (int(kid_e.min()) < k0 or int(kid_e.max()) > k1)  # keys no spine row has
        for c in range(0, kid_e.size, COVER_BLOCK):  # blocks whose temporaries stay in cache, updated in place
            d = min(c + COVER_BLOCK, kid_e.size)
            k = kid_e[c:d]
            cell = np.clip(k, k0, k1) if outside else k.copy()
            cell -= k0
            cell *= stride
            bucket = et_e[c:d] - self.t0
            bucket >>= shift
            np.clip(bucket, -1, width, out=bucket)
            cell += bucket
            cell += 1
            bits = np.take(self.bits, cell >> 3)
            bits >>= (cell & 7).astype(np.uint8)
            np.bitwise_and(bits, 1, out=bits)
            keep[c:d] = bits.view(bool)
            if outside:
                keep[c:d] &= (k >= k0) & (k <= k1)
        return keep


PACKED_BITS = 62  # (key, time) packed into one int64 when keys x time span < 2**PACKED_BITS


def range_counts(kid_e: np.ndarray, et: np.ndarray, kid_s: np.ndarray, lo: np.ndarray, hi: np.ndarray, inclusive: bool) -> np.ndarray | None:
    """Per spine row (key `kid_s`), how many events of its key have lo <= et < hi (lo < et <= hi when
    `inclusive`), the events `kid_e`, `et` in (key, time) order (`kernels.sort_by_key_time`): two binary
    searches per row, O(m log n). None when `position_finder` has none (the caller then uses prefix tables)."""
    if kid_e.size == 0:
        return np.zeros(kid_s.size, dtype=np.int64)
    finder = position_finder(kid_e, et, kid_s)
    if finder is None:
        return None
    return (finder.find(hi, inclusive) - finder.find(lo, inclusive)).astype(np.int64)


@dataclass
class PositionFinder:
    """Positions in the events' (key, event time) order by one binary search per spine row over a packed
    int64 (key - k0) * span + (time - t0), which orders exactly like (key, time)."""

    packed_events: np.ndarray
    query_base: np.ndarray  # (key - k0) * span per spine row (keys outside the events' range clipped)
    below: np.ndarray  # spine rows whose key is below every event key (position 0, no events)
    above: np.ndarray  # ... above every event key (position n)
    t0: int
    span: int

    @classmethod
    def packed(cls, kid_e: np.ndarray, et: np.ndarray, kid_s: np.ndarray) -> PositionFinder | None:
        """The finder for events `kid_e`, `et` in (key, time) order, packed here; None when they do not fit."""
        if kid_e.size == 0:
            return None
        k0, k1 = int(kid_e[0]), int(kid_e[-1])  # sorted by key
        t0, t1 = int(et.min()), int(et.max())
        span = t1 - t0 + 1
        if (k1 - k0 + 1) * span >= 1 << PACKED_BITS:
            return None
        return cls.from_packed((kid_e - k0) * span + (et - t0), k0, k1, t0, span, kid_s)

    @classmethod
    def from_packed(cls, packed_events: np.ndarray, k0: int, k1: int, t0: int, span: int, kid_s: np.ndarray) -> PositionFinder:
        """The finder over events already packed and sorted (`kernels.sort_packed`): keys k0..k1, times from t0
        over `span` microseconds, which fits in `PACKED_BITS` (as `packed` would build it from the keys and times)."""
        assert (k1 - k0 + 1) * span < 1 << PACKED_BITS
        return cls(packed_events, (np.clip(kid_s, k0, k1) - k0) * span, kid_s < k0, kid_s > k1, t0, span)

    def find(self, at: np.ndarray, inclusive: bool) -> np.ndarray:
        """One past the last event of each spine row's key with time < at (<= at when inclusive)."""
        if inclusive:  # right of every event at or before `at`; before the key's first (-1) or after its last
            found = np.searchsorted(self.packed_events, self.query_base + np.clip(at - self.t0, -1, self.span - 1), side="right")
        else:
            found = np.searchsorted(self.packed_events, self.query_base + np.clip(at - self.t0, 0, self.span), side="left")
        if self.below.any() or self.above.any():  # keys without events: an empty range at either end
            found = np.where(self.below, 0, np.where(self.above, self.packed_events.size, found))
        return found


MAX_KEY_GROUPS = 4096  # beyond this many key groups, the caller's as-of lookups are cheaper than the loop
GROUP_KEYS = 1 << 62  # at most this many keys per group (tests lower it to search many small groups)


def position_finder(kid_e: np.ndarray, et: np.ndarray, kid_s: np.ndarray) -> PositionFinder | GroupedFinder | None:
    """The finder for events `kid_e`, `et` in (key, time) order and spine keys `kid_s`: one packed search
    when keys x time span fits in `PACKED_BITS`, else one per group of keys; None when even one key's span
    does not fit or the groups would be too many (the caller then uses as-of lookups)."""
    if kid_e.size == 0 or int(kid_e[-1]) - int(kid_e[0]) >= 1 << PACKED_BITS:  # key offsets must fit too
        return None
    per_group = _keys_per_group(et)
    if per_group < 1:
        return None
    groups = (int(kid_e[-1]) - int(kid_e[0])) // per_group + 1
    if groups == 1:
        return PositionFinder.packed(kid_e, et, kid_s)
    return GroupedFinder.build(kid_e, et, kid_s) if groups <= MAX_KEY_GROUPS else None


def _keys_per_group(et: np.ndarray) -> int:
    span = int(et.max()) - int(et.min()) + 1
    return min(((1 << PACKED_BITS) - 1) // span, GROUP_KEYS)  # keys x span < 2**PACKED_BITS, as `packed` needs


@dataclass
class GroupedFinder:
    """`PositionFinder`s over groups of consecutive keys, when keys x time span does not fit in one int64
    (more keys than 2**62 / span: 131,072 keys over a year of microseconds). The events of a group are one
    slice of the (key, time) order and each slice packs; a spine row searches its key's group only."""

    parts: list[tuple[np.ndarray, int, PositionFinder | None]]  # (spine rows, first event position, finder)
    m: int

    @classmethod
    def build(cls, kid_e: np.ndarray, et: np.ndarray, kid_s: np.ndarray) -> GroupedFinder | None:
        if kid_e.size == 0:
            return None
        k0, k1 = int(kid_e[0]), int(kid_e[-1])
        per_group = _keys_per_group(et)
        if per_group < 1 or k1 - k0 >= 1 << PACKED_BITS:
            return None
        groups = (k1 - k0) // per_group + 1
        # group g holds keys k0 + g * per_group ...; every inner edge is <= k1, so nothing here overflows
        inner = np.searchsorted(kid_e, k0 + per_group * np.arange(1, groups, dtype=np.int64), side="left")
        edges = np.r_[0, inner, kid_e.size]
        # rows below the first key search group 0 (position 0), above the last the last group (position n)
        g_s = (np.clip(kid_s, k0, k1) - k0) // per_group
        order = np.argsort(g_s, kind="stable")
        ends = np.cumsum(np.bincount(g_s, minlength=groups))
        parts = []
        for g in range(groups):
            rows = order[(ends[g - 1] if g else 0) : ends[g]]
            a, b = int(edges[g]), int(edges[g + 1])
            if rows.size:
                parts.append((rows, a, PositionFinder.packed(kid_e[a:b], et[a:b], kid_s[rows])))
        return cls(parts, kid_s.size)

    def find(self, at: np.ndarray, inclusive: bool) -> np.ndarray:
        """As `PositionFinder.find`: one past the last event of each row's key with time < at (<= at)."""
        out = np.empty(self.m, dtype=np.int64)
        for rows, first, finder in self.parts:
            out[rows] = first + (finder.find(at[rows], inclusive) if finder is not None else 0)
        return out


Job = tuple[np.ndarray, np.ndarray, np.ndarray, Sequence[WindowAgg], np.ndarray]  # (t, lo, hi, aggs, rows)


def compute(
    jobs: Sequence[Job],
    events: Events,
    inclusive: bool,
    out: dict[str, tuple[np.ndarray, np.ndarray]],
    threads: int = 1,
) -> None:
    """Aggregate every job's `aggs` (all of one window) for its spine rows `rows` (indices into the output
    arrays in `out`, alias -> (value, n)).

    `t`, `lo`, `hi` are per row of `rows`: the spine time and the range of event positions whose event time
    lies in the window, so only visibility is left to check. The rows are cut into chunks of at most
    `PAIRS_PER_CHUNK` pairs; chunks write disjoint rows of `out`, and with `threads` > 1 they run on that many
    threads (numpy's gathers, comparisons and reductions release the GIL), in any order: same result.
    """
    chunks: list[tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], Sequence[WindowAgg]]] = []
    for t, lo, hi, aggs, rows in jobs:
        lens = hi - lo
        keep = lens > 0
        if not keep.all():
            t, lo, lens, rows = t[keep], lo[keep], lens[keep], rows[keep]
        if rows.size == 0:
            continue
        ends = np.cumsum(lens)
        bounds = np.searchsorted(ends, np.arange(PAIRS_PER_CHUNK, int(ends[-1]), PAIRS_PER_CHUNK), side="left")
        for a, b in zip(np.r_[0, bounds + 1], np.r_[bounds + 1, rows.size], strict=True):
            if b > a:
                chunks.append(((t[a:b], lo[a:b], lens[a:b], rows[a:b]), aggs))
    if threads > 1 and len(chunks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fpipe-windows") as pool:
            for done in [pool.submit(_chunk, spans, events, aggs, inclusive, out) for spans, aggs in chunks]:
                done.result()
    else:
        for spans, aggs in chunks:
            _chunk(spans, events, aggs, inclusive, out)


def _chunk(
    spans: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    events: Events,
    aggs: Sequence[WindowAgg],
    inclusive: bool,
    out: dict[str, tuple[np.ndarray, np.ndarray]],
) -> None:
    """One chunk of spine rows: `spans` = (t, lo, lens, rows), each segment non-empty."""
    t, lo, lens, rows = spans
    r = rows.size
    starts = np.cumsum(lens) - lens  # first pair of each segment
    total = int(starts[-1] + lens[-1])
    seg = np.repeat(np.arange(r, dtype=np.int64), lens)
    idx = np.arange(total, dtype=np.int64) - np.repeat(starts - lo, lens)
    t_p = np.repeat(t, lens)  # t[seg], without the gather
    visible = events.vis[idx] <= t_p if inclusive else events.vis[idx] < t_p
    del t_p
    v_p = events.values[idx] if events.values is not None else None
    valid_p = events.valid[idx] if events.valid is not None else None
    masks: dict[bool, np.ndarray] = {}
    counts: dict[bool, np.ndarray] = {}
    sums: dict[bool, np.ndarray] = {}
    for wa in aggs:
        key = wa.reads_value and valid_p is not None
        if key not in masks:
            masks[key] = visible & valid_p if key and valid_p is not None else visible
            counts[key] = np.bincount(seg[masks[key]], minlength=r)
        m, n = masks[key], counts[key]
        value_out, n_out = out[wa.alias]
        n_out[rows] = n
        if wa.agg == "count":
            value_out[rows] = n
            continue
        assert v_p is not None
        if wa.agg in ("sum", "mean"):
            if key not in sums:
                sums[key] = _segment_sum(v_p, m, seg, starts, lens, r)
            s = sums[key]
            if wa.agg == "sum":
                value_out[rows] = s
            else:
                with np.errstate(invalid="ignore", divide="ignore"):
                    value_out[rows] = s.astype(np.float64) / n
        else:
            value_out[rows] = _segment_extreme(v_p, m, starts, wa.agg)


def _segment_sum(v: np.ndarray, mask: np.ndarray, seg: np.ndarray, starts: np.ndarray, lens: np.ndarray, r: int) -> np.ndarray:
    if v.dtype.kind == "f":
        return np.bincount(seg[mask], weights=v[mask].astype(np.float64, copy=False), minlength=r)
    running = np.cumsum(np.where(mask, v.astype(np.int64), 0), dtype=np.int64)
    last = running[starts + lens - 1]
    before = np.where(starts > 0, running[np.maximum(starts - 1, 0)], 0)
    with np.errstate(over="ignore"):
        return last - before


def _segment_extreme(v: np.ndarray, mask: np.ndarray, starts: np.ndarray, agg: str) -> np.ndarray:
    if v.dtype.kind == "f":
        fill = np.inf if agg == "min" else -np.inf
    else:
        info = np.iinfo(v.dtype)
        fill = info.max if agg == "min" else info.min
    masked = np.where(mask, v, np.array(fill, dtype=v.dtype))
    op = np.minimum if agg == "min" else np.maximum
    return op.reduceat(masked, starts)


def empty_outputs(
    aggs: Sequence[WindowAgg], m: int, value_dtype: np.dtype, share: Sequence[Hashable]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """alias -> (value, n) arrays of length m, n = 0 everywhere. `share`: per agg, a key; aggs with the same
    key (one window, so the same rows, and the same rows counted: `_chunk` counts per window and per
    `reads_value` when the values have nulls) share one n array, which is also a count's value array (a
    count is its n): 15 window features over 3 windows, values with nulls, hold 6 n arrays, not 30 arrays."""
    out = {}
    ns: dict[Hashable, np.ndarray] = {}
    for wa, key in zip(aggs, share, strict=True):
        if key not in ns:
            ns[key] = np.zeros(m, dtype=np.int64)
        n = ns[key]
        if wa.agg == "count":
            out[wa.alias] = (n, n)
            continue
        if wa.agg == "mean":
            dt: np.dtype = np.dtype(np.float64)
        elif wa.agg == "sum":
            dt = np.dtype(np.float64) if value_dtype.kind == "f" else np.dtype(np.int64)
        else:
            dt = value_dtype
        out[wa.alias] = (np.zeros(m, dtype=dt), n)
    return out


def to_series(value: np.ndarray, n: np.ndarray) -> tuple[pl.Series, pl.Series]:
    """(value with nulls where n == 0, n) as Polars series."""
    n_s = pl.Series(n)
    return pl.select(pl.when(n_s > 0).then(pl.Series(value))).to_series(), n_s


WALK_CELLS = 1 << 22  # positions examined per round of `visible_in_ranges`, across all rows still walking


def visible_in_ranges(
    lo: np.ndarray, hi: np.ndarray, vis: np.ndarray, t: np.ndarray, inclusive: bool, k: int, forward: bool
) -> tuple[np.ndarray, np.ndarray]:
    """For each row i, the first `k` positions p of [lo_i, hi_i) (from the start when `forward`, else from the
    end) whose row is visible at t_i (`vis[p] < t_i`, `<=` when inclusive): returned as (row, position)
    pairs, each row's in walking order.

    Positions are examined in blocks that double in size each round (4, 8, 16, ...; at most `WALK_CELLS`
    cells per round), so a row costs O(k + the rows it skips): the rows of its range that are not yet
    visible (pending: event time in the window, arrival after t) and come before its k-th visible one.
    """
    rows = np.flatnonzero(hi > lo)
    cursor = (lo if forward else hi - 1)[rows].astype(np.int64)
    need = np.full(rows.size, k, dtype=np.int64)
    out_rows: list[np.ndarray] = []
    out_pos: list[np.ndarray] = []
    block = 4
    step = 1 if forward else -1
    while rows.size:
        width = max(1, min(block, WALK_CELLS // rows.size))
        pos = cursor[:, None] + step * np.arange(width, dtype=np.int64)[None, :]
        inside = (pos < hi[rows, None]) if forward else (pos >= lo[rows, None])
        safe = np.where(inside, pos, 0)
        seen = vis[safe] <= t[rows, None] if inclusive else vis[safe] < t[rows, None]
        hit = seen & inside
        taken = hit & (np.cumsum(hit, axis=1) <= need[:, None])
        r_idx, c_idx = np.nonzero(taken)
        out_rows.append(rows[r_idx])
        out_pos.append(pos[r_idx, c_idx])
        need -= taken.sum(axis=1)
        cursor += step * width
        more = (need > 0) & inside[:, -1]
        rows, cursor, need = rows[more], cursor[more], need[more]
        block *= 2
    if not out_rows:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(out_rows), np.concatenate(out_pos)
