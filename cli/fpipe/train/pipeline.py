"""What the train / score / models commands call: find the model definition, get its training set (built by
the project, or a backfill output with its manifest), train + export, score, and compare versions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np

from fpipe.errors import DataError, DefinitionError, Diagnostic, UsageError
from fpipe.spec.model import Definitions, ModelSpec
from fpipe.spec.suggest import did_you_mean
from fpipe.train import metrics as M

if TYPE_CHECKING:
    import polars as pl

    from fpipe.train.trainer import TrainedModel


def read_table(path: Path | str) -> pl.DataFrame:
    """A feature table by its suffix (parquet, csv, ndjson): a local path, or an object-store URL (`s3://`,
    `gs://`, `az://`, `https://`) that Polars reads with the credentials of the environment."""
    import polars as pl

    from fpipe.io.sources import read_error
    from fpipe.io.urls import is_url, shown_url
    from fpipe.io.writers import TABLE_FORMATS

    remote = is_url(path)
    shown = shown_url(str(path)) if remote else str(path)  # never print a presigned URL's credential
    if not remote and not Path(path).exists():
        raise DataError(Diagnostic("no such file", file=shown, hint="check the path"))
    suffix = Path(urlparse(str(path)).path if remote else path).suffix.lower()
    fmt = TABLE_FORMATS.get(suffix)
    if fmt is None:
        raise DataError(Diagnostic(f"unknown file type '{suffix}'", file=shown, hint="use .parquet, .csv or .ndjson"))
    try:
        if fmt == "parquet":
            return pl.read_parquet(path)
        if fmt == "csv":
            return pl.read_csv(path, try_parse_dates=True)
        return pl.read_ndjson(path)
    except Exception as exc:  # polars raises many kinds for unreadable files (a URL: FileNotFoundError, OSError)
        if remote:  # its first line, without the URL's query
            raise read_error(exc, str(path), "the file") from None
        raise DataError(Diagnostic(f"cannot read the file: {exc}", file=shown)) from None


def read_manifest(path: Path | str) -> dict[str, Any] | None:
    """The manifest a backfill writes beside its output: `<out>.manifest.json` (local files only: see
    `score --manifest` for a table at a URL)."""
    path = Path(path)
    for candidate in (Path(f"{path}.manifest.json"), path.with_suffix(".manifest.json")):
        if candidate.exists():
            return load_manifest(candidate)
    return None


def load_manifest(file: Path) -> dict[str, Any] | None:
    """A manifest file's JSON object (None if the JSON is not an object)."""
    try:
        data = json.loads(file.read_text())
    except ValueError as exc:
        raise DataError(Diagnostic(f"manifest is not valid JSON: {exc}", file=str(file))) from None
    return data if isinstance(data, dict) else None


def find_model(defs: Definitions, name: str) -> ModelSpec:
    spec = defs.models.get(name)
    if spec is None:
        hint = did_you_mean(name, defs.models) or (
            "models: " + ", ".join(sorted(defs.models)) if defs.models else "define it under `models:` in the definitions"
        )
        raise UsageError(f"unknown model '{name}'", hint=hint)
    return spec


@dataclass
class TrainingInput:
    defs: Definitions
    spec: ModelSpec
    frame: pl.DataFrame
    manifest: dict[str, Any] | None
    spine_time_col: str
    features: list[str]
    label: str
    where: str
    notes: list[str]


def load_training_input(project: Any, model: str, training_set_file: Path | None) -> TrainingInput:
    """`project`: a fpipe.project.Project."""
    defs: Definitions = project.defs
    spec = find_model(defs, model)
    ts = defs.training_sets.get(spec.training_set)
    if ts is None:
        raise DefinitionError(f"model '{model}' trains on unknown training set '{spec.training_set}'")
    if ts.label is None:
        raise DefinitionError(
            f"training set '{ts.name}' has no label; model '{model}' needs one",
            hint=f"add `label:` to training set '{ts.name}'",
        )
    notes: list[str] = []
    if training_set_file is not None:
        frame = read_table(training_set_file)
        manifest = read_manifest(training_set_file)
        where = str(training_set_file)
        if manifest is None:
            notes.append(f"{where}: no manifest beside it; the feature definitions hash is unknown")
            time_col = project.spine_time_column(ts.name)
        else:
            if manifest.get("training_set") not in (None, ts.name):
                raise UsageError(
                    f"{where} holds training set '{manifest.get('training_set')}', model '{model}' trains on '{ts.name}'",
                    hint=f"pass a backfill output of '{ts.name}'",
                )
            time_col = str(manifest.get("spine_time_column") or project.spine_time_column(ts.name))
    else:
        result = project.build_training_set(ts.name)
        frame, where = result.frame, f"training set '{ts.name}'"
        manifest = dict(project.manifest(ts.name, result, None))
        time_col = result.time_column
    features = list(spec.features) if spec.features is not None else list(ts.features)
    unknown = [f for f in features if f not in ts.features]
    if unknown:
        raise DefinitionError(
            f"model '{model}' uses feature '{unknown[0]}', which training set '{ts.name}' does not have",
            hint=did_you_mean(unknown[0], ts.features) or "features: " + ", ".join(ts.features),
        )
    return TrainingInput(defs, spec, frame, manifest, time_col, features, ts.label, where, notes)


