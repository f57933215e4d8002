"""The at-least-once commit rule: commit only past contiguously completed offsets."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsblast.engine.offsets import OffsetTracker


def test_out_of_order_completion_commits_only_the_contiguous_prefix() -> None:
    t = OffsetTracker()
    for off in (10, 11, 12, 13):
        t.read("p0", off)
    t.complete("p0", 12)
    assert t.committable() == {}
    t.complete("p0", 10)
    assert t.committable() == {"p0": 11}
    t.complete("p0", 11)
    assert t.committable() == {"p0": 13}
    t.mark_committed({"p0": 13})
    assert t.committable() == {}
    t.complete("p0", 13)
    assert t.committable() == {"p0": 14}
    assert t.in_flight() == 0


def test_gaps_in_offsets_do_not_block_commits() -> None:
    t = OffsetTracker()
    t.read("p", 5)
    t.read("p", 9)  # 6-8 compacted away
    t.complete("p", 9)
    t.complete("p", 5)
    assert t.committable() == {"p": 10}


def test_partitions_are_independent_and_revoked_ones_are_forgotten() -> None:
    t = OffsetTracker()
    t.read("a", 0)
    t.read("b", 0)
    t.complete("b", 0)
    assert t.committable() == {"b": 1}
    t.forget(["a"])
    t.complete("a", 0)  # late completion of a revoked partition: ignored
    assert t.committable() == {"b": 1}
    assert t.in_flight() == 0


def test_reading_backwards_is_refused() -> None:
    t = OffsetTracker()
    t.read("p", 3)
    with pytest.raises(ValueError):
        t.read("p", 3)


@given(st.integers(1, 300), st.randoms(use_true_random=False))
def test_commit_never_passes_an_incomplete_record(n: int, rnd: random.Random) -> None:
    t = OffsetTracker()
    for off in range(n):
        t.read("p", off)
    order = list(range(n))
    rnd.shuffle(order)
    completed: set[int] = set()
    for off in order:
        t.complete("p", off)
        completed.add(off)
        pos = t.position("p")
        if pos is not None:
            assert all(o in completed for o in range(pos))  # everything below is done
            assert pos == n or pos not in completed  # and it stops at the first gap
    assert t.position("p") == n
