"""The model registry: immutable versions and a `current` pointer.

    models/<name>/v1/  model.ubj  metadata.json  model_card.md  *.svg
    models/<name>/current          {"version": "v2", "previous": ["v1"], "log": [...]}

Versions and the pointer are written by io/models.py (a version directory appears whole or not at all and
is never overwritten; the pointer is replaced atomically); this module decides their content, reads them
back and loads models. `previous` is the stack `rollback` pops.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fpipe.errors import UsageError
from fpipe.io.models import versions_of, write_pointer
from fpipe.spec.suggest import did_you_mean
from fpipe.train.contract import FeatureColumn

POINTER = "current"
MODEL_FILE = "model.ubj"
METADATA_FILE = "metadata.json"


def clean_json(value: Any) -> Any:
    """NaN and infinities become null (JSON has none); tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(clean_json(value), indent=2, allow_nan=False) + "\n"


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def model_names(models_dir: Path) -> list[str]:
    if not models_dir.is_dir():
        return []
    return sorted(p.name for p in models_dir.iterdir() if p.is_dir() and versions_of(models_dir, p.name))


@dataclass
class Pointer:
    version: str | None
    previous: list[str]
    log: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "previous": self.previous, "log": self.log}


def read_pointer(models_dir: Path, name: str) -> Pointer:
    path = models_dir / name / POINTER
    if not path.exists():
        return Pointer(None, [], [])
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read the current pointer ({exc})", hint="fix or delete the file") from None
    return Pointer(data.get("version"), list(data.get("previous", [])), list(data.get("log", [])))


def require_model(models_dir: Path, name: str) -> list[str]:
    versions = versions_of(models_dir, name)
    if not versions:
        known = model_names(models_dir)
        hint = did_you_mean(name, known) or (
            f"models in {models_dir}: {', '.join(known)}" if known else f"train it first: fpipe train {name}"
        )
        raise UsageError(f"no model '{name}' in {models_dir}", hint=hint)
    return versions


def require_version(models_dir: Path, name: str, version: str) -> str:
    versions = require_model(models_dir, name)
    v = version if version.startswith("v") else f"v{version}"
    if v not in versions:
        raise UsageError(f"model '{name}' has no version '{version}'", hint="versions: " + ", ".join(versions))
    return v


def promote(models_dir: Path, name: str, version: str) -> Pointer:
    v = require_version(models_dir, name, version)
    p = read_pointer(models_dir, name)
    if p.version == v:
        return p
    if p.version is not None:
        p.previous.append(p.version)
    p.log.append({"action": "promote", "version": v, "from": p.version, "at": _now()})
    p.version = v
    write_pointer(models_dir / name / POINTER, dumps(p.to_json()))
    return p


def rollback(models_dir: Path, name: str) -> Pointer:
    require_model(models_dir, name)
    p = read_pointer(models_dir, name)
    if not p.previous:
        what = f"'{name}' {p.version} was never preceded by a promoted version" if p.version else f"'{name}' has no promoted version"
        raise UsageError(f"nothing to roll back to: {what}", hint=f"promote a version instead: fpipe models promote {name} VERSION")
    back = p.previous.pop()
    p.log.append({"action": "rollback", "version": back, "from": p.version, "at": _now()})
    p.version = back
    write_pointer(models_dir / name / POINTER, dumps(p.to_json()))
    return p


@dataclass
class LoadedModel:
    name: str
    version: str
    path: Path
    metadata: dict[str, Any]
    booster: Any

    @property
    def contract(self) -> list[FeatureColumn]:
        return [FeatureColumn.from_json(f) for f in self.metadata["features"]]

    @property
    def label(self) -> str:
        return str(self.metadata["label"]["name"])


def resolve_version(models_dir: Path, name: str, version: str | None) -> str:
    if version is not None:
        return require_version(models_dir, name, version)
    versions = require_model(models_dir, name)
    current = read_pointer(models_dir, name).version
    if current is None:
        raise UsageError(
            f"model '{name}' has no promoted version",
            hint=f"promote one (fpipe models promote {name} {versions[-1]}) or pass --version {versions[-1]}",
        )
    return current


def card_path(models_dir: Path, name: str, version: str | None) -> Path:
    """model_card.md of `version`, else of the current version, else of the latest."""
    if version is None:
        version = read_pointer(models_dir, name).version or require_model(models_dir, name)[-1]
    path = models_dir / name / require_version(models_dir, name, version) / "model_card.md"
    if not path.exists():
        raise UsageError(f"{path}: no model card", hint="the version directory is damaged; retrain")
    return path


def load_model(models_dir: Path, name: str, version: str | None = None) -> LoadedModel:
    """Load a version (default: the current one) without executing code: UBJ booster + JSON metadata."""
    import xgboost as xgb

    v = resolve_version(models_dir, name, version)
    path = models_dir / name / v
    try:
        metadata = json.loads((path / METADATA_FILE).read_text())
        booster = xgb.Booster(model_file=str(path / metadata.get("model_file", MODEL_FILE)))
    except (OSError, ValueError, xgb.core.XGBoostError) as exc:
        raise UsageError(f"{path}: cannot load model ({exc})", hint="the version directory is damaged; retrain") from None
    booster.set_param({"nthread": int(metadata.get("params", {}).get("nthread", 1))})
    return LoadedModel(name, v, path, metadata, booster)


def list_models(models_dir: Path) -> list[dict[str, Any]]:
    """Every model and version with its test metric beside the baseline, newest version last."""
    out: list[dict[str, Any]] = []
    for name in model_names(models_dir):
        pointer = read_pointer(models_dir, name)
        for v in versions_of(models_dir, name):
            row: dict[str, Any] = {"model": name, "version": v, "current": v == pointer.version}
            try:
                meta = json.loads((models_dir / name / v / METADATA_FILE).read_text())
            except (OSError, ValueError):
                row["error"] = "unreadable metadata.json"
                out.append(row)
                continue
            m = meta.get("metrics", {})
            row.update(
                {
                    "created_at": meta.get("created_at"),
                    "training_set": meta.get("training_set"),
                    "kind": meta.get("kind"),
                    "primary_metric": m.get("primary_metric"),
                    "test": m.get("test", {}).get(m.get("primary_metric", ""), None),
                    "baseline": m.get("baseline", {}).get(m.get("primary_metric", ""), None),
                    "passed": bool(m.get("beats_baseline")) and not m.get("gate_failures"),
                    "warnings": len(meta.get("warnings", [])),
                }
            )
            out.append(row)
    return out
