"""Train one XGBoost model on a training-set frame: split by time, fit with early stopping, evaluate
against a trivial baseline, check gates, smell for leakage. Pure: a frame in, a `TrainedModel` out
(no files; export.py writes it).

Same frame + same spec -> byte-identical booster: rows are put in time order with a stable sort,
the seed and `nthread` are fixed, and the booster is cut at its best iteration before it is saved.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fpipe import __version__
from fpipe.errors import DataError, DefinitionError, Diagnostic
from fpipe.spec.model import NO_LOCATION, LabelSpec, ModelSpec
from fpipe.train import metrics as M
from fpipe.train.contract import FeatureColumn, contract_from_frame, encode_features
from fpipe.train.split import (
    Split,
    apply_split,
    boundaries,
    check_split,
    epoch_us,
    format_duration,
    iso,
    label_reach,
    resolve_gap,
    rolling_folds,
)

if TYPE_CHECKING:
    import polars as pl

LEAKAGE_AUC = 0.98  # one feature alone above this (direction-free) smells of the future
LEAKAGE_RANK_CORR = 0.98  # regression: |Spearman| of one feature with the label
DEFAULT_NTHREAD = 1  # fixed, never the machine's core count (override with params.nthread); 1 is fastest on busy CI machines
GATE_PREFIXES = ("min_", "max_")
METRIC_NAMES = {
    "binary": ("auc", "pr_auc", "logloss", "brier"),
    "regression": ("rmse", "mae", "r2"),
    "multiclass": ("accuracy", "logloss"),
}


@dataclass
class TrainedModel:
    name: str
    kind: str  # binary | regression | multiclass
    booster: Any  # xgboost.Booster, cut at the best iteration
    model_bytes: bytes  # UBJ
    contract: list[FeatureColumn]
    classes: list[str] | None  # multiclass: class index -> label value
    params: dict[str, Any]
    best_iteration: int
    metrics: dict[str, float]
    baseline: dict[str, float]
    beats_baseline: bool
    gate_failures: list[str]
    warnings: list[str]
    single_feature: dict[str, float]
    importance: dict[str, float]
    calibration: list[dict[str, Any]]
    split: dict[str, Any]
    folds: list[dict[str, Any]] = field(default_factory=list)
    y_test: np.ndarray | None = None
    pred_test: np.ndarray | None = None
    engine: str = "local"  # local | dask: which fitted the booster (everything else is the same code)
    engine_info: dict[str, Any] = field(default_factory=dict)  # dask: scheduler, workers

    @property
    def failed(self) -> bool:
        return not self.beats_baseline or bool(self.gate_failures)


def objective_kind(objective: str, model: str = "?") -> str:
    if objective == "binary:logistic":
        return "binary"
    if objective in ("multi:softprob", "multi:softmax"):
        return "multiclass"
    if objective.startswith(("reg:", "count:")) or objective in ("survival:cox",):
        return "regression"
    raise DefinitionError(
        f"model '{model}': objective '{objective}' is not supported",
        hint="use binary:logistic, multi:softprob, or a reg:* / count:* objective",
    )


def _label_vector(frame: pl.DataFrame, label: str, kind: str) -> tuple[np.ndarray, list[str] | None]:
    import polars as pl

    s = frame.get_column(label)
    if kind == "binary":
        if s.dtype == pl.Boolean:
            return s.cast(pl.Float64).to_numpy(), None
        values = set(s.unique().to_list())
        if s.dtype.is_numeric() and values <= {0, 1}:
            return s.cast(pl.Float64).to_numpy(), None
        raise DataError(
            f"label '{label}' is {s.dtype} with values like {sorted(map(str, values))[:3]}; binary:logistic needs a boolean",
            hint=f"give the label an expr such as `expr: \"{label} > 0\"`, or use a reg:* objective",
        )
    if kind == "regression":
        if not (s.dtype.is_numeric() or s.dtype == pl.Boolean):
            raise DataError(f"label '{label}' is {s.dtype}; a regression needs numbers", hint="use multi:softprob for classes")
        return s.cast(pl.Float64).to_numpy(), None
    classes = sorted(str(v) for v in s.unique().to_list())
    mapping = {c: i for i, c in enumerate(classes)}
    return s.cast(pl.String).replace_strict(mapping, return_dtype=pl.Float64).to_numpy(), classes


def _params(spec: ModelSpec, kind: str, n_classes: int) -> dict[str, Any]:
    eval_metric = {"binary": "logloss", "regression": "rmse", "multiclass": "mlogloss"}[kind]
    params: dict[str, Any] = {
        "objective": "multi:softprob" if kind == "multiclass" else spec.objective,
        "tree_method": "hist",
        "eval_metric": eval_metric,
        "seed": spec.seed,
        "nthread": DEFAULT_NTHREAD,
        "verbosity": 0,
    }
    for k, v in spec.params.items():
        if k in ("objective", "num_class"):
            continue
        params[k] = v
    if kind == "multiclass":
        params["num_class"] = n_classes
    return params


def _dmatrix(x: np.ndarray, y: np.ndarray | None, contract: Sequence[FeatureColumn], nthread: int) -> Any:
    import xgboost as xgb

    return xgb.DMatrix(
        x,
        label=y,
        missing=np.nan,
        feature_names=[c.name for c in contract],
        feature_types=[c.xgb_type for c in contract],
        enable_categorical=True,
        nthread=nthread,
    )


Fit = Callable[[dict[str, Any], ModelSpec, np.ndarray, np.ndarray, Split, Sequence[FeatureColumn]], tuple[Any, int]]
"""(params, spec, x, y, split, contract) -> (booster cut at its best iteration, best iteration): the one step an
engine replaces (fpipe.distributed.dask_train fits the same rows with xgboost.dask)."""


def fit_local(
    params: dict[str, Any], spec: ModelSpec, x: np.ndarray, y: np.ndarray, split: Split, contract: Sequence[FeatureColumn]
) -> tuple[Any, int]:
    import xgboost as xgb

    nthread = int(params.get("nthread", DEFAULT_NTHREAD))
    dtrain = _dmatrix(x[split.train], y[split.train], contract, nthread)
    dvalid = _dmatrix(x[split.valid], y[split.valid], contract, nthread)
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=spec.num_boost_round,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=spec.early_stopping_rounds,
        verbose_eval=False,
    )
    return cut_at_best(booster)


def cut_at_best(booster: Any) -> tuple[Any, int]:
    """The booster cut at its best iteration (the last one without early stopping), and that iteration."""
    best = int(getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1))
    return booster[: best + 1], best


def predict(booster: Any, x: np.ndarray, contract: Sequence[FeatureColumn], nthread: int = DEFAULT_NTHREAD) -> np.ndarray:
    return np.asarray(booster.predict(_dmatrix(x, None, contract, nthread)))


def baseline_prediction(kind: str, y_train: np.ndarray, n: int, n_classes: int = 0) -> np.ndarray:
    """The trivial model: the training prior rate (binary), mean (regression) or class shares (multiclass)."""
    if kind == "multiclass":
        counts = np.bincount(y_train.astype(np.int64), minlength=n_classes).astype(np.float64) + 1e-6
        return np.tile(counts / counts.sum(), (n, 1))
    return np.full(n, float(np.mean(y_train)))


def beats_baseline(kind: str, model: Mapping[str, float], baseline: Mapping[str, float]) -> bool:
    if kind == "binary":
        return M.is_better("auc", model["auc"], 0.5) and M.is_better("logloss", model["logloss"], baseline["logloss"])
    if kind == "regression":
        return M.is_better("rmse", model["rmse"], baseline["rmse"])
    return M.is_better("logloss", model["logloss"], baseline["logloss"])


def check_gates(spec: ModelSpec, kind: str, values: Mapping[str, float]) -> list[str]:
    """Gate failures as sentences; an unknown gate is a definition error (exit 2)."""
    failures: list[str] = []
    known = sorted(f"{p}{m}" for p in GATE_PREFIXES for m in values)
    for gate, threshold in spec.gates.items():
        metric = gate[4:] if gate.startswith(GATE_PREFIXES) else ""
        if metric not in values:
            raise DefinitionError(
                Diagnostic(
                    f"model '{spec.name}': unknown gate '{gate}' for a {kind} model",
                    file=spec.loc.file if spec.loc != NO_LOCATION else None,
                    line=spec.loc.line if spec.loc != NO_LOCATION else None,
                    col=spec.loc.col if spec.loc != NO_LOCATION else None,
                    hint="allowed: " + ", ".join(known),
                )
            )
        v = values[metric]
        if gate.startswith("min_") and not v >= float(threshold):
            failures.append(f"{metric} {v:.4f} < {gate} {float(threshold):g}")
        if gate.startswith("max_") and not v <= float(threshold):
            failures.append(f"{metric} {v:.4f} > {gate} {float(threshold):g}")
    return failures


def _rank_corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = ~(np.isnan(a) | np.isnan(b))
    if ok.sum() < 3:
        return float("nan")
    ra, rb = M._ranks(a[ok]), M._ranks(b[ok])
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def smell_leakage(
    kind: str, x: np.ndarray, y: np.ndarray, split: Split, contract: Sequence[FeatureColumn]
) -> tuple[dict[str, float], list[str]]:
    """Single-feature predictive power and a warning for each feature that alone predicts the label almost
    perfectly (binary: direction-free AUC; regression: |rank correlation|). Categorical features are scored
    out of sample (category label rates from train, AUC on valid + test) so an ID-like feature is not flagged."""
    scores: dict[str, float] = {}
    warnings: list[str] = []
    if kind == "multiclass":
        return scores, warnings
    holdout = np.concatenate([split.valid, split.test])
    for j, col in enumerate(contract):
        if kind == "binary":
            if col.kind == "categorical":
                tr = x[split.train, j]
                codes = np.where(np.isnan(tr), -1, tr).astype(np.int64) + 1
                sums = np.bincount(codes, weights=y[split.train])
                counts = np.bincount(codes)
                rates = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
                ho = x[holdout, j]
                ho_codes = np.where(np.isnan(ho), -1, ho).astype(np.int64) + 1
                enc = np.array([rates[c] if c < len(rates) else np.nan for c in ho_codes], dtype=np.float64)
                score = M.single_feature_auc(y[holdout], enc)
            else:
                score = M.single_feature_auc(y[split.train], x[split.train, j])
            threshold, what = LEAKAGE_AUC, "AUC"
        else:
            score = abs(_rank_corr(x[split.train, j], y[split.train]))
            threshold, what = LEAKAGE_RANK_CORR, "rank correlation"
        if np.isnan(score):
            continue
        scores[col.name] = round(float(score), 6)
        if score > threshold:
            warnings.append(
                f"possible leakage: feature '{col.name}' alone predicts the label almost perfectly "
                f"({what} {score:.3f} > {threshold}); it may see the future "
                "(check its source's available_time / lag and its window)"
            )
    return scores, warnings


def _importance(booster: Any, contract: Sequence[FeatureColumn]) -> dict[str, float]:
    gain = booster.get_score(importance_type="total_gain")
    total = sum(gain.values()) or 1.0
    return {c.name: round(float(gain.get(c.name, 0.0)) / total, 6) for c in contract}


def definitions_hash(manifest: Mapping[str, Any] | None, features: Sequence[str]) -> tuple[str | None, dict[str, str]]:
    """The hash of the definitions of exactly `features` (in order), from a training-set manifest."""
    per = dict((manifest or {}).get("feature_definition_hashes") or {})
    used = {f: str(per[f]) for f in features if f in per}
    if len(used) != len(features):
        return None, used
    payload = json.dumps([[f, used[f]] for f in features], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest(), used


def versions() -> dict[str, str]:
    import polars as pl
    import xgboost as xgb

    return {
        "fpipe": __version__,
        "xgboost": xgb.__version__,
        "polars": pl.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def train_model(
    spec: ModelSpec,
    frame: pl.DataFrame,
    spine_time_col: str,
    feature_names: Sequence[str],
    label: str,
    *,
    label_spec: LabelSpec | None = None,
    timezone: str = "UTC",
    feature_defaults: Mapping[str, Any] | None = None,
    folds: int = 0,
    where: str = "training set",
    fit: Fit = fit_local,
    engine: str = "local",
    engine_info: Mapping[str, Any] | None = None,
) -> TrainedModel:
    """Split `frame` by time, fit, evaluate on test beside the baseline, check gates and leakage.

    `fit` fits the booster on the train rows with early stopping on the valid rows (`fit_local`, or an
    engine's, e.g. xgboost.dask on a cluster); splitting, encoding, prediction and metrics are the same."""
    import polars as pl

    kind = objective_kind(spec.objective, spec.name)
    check_gates(spec, kind, dict.fromkeys(METRIC_NAMES[kind], float("nan")))  # unknown gates fail before training
    gap = resolve_gap(spec.split, label_spec, spec.name, spec.loc)
    for col in (spine_time_col, label):
        if col not in frame.columns:
            raise DataError(Diagnostic(f"column '{col}' is missing", file=where, hint="is this the right training set?"))

    dropped_label = int(frame.get_column(label).null_count())
    frame = frame.filter(pl.col(label).is_not_null())
    # time order, stable: the frame's own order breaks ties, so equal inputs give equal models
    times_all = frame.get_column(spine_time_col)
    if not isinstance(times_all.dtype, pl.Datetime):
        raise DataError(Diagnostic(f"column '{spine_time_col}' is {times_all.dtype}, expected a timestamp", file=where))
    frame = frame.with_row_index("_row").sort(spine_time_col, maintain_order=True)
    times = epoch_us(frame.get_column(spine_time_col), timezone, where)
    if frame.get_column(spine_time_col).null_count():
        raise DataError(Diagnostic(f"column '{spine_time_col}' has null times", file=where))

    vs, ts = boundaries(times, spec.split, spec.name, timezone, spec.loc, gap)
    split = apply_split(times, vs, ts, gap)
    check_split(split, where)

    y, classes = _label_vector(frame, label, kind)
    n_classes = len(classes or [])
    contract = contract_from_frame(frame[split.train], feature_names, feature_defaults, where)
    x = encode_features(frame, contract)
    params = _params(spec, kind, n_classes)
    booster, best = fit(params, spec, x, y, split, contract)
    model_bytes = bytes(booster.save_raw("ubj"))

    pred = predict(booster, x[split.test], contract, int(params["nthread"]))
    y_test = y[split.test]
    if kind == "multiclass":
        y_test = y_test.astype(np.int64)
    model_metrics = M.metrics_for(kind, y_test, pred)
    base = baseline_prediction(kind, y[split.train], len(split.test), n_classes)
    base_metrics = M.metrics_for(kind, y_test, base)
    single, warnings = smell_leakage(kind, x, y, split, contract)
    purged = sum(split.purged.values())
    if purged > 0.25 * len(times):
        warnings.append(
            f"the purge gaps ({format_duration(gap)}) drop {purged} of {len(times)} rows ({purged / len(times):.0%}): "
            "the data spans little more than the label horizon; build the training set over a longer period"
        )
    if (label_spec is None or label_spec.horizon is None) and "gap" not in spec.split:
        warnings.append(
            f"label '{label}' has no horizon (it comes from the spine), so the purge gap is 0; "
            f"if it looks into the future, set split.gap on model '{spec.name}' to how far it looks"
        )
    if kind == "binary" and len(np.unique(y_test)) < 2:
        warnings.append("the test period holds only one class: AUC is undefined; move split.test_start earlier")

    fold_reports: list[dict[str, Any]] = []
    if folds:
        primary = M.PRIMARY_METRIC[kind]
        for i, fold in enumerate(rolling_folds(times, folds, gap), start=1):
            if min(len(fold.train), len(fold.valid), len(fold.test)) == 0:
                fold_reports.append({"fold": i, "skipped": "a part of this fold is empty"})
                continue
            fold_contract = contract_from_frame(frame[fold.train], feature_names, feature_defaults, where)
            fx = encode_features(frame, fold_contract)
            fb, fbest = fit(params, spec, fx, y, fold, fold_contract)
            fy = y[fold.test].astype(np.int64) if kind == "multiclass" else y[fold.test]
            fm = M.metrics_for(kind, fy, predict(fb, fx[fold.test], fold_contract))
            fbase = M.metrics_for(kind, fy, baseline_prediction(kind, y[fold.train], len(fold.test), n_classes))
            fold_reports.append(
                {
                    "fold": i,
                    "ranges": fold.ranges(times),
                    "best_iteration": fbest,
                    "metric": primary,
                    "model": fm[primary],
                    "baseline": fbase[primary],
                    "metrics": fm,
                    "beats_baseline": beats_baseline(kind, fm, fbase),
                }
            )

    split_info: dict[str, Any] = {
        "method": "dates" if "valid_start" in spec.split else "fractions",
        "config": {
            k: (str(v) if not isinstance(v, int | float) else v)
            for k, v in (spec.split if spec.split_as_written is None else spec.split_as_written).items()
        },
        "valid_start": iso(split.valid_start),
        "test_start": iso(split.test_start),
        "gap": format_duration(gap),
        "label_reach": format_duration(label_reach(label_spec)),
        "purged_rows": split.purged,
        "label_missing_rows": dropped_label,
        "ranges": split.ranges(times),
    }
    return TrainedModel(
        name=spec.name,
        kind=kind,
        booster=booster,
        model_bytes=model_bytes,
        contract=contract,
        classes=classes,
        params=params,
        best_iteration=best,
        metrics=model_metrics,
        baseline=base_metrics,
        beats_baseline=beats_baseline(kind, model_metrics, base_metrics),
        gate_failures=check_gates(spec, kind, model_metrics),
        warnings=warnings,
        single_feature=single,
        importance=_importance(booster, contract),
        calibration=M.calibration_table(y_test, pred) if kind == "binary" else [],
        split=split_info,
        folds=fold_reports,
        y_test=y_test,
        pred_test=pred,
        engine=engine,
        engine_info=dict(engine_info or {}),
    )
