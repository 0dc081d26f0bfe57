"""One thin module per verb: parse options -> call the core -> render.

Each module exposes `register(app)`; add new modules to ALL_COMMANDS (order = order in `fpipe --help`).
Module level imports stay light (typer, stdlib): heavy libraries are imported inside the command body.
"""

from __future__ import annotations

from types import ModuleType


def _load() -> list[ModuleType]:
    import importlib

    names = [
        "validate",
        "list_cmd",
        "schema",
        "backfill",
        "skew_report",
        "train",
        "score",
        "models",
        "explain",
        "drift",
        "late",
        "init",
    ]
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(f"fpipe.commands.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"fpipe.commands.{name}":
                raise
    return modules


ALL_COMMANDS: list[ModuleType] = _load()
