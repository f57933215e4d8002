"""Campaign planning: recipients per route and capacity -> projected finish and verdict.

Theory of operation
-------------------
``smsblast plan`` answers "will this campaign be out by its deadline?" before anything is
sent. Its I/O half (:mod:`smsblast.plan_cli`) streams the campaign's segment topics through a
:class:`RecipientCounter`; everything here is pure:

* :class:`RecipientCounter` applies the engine's own rules to each record value (parse,
  opt-out, route, render, split, de-duplicate within the campaign) and counts recipients and
  SMS parts per route, suppressions, duplicates and rejects by reason.
* :func:`route_capacity`: the submits per second a campaign may use on a route: the sum over
  the route's SMSCs of ``tps_per_bind x binds``, times the campaign's ``max_share``.
* :func:`project`: per route, sending starts at ``max(now, start_at)`` of the running or next
  wave, runs at the route's full capacity, skips quiet hours
  (:meth:`~smsblast.schedule.QuietHours.finish_after`), and is on time when it finishes by
  the deadline. The required rate is what ``pace: even`` would aim for. Several campaigns
  planned together are each given their full share: the plan does not model campaigns
  competing for one bind.
* :func:`format_plan` (a table for people) and :func:`plan_json` (for scripts).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from smsblast.config import Campaign, EngineConfig, format_duration
from smsblast.optout import OptOutList
from smsblast.render import MissingField
from smsblast.routing import Router
from smsblast.schedule import load_timezone, wave_for, waves
from smsblast.segments import BadRecord, parse_record
from smsblast.smpp.text import TextEncodingError, count_parts

__all__ = [
    "CampaignPlan",
    "RecipientCounter",
    "RouteCount",
    "RouteProjection",
    "SegmentCount",
    "format_plan",
    "plan_json",
    "project",
    "route_capacity",
]

_PARTS_CACHE_MAX: Final = 4096


class _BlankText(Exception):
    """The template's fields rendered to a blank text (the engine rejects it: empty_text)."""


# --- counting ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteCount:
    """Recipients a route will get and the SMS parts they make."""

    recipients: int = 0
    parts: int = 0


@dataclass(frozen=True)
class SegmentCount:
    """What a campaign's segments hold, after the engine's rules.

    Attributes:
        records: records read.
        routes: recipients and parts per route (only routes that get someone).
        rejected: rejected records by reason (``not_json``, ``unroutable``,
            ``missing_field``, ``too_many_parts``, ...), as the engine dead-letters them.
        suppressed: records whose number is on the opt-out list.
        duplicates: records repeating a number already counted in this campaign.
    """

    records: int = 0
    routes: Mapping[str, RouteCount] = field(default_factory=dict)
    rejected: Mapping[str, int] = field(default_factory=dict)
    suppressed: int = 0
    duplicates: int = 0

    @property
    def recipients(self) -> int:
        """Distinct recipients that will be sent to."""
        return sum(count.recipients for count in self.routes.values())


class RecipientCounter:
    """Counts a campaign's recipients per route, one record value at a time.

    Rules, in the engine's order: a value that is not a valid record is rejected with its
    :class:`~smsblast.segments.BadRecord` reason; a number on the opt-out list is suppressed;
    a number no route serves is rejected ``unroutable``; a text that cannot be rendered or
    needs more than ``max_parts`` parts is rejected; a number seen before in this campaign
    is a duplicate; anything else is a recipient with its parts.

    Memory: one Python ``int`` per distinct number in a ``set`` (about 60-70 bytes each), so
    17 million recipients hold about 1.1 GB while counting.
    """

    def __init__(self, config: EngineConfig, campaign: Campaign, optout: OptOutList) -> None:
        self._campaign = campaign
        self._router = Router.from_config(config)
        self._optout = optout
        self._seen: set[int] = set()
        self._recipients: Counter[str] = Counter()
        self._parts: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._records = 0
        self._suppressed = 0
        self._duplicates = 0
        self._cache: dict[str, int] = {}
        template = campaign.compiled
        self._static_parts: int | None = (
            self._count(template.render({})) if template.is_static else None
        )

    def _count(self, text: str) -> int:
        """Parts for ``text``; raises TextEncodingError, or ValueError above max_parts."""
        cfg = self._campaign
        parts = count_parts(text, cfg.encoding, cfg.concat)
        if parts > cfg.max_parts:
            raise ValueError("too_many_parts")
        return parts

    def _parts_for(self, fields: Mapping[str, str]) -> int:
        if self._static_parts is not None:
            return self._static_parts
        text = self._campaign.compiled.render(fields, self._campaign.on_missing_field)
        if not text.strip():
            raise _BlankText
        cached = self._cache.get(text)
        if cached is None:
            cached = self._count(text)
            if len(self._cache) >= _PARTS_CACHE_MAX:
                self._cache.clear()
            self._cache[text] = cached
        return cached

    def add(self, value: bytes | None) -> None:
        """Count one record value."""
        self._records += 1
        try:
            recipient = parse_record(value)
        except BadRecord as exc:
            self._rejected[exc.reason] += 1
            return
        msisdn = recipient.msisdn
        if msisdn in self._optout:
            self._suppressed += 1
            return
        route = self._router.route(msisdn)
        if route is None:
            self._rejected["unroutable"] += 1
            return
        number = int(msisdn)
        try:
            parts = self._parts_for(recipient.fields)
        except MissingField:
            reason = "missing_field"
        except _BlankText:
            reason = "empty_text"
        except TextEncodingError:
            reason = "unencodable_text"
        except ValueError:
            reason = "too_many_parts"
        else:
            if number in self._seen:
                self._duplicates += 1
                return
            self._seen.add(number)
            self._recipients[route] += 1
            self._parts[route] += parts
            return
        # The engine records the number as rejected: a later record for it is a duplicate.
        self._rejected[reason] += 1
        self._seen.add(number)

    def result(self) -> SegmentCount:
        """The counts so far."""
        return SegmentCount(
            records=self._records,
            routes={
                route: RouteCount(self._recipients[route], self._parts[route])
                for route in self._recipients
            },
            rejected=dict(self._rejected),
            suppressed=self._suppressed,
            duplicates=self._duplicates,
        )