def key_columns(
    frame: pl.DataFrame, time_col: str, features: list[str], label: str, all_features: list[str], manifest: Mapping[str, Any] | None
) -> list[str]:
    """The spine's own columns (keys and passed-through columns), without its time column."""
    if manifest and manifest.get("spine_columns"):
        return [c for c in manifest["spine_columns"] if c != time_col and c in frame.columns]
    skip = {time_col, label, *features, *all_features}
    return [c for c in frame.columns if c not in skip and not c.startswith("_")]


def run_train(
    inp: TrainingInput, models_dir: Path, folds: int = 0, engine: Any = None
) -> tuple[TrainedModel, str, Path, dict[str, Any]]:
    """`engine`: None (xgboost in this process) or a fitter with `.name`, `.info` and `.fit` (Dask)."""
    from fpipe.train.export import export_model
    from fpipe.train.leakage import availability_warnings
    from fpipe.train.trainer import fit_local, train_model

    defaults = {f: inp.defs.features[f].default for f in inp.features if f in inp.defs.features}
    trained = train_model(
        inp.spec,
        inp.frame,
        inp.spine_time_col,
        inp.features,
        inp.label,
        label_spec=inp.defs.labels.get(inp.label),
        timezone=inp.defs.timezone,
        feature_defaults=defaults,
        folds=folds,
        where=inp.where,
        fit=fit_local if engine is None else engine.fit,
        engine="local" if engine is None else engine.name,
        engine_info=None if engine is None else engine.info,
    )
    trained.warnings.extend(availability_warnings(inp.defs, inp.features))
    ts = inp.defs.training_sets[inp.spec.training_set]
    version, path, meta = export_model(
        models_dir,
        trained,
        inp.spec,
        training_set=ts.name,
        spine_time_col=inp.spine_time_col,
        key_columns=key_columns(inp.frame, inp.spine_time_col, inp.features, inp.label, list(ts.features), inp.manifest),
        label=inp.label,
        label_dtype=str(inp.frame.schema[inp.label]),
        manifest=inp.manifest,
        timezone=inp.defs.timezone,
    )
    return trained, version, path, meta


def _labels_for(meta: Mapping[str, Any], frame: pl.DataFrame) -> np.ndarray:
    import polars as pl

    s = frame.get_column(meta["label"]["name"])
    if meta["kind"] == "multiclass":
        mapping = {c: i for i, c in enumerate(meta["label"]["classes"])}
        return s.cast(pl.String).replace_strict(mapping, default=-1, return_dtype=pl.Int64).to_numpy()
    return s.cast(pl.Float64).to_numpy()


def compare_models(
    models_dir: Path, name: str, candidate: str, frame: pl.DataFrame, where: str, slice_fraction: float, tolerance: float
) -> dict[str, Any]:
    """Candidate vs current on the most recent `slice_fraction` of rows (by spine time) of a labelled table."""
    import polars as pl

    from fpipe.train.registry import load_model, read_pointer
    from fpipe.train.score import score_frame
    from fpipe.train.split import epoch_us, iso

    current_v = read_pointer(models_dir, name).version
    if current_v is None:
        raise UsageError(f"model '{name}' has no promoted version to compare with", hint=f"fpipe models promote {name} VERSION")
    cand = load_model(models_dir, name, candidate)
    curr = load_model(models_dir, name, current_v)
    if cand.metadata["kind"] != curr.metadata["kind"]:
        raise UsageError(f"{cand.version} is {cand.metadata['kind']}, {curr.version} is {curr.metadata['kind']}: not comparable")
    time_col, label = cand.metadata["spine"]["time_column"], cand.label
    for col in (time_col, label):
        if col not in frame.columns:
            raise DataError(Diagnostic(f"column '{col}' is missing; compare needs labelled rows", file=where))
    if not 0 < slice_fraction <= 1:
        raise UsageError(f"--slice must be in (0, 1], got {slice_fraction}")
    frame = frame.filter(pl.col(label).is_not_null()).sort(time_col, maintain_order=True)
    start = int(frame.height * (1 - slice_fraction))
    recent = frame.slice(start)
    if recent.height == 0:
        raise DataError(Diagnostic("no labelled rows in the most recent slice", file=where))
    times = epoch_us(recent.get_column(time_col), str(cand.metadata.get("timezone") or "UTC"), where)
    kind = cand.metadata["kind"]
    metric = M.PRIMARY_METRIC[kind]
    result: dict[str, Any] = {
        "model": name,
        "metric": metric,
        "slice": {"rows": recent.height, "start": iso(int(times.min())), "end": iso(int(times.max()))},
        "tolerance": tolerance,
        "warnings": [],
    }
    scores: dict[str, dict[str, float]] = {}
    for role, m in (("candidate", cand), ("current", curr)):
        out, warns = score_frame(m, recent, where)
        y = _labels_for(m.metadata, recent)
        if kind == "multiclass":
            pred = out.select(pl.col("^proba_.*$")).to_numpy().astype(np.float64)
        else:
            pred = out.get_column("prediction").to_numpy()
        scores[role] = M.metrics_for(kind, y, pred)
        result[role] = {"version": m.version, "metrics": scores[role]}
        result["warnings"] += [f"{m.version}: {w}" for w in warns]
        test_start = m.metadata.get("split", {}).get("test_start")
        if test_start and result["slice"]["start"] < test_start:
            result["warnings"].append(
                f"{m.version} trained or validated on rows before {test_start}; the slice starting "
                f"{result['slice']['start']} overlaps them, so its score is optimistic"
            )
    c, k = scores["candidate"][metric], scores["current"][metric]
    worse = M.is_better(metric, k, c, tolerance)  # current beats candidate by more than the tolerance
    result["candidate_worse"] = bool(worse or np.isnan(c))
    return result
