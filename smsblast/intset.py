"""A compact set of ints in ``[0, 2**64)``: the opt-out list's numbers.

Why: a Python ``set`` costs about 70 bytes a number (measured: 69.5 MB for a million
normalised Indonesian numbers), so an opt-out list of a few million numbers would take the
engine's whole memory budget (300 MB) on its own. :class:`IntSet` keeps the numbers in
sorted ``array('Q')`` shards chosen by their low bits (4,096 shards by default: the last
digits of a phone number spread evenly): 8 bytes a number plus the shards' fixed cost, at
the price of a binary search a lookup instead of a hash probe. Measured: ``BENCHMARKS.md``,
"Opt-out list memory".

A shard is a sorted array: adding or removing one number moves the shard's tail (a few
hundred numbers at 1M, a few thousand at 10M: microseconds). :meth:`update` adds many at
once by sorting each shard once. The simulator counts up to 17M message fingerprints in one
with 65,536 shards (``shard_bits=16``), so that inserts stay cheap at that size.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Final

__all__ = ["IntSet"]

_TOP: Final = 1 << 64


class IntSet:
    """A set of ints in ``[0, 2**64)``; ``ValueError`` for any other int given to add."""

    __slots__ = ("_len", "_mask", "_shards")

    def __init__(self, values: Iterable[int] = (), *, shard_bits: int = 12) -> None:
        self._shards: list[array[int] | None] = [None] * (1 << shard_bits)
        self._mask = (1 << shard_bits) - 1
        self._len = 0
        self.update(values)

    def __contains__(self, value: object) -> bool:
        if type(value) is not int or not 0 <= value < _TOP:
            return False
        shard = self._shards[value & self._mask]
        if shard is None:
            return False
        i = bisect_left(shard, value)
        return i < len(shard) and shard[i] == value

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[int]:
        """The numbers in no particular order (shard by shard)."""
        for shard in self._shards:
            if shard is not None:
                yield from shard

    def add(self, value: int) -> bool:
        """Add ``value``; True if it was not there yet."""
        # _check, inlined: the simulator adds two values a message
        if type(value) is not int or not 0 <= value < _TOP:
            raise ValueError(f"not an int in [0, 2**64): {value!r}")
        index = value & self._mask
        shard = self._shards[index]
        if shard is None:
            shard = self._shards[index] = array("Q")
        i = bisect_left(shard, value)
        if i < len(shard) and shard[i] == value:
            return False
        shard.insert(i, value)
        self._len += 1
        return True

    def discard(self, value: int) -> bool:
        """Remove ``value`` if present; True if it was there."""
        if value not in self:
            return False
        shard = self._shards[value & self._mask]
        assert shard is not None
        del shard[bisect_left(shard, value)]
        self._len -= 1
        return True

    def remove(self, value: int) -> None:
        """Remove ``value``; ``KeyError`` if it is not there."""
        if not self.discard(value):
            raise KeyError(value)

    def update(self, values: Iterable[int]) -> None:
        """Add every value (one sort a shard touched, not one insert a value)."""
        touched: dict[int, list[int]] = {}
        mask = self._mask
        for value in values:
            _check(value)
            touched.setdefault(value & mask, []).append(value)
        for index, new in touched.items():
            shard = self._shards[index]
            merged = sorted(set(new).union(shard if shard is not None else ()))
            self._len += len(merged) - (len(shard) if shard is not None else 0)
            self._shards[index] = array("Q", merged)


def _check(value: int) -> None:
    if type(value) is not int or not 0 <= value < _TOP:
        raise ValueError(f"not an int in [0, 2**64): {value!r}")
