"""Every kernel path against the oracle.

Windowed aggregations of a key whose windows never hold more than `SMALL_KEY_EVENTS` events
(`DIRECT_WINDOW_EVENTS` for count/sum/mean/min/max) are computed by
enumerating the in-window events; other keys use prefix sums, rolling extremes and the pending-row fix-up.
Tiny test data only has small keys, so these tests re-run the oracle comparisons with the threshold at 0
(every key takes the prefix/rolling kernels) and at 2 (mixed: both paths in one build).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import test_engine_vs_oracle as props
from fpipe.engine import events as E
from fpipe.engine import features as F
from fpipe.engine import kernels as K
from fpipe.engine import windows as W
from test_engine_rules import check_engine
from test_oracle import CASES


@contextmanager
def small_key_events(limit: int) -> Iterator[None]:
    saved = F.SMALL_KEY_EVENTS, F.DIRECT_WINDOW_EVENTS
    F.SMALL_KEY_EVENTS = F.DIRECT_WINDOW_EVENTS = limit
    try:
        yield
    finally:
        F.SMALL_KEY_EVENTS, F.DIRECT_WINDOW_EVENTS = saved


@pytest.mark.parametrize("limit", [0, 2])
@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_cases_on_every_path(name: str, limit: int) -> None:
    with small_key_events(limit):
        check_engine(CASES[name]())


@pytest.mark.parametrize("limit", [0, 2])
def test_engine_matches_oracle_on_every_path(limit: int) -> None:
    with small_key_events(limit):
        props.test_engine_matches_oracle()
        props.test_engine_window_arithmetic_matches_oracle()


@contextmanager
def packing(on: bool) -> Iterator[None]:
    """on: every event sort uses the packed (key, time) column; off: no (key, time) packing anywhere (the
    sort and the window positions take their multi-column / as-of lookup fallbacks)."""
    saved = K.PACKED_SORT_MIN_ROWS, W.PACKED_BITS
    K.PACKED_SORT_MIN_ROWS, W.PACKED_BITS = (0, 62) if on else (1 << 62, 0)
    try:
        yield
    finally:
        K.PACKED_SORT_MIN_ROWS, W.PACKED_BITS = saved


@pytest.mark.parametrize(("limit", "packed"), [(2, True), (64, False)])
def test_engine_matches_oracle_with_and_without_packed_keys(limit: int, packed: bool) -> None:
    with small_key_events(limit), packing(packed):
        props.test_engine_matches_oracle()
        props.test_engine_window_arithmetic_matches_oracle()
        props.test_engine_distinct_so_far_matches_oracle()


@pytest.mark.parametrize("limit", [0, 2])
def test_no_leakage_on_every_path(limit: int) -> None:
    with small_key_events(limit):
        props.test_engine_no_leakage()


@contextmanager
def numbered_integer_keys() -> Iterator[None]:
    """Every single integer key column numbered (`events.SPARSE_KEYS` = 0), as sparse ids are: the spine's
    keys map to `_kid` by a join instead of being their own `_kid`."""
    saved = E.SPARSE_KEYS
    E.SPARSE_KEYS = 0
    try:
        yield
    finally:
        E.SPARSE_KEYS = saved


def test_engine_matches_oracle_with_numbered_integer_keys() -> None:
    with small_key_events(2), numbered_integer_keys():  # 2: small and big keys in one build
        props.test_engine_matches_oracle()
        props.test_engine_window_arithmetic_matches_oracle()
        props.test_engine_distinct_so_far_matches_oracle()


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_cases_with_numbered_integer_keys(name: str) -> None:
    with numbered_integer_keys():
        check_engine(CASES[name]())


def test_engine_matches_oracle_with_int128_sorts_and_grouped_positions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys x time spans too wide for one int64: the event sort packs (key, time) into an Int128 and the
    window positions search groups of keys (`windows.GroupedFinder`), forced here: no int64 sort packing,
    and at most 2 keys per position group."""
    monkeypatch.setattr(K, "PACKED_SORT_MIN_ROWS", 0)
    monkeypatch.setattr(K, "PACKED_SORT_BITS", 0)
    monkeypatch.setattr(W, "GROUP_KEYS", 2)
    groups = []
    real = W.GroupedFinder.find

    def counting(self: W.GroupedFinder, at: object, inclusive: bool) -> object:
        groups.append(len(self.parts))
        return real(self, at, inclusive)  # type: ignore[arg-type]

    monkeypatch.setattr(W.GroupedFinder, "find", counting)
    with small_key_events(2):  # small keys search positions, big keys sort for prefix tables
        props.test_engine_matches_oracle()
        props.test_engine_window_arithmetic_matches_oracle()
        props.test_engine_shuffle_changes_nothing()
    assert groups and max(groups) > 1, "no scenario searched more than one group of keys"
