"""The one core object behind every front end: definitions + their data.

`Project.load(defs_dir)` parses the definitions; `build_training_set` reads exactly the columns each
source needs (io/), checks their types, and runs the engine (engine/build.py). Skew reports, training,
explain and drift all go through here, so they compute features exactly as backfill does.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import platform
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from fpipe import __version__
from fpipe.engine import build as B
from fpipe.engine.checks import ChecksOutcome, check_columns
from fpipe.errors import DataError, Diagnostic, UsageError
from fpipe.io.sources import display_path, fingerprint, read_frame
from fpipe.io.urls import identity_url, is_url
from fpipe.spec.expr import parse_expr, referenced_names
from fpipe.spec.model import Cutoff, Definitions, FeatureSpec, LabelSpec, SourceSpec

NUMERIC_AGGS = {"sum", "mean", "std", "var"}


def _json_default(value: Any) -> Any:
    if isinstance(value, timedelta):
        return f"{value // timedelta(microseconds=1)}us"
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    return str(value)


def spec_hash(obj: Any) -> str:
    """A stable hash of a spec object's semantic content (locations excluded). An input `path` that is a URL
    counts without a presigned URL's credential (`io.urls.identity_url`): re-signing it changes nothing."""

    def strip(o: Any) -> Any:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return {
                f.name: identity_url(v) if f.name == "path" and isinstance(v, str) and is_url(v) else strip(v)
                for f in dataclasses.fields(o) if f.name != "loc" for v in [getattr(o, f.name)]
            }
        if isinstance(o, Mapping):
            return {str(k): strip(v) for k, v in sorted(o.items(), key=lambda kv: str(kv[0]))}
        if isinstance(o, list | tuple):
            return [strip(v) for v in o]
        return o

    text = json.dumps(strip(obj), sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Project:
    def __init__(self, defs: Definitions) -> None:
        self.defs = defs
        self._fingerprints: dict[str, Future[list[dict[str, object]]]] = {}

    @classmethod
    def load(cls, defs_dir: str | Path) -> Project:
        from fpipe.spec.loader import load_definitions

        return cls(load_definitions(defs_dir))

    # ---------- columns each source must provide ----------
    def _expr_columns(self, text: str | None) -> list[str]:
        return [n for n, _ in referenced_names(parse_expr(text))] if text else []

    def source_columns(self, source: str, feats: Iterable[FeatureSpec], labels: Iterable[LabelSpec], extra: Iterable[str] = ()) -> list[str]:
        src = self.defs.sources[source]
        cols: list[str] = []
        specs: list[FeatureSpec | LabelSpec] = [*feats, *labels]
        for c in [*(src.event_time,), src.available_time, *(c for parts in src.keys.values() for c in parts)]:
            if c:
                cols.append(c)
        for f in specs:
            if f.source == source:
                if f.column:
                    cols.append(f.column)
                cols.extend(self._expr_columns(f.where))
        cols.extend(extra)
        cols.extend(check_columns(src))  # row checks (issue 7) read their columns too
        return list(dict.fromkeys(cols))

    def read_source(
        self, name: str, columns: Sequence[str] | None = None,
        predicate: pl.Expr | Callable[[pl.Schema], pl.Expr | None] | None = None,
    ) -> pl.DataFrame:
        src = self.defs.sources[name]
        return read_frame(src.path, columns, src.format, what=f"source '{name}'", predicate=predicate)

    # ---------- time-range pushdown (--start/--end) ----------
    def time_bounds(
        self, name: str, start: datetime | None, end: datetime | None
    ) -> dict[str, tuple[datetime | None, datetime | None]]:
        """Per source, the event-time range a training set restricted to [start, end) can read.

        A bound is None when some use of the source is unbounded on that side (a feature without a window
        or ttl needs all history). Only an optimisation: each bound is widened by a day (DST, local time).
        """
        defs = self.defs
        ts = defs.training_sets[name]
        needed = B.feature_closure(defs, ts.features)
        uses: dict[str, list[tuple[datetime | None, datetime | None]]] = {}
        day = timedelta(days=1)

        def add(src: str | None, lo: datetime | None, hi: datetime | None) -> None:
            if src is not None and defs.sources[src].event_time is not None:
                uses.setdefault(src, []).append((lo, hi))

        for n in needed:
            f = defs.features[n]
            if f.is_derived:
                continue
            reach = (f.window + (f.hop or timedelta(0))) if f.window is not None else f.ttl if f.agg == "latest" else None
            add(f.source, start - reach if (start and reach is not None) else None, end)
        if ts.label and defs.labels[ts.label].spine_column is None:
            lab = defs.labels[ts.label]
            assert lab.horizon is not None
            add(lab.source, start + lab.gap if start else None, end + lab.gap + lab.horizon if end else None)
        spine = defs.spines[ts.spine]
        if spine.kind == "source":
            add(spine.source, start - spine.offset if start else None, end - spine.offset if end else None)
        elif spine.kind == "schedule":
            add(spine.entities_from, None, end)
        out: dict[str, tuple[datetime | None, datetime | None]] = {}
        for src, ranges in uses.items():
            los = [lo for lo, _ in ranges]
            his = [hi for _, hi in ranges]
            lo = None if any(v is None for v in los) else min(v for v in los if v is not None) - day
            hi = None if any(v is None for v in his) else max(v for v in his if v is not None) + day
            out[src] = (lo, hi)
        return out

    def _bounds_predicate(
        self, name: str, bounds: tuple[datetime | None, datetime | None] | None
    ) -> pl.Expr | None:
        """`_bounds_filter` for a source not read here (partitioned builds): its schema from a scan."""
        src = self.defs.sources[name]
        if bounds is None or src.event_time is None or bounds == (None, None):
            return None
        from fpipe.io.sources import scan

        lf, _ = scan(src.path, src.format)
        return self._bounds_filter(name, bounds, lf.collect_schema())

    def _bounds_filter(
        self, name: str, bounds: tuple[datetime | None, datetime | None] | None, schema: pl.Schema
    ) -> pl.Expr | None:
        """A scan filter on the raw event-time column, when it is an aware datetime (else no pushdown)."""
        src = self.defs.sources[name]
        if bounds is None or src.event_time is None or bounds == (None, None):
            return None
        dtype = schema.get(src.event_time)
        if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
            return None
        col = pl.col(src.event_time)
        lo, hi = bounds
        cond = pl.lit(True)
        if lo is not None:
            cond = cond & (col >= pl.lit(lo).dt.convert_time_zone(dtype.time_zone))
        if hi is not None:
            cond = cond & (col <= pl.lit(hi).dt.convert_time_zone(dtype.time_zone))
        return cond | col.is_null()

    def _pin_observed_until(self, name: str, bounds: Mapping[str, Any]) -> Definitions:
        """Reading a time range must not move label censoring: pin the label source's observed end."""
        defs = self.defs
        ts = defs.training_sets[name]
        if not ts.label:
            return defs
        lab = defs.labels[ts.label]
        if lab.spine_column is not None or lab.observed_until or lab.source is None or lab.source not in bounds:
            return defs
        src = defs.sources[lab.source]
        if src.observed_until is not None:
            return defs
        from fpipe.engine.timecols import source_time_to_utc

        assert src.event_time is not None
        full = self.read_source(lab.source, [src.event_time])
        full = source_time_to_utc(full, src, src.event_time, project_tz=defs.timezone, where=display_path(src.path), out="_et")
        max_et = full.get_column("_et").max()
        if max_et is None:
            return defs
        sources = dict(defs.sources)
        sources[lab.source] = dataclasses.replace(src, observed_until=max_et)  # type: ignore[arg-type]
        return dataclasses.replace(defs, sources=sources)

    def _quarantines(self, name: str) -> bool:
        """A quarantining source is read whole: its checks (`unique`) and row positions are over all its rows."""
        src = self.defs.sources[name]
        return bool(src.checks) and src.on_fail == "quarantine"

    def apply_checks(
        self, frames: Mapping[str, pl.DataFrame], *, full_rows: bool = True
    ) -> tuple[dict[str, pl.DataFrame], ChecksOutcome]:
        """Row checks by each source's `on_fail` (engine/checks.py): the frames to use and what was set aside
        (with every source column when `full_rows`; callers that drop the quarantine skip that re-read)."""
        from fpipe.dataquality import with_all_columns
        from fpipe.engine.checks import apply_checks

        where = {n: display_path(self.defs.sources[n].path) for n in frames}
        clean, outcome = apply_checks(self.defs.sources, frames, self.defs.timezone, where)
        return clean, with_all_columns(self, outcome) if full_rows else outcome

    def _check_types(self, frames: Mapping[str, pl.DataFrame], feats: Iterable[FeatureSpec], labels: Iterable[LabelSpec]) -> None:
        specs: list[FeatureSpec | LabelSpec] = [*feats, *labels]
        for f in specs:
            if f.source is None or f.column is None or f.source not in frames:
                continue
            dtype = frames[f.source].schema.get(f.column)
            if dtype is None:
                continue
            if f.agg in NUMERIC_AGGS and not (dtype.is_numeric() or dtype == pl.Boolean or dtype == pl.Null):
                kind = "feature" if isinstance(f, FeatureSpec) else "label"
                raise DataError(
                    Diagnostic(
                        f"column '{f.column}' is {dtype}, but {kind} '{f.name}' takes its {f.agg}",
                        file=display_path(self.defs.sources[f.source].path),
                        hint=f"cast '{f.column}' to a number upstream, or use an aggregation that works on {dtype} (count, count_distinct, latest, min, max)",
                    )
                )

    # ---------- training sets ----------
    def training_set_inputs(self, name: str) -> tuple[list[FeatureSpec], list[LabelSpec], dict[str, list[str]]]:
        defs = self.defs
        if name not in defs.training_sets:
            from fpipe.spec.suggest import did_you_mean, one_of

            raise UsageError(
                Diagnostic(f"unknown training set '{name}'", hint=did_you_mean(name, defs.training_sets) or one_of(defs.training_sets))
            )
        ts = defs.training_sets[name]
        needed = B.feature_closure(defs, ts.features)
        feats = [defs.features[n] for n in needed if not defs.features[n].is_derived]
        label = defs.labels[ts.label] if ts.label else None
        labels = [label] if label is not None and label.spine_column is None else []
        spine = defs.spines[ts.spine]
        extra: dict[str, list[str]] = {}
        if spine.kind == "source" and spine.source:
            extra[spine.source] = [*(spine.columns or ()), *self._expr_columns(spine.where)]
        if spine.kind == "schedule" and spine.entities_from:
            extra.setdefault(spine.entities_from, [])
        names = list(dict.fromkeys([*(f.source for f in feats if f.source), *(lb.source for lb in labels if lb.source), *extra]))
        cols = {n: self.source_columns(n, feats, labels, extra.get(n, ())) for n in names}
        return feats, labels, cols

    def read_inputs(self, cols: Mapping[str, Sequence[str]]) -> dict[str, pl.DataFrame]:
        return {n: self.read_source(n, c) for n, c in cols.items()}

    def build_training_set(
        self,
        name: str,
        *,
        spine_path: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        progress: B.Progress | None = None,
        partitions: int | None = None,
        runner: Any = None,
    ) -> B.BuildResult:
        feats, labels, cols = self.training_set_inputs(name)
        ts = self.defs.training_sets[name]
        if partitions is not None or runner is not None:  # out-of-core / Dask: fpipe/distributed/
            from fpipe.distributed.partitioned import build_partitioned

            # row checks run on the rows a plain build reads: a time range limits all but quarantining sources
            bounds = self.time_bounds(name, start, end) if (start or end) else {}
            predicates = {n: None if self._quarantines(n) else self._bounds_predicate(n, bounds=bounds.get(n)) for n in cols}
            return build_partitioned(
                self.defs, name, cols, partitions or 1, spine_path=spine_path, start=start, end=end,
                runner=runner, progress=progress, check_predicates=predicates,
            )
        spine_spec = self.defs.spines[ts.spine]
        spine_frame = None
        spine_where = None
        path = spine_path or spine_spec.path
        if path is not None:
            spine_frame = read_frame(path, spine_spec.columns and [*spine_spec.columns, spine_spec.time or "spine_time"], spine_spec.format, what="spine")
            spine_where = display_path(path)
            if spine_frame.height == 0 and spine_path:
                raise DataError(Diagnostic("spine file has no rows", file=spine_where))
        if progress:
            progress("read", 0, len(cols))
        frames = {}
        bounds = self.time_bounds(name, start, end) if (start or end) else {}
        defs = self.defs
        for i, (n, c) in enumerate(cols.items()):
            # the filter is built from the schema `read_frame` reads anyway (no second scan of the files)
            pred = None if self._quarantines(n) else functools.partial(self._bounds_filter, n, bounds.get(n))
            frames[n] = self.read_source(n, c, predicate=pred)
            if progress:
                progress("read", i + 1, len(cols))
        if bounds:
            defs = self._pin_observed_until(name, bounds)
        frames, checks = self.apply_checks(frames)
        self._check_types(frames, feats, labels)
        result = B.build_frame(
            defs, name, frames, spine_frame, spine_where=spine_where, start=start, end=end, progress=progress
        )
        result.checks = checks
        return result

    # ---------- features at arbitrary instants (skew, explain) ----------
    def with_overrides(
        self, source_overrides: Mapping[str, Mapping[str, Any]] | None = None, cutoff: str | Cutoff | None = None
    ) -> Project:
        """A copy whose sources (e.g. `{"transactions": {"lag": timedelta(seconds=30)}}`) or cutoff differ."""
        defs = self.defs
        if source_overrides:
            sources = dict(defs.sources)
            for name, changes in source_overrides.items():
                changes = dict(changes)
                if "lag" in changes and sources[name].available_time is not None:
                    # a lag on a source with an available_time column delays availability further
                    changes.setdefault("available_time", sources[name].available_time)
                sources[name] = dataclasses.replace(sources[name], **changes)
            defs = dataclasses.replace(defs, sources=sources)
        if cutoff is not None:
            c = Cutoff(cutoff)
            defs = dataclasses.replace(
                defs,
                cutoff=c,
                sources={n: dataclasses.replace(s, cutoff=None) for n, s in defs.sources.items()},
                features={n: dataclasses.replace(f, cutoff=None) for n, f in defs.features.items()},
            )
        return Project(defs)

    def compute_features(
        self,
        feature_names: Sequence[str],
        spine: pl.DataFrame,
        time_col: str,
        keys: Mapping[str, tuple[str, ...]],
        *,
        source_overrides: Mapping[str, Mapping[str, Any]] | None = None,
        cutoff: str | Cutoff | None = None,
        where: str = "<spine>",
        sources: Mapping[str, pl.DataFrame] | None = None,
    ) -> pl.DataFrame:
        """The spine's columns (minus any named like a feature), then one column per feature."""
        project = self.with_overrides(source_overrides, cutoff) if (source_overrides or cutoff) else self
        defs = project.defs
        unknown = [f for f in feature_names if f not in defs.features]
        if unknown:
            raise UsageError(f"unknown feature '{unknown[0]}'")
        needed = B.feature_closure(defs, feature_names)
        feats = [defs.features[n] for n in needed if not defs.features[n].is_derived]
        if sources is None:
            names = list(dict.fromkeys(f.source for f in feats if f.source))
            sources = {n: project.read_source(n, project.source_columns(n, feats, [])) for n in names}
            sources, _ = project.apply_checks(sources, full_rows=False)
            project._check_types(sources, feats, [])
        base = spine.drop([c for c in spine.columns if c in feature_names])
        return B.compute_features(defs, feature_names, base, time_col, keys, sources, where=where)

    def source_frames_for(self, feature_names: Sequence[str], labels: Sequence[str] = ()) -> dict[str, pl.DataFrame]:
        """Read once the sources a set of features (and labels read from a source: `explain`) needs (reuse
        across many compute_features calls)."""
        needed = B.feature_closure(self.defs, feature_names)
        feats = [self.defs.features[n] for n in needed if not self.defs.features[n].is_derived]
        labs = [self.defs.labels[n] for n in labels if self.defs.labels[n].source and self.defs.labels[n].spine_column is None]
        names = list(dict.fromkeys([*(f.source for f in feats if f.source), *(lb.source for lb in labs if lb.source)]))
        frames = {n: self.read_source(n, self.source_columns(n, feats, labs)) for n in names}
        frames, _ = self.apply_checks(frames, full_rows=False)
        self._check_types(frames, feats, labs)
        return frames

    def spine_time_column(self, set_name: str) -> str:
        from fpipe.engine.spine import spine_time_column

        return spine_time_column(self.defs, self.defs.spines[self.defs.training_sets[set_name].spine])

    # ---------- manifest ----------
    def fingerprint_inputs_in_background(self, name: str) -> None:
        """Start hashing the training set's input files on a thread (hashlib releases the GIL), so that the
        manifest does not add their read time to a backfill; `manifest` waits for the result. A daemon
        thread, so a failed or interrupted build exits at once instead of waiting for the hashing."""
        import threading

        _, _, cols = self.training_set_inputs(name)
        paths = [p for p in dict.fromkeys(self.defs.sources[n].path for n in cols) if p not in self._fingerprints]
        futures: dict[str, Future[list[dict[str, object]]]] = {p: Future() for p in paths}
        self._fingerprints.update(futures)

        def work() -> None:
            for path, future in futures.items():
                try:
                    future.set_result(fingerprint(path))
                except BaseException as exc:  # re-raised by `manifest`, in the main thread
                    future.set_exception(exc)

        threading.Thread(target=work, name="fpipe-fingerprint", daemon=True).start()

    def definition_hash(self, name: str) -> str:
        """The hash of everything training set `name` is defined by (`spec_hash`): its spine, features,
        label and sources, the time zone and the cutoff."""
        defs = self.defs
        ts = defs.training_sets[name]
        _, _, cols = self.training_set_inputs(name)
        return spec_hash({
            "timezone": defs.timezone,
            "cutoff": defs.cutoff.value,
            "training_set": ts,
            "spine": defs.spines[ts.spine],
            "features": [defs.features[n] for n in B.feature_closure(defs, ts.features)],
            "label": defs.labels[ts.label] if ts.label else None,
            "sources": [defs.sources[n] for n in cols],
        })

    def manifest(self, name: str, result: B.BuildResult, output: str | None, command: Sequence[str] | None = None) -> dict[str, Any]:
        defs = self.defs
        ts = defs.training_sets[name]
        _, _, cols = self.training_set_inputs(name)
        inputs: dict[str, Any] = {}
        for n in cols:
            src: SourceSpec = defs.sources[n]
            pending = self._fingerprints.pop(src.path, None)
            files = pending.result() if pending is not None else fingerprint(src.path)
            inputs[n] = {"path": display_path(src.path), "columns": list(cols[n]), "files": files}
        st = result.stats
        return {
            "fpipe_manifest": 2,  # 2: input digests are "sha256" (were "blake2b")
            "training_set": name,
            "output": output,
            "definition_hash": self.definition_hash(name),
            "feature_definition_hashes": {n: spec_hash([defs.features[d] for d in B.feature_closure(defs, [n])]) for n in ts.features},
            "spine_columns": result.spine_columns,
            "spine_time_column": result.time_column,
            "features": result.features,
            "label": result.label,
            "dtypes": {c: str(t) for c, t in result.frame.schema.items()},
            "rows": {
                "spine": st.rows_in,
                "output": st.rows_out,
                "censored": st.rows_censored,
                "spine_rows_without_time_or_key": st.spine_rows_without_time_or_key,
            },
            "sources": {
                n: {"rows": s.rows, "never_visible": s.never_visible, "nan_read_as_null": s.nan_as_null} for n, s in st.sources.items()
            },
            "inputs": inputs,
            "null_rates": st.null_rates,
            "stage_seconds": {k: round(v, 3) for k, v in st.stage_seconds.items()},
            "versions": {
                "fpipe": __version__,
                "polars": pl.__version__,
                "python": platform.python_version(),
            },
            "command": list(command if command is not None else sys.argv),
        }


def check_data(defs: Definitions) -> list[Diagnostic]:
    """`fpipe validate --data` (issue 7): files, columns, types, row checks, late and out-of-order rows.

    Returns diagnostics (errors for failing checks of `on_fail: fail` sources); raises DataError for
    unreadable or missing data. The work is in fpipe/dataquality.py."""
    from fpipe.dataquality import check_data as run

    return run(Project(defs))
