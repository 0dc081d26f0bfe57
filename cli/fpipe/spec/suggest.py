"""Did-you-mean hints."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """`did you mean 'window'?`, or None when nothing is close."""
    best = closest(word, candidates)
    return f"did you mean '{best}'?" if best else None


def one_of(candidates: Iterable[str]) -> str:
    names = sorted(candidates)
    if not names:
        return "none are defined"
    return "allowed: " + ", ".join(names)
