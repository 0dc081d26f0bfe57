"""`fpipe validate [--json] [--data]`: check the definitions (and, with --data, the data they name)."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from fpipe.app import options

HELP = """Check the definitions: syntax, fields, references, durations, expressions, cycles.

Every error is reported at once, as file:line:col with a hint. Exit 0 ok, 1 data checks failed,
2 bad definitions.

Examples:

  fpipe validate

  fpipe --defs feature_defs/shop validate --json

  fpipe validate --data
"""


def validate(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print {ok, errors, counts} as JSON on stdout."),
    data: bool = typer.Option(False, "--data", help="Also check the data: files exist, columns and types, row checks."),
) -> None:
    from fpipe.errors import DefinitionError, Diagnostic, ExitCode
    from fpipe.spec.loader import count_definitions, load_definitions

    opts = options(ctx)
    try:
        defs = load_definitions(opts.defs)
    except DefinitionError as exc:
        if opts.debug:
            raise
        _report(exc.diagnostics, {}, as_json)
        raise typer.Exit(int(ExitCode.BAD_INPUT)) from None
    counts = count_definitions(defs)
    problems: list[Diagnostic] = []
    if data:
        problems = _check_data(defs)
    errors = [d for d in problems if d.severity == "error"]
    _report(problems, counts, as_json, quiet=opts.quiet)
    if errors:
        raise typer.Exit(int(ExitCode.CHECKS_FAILED))


def _check_data(defs: Any) -> list[Any]:
    """Run `fpipe.project.check_data(defs)` when it exists (issue 7); it returns diagnostics or raises."""
    import importlib

    try:
        project = importlib.import_module("fpipe.project")
    except ModuleNotFoundError:
        return []
    check = getattr(project, "check_data", None)
    if check is None:
        return []
    result = check(defs)
    return list(result or [])


def _report(diagnostics: list[Any], counts: dict[str, int], as_json: bool, quiet: bool = False) -> None:
    errors = sum(1 for d in diagnostics if d.severity == "error")
    if as_json:
        out = {"ok": errors == 0, "errors": [d.to_json() for d in diagnostics], "counts": counts}
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return
    for d in diagnostics:
        sys.stderr.write(d.format() + "\n")
    if errors:
        sys.stderr.write(f"{errors} error{'s' if errors != 1 else ''}\n")
    elif not quiet:
        sys.stdout.write("ok: " + summary(counts) + "\n")


def summary(counts: dict[str, int]) -> str:
    """`2 files, 1 entity, 3 sources, ...` (kinds with none are left out, files always shown)."""
    singular = {
        "files": "file",
        "entities": "entity",
        "sources": "source",
        "features": "feature",
        "labels": "label",
        "spines": "spine",
        "training_sets": "training set",
        "models": "model",
        "serving_logs": "serving log",
    }
    parts = []
    for key, n in counts.items():
        if n == 0 and key != "files":
            continue
        one = singular.get(key, key)
        many = key.replace("_", " ")
        parts.append(f"{n} {one if n == 1 else many}")
    return ", ".join(parts)


def register(app: typer.Typer) -> None:
    app.command("validate", help=HELP)(validate)
