"""Per-bind rate limiter: exact sliding-window caps, smooth pacing, batched acquisition.

Why not asyncio-throttle
------------------------
The design card names asyncio-throttle (it stays a dependency), but it is not used on the hot
path. Measured on this machine class (``/work/shared/PERF-NOTES.md``, "Rate limiters"):

* ``Throttler(R, period=1.0)`` lets a whole period's quota out at once: 2,000 (resp. 20,000)
  messages in one 100 ms window, 10x the ideal R/10. Because every period starts with a full
  quota, a 100k-message run at R = 20,000/s achieved 24,744/s, a 24% overshoot.
* Its unit is one message per ``async with`` (a coroutine call, a clock read and a log entry
  per message), and a blocked caller polls every ``retry_interval`` (10 ms) instead of
  sleeping until capacity frees, so it cannot hand a sender a batch per tick; with
  ``period=0.01`` that polling lost 3-6% of the rate in ``loadtest/limiter_bench.py``.

For a limiter of rate R units/s (a multipart message takes one unit per part) this module
guarantees, exactly:

(a) at most ``cap_1s(R) = floor(R)`` units in every 1 s window (at least 1 unit when R > 0);
(b) at most ``cap_100ms(R) = floor(R/10) + 1`` units in every 100 ms window;

and aims for (c) a mean rate within 2% of R under backlog (see "Mean rate" for when that is
possible at all) and (d) low CPU: units go out in batches, and an async waiter sleeps at least
1 ms, so a bind wakes at most ~1,000 times a second whatever R is.

Windows are half-open, ``[s, s + W)``, for every start ``s``, over release timestamps. The
limiter enforces them over ``W + guard`` on its own grant timestamps (the ``now`` given to
:meth:`RateLimiter.take`), so they also hold on the caller's actual send times as long as each
send happens within ``guard`` (default 0.2 ms) of its grant.

Rate changes
------------
``set_rate`` may be called as often as wanted; it never resets the release history, so it never
opens a fresh burst. The guarantee is: every window is judged against the *highest rate in
force at any moment between its first and its last release*. So with a constant rate, (a) and
(b) hold as written; a window that starts after a decrease is judged against the new, lower
rate; a window that straddles a decrease may be judged against the old, higher rate (this is
what lets a decrease take effect at once, as a slower pace, instead of as a stall while the
last second of traffic drains out); after an increase, windows that reach the new rate are
judged against it. Pacing credit banked at the old rate is cut to the new rate's limit. Rate 0
pauses: nothing is released until the rate is raised again.

Theory of operation
-------------------
:class:`RateLimiter` is a pure core (no clock, no asyncio; time is passed in, as in
``smsblast.smpp``). Two mechanisms decide how many units may go at ``now``:

1. Pacing, a token bucket (equivalently GCRA, a virtual schedule advancing 1/R per unit):
   credit accrues at R units/s, capped at one unit plus ``slack`` seconds' worth, so idle time
   never builds up into a burst and no batch is ever larger than ``1 + R * slack``. Credit is
   lost when a caller stays away longer than ``slack``, and in the capped regime (below) freed
   window space is refilled only as fast as credit allows, so ``slack`` trades smoothness for
   mean rate. The 10 ms default suits :class:`AsyncRateLimiter` (>= 99% of R in simulation
   with up to 1 ms of timer lateness); a caller polling on its own tick should give several
   times its longest gap (the tests use 100 ms for gaps up to 40 ms) and get batches that big.
2. Exact caps: a log of the release batches ``(t, n)`` with running totals and one head index
   per window gives the units released in the last second and the last 100 ms in O(1). A
   release is allowed only if every window ending at ``now`` stays within its cap, so (a) and
   (b) hold by construction whatever the tick jitter. For rate changes the core keeps a short
   stack of "steps": the points in the last second after which the highest rate in force
   dropped (rates strictly decreasing from old to new). Each step bounds the units released
   since it by the cap of its rate; an increase merges the steps it overtakes. The stack is
   bounded (:data:`MAX_STEPS`) by merging the two closest steps into the stricter one, which
   can only tighten the limit.

``take(now, want)`` returns ``min(want, allowance(now))`` and records it; ``next_time(now)`` is
the earliest time at which another unit can become available (exact at a steady rate; after a
rate step it may be early, never late, so a waiter may wake once for nothing).

Mean rate
---------
Pacing alone would release R units per second exactly, but a batch released at ``t`` pays for
credit earned over ``(t - gap, t]``, so a 100 ms window would hold about ``R * (0.1 + gap)``
units: the caps cut, and a unit slot freed when a batch leaves the window can only be reused at
the caller's next visit. This binds *any* limiter that honours (b) and releases only when the
caller asks: chaining windows ``[a_i, a_i + 0.1)``, where ``a_{i+1}`` is the first visit at or
after ``a_i + 0.1``, gives at most ``cap_100ms`` units per ``0.1 + lag_i`` seconds. With visits
~1 ms apart (what :class:`AsyncRateLimiter` does under backlog) that costs well under 1%; for a
caller polling on its own jittery 20 ms tick it costs ~10%, whatever the limiter. So under
backlog, let the limiter set the pace (await :meth:`AsyncRateLimiter.acquire`) rather than
polling :meth:`RateLimiter.take` from a coarse tick. Below ~300/s a unit is a sizeable share of
a window and the integer caps cost a little more.

:class:`AsyncRateLimiter` wraps the core for one event loop: ``acquire(want)`` returns between
1 and ``want`` units, sleeping ``max(1 ms, next_time - now)`` when none are available (never
less than 1 ms: under uvloop ``asyncio.sleep(x)`` with ``x < 1 ms`` returns after ~3 us, which
would spin a core). Its default clock is ``time.monotonic`` rather than ``loop.time()``:
uvloop's ``loop.time()`` has 1 ms resolution, which would let two releases really 0.1 s minus
up to 1 ms apart count as 0.1 s apart. (The stock loop's ``time()`` is ``time.monotonic()``.)
"""

