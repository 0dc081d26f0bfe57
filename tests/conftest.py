"""Shared test set-up. Hypothesis: a reproducible, database-free `ci` profile is the default."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """The address of a two-worker dask LocalCluster started outside fpipe (skips when dask is absent)."""
    distributed = pytest.importorskip("distributed", reason="dask is not installed: pip install 'fpipe[dask]'")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit="2GB"
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()
