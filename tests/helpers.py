"""Helpers shared by test modules (kept out of oracle.py, which must not depend on fpipe's engine)."""

from __future__ import annotations

import pytest

from fpipe.app import main

# what tests/fixtures/defs/valid_spec_example defines (`fpipe validate --json` counts, load_definitions)
VALID_COUNTS = {
    "files": 2,
    "entities": 1,
    "sources": 3,
    "features": 4,
    "labels": 1,
    "spines": 1,
    "training_sets": 1,
    "models": 1,
    "serving_logs": 1,
}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the console entry point (where errors become exit codes); return (code, stdout, stderr)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err
