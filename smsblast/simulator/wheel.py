"""A time-bucketed queue for delayed submit_sm_resps and receipts.

One timer per simulator, not one per message: items are appended to the bucket of their due
time (``tick`` seconds wide, rounded up), the simulator arms a single loop timer for the
earliest bucket, and each tick drains every due bucket at once, so 50,000 delayed responses a
second cost ~1,000 wake-ups, and their writes are batched per connection.

Buckets due within one tick of ``now`` count as due: under uvloop a timer shorter than a
millisecond fires at once, and this keeps a drained wheel from spinning on an early wake-up.
Within a bucket, responses come out before receipts.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["Wheel"]

R = TypeVar("R")
D = TypeVar("D")


class Wheel(Generic[R, D]):
    """Buckets of responses (``R``) and receipts (``D``) keyed by due tick."""

    __slots__ = ("_buckets", "_heap", "size", "tick")

    def __init__(self, tick: float) -> None:
        if tick <= 0:
            raise ValueError("tick must be positive")
        self.tick = tick
        self._buckets: dict[int, tuple[list[R], list[D]]] = {}
        self._heap: list[int] = []
        self.size = 0

    def _bucket(self, due: float) -> tuple[list[R], list[D]]:
        index = math.ceil(due / self.tick)
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = ([], [])
            heapq.heappush(self._heap, index)
        return bucket

    def add_response(self, due: float, item: R) -> None:
        self._bucket(due)[0].append(item)
        self.size += 1

    def add_receipt(self, due: float, item: D) -> None:
        self._bucket(due)[1].append(item)
        self.size += 1

    def next_due(self) -> float | None:
        """Time of the earliest bucket, or None when empty."""
        return self._heap[0] * self.tick if self._heap else None

    def pop_due(self, now: float) -> Iterator[tuple[list[R], list[D]]]:
        """Yield (and remove) every bucket due at ``now`` (within one tick), oldest first."""
        limit = math.floor(now / self.tick + 1e-6) + 1  # compare indexes: no float drift
        heap = self._heap
        while heap and heap[0] <= limit:
            bucket = self._buckets.pop(heapq.heappop(heap))
            self.size -= len(bucket[0]) + len(bucket[1])
            yield bucket

    def __len__(self) -> int:
        return self.size
