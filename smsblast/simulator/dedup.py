"""Compact sets of 64-bit message fingerprints, for duplicate and unique-destination counts.

A campaign of 17 million messages must fit: a Python ``set`` of ints costs ~64 bytes per
entry (1.1 GB at 17M), so :class:`Hash64Set` keeps fingerprints in 65,536 sorted
``array('Q')`` shards chosen by the top 16 bits: ~9 bytes per entry (~180 MB at 17M), at
~0.6 us per insert (1.5 us once the shards hold 17M, mostly cache misses).

Fingerprints are BLAKE2b with an 8-octet digest: stable across processes and runs (unlike
``hash()``, which is salted per process), and uniform, so at 17M entries the chance of any
false duplicate is about n^2 / 2^65 ~ 1e-5.
"""

from __future__ import annotations

import array
from bisect import bisect_left
from hashlib import blake2b

__all__ = ["Hash64Set", "fingerprint"]

_SHARD_BITS = 16
_SHIFT = 64 - _SHARD_BITS


def fingerprint(data: bytes) -> int:
    """Stable 64-bit fingerprint of ``data``."""
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big")


class Hash64Set:
    """An insert-only set of 64-bit ints (see the module docstring)."""

    __slots__ = ("_shards", "count")

    def __init__(self) -> None:
        self._shards: list[array.array[int] | None] = [None] * (1 << _SHARD_BITS)
        self.count = 0

    def add(self, value: int) -> bool:
        """Insert ``value`` (0 <= value < 2**64); True if it was not there yet."""
        index = value >> _SHIFT
        shard = self._shards[index]
        if shard is None:
            shard = self._shards[index] = array.array("Q")
        i = bisect_left(shard, value)
        if i < len(shard) and shard[i] == value:
            return False
        shard.insert(i, value)
        self.count += 1
        return True

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int) or not 0 <= value < 1 << 64:
            return False
        shard = self._shards[value >> _SHIFT]
        if shard is None:
            return False
        i = bisect_left(shard, value)
        return i < len(shard) and shard[i] == value

    def __len__(self) -> int:
        return self.count
