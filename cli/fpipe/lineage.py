"""`fpipe explain`: the features of one entity at one instant, and the source rows behind each value.

The values come from `Project.compute_features` on a one-row spine -- the engine backfill runs, on the
same checked sources -- so they equal backfill's row for that key and time. The rows come from
engine/explain.py, which filters the normalised source with the feature's rules.

With a training set that has a label, the label is explained too: its value and censoring come from
`engine.build.build_frame` on the same one-row spine (a training set with no features and the label with
`censor: flag`, so a row backfill would drop still shows the value it was dropped with); its rows from
engine/explain.py `explain_label_rows` (event time only). A label read from a spine column shows that
column's value on the spine rows at this instant and key (the spine built as backfill builds it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from fpipe.engine import build as B
from fpipe.engine.explain import (
    explain_label_rows,
    explain_rows,
    key_match,
    label_window,
    listed,
    listed_label,
)
from fpipe.engine.timecols import source_time_to_utc, to_utc
from fpipe.engine.visibility import normalise_source
from fpipe.errors import Diagnostic, UsageError
from fpipe.io.sources import display_path, read_frame
from fpipe.spec.expr import parse_expr, referenced_names
from fpipe.spec.model import FeatureSpec, LabelSpec, SourceSpec, SpineSpec, TrainingSetSpec

if TYPE_CHECKING:
    from fpipe.project import Project

TIME_COL = "_at"


@dataclass
class FeatureExplanation:
    name: str
    value: Any
    spec: FeatureSpec
    rows: pl.DataFrame | None = None  # listed source rows with `_status` (None for derived features)
    counts: dict[str, int] = field(default_factory=dict)  # rows per status
    depends_on: list[str] = field(default_factory=list)  # derived features


LABEL_NOTE = "labels are ground truth over event time: availability does not matter"


@dataclass
class LabelExplanation:
    name: str
    spec: LabelSpec
    value: Any = None  # after `expr`, as backfill writes it (also for a row backfill drops as censored)
    censored: bool | None = None
    action: str | None = None  # what backfill does with the row: "kept", "dropped", "flagged (<label>_censored = true)"
    window: tuple[datetime, datetime] | None = None  # (t + gap, t + gap + horizon)
    inclusive: bool = False  # window (lo, hi] instead of [lo, hi)
    observed_until: datetime | None = None  # the label source's observed end (censoring)
    rows: pl.DataFrame | None = None  # listed label-source rows with `_status`
    counts: dict[str, int] = field(default_factory=dict)  # rows per status
    spine_values: list[Any] | None = None  # a label read from a spine column: its values at this instant and key
    skipped: str | None = None  # why the label is not explained


@dataclass
class Explanation:
    at: datetime  # UTC
    keys: dict[str, Any]
    training_set: str | None
    features: list[FeatureExplanation]
    skipped: dict[str, str] = field(default_factory=dict)  # feature -> why it is not explained
    label: LabelExplanation | None = None  # the training set's label, when it has one

    def values(self) -> dict[str, Any]:
        return {f.name: f.value for f in self.features}


def parse_keys(pairs: Sequence[str], project: Project) -> dict[str, str]:
    """`user_id=42` (an entity's key column) or `user=42` (an entity with one key) -> {key column: text}."""
    defs = project.defs
    out: dict[str, str] = {}
    known = {k for e in defs.entities.values() for k in e.keys}
    for pair in pairs:
        if "=" not in pair:
            raise UsageError(f"--key: expected COLUMN=VALUE, got '{pair}'", hint="e.g. --key user_id=42")
        name, value = pair.split("=", 1)
        name = name.strip()
        if name not in known and name in defs.entities and len(defs.entities[name].keys) == 1:
            name = defs.entities[name].keys[0]
        if name not in known:
            from fpipe.spec.suggest import did_you_mean, one_of

            raise UsageError(f"--key: '{name}' is not an entity key", hint=did_you_mean(name, known) or one_of(sorted(known)))
        out[name] = value
    return out


def parse_instant(text: str, timezone: str) -> datetime:
    """ISO 8601; naive values are read in the project's timezone (date-only: midnight there)."""
    frame = pl.DataFrame({"at": [text]})
    try:
        value = to_utc(frame, "at", tz=timezone, where="--at").get_column("at")[0]
    except Exception:
        value = None
    if value is None:
        raise UsageError(f"--at: cannot parse '{text}' as a date or time", hint="use ISO 8601, e.g. 2024-03-01T12:00:00Z")
    assert isinstance(value, datetime)
    return value


def _cast_key(value: str, dtype: pl.DataType, column: str) -> Any:
    cast = pl.Series([value.strip()]).cast(dtype, strict=False)[0]
    if cast is None:
        raise UsageError(f"--key: '{value}' is not a valid {dtype} for '{column}'")
    return cast


def explain_features(
    project: Project,
    at: str | datetime,
    keys: Mapping[str, str],
    *,
    training_set: str | None = None,
    features: Sequence[str] | None = None,
    limit: int | None = 50,
    sources: Mapping[str, pl.DataFrame] | None = None,
) -> Explanation:
    """`sources`: frames already read and checked (`Project.source_frames_for`), to explain many rows fast."""
    defs = project.defs
    if features:
        unknown = [f for f in features if f not in defs.features]
        if unknown:
            from fpipe.spec.suggest import did_you_mean, one_of

            raise UsageError(f"unknown feature '{unknown[0]}'", hint=did_you_mean(unknown[0], defs.features) or one_of(defs.features))
        names = list(features)
    elif training_set is not None:
        project.training_set_inputs(training_set)  # unknown set -> one clear error
        names = list(defs.training_sets[training_set].features)
    else:
        names = list(defs.features)
    t = at if isinstance(at, datetime) else parse_instant(at, defs.timezone)
    # which features can be explained with the keys given
    ok: list[str] = []
    skipped: dict[str, str] = {}
    for n in names:
        closure = B.feature_closure(defs, [n])
        ents = {defs.features[d].entity for d in closure if not defs.features[d].is_derived}
        missing = [k for e in ents if e for k in defs.entities[e].keys if k not in keys]
        if missing:
            skipped[n] = f"needs --key {missing[0]}=..."
        else:
            ok.append(n)
    if features and skipped:
        name, why = next(iter(skipped.items()))
        raise UsageError(f"feature '{name}' {why}")
    if not ok:
        raise UsageError(
            "no feature can be explained with these keys",
            hint="pass the entity keys the features use, e.g. " + ", ".join(sorted(set(skipped.values()))[:3]),
        )
    label_name = defs.training_sets[training_set].label if training_set is not None else None
    label_spec = defs.labels[label_name] if label_name else None
    if label_spec is not None and label_spec.spine_column is None:
        assert label_spec.entity is not None
        missing_label_keys = [k for k in defs.entities[label_spec.entity].keys if k not in keys]
    else:
        missing_label_keys = []
    with_label = label_spec is not None and label_spec.spine_column is None and not missing_label_keys
    frames = dict(sources) if sources is not None else project.source_frames_for(ok, labels=[label_spec.name] if with_label and label_spec else ())
    needed = B.feature_closure(defs, ok)
    base = [defs.features[n] for n in needed if not defs.features[n].is_derived]
    entities = {f.entity for f in base if f.entity}
    # key values typed like the source columns they are compared with
    typed: dict[str, Any] = {}
    for f in base:
        assert f.source is not None and f.entity is not None
        for ecol, scol in zip(defs.entities[f.entity].keys, defs.sources[f.source].keys[f.entity], strict=True):
            if ecol not in typed:
                typed[ecol] = _cast_key(keys[ecol], frames[f.source].schema[scol], ecol)
    spine = pl.DataFrame({TIME_COL: [t], **{k: [v] for k, v in typed.items()}})
    keymap = {e: tuple(defs.entities[e].keys) for e in entities}
    values = project.compute_features(needed, spine, TIME_COL, keymap, sources=frames, where="--at/--key").row(0, named=True)
    normalised: dict[tuple[str, str], pl.DataFrame] = {}
    out: list[FeatureExplanation] = []
    for n in needed:
        feat = defs.features[n]
        value = values[n]
        if feat.is_derived:
            assert feat.expr is not None
            deps = [d for d, _ in referenced_names(parse_expr(feat.expr))]
            out.append(FeatureExplanation(n, value, feat, None, {}, deps))
            continue
        assert feat.source is not None and feat.entity is not None
        src = defs.sources[feat.source]
        kv = [typed[c] for c in defs.entities[feat.entity].keys]
        if (feat.source, feat.entity) not in normalised:
            normalised[(feat.source, feat.entity)] = _key_rows(frames[feat.source], src, feat.entity, kv, defs.timezone)
        rows, counts = explain_rows(defs, feat, normalised[(feat.source, feat.entity)], t, kv)
        cols = [*src.keys[feat.entity], *(c for c in (src.event_time, src.available_time, feat.column) if c)]
        if feat.where:
            cols.extend(d for d, _ in referenced_names(parse_expr(feat.where)))
        out.append(FeatureExplanation(n, value, feat, listed(rows, cols, limit), counts))
    order = {n: i for i, n in enumerate(names)}
    out.sort(key=lambda f: order.get(f.name, -1))  # dependencies not asked for first, then the order asked
    lab: LabelExplanation | None = None
    if label_spec is not None and training_set is not None:
        if label_spec.spine_column is not None:
            lab = _spine_label(project, training_set, label_spec, t, keys)
        elif missing_label_keys:
            lab = LabelExplanation(label_spec.name, label_spec, skipped=f"needs --key {missing_label_keys[0]}=...")
        else:
            lab = _explain_label(project, label_spec, t, keys, typed, frames, limit)
    return Explanation(t, typed, training_set, out, skipped, lab)


def _explain_label(
    project: Project,
    label: LabelSpec,
    t: datetime,
    keys: Mapping[str, str],
    typed: Mapping[str, Any],
    frames: Mapping[str, pl.DataFrame],
    limit: int | None,
) -> LabelExplanation:
    """The label of one spine row: value and censoring from `build_frame` on a one-row spine, and its rows."""
    defs = project.defs
    assert label.source is not None and label.entity is not None
    src = defs.sources[label.source]
    frame = frames.get(label.source)
    needed = project.source_columns(label.source, [], [label])
    if frame is None or any(c not in frame.columns for c in needed):
        frame = project.source_frames_for([], labels=[label.name])[label.source]
    ecols = defs.entities[label.entity].keys
    kv = [typed[c] if c in typed else _cast_key(keys[c], frame.schema[s], c) for c, s in zip(ecols, src.keys[label.entity], strict=True)]
    spine = pl.DataFrame({TIME_COL: [t], **{c: [v] for c, v in zip(ecols, kv, strict=True)}})
    # the training set reduced to its label, on this one row, through the builder backfill runs; `censor: flag`
    # so that a row backfill drops as censored still gives the value and the flag
    name = "_explain"
    flagged = dataclasses.replace(label, censor="flag")
    one = dataclasses.replace(
        defs,
        labels={**defs.labels, label.name: flagged},
        spines={**defs.spines, name: SpineSpec(name=name, path="<explain>", time=TIME_COL, keys={label.entity: tuple(ecols)})},
        training_sets={**defs.training_sets, name: TrainingSetSpec(name=name, spine=name, features=(), label=label.name)},
    )
    built = B.build_frame(one, name, {label.source: frame}, spine, spine_where="--at/--key").frame.row(0, named=True)
    censored = bool(built[f"{label.name}_censored"])
    action = "kept" if not censored else "dropped" if label.censor == "drop" else f"flagged ({label.name}_censored = true)"
    norm = _key_rows(frame, src, label.entity, kv, defs.timezone)
    rows, counts = explain_label_rows(defs, label, norm, t, kv)
    cols = [*src.keys[label.entity], *(c for c in (src.event_time, label.column) if c)]
    if label.where:
        cols.extend(d for d, _ in referenced_names(parse_expr(label.where)))
    lo, hi, inclusive = label_window(defs, label, t)
    observed = label.observed_until or src.observed_until
    if observed is None:
        assert src.event_time is not None  # as engine/finish.py censor_mask: the whole source's latest event time
        ets = source_time_to_utc(frame.select(src.event_time), src, src.event_time, project_tz=defs.timezone,
                                 where=display_path(src.path), out="_et")
        observed = ets.get_column("_et").max()  # type: ignore[assignment]
    return LabelExplanation(
        label.name, label, built[label.name], censored, action, (lo, hi), inclusive, observed, listed_label(rows, cols, limit), counts
    )


def _spine_label(project: Project, set_name: str, label: LabelSpec, t: datetime, keys: Mapping[str, str]) -> LabelExplanation:
    """A label read from a spine column: its value on the spine rows at `t` with these keys, the spine built by
    `build_frame` as backfill builds it (the training set without its features)."""
    assert label.spine_column is not None
    defs = project.defs
    ts = defs.training_sets[set_name]
    spec = defs.spines[ts.spine]
    if spec.kind == "schedule":
        return LabelExplanation(label.name, label, skipped=f"spine column '{label.spine_column}' of a schedule spine")
    spine_frame = None
    frames: dict[str, pl.DataFrame] = {}
    if spec.path is not None:
        spine_frame = read_frame(spec.path, spec.columns and [*spec.columns, spec.time or "spine_time"], spec.format, what="spine")
    else:
        assert spec.source is not None
        _, _, cols = project.training_set_inputs(set_name)
        frames, _ = project.apply_checks({spec.source: project.read_source(spec.source, cols[spec.source])}, full_rows=False)
    only = dataclasses.replace(ts, features=())
    result = B.build_frame(defs, only, frames, spine_frame, spine_where=display_path(spec.path) if spec.path else None)
    built = result.frame
    if built.height:  # (an empty spine has nothing to match)
        built = built.filter(pl.col(result.time_column) == pl.lit(t).cast(built.schema[result.time_column]))
    for c, v in keys.items():
        if c in built.columns:
            built = built.filter(key_match(built, [c], [_cast_key(v, built.schema[c], c)]))
    return LabelExplanation(label.name, label, spine_values=built.get_column(label.name).to_list())


def _key_rows(frame: pl.DataFrame, src: SourceSpec, entity: str, values: Sequence[Any], tz: str) -> pl.DataFrame:
    """The normalised rows of one key; `_pos` stays the position in the whole source."""
    raw = frame.with_row_index("_p0").filter(key_match(frame, src.keys[entity], values))
    norm, _ = normalise_source(raw.drop("_p0"), src, tz, where=display_path(src.path))
    return norm.with_columns(raw.get_column("_p0").alias("_pos"))


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, timedelta):
        return v.total_seconds()
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def explanation_json(ex: Explanation) -> dict[str, Any]:
    from fpipe.spec.durations import format_duration

    feats = []
    for f in ex.features:
        s = f.spec
        item: dict[str, Any] = {"feature": f.name, "value": _jsonable(f.value)}
        if f.rows is None:
            item.update({"expr": s.expr, "depends_on": f.depends_on})
        else:
            item.update(
                {
                    "source": s.source,
                    "agg": s.agg,
                    "column": s.column,
                    "window": format_duration(s.window) if s.window else None,
                    "ttl": format_duration(s.ttl) if s.ttl else None,
                    "where": s.where,
                    "counts": f.counts,
                    "rows": [{k: _jsonable(v) for k, v in r.items()} for r in f.rows.iter_rows(named=True)],
                }
            )
        feats.append(item)
    out: dict[str, Any] = {
        "at": ex.at.isoformat(),
        "keys": {k: _jsonable(v) for k, v in ex.keys.items()},
        "training_set": ex.training_set,
        "features": feats,
        "skipped": ex.skipped,
    }
    if ex.label is not None:  # only a training set with a label has the key
        out["label"] = label_json(ex.label)
    return out