from __future__ import annotations

import asyncio
import math
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Final

__all__ = [
    "DEFAULT_GUARD",
    "DEFAULT_SLACK",
    "MAX_STEPS",
    "MIN_SLEEP",
    "AsyncRateLimiter",
    "LimiterClosed",
    "RateLimiter",
    "cap_1s",
    "cap_100ms",
]

#: Seconds of pacing credit a limiter may bank on top of one unit (the GCRA tolerance).
DEFAULT_SLACK: Final = 0.01
#: Seconds by which each window is lengthened on grant timestamps, to cover the time between a
#: grant and the actual send (measured 2-50 us for a caller that sends straight away).
DEFAULT_GUARD: Final = 0.0002
#: Shortest sleep of an async waiter (see the uvloop note in the module docstring).
MIN_SLEEP: Final = 0.001
#: Longest stack of rate steps kept; beyond it the two closest steps merge (stricter).
MAX_STEPS: Final = 16

_EPS: Final = 1e-9  # tolerance on fractional token counts
_LONG: Final = 1.0  # the (a) window, seconds
_SHORT: Final = 0.1  # the (b) window, seconds
_COMPACT_AT: Final = 1024  # drop expired log entries once this many have piled up

_Step = tuple[float, int, float]  # (boundary time, units released before it, rate)


class LimiterClosed(Exception):
    """Raised by :meth:`AsyncRateLimiter.acquire` once the limiter is closed."""


def cap_1s(rate: float) -> int:
    """Units allowed in any 1 s window at ``rate``: ``floor(rate)``, at least 1 if rate > 0."""
    return max(1, math.floor(rate)) if rate > 0 else 0


def cap_100ms(rate: float) -> int:
    """Units allowed in any 100 ms window at ``rate``: ``floor(rate / 10) + 1`` (0 if paused)."""
    return math.floor(rate / 10) + 1 if rate > 0 else 0


def _check_rate(rate: float) -> float:
    rate = float(rate)
    if not math.isfinite(rate) or rate < 0:
        raise ValueError(f"rate must be a finite number >= 0, got {rate!r}")
    return rate


