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

from fpipe.distributed.partitioned import Runner, Task, TaskResult, run_partition
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


def make_runner(scheduler: str, timeout: float = 30.0) -> tuple[Runner, int]:
    """A runner bound to the cluster at `scheduler`, and its worker count."""
    client = connect(scheduler, timeout)
    workers = len(client.scheduler_info().get("workers", {}))

    def runner(tasks: Sequence[Task]) -> list[TaskResult]:
        try:
            futures = client.map(run_partition, list(tasks), pure=False)
            return list(client.gather(futures))
        finally:
            client.close()

    return runner, workers
