"""Build a training set from frames already read: spine -> features -> derived -> label -> output.

Output contract (SPEC section 3, "Output"): exactly one row per spine row, in spine order, spine columns
first, then the features in the training set's order, then the label (and `<label>_censored` with
`censor: flag`). The only rows left out are censored labels under `censor: drop`; they are returned in
`censored` with a `_reason`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from fpipe.engine import features as F
from fpipe.engine import spine as S
from fpipe.engine.checks import ChecksOutcome
from fpipe.engine.expr import compile_expr
from fpipe.engine.finish import cast_declared, censor_mask, fill_missing_rows, finish
from fpipe.engine.visibility import SourceStats, normalise_source
from fpipe.spec.expr import parse_expr, referenced_names
from fpipe.spec.model import Definitions, FeatureSpec, TrainingSetSpec

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class BuildStats:
    rows_in: int = 0
    rows_out: int = 0
    rows_censored: int = 0
    spine_rows_without_time_or_key: int = 0
    sources: dict[str, SourceStats] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    null_rates: dict[str, float] = field(default_factory=dict)


@dataclass
class BuildResult:
    frame: pl.DataFrame
    censored: pl.DataFrame
    stats: BuildStats
    spine_columns: list[str]
    time_column: str
    features: list[str]
    label: str | None
    checks: ChecksOutcome | None = None  # row checks applied to the sources (set by Project, issue 7)


class _Timer:
    def __init__(self, stats: BuildStats) -> None:
        self.stats = stats

    def stage(self, name: str) -> _Stage:
        return _Stage(self.stats, name)


class _Stage:
    def __init__(self, stats: BuildStats, name: str) -> None:
        self.stats, self.name = stats, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.stats.stage_seconds[self.name] = self.stats.stage_seconds.get(self.name, 0.0) + time.perf_counter() - self.t0


def feature_closure(defs: Definitions, names: Iterable[str]) -> list[str]:
    """The features needed to compute `names` (derived dependencies first), in a stable topological order."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        feat = defs.features[name]
        if feat.expr is not None:
            for dep, _ in referenced_names(parse_expr(feat.expr)):
                visit(dep)
        order.append(name)

    for n in names:
        visit(n)
    return order


def normalise_sources(
    defs: Definitions, names: Iterable[str], sources: Mapping[str, pl.DataFrame]
) -> tuple[dict[str, pl.DataFrame], dict[str, SourceStats]]:
    out: dict[str, pl.DataFrame] = {}
    stats: dict[str, SourceStats] = {}
    for name in names:
        if name in out:
            continue
        frame, st = normalise_source(sources[name], defs.sources[name], defs.timezone)
        out[name], stats[name] = frame, st
    return out, stats


def _sources_needed(defs: Definitions, feats: Sequence[FeatureSpec], label_source: str | None) -> list[str]:
    names = [f.source for f in feats if f.source is not None]
    if label_source:
        names.append(label_source)
    return list(dict.fromkeys(names))


def compute_feature_columns(
    defs: Definitions,
    feature_names: Sequence[str],
    spine: S.Spine,
    normalised: Mapping[str, pl.DataFrame],
    progress: Progress | None = None,
) -> pl.DataFrame:
    """`_row` + one column per requested feature (derived ones included), one row per spine row."""
    needed = feature_closure(defs, feature_names)
    frame = spine.frame.select("_row")
    base = [defs.features[n] for n in needed if not defs.features[n].is_derived]
    by_entity: dict[str, list[FeatureSpec]] = {}
    for feat in base:
        assert feat.entity is not None
        by_entity.setdefault(feat.entity, []).append(feat)
    done = 0
    for entity, feats in by_entity.items():
        ef = F.EntityFeatures(defs, spine.frame, spine.keys[entity])
        ef.precompute(feats, normalised)
        cols: list[pl.Series] = []
        empties: dict[str, tuple[str, Any, pl.DataType]] = {}
        for feat in feats:
            assert feat.source is not None and feat.agg is not None
            value, n, dtype = ef.feature(feat, normalised[feat.source])
            col = cast_declared(finish(value, n, feat.name, feat.agg, feat.default, dtype), feat.dtype)
            cols.append(col)
            empties[feat.name] = (feat.agg, feat.default, col.dtype)
            done += 1
            if progress:
                progress("features", done, len(base))
        block = ef.es.sorted.select("_row").with_columns(cols)
        frame = frame.hstack(fill_missing_rows(spine.frame, block, empties).drop("_row").get_columns())  # both in spine order
    for name in needed:
        feat = defs.features[name]
        if feat.is_derived:
            assert feat.expr is not None
            frame = frame.with_columns(compile_expr(feat.expr).alias(name))
            if feat.dtype:
                frame = frame.with_columns(cast_declared(frame.get_column(name), feat.dtype))
    return frame.select(["_row", *feature_names])


