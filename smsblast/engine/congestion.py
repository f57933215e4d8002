"""Adaptive rate control for one bind: multiplicative decrease, additive increase.

Pure arithmetic over timestamps (no I/O, no clock of its own), so tests drive
it with made-up times. The bind's worker feeds it three signals and applies
``rate`` to its limiter:

* ``congested(now, accepted_1s)``: the SMSC said ESME_RTHROTTLED or
  ESME_RMSGQFUL. The rate drops to what the SMSC demonstrably accepted in the
  last second (a measured decrease: one cut lands near the real limit, where a
  blind halving would take several), times ``decrease``; never below ``floor``.
  One cut per ``hold`` seconds: the SMSC's own 1-second window still counts
  what we sent before the cut, so the throttles that follow a cut for up to a
  second say nothing new.
* ``latency(now, seconds)``: submit_sm_resp latency. An EWMA well above the
  lowest EWMA seen (the bind's uncongested latency) counts as congestion too:
  an SMSC's queue grows before it starts refusing.
* ``tick(now)``: additive increase, ``increase`` times the ceiling per second, while
  no congestion was seen for ``hold`` seconds; never above the ceiling (the
  configured TPS).
"""

from __future__ import annotations

import math

#: Defaults chosen against a simulator that throttles at 70% of the configured TPS:
#: settles in ~1 s, then probes up 2%/s of the TPS, averaging ~98% of the real limit.
DECREASE = 0.97
INCREASE = 0.02
HOLD = 1.0
FLOOR = 0.01
LATENCY_ALPHA = 0.05
LATENCY_FACTOR = 3.0
LATENCY_SLACK = 0.2


class RateController:
    """AIMD for one bind; ``rate`` is what its limiter should allow now."""

    def __init__(
        self,
        ceiling: float,
        *,
        decrease: float = DECREASE,
        increase: float = INCREASE,
        hold: float = HOLD,
        floor: float = FLOOR,
    ) -> None:
        if ceiling <= 0:
            raise ValueError("ceiling must be > 0")
        self.ceiling = ceiling
        self.rate = ceiling
        self.decrease = decrease
        self.increase = increase
        self.hold = hold
        self.floor = max(ceiling * floor, 1.0) if ceiling >= 1 else ceiling * floor
        self.cuts = 0
        self._last_cut = -math.inf
        self._last_tick: float | None = None
        self._ewma: float | None = None
        self._base: float | None = None

    def congested(self, now: float, accepted_1s: int) -> bool:
        """A throttle signal; returns True when the rate was cut."""
        if now - self._last_cut < self.hold:
            return False
        measured = float(accepted_1s) if accepted_1s > 0 else self.rate
        self.rate = max(self.floor, min(self.rate, measured) * self.decrease)
        self._last_cut = now
        self._last_tick = now
        self.cuts += 1
        return True

    def latency(self, now: float, seconds: float, accepted_1s: int) -> bool:
        """One response latency; True when it revealed congestion and the rate was cut."""
        ewma = self._ewma
        ewma = seconds if ewma is None else ewma + LATENCY_ALPHA * (seconds - ewma)
        self._ewma = ewma
        if self._base is None or ewma < self._base:
            self._base = ewma
        base = self._base
        if ewma > max(base * LATENCY_FACTOR, base + LATENCY_SLACK):
            return self.congested(now, accepted_1s)
        return False

    def tick(self, now: float) -> bool:
        """Additive increase since the last tick; True when the rate changed."""
        last, self._last_tick = self._last_tick, now
        if last is None or self.rate >= self.ceiling or now - self._last_cut < self.hold:
            return False
        self.rate = min(self.ceiling, self.rate + self.ceiling * self.increase * (now - last))
        return True


class RecentCount:
    """Events in the last second, in ``slots`` buckets advanced by :meth:`rotate`
    (called every 1/slots s by the owner's timer: no clock read per event)."""

    __slots__ = ("_buckets", "_total")

    def __init__(self, slots: int = 10) -> None:
        self._buckets = [0] * slots
        self._total = 0

    def add(self, n: int = 1) -> None:
        self._buckets[-1] += n
        self._total += n

    def rotate(self) -> None:
        self._total -= self._buckets.pop(0)
        self._buckets.append(0)

    @property
    def total(self) -> int:
        return self._total
