"""Figures from the simulator's stats document: per-bind accepted counts, the exact peaks
over any 1 s and any 100 ms, and the 100 ms timeline the rate plots are drawn from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loadtest.plots import Series


@dataclass(frozen=True)
class BindFigures:
    key: str  # "<account>#<bind index>"
    account: str
    accepted: int
    max_1s: int
    max_100ms: int
    series: Series

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "accepted": self.accepted,
            "max_1s": self.max_1s,
            "max_100ms": self.max_100ms,
            "timeline": {
                "start": self.series.start,
                "step_s": self.series.step_s,
                "counts": self.series.counts,
            },
        }


def bind_figures(stats: dict[str, Any], limits: Mapping[str, float]) -> list[BindFigures]:
    """One entry per bind that accepted anything; ``limits`` maps account -> TPS per bind."""
    out = []
    for key, b in sorted(stats["binds"].items()):
        timeline = b["accepted_per_100ms"]
        if not b["submits"]["accepted"] or timeline["start"] is None:
            continue
        out.append(
            BindFigures(
                key=key,
                account=b["account"],
                accepted=b["submits"]["accepted"],
                max_1s=b["max_accepted_1s"],
                max_100ms=b["max_accepted_100ms"],
                series=Series(
                    key,
                    timeline["start"],
                    timeline["step_s"],
                    timeline["counts"],
                    limits.get(b["account"]),
                ),
            )
        )
    return out


def route_series(binds: list[BindFigures], limits: Mapping[str, float]) -> list[Series]:
    """The binds' timelines summed per account (for runs where binds come and go)."""
    out = []
    for account in sorted({b.account for b in binds}):
        mine = [b.series for b in binds if b.account == account]
        step = mine[0].step_s
        start = min(s.start for s in mine)
        length = max(round((s.start - start) / step) + len(s.counts) for s in mine)
        counts = [0] * length
        for s in mine:
            offset = round((s.start - start) / step)
            for i, n in enumerate(s.counts):
                counts[offset + i] += n
        out.append(Series(account, start, step, counts, limits.get(account)))
    return out


def unique_destinations(stats: dict[str, Any]) -> int:
    """Distinct destination numbers the SMSC accepted, over every account."""
    return sum(a["unique_destinations"] or 0 for a in stats["accounts"].values())


def last_accept(binds: list[BindFigures]) -> float | None:
    """Wall time at the end of the last 100 ms slot with an accepted submit."""
    ends = [b.series.start + len(b.series.counts) * b.series.step_s for b in binds]
    return max(ends, default=None)


def first_accept(binds: list[BindFigures]) -> float | None:
    return min((b.series.start for b in binds), default=None)
