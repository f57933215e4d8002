"""Live progress of a blast on the operator's terminal, read from the engine's metrics.

Theory of operation: :func:`collect` reads :data:`smsblast.metrics.REGISTRY` into a
:class:`Snapshot` (plain frozen dataclasses, no engine objects), :func:`render` turns two
snapshots (now and the previous one, for rates) into a rich renderable, :func:`plain_line`
into one log line, and :func:`show` is the tiny task that does this every few seconds. The
display therefore knows nothing of the engine's internals: whatever the engine exports to
Prometheus, and only that, is what the operator sees.

Why rich: a NOC terminal needs a table that redraws in place (``rich.live.Live``) with
correct widths, colours only when the terminal supports them, and a record mode
(``Console(record=True)``) that lets tests assert on exactly what was drawn. Writing that
with curses or ANSI escapes by hand would be more code and less tested.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal, TextIO

from prometheus_client import CollectorRegistry
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from smsblast.metrics import REGISTRY

__all__ = [
    "CampaignSnapshot",
    "RouteLink",
    "RouteSnapshot",
    "Snapshot",
    "collect",
    "plain_line",
    "render",
    "resolve_mode",
    "show",
]

Mode = Literal["auto", "rich", "plain", "off"]
#: Recipient states that mean "a submit outcome is known" (sent, for the display).
_SENT_STATES: Final = frozenset({"submitted", "delivered", "failed", "expired", "unknown"})
_THROTTLE_REASONS: Final = frozenset({"ESME_RTHROTTLED", "ESME_RMSGQFUL"})


@dataclass(frozen=True, slots=True)
class RouteSnapshot:
    """One campaign's progress on one route."""

    route: str
    finished: dict[str, float]  # recipients by outcome state
    accepted_parts: float = 0.0
    throttled: float = 0.0
    remaining: float | None = None
    target_rate: float | None = None
    projected_finish: float | None = None  # unix time; inf when nothing can be sent

    @property
    def sent(self) -> float:
        return sum(n for s, n in self.finished.items() if s in _SENT_STATES)


@dataclass(frozen=True, slots=True)
class CampaignSnapshot:
    name: str
    total: float = 0.0  # records in the segment snapshot
    read: float = 0.0
    rejected: float = 0.0
    suppressed: float = 0.0
    duplicate: float = 0.0
    in_flight: float = 0.0
    pending: float = 0.0
    state: str | None = None
    deadline: float | None = None
    routes: tuple[RouteSnapshot, ...] = ()

    @property
    def sent(self) -> float:
        return sum(r.sent for r in self.routes)

    @property
    def remaining(self) -> float:
        """Recipients still to send: the routes' own figure when the engine exports one,
        else the snapshot's records minus what has an outcome or was never to be sent."""
        known = [r.remaining for r in self.routes if r.remaining is not None]
        if known and len(known) == len(self.routes):
            return sum(known)
        settled = self.sent + self.rejected + self.suppressed + self.duplicate
        return max(self.total - settled, 0.0)


@dataclass(frozen=True, slots=True)
class RouteLink:
    """A route's binds, shared by every campaign."""

    route: str
    binds: int = 0
    binds_up: int = 0
    tps_configured: float = 0.0
    tps_target: float = 0.0
    submits: float = 0.0
    throttled: float = 0.0
    window_in_use: float = 0.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: float  # unix time
    campaigns: tuple[CampaignSnapshot, ...] = ()
    links: tuple[RouteLink, ...] = ()
    receipts: dict[str, float] = field(default_factory=dict)

    def campaign(self, name: str) -> CampaignSnapshot | None:
        return next((c for c in self.campaigns if c.name == name), None)


# ---------------------------------------------------------------------------- collect
Samples = dict[str, list[tuple[dict[str, str], float]]]


def _samples(registry: CollectorRegistry) -> Samples:
    out: Samples = defaultdict(list)
    for metric in registry.collect():
        for s in metric.samples:
            out[s.name].append((s.labels, s.value))
    return out


