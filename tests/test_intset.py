"""IntSet: the set semantics of a Python set of ints, in about 8 bytes a number."""

from __future__ import annotations

import random
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsblast.intset import IntSet

numbers = st.integers(min_value=0, max_value=2**64 - 1)
ops = st.lists(st.tuples(st.sampled_from(["add", "discard", "update"]), st.lists(numbers)))


@given(st.lists(numbers), ops)
def test_behaves_as_a_set(initial: list[int], operations: list[tuple[str, list[int]]]) -> None:
    model = set(initial)
    ours = IntSet(initial)
    for op, values in operations:
        if op == "update":
            ours.update(values)
            model.update(values)
        for value in values[:3]:
            if op == "add":
                assert ours.add(value) == (value not in model)
                model.add(value)
            elif op == "discard":
                assert ours.discard(value) == (value in model)
                model.discard(value)
        assert len(ours) == len(model)
    assert sorted(ours) == sorted(model)
    assert all(value in ours for value in model)
    assert all((value in ours) == (value in model) for values in operations for value in values[1])


def test_remove_raises_for_a_missing_value_and_odd_values_are_refused() -> None:
    s = IntSet([5])
    s.remove(5)
    with pytest.raises(KeyError):
        s.remove(5)
    for bad in (-1, 2**64, True, 1.0, "1"):
        assert bad not in s
    for bad_int in (-1, 2**64):
        with pytest.raises(ValueError, match="not an int in"):
            s.add(bad_int)
    assert len(s) == 0


def test_numbers_take_about_8_bytes_each() -> None:
    """A Python set of ints takes about 70 bytes each (69.5 MB for 1M, BENCHMARKS.md)."""
    rng = random.Random(3)
    values = [6281200000000 + rng.randrange(10**9) for _ in range(300_000)]
    tracemalloc.start()
    try:
        s = IntSet(values)
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(s) > 299_000
    assert size < 10 * len(s)
