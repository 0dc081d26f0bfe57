"""The JSON Schema is rendered from the loader's own field table, and the committed copy is current."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from fpipe.spec import fields as F
from fpipe.spec.jsonschema import definitions_schema, schema_text
from fpipe.spec.model import AGGREGATIONS

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "docs" / "fpipe.schema.json"
VALID = ROOT / "tests" / "fixtures" / "defs" / "valid_spec_example"


def test_committed_schema_is_current() -> None:
    assert COMMITTED.read_text() == schema_text(), "run: fpipe schema --out docs/fpipe.schema.json"


def test_schema_header_and_closed_objects() -> None:
    schema = definitions_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    for name, sub in schema["$defs"].items():
        assert sub["additionalProperties"] is False, name
        for field, prop in sub["properties"].items():
            assert prop["description"], (name, field)


def test_every_field_of_the_table_is_in_the_schema() -> None:
    defs = definitions_schema()["$defs"]
    for section in F.SECTIONS.values():
        props = defs[section.kind.replace(" ", "_")]["properties"]
        assert list(props) == list(section.fields)
    assert list(defs["check"]["properties"]) == list(F.CHECK)
    assert list(defs["thresholds"]["properties"]) == list(F.THRESHOLDS)
    assert list(definitions_schema()["properties"]) == list(F.TOP_LEVEL)


def test_enums() -> None:
    defs = definitions_schema()["$defs"]
    assert defs["feature"]["properties"]["agg"]["enum"] == list(AGGREGATIONS)
    assert defs["label"]["properties"]["censor"]["enum"] == ["drop", "flag"]
    assert definitions_schema()["properties"]["cutoff"]["enum"] == ["exclusive", "inclusive"]
    assert "binary:logistic" in defs["model"]["properties"]["objective"]["enum"]
    assert defs["training_set"]["required"] == ["spine", "features"]


def _check(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> None:
    """A tiny validator for what this schema uses: $ref, object properties/additionalProperties, enum."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    if "enum" in schema:
        assert value in schema["enum"], where
    if schema.get("type") == "object":
        assert isinstance(value, dict), where
        for key, sub in value.items():
            if key in schema.get("properties", {}):
                _check(sub, schema["properties"][key], root, f"{where}.{key}")
            else:
                extra = schema.get("additionalProperties", True)
                assert extra is not False, f"{where}: unexpected key {key}"
                if isinstance(extra, dict):
                    _check(sub, extra, root, f"{where}.{key}")


@pytest.mark.parametrize("path", sorted(VALID.glob("*.yaml")), ids=lambda p: p.name)
def test_valid_example_matches_the_schema(path: Path) -> None:
    schema = json.loads(COMMITTED.read_text())
    _check(yaml.safe_load(path.read_text()), schema, schema, path.name)


def test_tiny_validator_rejects_an_unknown_field() -> None:
    schema = definitions_schema()
    with pytest.raises(AssertionError):
        _check({"features": {"x": {"windw": "7d"}}}, schema, schema, "doc")
