"""Builders for definitions and data in tests, and Hypothesis strategies for tiny scenarios.

Scenarios are tiny (0-12 source rows, 0-8 spine rows) on a coarse one-minute grid, so equal timestamps,
boundary-exact windows, ttl edges and availability == t happen often. Keys include None; values include
None and NaN; rows are sometimes exact duplicates.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
from hypothesis import strategies as st

from fpipe.spec.model import (
    Cutoff,
    Definitions,
    EntitySpec,
    FeatureSpec,
    LabelSpec,
    SourceSpec,
    SpineSpec,
    TrainingSetSpec,
)

BASE = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday in January: no DST anywhere near


def at(minutes: float) -> datetime:
    """The grid instant `minutes` after BASE (aware UTC)."""
    return BASE + timedelta(minutes=minutes)


def mins(m: float) -> timedelta:
    return timedelta(minutes=m)


# ------------------------------------------------------------------------------------------- builders
SOURCE_COLUMN_TYPES = {"uid": "int", "k2": "str", "x": "float", "n": "int", "s": "str"}
ENTITIES = {
    "user": EntitySpec("user", ("uid",)),
    "acct": EntitySpec("acct", ("uid", "k2")),
}


def source_spec(name: str = "ev", **kw: Any) -> SourceSpec:
    base: dict[str, Any] = {
        "name": name,
        "path": f"<memory>/{name}",
        "event_time": "ts",
        "available_time": "avail",
        "keys": {"user": ("uid",), "acct": ("uid", "k2")},
    }
    base.update(kw)
    return SourceSpec(**base)


def feature(name: str, agg: str | None = None, column: str | None = None, **kw: Any) -> FeatureSpec:
    if kw.get("expr") is not None:
        return FeatureSpec(name=name, **kw)
    kw.setdefault("entity", "user")
    kw.setdefault("source", "ev")
    return FeatureSpec(name=name, agg=agg, column=column, **kw)


def label(name: str = "lbl", agg: str = "count", column: str | None = None, **kw: Any) -> LabelSpec:
    kw.setdefault("entity", "user")
    kw.setdefault("source", "ev")
    kw.setdefault("horizon", mins(5))
    return LabelSpec(name=name, agg=agg, column=column, **kw)


FILE_SPINE = SpineSpec(name="sp", path="<memory>/spine", time="t")


def make_defs(
    features: Sequence[FeatureSpec],
    lbl: LabelSpec | None = None,
    *,
    sources: Sequence[SourceSpec] | None = None,
    spine: SpineSpec = FILE_SPINE,
    cutoff: Cutoff = Cutoff.EXCLUSIVE,
    tz: str = "UTC",
    extra_features: Sequence[FeatureSpec] = (),
) -> Definitions:
    """Definitions with one training set `ts` of `features` (in order) and `lbl`.

    `extra_features` are defined but not in the training set (dependencies of derived features).
    """
    srcs = list(sources) if sources is not None else [source_spec("ev"), source_spec("cb")]
    return Definitions(
        root="<memory>",
        timezone=tz,
        cutoff=cutoff,
        entities=dict(ENTITIES),
        sources={s.name: s for s in srcs},
        features={f.name: f for f in [*features, *extra_features]},
        labels={lbl.name: lbl} if lbl is not None else {},
        spines={spine.name: spine},
        training_sets={
            "ts": TrainingSetSpec("ts", spine.name, tuple(f.name for f in features), lbl.name if lbl else None)
        },
    )


def row(uid: Any = 1, ts: Any = None, avail: Any = "same", x: Any = None, n: Any = None, s: Any = None,
        k2: Any = "p") -> dict[str, Any]:
    """One source row; `ts`/`avail` given in grid minutes (or datetimes); avail 'same' = ts."""
    et = at(ts) if isinstance(ts, int | float) else ts
    av = et if avail == "same" else (at(avail) if isinstance(avail, int | float) else avail)
    return {"uid": uid, "k2": k2, "ts": et, "avail": av, "x": x, "n": n, "s": s}


def srow(uid: Any = 1, t: Any = 0, k2: Any = "p") -> dict[str, Any]:
    """One spine row; `t` in grid minutes (or a datetime, or None)."""
    return {"uid": uid, "k2": k2, "t": at(t) if isinstance(t, int | float) else t}


def source_schema(naive: bool = False) -> dict[str, pl.DataType]:
    dt = pl.Datetime("us") if naive else pl.Datetime("us", "UTC")
    return {"uid": pl.Int64(), "k2": pl.String(), "ts": dt, "avail": dt, "x": pl.Float64(), "n": pl.Int64(),
            "s": pl.String()}


def spine_schema(naive: bool = False) -> dict[str, pl.DataType]:
    dt = pl.Datetime("us") if naive else pl.Datetime("us", "UTC")
    return {"uid": pl.Int64(), "k2": pl.String(), "t": dt}


def to_frame(rows: Sequence[Mapping[str, Any]], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame([dict(r) for r in rows], schema=dict(schema), orient="row") if rows else pl.DataFrame(
        schema=dict(schema)
    )


# ------------------------------------------------------------------------------------------ scenario
@dataclass
class Scenario:
    defs: Definitions
    sources: dict[str, list[dict[str, Any]]]
    spine: list[dict[str, Any]]
    naive: bool = False  # time columns are naive local times in defs.timezone
    notes: list[str] = field(default_factory=list)
    time_unit: str = "us"  # of the source time columns handed to the engine
    spine_from_defs: bool = False  # a source or schedule spine: no spine frame is passed

    def source_frames(self) -> dict[str, pl.DataFrame]:
        frames = {name: to_frame(rows, source_schema(self.naive)) for name, rows in self.sources.items()}
        if self.time_unit != "us":
            frames = {n: f.with_columns(pl.col("ts", "avail").dt.cast_time_unit(self.time_unit))  # type: ignore[arg-type]
                      for n, f in frames.items()}
        return frames

    def spine_frame(self) -> pl.DataFrame | None:
        if self.spine_from_defs:
            return None
        return to_frame(self.spine, spine_schema(self.naive))

    def spine_rows(self) -> list[dict[str, Any]] | None:
        return None if self.spine_from_defs else self.spine

    def column_types(self) -> dict[str, dict[str, str]]:
        return {name: dict(SOURCE_COLUMN_TYPES) for name in self.sources}

    def local(self, instant: datetime | None) -> datetime | None:
        """Naive wall time in the project zone (for the naive variant)."""
        if instant is None:
            return None
        return instant.astimezone(ZoneInfo(self.defs.timezone)).replace(tzinfo=None)


def _sometimes_none(strategy: st.SearchStrategy[Any], one_in: int = 10) -> st.SearchStrategy[Any]:
    return st.integers(0, one_in - 1).flatmap(lambda i: st.none() if i == 0 else strategy)


X_VALUES = [None, math.nan, 0.0, 1.0, -1.5, 2.5, 3.0, 10.25, 0.1, 1e12, -1e12]
N_VALUES = [None, 0, 1, 2, 5, -3]
S_VALUES = [None, "a", "b", "c"]
UIDS = [None, 1, 2, 3]
K2S = [None, "p", "q", "p"]


@st.composite
def source_rows(draw: st.DrawFn, max_rows: int = 12, max_minute: int = 20) -> list[dict[str, Any]]:
    n = draw(st.integers(0, max_rows))
    rows: list[dict[str, Any]] = []
    for _ in range(n):
        if rows and draw(st.integers(0, 6)) == 0:
            rows.append(dict(draw(st.sampled_from(rows))))  # an exact duplicate
            continue
        et_min = draw(_sometimes_none(st.integers(0, max_minute), 12))
        late = draw(st.sampled_from([None, -2, -1, 0, 0, 0, 1, 2, 3]))
        et = at(et_min) if et_min is not None else None
        if late is None:
            avail = None if draw(st.integers(0, 3)) == 0 else (at(draw(st.integers(0, max_minute))))
        else:
            avail = et + mins(late) if et is not None else None
        x = draw(st.one_of(st.sampled_from(X_VALUES), st.floats(-100, 100, allow_nan=False, width=32)))
        rows.append({
            "uid": draw(st.sampled_from(UIDS)),
            "k2": draw(st.sampled_from(K2S)),
            "ts": et,
            "avail": avail,
            "x": 0.0 if x == 0 else x,  # no -0.0: count_distinct of 0.0 and -0.0 is not the point here
            "n": draw(st.sampled_from(N_VALUES)),
            "s": draw(st.sampled_from(S_VALUES)),
        })
    return rows


@st.composite
def spine_rows(draw: st.DrawFn, max_rows: int = 8, max_minute: int = 25) -> list[dict[str, Any]]:
    n = draw(st.integers(0, max_rows))
    out = []
    for _ in range(n):
        t = draw(_sometimes_none(st.integers(0, max_minute), 12))
        out.append({"uid": draw(st.sampled_from(UIDS)), "k2": draw(st.sampled_from(K2S)),
                    "t": at(t) if t is not None else None})
    return out


AGG_COLUMNS: dict[str, list[str | None]] = {
    "count": [None, "x", "n", "s"],
    "sum": ["x", "n"],
    "mean": ["x", "n"],
    "min": ["x", "n", "s"],
    "max": ["x", "n", "s"],
    "std": ["x", "n"],
    "var": ["x", "n"],
    "count_distinct": ["x", "n", "s"],
    "first": ["x", "n", "s"],
    "last": ["x", "n", "s"],
    "last_k": ["x", "n", "s"],
    "time_since_last": [None],
    "time_since_first": [None],
    "latest": ["x", "n", "s"],
}
WHERES = [None, None, "x > 0", "s = 'a'", "n IS NOT NULL", "s IN ('a', 'b') OR x < 0"]
CUTOFFS = [None, Cutoff.EXCLUSIVE, Cutoff.INCLUSIVE]
_COLUMN_DEFAULT = {"x": -1.5, "n": -1, "s": "zz"}
NUMERIC_AGGS = {"count", "sum", "mean", "std", "var", "count_distinct", "time_since_last", "time_since_first"}


def _default_for(agg: str, column: str | None) -> Any:
    if agg in ("count", "count_distinct"):
        return 7
    if agg in ("mean", "std", "var"):
        return -1.5
    if agg in ("time_since_last", "time_since_first"):
        return -1.0
    if agg == "last_k":
        return None
    assert column is not None
    return _COLUMN_DEFAULT[column]


def is_numeric(f: FeatureSpec) -> bool:
    return f.agg in NUMERIC_AGGS or (f.agg not in (None, "last_k") and f.column in ("x", "n"))


@st.composite
def feature_specs(draw: st.DrawFn, name: str) -> FeatureSpec:
    agg = draw(st.sampled_from(sorted(AGG_COLUMNS)))
    column = draw(st.sampled_from(AGG_COLUMNS[agg]))
    kw: dict[str, Any] = {
        "entity": draw(st.sampled_from(["user", "user", "acct"])),
        "where": draw(st.sampled_from(WHERES)),
        "cutoff": draw(st.sampled_from(CUTOFFS)),
    }
    if agg == "latest":
        kw["ttl"] = draw(st.sampled_from([None, mins(1), mins(2), mins(5)]))
        kw["skip_nulls"] = draw(st.booleans())
    else:
        kw["window"] = draw(st.sampled_from([None, mins(1), mins(2), mins(3), mins(5), mins(10)]))
        if kw["window"] is not None and draw(st.integers(0, 3)) == 0:
            kw["hop"] = draw(st.sampled_from([mins(2), mins(3)]))
    if agg in ("std", "var"):
        kw["ddof"] = draw(st.sampled_from([0, 1, 1, 2]))
    if agg == "last_k":
        kw["k"] = draw(st.integers(1, 3))
    if draw(st.booleans()):
        kw["default"] = _default_for(agg, column)
    return feature(name, agg, column, **kw)


DERIVED_TEMPLATES = [
    "{a} / {b}",
    "{a} + 1",
    "coalesce({a}, 0) * 2 - {b}",
    "{a} > {b}",
    "CASE WHEN {a} IS NULL THEN -1 ELSE {a} END",
    "{a} - {b} / 2",
]


@st.composite
def label_specs(draw: st.DrawFn) -> LabelSpec:
    agg = draw(st.sampled_from(["count", "count", "sum", "max", "mean", "last", "count_distinct", "min", "first",
                                "std", "var", "time_since_first"]))
    column = {"count": draw(st.sampled_from([None, "x"])), "sum": "n", "max": "x", "mean": "x", "last": "s",
              "count_distinct": draw(st.sampled_from(["s", "n", "x"])), "min": draw(st.sampled_from(["x", "s"])),
              "first": draw(st.sampled_from(["s", "n"])), "std": "x", "var": "n", "time_since_first": None}[agg]
    kw: dict[str, Any] = {
        "entity": draw(st.sampled_from(["user", "acct"])),
        "source": draw(st.sampled_from(["ev", "cb"])),
        "horizon": mins(draw(st.sampled_from([1, 2, 5, 10]))),
        "gap": mins(draw(st.sampled_from([0, 0, 1, 2]))),
        "censor": draw(st.sampled_from(["drop", "flag"])),
        "where": draw(st.sampled_from([None, None, "x > 0"])),
        "cutoff": draw(st.sampled_from(CUTOFFS)),
        "observed_until": draw(st.sampled_from([None, None, at(10), at(18), at(30)])),
    }
    if draw(st.booleans()):
        kw["default"] = {"count": 7, "sum": -1, "max": -1.5, "mean": -1.5, "last": "zz", "count_distinct": 7,
                         "min": _COLUMN_DEFAULT.get(column or ""), "first": _COLUMN_DEFAULT.get(column or ""), "std": -1.5,
                         "var": -1.5, "time_since_first": -1.0}[agg]
    if agg in ("count", "sum", "max") and draw(st.booleans()):
        kw["expr"] = "lbl > 0"
    return label("lbl", agg, column, **kw)


@st.composite
def spine_specs(draw: st.DrawFn, kinds: Sequence[str]) -> SpineSpec:
    kind = draw(st.sampled_from(list(kinds)))
    if kind == "source":
        return SpineSpec(name="sp", source="ev", time="t", offset=mins(draw(st.sampled_from([0, 0, -1, 1]))),
                         where=draw(st.sampled_from([None, None, "n > 0"])))
    if kind == "schedule":
        start = draw(st.integers(0, 6))
        return SpineSpec(name="sp", time="t", every=mins(draw(st.sampled_from([1, 3, 5]))), start=at(start),
                         end=at(start + draw(st.integers(0, 20))), entities_from="ev",
                         lookback=draw(st.sampled_from([None, mins(2), mins(5)])))
    return FILE_SPINE


@st.composite
def scenarios(draw: st.DrawFn, with_label: bool | None = None, allow_naive: bool = True,
              spine_kinds: Sequence[str] = ("file",), max_rows: int = 12, max_spine: int = 8,
              max_minute: int = 20) -> Scenario:
    n_features = draw(st.integers(1, 4))
    feats = [draw(feature_specs(f"f{i}")) for i in range(n_features)]
    numeric = [f for f in feats if is_numeric(f)]
    if numeric and draw(st.booleans()):
        a = draw(st.sampled_from(numeric))
        b = draw(st.sampled_from(numeric))
        tmpl = draw(st.sampled_from(DERIVED_TEMPLATES))
        feats.append(FeatureSpec(name="d0", expr=tmpl.format(a=a.name, b=b.name)))
    if with_label is None:
        with_label = draw(st.booleans())
    lbl = draw(label_specs()) if with_label else None
    srcs = []
    for name in ("ev", "cb"):
        kw: dict[str, Any] = {"cutoff": draw(st.sampled_from(CUTOFFS))}
        if draw(st.integers(0, 3)) == 0:
            kw["available_time"] = None
            kw["lag"] = mins(draw(st.sampled_from([0, 1, -1])))
        elif draw(st.integers(0, 5)) == 0:
            kw["lag"] = mins(draw(st.sampled_from([1, 2])))  # on top of the available_time column
        if draw(st.integers(0, 4)) == 0:
            kw["observed_until"] = at(draw(st.sampled_from([12, 20])))
        srcs.append(source_spec(name, **kw))
    naive = allow_naive and draw(st.integers(0, 4)) == 0
    tz = draw(st.sampled_from(["Asia/Kolkata", "America/New_York"])) if naive else "UTC"
    sp = draw(spine_specs(spine_kinds))
    defs = make_defs(feats, lbl, sources=srcs, cutoff=draw(st.sampled_from([Cutoff.EXCLUSIVE, Cutoff.INCLUSIVE])),
                     tz=tz, spine=sp)
    sources = {"ev": draw(source_rows(max_rows, max_minute)),
               "cb": draw(source_rows(max(8, max_rows * 2 // 3), max_minute))}
    spine = draw(spine_rows(max_spine, max_minute + 5)) if sp.kind == "file" else []
    sc = Scenario(defs, sources, spine, naive=naive, spine_from_defs=sp.kind != "file",
                  time_unit=draw(st.sampled_from(["us", "us", "ns", "ms"])))
    if naive:
        for rows in sources.values():
            for r in rows:
                r["ts"] = sc.local(r["ts"])
                r["avail"] = sc.local(r["avail"])
        for r in spine:
            r["t"] = sc.local(r["t"])
    return sc


# ---------------------------------------------------------------------------------- mutation helpers
def without_label(defs: Definitions) -> Definitions:
    ts = defs.training_sets["ts"]
    return replace(defs, training_sets={"ts": replace(ts, label=None)})


def order_preserving_shuffle(rows: Sequence[dict[str, Any]], seed: int, tie_key: str = "ts") -> list[dict[str, Any]]:
    """A random permutation of `rows` that keeps the relative order of rows with equal `tie_key`.

    Input position only breaks ties between rows of equal event time (then available time), so such a
    permutation must change no output value (floats up to summation order).
    """
    rng = random.Random(seed)
    perm = list(range(len(rows)))
    rng.shuffle(perm)
    groups: dict[Any, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(r[tie_key], []).append(i)
    slots: dict[Any, list[int]] = {}
    for slot, i in enumerate(perm):
        slots.setdefault(rows[i][tie_key], []).append(slot)
    out: list[dict[str, Any] | None] = [None] * len(rows)
    for key, members in groups.items():
        for slot, i in zip(slots[key], members, strict=True):
            out[slot] = rows[i]
    return [r for r in out if r is not None]


# ---------------------------------------------------------------------------------------- comparison
def dtype_family(dtype: pl.DataType) -> str:
    if dtype.is_integer():
        return "int"
    if dtype.is_float():
        return "float"
    if dtype == pl.String or dtype == pl.Categorical:
        return "str"
    if dtype == pl.Boolean:
        return "bool"
    if isinstance(dtype, pl.Datetime):
        return "datetime"
    if dtype == pl.Date:
        return "date"
    if isinstance(dtype, pl.List | pl.Array):
        return "list"
    if dtype == pl.Null:
        return "null"
    return str(dtype)


def values_equal(a: Any, b: Any, rel: float = 1e-9, abs_: float = 1e-9) -> bool:
    """Exact, except floats within rel/abs tolerance. None only equals None; NaN equals nothing."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, int | float) or not isinstance(b, int | float):
            return False
        if math.isnan(a) or math.isnan(b):
            return False
        return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)
    if isinstance(a, list | tuple) or isinstance(b, list | tuple):
        return (isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b)
                and all(values_equal(x, y, rel, abs_) for x, y in zip(a, b, strict=True)))
    if isinstance(a, datetime) and isinstance(b, datetime):
        if (a.tzinfo is None) != (b.tzinfo is None):
            return False
        return a == b
    return bool(a == b) and type(a) is type(b)


