"""Helpers shared by command modules (kept light: imported inside command bodies)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fpipe.app import GlobalOptions
    from fpipe.project import Project


def load_project(opts: GlobalOptions) -> Project:
    from fpipe.errors import UsageError
    from fpipe.project import Project

    if not opts.defs.exists():
        raise UsageError(f"definitions folder '{opts.defs}' not found", hint="pass --defs DIR, or run from the project root")
    return Project.load(opts.defs)
