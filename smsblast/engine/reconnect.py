"""Wait out an unreachable Kafka: retry a step (a campaign's start, its dead letters, the
opt-out list) with backoff until it succeeds or the engine stops.

Why: the engine died with a traceback (``KafkaConnectionError: Unable to bootstrap``) when
Kafka was down or hung as a campaign started: a broker restarted for maintenance, a dead
link. A scheduled blast should wait for Kafka, say so in the log and in
``smsblast_kafka_unreachable_total``, and go on when Kafka is back. Errors that waiting
cannot fix (a wrong password, no permission, a missing topic) are raised at once, so the
caller can report them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from aiokafka.errors import KafkaError, KafkaTimeoutError

from smsblast import metrics as m

__all__ = [
    "FIRST_DELAY",
    "MAX_DELAY",
    "describe",
    "retry_delay",
    "transient",
    "until_reachable",
]

log = logging.getLogger("smsblast.engine")

T = TypeVar("T")

FIRST_DELAY: Final = 1.0  # seconds before the first retry
MAX_DELAY: Final = 30.0  # the longest wait between two attempts


def transient(exc: BaseException) -> bool:
    """Whether waiting may fix ``exc``: aiokafka's retriable errors (connection lost, no
    broker, coordinator not available, request timed out) and timeouts."""
    if isinstance(exc, KafkaTimeoutError):
        return True
    if isinstance(exc, KafkaError):
        return bool(exc.retriable)
    return isinstance(exc, (TimeoutError, ConnectionError))


def retry_delay(failures: int, first: float = FIRST_DELAY, cap: float = MAX_DELAY) -> float:
    """Seconds to wait after the ``failures``-th failure in a row (1, 2, 3, ...): doubling
    from ``first`` up to ``cap``."""
    return min(cap, first * 2.0 ** max(0, failures - 1))


async def until_reachable(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    stopped: asyncio.Event,
    *,
    first: float = FIRST_DELAY,
    cap: float = MAX_DELAY,
) -> T | None:
    """``await attempt()`` until it returns, and return its result; ``None`` when
    ``stopped`` is set first (while an attempt hangs, or while waiting to retry).

    A transient error (:func:`transient`) is logged with the next delay and counted in
    ``smsblast_kafka_unreachable_total{step=what}``; any other exception propagates.
    ``attempt`` must clean up after itself when it fails (close what it started).
    """
    failures = 0
    while True:
        try:
            return await _unless_stopped(attempt, stopped)
        except Exception as exc:
            if not transient(exc):
                raise
            failures += 1
            delay = retry_delay(failures, first, cap)
            m.KAFKA_UNREACHABLE.labels(what).inc()
            log.warning(
                "%s: Kafka unreachable (%s); retrying in %.0f s (%d failed so far)",
                what,
                describe(exc),
                delay,
                failures,
            )
        try:
            await asyncio.wait_for(stopped.wait(), delay)
        except TimeoutError:
            continue
        return None


async def _unless_stopped(attempt: Callable[[], Awaitable[T]], stopped: asyncio.Event) -> T | None:
    """The result of one attempt, or ``None`` when ``stopped`` is set first (a hung broker
    can hold an attempt for aiokafka's request timeout, 40 s): the attempt is then
    cancelled, and cleans up as on any failure."""
    task = asyncio.ensure_future(attempt())
    stop = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when this coroutine is cancelled: the attempt never outlives it
        stop.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    return None if task.cancelled() else task.result()


def describe(exc: BaseException) -> str:
    """``Type: message``, once (aiokafka's errors start their message with their type)."""
    text = str(exc)
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name
