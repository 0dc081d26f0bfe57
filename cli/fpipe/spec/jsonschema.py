"""The JSON Schema (draft 2020-12) of the definitions YAML, rendered from spec/fields.py.

The loader checks YAML against the same tables, so the schema (for editors: yaml-language-server,
VS Code) and the loader cannot drift apart. `docs/fpipe.schema.json` is this output, committed.
"""

from __future__ import annotations

import json
from typing import Any

from fpipe.spec import fields as F

SCHEMA_ID = "https://fpipe.dev/schemas/fpipe.schema.json"
DURATION_PATTERN = r"^[+-]?(\d+(ms|w|d|h|m|s))+$"

_NAME = {"type": "string", "minLength": 1}


def _field_schema(f: F.Field) -> dict[str, Any]:
    kind = f.kind
    s: dict[str, Any]
    if kind in ("name",):
        s = dict(_NAME)
    elif kind in ("str", "expr", "path"):
        s = {"type": "string"}
    elif kind == "enum":
        s = {"type": "string", "enum": list(f.choices)}
    elif kind == "duration":
        s = {"anyOf": [{"type": "string", "pattern": DURATION_PATTERN}, {"const": 0}]}
    elif kind == "datetime":
        s = {"type": "string", "description": "ISO 8601 date or date-time"}
    elif kind == "bool":
        s = {"type": "boolean"}
    elif kind == "int":
        s = {"type": "integer"}
    elif kind == "number":
        s = {"type": "number"}
    elif kind == "any":
        s = {}
    elif kind in ("names", "columns"):
        s = {"type": "array", "items": dict(_NAME), "minItems": 1}
    elif kind == "values":
        s = {"type": "array"}
    elif kind == "keys":
        s = {
            "type": "object",
            "additionalProperties": {
                "anyOf": [dict(_NAME), {"type": "array", "items": dict(_NAME), "minItems": 1}],
            },
        }
    elif kind == "mapping":
        s = {"type": "object"}
    elif kind == "str_map":
        s = {"type": "object", "additionalProperties": {"type": "string"}}
    elif kind == "number_map":
        s = {"type": "object", "additionalProperties": {"type": "number"}}
    elif kind == "checks":
        s = {"type": "object", "additionalProperties": {"$ref": "#/$defs/check"}}
    elif kind == "thresholds":
        s = {"$ref": "#/$defs/thresholds"}
    elif kind == "thresholds_map":
        s = {"type": "object", "additionalProperties": {"$ref": "#/$defs/thresholds"}}
    elif kind == "split":
        s = {"$ref": "#/$defs/split"}
    else:  # pragma: no cover - every kind is listed in fields.KINDS
        raise AssertionError(kind)
    desc = f.description
    if "description" in s:
        desc = f"{desc} ({s['description']})"
    return {"description": desc, **{k: v for k, v in s.items() if k != "description"}}


def _object(table: dict[str, F.Field], description: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "description": description,
        "properties": {name: _field_schema(f) for name, f in table.items()},
        "additionalProperties": False,
    }
    required = [name for name, f in table.items() if f.required]
    if required:
        out["required"] = required
    return out


def definitions_schema() -> dict[str, Any]:
    """The schema of one definitions file (every section optional; files in a folder are merged)."""
    defs: dict[str, Any] = {}
    for sec in F.SECTIONS.values():
        defs[sec.kind.replace(" ", "_")] = _object(sec.fields, f"One {sec.kind}. {sec.description}")
    defs["check"] = _object(F.CHECK, "Row checks on one column, run by `fpipe validate --data`.")
    defs["thresholds"] = _object(F.THRESHOLDS, "Train/serve skew thresholds.")
    defs["split"] = _object(F.SPLIT, "A model's time-ordered split: shares of rows or dates, and the purge gap.")
    defs["skew"] = _object(F.SKEW, "Train/serve skew thresholds: defaults and per-feature overrides.")

    props: dict[str, Any] = {}
    for name, f in F.TOP_LEVEL.items():
        if name in F.SECTIONS:
            sec = F.SECTIONS[name]
            props[name] = {
                "type": "object",
                "description": sec.description,
                "additionalProperties": {"$ref": f"#/$defs/{sec.kind.replace(' ', '_')}"},
            }
        elif name == "skew":
            props[name] = {"$ref": "#/$defs/skew", "description": f.description}
        else:
            props[name] = _field_schema(f)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "fpipe definitions",
        "description": "One YAML file of fpipe definitions; every *.yaml/*.yml under --defs is merged.",
        "type": "object",
        "properties": props,
        "additionalProperties": False,
        "$defs": defs,
    }


def schema_text() -> str:
    return json.dumps(definitions_schema(), indent=2) + "\n"
