"""`fpipe skew-report` end to end: serving log -> recomputed features -> comparison -> diagnosis.

The only skew module that knows `Project`: it wires `compare_served` and `diagnose` to
`Project.compute_features`, so offline values are computed exactly as `backfill` computes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from fpipe.skew.compare import ROW, Joined, compare_served
from fpipe.skew.diagnose import FeatureOrigin, Overrides, diagnose
from fpipe.skew.plots import attach_plots
from fpipe.skew.report import SkewReport
from fpipe.skew.serving import ServedLog, load_served_log
from fpipe.spec.durations import format_duration
from fpipe.spec.model import Definitions, Thresholds

if TYPE_CHECKING:
    from fpipe.project import Project


@dataclass
class SkewOptions:
    set_name: str | None = None
    served: str | None = None
    time_col: str | None = None
    row_id: str | None = None
    ignore: Sequence[str] = ()
    only: Sequence[str] = ()
    thresholds: Mapping[str, float] = field(default_factory=dict)  # CLI overrides, Thresholds field -> value
    fail_on: str = "fail"
    diagnose: bool = True
    diagnosis_rows: int = 20_000
    worst_rows: int = 5
    seed: int = 0


def feature_origins(
    defs: Definitions, features: Sequence[str], keys: Mapping[str, tuple[str, ...]] | None = None
) -> dict[str, FeatureOrigin]:
    """The sources each feature reads (through its dependencies) and its effective cutoff."""
    from fpipe.engine.build import feature_closure

    out = {}
    for f in features:
        deps = [defs.features[n] for n in feature_closure(defs, [f]) if not defs.features[n].is_derived]
        sources = tuple(dict.fromkeys(d.source for d in deps if d.source and defs.sources[d.source].event_time))
        cutoffs = {defs.feature_cutoff(d).value for d in deps}
        cutoff = cutoffs.pop() if len(cutoffs) == 1 else defs.cutoff.value
        agg = defs.features[f].agg if not defs.features[f].is_derived else None
        entities = list(dict.fromkeys(d.entity for d in deps if d.entity))
        cols = tuple(c for e in entities for c in (keys or {}).get(e, ()))
        out[f] = FeatureOrigin(sources, cutoff, agg, cols)
    return out


def thresholds_for(defs: Definitions, features: Sequence[str], cli: Mapping[str, float]) -> dict[str, Thresholds]:
    """Built-in defaults < `skew:` defaults < `skew:` per feature < CLI flags."""
    return {f: dataclasses.replace(defs.skew.for_feature(f), **cli) if cli else defs.skew.for_feature(f) for f in features}


def _key_dtypes(defs: Definitions, frames: Mapping[str, pl.DataFrame]) -> dict[str, dict[str, pl.DataType]]:
    """Entity -> key column (the entity's name for it) -> dtype, from the first source frame keyed by it."""
    out: dict[str, dict[str, pl.DataType]] = {}
    for name, src in defs.sources.items():
        if name not in frames:
            continue
        for ent, cols in src.keys.items():
            if ent not in defs.entities or ent in out:
                continue
            schema = frames[name].schema
            out[ent] = {sc: schema[c] for sc, c in zip(defs.entities[ent].keys, cols, strict=False) if c in schema}
    return out


def run_skew_report(project: Project, opts: SkewOptions) -> tuple[SkewReport, Joined, ServedLog]:
    defs = project.defs
    holder: dict[str, dict[str, pl.DataFrame]] = {}

    def key_dtypes(features: list[str]) -> dict[str, dict[str, pl.DataType]]:
        holder["frames"] = project.source_frames_for(features)  # read once, reused for the offline values
        return _key_dtypes(defs, holder["frames"])

    log = load_served_log(
        defs, opts.set_name, opts.served, time_col=opts.time_col, row_id=opts.row_id, ignore=opts.ignore,
        only=opts.only, key_dtypes=key_dtypes,
    )
    frames = holder.get("frames") or project.source_frames_for(log.features)
    served = log.frame.with_row_index(ROW)
    spine_cols = list(dict.fromkeys([ROW, *log.key_columns, log.time_col]))

    def compute(spine: pl.DataFrame, features: list[str], ov: Overrides) -> pl.DataFrame:
        sp = spine
        if ov.time_shift:
            sp = sp.with_columns(pl.col(log.time_col) + ov.time_shift)
        if ov.time_floor is not None:
            sp = sp.with_columns(pl.col(log.time_col).dt.truncate(format_duration(ov.time_floor)))
        # an extra delay: a source with an available_time column gets that column shifted in its frame;
        # a source without one gets its declared lag plus the extra
        src_frames = dict(frames)
        lag_overrides: dict[str, dict[str, Any]] = {}
        for src, lag in ov.source_lags.items():
            spec = defs.sources[src]
            col = spec.available_time
            if col is not None and src in src_frames and src_frames[src].schema.get(col, pl.Null).is_temporal():
                src_frames[src] = src_frames[src].with_columns(pl.col(col) + lag)
            else:
                lag_overrides[src] = {"lag": lag + (spec.lag if col is None else timedelta(0))}
        out = project.compute_features(
            features, sp, log.time_col, log.keys, source_overrides=lag_overrides or None, cutoff=ov.cutoff,
            where=log.path, sources=src_frames,
        )
        return out.select(features)

    offline = compute(served.select(spine_cols), log.features, Overrides())
    offline = offline.with_columns(served.get_column(ROW))  # one row per spine row, in spine order
    ths = thresholds_for(defs, log.features, opts.thresholds)
    report, joined = compare_served(
        served, offline, log.features, ths, keys=log.key_columns, time_col=log.time_col, row_id=log.row_id,
        fail_on=opts.fail_on, worst_rows=opts.worst_rows, training_set=log.training_set, served_file=log.path,
    )
    report.notes[:0] = log.notes
    if opts.diagnose:
        diagnose(joined, report, compute, feature_origins(defs, log.features, log.keys), max_rows=opts.diagnosis_rows,
                 seed=opts.seed)
    attach_plots(joined, report, seed=opts.seed)
    return report, joined, log
