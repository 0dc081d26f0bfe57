"""Shared by the peers: what to compute, and the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.generate import LOOKUPS, WINDOW_AGGS, WINDOWS

DAY_US = 86_400_000_000
WINDOW_US = {"1d": DAY_US, "7d": 7 * DAY_US, "30d": 30 * DAY_US}
TTL_US = WINDOW_US
PARTS = ("all", "lookups", "windows")


def part_features(part: str) -> list[str]:
    lookups = list(LOOKUPS)
    windows = [f"amount_{a}_{w}" for w in WINDOWS for a in WINDOW_AGGS]
    return {"all": lookups + windows, "lookups": lookups, "windows": windows}[part]


def parse_args(description: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--part", choices=PARTS, default="all")
    return ap.parse_args()
