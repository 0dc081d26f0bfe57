"""Per-feature timings of fpipe's engine: read and normalise once, then time each feature alone.

    python -m bench.profile_features S
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bench.generate import SIZES, generate


def profile(data: Path, training_set: str = "bench") -> list[tuple[str, str, float]]:
    """(feature, kind, seconds) for every feature of the training set, in definition order."""
    from fpipe.engine import build as B
    from fpipe.engine import spine as S
    from fpipe.io.sources import read_frame
    from fpipe.project import Project

    project = Project.load(data / "defs")
    defs = project.defs
    feats, _, cols = project.training_set_inputs(training_set)
    frames = project.read_inputs(cols)
    normalised, _ = B.normalise_sources(defs, list(cols), frames)
    spec = defs.spines[defs.training_sets[training_set].spine]
    assert spec.path is not None
    spine = S.from_frame(defs, spec, read_frame(spec.path), where=spec.path)
    rows = []
    for f in feats:
        t0 = time.perf_counter()
        B.compute_feature_columns(defs, [f.name], spine, normalised)
        kind = f"{f.agg} window" if f.window is not None else f"{f.agg}"
        if f.ttl is not None:
            kind += " ttl"
        rows.append((f.name, kind, time.perf_counter() - t0))
    return rows


def main() -> None:
    size = sys.argv[1] if len(sys.argv) > 1 else "S"
    data = generate(SIZES[size])
    total = 0.0
    for name, kind, sec in profile(data):
        total += sec
        print(f"{name:22s} {kind:18s} {sec:8.3f} s")
    print(f"{'total':41s} {total:8.3f} s")


if __name__ == "__main__":
    main()
