"""Shared test set-up. Hypothesis: a reproducible, database-free `ci` profile is the default."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from helpers import local_cluster

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
    with local_cluster() as address:
        yield address

