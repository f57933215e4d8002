"""Read the next batch now, or hold it a moment for room on a busy route. Pure.

Theory of operation
-------------------
A recipient read for a route whose lane is full is *parked*: claimed PENDING and left in
the ledger for the backfill loop, so a slow or dead SMSC never stalls the other routes.
Parking costs a second trip through the ledger and sends the recipient last. It is wasted
when the route is not slow but busy. With no TPS cap every lane drains at the pace of its
binds' windows in the engine's one loop, so the route with the most traffic (half of it,
on as many binds as the smallest route) fills its lane first. Measured in the 600k e2e
benchmark before this gate: 124,530 recipients parked, claim-to-receipt p99 23-49 s.

So before each read the reader asks :func:`hold`. For every route it compares the parts
the next batch will likely bring (the last batch's mix, :func:`expected_parts`) with the
room left by the route's lane cap and its share of the memory budget. A route short of
room that drains the shortfall within ``drain_s`` at its rate over the last second is
busy: the reader waits for it (polling, at most a second a batch; see CampaignRun). A
route that is down, paused (rate 0) or slower than that is left out of the decision: its
overflow parks as before.

Holding the reader starves the other routes of new recipients for that moment. That is
free only when the engine's loop is the limit (no route can go faster, the CPU just moves
to the busy route): so the reader holds only while the process is using at least
``HOLD_BUSY`` of a core (:class:`CpuLoad`). Below that, a route that is merely capped by
its TPS parks its overflow as before, and the others keep their full pace: without this
condition the reader would settle at the pace of the slowest busy route (head-of-line
blocking).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

__all__ = ["HOLD_BUSY", "HOLD_DRAIN", "CpuLoad", "RouteRoom", "expected_parts", "hold"]

#: A route short of room is waited for when it drains the shortfall within this long.
HOLD_DRAIN = 0.5
#: ... and only while the engine's process uses at least this share of a core.
HOLD_BUSY = 0.7


class RouteRoom(NamedTuple):
    """One route as the reader sees it before a read, in parts."""

    need: int  # parts the next batch will likely bring for this route
    room: int  # parts the route may still take before its overflow parks
    rate: float  # parts its binds accepted over the last second
    up: bool  # a sending bind is bound (a route down parks its recipients at once)


def expected_parts(
    last: Mapping[str, int], last_records: int, batch: int, caps: Mapping[str, int]
) -> dict[str, int]:
    """Parts per route a batch of ``batch`` records brings if it is routed like the last
    one (``last``: parts per route out of ``last_records`` records), each at most half of
    the route's cap (``caps``), so that the room asked for can exist."""
    if last_records <= 0:
        return {}
    return {
        route: min(-(-parts * batch // last_records), caps.get(route, 0) // 2)
        for route, parts in last.items()
    }


def hold(routes: Iterable[RouteRoom], cpu_share: float, drain_s: float = HOLD_DRAIN) -> bool:
    """True when the next read should wait: the process is busy (``cpu_share`` of a core at
    least HOLD_BUSY), and some route that is up lacks room for what the batch will bring
    and drains the shortfall within ``drain_s`` at its recent rate."""
    if cpu_share < HOLD_BUSY:
        return False
    for r in routes:
        short = r.need - r.room
        if short > 0 and r.up and r.rate * drain_s >= short:
            return True
    return False


class CpuLoad:
    """This process's CPU time as a share of wall time, over spans of at least ``span``
    seconds: ``share`` is the last complete span's (0 until one is). Clocks injectable."""

    def __init__(
        self,
        span: float = 1.0,
        wall: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        self._span = span
        self._wall = wall
        self._cpu = cpu
        self._mark = (wall(), cpu())
        self.share = 0.0

    def sample(self) -> float:
        """Close the span if it is long enough; the share of the last complete one."""
        wall, cpu = self._wall(), self._cpu()
        wall0, cpu0 = self._mark
        if wall - wall0 >= self._span:
            self.share = (cpu - cpu0) / (wall - wall0)
            self._mark = (wall, cpu)
        return self.share