def build_frame(
    defs: Definitions,
    training_set: TrainingSetSpec | str,
    sources: Mapping[str, pl.DataFrame],
    spine: pl.DataFrame | None = None,
    *,
    spine_where: str | None = None,
    start: object = None,
    end: object = None,
    progress: Progress | None = None,
) -> BuildResult:
    """Build a training set. `sources`: raw frames by source name; `spine`: a raw file spine (or override)."""
    ts = defs.training_sets[training_set] if isinstance(training_set, str) else training_set
    stats = BuildStats()
    timer = _Timer(stats)
    spec = defs.spines[ts.spine]
    label = defs.labels[ts.label] if ts.label else None
    needed = feature_closure(defs, ts.features)
    feats = [defs.features[n] for n in needed if not defs.features[n].is_derived]
    src_names = _sources_needed(defs, feats, label.source if label and label.spine_column is None else None)
    if spine is None and spec.kind == "source" and spec.source:
        src_names.append(spec.source)
    if spec.kind == "schedule" and spec.entities_from:
        src_names.append(spec.entities_from)

    with timer.stage("read+normalise"):
        normalised, stats.sources = normalise_sources(defs, src_names, sources)

    with timer.stage("spine"):
        if spine is not None:
            sp = S.from_frame(defs, spec, spine, where=spine_where or (spec.path or "<spine>"))
        elif spec.kind == "source":
            assert spec.source is not None
            sp = S.from_source(defs, spec, normalised[spec.source])
        elif spec.kind == "schedule":
            sp = S.from_schedule(defs, spec, normalised.get(spec.entities_from or ""))
        else:
            raise ValueError(f"spine '{spec.name}' is a file spine: pass its frame")
        sp = S.restrict(sp, start, end)  # type: ignore[arg-type]
        entities = {f.entity: None for f in feats if f.entity}
        if label is not None and label.entity and label.spine_column is None:
            entities[label.entity] = None
        S.required_keys(sp, entities, spine_where or spec.path or f"spine '{spec.name}'")
        _check_output_names(defs, ts, label, sp.columns, spec.name)
    stats.rows_in = sp.frame.height
    key_cols = sorted({c for e in entities for c in sp.keys[e]})
    incomplete = pl.col("_t").is_null()
    for c in key_cols:
        incomplete = incomplete | pl.col(c).is_null()
    stats.spine_rows_without_time_or_key = int(sp.frame.select(incomplete.sum()).item()) if sp.frame.height else 0

    with timer.stage("features"):
        feat_frame = compute_feature_columns(defs, ts.features, sp, normalised, progress)

    frame = sp.frame.select([*sp.columns, "_row"]).hstack(feat_frame.drop("_row").get_columns())  # both in spine order
    label_cols: list[str] = []
    censored = pl.DataFrame()
    if label is not None:
        with timer.stage("label"):
            if label.spine_column is not None:
                lab = sp.frame.get_column(label.spine_column).alias(label.name)
                if label.spine_column in sp.columns and label.spine_column == label.name:
                    frame = frame.drop(label.name)
                cens = pl.Series("_censored", [False] * sp.frame.height, dtype=pl.Boolean)
            else:
                assert label.entity and label.source
                src_norm = normalised[label.source]
                ef = F.EntityFeatures(defs, sp.frame, sp.keys[label.entity])
                value, n, dtype = ef.label(label, src_norm)
                block = ef.es.sorted.select("_row").with_columns(finish(value, n, label.name, label.agg, label.default, dtype))
                lab = fill_missing_rows(sp.frame, block, {label.name: (label.agg, label.default, dtype)}).get_column(label.name)
                cens = censor_mask(sp.frame, label, src_norm, defs.sources[label.source])
            if label.expr:
                lab = pl.DataFrame([lab]).select(compile_expr(label.expr).alias(label.name)).to_series()
            frame = frame.with_columns(lab.alias(label.name))
            label_cols = [label.name]
            if label.censor == "flag":
                frame = frame.with_columns(cens.alias(f"{label.name}_censored"))
                label_cols.append(f"{label.name}_censored")
            else:
                censored = frame.filter(cens).select(
                    [*sp.columns, pl.lit("label window ends after the label source's observed end").alias("_reason")]
                )
                frame = frame.filter(~cens)
                stats.rows_censored = censored.height
    # a label read from a spine column of its own name is that column, placed where labels go
    out_cols = [*[c for c in sp.columns if c not in label_cols], *ts.features, *label_cols]
    frame = frame.select(out_cols)
    stats.rows_out = frame.height
    if frame.height and ts.features:
        stats.null_rates = {
            f: float(v) for f, v in zip(ts.features, frame.select([pl.col(f).null_count() / frame.height for f in ts.features]).row(0), strict=True)
        }
    return BuildResult(frame, censored, stats, sp.columns, sp.time_column, list(ts.features), ts.label)


