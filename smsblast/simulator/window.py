"""Exact sliding one-second window counters (TPS limits and the "max in any second" stat).

Admissions are recorded as run-length entries ``[time, count]``: every submit_sm that one
socket read delivers shares the read's timestamp, so a batch of 500 costs one deque entry.
A window at time ``t`` is the half-open interval ``(t - span, t]``, measured on the event
loop's monotonic clock. Because the count is checked at every admission, the largest count
ever observed (:attr:`SlidingWindow.peak`) is exactly the largest number of admissions in any
interval of length ``span``: such an interval can always be slid right until it ends at its
last admission without losing one.
"""

from __future__ import annotations

from collections import deque

__all__ = ["SlidingWindow"]


class SlidingWindow:
    """Counts admissions in the trailing ``span`` seconds.

    Use: ``expire(now)``, then ``total`` / ``admit()`` per event, then ``commit(now)``
    once per batch. All events between ``expire`` and ``commit`` are stamped ``now``.
    """

    __slots__ = ("_entries", "peak", "pending", "span", "total")

    def __init__(self, span: float = 1.0) -> None:
        self.span = span
        self._entries: deque[list[float]] = deque()
        self.total = 0  # admissions in the window, pending ones included
        self.pending = 0  # admitted since the last commit
        self.peak = 0

    def expire(self, now: float) -> int:
        """Forget admissions at or before ``now - span``; return the current total."""
        entries = self._entries
        cutoff = now - self.span
        while entries and entries[0][0] <= cutoff:
            self.total -= int(entries.popleft()[1])
        return self.total

    def admit(self) -> None:
        self.total += 1
        self.pending += 1

    def commit(self, now: float) -> None:
        """Stamp the admissions since the last commit with ``now``."""
        if not self.pending:
            return
        entries = self._entries
        if entries and entries[-1][0] == now:
            entries[-1][1] += self.pending
        else:
            entries.append([now, float(self.pending)])
        self.pending = 0
        if self.total > self.peak:
            self.peak = self.total

    def current(self, now: float) -> int:
        """Admissions in ``(now - span, now]`` (expires old entries)."""
        return self.expire(now)
