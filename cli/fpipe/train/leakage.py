"""Leakage smells in the definitions (the data-side smell, one feature predicting the label almost
perfectly, is in trainer.smell_leakage).

Availability ignored: a feature reads a file through a source that declares no `available_time` and no
`lag`, while another source over the same file declares one. The feature then treats each row as known
at its event time, though the definitions themselves say it becomes known later.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from fpipe.spec.model import Definitions, SourceSpec


def _declares_availability(src: SourceSpec) -> bool:
    return src.available_time is not None or src.lag > timedelta(0)


def availability_warnings(defs: Definitions, features: Sequence[str]) -> list[str]:
    """One warning per source that ignores availability, naming the features (derived ones through the
    features they use) that read it."""
    from fpipe.engine.build import feature_closure

    by_path: dict[str, list[SourceSpec]] = {}
    for each in defs.sources.values():
        by_path.setdefault(each.path, []).append(each)
    offenders: dict[str, list[str]] = {}  # source -> features
    for name in features:
        if name not in defs.features:
            continue
        for dep in feature_closure(defs, [name]):
            source = defs.features[dep].source
            src = defs.sources.get(source) if source is not None else None
            if src is None or src.event_time is None or _declares_availability(src):
                continue
            twins = [s for s in by_path.get(src.path, []) if s.name != src.name and _declares_availability(s)]
            if twins and name not in offenders.setdefault(src.name, []):
                offenders[src.name].append(name)
    warnings: list[str] = []
    for source, names in offenders.items():
        src = defs.sources[source]
        other = next(s for s in by_path[src.path] if s.name != source and _declares_availability(s))
        how = f"available_time '{other.available_time}'" if other.available_time else f"lag {other.lag}"
        listed = ", ".join(f"'{n}'" for n in names)
        warnings.append(
            f"possible leakage: feature{'s' if len(names) > 1 else ''} {listed} read{'' if len(names) > 1 else 's'} "
            f"source '{source}', which ignores availability: source '{other.name}' reads the same file with {how}, "
            "so its rows become known later than their event time"
        )
    return warnings
