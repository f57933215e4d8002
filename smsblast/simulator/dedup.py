"""Message fingerprints, for duplicate and unique-destination counts, and the sets that
hold them.

A campaign of 17 million messages must fit: a Python ``set`` of ints costs ~64 bytes per
entry (1.1 GB at 17M), so :func:`fingerprint_set` keeps fingerprints in an
:class:`~smsblast.intset.IntSet` of 65,536 sorted ``array('Q')`` shards: ~9 bytes per entry
(~180 MB at 17M), at ~0.6 us per insert (1.5 us once the shards hold 17M, mostly cache
misses).

Fingerprints are Python's own ``hash()`` of the bytes (SipHash-1-3, keyed per process),
as 64 bits: the sets live and die with the simulator process, so a fingerprint never has to
mean the same thing in another process. It is a keyed hash, so no input is worse than
another, and at 17M entries the chance of any false duplicate is about n^2 / 2^65 ~ 1e-5.
Measured: 0.07 us a fingerprint against 0.52 us for the 8-octet BLAKE2b used before
(timeit), and the simulator takes two a message.
"""

from __future__ import annotations

from typing import Final

from smsblast.intset import IntSet

__all__ = ["fingerprint", "fingerprint_set"]


_MASK: Final = (1 << 64) - 1


def fingerprint(data: bytes) -> int:
    """64-bit fingerprint of ``data``, the same for the same bytes within this process."""
    return hash(data) & _MASK


def fingerprint_set() -> IntSet:
    """An empty set for fingerprints (65,536 shards: cheap inserts up to tens of millions)."""
    return IntSet(shard_bits=16)