def label_json(lab: LabelExplanation) -> dict[str, Any]:
    from fpipe.spec.durations import format_duration

    s = lab.spec
    if s.spine_column is not None:
        return {"label": lab.name, "spine_column": s.spine_column, "spine_values": [_jsonable(v) for v in lab.spine_values or []],
                "skipped": lab.skipped}
    item: dict[str, Any] = {"label": lab.name, "value": _jsonable(lab.value)}
    if lab.skipped is not None:
        item["skipped"] = lab.skipped
        return item
    assert lab.window is not None and s.horizon is not None
    item.update(
        {
            "source": s.source,
            "agg": s.agg,
            "column": s.column,
            "horizon": format_duration(s.horizon),
            "gap": format_duration(s.gap),
            "where": s.where,
            "expr": s.expr,
            "window": {"start": lab.window[0].isoformat(), "end": lab.window[1].isoformat(), "closed": "right" if lab.inclusive else "left"},
            "censored": lab.censored,
            "censor": s.censor,
            "backfill": lab.action,
            "observed_until": _jsonable(lab.observed_until),
            "note": LABEL_NOTE,
            "counts": lab.counts,
            "rows": [{k: _jsonable(v) for k, v in r.items()} for r in lab.rows.iter_rows(named=True)] if lab.rows is not None else [],
        }
    )
    return item


def diagnostics_for_skipped(ex: Explanation) -> list[Diagnostic]:
    return [Diagnostic(f"feature '{n}' not explained: {why}", severity="note") for n, why in ex.skipped.items()]