def _check_output_names(defs: Definitions, ts: TrainingSetSpec, label: Any, spine_columns: Sequence[str], spine: str) -> None:
    """A feature or label named like a spine column would make two output columns of one name."""
    from fpipe.errors import DataError, Diagnostic

    taken = set(spine_columns)
    outputs = [(n, defs.features[n].loc, "feature") for n in ts.features]
    if label is not None and label.spine_column != label.name:  # a label read from its own spine column is that column
        outputs.append((label.name, label.loc, "label"))
    for name, loc, kind in outputs:
        if name in taken:
            raise DataError(
                Diagnostic(
                    f"{kind} '{name}' of training set '{ts.name}' has the name of a column of spine '{spine}'",
                    file=loc.file if loc.line else None, line=loc.line or None, col=loc.col or None,
                    hint=f"rename the {kind}, or list the spine columns to keep with `columns:` in spine '{spine}'",
                )
            )


def compute_features(
    defs: Definitions,
    feature_names: Sequence[str],
    spine: pl.DataFrame,
    time_col: str,
    keys: Mapping[str, tuple[str, ...]],
    sources: Mapping[str, pl.DataFrame],
    *,
    where: str = "<spine>",
    timezone: str | None = None,
) -> pl.DataFrame:
    """Features at arbitrary instants (serving logs, explain): the spine's columns, then one column per feature."""
    from fpipe.engine.timecols import to_utc

    needed = feature_closure(defs, feature_names)
    feats = [defs.features[n] for n in needed if not defs.features[n].is_derived]
    normalised, _ = normalise_sources(defs, _sources_needed(defs, feats, None), sources)
    frame = to_utc(spine, time_col, tz=timezone or defs.timezone, where=where, out="_t")
    frame = frame.with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    sp = S.Spine(frame, list(spine.columns), time_col, dict(keys))
    S.required_keys(sp, {f.entity: None for f in feats if f.entity}, where)
    cols = compute_feature_columns(defs, feature_names, sp, normalised)
    return spine.with_columns(cols.drop("_row").get_columns())
