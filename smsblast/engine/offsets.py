"""Which Kafka offsets may be committed: the at-least-once rule, as a pure object.

Records are ``read`` in offset order per partition and ``complete`` in any order
(when their outcome is durable in the ledger). The committable offset of a
partition is one past the highest offset below which every read record is
complete: a crash can then only re-read records whose outcome the ledger
already holds, and the ledger turns each re-read into a no-op.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class _Partition:
    __slots__ = ("committed", "done", "next_commit", "outstanding")

    def __init__(self) -> None:
        self.outstanding: deque[int] = deque()
        self.done: set[int] = set()
        self.next_commit: int | None = None  # what a commit now would store
        self.committed: int | None = None  # what was last committed


class OffsetTracker(Generic[K]):
    """Per-partition contiguous completion. Partitions are any hashable key."""

    def __init__(self) -> None:
        self._parts: dict[K, _Partition] = {}

    def read(self, partition: K, offset: int) -> None:
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = _Partition()
        if part.outstanding and offset <= part.outstanding[-1]:
            raise ValueError(f"offset {offset} read out of order on {partition!r}")
        part.outstanding.append(offset)

    def complete(self, partition: K, offset: int) -> None:
        part = self._parts.get(partition)
        if part is None:
            return  # the partition was revoked meanwhile: nothing to commit here
        part.done.add(offset)
        outstanding = part.outstanding
        done = part.done
        while outstanding and outstanding[0] in done:
            first = outstanding.popleft()
            done.discard(first)
            part.next_commit = first + 1

    def in_flight(self, partition: K | None = None) -> int:
        """Records read but not yet complete (in one partition, or all)."""
        if partition is not None:
            part = self._parts.get(partition)
            return len(part.outstanding) if part else 0
        return sum(len(p.outstanding) for p in self._parts.values())

    def committable(self) -> dict[K, int]:
        """Offsets worth committing now: those that moved since the last commit."""
        return {
            key: p.next_commit
            for key, p in self._parts.items()
            if p.next_commit is not None and p.next_commit != p.committed
        }

    def mark_committed(self, offsets: dict[K, int]) -> None:
        for key, offset in offsets.items():
            part = self._parts.get(key)
            if part is not None:
                part.committed = offset

    def position(self, partition: K) -> int | None:
        """The offset a commit would store for ``partition`` (None before any)."""
        part = self._parts.get(partition)
        return part.next_commit if part else None

    def forget(self, partitions: list[K]) -> None:
        """Drop revoked partitions: their in-flight records will be re-read elsewhere."""
        for key in partitions:
            self._parts.pop(key, None)
