"""Run the per-partition tasks on a Dask cluster (`pip install 'fpipe[dask]'`).

Every task (entity group, partition) is submitted with `Client.map`; a worker reads its partition of the
inputs itself, from the paths in the definitions (shared storage, or any URL Polars can scan), runs the
same Polars kernel as the local engine, and sends back only its partition's rows. The driver reassembles
them exactly as `--partitions` does locally, so the output is identical.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from fpipe.distributed.partitioned import Task, TaskResult, run_partition
from fpipe.errors import UsageError


def import_distributed(*also: str) -> Any:
    """The `distributed` package, or a UsageError naming the extra to install when it (or a module of `also`,
    e.g. xgboost.dask, which fails without dask) cannot be imported."""
    try:
        import distributed

        for module in also:
            importlib.import_module(module)
    except ImportError:
        raise UsageError("--engine dask needs Dask", hint="pip install 'fpipe[dask]' (dask[distributed])") from None
    return distributed


def connect(scheduler: str | None, timeout: float = 30.0, cluster: Any = None) -> Any:
    """A `distributed.Client` of `cluster` (a LocalCluster) or else of the scheduler at `scheduler`."""
    distributed = import_distributed()
    try:
        return distributed.Client(cluster if cluster is not None else scheduler, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise UsageError(
            f"--scheduler: cannot reach a Dask scheduler at '{scheduler}': {str(exc).splitlines()[0]}",
            hint="start one with `dask scheduler` and `dask worker tcp://HOST:8786`, or check the address",
        ) from None


class DaskRunner:
    """Runs the tasks on the cluster's workers (`Runner`); `close()` disconnects, also when the build stopped
    before running anything (a failed check): an open client keeps reconnecting to a scheduler that left."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __call__(self, tasks: Sequence[Task]) -> list[TaskResult]:
        futures = self.client.map(run_partition, list(tasks), pure=False)
        return list(self.client.gather(futures))

    def close(self) -> None:
        self.client.close()


def make_runner(scheduler: str, timeout: float = 30.0) -> tuple[DaskRunner, int]:
    """A runner bound to the cluster at `scheduler` (close it when the build ends), and its worker count."""
    client = connect(scheduler, timeout)
    try:
        workers = len(client.scheduler_info().get("workers", {}))
    except BaseException:
        client.close()
        raise
    return DaskRunner(client), workers