# --- capacity and projection ---------------------------------------------------------------


def route_capacity(config: EngineConfig, campaign: Campaign, route: str) -> float:
    """Submits (parts) per second ``campaign`` may use on ``route``: the sum over the
    route's SMSCs of ``tps_per_bind x binds``, times the campaign's share of the route.

    Raises:
        KeyError: no such route.
    """
    total = sum(smsc.tps_per_bind * smsc.binds for smsc in config.routes[route].smscs)
    return total * campaign.share_for(route)


@dataclass(frozen=True, slots=True)
class RouteProjection:
    """One route of a campaign's plan; times are epoch seconds.

    Attributes:
        capacity: parts (submits) per second granted (see :func:`route_capacity`).
        required_rate: parts per second needed to finish by the deadline over the sending
            time left (``inf`` when none is left, ``None`` without a deadline).
        finish: when the route's last part goes out at ``capacity`` (``inf`` if never).
    """

    route: str
    recipients: int
    parts: int
    capacity: float
    required_rate: float | None
    start: float
    finish: float
    deadline: float | None

    @property
    def recipient_capacity(self) -> float:
        """Recipients per second granted: ``capacity`` over the parts per recipient."""
        return self.capacity * self.recipients / self.parts if self.parts else self.capacity

    @property
    def on_time(self) -> bool:
        """True when it finishes by the deadline (always, without a deadline or with
        nothing to send)."""
        return self.late_by == 0

    @property
    def late_by(self) -> float:
        """Seconds past the deadline (0 when on time, ``inf`` when it never finishes)."""
        if self.deadline is None or self.parts == 0:
            return 0.0
        return max(0.0, self.finish - self.deadline)


@dataclass(frozen=True)
class CampaignPlan:
    """A campaign's projection: the wave planned, its window and one row per route."""

    campaign: Campaign
    wave: str
    now: float
    start: float
    deadline: float | None
    counts: SegmentCount
    routes: tuple[RouteProjection, ...]

    @property
    def finish(self) -> float:
        """When the last route finishes (``start`` when there is nothing to send)."""
        return max((r.finish for r in self.routes), default=self.start)

    @property
    def on_time(self) -> bool:
        """True when every route finishes by the deadline."""
        return all(r.on_time for r in self.routes)

    @property
    def late_by(self) -> float:
        """Seconds the latest route is past the deadline (0 when on time)."""
        return max((r.late_by for r in self.routes), default=0.0)


def project(
    campaign: Campaign,
    counts: SegmentCount,
    capacities: Mapping[str, float],
    now: float,
) -> CampaignPlan:
    """Project the running or next wave of ``campaign`` (see
    :func:`smsblast.schedule.wave_for`) from the counts and each route's capacity in parts
    per second. Every route in ``capacities`` gets a row, in that order; a route with
    recipients but no capacity never finishes.
    """
    wave = wave_for(waves(campaign), now)
    quiet = campaign.quiet()
    start = now if wave.start is None else max(now, wave.start)
    deadline = wave.deadline
    rows: list[RouteProjection] = []
    for route, capacity in capacities.items():
        count = counts.routes.get(route, RouteCount())
        seconds = count.parts / capacity if capacity > 0 else math.inf
        required: float | None = None
        if deadline is not None:
            sendable = quiet.sending_seconds(start, deadline)
            required = count.parts / sendable if sendable > 0 else math.inf
            if count.parts == 0:
                required = 0.0
        rows.append(
            RouteProjection(
                route=route,
                recipients=count.recipients,
                parts=count.parts,
                capacity=capacity,
                required_rate=required,
                start=start,
                finish=quiet.finish_after(start, seconds) if count.parts else start,
                deadline=deadline,
            )
        )
    return CampaignPlan(campaign, wave.name, now, start, deadline, counts, tuple(rows))


# --- output --------------------------------------------------------------------------------


