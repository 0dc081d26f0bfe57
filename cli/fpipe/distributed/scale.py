"""How a build ran: engine, partitions and why that many, the memory limit, and the process's peak memory.

Reported by `fpipe backfill` (summary, `--json`, manifest `run`) so that a `--memory-limit` run shows what it
chose and whether it stayed under. Standard library only: imported on every backfill.
"""

from __future__ import annotations

import dataclasses
import re
import resource
import sys
from dataclasses import dataclass
from typing import Any

from fpipe.errors import UsageError


@dataclass
class RunScale:
    """Its fields, in order, are the `run` record of `--json` and the manifest (`as_dict`)."""

    engine: str  # "local" or "dask"
    scheduler: str | None = None
    partitions: int | None = None  # None: one in-memory build
    partitions_chosen_by: str | None = None  # "--partitions", "--memory-limit 4GB", "2 x 3 Dask worker(s)"
    memory_limit_bytes: int | None = None
    input_bytes: int | None = None  # on-disk size of the inputs (read when --memory-limit chose the partitions)
    peak_rss_bytes: int | None = None  # this process's peak resident memory (Dask workers not included)

    @property
    def over_limit(self) -> bool:
        """A local build whose peak went over `--memory-limit` (a Dask driver's peak says nothing of its workers)."""
        return (
            self.engine == "local"
            and self.memory_limit_bytes is not None
            and self.peak_rss_bytes is not None
            and self.peak_rss_bytes > self.memory_limit_bytes
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (`ru_maxrss`: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def human_bytes(n: int) -> str:
    """1_234_567_890 -> '1.23 GB' (decimal units, as `--memory-limit 4GB` reads them)."""
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "KIB": 2**10, "M": 10**6, "MB": 10**6, "MIB": 2**20,
          "G": 10**9, "GB": 10**9, "GIB": 2**30, "T": 10**12, "TB": 10**12, "TIB": 2**40}


def parse_size(text: str) -> int:
    """'4GB' -> 4e9 bytes, '512MiB' -> 512 * 2**20. A unit is required ('4' is more likely 4GB mistyped than 4
    bytes, which would ask for millions of partitions), and the size must be above 0."""
    m = _SIZE_RE.match(text)
    unit = (m.group(2) or "").upper() if m else None
    if m is None or unit not in _UNITS:
        raise UsageError(f"--memory-limit: cannot read '{text}' as a size", hint="e.g. 4GB, 512MB, 2GiB")
    if not unit:
        raise UsageError(f"--memory-limit: '{text}' has no unit", hint=f"e.g. {m.group(1)}GB, {m.group(1)}MB or {m.group(1)}B")
    size = int(float(m.group(1)) * _UNITS[unit])
    if size <= 0:
        raise UsageError(f"--memory-limit: '{text}' is no memory at all", hint="e.g. 4GB")
    return size