def _by(samples: Samples, name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """Sum of ``name``'s samples grouped by the label values ``keys``."""
    acc: dict[tuple[str, ...], float] = defaultdict(float)
    for labels, value in samples.get(name, ()):
        acc[tuple(labels.get(k, "") for k in keys)] += value
    return acc


def collect(registry: CollectorRegistry = REGISTRY, now: float | None = None) -> Snapshot:
    """Everything the display shows, read from ``registry`` at this instant."""
    s = _samples(registry)
    finished: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for (c, r, state), n in _by(
        s, "smsblast_recipients_total", "campaign", "route", "state"
    ).items():
        finished[c, r][state] = n
    accepted = _by(s, "smsblast_submits_accepted_total", "campaign", "route")
    throttled: dict[tuple[str, ...], float] = defaultdict(float)
    for labels, value in s.get("smsblast_submits_retried_total", ()):
        if labels.get("reason") in _THROTTLE_REASONS:
            throttled[labels["campaign"], labels["route"]] += value
    remaining = _by(s, "smsblast_campaign_remaining", "campaign", "route")
    target = _by(s, "smsblast_campaign_target_rate", "campaign", "route")
    finish = _by(s, "smsblast_campaign_projected_finish_timestamp_seconds", "campaign", "route")

    names = {c for c, _ in finished} | {k[0] for k in accepted}
    routes_of: dict[str, set[str]] = defaultdict(set)
    for c, r in [*finished, *((k[0], k[1]) for k in accepted), *((k[0], k[1]) for k in remaining)]:
        if r:
            routes_of[c].add(r)

    per_campaign = {
        metric: _by(s, metric, "campaign")
        for metric in (
            "smsblast_campaign_records",
            "smsblast_records_read_total",
            "smsblast_records_rejected_total",
            "smsblast_recipients_suppressed_total",
            "smsblast_recipients_duplicate_total",
            "smsblast_campaign_in_flight",
            "smsblast_campaign_pending",
        )
    }

    def one(metric: str, key: tuple[str, ...]) -> float:
        return per_campaign[metric].get(key, 0.0)

    states: dict[str, str] = {}
    for labels, value in s.get("smsblast_campaign_state", ()):
        if value:
            states[labels["campaign"]] = labels["state"]
    deadlines = _by(s, "smsblast_campaign_deadline_timestamp_seconds", "campaign")

    names |= {k[0] for k in per_campaign["smsblast_campaign_records"]}
    campaigns = []
    for name in sorted(names):
        key = (name,)
        routes = tuple(
            RouteSnapshot(
                route=r,
                finished=dict(finished.get((name, r), {})),
                accepted_parts=accepted.get((name, r), 0.0),
                throttled=throttled.get((name, r), 0.0),
                remaining=remaining.get((name, r)),
                target_rate=target.get((name, r)),
                projected_finish=finish.get((name, r)),
            )
            for r in sorted(routes_of[name])
        )
        campaigns.append(
            CampaignSnapshot(
                name=name,
                total=one("smsblast_campaign_records", key),
                read=one("smsblast_records_read_total", key),
                rejected=one("smsblast_records_rejected_total", key),
                suppressed=one("smsblast_recipients_suppressed_total", key),
                duplicate=one("smsblast_recipients_duplicate_total", key),
                in_flight=one("smsblast_campaign_in_flight", key),
                pending=one("smsblast_campaign_pending", key),
                state=states.get(name),
                deadline=deadlines.get(key),
                routes=routes,
            )
        )

    links = []
    up = s.get("smsblast_bind_up", ())
    for route in sorted({labels["route"] for labels, _ in up}):

        def total(name: str, route: str = route) -> float:
            return sum(v for labels, v in s.get(name, ()) if labels.get("route") == route)

        mine = [v for labels, v in up if labels["route"] == route]
        links.append(
            RouteLink(
                route=route,
                binds=len(mine),
                binds_up=sum(1 for v in mine if v >= 1),
                tps_configured=total("smsblast_tps_configured"),
                tps_target=total("smsblast_tps_target"),
                submits=total("smsblast_bind_submits_total"),
                throttled=total("smsblast_bind_throttled_total"),
                window_in_use=total("smsblast_window_in_use"),
            )
        )
    receipts = {k[0]: v for k, v in _by(s, "smsblast_receipts_total", "state").items()}
    return Snapshot(
        at=time.time() if now is None else now,
        campaigns=tuple(campaigns),
        links=tuple(links),
        receipts=receipts,
    )


# ---------------------------------------------------------------------------- pure views
def _rate(now: float, before: float | None, seconds: float) -> float | None:
    if before is None or seconds <= 0:
        return None
    return max(now - before, 0.0) / seconds


def _route_rates(cur: Snapshot, prev: Snapshot | None) -> dict[tuple[str, str], float | None]:
    seconds = cur.at - prev.at if prev is not None else 0.0
    rates: dict[tuple[str, str], float | None] = {}
    for c in cur.campaigns:
        old = prev.campaign(c.name) if prev is not None else None
        old_routes = {r.route: r.sent for r in old.routes} if old is not None else {}
        for r in c.routes:
            before = old_routes.get(r.route, 0.0) if old is not None else None
            rates[c.name, r.route] = _rate(r.sent, before, seconds)
    return rates


def _clock(ts: float | None) -> str:
    if ts is None or not math.isfinite(ts):
        return "never" if ts is not None else "-"
    return time.strftime("%H:%M:%S", time.localtime(ts))


def _num(n: float | None) -> str:
    return "-" if n is None else f"{n:,.0f}"


def eta(c: CampaignSnapshot, rate: float | None, now: float) -> float | None:
    """When the campaign will have sent everything: the engine's projection when it
    exports one, else remaining / achieved rate. ``None`` when unknown, ``inf`` when the
    rate is zero with work left."""
    projected = [r.projected_finish for r in c.routes if r.projected_finish is not None]
    if projected:
        return max(projected)
    remaining = c.remaining
    if remaining <= 0:
        return now
    if rate is None:
        return None
    return now + remaining / rate if rate > 0 else math.inf


def _eta_text(c: CampaignSnapshot, rate: float | None, now: float) -> str:
    when = eta(c, rate, now)
    text = f"ETA {_clock(when)}"
    if c.deadline is not None:
        late = when is not None and when > c.deadline
        text += f" vs deadline {_clock(c.deadline)}" + (" LATE" if late else "")
    return text


def render(cur: Snapshot, prev: Snapshot | None = None) -> RenderableType:
    """The progress screen for ``cur`` (rates measured since ``prev``)."""
    rates = _route_rates(cur, prev)
    links = {link.route: link for link in cur.links}
    parts: list[RenderableType] = []
    for c in cur.campaigns:
        rate_values = [rates.get((c.name, r.route)) for r in c.routes]
        known = [x for x in rate_values if x is not None]
        c_rate = sum(known) if known else None
        header = (
            f"campaign {c.name}" + (f" [{c.state}]" if c.state else "") + f"  sent "
            f"{_num(c.sent)} / {_num(c.total)}  {_eta_text(c, c_rate, cur.at)}"
        )
        parts.append(Text(header, style="bold"))
        parts.append(
            Text(
                f"  rejected {_num(c.rejected)}  suppressed {_num(c.suppressed)}  "
                f"duplicates {_num(c.duplicate)}  in memory {_num(c.in_flight)}  "
                f"parked {_num(c.pending)}"
            )
        )
        table = Table(expand=False)
        for col in ("route", "sent", "remaining", "rate/s", "target/s", "refused", "throttled"):
            table.add_column(col, justify="left" if col == "route" else "right")
        table.add_column("binds up", justify="right")
        for r in c.routes:
            link = links.get(r.route)
            target = r.target_rate if r.target_rate is not None else (link and link.tps_target)
            remaining = r.remaining if r.remaining is not None else None
            # submit outcomes (the SMSC refused it, or the connection lost it); receipt
            # failures are counted under "receipts" below
            refused = sum(r.finished.get(s, 0.0) for s in ("failed", "unknown"))
            throttled = max(r.throttled, link.throttled if link else 0.0)
            rate = rates.get((c.name, r.route))
            table.add_row(
                r.route,
                _num(r.sent),
                _num(remaining),
                _num(rate),
                _num(target if target else None),
                _num(refused),
                _num(throttled),
                f"{link.binds_up}/{link.binds}" if link else "-",
            )
        parts.append(table)
    up = sum(link.binds_up for link in cur.links)
    binds = sum(link.binds for link in cur.links)
    receipts = "  ".join(f"{k} {v:,.0f}" for k, v in sorted(cur.receipts.items()) if v)
    parts.append(Text(f"binds {up}/{binds} up   receipts: {receipts or 'none yet'}"))
    return Group(*parts)


def plain_line(cur: Snapshot, prev: Snapshot | None = None) -> str:
    """One line for logs and pipes: per campaign sent/total, rate, ETA; binds; receipts."""
    rates = _route_rates(cur, prev)
    fields = []
    for c in cur.campaigns:
        known = [x for r in c.routes if (x := rates.get((c.name, r.route))) is not None]
        c_rate = sum(known) if known else None
        per_route = ",".join(f"{r.route}={r.sent:,.0f}" for r in c.routes)
        fields.append(
            f"campaign={c.name} sent={c.sent:,.0f}/{c.total:,.0f} ({per_route}) "
            f"rate={_num(c_rate)}/s {_eta_text(c, c_rate, cur.at)}"
        )
    up = sum(link.binds_up for link in cur.links)
    binds = sum(link.binds for link in cur.links)
    receipts = ",".join(f"{k}={v:,.0f}" for k, v in sorted(cur.receipts.items()) if v)
    fields.append(f"binds={up}/{binds} receipts={receipts or 0}")
    return "progress " + " | ".join(fields)


# ---------------------------------------------------------------------------- the task
def resolve_mode(mode: str, stream: TextIO | None = None) -> Mode:
    """``auto`` becomes ``rich`` on a terminal and ``plain`` otherwise."""
    if mode == "auto":
        out = stream if stream is not None else sys.stdout
        return "rich" if out.isatty() else "plain"
    if mode not in ("rich", "plain", "off"):
        raise ValueError(f"progress mode {mode!r}")
    return mode  # type: ignore[return-value]


async def show(
    mode: str,
    *,
    interval: float | None = None,
    stream: TextIO | None = None,
    registry: CollectorRegistry = REGISTRY,
    campaigns: Iterable[str] | None = None,
) -> None:
    """Redraw (rich) or print (plain) the progress until cancelled; draw once more then.

    ``interval`` defaults to 0.5 s for rich and 10 s for plain lines. ``campaigns``
    limits the display to those names (others in the same registry are hidden).
    """
    resolved = resolve_mode(mode, stream)
    if resolved == "off":
        return
    out = stream if stream is not None else sys.stdout
    wanted = set(campaigns) if campaigns is not None else None

    def snap() -> Snapshot:
        s = collect(registry)
        if wanted is None:
            return s
        return Snapshot(
            s.at,
            tuple(c for c in s.campaigns if c.name.split("@", 1)[0] in wanted),
            s.links,
            s.receipts,
        )

    if resolved == "plain":
        every = 10.0 if interval is None else interval
        prev = snap()
        try:
            while True:
                await asyncio.sleep(every)
                cur = snap()
                print(plain_line(cur, prev), file=out, flush=True)
                prev = cur
        except asyncio.CancelledError:
            print(plain_line(snap(), prev), file=out, flush=True)
            raise
    every = 0.5 if interval is None else interval
    console = Console(file=out, force_terminal=True if mode == "rich" else None)
    prev = snap()
    with Live(render(prev), console=console, auto_refresh=False, transient=False) as live:
        window: list[Snapshot] = [prev]
        try:
            while True:
                await asyncio.sleep(every)
                cur = snap()
                window = [*window, cur][-max(2, int(5 / every)) :]  # rates over ~5 s
                live.update(render(cur, window[0]), refresh=True)
        except asyncio.CancelledError:
            cur = snap()
            live.update(render(cur, window[0]), refresh=True)
            raise