def frame_mismatches(frame: pl.DataFrame, columns: Sequence[str], rows: Sequence[Mapping[str, Any]],
                     families: Mapping[str, str | None] | None = None, check_columns: bool = True,
                     tolerances: Sequence[Mapping[str, float]] | None = None) -> list[str]:
    """Every difference between an engine frame and expected rows, column by column (no de-duplication)."""
    problems: list[str] = []
    if check_columns and list(frame.columns) != list(columns):
        problems.append(f"columns {frame.columns} != expected {list(columns)}")
    if frame.height != len(rows):
        problems.append(f"{frame.height} rows != expected {len(rows)}")
        return problems
    for c in columns:
        if c not in frame.columns:
            problems.append(f"missing column {c!r}")
            continue
        fam = (families or {}).get(c)
        got_fam = dtype_family(frame.schema[c])
        if fam not in (None, "null") and got_fam != fam and not (got_fam == "null" and all(r[c] is None for r in rows)):
            problems.append(f"column {c!r}: dtype {frame.schema[c]} ({got_fam}), expected family {fam}")
        got = frame.get_column(c).to_list()
        for i, (g, r) in enumerate(zip(got, rows, strict=True)):
            tol = tolerances[i].get(c, 1e-9) if tolerances else 1e-9
            if tol == math.inf:
                continue  # a derived value of ill-conditioned inputs: not comparable
            if not values_equal(g, r[c], abs_=tol):
                problems.append(f"row {i} column {c!r}: engine {g!r} != oracle {r[c]!r}")
    return problems


