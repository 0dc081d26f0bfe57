"""YAML definitions -> `Definitions`, with every mistake collected and located (`file:line:col`).

`load_definitions(folder)` merges every `*.yaml`/`*.yml` under the folder (recursively, sorted paths).
Reading happens in two passes: the first composes each file into located nodes and registers every
named item (so a name defined twice is caught, and references can be checked in any file order); the
second converts each item's fields using the table in spec/fields.py, checks references, durations,
expressions and cycles, and builds the frozen specs of spec/model.py. Nothing is raised until the end:
then one `DefinitionError` carries every diagnostic, sorted by location.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from fpipe.errors import DefinitionError, Diagnostic
from fpipe.io.urls import is_url, shown_url
from fpipe.spec import fields as F
from fpipe.spec.durations import DURATION_HINT, DurationError, parse_duration
from fpipe.spec.expr import ExprError, Node, parse_expr, referenced_names
from fpipe.spec.model import (
    AGGS_WITHOUT_COLUMN,
    LOOKUP_AGGS,
    CheckSpec,
    Cutoff,
    Definitions,
    EntitySpec,
    FeatureSpec,
    LabelSpec,
    Location,
    ModelSpec,
    ServingLogSpec,
    SkewSpec,
    SourceSpec,
    SpineSpec,
    Thresholds,
    TrainingSetSpec,
)
from fpipe.spec.suggest import did_you_mean
from fpipe.spec.yamlnodes import (
    YamlSyntaxError,
    compose_text,
    describe,
    is_mapping,
    is_scalar,
    is_sequence,
    scalar_value,
    yaml11_bool_word,
)

YAML_SUFFIXES = (".yaml", ".yml")
EXPR_HINT = "expressions use SQL syntax, e.g. a / (b + 1), status = 'approved' AND amount > 0"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Bad:
    """Marker for a value that was wrong (already reported)."""


BAD = _Bad()


def display_path(path: str | Path) -> str:
    """The path relative to the current directory when it is below it, else absolute (a URL: without its
    query string)."""
    if is_url(path):
        return shown_url(str(path))
    p = os.path.abspath(path)
    try:
        rel = os.path.relpath(p)
    except ValueError:
        return p
    return p if rel.startswith("..") else rel


def load_definitions(defs_dir: str | Path) -> Definitions:
    """Load and merge every YAML file under `defs_dir` (a folder, or a single file).

    Raises DefinitionError with every diagnostic found.
    """
    return _Loader(Path(defs_dir)).load()


def find_definition_files(defs_dir: str | Path) -> list[Path]:
    root = Path(defs_dir)
    if root.is_file():
        return [root.absolute()]
    return sorted(p.absolute() for p in root.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())


@dataclass
class _File:
    path: Path  # absolute
    display: str

    @property
    def folder(self) -> Path:
        return self.path.parent


@dataclass
class _Entry:
    name: str
    key_node: yaml.Node
    node: yaml.Node
    file: _File


@dataclass
class _V:
    """A converted field value with its node (and, for lists and key maps, its parts' nodes)."""

    value: Any
    node: yaml.Node
    key_node: yaml.Node
    parts: list[tuple[str, yaml.Node]] = field(default_factory=list)


class _Loader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.diags: list[Diagnostic] = []
        self.files: list[_File] = []
        self.entries: dict[str, dict[str, _Entry]] = {s: {} for s in F.SECTIONS}
        self.singletons: dict[str, _Entry] = {}  # timezone, cutoff
        self.skew_defaults: dict[str, _Entry] = {}
        self.skew_features: dict[str, _Entry] = {}
        self.skew_node: _Entry | None = None
        self.tz_name = "UTC"
        self.cur: _File | None = None
        # derived features: name -> (parsed expr, expr value node)
        self.derived: dict[str, tuple[Node, yaml.Node]] = {}

    # ------------------------------------------------------------------ diagnostics
    def loc(self, node: yaml.Node | None, file: _File | None = None, col_offset: int = 0) -> Location:
        f = file or self.cur
        name = f.display if f else display_path(self.root)
        if node is None:
            return Location(name, 0, 0)
        m = node.start_mark
        return Location(name, m.line + 1, m.column + 1 + col_offset)

    def error(self, node: yaml.Node | None, message: str, hint: str | None, col_offset: int = 0) -> None:
        loc = self.loc(node, col_offset=col_offset)
        if node is None:
            self.diags.append(Diagnostic(message, file=loc.file, hint=hint))
        else:
            self.diags.append(Diagnostic(message, file=loc.file, line=loc.line, col=loc.col, hint=hint))

    # ------------------------------------------------------------------ entry point
    def load(self) -> Definitions:
        root = self.root
        if not root.exists():
            raise DefinitionError(
                Diagnostic(
                    f"definitions folder '{display_path(root)}' does not exist",
                    hint="pass --defs DIR (a folder of YAML files), or run from the project folder",
                )
            )
        paths = find_definition_files(root)
        if not paths:
            raise DefinitionError(
                Diagnostic(
                    f"no YAML files (*.yaml, *.yml) in '{display_path(root)}'",
                    file=display_path(root),
                    hint="pass --defs DIR (a folder of YAML files)",
                )
            )
        for p in paths:
            self.read_file(p)
        defs = self.build(root.absolute() if root.is_dir() else root.absolute().parent, paths)
        if self.diags:
            raise DefinitionError(sort_diagnostics(self.diags))
        assert defs is not None
        return defs

    # ------------------------------------------------------------------ pass 1: files and names
    def read_file(self, path: Path) -> None:
        f = _File(path, display_path(path))
        self.cur = f
        self.files.append(f)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.diags.append(Diagnostic(f"cannot read definitions file: {exc}", file=f.display, hint="the file must be readable UTF-8 text"))
            return
        try:
            top = compose_text(text, f.display)
        except YamlSyntaxError as exc:
            self.diags.append(Diagnostic(exc.message, file=f.display, line=exc.line, col=exc.col, hint=exc.hint))
            return
        if top is None or (is_scalar(top) and scalar_value(top) is None):
            return
        if not is_mapping(top):
            self.error(top, f"a definitions file must be a mapping of sections, not {describe(None, top)}", "sections: " + ", ".join(F.TOP_LEVEL))
            return
        for key, key_node, value in self.items(top, "the top level"):
            if key not in F.TOP_LEVEL:
                self.error(key_node, f"unknown section '{key}'", did_you_mean(key, F.TOP_LEVEL) or "sections: " + ", ".join(F.TOP_LEVEL))
                continue
            if key in F.SECTIONS:
                self.register_section(key, value)
            elif key == "skew":
                self.register_skew(key_node, value)
            else:
                entry = _Entry(key, key_node, value, f)
                first = self.singletons.get(key)
                if first is None:
                    self.singletons[key] = entry
                elif not _same_scalar(first.node, value):
                    self.error(key_node, f"'{key}' is set twice, differently", f"first set at {self.loc(first.key_node, first.file)}")

    def items(self, node: yaml.Node, where: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """A mapping's (key, key node, value node), names checked, duplicates reported and skipped."""
        assert isinstance(node, yaml.MappingNode)
        seen: dict[Any, yaml.Node] = {}
        skip: set[int] = set()
        for k, _v in node.value:
            if k.tag == _MERGE_TAG or not is_scalar(k):
                continue
            key = scalar_value(k)
            if isinstance(key, str) and key in seen:
                m = seen[key].start_mark
                at = f"line {m.line + 1}" + (f", column {m.column + 1}" if m.line == k.start_mark.line else "")
                self.error(k, f"duplicate key '{key}' in {where}", f"first defined at {at}; a YAML mapping keeps only one")
                skip.add(id(k))
            elif isinstance(key, str):
                seen[key] = k
        try:
            if any(k.tag == _MERGE_TAG for k, _ in node.value):
                from fpipe.spec.yamlnodes import flatten_merges

                flatten_merges(node)
        except yaml.constructor.ConstructorError as exc:
            self.error(node, f"invalid merge key (<<) in {where}: {exc.problem}", "merge a mapping: <<: *anchor")
            return []
        out: dict[str, tuple[str, yaml.Node, yaml.Node]] = {}
        for k, v in node.value:
            if id(k) in skip:
                continue
            name = self.key_name(k, where)
            if name is None:
                continue
            out[name] = (name, k, v)  # merged keys come first, so explicit keys win
        return list(out.values())

    def key_name(self, k: yaml.Node, where: str) -> str | None:
        if not is_scalar(k):
            self.error(k, f"a key in {where} must be a name, not {describe(None, k)}", "keys are plain names")
            return None
        key = scalar_value(k)
        if isinstance(key, str) and key:
            return key
        word = yaml11_bool_word(k)
        if word is not None:
            self.error(k, f"'{word}' was read as the boolean {str(key).lower()}", f"quote it: '{word}'")
        else:
            self.error(k, f"a key in {where} must be a name, not {describe(key, k)}", f"quote it: '{k.value}'")
        return None

    def register_section(self, section: str, node: yaml.Node) -> None:
        kind = F.SECTIONS[section].kind
        if is_scalar(node) and scalar_value(node) is None:
            return
        if not is_mapping(node):
            self.error(node, f"'{section}' must be a mapping of name -> {kind}, not {describe(scalar_value(node) if is_scalar(node) else None, node)}", f"write it as a mapping: {section}: {{my_{kind.replace(' ', '_')}: {{...}}}}")
            return
        assert self.cur is not None
        for name, key_node, value in self.items(node, section):
            self.register(self.entries[section], kind, _Entry(name, key_node, value, self.cur))

    def register(self, table: dict[str, _Entry], kind: str, entry: _Entry) -> None:
        first = table.get(entry.name)
        if first is not None:
            self.error(entry.key_node, f"{kind} '{entry.name}' is defined twice", f"first defined at {self.loc(first.key_node, first.file)}")
            return
        table[entry.name] = entry

    def register_skew(self, key_node: yaml.Node, node: yaml.Node) -> None:
        assert self.cur is not None
        if is_scalar(node) and scalar_value(node) is None:
            return
        if not is_mapping(node):
            self.error(node, f"'skew' must be a mapping, not {describe(None, node)}", "write skew: {defaults: {...}, features: {name: {...}}}")
            return
        if self.skew_node is None:
            self.skew_node = _Entry("skew", key_node, node, self.cur)
        for key, k, v in self.items(node, "skew"):
            if key not in F.SKEW:
                self.error(k, f"unknown field '{key}' in skew", did_you_mean(key, F.SKEW) or "allowed: " + ", ".join(F.SKEW))
                continue
            if is_scalar(v) and scalar_value(v) is None:
                continue
            if not is_mapping(v):
                self.error(v, f"'skew.{key}' must be a mapping, not {describe(None, v)}", F.SKEW[key].description)
                continue
            for name, nk, nv in self.items(v, f"skew.{key}"):
                table = self.skew_defaults if key == "defaults" else self.skew_features
                self.register(table, f"skew.{key} entry", _Entry(name, nk, nv, self.cur))

    # ------------------------------------------------------------------ field conversion
    def read_fields(self, entry: _Entry, table: Mapping[str, F.Field], where: str) -> dict[str, _V] | None:
        self.cur = entry.file
        node = entry.node
        if is_scalar(node) and scalar_value(node) is None:
            node = yaml.MappingNode("tag:yaml.org,2002:map", [], entry.key_node.start_mark, entry.key_node.end_mark)
        if not is_mapping(node):
            value = scalar_value(node) if is_scalar(node) else None
            self.error(node, f"{where} must be a mapping of fields, not {describe(value, node)}", "fields: " + ", ".join(table))
            return None
        out: dict[str, _V] = {}
        for key, k, v in self.items(node, where):
            fdef = table.get(key)
            if fdef is None:
                self.error(k, f"unknown field '{key}' in {where}", did_you_mean(key, table) or "allowed: " + ", ".join(table))
                continue
            converted = self.convert(fdef, k, v, where)
            if converted is not None:
                out[key] = converted
        for fdef in table.values():
            if fdef.required and fdef.name not in out and not self._present(node, fdef.name):
                self.missing(entry, fdef, where)
        return out

    @staticmethod
    def _present(node: yaml.Node, name: str) -> bool:
        return any(is_scalar(k) and k.value == name for k, _ in node.value)

    def missing(self, entry: _Entry, fdef: F.Field, where: str) -> None:
        self.cur = entry.file
        hint = f"{fdef.name}: {fdef.description}"
        if fdef.choices:
            hint = f"{fdef.name}: one of " + ", ".join(fdef.choices)
        elif fdef.ref:
            names = list(self.entries[fdef.ref])
            if names:
                hint = f"{fdef.name}: one of the defined {fdef.ref.replace('_', ' ')}: " + ", ".join(names)
        self.error(entry.key_node, f"missing required field '{fdef.name}' in {where}", hint)

    def type_error(self, v: yaml.Node, what: str, expected: str, hint: str | None) -> None:
        value = scalar_value(v) if is_scalar(v) else None
        word = yaml11_bool_word(v)
        if word is not None and expected.endswith(("string", "name", "expression", "path")):
            self.error(v, f"'{word}' was read as the boolean {str(value).lower()}", f"quote it: '{word}'")
            return
        self.error(v, f"{what} must be {expected}, not {describe(value, v)}", hint)

    def convert(self, fdef: F.Field, k: yaml.Node, v: yaml.Node, where: str) -> _V | None:
        """Convert one field's node by its kind; None when it is wrong (reported) or null."""
        what = f"'{fdef.name}' in {where}"
        kind = fdef.kind
        if is_scalar(v) and scalar_value(v) is None and kind not in ("any",):
            return None  # `field:` with no value: as if absent
        if kind in ("name", "str", "expr", "path", "enum"):
            s = self.string(v, what, kind, fdef.description)
            if s is None:
                return None
            if kind == "enum" and s not in fdef.choices:
                hint = did_you_mean(s, fdef.choices) or "allowed: " + ", ".join(fdef.choices)
                self.error(v, f"unknown {fdef.name} '{s}' in {where}", hint)
                return None
            if kind == "name" and not s.strip():
                self.error(v, f"{what} must not be empty", fdef.description)
                return None
            return _V(s, v, k)
        if kind == "duration":
            if not is_scalar(v):
                self.type_error(v, what, "a duration such as '7d'", DURATION_HINT)
                return None
            raw = scalar_value(v)
            try:
                return _V(parse_duration(raw), v, k)
            except DurationError as exc:
                detail = exc.reason.split(": ", 1)[1] if ": " in exc.reason else ""
                shown = f"'{raw}'" if isinstance(raw, str) else str(v.value)
                msg = f"invalid duration {shown} for {what}" + (f": {detail}" if detail else "")
                self.error(v, msg, exc.hint)
                return None
        if kind == "datetime":
            raw = scalar_value(v) if is_scalar(v) else None
            dt = _as_datetime(raw)
            if dt is None:
                self.error(v, f"{what} must be a date or time, not {describe(raw, v)}", "write an ISO 8601 date or time, e.g. 2024-01-31 or 2024-01-31T12:00:00Z")
                return None
            return _V(dt, v, k)
        if kind in ("bool", "int", "number"):
            raw = scalar_value(v) if is_scalar(v) else None
            ok = (
                isinstance(raw, bool)
                if kind == "bool"
                else isinstance(raw, int) and not isinstance(raw, bool)
                if kind == "int"
                else isinstance(raw, int | float) and not isinstance(raw, bool)
            )
            if not ok:
                expected = {"bool": "true or false", "int": "an integer", "number": "a number"}[kind]
                self.error(v, f"{what} must be {expected}, not {describe(raw, v)}", fdef.description)
                return None
            return _V(raw, v, k)
        if kind == "any":
            return _V(self.plain(v, what), v, k)
        if kind in ("names", "columns"):
            return self.name_list(fdef, k, v, what)
        if kind == "values":
            return self.value_list(fdef, k, v, what)
        if kind == "keys":
            return self.key_map(k, v, what)
        if kind in ("mapping", "str_map", "number_map"):
            if not is_mapping(v):
                self.type_error(v, what, "a mapping", fdef.description)
                return None
            if kind == "mapping":
                return _V(self.plain(v, what), v, k)
            out: dict[str, Any] = {}
            parts: list[tuple[str, yaml.Node]] = []
            for key, kn, vn in self.items(v, what):
                if kind == "str_map":
                    s = self.string(vn, f"'{fdef.name}.{key}' in {where}", "name", fdef.description)
                    if s is not None:
                        out[key] = s
                else:
                    raw = scalar_value(vn) if is_scalar(vn) else None
                    if isinstance(raw, int | float) and not isinstance(raw, bool):
                        out[key] = float(raw)
                    else:
                        self.error(vn, f"'{fdef.name}.{key}' in {where} must be a number, not {describe(raw, vn)}", fdef.description)
                parts.append((key, kn))
            return _V(out, v, k, parts)
        if kind == "checks":
            return self.checks(k, v, where)
        if kind == "split":
            return self.split(k, v, where)
        raise AssertionError(f"unhandled field kind {kind}")  # pragma: no cover

    def string(self, v: yaml.Node, what: str, kind: str, description: str) -> str | None:
        expected = {"name": "a name", "expr": "an expression string", "path": "a path string"}.get(kind, "a string")
        if not is_scalar(v):
            self.type_error(v, what, expected, description)
            return None
        raw = scalar_value(v)
        if not isinstance(raw, str):
            hint = f"quote it: '{v.value}'" if isinstance(raw, int | float | bool) or raw is None else description
            self.type_error(v, what, expected, hint)
            return None
        return raw

    def name_list(self, fdef: F.Field, k: yaml.Node, v: yaml.Node, what: str) -> _V | None:
        if not is_sequence(v):
            raw = scalar_value(v) if is_scalar(v) else None
            hint = f"write a list: [{raw}]" if isinstance(raw, str) else fdef.description
            self.type_error(v, what, "a list of names", hint)
            return None
        parts: list[tuple[str, yaml.Node]] = []
        for item in v.value:
            s = self.string(item, f"an item of {what}", "name", fdef.description)
            if s is not None:
                parts.append((s, item))
        if not v.value:
            self.error(v, f"{what} must not be empty", fdef.description)
            return None
        return _V(tuple(s for s, _ in parts), v, k, parts)

    def value_list(self, fdef: F.Field, k: yaml.Node, v: yaml.Node, what: str) -> _V | None:
        if not is_sequence(v):
            self.type_error(v, what, "a list", fdef.description)
            return None
        values = [scalar_value(item) if is_scalar(item) else self.plain(item, what) for item in v.value]
        if any(isinstance(x, str) for x in values):
            for item, x in zip(v.value, values, strict=True):
                word = yaml11_bool_word(item)
                if word is not None:
                    self.error(item, f"'{word}' was read as the boolean {str(x).lower()}", f"quote it: '{word}'")
        return _V(tuple(values), v, k)

    def key_map(self, k: yaml.Node, v: yaml.Node, what: str) -> _V | None:
        if not is_mapping(v):
            self.type_error(v, what, "a mapping of entity -> column(s)", "e.g. keys: {user: user_id} or {user: [a, b]}")
            return None
        out: dict[str, tuple[str, ...]] = {}
        parts: list[tuple[str, yaml.Node]] = []
        for entity, kn, vn in self.items(v, what):
            cols: list[str] = []
            if is_sequence(vn):
                for item in vn.value:
                    s = self.string(item, f"a column of '{entity}' in {what}", "name", "a column name")
                    if s is not None:
                        cols.append(s)
                if not vn.value:
                    self.error(vn, f"the columns of '{entity}' in {what} must not be empty", "e.g. {user: user_id}")
                    continue
            else:
                s = self.string(vn, f"the column of '{entity}' in {what}", "name", "a column name, or a list for a composite key")
                if s is None:
                    continue
                cols.append(s)
            if len(cols) == (len(vn.value) if is_sequence(vn) else 1):
                out[entity] = tuple(cols)
                parts.append((entity, kn))
        return _V(out, v, k, parts)

    def checks(self, k: yaml.Node, v: yaml.Node, where: str) -> _V | None:
        if not is_mapping(v):
            self.type_error(v, f"'checks' in {where}", "a mapping of column -> checks", "e.g. checks: {amount: {not_null: true, min: 0}}")
            return None
        out: list[CheckSpec] = []
        assert self.cur is not None
        for column, kn, vn in self.items(v, f"the checks of {where}"):
            cwhere = f"the checks of column '{column}' in {where}"
            vals = self.read_fields(_Entry(column, kn, vn, self.cur), F.CHECK, cwhere)
            if vals is None:
                continue
            lo, hi = _val(vals, "min"), _val(vals, "max")
            if lo is not None and hi is not None and lo > hi:
                self.error(vals["min"].node, f"min {lo} is greater than max {hi} in {cwhere}", "swap them")
            out.append(
                CheckSpec(
                    column=column,
                    not_null=bool(_val(vals, "not_null", False)),
                    min=None if lo is None else float(lo),
                    max=None if hi is None else float(hi),
                    allowed=_val(vals, "in"),
                    regex=_val(vals, "regex"),
                    unique=bool(_val(vals, "unique", False)),
                    dtype=_val(vals, "type"),
                    loc=self.loc(kn),
                )
            )
        return _V(tuple(out), v, k)

    def split(self, k: yaml.Node, v: yaml.Node, where: str) -> _V | None:
        """A model's split: SPLIT fields, dates as UTC datetimes (naive ones in the project's zone)."""
        if not is_mapping(v):
            self.type_error(v, f"'split' in {where}", "a mapping", "e.g. split: {valid_start: 2024-03-01, test_start: 2024-04-01}")
            return None
        assert self.cur is not None
        vals = self.read_fields(_Entry("split", k, v, self.cur), F.SPLIT, f"the split of {where}")
        if vals is None:
            return None
        out = {name: self.utc(x.value) if isinstance(x.value, datetime) else x.value for name, x in vals.items()}
        return _V(out, v, k, [(name, x.node) for name, x in vals.items()])

    def plain(self, v: yaml.Node, what: str) -> Any:
        """A free-form value as plain Python, with duplicate keys reported."""
        if is_mapping(v):
            return {key: self.plain(vn, what) for key, _kn, vn in self.items(v, what)}
        if is_sequence(v):
            return [self.plain(item, what) for item in v.value]
        value = scalar_value(v)
        if isinstance(value, datetime | date):
            return value.isoformat()
        return value

    # ------------------------------------------------------------------ pass 2: build
    def build(self, root: Path, paths: list[Path]) -> Definitions | None:
        timezone = self.build_timezone()
        cutoff = self.build_cutoff()
        entities = self.build_all("entities", self.build_entity)
        sources = self.build_all("sources", lambda e, v, w: self.build_source(e, v, w, entities))
        features = self.build_all("features", lambda e, v, w: self.build_feature(e, v, w, entities, sources))
        labels = self.build_all("labels", lambda e, v, w: self.build_label(e, v, w, entities, sources))
        spines = self.build_all("spines", lambda e, v, w: self.build_spine(e, v, w, entities, sources))
        self.check_derived(features, labels)
        self.check_name_clashes()
        training_sets = self.build_all("training_sets", lambda e, v, w: self.build_training_set(e, v, w, features, labels, spines, sources))
        models = self.build_all("models", lambda e, v, w: self.build_model(e, v, w, training_sets))
        serving_logs = self.build_all("serving_logs", lambda e, v, w: self.build_serving_log(e, v, w, entities, training_sets, features))
        skew = self.build_skew()
        if self.diags:
            return None
        return Definitions(
            root=str(root),
            files=tuple(str(p) for p in paths),
            timezone=timezone,
            cutoff=cutoff,
            entities=entities,
            sources=sources,
            features=features,
            labels=labels,
            spines=spines,
            training_sets=training_sets,
            models=models,
            serving_logs=serving_logs,
            skew=skew,
        )

    def build_all(self, section: str, build: Callable[[_Entry, dict[str, _V], str], Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        sec = F.SECTIONS[section]
        for name, entry in self.entries[section].items():
            where = f"{sec.kind} '{name}'"
            vals = self.read_fields(entry, sec.fields, where)
            if vals is None:
                continue
            self.cur = entry.file
            spec = build(entry, vals, where)
            if spec is not None:
                out[name] = spec
        return out

    def build_timezone(self) -> str:
        entry = self.singletons.get("timezone")
        if entry is None:
            return "UTC"
        self.cur = entry.file
        name = self.string(entry.node, "'timezone'", "str", F.TOP_LEVEL["timezone"].description)
        if name is None or not self.check_timezone(name, entry.node):
            return "UTC"
        self.tz_name = name
        return name

    def check_timezone(self, name: str, node: yaml.Node) -> bool:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(name)
            return True
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zones = zoneinfo.available_timezones()
            hint = did_you_mean(name, zones) or "use an IANA name such as UTC, Europe/Paris or America/New_York"
            self.error(node, f"unknown timezone '{name}'", hint)
            return False

    def build_cutoff(self) -> Cutoff:
        entry = self.singletons.get("cutoff")
        if entry is None:
            return Cutoff.EXCLUSIVE
        self.cur = entry.file
        v = self.convert(F.TOP_LEVEL["cutoff"], entry.key_node, entry.node, "the project")
        return Cutoff(v.value) if v is not None else Cutoff.EXCLUSIVE

    def utc(self, dt: datetime) -> datetime:
        if dt.tzinfo is None:
            import zoneinfo

            dt = dt.replace(tzinfo=zoneinfo.ZoneInfo(self.tz_name))
        return dt.astimezone(UTC)

    def resolve_path(self, v: _V, entry: _Entry) -> str:
        """Relative to the YAML file's folder; `~` expanded; an object-store URL (`s3://...`) kept as it is."""
        if is_url(str(v.value)):
            return str(v.value)
        p = os.path.expanduser(str(v.value))
        if not os.path.isabs(p):
            p = os.path.join(entry.file.folder, p)
        return os.path.normpath(p)

    def ref(self, v: _V | None, section: str, names: Mapping[str, Any], where: str, *, node: yaml.Node | None = None, value: str | None = None) -> bool:
        """Check a reference; report `unknown entity 'usr' in feature 'x'` with a did-you-mean."""
        if v is None and value is None:
            return False
        name = value if value is not None else str(v.value) if v is not None else ""
        at = node if node is not None else v.node if v is not None else None
        if name in names:
            return True
        if name in self.entries[section]:
            return False  # defined, but broken: already reported
        kind = F.SECTIONS[section].kind
        self.error(at, f"unknown {kind} '{name}' in {where}", ref_hint(name, self.entries[section], section))
        return False

    def positive(self, vals: dict[str, _V], key: str, where: str, hint: str, *, allow_zero: bool = False) -> None:
        v = vals.get(key)
        if v is None:
            return
        td: timedelta = v.value
        bad = td < timedelta(0) if allow_zero else td <= timedelta(0)
        if bad:
            rule = "must not be negative" if allow_zero else "must be positive"
            self.error(v.node, f"{key} {rule} in {where} (got {v.node.value})", hint)

    def parse_expression(self, v: _V | None, where: str) -> Node | None:
        if v is None:
            return None
        try:
            return parse_expr(str(v.value))
        except ExprError as exc:
            self.error(v.node, f"invalid expression in '{v.key_node.value}' of {where}: {exc.message}", exc.hint or EXPR_HINT, col_offset=expr_offset(v.node, exc.pos))
            return None

    def forbid(self, vals: dict[str, _V], keys: tuple[str, ...], message: str, hint: str) -> None:
        for key in keys:
            if key in vals:
                self.error(vals[key].key_node, message.format(field=key), hint)

    # --- entities
    def build_entity(self, entry: _Entry, vals: dict[str, _V], where: str) -> EntitySpec | None:
        keys = vals.get("keys")
        if keys is None:
            return None
        dup = _first_duplicate(keys.parts)
        if dup is not None:
            self.error(dup[1], f"key '{dup[0]}' is listed twice in {where}", "list each key column once")
        return EntitySpec(entry.name, keys.value, self.loc(entry.key_node))

    # --- sources
    def build_source(self, entry: _Entry, vals: dict[str, _V], where: str, entities: Mapping[str, EntitySpec]) -> SourceSpec | None:
        path = vals.get("path")
        keys = self.check_keys(vals.get("keys"), entities, where)
        self.positive(vals, "lag", where, "a negative lag would make rows available before they happen", allow_zero=True)
        if "available_time" in vals and "lag" in vals:
            self.error(vals["lag"].key_node, f"{where} sets both available_time and lag", "use available_time (a column) or lag (a fixed delay), not both")
        if "event_time" not in vals:
            self.forbid(vals, ("available_time", "lag", "observed_until"), f"'{{field}}' needs event_time: {where} has none (a static table)", "set event_time, or remove it")
        tz = vals.get("timezone")
        if tz is not None:
            self.check_timezone(str(tz.value), tz.node)
        checks = vals.get("checks")
        if path is None:
            return None
        return SourceSpec(
            name=entry.name,
            path=self.resolve_path(path, entry),
            event_time=_val(vals, "event_time"),
            keys=keys,
            format=_val(vals, "format"),
            available_time=_val(vals, "available_time"),
            lag=_val(vals, "lag", timedelta(0)),
            timezone=_val(vals, "timezone"),
            timestamp_format=_val(vals, "timestamp_format"),
            time_unit=_val(vals, "time_unit"),
            cutoff=_cutoff(vals),
            observed_until=self.utc(vals["observed_until"].value) if "observed_until" in vals else None,
            checks=checks.value if checks is not None else (),
            on_fail=_val(vals, "on_fail", "fail"),
            loc=self.loc(entry.key_node),
        )

    def check_keys(self, v: _V | None, entities: Mapping[str, EntitySpec], where: str) -> dict[str, tuple[str, ...]]:
        if v is None:
            return {}
        out: dict[str, tuple[str, ...]] = {}
        for entity, kn in v.parts:
            cols = v.value[entity]
            if not self.ref(None, "entities", entities, f"the keys of {where}", node=kn, value=entity):
                continue
            want = entities[entity].keys
            if len(cols) != len(want):
                example = "[" + ", ".join(want) + "]"
                self.error(
                    kn,
                    f"entity '{entity}' has {len(want)} key{'s' if len(want) != 1 else ''} ({', '.join(want)}) but the keys of {where} give {len(cols)} column{'s' if len(cols) != 1 else ''}",
                    f"map one column per key, in order: {{{entity}: {example if len(want) > 1 else want[0]}}}",
                )
                continue
            out[entity] = cols
        return out

    # --- features
    def build_feature(self, entry: _Entry, vals: dict[str, _V], where: str, entities: Mapping[str, EntitySpec], sources: Mapping[str, SourceSpec]) -> FeatureSpec | None:
        loc = self.loc(entry.key_node)
        if "expr" in vals:
            self.forbid(
                vals,
                ("entity", "source", "column", "agg", "window", "where", "ttl", "hop", "cutoff", "skip_nulls", "k", "ddof"),
                f"a derived feature (expr) cannot have '{{field}}' ({where})",
                "expr computes from other features of the same row; remove this field, or remove expr",
            )
            node = self.parse_expression(vals["expr"], where)
            if node is not None:
                self.derived[entry.name] = (node, vals["expr"].node)
            return FeatureSpec(
                name=entry.name,
                expr=vals["expr"].value,
                default=_val(vals, "default"),
                dtype=_val(vals, "dtype"),
                description=_val(vals, "description"),
                loc=loc,
            )
        if "source" not in vals and "agg" not in vals and not self._present(entry.node, "expr"):
            self.error(entry.key_node, f"{where} needs either source and agg (an aggregation) or expr (a derived feature)", "e.g. {entity: user, source: transactions, column: amount, agg: sum, window: 7d}")
            return None
        ok = self.check_aggregation(entry, vals, where, entities, sources, F.FEATURE)
        agg = _val(vals, "agg")
        if agg is not None:
            if agg in LOOKUP_AGGS and "window" in vals:
                self.error(vals["window"].key_node, f"window does not apply to agg: latest ({where})", "a lookup takes the latest visible row; bound its staleness with ttl: instead")
            if agg not in LOOKUP_AGGS and "ttl" in vals:
                self.error(vals["ttl"].key_node, f"ttl only applies to agg: latest, not '{agg}' ({where})", "bound an aggregation with window: instead")
            if agg == "last_k" and "k" not in vals:
                self.error(vals["agg"].node, f"agg 'last_k' needs k in {where}", "set k: the number of values to keep, e.g. k: 5")
            if agg != "last_k" and "k" in vals:
                self.error(vals["k"].key_node, f"k only applies to agg: last_k, not '{agg}' ({where})", "remove k")
        ttl = vals.get("ttl")
        if ttl is not None and ttl.value <= timedelta(0):
            hint = "omit ttl for an unbounded lookup" if ttl.value == timedelta(0) else "ttl is how old a row may be; use e.g. 30d"
            self.error(ttl.node, f"ttl must be positive in {where} (got {ttl.node.value})", hint)
        self.positive(vals, "window", where, "a zero or negative window would see nothing, or the future; use e.g. 7d")
        self.positive(vals, "hop", where, "hop rounds the window start; use e.g. 1h")
        if "hop" in vals and "window" not in vals:
            self.error(vals["hop"].key_node, f"hop needs a window ({where})", "hop rounds the start of the window; set window: too")
        k = vals.get("k")
        if k is not None and k.value < 1:
            self.error(k.node, f"k must be at least 1 in {where} (got {k.value})", "k is how many values last_k keeps")
        ddof = vals.get("ddof")
        if ddof is not None and ddof.value < 0:
            self.error(ddof.node, f"ddof must not be negative in {where} (got {ddof.value})", "ddof 1 (the default) gives the sample std/var, 0 the population's")
        self.parse_expression(vals.get("where"), where)
        if not ok:
            return None
        return FeatureSpec(
            name=entry.name,
            entity=_val(vals, "entity"),
            source=_val(vals, "source"),
            column=_val(vals, "column"),
            agg=agg,
            window=_val(vals, "window"),
            where=_val(vals, "where"),
            default=_val(vals, "default"),
            ttl=_val(vals, "ttl"),
            hop=_val(vals, "hop"),
            cutoff=_cutoff(vals),
            skip_nulls=bool(_val(vals, "skip_nulls", False)),
            k=_val(vals, "k"),
            ddof=_val(vals, "ddof", 1),
            dtype=_val(vals, "dtype"),
            description=_val(vals, "description"),
            loc=loc,
        )

    def check_aggregation(self, entry: _Entry, vals: dict[str, _V], where: str, entities: Mapping[str, EntitySpec], sources: Mapping[str, SourceSpec], table: Mapping[str, F.Field]) -> bool:
        """Checks shared by features and labels: entity, source, their keys, agg and column. True when usable."""
        ok = True
        for key in ("entity", "source") + (("agg",) if table is F.FEATURE else ()):
            if key not in vals and not self._present(entry.node, key):
                self.missing(entry, table[key], where)
                ok = False
        ent_ok = self.ref(vals.get("entity"), "entities", entities, where)
        src_ok = self.ref(vals.get("source"), "sources", sources, where)
        if ent_ok and src_ok:
            entity, source = vals["entity"].value, vals["source"].value
            if entity not in sources[source].keys:
                self.error(vals["entity"].node, f"source '{source}' has no keys for entity '{entity}' ({where})", f"add keys: {{{entity}: <column>}} to source '{source}'")
                ok = False
        agg = _val(vals, "agg", "count")
        if isinstance(agg, str) and agg not in AGGS_WITHOUT_COLUMN and not self._present(entry.node, "column"):
            at = vals["agg"].node if "agg" in vals else entry.key_node
            self.error(at, f"agg '{agg}' needs a column in {where}", "set column: (only " + ", ".join(sorted(AGGS_WITHOUT_COLUMN)) + " work without one)")
            ok = False
        if src_ok and sources[vals["source"].value].event_time is None:
            source = vals["source"].value
            for key in ("window", "ttl", "horizon"):
                if key in vals:
                    self.error(vals[key].key_node, f"'{key}' needs event time, but source '{source}' has no event_time (a static table) ({where})", f"remove {key}, or set event_time on source '{source}'")
                    ok = False
            if agg in ("time_since_last", "time_since_first", "first", "last", "last_k") or table is F.LABEL:
                at = vals["agg"].node if "agg" in vals else vals["source"].node
                self.error(at, f"agg '{agg}' needs event time, but source '{source}' has no event_time (a static table) ({where})", f"set event_time on source '{source}', or use agg: latest")
                ok = False
        return ok and ent_ok and src_ok

    # --- labels
    def build_label(self, entry: _Entry, vals: dict[str, _V], where: str, entities: Mapping[str, EntitySpec], sources: Mapping[str, SourceSpec]) -> LabelSpec | None:
        loc = self.loc(entry.key_node)
        self.check_label_expr(entry.name, vals.get("expr"), where)
        if "spine_column" in vals:
            self.forbid(
                vals,
                ("entity", "source", "column", "agg", "horizon", "gap", "where", "censor", "observed_until", "cutoff"),
                f"a label read from the spine (spine_column) cannot have '{{field}}' ({where})",
                "remove this field, or remove spine_column to compute the label from a source",
            )
            return LabelSpec(
                name=entry.name,
                spine_column=vals["spine_column"].value,
                default=_val(vals, "default"),
                expr=_val(vals, "expr"),
                loc=loc,
            )
        ok = self.check_aggregation(entry, vals, where, entities, sources, F.LABEL)
        if "horizon" not in vals and not self._present(entry.node, "horizon"):
            self.missing(entry, F.LABEL["horizon"], where)
            ok = False
        agg = _val(vals, "agg", "count")
        if agg in ("latest", "last_k"):
            self.error(vals["agg"].node, f"agg '{agg}' cannot be a label ({where})", "labels aggregate a forward window: use count, sum, max, first, last, ...")
            ok = False
        self.positive(vals, "horizon", where, "a zero or negative horizon would look at the past the features see; use e.g. 30d")
        self.positive(vals, "gap", where, "a negative gap overlaps the label window with the features' past (leakage)", allow_zero=True)
        self.parse_expression(vals.get("where"), where)
        if not ok:
            return None
        return LabelSpec(
            name=entry.name,
            entity=_val(vals, "entity"),
            source=_val(vals, "source"),
            column=_val(vals, "column"),
            agg=agg,
            horizon=_val(vals, "horizon"),
            gap=_val(vals, "gap", timedelta(0)),
            where=_val(vals, "where"),
            default=_val(vals, "default"),
            expr=_val(vals, "expr"),
            censor=_val(vals, "censor", "drop"),
            observed_until=self.utc(vals["observed_until"].value) if "observed_until" in vals else None,
            cutoff=_cutoff(vals),
            loc=loc,
        )

    def check_label_expr(self, name: str, v: _V | None, where: str) -> None:
        node = self.parse_expression(v, where)
        if node is None or v is None:
            return
        for ref, pos in referenced_names(node):
            if ref != name:
                self.error(v.node, f"the expr of {where} can only use the label's own name '{name}', not '{ref}'", f"the label's aggregate is called '{name}', e.g. expr: \"{name} > 0\"", col_offset=expr_offset(v.node, pos))

    # --- spines
    def build_spine(self, entry: _Entry, vals: dict[str, _V], where: str, entities: Mapping[str, EntitySpec], sources: Mapping[str, SourceSpec]) -> SpineSpec | None:
        kinds = [k for k in ("source", "path", "every") if k in vals]
        if len(kinds) != 1:
            given = " and ".join(kinds) if kinds else "none"
            at = vals[kinds[1]].key_node if len(kinds) > 1 else entry.key_node
            self.error(at, f"{where} needs exactly one of source, path or every (got {given})", "source: one row per source row; path: a file of keys and times; every: a schedule")
            return None
        kind = kinds[0]
        ok = True
        keys = self.check_keys(vals.get("keys"), entities, where)
        if kind == "source":
            ok = self.ref(vals["source"], "sources", sources, where)
            if ok and sources[vals["source"].value].event_time is None:
                self.error(vals["source"].node, f"source '{vals['source'].value}' has no event_time, so it cannot give spine times ({where})", "use a source with event_time, a file (path:) or a schedule (every:)")
                ok = False
            self.parse_expression(vals.get("where"), where)
        elif kind == "path":
            if "time" not in vals and not self._present(entry.node, "time"):
                self.error(entry.key_node, f"missing required field 'time' in {where}", "time: the column of the file holding the prediction instants")
                ok = False
        else:
            self.positive(vals, "every", where, "every is the time between ticks, e.g. 1d")
            self.positive(vals, "lookback", where, "lookback is how far back an entity must have been seen, e.g. 30d")
            if "entities_from" in vals:
                ok = self.ref(vals["entities_from"], "sources", sources, where)
            start, end = vals.get("start"), vals.get("end")
            if start is not None and end is not None and self.utc(start.value) >= self.utc(end.value):
                self.error(end.node, f"end must be after start in {where}", "the schedule runs from start (inclusive) to end")
        if not ok:
            return None
        if "offset" in vals and kind != "source":
            self.error(vals["offset"].key_node, f"offset only applies to a spine from a source ({where})", "remove offset")
        tz = vals.get("timezone")
        if tz is not None:
            self.check_timezone(str(tz.value), tz.node)
        cols = vals.get("columns")
        return SpineSpec(
            name=entry.name,
            source=_val(vals, "source"),
            offset=_val(vals, "offset", timedelta(0)),
            where=_val(vals, "where"),
            path=self.resolve_path(vals["path"], entry) if "path" in vals else None,
            time=_val(vals, "time"),
            keys=keys,
            format=_val(vals, "format"),
            timezone=_val(vals, "timezone"),
            timestamp_format=_val(vals, "timestamp_format"),
            time_unit=_val(vals, "time_unit"),
            columns=cols.value if cols is not None else None,
            every=_val(vals, "every"),
            start=self.utc(vals["start"].value) if "start" in vals else None,
            end=self.utc(vals["end"].value) if "end" in vals else None,
            entities_from=_val(vals, "entities_from"),
            lookback=_val(vals, "lookback"),
            loc=self.loc(entry.key_node),
        )

    # --- derived features
    def check_derived(self, features: Mapping[str, FeatureSpec], labels: Mapping[str, LabelSpec]) -> None:
        deps: dict[str, list[str]] = {}
        for name, (node, vnode) in self.derived.items():
            self.cur = self.entries["features"][name].file
            deps[name] = []
            where = f"feature '{name}'"
            for ref, pos in referenced_names(node):
                off = expr_offset(vnode, pos)
                if ref in self.entries["features"]:
                    if ref not in deps[name]:
                        deps[name].append(ref)
                elif ref in self.entries["labels"]:
                    self.error(vnode, f"label '{ref}' cannot be used in {where}", "labels look at the future: a feature computed from one would leak it", col_offset=off)
                else:
                    self.error(vnode, f"unknown feature '{ref}' in the expr of {where}", ref_hint(ref, self.entries["features"], "features"), col_offset=off)
        reported: set[frozenset[str]] = set()
        order = list(self.entries["features"])
        state: dict[str, int] = {}  # 1 on the stack, 2 done
        stack: list[str] = []

        def visit(n: str) -> None:
            state[n] = 1
            stack.append(n)
            for d in deps.get(n, []):
                if state.get(d) == 1:
                    cycle = stack[stack.index(d) :]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        first = min(cycle, key=order.index)
                        i = cycle.index(first)
                        path = [*cycle[i:], *cycle[:i], first]
                        vnode = self.derived[first][1]
                        self.cur = self.entries["features"][first].file
                        self.error(vnode, "cycle among derived features: " + " -> ".join(path), "a derived feature cannot depend on itself, directly or through others")
                elif state.get(d) is None and d in deps:
                    visit(d)
            stack.pop()
            state[n] = 2

        for n in order:
            if n in deps and state.get(n) is None:
                visit(n)

    def check_name_clashes(self) -> None:
        for name, entry in self.entries["labels"].items():
            other = self.entries["features"].get(name)
            if other is not None:
                first, second = (other, entry) if (other.file.display, other.key_node.start_mark.line) <= (entry.file.display, entry.key_node.start_mark.line) else (entry, other)
                self.cur = second.file
                self.error(second.key_node, f"'{name}' is both a feature and a label", f"training set columns are named after them; rename one (the other is at {self.loc(first.key_node, first.file)})")

    def feature_deps(self, name: str, seen: set[str] | None = None) -> list[str]:
        """`name` and every feature it depends on (derived features' inputs), without cycles."""
        seen = seen if seen is not None else set()
        if name in seen:
            return []
        seen.add(name)
        out = [name]
        if name in self.derived:
            for ref, _pos in referenced_names(self.derived[name][0]):
                if ref in self.entries["features"]:
                    out.extend(self.feature_deps(ref, seen))
        return out

    # --- training sets
    def build_training_set(self, entry: _Entry, vals: dict[str, _V], where: str, features: Mapping[str, FeatureSpec], labels: Mapping[str, LabelSpec], spines: Mapping[str, SpineSpec], sources: Mapping[str, SourceSpec]) -> TrainingSetSpec | None:
        ok = self.ref(vals.get("spine"), "spines", spines, where)
        spine_entities: set[str] | None = None
        if ok:
            spine = spines[vals["spine"].value]
            origin = spine.source if spine.kind == "source" else spine.entities_from
            if spine.kind == "file":
                spine_entities = set(spine.keys)
            elif origin is not None and origin in sources:
                spine_entities = set(sources[origin].keys)
        listed = vals.get("features")
        seen: set[str] = set()
        for name, node in listed.parts if listed is not None else []:
            if name in seen:
                self.error(node, f"feature '{name}' is listed twice in {where}", "list each feature once")
                ok = False
                continue
            seen.add(name)
            if name in self.entries["labels"] and name not in self.entries["features"]:
                self.error(node, f"'{name}' is a label, not a feature ({where})", f"set it as the label: label: {name}")
                ok = False
                continue
            if not self.ref(None, "features", features, where, node=node, value=name):
                ok = False
                continue
            if spine_entities is not None:
                for dep in self.feature_deps(name):
                    ent = features[dep].entity if dep in features else None
                    if ent is not None and ent not in spine_entities:
                        via = "" if dep == name else f" (through '{dep}')"
                        self.error(node, f"feature '{name}'{via} is keyed by entity '{ent}' but spine '{vals['spine'].value}' has no keys for it ({where})", f"use a spine with keys for '{ent}'")
                        ok = False
                        break
        label = vals.get("label")
        if label is not None:
            if label.value in self.entries["features"] and label.value not in self.entries["labels"]:
                self.error(label.node, f"'{label.value}' is a feature, not a label ({where})", "labels are defined under labels:, with a horizon")
                ok = False
            elif not self.ref(label, "labels", labels, where):
                ok = False
            elif spine_entities is not None:
                ent = labels[label.value].entity
                if ent is not None and ent not in spine_entities:
                    self.error(label.node, f"label '{label.value}' is keyed by entity '{ent}' but spine '{vals['spine'].value}' has no keys for it ({where})", f"use a spine with keys for '{ent}'")
                    ok = False
        if not ok or listed is None:
            return None
        return TrainingSetSpec(
            name=entry.name,
            spine=vals["spine"].value,
            features=listed.value,
            label=_val(vals, "label"),
            description=_val(vals, "description"),
            loc=self.loc(entry.key_node),
        )

    # --- models
    def build_model(self, entry: _Entry, vals: dict[str, _V], where: str, training_sets: Mapping[str, TrainingSetSpec]) -> ModelSpec | None:
        ok = self.ref(vals.get("training_set"), "training_sets", training_sets, where)
        chosen = vals.get("features")
        if ok and chosen is not None:
            ts = training_sets[vals["training_set"].value]
            for name, node in chosen.parts:
                if name not in ts.features:
                    self.error(node, f"feature '{name}' is not in training set '{ts.name}' ({where})", did_you_mean(name, ts.features) or "its features: " + ", ".join(ts.features))
                    ok = False
        for key in ("num_boost_round", "early_stopping_rounds"):
            v = vals.get(key)
            if v is not None and v.value < 1:
                self.error(v.node, f"{key} must be at least 1 in {where} (got {v.value})", F.MODEL[key].description)
        if not ok:
            return None
        defaults = ModelSpec(name="", training_set="")
        return ModelSpec(
            name=entry.name,
            training_set=vals["training_set"].value,
            objective=_val(vals, "objective", defaults.objective),
            params=_val(vals, "params", {}),
            features=chosen.value if chosen is not None else None,
            split=_val(vals, "split", {}),
            split_as_written={name: _as_written(node) for name, node in vals["split"].parts} if "split" in vals else None,
            num_boost_round=_val(vals, "num_boost_round", defaults.num_boost_round),
            early_stopping_rounds=_val(vals, "early_stopping_rounds", defaults.early_stopping_rounds),
            seed=_val(vals, "seed", defaults.seed),
            gates=_val(vals, "gates", {}),
            loc=self.loc(entry.key_node),
        )

    # --- serving logs
    def build_serving_log(self, entry: _Entry, vals: dict[str, _V], where: str, entities: Mapping[str, EntitySpec], training_sets: Mapping[str, TrainingSetSpec], features: Mapping[str, FeatureSpec]) -> ServingLogSpec | None:
        ok = True
        if entry.name not in training_sets:
            ok = False
            if entry.name not in self.entries["training_sets"]:
                self.error(entry.key_node, f"serving log '{entry.name}' names no training set", "serving logs are keyed by training set name; " + ref_hint(entry.name, self.entries["training_sets"], "training_sets"))
        keys = self.check_keys(vals.get("keys"), entities, where)
        cols = vals.get("columns")
        if cols is not None:
            for name, node in cols.parts:
                if ok and name not in training_sets[entry.name].features:
                    self.error(node, f"feature '{name}' in the columns of {where} is not in training set '{entry.name}'", did_you_mean(name, training_sets[entry.name].features) or "its features: " + ", ".join(training_sets[entry.name].features))
        if not ok or "path" not in vals or "time" not in vals:
            return None
        return ServingLogSpec(
            name=entry.name,
            path=self.resolve_path(vals["path"], entry),
            time=vals["time"].value,
            row_id=_val(vals, "row_id"),
            keys=keys,
            columns=_val(vals, "columns", {}),
            format=_val(vals, "format"),
            timezone=_val(vals, "timezone"),
            loc=self.loc(entry.key_node),
        )

    # --- skew thresholds
    def build_skew(self) -> SkewSpec:
        base: dict[str, float] = {}
        for name, entry in self.skew_defaults.items():
            self.cur = entry.file
            fdef = F.THRESHOLDS.get(name)
            if fdef is None:
                self.error(entry.key_node, f"unknown field '{name}' in skew.defaults", did_you_mean(name, F.THRESHOLDS) or "allowed: " + ", ".join(F.THRESHOLDS))
                continue
            v = self.convert(fdef, entry.key_node, entry.node, "skew.defaults")
            if v is not None:
                base[name] = self.threshold(v, name, "skew.defaults")
        defaults = Thresholds(**base)
        per: dict[str, Thresholds] = {}
        for name, entry in self.skew_features.items():
            where = f"skew.features '{name}'"
            if name not in self.entries["features"]:
                self.cur = entry.file
                self.error(entry.key_node, f"unknown feature '{name}' in skew.features", ref_hint(name, self.entries["features"], "features"))
                continue
            vals = self.read_fields(entry, F.THRESHOLDS, where)
            if vals is None:
                continue
            per[name] = Thresholds(**{**base, **{k: self.threshold(v, k, where) for k, v in vals.items()}})
        loc = self.loc(self.skew_node.key_node, self.skew_node.file) if self.skew_node else Location("<memory>", 0, 0)
        return SkewSpec(defaults=defaults, features=per, loc=loc)

    def threshold(self, v: _V, name: str, where: str) -> float:
        value = float(v.value)
        if value < 0:
            self.error(v.node, f"'{name}' in {where} must not be negative (got {v.value})", "thresholds are shares or tolerances, e.g. 0.01")
        return value


# ---------------------------------------------------------------------- helpers
def sort_diagnostics(diags: list[Diagnostic]) -> list[Diagnostic]:
    return sorted(diags, key=lambda d: (d.file or "", d.line or 0, d.col or 0))


def ref_hint(name: str, defined: Mapping[str, Any], section: str) -> str:
    plural = section.replace("_", " ")
    return did_you_mean(name, defined) or (f"defined {plural}: " + ", ".join(defined) if defined else f"no {plural} are defined")


def expr_offset(node: yaml.Node, pos: int) -> int:
    """Column offset of position `pos` of an expression inside its scalar node (0 when multi-line)."""
    if node.start_mark.line != node.end_mark.line:
        return 0
    style = getattr(node, "style", None)
    return pos + (1 if style in ("'", '"') else 0)


def _val(vals: Mapping[str, _V], key: str, default: Any = None) -> Any:
    v = vals.get(key)
    return default if v is None else v.value


def _cutoff(vals: Mapping[str, _V]) -> Cutoff | None:
    v = vals.get("cutoff")
    return None if v is None else Cutoff(v.value)


def _first_duplicate(parts: list[tuple[str, yaml.Node]]) -> tuple[str, yaml.Node] | None:
    seen: set[str] = set()
    for name, node in parts:
        if name in seen:
            return name, node
        seen.add(name)
    return None


def _same_scalar(a: yaml.Node, b: yaml.Node) -> bool:
    return is_scalar(a) and is_scalar(b) and a.value == b.value


def _as_written(node: yaml.Node) -> Any:
    """A scalar as the YAML gives it (dates and times as ISO strings, as `plain` gives them)."""
    value = scalar_value(node)
    return value.isoformat() if isinstance(value, datetime | date) else value


def _as_datetime(raw: Any) -> datetime | None:
    if isinstance(raw, datetime):
        return raw
    if isinstance(raw, date):
        return datetime(raw.year, raw.month, raw.day)
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw.strip())
        except ValueError:
            return None
    return None


COUNTED = ("entities", "sources", "features", "labels", "spines", "training_sets", "models", "serving_logs")


def count_definitions(defs: Definitions) -> dict[str, int]:
    """`{"files": 2, "entities": 1, ...}`: how many of each kind the definitions hold."""
    out = {"files": len(defs.files)}
    for key in COUNTED:
        out[key] = len(getattr(defs, key))
    return out