def _local(t: float | None, tz_name: str) -> str:
    if t is None:
        return "-"
    if math.isinf(t):
        return "never"
    return datetime.fromtimestamp(t, load_timezone(tz_name)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _span(seconds: float) -> str:
    return "forever" if math.isinf(seconds) else format_duration(timedelta(seconds=seconds))


def _rate(rate: float | None) -> str:
    if rate is None:
        return "-"
    return "inf" if math.isinf(rate) else f"{rate:,.1f}"


def _verdict(
    on_time: bool, late_by: float, finish: float, deadline: float | None, parts: int
) -> str:
    if parts == 0:
        return "nothing to send"
    if deadline is None:
        return "no deadline"
    if on_time:
        return f"on time ({_span(max(0.0, deadline - finish))} to spare)"
    return "never finishes" if math.isinf(late_by) else f"LATE by {_span(late_by)}"


def format_plan(plan: CampaignPlan) -> str:
    """The plan as an aligned text table, times in the campaign's time zone."""
    cfg = plan.campaign
    tz = cfg.timezone
    counts = plan.counts
    quiet = ", ".join(cfg.quiet_hours) or "none"
    rejected = ", ".join(f"{reason} {n:,}" for reason, n in sorted(counts.rejected.items()))
    lines = [
        f"campaign {cfg.name}" + (f" (wave {plan.wave})" if plan.wave != cfg.name else ""),
        f"  timezone {tz}  pace {cfg.pace}  quiet hours {quiet}",
        f"  start {_local(plan.start, tz)}  deadline {_local(plan.deadline, tz)}",
        f"  records {counts.records:,}: recipients {counts.recipients:,}, "
        f"duplicates {counts.duplicates:,}, suppressed {counts.suppressed:,}, "
        f"rejected {sum(counts.rejected.values()):,}" + (f" ({rejected})" if rejected else ""),
    ]
    header = (
        "route",
        "recipients",
        "parts",
        "capacity/s",
        "rcpt/s",
        "required/s",
        "finish",
        "verdict",
    )
    table = [header]
    for row in plan.routes:
        table.append(
            (
                row.route,
                f"{row.recipients:,}",
                f"{row.parts:,}",
                _rate(row.capacity),
                _rate(row.recipient_capacity),
                _rate(row.required_rate),
                _local(row.finish, tz),
                _verdict(row.on_time, row.late_by, row.finish, row.deadline, row.parts),
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        cells = [
            r[i].ljust(widths[i]) if i in (0, 6, 7) else r[i].rjust(widths[i])
            for i in range(len(header))
        ]
        lines.append(("  " + "  ".join(cells)).rstrip())
    parts = sum(row.parts for row in plan.routes)
    verdict = _verdict(plan.on_time, plan.late_by, plan.finish, plan.deadline, parts)
    lines.append(f"  projected finish {_local(plan.finish, tz)}: {verdict}")
    return "\n".join(lines)


def _number(value: float | None) -> float | None:
    """JSON has no infinity: ``inf`` becomes ``None``."""
    return None if value is None or math.isinf(value) else value


def _iso(t: float | None, tz_name: str) -> str | None:
    if t is None or math.isinf(t):
        return None
    return datetime.fromtimestamp(t, load_timezone(tz_name)).isoformat()


def plan_json(plans: Iterable[CampaignPlan]) -> dict[str, Any]:
    """The plans as a JSON-ready dict: ``{"feasible": bool, "campaigns": [...]}``. Times
    are epoch seconds plus ISO 8601 strings in the campaign's zone (``*_iso``); a time or
    rate that is infinite (never finishes) is ``null``."""
    campaigns: list[dict[str, Any]] = []
    for plan in plans:
        tz = plan.campaign.timezone
        campaigns.append(
            {
                "campaign": plan.campaign.name,
                "wave": plan.wave,
                "timezone": tz,
                "pace": plan.campaign.pace,
                "quiet_hours": list(plan.campaign.quiet_hours),
                "now": plan.now,
                "start": plan.start,
                "start_iso": _iso(plan.start, tz),
                "deadline": plan.deadline,
                "deadline_iso": _iso(plan.deadline, tz),
                "finish": _number(plan.finish),
                "finish_iso": _iso(plan.finish, tz),
                "on_time": plan.on_time,
                "late_by_seconds": _number(plan.late_by),
                "records": plan.counts.records,
                "recipients": plan.counts.recipients,
                "duplicates": plan.counts.duplicates,
                "suppressed": plan.counts.suppressed,
                "rejected": dict(sorted(plan.counts.rejected.items())),
                "routes": [
                    {
                        "route": row.route,
                        "recipients": row.recipients,
                        "parts": row.parts,
                        "capacity_per_second": row.capacity,
                        "capacity_recipients_per_second": row.recipient_capacity,
                        "required_per_second": _number(row.required_rate),
                        "finish": _number(row.finish),
                        "finish_iso": _iso(row.finish, tz),
                        "on_time": row.on_time,
                        "late_by_seconds": _number(row.late_by),
                    }
                    for row in plan.routes
                ],
            }
        )
    return {"feasible": all(c["on_time"] for c in campaigns), "campaigns": campaigns}
