"""Campaign schedules: the clock, quiet hours, recurring waves and pacing math.

Theory of operation
-------------------
Everything here works on epoch seconds (``float``, UTC) and is pure, except the clock's
``sleep_until``. A campaign's local rules (quiet hours, the date in a wave's name, how a
repeat interval is added) are applied in its IANA ``timezone`` through :mod:`zoneinfo`, so
daylight-saving changes are honoured: a quiet range ``21:00-07:00`` in ``Europe/Berlin`` is
nine or eleven hours long on the nights the clocks change, not ten.

* :class:`Clock` is the time source the engine sleeps on. :class:`SystemClock` is the real
  one; :class:`ManualClock` is moved by tests (``advance``/``set``) and wakes whoever sleeps
  until a time that has come, so a test runs a week of schedule in milliseconds.
* :class:`QuietHours` answers "may I send now?" (:meth:`~QuietHours.is_quiet`), "when does
  that change?" (:meth:`~QuietHours.next_change`), "how much sending time is there between
  now and the deadline?" (:meth:`~QuietHours.sending_seconds`) and "when will N seconds of
  sending be done?" (:meth:`~QuietHours.finish_after`); :func:`wait_until_sendable` sleeps
  through them on a clock. The daily ranges are turned into
  epoch intervals one local day at a time, so a span of weeks costs a few hundred datetime
  operations, never a walk second by second.
* :func:`waves` expands a campaign's ``repeat`` into :class:`Wave` runs named
  ``<campaign>@<local start date>``.
* :func:`target_rate` and :func:`projected_finish` are the pacing math the engine and
  ``smsblast plan`` share.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import TYPE_CHECKING, Final, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from smsblast.config import Campaign

__all__ = [
    "DEFAULT_TIMEZONE",
    "MAX_WAVES",
    "Clock",
    "ManualClock",
    "Pace",
    "QuietHours",
    "SystemClock",
    "Wave",
    "load_timezone",
    "parse_quiet_range",
    "projected_finish",
    "target_rate",
    "wait_until_sendable",
    "wave_for",
    "waves",
]

DEFAULT_TIMEZONE: Final = "Asia/Jakarta"
#: A ``repeat`` may expand to at most this many waves.
MAX_WAVES: Final = 1000
_DAY_MINUTES: Final = 24 * 60

Pace = Literal["asap", "even"]


# --- clock ---------------------------------------------------------------------------------


class Clock(Protocol):
    """Where the engine reads the time and waits for it (epoch seconds)."""

    def now(self) -> float:
        """The current time, epoch seconds."""
        ...

    async def sleep_until(self, t: float) -> None:
        """Return once :meth:`now` is at least ``t`` (at once when it already is)."""
        ...


class SystemClock:
    """The real clock: ``time.time()`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, t: float) -> None:
        while (delay := t - time.time()) > 0:
            await asyncio.sleep(delay)


class ManualClock:
    """A clock that only moves when told to; for tests.

    :meth:`advance` and :meth:`set` resolve the sleepers whose time has come; they run at
    their next turn of the event loop (``await asyncio.sleep(0)`` in the test lets them).
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep_until(self, t: float) -> None:
        if t <= self._now:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (t, next(self._seq), future))
        await future

    def advance(self, seconds: float) -> None:
        """Move the time forward by ``seconds`` (>= 0) and wake the sleepers now due.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"a clock does not go back ({seconds} s)")
        self.set(self._now + seconds)

    def set(self, t: float) -> None:
        """Move the time to ``t`` (not before now) and wake the sleepers now due.

        Raises:
            ValueError: ``t`` is before the current time.
        """
        if t < self._now:
            raise ValueError(f"a clock does not go back (from {self._now} to {t})")
        self._now = float(t)
        while self._sleepers and self._sleepers[0][0] <= t:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    @property
    def sleepers(self) -> int:
        """How many coroutines are waiting for a later time."""
        return sum(1 for _, _, future in self._sleepers if not future.done())


# --- time zones and quiet hours ------------------------------------------------------------


def load_timezone(name: str) -> ZoneInfo:
    """The IANA time zone called ``name`` (``"Asia/Jakarta"``).

    Raises:
        ValueError: not a known IANA zone name.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not an IANA time zone name (like Asia/Jakarta, Asia/Makassar, UTC)"
        ) from None


_RANGE: Final = re.compile(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})")


def parse_quiet_range(text: str) -> tuple[int, int]:
    """``"21:00-07:00"`` -> ``(1260, 420)``: start and end in minutes after local midnight.

    The end may be ``24:00``; an end before the start wraps past midnight. Start and end
    must differ.

    Raises:
        ValueError: not ``HH:MM-HH:MM`` with valid times, or an empty range.
    """
    match = _RANGE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a range of local times like 21:00-07:00")
    h1, m1, h2, m2 = (int(group) for group in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"{text!r}: hours are 00-23 (24:00 as an end), minutes 00-59")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end % _DAY_MINUTES:
        raise ValueError(f"{text!r} starts and ends at the same time")
    return start, end


def _merge_daily(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Daily minute ranges (wrapping allowed) as sorted, disjoint ranges within one day."""
    pieces: list[tuple[int, int]] = []
    for start, end in ranges:
        if end > start:
            pieces.append((start, end))
        else:  # wraps past midnight (end 0 means midnight)
            pieces.append((start, _DAY_MINUTES))
            if end:
                pieces.append((0, end))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(pieces):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


class QuietHours:
    """Daily local time ranges in which nothing is sent, in one time zone.

    ``QuietHours(["21:00-07:00"], "Asia/Jakarta")``; no ranges means never quiet. Ranges may
    overlap and may wrap past midnight. An instant is quiet when the local wall clock reads
    a time inside a range; on DST change days a range bound the clock skips starts or ends
    at the change, and a bound the clock reads twice keeps the range quiet until the second
    time (see :meth:`_instant`).

    Raises:
        ValueError: a range is malformed, the zone is unknown, or the ranges cover the
            whole day (nothing could ever be sent).
    """

    __slots__ = ("_daily", "ranges", "tz")

    def __init__(
        self, ranges: Iterable[str | tuple[int, int]] = (), tz: str | ZoneInfo = DEFAULT_TIMEZONE
    ) -> None:
        self.tz = tz if isinstance(tz, ZoneInfo) else load_timezone(tz)
        self.ranges: tuple[tuple[int, int], ...] = tuple(
            parse_quiet_range(r) if isinstance(r, str) else r for r in ranges
        )
        self._daily = _merge_daily(self.ranges)
        if self._daily == ((0, _DAY_MINUTES),):
            raise ValueError("the quiet hours cover the whole day: nothing could be sent")

    def __bool__(self) -> bool:
        """False when there are no quiet hours at all."""
        return bool(self._daily)

    def __repr__(self) -> str:
        shown = [f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}" for s, e in self.ranges]
        return f"QuietHours({shown!r}, {self.tz.key!r})"

    def _instant(self, day: date, minutes: int, *, last: bool) -> float:
        """Epoch seconds at which the wall clock of ``day`` reads ``minutes`` after midnight.

        A wall time skipped by a DST change (02:30 when 02:00 jumps to 03:00) maps to the
        change itself, the first instant the clock reads later; a wall time that occurs
        twice (clocks going back) maps to its first occurrence, or to its last with
        ``last`` (so a quiet range covers every instant the clock reads inside it).
        """
        wall = datetime.combine(day, dtime()) + timedelta(minutes=minutes)
        first = wall.replace(tzinfo=self.tz).timestamp()  # fold=0
        if datetime.fromtimestamp(first, self.tz).replace(tzinfo=None) == wall:
            return wall.replace(tzinfo=self.tz, fold=1).timestamp() if last else first
        # Skipped: fold=1 gives an instant before the change, fold=0 one after it; find
        # the change, the first whole second whose wall time is not before ``wall``.
        low, high = math.floor(wall.replace(tzinfo=self.tz, fold=1).timestamp()), int(first)
        while high - low > 1:
            middle = (low + high) // 2
            if datetime.fromtimestamp(middle, self.tz).replace(tzinfo=None) >= wall:
                high = middle
            else:
                low = middle
        return float(high)

    def _day_intervals(self, day: date) -> Iterator[tuple[float, float]]:
        for start, end in self._daily:
            yield self._instant(day, start, last=False), self._instant(day, end, last=True)

    def intervals(self, t: float) -> Iterator[tuple[float, float]]:
        """Quiet intervals ``[start, end)`` in epoch seconds that end after ``t``, in order,
        merged across midnight; endless (empty without quiet hours)."""
        if not self._daily:
            return
        day = datetime.fromtimestamp(t, self.tz).date() - timedelta(days=1)
        current: tuple[float, float] | None = None
        while True:
            for start, end in self._day_intervals(day):
                if current is not None and start <= current[1]:
                    current = (current[0], max(current[1], end))
                    continue
                if current is not None and current[1] > t:
                    yield current
                current = (start, end)
            day += timedelta(days=1)

    def is_quiet(self, t: float) -> bool:
        """True when ``t`` falls in a quiet range."""
        first = next(self.intervals(t), None)
        return first is not None and first[0] <= t

    def next_change(self, t: float) -> float:
        """The next time after ``t`` at which quiet starts (when sending now) or ends (when
        quiet now); ``inf`` without quiet hours."""
        first = next(self.intervals(t), None)
        if first is None:
            return math.inf
        return first[1] if first[0] <= t else first[0]

    def sending_seconds(self, start: float, end: float) -> float:
        """Seconds between ``start`` and ``end`` outside quiet hours (0 when ``end`` is not
        after ``start``)."""
        if end <= start:
            return 0.0
        if math.isinf(end):
            return math.inf
        total = end - start
        for quiet_start, quiet_end in self.intervals(start):
            if quiet_start >= end:
                break
            total -= min(quiet_end, end) - max(quiet_start, start)
        return total

    def finish_after(self, start: float, seconds_needed: float) -> float:
        """The time at which ``seconds_needed`` seconds of sending, begun at ``start``, are
        done, skipping quiet hours. ``start`` when nothing is needed; ``inf`` when the need
        is infinite."""
        if seconds_needed <= 0:
            return start
        if math.isinf(seconds_needed):
            return math.inf
        cursor, needed = start, seconds_needed
        for quiet_start, quiet_end in self.intervals(start):
            available = quiet_start - cursor
            if available >= needed:
                return cursor + needed
            if available > 0:
                needed -= available
            cursor = max(cursor, quiet_end)
        return cursor + needed  # no quiet hours at all


async def wait_until_sendable(clock: Clock, quiet: QuietHours) -> float:
    """Sleep on ``clock`` until ``quiet`` allows sending; returns the time it does (at once
    outside quiet hours)."""
    now = clock.now()
    while quiet.is_quiet(now):
        await clock.sleep_until(quiet.next_change(now))
        now = clock.now()
    return now


# --- waves ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wave:
    """One run of a campaign: the only one without ``repeat``, else one per interval.

    Attributes:
        campaign: the campaign's name.
        name: ``<campaign>@<local start date YYYY-MM-DD>`` for a repeating campaign (with
            the local time ``THHMM`` or ``THHMMSS`` appended when ``every`` is not whole
            days, so two waves on one day differ), else the campaign's name. It scopes the
            ledger (de-duplication, report) and the metrics.
        index: 0 for the first wave.
        start: epoch seconds, or ``None`` (start now) without ``start_at``.
        deadline: epoch seconds, or ``None`` without ``deadline``.
    """

    campaign: str
    name: str
    index: int
    start: float | None
    deadline: float | None

    @property
    def dead_letter_topic(self) -> str:
        """``<campaign>.rejected``: one dead-letter topic for every wave, since '@' is not
        allowed in Kafka topic names (a record header can tell the waves apart)."""
        return f"{self.campaign}.rejected"


def _wave_label(every: timedelta) -> str:
    """strftime format of a wave's name: the date, plus the time when waves can share one."""
    seconds = int(every.total_seconds())
    if seconds % 86_400 == 0:
        return "%Y-%m-%d"
    return "%Y-%m-%dT%H%M" if seconds % 60 == 0 else "%Y-%m-%dT%H%M%S"


def waves(campaign: Campaign) -> list[Wave]:
    """The campaign's waves, in order.

    Without ``repeat``: one wave named after the campaign with its ``start_at`` and
    ``deadline``. With ``repeat: {every, until}``: a wave at ``start_at + k * every`` for
    every ``k >= 0`` that starts no later than ``until``, its deadline shifted by the same
    amount. ``every`` is added in local wall-clock time of the campaign's ``timezone``, so a
    weekly wave at 09:00 stays at 09:00 across DST changes.

    Raises:
        ValueError: more than :data:`MAX_WAVES` waves (the config validation refuses such a
            campaign already).
    """
    start_at, deadline, repeat = campaign.start_at, campaign.deadline, campaign.repeat
    if repeat is None or start_at is None:
        return [
            Wave(
                campaign.name,
                campaign.name,
                0,
                None if start_at is None else start_at.timestamp(),
                None if deadline is None else deadline.timestamp(),
            )
        ]
    tz = load_timezone(campaign.timezone)
    local_start = start_at.astimezone(tz)
    local_deadline = None if deadline is None else deadline.astimezone(tz)
    label = _wave_label(repeat.every)
    result: list[Wave] = []
    for index in itertools.count():
        shift = repeat.every * index
        wave_start = local_start + shift
        if wave_start.timestamp() > repeat.until.timestamp():
            break
        if index >= MAX_WAVES:
            raise ValueError(f"campaign {campaign.name}: more than {MAX_WAVES} waves")
        result.append(
            Wave(
                campaign.name,
                f"{campaign.name}@{wave_start.strftime(label)}",
                index,
                wave_start.timestamp(),
                None if local_deadline is None else (local_deadline + shift).timestamp(),
            )
        )
    return result


# --- pacing --------------------------------------------------------------------------------


def target_rate(
    remaining: float,
    now: float,
    deadline: float | None,
    quiet: QuietHours,
    capacity: float,
    *,
    pace: Pace = "even",
) -> float:
    """The rate to send at now so that ``remaining`` is done by ``deadline``.

    ``remaining`` and ``capacity`` share one unit (recipients or parts; the result is in
    it, per second): ``remaining`` divided by the sending seconds left before the deadline
    (quiet hours excluded), never more than ``capacity``. The full ``capacity`` when
    ``pace`` is ``"asap"``, without a deadline, or once no sending time is left before it
    (late: catch up as fast as allowed). 0 when nothing remains or there is no capacity.
    To finish with a safety margin, pass ``deadline - margin``.
    """
    if remaining <= 0 or capacity <= 0:
        return 0.0
    if pace == "asap" or deadline is None or now >= deadline:
        return capacity
    sendable = quiet.sending_seconds(now, deadline)
    if sendable <= 0:
        return capacity
    return min(capacity, remaining / sendable)


def projected_finish(now: float, remaining: float, rate: float, quiet: QuietHours) -> float:
    """When ``remaining`` will be done at ``rate`` per second from ``now``, quiet hours
    skipped; ``now`` when nothing remains, ``inf`` when ``rate`` is not positive."""
    if remaining <= 0:
        return now
    if rate <= 0:
        return math.inf
    return quiet.finish_after(now, remaining / rate)


def wave_for(all_waves: Sequence[Wave], now: float) -> Wave:
    """The wave that is running or comes next at ``now``: the first whose deadline is still
    ahead; without deadlines, the last one started (the first when none has); the last wave
    when all are past.

    Raises:
        ValueError: ``all_waves`` is empty.
    """
    if not all_waves:
        raise ValueError("no waves")
    for index, wave in enumerate(all_waves):
        if wave.deadline is not None:
            if wave.deadline > now:
                return wave
            continue
        following = all_waves[index + 1] if index + 1 < len(all_waves) else None
        if following is None or following.start is None or following.start > now:
            return wave
    return all_waves[-1]
