"""Helpers shared by test modules (kept out of oracle.py, which must not depend on fpipe's engine)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def local_cluster() -> Iterator[str]:
    """A two-worker dask LocalCluster started outside fpipe (worker processes: they inherit this process's
    environment as it is now); yields its scheduler address. Skips when dask is absent."""
    distributed = pytest.importorskip("distributed", reason="dask is not installed: pip install 'fpipe[dask]'")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit="2GB"
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()