def any_inclusive(defs: Definitions) -> bool:
    """Whether any (non-derived) feature of the training set resolves to an inclusive cutoff."""
    return any(
        defs.feature_cutoff(f) is Cutoff.INCLUSIVE for f in defs.features.values() if not f.is_derived
    )


def invisible_at(r: Mapping[str, Any], t: datetime, inclusive: bool, src: SourceSpec) -> bool:
    """A raw scenario row (aware times) that no feature may see at t (under the given cutoff)."""
    et = r["ts"]
    av = r["avail"] if src.available_time is not None else et
    av = av + src.lag if av is not None else None
    if et is None or av is None:
        return True
    return max(et, av) > t if inclusive else max(et, av) >= t


def mutate_invisible(
    sources: Mapping[str, Sequence[dict[str, Any]]], me: Mapping[str, Any], t: datetime, defs: Definitions, data: Any
) -> dict[str, list[dict[str, Any]]]:
    """The sources with what the row for t (keys `me`) must not see: each row invisible at t kept, dropped or
    moved to `me` with new values (drawn from `data`), plus a row at the earliest instant no feature may see
    and, where the source has an available time, one that happened before t but became available only then."""
    inclusive = any_inclusive(defs)
    late = t + mins(1) if inclusive else t
    mutated: dict[str, list[dict[str, Any]]] = {}
    for name, rows in sources.items():
        out = []
        for r in rows:
            if invisible_at(r, t, inclusive, defs.sources[name]):
                op = data.draw(st.sampled_from(["keep", "drop", "change"]))
                if op == "drop":
                    continue
                if op == "change":
                    r = {**r, **me, "x": 99.0, "n": 99, "s": "a"}
            out.append(r)
        out.append({**me, "ts": late, "avail": late, "x": 5.0, "n": 5, "s": "a"})
        if defs.sources[name].available_time is not None:
            out.append({**me, "ts": t - mins(3), "avail": late, "x": 6.0, "n": 6, "s": "a"})
        mutated[name] = out
    return mutated
