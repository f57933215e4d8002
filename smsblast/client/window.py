"""A window of in-flight requests, keyed by sequence number (cloudhopper's Window).

Theory of operation
-------------------
``offer`` records a request we wrote; ``complete`` matches a response to it in
any order; ``expire`` hands back the requests whose deadline passed; ``fail_all``
empties the window when the connection dies so every request gets an explicit
outcome. Capacity is enforced by the caller through ``free``; the window itself
never blocks, so it stays free of asyncio and clocks (time is passed in).

Entries are kept in a dict, whose insertion order is send order; because every
entry has the same timeout, deadlines are ascending too, so ``expire`` stops at
the first entry still in time instead of scanning the whole window.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from smsblast.client.outcome import SubmitOutcome

Callback = Callable[[Any, SubmitOutcome], None]
#: ``Entry(...)`` without the NamedTuple's Python-level ``__new__`` (see smpp.codec): one a submit.
_new = tuple.__new__


class Entry(NamedTuple):
    callback: Callback
    context: Any
    sent_at: float
    deadline: float


class Window:
    __slots__ = ("pending", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("window size must be at least 1")
        self.size = size
        #: seq -> entry; the reader pops from it directly on the hot path.
        self.pending: dict[int, Entry] = {}

    def __len__(self) -> int:
        return len(self.pending)

    def __contains__(self, seq: object) -> bool:
        return seq in self.pending

    @property
    def free(self) -> int:
        return self.size - len(self.pending)

    def offer(self, seq: int, callback: Callback, context: Any, now: float, timeout: float) -> None:
        if seq in self.pending:
            raise ValueError(f"sequence number {seq} is already in flight")
        self.pending[seq] = _new(Entry, (callback, context, now, now + timeout))

    def complete(self, seq: int) -> Entry | None:
        """Remove and return the request answered by ``seq`` (None if unknown or expired)."""
        return self.pending.pop(seq, None)

    def expire(self, now: float) -> list[Entry]:
        """Remove and return the requests whose deadline is at or before ``now``."""
        expired: list[tuple[int, Entry]] = []
        for seq, entry in self.pending.items():
            if entry.deadline > now:
                break
            expired.append((seq, entry))
        for seq, _ in expired:
            del self.pending[seq]
        return [entry for _, entry in expired]

    def fail_all(self) -> list[tuple[int, Entry]]:
        """Remove and return everything in flight, as (sequence number, entry)."""
        entries = list(self.pending.items())
        self.pending.clear()
        return entries