def _check_seconds(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _expiry(start: float, window: float) -> float:
    """Earliest ``t`` with ``t - start >= window`` in floating point."""
    t = start + window
    while t - start < window:
        t = math.nextafter(t, math.inf)
    return t


class RateLimiter:
    """The pure limiter: pacing plus exact 1 s / 100 ms sliding-window caps.

    Time is passed in, in seconds; it must not go backwards (an earlier ``now`` is treated as
    the latest one seen). Every method is O(1) amortised, plus O(steps) while recent rate
    decreases are still inside a window.
    """

    __slots__ = (
        "_cum",
        "_cum0",
        "_guard",
        "_heads",
        "_last",
        "_rate",
        "_slack",
        "_steps",
        "_times",
        "_tokens",
        "_total",
        "_windows",
    )

    def __init__(
        self,
        rate: float,
        *,
        now: float = 0.0,
        slack: float = DEFAULT_SLACK,
        guard: float = DEFAULT_GUARD,
    ) -> None:
        """Create a limiter at ``rate`` units/s (0 = paused), starting at time ``now``.

        ``slack``: seconds of pacing credit banked on top of one unit; it starts full, as
        after an idle spell. ``guard``: seconds added to each window (see the module
        docstring). Raises ValueError if any of them is negative or not finite.
        """
        self._rate = _check_rate(rate)
        self._slack = _check_seconds("slack", slack)
        self._guard = _check_seconds("guard", guard)
        #: (window length as enforced, its cap function), longest first
        self._windows: tuple[tuple[float, Callable[[float], int]], ...] = (
            (_LONG + self._guard, cap_1s),
            (_SHORT + self._guard, cap_100ms),
        )
        self._last = float(now)
        self._tokens = self._credit_cap(self._rate)
        self._total = 0  # units released since creation
        # Release log: batch k went at _times[k]; _cum[k] is the running total after it.
        self._times: list[float] = []
        self._cum: list[int] = []
        self._cum0 = 0  # running total before _times[0] (after compaction)
        self._heads = [0, 0]  # per window: index of the first batch still inside it
        # Rate steps, rates strictly decreasing from first to last; the last one is the rate
        # in force and the first one is at or before now - 1 s (or at -inf).
        self._steps: list[_Step] = [(-math.inf, 0, self._rate)]

    # -- public ---------------------------------------------------------------------------

    @property
    def rate(self) -> float:
        """The rate in force, units per second (0.0 when paused)."""
        return self._rate

    @property
    def slack(self) -> float:
        """Seconds of pacing credit the limiter may bank on top of one unit."""
        return self._slack

    @property
    def guard(self) -> float:
        """Seconds added to each window on grant timestamps."""
        return self._guard

    @property
    def released(self) -> int:
        """Units released since creation."""
        return self._total

    def set_rate(self, now: float, rate: float) -> None:
        """Change the rate at ``now``; 0 pauses. Raises ValueError on a negative rate.

        Credit earned so far is kept, up to the new rate's limit; the release history is kept,
        so windows stay judged as described in the module docstring.
        """
        rate = _check_rate(rate)
        now = self._advance(now)
        if rate == self._rate:
            return
        steps = self._steps
        overtaken: _Step | None = None
        while steps and steps[-1][2] <= rate:
            overtaken = steps.pop()
        if overtaken is not None:  # an increase: the steps it overtook now answer to `rate`
            steps.append((overtaken[0], overtaken[1], rate))
        else:  # a decrease: a new step from here on
            steps.append((now, self._total, rate))
            if len(steps) > MAX_STEPS:
                self._merge_closest_steps()
        self._rate = rate
        self._tokens = min(self._tokens, self._credit_cap(rate))

    def allowance(self, now: float) -> int:
        """How many units may be released at ``now`` (nothing is recorded)."""
        return self._allowance(self._advance(now))

    def take(self, now: float, want: int) -> int:
        """Release and record up to ``want`` units at ``now``; return how many (maybe 0).

        Raises ValueError if ``want`` is negative.
        """
        if want < 0:
            raise ValueError(f"want must be >= 0, got {want!r}")
        now = self._advance(now)
        n = min(want, self._allowance(now))
        if n <= 0:
            return 0
        self._total += n
        self._tokens -= n
        if self._times and self._times[-1] == now:
            self._cum[-1] = self._total
        else:
            self._times.append(now)
            self._cum.append(self._total)
        return n

    def next_time(self, now: float) -> float:
        """Earliest time >= ``now`` at which a unit may become available (inf when paused)."""
        now = self._advance(now)
        rate = self._rate
        if rate <= 0:
            return math.inf
        t = now
        if self._tokens + _EPS < 1:
            t = now + (1 - self._tokens) / rate
        for window, head, start, cap in self._constraints(now):
            excess = self._total - start - cap + 1
            if excess > 0:  # the oldest `excess` units counted here must leave the window
                k = bisect_left(self._cum, start + excess, lo=head)
                t = max(t, _expiry(self._times[k], window))
        return t

    # -- internals ------------------------------------------------------------------------

    def _credit_cap(self, rate: float) -> float:
        return 1.0 + rate * self._slack if rate > 0 else 0.0

    def _advance(self, now: float) -> float:
        """Bring credit, window heads and steps up to ``now``; return the effective now."""
        last = self._last
        if now <= last:
            now = last
        else:
            rate = self._rate
            if rate > 0:
                self._tokens = min(self._tokens + (now - last) * rate, self._credit_cap(rate))
            self._last = now
        times = self._times
        n = len(times)
        heads = self._heads
        h = 0
        for i, (window, _) in enumerate(self._windows):  # longest first: heads ascend
            h = max(h, heads[i])
            while h < n and now - times[h] >= window:
                h += 1
            heads[i] = h
        if heads[0] >= _COMPACT_AT and 2 * heads[0] >= n:
            self._compact()
        steps = self._steps
        oldest = now - self._windows[0][0]
        while len(steps) > 1 and steps[1][0] <= oldest:
            del steps[0]
        return now

    def _compact(self) -> None:
        h = self._heads[0]
        self._cum0 = self._cum[h - 1]
        del self._times[:h]
        del self._cum[:h]
        self._heads = [head - h for head in self._heads]

    def _constraints(self, now: float) -> list[tuple[float, int, int, int]]:
        """Every limit in force at ``now``: (window, head, running total before the first
        unit it counts, cap). Per window: the base step (the one in force at the window's
        start) over the whole window, then each later step over the units since it."""
        out: list[tuple[float, int, int, int]] = []
        steps = self._steps
        cum = self._cum
        for (window, cap), head in zip(self._windows, self._heads, strict=True):
            start = now - window
            i = len(steps) - 1
            while i > 0 and steps[i][0] > start:
                i -= 1
            out.append((window, head, cum[head - 1] if head else self._cum0, cap(steps[i][2])))
            out.extend((window, head, before, cap(rate)) for _, before, rate in steps[i + 1 :])
        return out

    def _allowance(self, now: float) -> int:
        rate = self._rate
        if rate <= 0:
            return 0
        room = math.floor(self._tokens + _EPS)
        total = self._total
        if len(self._steps) == 1:  # a steady rate: the common case
            cum = self._cum
            long_head, short_head = self._heads
            long_start = cum[long_head - 1] if long_head else self._cum0
            short_start = cum[short_head - 1] if short_head else self._cum0
            room = min(room, cap_1s(rate) - total + long_start)
            room = min(room, cap_100ms(rate) - total + short_start)
        else:
            for _, _, start, cap in self._constraints(now):
                room = min(room, cap - total + start)
        return max(room, 0)

    def _merge_closest_steps(self) -> None:
        """Merge the adjacent pair of steps with the closest rates into the stricter one."""
        steps = self._steps
        best = 0
        best_ratio = math.inf
        for i in range(len(steps) - 1):
            lower = steps[i + 1][2]
            ratio = steps[i][2] / lower if lower > 0 else math.inf
            if ratio < best_ratio:
                best, best_ratio = i, ratio
        boundary, released_before, _ = steps[best]
        steps[best : best + 2] = [(boundary, released_before, steps[best + 1][2])]


class AsyncRateLimiter:
    """One bind's limiter on one event loop: ``await acquire(want)`` returns a batch of units.

    Not thread-safe. Several tasks of the same loop may acquire concurrently; whoever runs
    first after a wake-up takes what is available.
    """

    __slots__ = ("_clock", "_closed", "_core", "_waiters")

    def __init__(
        self,
        rate: float,
        *,
        slack: float = DEFAULT_SLACK,
        guard: float = DEFAULT_GUARD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create a limiter at ``rate`` units/s (0 = paused); ``clock`` is for tests.

        Raises ValueError like :class:`RateLimiter`.
        """
        self._clock = clock
        self._core = RateLimiter(rate, now=clock(), slack=slack, guard=guard)
        self._closed = False
        self._waiters: set[asyncio.Future[None]] = set()

    @property
    def rate(self) -> float:
        """The rate in force, units per second (0.0 when paused)."""
        return self._core.rate

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def core(self) -> RateLimiter:
        """The pure limiter underneath (for metrics and tests)."""
        return self._core

    def set_rate(self, rate: float) -> None:
        """Change the rate now (0 pauses); waiters wake at once if it went up.

        Raises ValueError on a negative or non-finite rate.
        """
        old = self._core.rate
        self._core.set_rate(self._clock(), rate)
        if self._core.rate > old:
            self._wake_all()

    def close(self) -> None:
        """Close the limiter: every waiter, and every later ``acquire``, raises LimiterClosed."""
        if not self._closed:
            self._closed = True
            self._wake_all()

    async def acquire(self, want: int) -> int:
        """Wait until at least one unit may go; take and return how many may (1..want).

        Raises ValueError if ``want < 1`` and LimiterClosed once the limiter is closed.
        """
        if want < 1:
            raise ValueError(f"want must be >= 1, got {want!r}")
        core = self._core
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise LimiterClosed("rate limiter closed")
            now = self._clock()
            n = core.take(now, want)
            if n:
                return n
            delay = core.next_time(now) - now
            waiter: asyncio.Future[None] = loop.create_future()
            timer = (
                None if delay == math.inf else loop.call_later(max(MIN_SLEEP, delay), _wake, waiter)
            )
            self._waiters.add(waiter)
            try:
                await waiter
            finally:
                self._waiters.discard(waiter)
                if timer is not None:
                    timer.cancel()

    def _wake_all(self) -> None:
        for waiter in self._waiters:
            _wake(waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
