"""Real-time benchmark of the per-bind rate limiter against asyncio-throttle, under uvloop.

One backlogged consumer per run (it always wants more): ``AsyncRateLimiter.acquire`` in
batches, or one ``async with Throttler`` per message. Each release is timestamped with
``time.monotonic()`` as soon as the acquisition returns. For an N-second run the table gives
the achieved rate over the run; the rate seen by a job of (N-1)*R units (how PERF-NOTES saw
asyncio-throttle overshoot: a whole period's quota goes out at the start of each period);
the most units released in any 1 s and any 100 ms window (half-open, any start); how many
acquisitions returned per second; and the process CPU (process_time / wall).

    python -m loadtest.limiter_bench [--seconds 5] [--rates 2000 20000]

Numbers vary with the machine and its load; nothing here gates CI.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version

from asyncio_throttle.throttler import Throttler

from smsblast.ratelimit import AsyncRateLimiter, cap_1s, cap_100ms

WANT = 1_000_000  # a backlogged caller: take whatever the limiter allows


@dataclass(frozen=True)
class Result:
    name: str
    rate: int
    seconds: float
    achieved: float
    job_rate: float | None  # units / time taken by the first (seconds - 1) * R units
    max_1s: int
    max_100ms: int
    acquisitions_per_s: float
    cpu_percent: float


def max_in_window(releases: Sequence[tuple[float, int]], window: float) -> int:
    """Most units released in any half-open window [s, s + window)."""
    best = inside = j = 0
    for i in range(len(releases)):
        while j < len(releases) and releases[j][0] - releases[i][0] < window:
            inside += releases[j][1]
            j += 1
        best = max(best, inside)
        inside -= releases[i][1]
    return best


def job_rate(releases: Sequence[tuple[float, int]], start: float, job: int) -> float | None:
    """The rate seen by a job of ``job`` units: job / time until its last unit went."""
    done = 0
    for t, n in releases:
        done += n
        if done >= job:
            return job / (t - start) if t > start else math.inf
    return None


async def measure(
    name: str, rate: int, seconds: float, acquire: Callable[[], Awaitable[int]]
) -> Result:
    clock = time.monotonic
    releases: list[tuple[float, int]] = []
    append = releases.append
    cpu0 = time.process_time()
    start = clock()
    end = start + seconds
    while True:
        n = await acquire()
        t = clock()
        if t >= end:
            break
        append((t, n))
    wall = clock() - start
    cpu = time.process_time() - cpu0
    return Result(
        name=name,
        rate=rate,
        seconds=seconds,
        achieved=sum(n for _, n in releases) / seconds,
        job_rate=job_rate(releases, start, round(rate * (seconds - 1))),
        max_1s=max_in_window(releases, 1.0),
        max_100ms=max_in_window(releases, 0.1),
        acquisitions_per_s=len(releases) / seconds,
        cpu_percent=100.0 * cpu / wall,
    )


def throttled(throttler: Throttler) -> Callable[[], Awaitable[int]]:
    async def acquire() -> int:
        async with throttler:
            return 1

    return acquire


async def run(rates: Sequence[int], seconds: float) -> list[Result]:
    results: list[Result] = []
    for rate in rates:
        ours = AsyncRateLimiter(rate)
        results.append(
            await measure("smsblast AsyncRateLimiter", rate, seconds, partial(ours.acquire, WANT))
        )
        ours.close()
        for name, throttler in (
            ("Throttler(R, period=1.0)", Throttler(rate, period=1.0)),
            ("Throttler(R/100, period=0.01)", Throttler(rate // 100, period=0.01)),
        ):
            results.append(await measure(name, rate, seconds, throttled(throttler)))
    return results


def render(results: Sequence[Result]) -> str:
    head = (
        "| limiter | R | achieved | vs R | (N-1)R-unit job | max in any 1 s (cap) "
        "| max in any 100 ms (cap) | acquisitions/s | CPU |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        job = "n/a" if r.job_rate is None else f"{r.job_rate:,.0f}/s"
        lines.append(
            f"| {r.name} | {r.rate:,} | {r.achieved:,.0f}/s | {r.achieved / r.rate - 1:+.2%} "
            f"| {job} "
            f"| {r.max_1s:,} ({cap_1s(r.rate):,}) | {r.max_100ms:,} ({cap_100ms(r.rate):,}) "
            f"| {r.acquisitions_per_s:,.0f} | {r.cpu_percent:.1f}% |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--rates", type=int, nargs="+", default=[2_000, 20_000])
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        print("uvloop is not installed; using the stock event loop", file=sys.stderr)
        results = asyncio.run(run(args.rates, args.seconds))
        loop_name = "asyncio"
    else:
        results = uvloop.run(run(args.rates, args.seconds))
        loop_name = f"uvloop {version('uvloop')}"
    print(f"{loop_name}, Python {sys.version.split()[0]}, {args.seconds:g} s per run")
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
