"""Deadline pacing for one campaign on one route: pure arithmetic, re-run every tick.

The campaign's plan loop (engine.campaign) gathers the facts (ledger tallies,
records not yet read, the capacity its binds allow now, the rate achieved) and
this module turns them into what to do and what to tell Grafana:

* remaining work per route: recipients still PENDING or IN_FLIGHT on the route,
  plus the records not yet read shared out by the route mix seen so far (the
  plan sharpens as the segment is read; ``smsblast plan`` counts exactly);
* the target rate (``schedule.target_rate``): what remains divided by the
  sending time left before the deadline (quiet hours excluded), never above
  the capacity granted (the binds' current adaptive rates times ``max_share``);
  ``asap`` takes the whole capacity;
* the pacer to apply: the target when pacing ``even`` to a deadline, the
  route's configured capacity times ``max_share`` when only the share caps it,
  none otherwise;
* the projected finish: the remaining work at the rate really achievable now
  (the target, or the achieved rate when that is lower after a warm-up),
  quiet hours skipped.

Re-planning every tick is what makes retries, throttling and lost binds fold
into the plan: they leave more remaining, or less capacity, for less time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from smsblast.schedule import QuietHours, projected_finish, target_rate

#: States of recipients still to be sent on their route.
_OPEN_STATES = ("pending", "in_flight")
#: Aim to finish this share of the schedule early (at least 1 s, at most an hour), so
#: the last stragglers and retries still land before the deadline.
MARGIN_SHARE = 0.05
MARGIN_MIN = 1.0
MARGIN_MAX = 3600.0
#: The pacer never goes below this (parts/s): a plan that rounds to zero must not stall.
MIN_PACE = 0.5


@dataclass(frozen=True, slots=True)
class RoutePlan:
    remaining: float  # parts still to send on the route
    target: float  # parts per second the plan aims for
    pace: float | None  # the lane's pacer rate; None: no cap of the campaign's own
    projected_finish: float  # epoch seconds; inf when nothing can be sent


def aim(start: float | None, deadline: float | None) -> float | None:
    """The deadline to plan for: a little before the real one (see MARGIN_SHARE)."""
    if deadline is None:
        return None
    span = deadline - start if start is not None else 0.0
    return deadline - min(max(MARGIN_MIN, span * MARGIN_SHARE), MARGIN_MAX)


def remaining_recipients(
    tallies: Mapping[str, Mapping[str, int]], unread: int, routes: Iterable[str]
) -> dict[str, float]:
    """Recipients still to send per route: open rows plus unread records by route mix."""
    routes = list(routes)
    seen = {r: sum(tallies.get(r, {}).values()) for r in routes}
    total_seen = sum(seen.values())
    result: dict[str, float] = {}
    for route in routes:
        states = tallies.get(route, {})
        open_rows = sum(states.get(s, 0) for s in _OPEN_STATES)
        share = seen[route] / total_seen if total_seen else 1 / max(1, len(routes))
        result[route] = open_rows + unread * share
    return result


def plan_route(
    *,
    now: float,
    remaining: float,
    capacity: float,
    configured_capacity: float,
    share: float,
    deadline: float | None,
    quiet: QuietHours,
    even: bool,
    achieved: float | None,
) -> RoutePlan:
    """One route's plan. ``remaining`` in parts; capacities in parts/s (before ``share``);
    ``achieved`` the recent sending rate (None while warming up)."""
    granted = capacity * share
    target = target_rate(remaining, now, deadline, quiet, granted, pace="even" if even else "asap")
    pace: float | None
    if even and deadline is not None:
        pace = max(target, MIN_PACE) if remaining > 0 else MIN_PACE
    elif share < 1.0:
        pace = max(configured_capacity * share, MIN_PACE)
    else:
        pace = None
    rate = target if achieved is None else min(target, achieved) if target else 0.0
    if remaining > 0 and rate <= 0:
        finish = math.inf
    else:
        finish = projected_finish(now, remaining, rate, quiet)
    return RoutePlan(remaining, target, pace, finish)
