"""Peak memory of one partition task of a partitioned backfill, against its share of the input bytes.

    .venv/bin/python scripts/task_memory.py bench/data/M/defs 4 [--training-set bench]

Builds the training set with `--partitions N` semantics in this process, running each task with the function
a Dask worker runs (`distributed.partitioned.run_partition`). Before each task the process's peak RSS is reset
(`/proc/self/clear_refs` 5, Linux); after it, VmHWM - VmRSS(before) is the task's own peak. The first task is
the one to read (later tasks reuse memory the allocator kept, so theirs look smaller). The share is the
on-disk bytes of the sources and the file spine (what `--memory-limit` counts) divided by N.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Sequence
from typing import Any


def status(field: str) -> int:
    """A /proc/self/status memory field, in bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("defs")
    ap.add_argument("partitions", type=int)
    ap.add_argument("--training-set", default="bench")
    args = ap.parse_args()

    from fpipe.distributed import partitioned
    from fpipe.project import Project

    project = Project.load(args.defs)
    _, _, cols = project.training_set_inputs(args.training_set)
    spine = project.defs.spines[project.defs.training_sets[args.training_set].spine]
    total = partitioned.input_bytes(project.defs, cols, spine.path)
    tasks_seen: list[tuple[int, float]] = []
    peaks: list[int] = []

    def runner(tasks: Sequence[Any]) -> list[Any]:
        out = []
        for task in tasks:
            peaks.append(status("VmHWM"))
            gc.collect()
            before = status("VmRSS")
            reset_peak()
            t = time.perf_counter()
            out.append(partitioned.run_partition(task))
            tasks_seen.append((status("VmHWM") - before, time.perf_counter() - t))
        return out

    gc.collect()
    start = status("VmRSS")
    reset_peak()
    t = time.perf_counter()
    project.build_training_set(args.training_set, partitions=args.partitions, runner=runner)
    wall = time.perf_counter() - t
    share = total / args.partitions
    first = tasks_seen[0][0]
    print(
        f"N={args.partitions} tasks={len(tasks_seen)} input={total / 1e6:.1f} MB share={share / 1e6:.1f} MB wall={wall:.1f} s\n"
        f"first task peak {first / 1e6:.0f} MB = {first / share:.1f} x share; "
        f"largest task peak {max(d for d, _ in tasks_seen) / 1e6:.0f} MB; "
        f"whole build peak {(max([*peaks, status('VmHWM')]) - start) / 1e6:.0f} MB above the {start / 1e6:.0f} MB before it"
    )


if __name__ == "__main__":
    main()
