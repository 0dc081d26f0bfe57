"""Build a training set partition by partition (engine/partition.py explains the partitioning).

A *task* is (entity group, partition p of n). It reads only its partition of the spine and of the sources
keyed by that entity (an integer key is pushed down into the scan, so only that partition is decoded into
memory), runs the ordinary `engine.build.build_frame` on it, and returns the partition's rows tagged with
their spine row. The driver concatenates the partitions, restores spine order, joins the entity groups
back on the spine row, computes derived features, and returns a `BuildResult` identical to the
unpartitioned one (same bytes when written).

Label censoring needs the label source's latest event time over *all* rows; the driver computes it once
and passes it to every task as `observed_until`.

Row checks (`checks:`, `on_fail:`) are run by the driver before partitioning (distributed/checks.py explains
why and how, in bounded memory): `fail` stops the build as a plain one does, a task drops the rows its
sources quarantine (`Task.drop`, input positions, filtered in the scan) and nulls unparseable times of
`warn` sources; the `BuildResult` carries the same `checks` (quarantine and counts) as a plain build's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from fpipe.engine import build as B
from fpipe.engine import partition as P
from fpipe.engine import spine as S
from fpipe.engine.checks import null_unparseable
from fpipe.engine.visibility import SourceStats
from fpipe.errors import UsageError, display_path
from fpipe.spec.model import Definitions, TrainingSetSpec


@dataclass(frozen=True)
class Group:
    """The features of one entity (and the label, when it is this entity's), built with its partitioning."""

    entity: str
    features: tuple[str, ...]  # base features of this entity, in training-set closure order
    with_label: bool
    # a label-only group borrows one feature of another entity (computed and discarded) because
    # `build_frame` needs at least one feature
    borrowed: tuple[str, ...] = ()

    @property
    def computed(self) -> tuple[str, ...]:
        return self.features or self.borrowed


@dataclass(frozen=True)
class Task:
    defs: Definitions  # with the spine spec carrying `_spine_row` and the label's observed_until fixed
    set_name: str
    group: Group
    n: int
    p: int
    sources: Mapping[str, tuple[str, ...]]  # source -> columns to read
    spine_path: str | None
    spine_format: str | None
    start: datetime | None
    end: datetime | None
    # source -> input positions (sorted) of the rows its checks quarantined: the task never reads them
    drop: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass
class TaskResult:
    group: str
    p: int
    frame: pl.DataFrame
    censored: pl.DataFrame
    stats: B.BuildStats


def plan_groups(defs: Definitions, set_name: str) -> list[Group]:
    ts = defs.training_sets[set_name]
    needed = B.feature_closure(defs, ts.features)
    base = [defs.features[n] for n in needed if not defs.features[n].is_derived]
    entities: dict[str, list[str]] = {}
    for f in base:
        assert f.entity is not None
        entities.setdefault(f.entity, []).append(f.name)
    label = defs.labels[ts.label] if ts.label else None
    label_entity = label.entity if label is not None and label.spine_column is None else None
    if label_entity is not None:
        entities.setdefault(label_entity, [])
    if not entities:  # only derived/spine-column features: one trivial group
        any_entity = next(iter(defs.entities), "")
        entities[any_entity] = []
    first = next(iter(entities))
    any_feature = tuple(f.name for f in base[:1])
    return [
        Group(
            e,
            tuple(names),
            with_label=(e == label_entity) or (label is not None and label_entity is None and e == first),
            borrowed=() if names else any_feature,
        )
        for e, names in entities.items()
    ]


def _key_mode(dtypes: Sequence[Sequence[pl.DataType]]) -> bool:
    """True: every key is one integer column (modulo, pushed down); False: FNV-1a over strings."""
    return all(P.is_integer_key(list(d)) for d in dtypes)


def _scan(path: str, fmt: str | None, columns: Sequence[str] | None) -> tuple[pl.LazyFrame, pl.Schema]:
    from fpipe.io.sources import read_error, scan

    lf, _ = scan(path, fmt)
    try:
        schema = lf.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:  # e.g. a URL that is not there: as a plain build says it
        raise read_error(exc, path) from None
    if columns is not None:
        wanted = set(columns)
        lf = lf.select([c for c in schema.names() if c in wanted])
        schema = lf.collect_schema()
    return lf, schema


def _read_partition(lf: pl.LazyFrame, keys: Sequence[str], integer: bool, n: int, p: int) -> pl.DataFrame:
    if n <= 1:
        return lf.collect(engine="in-memory")
    if integer:
        return lf.filter(P.partition_predicate(keys[0], n, p)).collect(engine="in-memory")
    frame = lf.collect(engine="in-memory")
    return frame.filter(P.partition_ids(frame, keys, n) == p)


def _group_training_set(task: Task) -> TrainingSetSpec:
    """The task's training set narrowed to its group: the group's features, and the label if it carries it."""
    ts = task.defs.training_sets[task.set_name]
    return dataclasses.replace(ts, features=task.group.computed, label=ts.label if task.group.with_label else None)


def run_partition(task: Task) -> TaskResult:
    """Build one (entity group, partition): read its rows, run the ordinary builder, tag rows with `_spine_row`."""
    defs, sub = task.defs, _group_training_set(task)
    entity = task.group.entity
    spec = defs.spines[sub.spine]
    spine_keys = S.spine_keys_for(defs, spec).get(entity, ())
    # the key types decide the partitioning mode; all inputs of a group must agree
    lazies: dict[str, tuple[pl.LazyFrame, pl.Schema]] = {}
    for name, cols in task.sources.items():
        src = defs.sources[name]
        lf, schema = _scan(src.path, src.format, cols)
        if name in task.drop:  # quarantined rows (distributed/checks.py); a row index filter the scan applies
            dropped = pl.Series(task.drop[name], dtype=pl.Int64).implode()
            lf = lf.with_row_index(_CHECK_POS).filter(~pl.col(_CHECK_POS).cast(pl.Int64).is_in(dropped)).drop(_CHECK_POS)
        if spec.kind == "source" and spec.source == name:
            lf = lf.with_row_index(P.SPINE_ROW).with_columns(pl.col(P.SPINE_ROW).cast(pl.Int64))
        lazies[name] = (lf, schema)
    spine_lf = None
    if task.spine_path is not None:
        spine_cols = [*spec.columns, spec.time or "spine_time"] if spec.columns else None
        spine_lf, spine_schema = _scan(task.spine_path, task.spine_format, spine_cols)
        spine_lf = spine_lf.with_row_index(P.SPINE_ROW).with_columns(pl.col(P.SPINE_ROW).cast(pl.Int64))
    key_dtypes = [[schema[c] for c in defs.sources[n].keys[entity]] for n, (_, schema) in lazies.items() if entity in defs.sources[n].keys]
    if spine_lf is not None and spine_keys and all(c in spine_schema for c in spine_keys):
        key_dtypes.append([spine_schema[c] for c in spine_keys])
    integer = _key_mode(key_dtypes)
    frames = {}
    for name, (lf, _) in lazies.items():
        keys = defs.sources[name].keys.get(entity)
        frames[name] = _read_partition(lf, keys, integer, task.n, task.p) if keys else lf.collect(engine="in-memory")
    for name, frame in frames.items():
        src = defs.sources[name]
        if src.on_fail == "warn":  # as Project.apply_checks: unparseable time strings become null (per row)
            frames[name] = null_unparseable(frame, src, defs.timezone)
    spine_frame = _read_partition(spine_lf, spine_keys, integer, task.n, task.p) if spine_lf is not None else None
    result = B.build_frame(defs, sub, frames, spine_frame, spine_where=task.spine_path, start=task.start, end=task.end)
    return TaskResult(entity, task.p, result.frame, result.censored, result.stats)


_CHECK_POS = "_check_pos"


def _with_spine_row(defs: Definitions, set_name: str) -> Definitions:
    """The spine spec made to carry `_spine_row` through to the output (file and source spines)."""
    ts = defs.training_sets[set_name]
    spec = defs.spines[ts.spine]
    if spec.kind == "schedule":
        raise UsageError("--partitions does not support schedule spines yet", hint="run without --partitions")
    if spec.kind == "source":
        cols = spec.columns
        if cols is None:
            keys = S.spine_keys_for(defs, spec)
            time_col = S.spine_time_column(defs, spec)
            cols_list: list[str] = []
            for parts in keys.values():
                cols_list.extend(c for c in parts if c not in cols_list and c != time_col)
            cols = tuple(cols_list)
        spec = dataclasses.replace(spec, columns=(P.SPINE_ROW, *cols))
    elif spec.columns is not None:
        spec = dataclasses.replace(spec, columns=(P.SPINE_ROW, *spec.columns))
    return dataclasses.replace(defs, spines={**defs.spines, ts.spine: spec})


def _fix_observed_until(defs: Definitions, set_name: str) -> Definitions:
    """Censoring compares with the label source's latest event time over all rows: compute it once."""
    from fpipe.engine.timecols import source_time_to_utc

    ts = defs.training_sets[set_name]
    if not ts.label:
        return defs
    label = defs.labels[ts.label]
    if label.spine_column is not None or label.source is None:
        return defs
    source = defs.sources[label.source]
    if label.observed_until is not None or source.observed_until is not None or source.event_time is None:
        return defs
    lf, _ = _scan(source.path, source.format, [source.event_time])
    frame = source_time_to_utc(lf.collect(engine="in-memory"), source, source.event_time, project_tz=defs.timezone, where=display_path(source.path), out="_et")
    latest = frame.get_column("_et").max()
    if not isinstance(latest, datetime):
        return defs
    return dataclasses.replace(defs, labels={**defs.labels, label.name: dataclasses.replace(label, observed_until=latest)})


def make_tasks(
    defs: Definitions,
    set_name: str,
    source_columns: Mapping[str, Sequence[str]],
    n: int,
    *,
    spine_path: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    drop: Mapping[str, np.ndarray] | None = None,
) -> tuple[Definitions, list[Group], list[Task]]:
    ts = defs.training_sets[set_name]
    spine_spec = defs.spines[ts.spine]
    prepared = _fix_observed_until(_with_spine_row(defs, set_name), set_name)
    groups = plan_groups(defs, set_name)
    path = spine_path or spine_spec.path
    tasks = []
    for g in groups:
        needed = set(B.feature_closure(defs, g.computed))
        srcs = {defs.features[f].source for f in needed if defs.features[f].source}
        if g.with_label and ts.label and defs.labels[ts.label].source and defs.labels[ts.label].spine_column is None:
            srcs.add(defs.labels[ts.label].source)
        if spine_spec.kind == "source" and spine_spec.source:
            srcs.add(spine_spec.source)
        cols = {s: tuple(c) for s, c in source_columns.items() if s in srcs}
        drops = {s: d for s, d in (drop or {}).items() if s in srcs}
        for p in range(n):
            tasks.append(Task(prepared, set_name, g, n, p, cols, path, spine_spec.format, start, end, drops))
    return prepared, groups, tasks


def assemble(defs: Definitions, set_name: str, groups: Sequence[Group], results: Sequence[TaskResult]) -> B.BuildResult:
    """Partitions -> spine order; entity groups joined on the spine row; derived features; the BuildResult."""
    from fpipe.engine.expr import compile_expr
    from fpipe.engine.features import cast_declared

    ts = defs.training_sets[set_name]
    by_group: dict[str, list[TaskResult]] = {}
    for r in results:
        by_group.setdefault(r.group, []).append(r)
    frames = {g: P.assemble([r.frame for r in sorted(rs, key=lambda r: r.p)]) for g, rs in by_group.items()}
    label_group = next((g for g in groups if g.with_label), groups[0])
    base = frames[label_group.entity]
    others = [g for g in groups if g is not label_group]
    frame = P.join_groups(base, [frames[g.entity] for g in others], {i: g.features for i, g in enumerate(others)})
    first = by_group[label_group.entity][0]
    label_cols = [c for c in first.frame.columns if ts.label and (c == ts.label or c == f"{ts.label}_censored")]
    spine_cols = [c for c in first.frame.columns if c not in label_cols and c not in label_group.computed and c != P.SPINE_ROW]
    for name in B.feature_closure(defs, ts.features):
        feat = defs.features[name]
        if feat.is_derived and feat.expr is not None:
            frame = frame.with_columns(compile_expr(feat.expr).alias(name))
            if feat.dtype:
                frame = frame.with_columns(cast_declared(frame.get_column(name), feat.dtype))
    frame = frame.select([*spine_cols, *ts.features, *label_cols])
    cens_parts = [r.censored for r in by_group[label_group.entity] if r.censored.width]
    censored = P.assemble(cens_parts).drop(P.SPINE_ROW) if cens_parts else pl.DataFrame()
    stats = B.BuildStats()
    seen_sources: set[str] = set()
    for g in groups:
        rs = by_group[g.entity]
        new = {s for s in rs[0].stats.sources if s not in seen_sources}
        for r in rs:
            for s in new:
                st = r.stats.sources[s]
                acc = stats.sources.setdefault(s, SourceStats())
                acc.rows += st.rows
                acc.never_visible += st.never_visible
                for col, count in st.nan_as_null.items():
                    acc.nan_as_null[col] = acc.nan_as_null.get(col, 0) + count
            for stage, sec in r.stats.stage_seconds.items():
                stats.stage_seconds[stage] = stats.stage_seconds.get(stage, 0.0) + sec
        seen_sources |= new
    lab = by_group[label_group.entity]
    stats.rows_in = sum(r.stats.rows_in for r in lab)
    stats.rows_censored = sum(r.stats.rows_censored for r in lab)
    stats.spine_rows_without_time_or_key = max(sum(r.stats.spine_rows_without_time_or_key for r in by_group[g.entity]) for g in groups)
    stats.rows_out = frame.height
    if frame.height:
        stats.null_rates = {f: frame.get_column(f).null_count() / frame.height for f in ts.features}
    time_col = first.frame.columns and S.spine_time_column(defs, defs.spines[ts.spine])
    return B.BuildResult(frame, censored, stats, spine_cols, str(time_col), list(ts.features), ts.label)


Runner = Callable[[Sequence[Task]], list[TaskResult]]


def run_local(tasks: Sequence[Task], progress: B.Progress | None = None) -> list[TaskResult]:
    out = []
    for i, t in enumerate(tasks):
        out.append(run_partition(t))
        if progress:
            progress("partitions", i + 1, len(tasks))
    return out


def build_partitioned(
    defs: Definitions,
    set_name: str,
    source_columns: Mapping[str, Sequence[str]],
    n: int,
    *,
    spine_path: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    runner: Runner | None = None,
    progress: B.Progress | None = None,
    check_predicates: Mapping[str, pl.Expr | None] | None = None,
) -> B.BuildResult:
    """`check_predicates`: per source, the time-range filter under which a plain build reads (and so checks)
    it (`Project.build_training_set`; never one for a quarantining source)."""
    from fpipe.distributed.checks import check_sources

    checks, drop = check_sources(defs, source_columns, check_predicates)
    prepared, groups, tasks = make_tasks(
        defs, set_name, source_columns, n, spine_path=spine_path, start=start, end=end, drop=drop
    )
    results = runner(tasks) if runner is not None else run_local(tasks, progress)
    result = assemble(prepared, set_name, groups, results)
    result.checks = checks
    return result


def input_bytes(defs: Definitions, source_columns: Mapping[str, Sequence[str]], spine_path: str | None) -> int:
    """On-disk size of the inputs a build reads (for `--memory-limit`). An object-store URL has no size
    here (asking the store would need its client and credentials): a usage error pointing at --partitions."""
    import os

    from fpipe.io.sources import resolve_files
    from fpipe.io.urls import is_url

    paths = [defs.sources[n].path for n in source_columns]
    if spine_path:
        paths.append(spine_path)
    remote = next((p for p in paths if is_url(p)), None)
    if remote is not None:
        raise UsageError(
            f"--memory-limit chooses the partitions from the inputs' sizes on disk, and {display_path(remote)} is a URL",
            hint="pass --partitions N instead (docs/cluster.md: 1.15 GB of parquet peaked at 3.55 GB with --partitions 8)",
        )
    return sum(os.path.getsize(f) for p in paths for f in resolve_files(p)[0])
