"""`smsblast report CAMPAIGN --chart FILE`: submits and receipts per second, per route, as PNG.

The data comes from :meth:`smsblast.ledger.SqliteLedger.per_second` (aggregated in SQL);
:func:`series` turns it into aligned, zero-filled per-second columns (pure), and
:func:`write_chart` draws them with matplotlib's Agg backend. matplotlib is imported only
here, and only when a chart is asked for (the ``chart`` extra), so the engine never pays
for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from smsblast.ledger import SqliteLedger, Timeline

__all__ = ["CHART_DPI", "CHART_SIZE_IN", "Series", "series", "write_chart"]

CHART_SIZE_IN: Final = (10.0, 6.0)  # inches
CHART_DPI: Final = 100  # -> 1000 x 600 pixels


class ChartUnavailable(RuntimeError):
    """matplotlib is not installed."""


@dataclass(frozen=True, slots=True)
class Series:
    """Seconds since the campaign's first event, and per route the counts at each second."""

    start: int  # unix second of x = 0
    seconds: list[int]
    submits: dict[str, list[int]]
    receipts: dict[str, list[int]]


def _fill(counts: Mapping[int, int], start: int, length: int) -> list[int]:
    column = [0] * length
    for second, n in counts.items():
        column[second - start] += n
    return column


def series(timeline: Timeline) -> Series:
    """Zero-filled per-second columns over the whole campaign (first to last event)."""
    seconds = [
        s for data in (timeline.submits, timeline.receipts) for r in data.values() for s in r
    ]
    if not seconds:
        return Series(0, [], {}, {})
    start, end = min(seconds), max(seconds)
    length = end - start + 1
    return Series(
        start=start,
        seconds=list(range(length)),
        submits={r: _fill(c, start, length) for r, c in sorted(timeline.submits.items())},
        receipts={r: _fill(c, start, length) for r, c in sorted(timeline.receipts.items())},
    )


def write_chart(ledger: SqliteLedger, campaign: str, path: str | os.PathLike[str]) -> Series:
    """Write the campaign's chart to ``path`` (PNG, 1000x600) and return its data.

    Raises:
        ChartUnavailable: matplotlib is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ChartUnavailable("charts need matplotlib: pip install 'smsblast[chart]'") from exc
    data = series(ledger.per_second(campaign))
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=CHART_SIZE_IN, dpi=CHART_DPI)
    try:
        for axis, title, per_route in (
            (top, "submits per second (parts accepted)", data.submits),
            (bottom, "receipts per second", data.receipts),
        ):
            for route, counts in per_route.items():
                axis.plot(
                    data.seconds,
                    counts,
                    label=route or "(no route)",
                    linewidth=1,
                    drawstyle="steps-post",
                )
            axis.set_title(title, fontsize=10)
            axis.set_ylabel("per second")
            axis.grid(True, alpha=0.3)
            if per_route:
                axis.legend(loc="upper right", fontsize=8)
        bottom.set_xlabel("seconds since the first submit")
        fig.suptitle(f"campaign {campaign}")
        fig.savefig(os.fspath(path), format="png", dpi=CHART_DPI)
    finally:
        plt.close(fig)
    return data
