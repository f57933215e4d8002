"""Every PNG the scenarios write (matplotlib, Agg backend: no display needed).

* :func:`rate_plot`: accepted submit_sm per second over time, one line per bind (or route),
  each with its limit as a dashed line of the same colour (1 s bins; 100 ms bins, scaled to
  per second, when the run is shorter than 20 s);
* :func:`latency_plot`: a latency histogram with p50/p99 marked;
* :func:`bar_plot`: one bar per variant (throughput comparisons).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from loadtest.report import percentiles


@dataclass(frozen=True)
class Series:
    """Counts per ``step_s`` slot from wall time ``start``, and the per-second limit."""

    label: str
    start: float
    step_s: float
    counts: list[int]
    limit: float | None = None


def rates(series: Series, origin: float, bin_s: float) -> tuple[list[float], list[float]]:
    """The series summed into ``bin_s`` bins from ``origin``, as per-second rates: (bin start
    in seconds since ``origin``, rate) pairs, gaps as 0, plus a closing point at the end."""
    bins: dict[int, int] = {}
    for i, n in enumerate(series.counts):
        index = int((series.start - origin + i * series.step_s) / bin_s + 1e-9)
        bins[index] = bins.get(index, 0) + n
    if not bins:
        return [], []
    first, last = min(bins), max(bins)
    x = [i * bin_s for i in range(first, last + 2)]
    y = [bins.get(i, 0) / bin_s for i in range(first, last + 1)]
    return x, [*y, y[-1]]


def rate_plot(path: Path, series: list[Series], title: str) -> Path:
    """Accepted per second over time, one line per series, limits dashed."""
    fig, ax = plt.subplots(figsize=(10, 5))
    live = [s for s in series if s.counts]
    origin = min((s.start for s in live), default=0.0)
    end = max((s.start + len(s.counts) * s.step_s for s in live), default=0.0)
    bin_s = 1.0 if end - origin >= 20 else min((s.step_s for s in live), default=1.0)
    for i, s in enumerate(live):
        colour = f"C{i % 10}"
        x, y = rates(s, origin, bin_s)
        ax.step(x, y, where="post", color=colour, label=s.label, linewidth=1)
        if s.limit is not None:
            ax.axhline(s.limit, color=colour, linestyle="--", linewidth=0.8)
    ax.set_xlabel("seconds since the first accepted submit_sm")
    ax.set_ylabel(f"accepted submit_sm per second ({bin_s:g} s bins)")
    ax.set_title(title)
    if len(live) <= 16:
        ax.legend(fontsize="small", ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def latency_plot(path: Path, samples_s: list[float], title: str, xlabel: str) -> Path:
    """A histogram of ``samples_s`` (seconds, shown in ms) with p50 and p99 marked."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ms = [s * 1000 for s in samples_s]
    if ms:
        ax.hist(ms, bins=60, color="C0")
        marks = percentiles(ms)
        for name, colour in (("p50", "C1"), ("p99", "C3")):
            value = marks[name]
            if value is not None:
                ax.axvline(value, color=colour, linestyle="--", label=f"{name} {value:,.1f} ms")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no samples", ha="center", transform=ax.transAxes)
    ax.set_xlabel(f"{xlabel} (ms)")
    ax.set_ylabel("count (sampled)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def bar_plot(path: Path, labels: list[str], values: list[float], title: str, ylabel: str) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bars = ax.bar(labels, values, color=[f"C{i % 10}" for i in range(len(labels))])
    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values])
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
