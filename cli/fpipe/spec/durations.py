"""Durations: the one place a duration string becomes a number.

Grammar: an optional sign, then one or more `<integer><unit>` parts, units `w d h m s ms`, e.g. `7d`,
`90m`, `1h30m`, `500ms`, `-2h`. `d` is exactly 24 hours and `w` 7 x 24 hours (UTC instants, never
calendar days). No months or years: their length is not fixed.
"""

from __future__ import annotations

import re
from datetime import timedelta

UNITS_US: dict[str, int] = {
    "w": 7 * 24 * 3600 * 1_000_000,
    "d": 24 * 3600 * 1_000_000,
    "h": 3600 * 1_000_000,
    "m": 60 * 1_000_000,
    "s": 1_000_000,
    "ms": 1_000,
}
_PART = re.compile(r"(\d+)(ms|w|d|h|m|s)")
_WHOLE = re.compile(r"^([+-]?)((?:\d+(?:ms|w|d|h|m|s))+)$")


class DurationError(ValueError):
    def __init__(self, text: str, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.text = text
        self.reason = reason
        self.hint = hint


DURATION_HINT = "write an integer and a unit: ms, s, m (minutes), h, d (24h), w (7d), e.g. '7d', '90m', '1h30m'"


def parse_duration(value: object) -> timedelta:
    """Parse `7d`, `1h30m`, `-2h`, `0s` into a timedelta (microsecond exact).

    Raises DurationError for anything else (including bare numbers, months, years, floats).
    """
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, int) and value == 0:
            return timedelta(0)
        raise DurationError(str(value), f"invalid duration {value!r}: expected a string such as '7d'", DURATION_HINT)
    text = value.strip().replace(" ", "")
    m = _WHOLE.match(text)
    if not m:
        lowered = text.lower()
        if re.search(r"\d+(mo|mon|month|months|y|yr|year|years)$", lowered):
            raise DurationError(
                value,
                f"invalid duration '{value}': months and years have no fixed length",
                "use days or weeks, e.g. '30d' or '52w'",
            )
        raise DurationError(value, f"invalid duration '{value}'", DURATION_HINT)
    sign = -1 if m.group(1) == "-" else 1
    parts = _PART.findall(m.group(2))
    units = [u for _, u in parts]
    if len(set(units)) != len(units):
        raise DurationError(value, f"invalid duration '{value}': unit repeated", DURATION_HINT)
    total_us = sum(int(n) * UNITS_US[u] for n, u in parts)
    return timedelta(microseconds=sign * total_us)


def format_duration(td: timedelta) -> str:
    """Inverse of parse_duration, in canonical compound form (`1h30m`, `30d`, `7d`, `-2h`, `0s`)."""
    us = td // timedelta(microseconds=1)
    if us == 0:
        return "0s"
    sign = "-" if us < 0 else ""
    us = abs(us)
    out = []
    for unit in ("d", "h", "m", "s", "ms"):  # days, never weeks: 30d and 7d read as users write them
        size = UNITS_US[unit]
        n, us = divmod(us, size)
        if n:
            out.append(f"{n}{unit}")
    if us:
        out.append(f"{us}us")
    return sign + "".join(out)
