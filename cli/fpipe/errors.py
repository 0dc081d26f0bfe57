"""User-facing errors. Every mistake a user can make becomes one of these; app.py maps them to exit codes.

A `Diagnostic` is one located message, rendered compiler style:

    feature_defs/user.yaml:6:5: error: unknown field 'windw' in feature 'clicks_7d'
      hint: did you mean 'window'?
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    OK = 0
    CHECKS_FAILED = 1  # checks failed, skew found, model worse than baseline
    BAD_INPUT = 2  # usage, definition or data error


@dataclass(frozen=True)
class Diagnostic:
    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    hint: str | None = None
    severity: str = "error"

    @property
    def shown_file(self) -> str | None:
        """The file as messages show it: a URL without its query string, whoever built the diagnostic."""
        from fpipe.io.urls import is_url, shown_url  # standard library only

        return shown_url(self.file) if self.file is not None and is_url(self.file) else self.file

    @property
    def location(self) -> str:
        file = self.shown_file
        if file is None:
            return ""
        if self.line is None:
            return file
        if self.col is None:
            return f"{file}:{self.line}"
        return f"{file}:{self.line}:{self.col}"

    def format(self) -> str:
        loc = self.location
        head = f"{loc}: {self.severity}: {self.message}" if loc else f"{self.severity}: {self.message}"
        return head + (f"\n  hint: {self.hint}" if self.hint else "")

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.shown_file,
            "line": self.line,
            "col": self.col,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
        }


class FpipeError(Exception):
    """Base of every error meant for the user (no traceback unless --debug)."""

    exit_code: ExitCode = ExitCode.BAD_INPUT

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic | str, hint: str | None = None) -> None:
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics, hint=hint)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))


class DefinitionError(FpipeError):
    """The YAML definitions are wrong (exit 2)."""


class DataError(FpipeError):
    """A source, spine or serving log cannot be read as declared (exit 2)."""


class UsageError(FpipeError):
    """Command-line options are wrong (exit 2)."""


class ChecksFailed(FpipeError):
    """Data checks, a skew gate or a model gate failed (exit 1)."""

    exit_code = ExitCode.CHECKS_FAILED


def display_path(path: str | os.PathLike[str]) -> str:
    """A path relative to the working directory when it is below it (for messages); a URL as it is."""
    from fpipe.io.urls import is_url, shown_url  # standard library only

    if is_url(path):
        return shown_url(str(path))
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(p)


def data_error(file: str, message: str, hint: str | None = None) -> DataError:
    """`sample_data/events.parquet: error: column 'ts' is String, expected a timestamp` + hint."""
    return DataError(Diagnostic(message, file=file, hint=hint))
