"""Shell completion of names from the definitions (training sets, sources, features).

Completion runs in a fresh process on every <TAB>: it reads the definitions (no data) from --defs,
$FPIPE_DEFS or ./feature_defs, and completes nothing when they do not load.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import typer


def _names(ctx: typer.Context, kind: str) -> list[str]:
    from fpipe.spec.loader import load_definitions

    defs_dir = None
    root = ctx.find_root()
    if root.params.get("defs"):
        defs_dir = str(root.params["defs"])
    defs_dir = defs_dir or os.environ.get("FPIPE_DEFS") or "feature_defs"
    try:
        defs = load_definitions(defs_dir)
    except Exception:
        return []
    return list(getattr(defs, kind))


def names_of(kind: str) -> Callable[[typer.Context, str], list[str]]:
    def complete(ctx: typer.Context, incomplete: str) -> list[str]:
        return [n for n in _names(ctx, kind) if n.startswith(incomplete)]

    return complete
