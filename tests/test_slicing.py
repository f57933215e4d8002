"""engine.slicing: a read batch cut into slices loses, repeats and reorders nothing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsblast.engine.slicing import slices


def test_a_batch_of_5000_over_4_partitions_becomes_5_slices_of_1000() -> None:
    batch = {p: list(range(p * 10_000, p * 10_000 + 1250)) for p in range(4)}
    pieces = list(slices(batch, 1000))
    assert [sum(map(len, piece.values())) for piece in pieces] == [1000] * 5
    assert list(pieces[0]) == [0]  # the first partition's first 1,000
    assert {p: len(r) for p, r in pieces[1].items()} == {0: 250, 1: 750}


def test_an_empty_batch_gives_no_slice() -> None:
    assert list(slices({}, 10)) == []
    assert list(slices({"a": []}, 10)) == []


def test_a_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        list(slices({"a": [1]}, 0))


@given(
    batch=st.dictionaries(st.integers(0, 7), st.lists(st.integers(), max_size=40), max_size=6),
    size=st.integers(1, 50),
)
def test_every_record_once_in_partition_order_no_slice_too_big(
    batch: dict[int, list[int]], size: int
) -> None:
    pieces = list(slices(batch, size))
    assert all(0 < sum(map(len, piece.values())) <= size for piece in pieces)
    joined: dict[int, list[int]] = {}
    for piece in pieces:
        for key, records in piece.items():
            joined.setdefault(key, []).extend(records)
    assert joined == {k: v for k, v in batch.items() if v}
