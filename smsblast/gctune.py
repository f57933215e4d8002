"""Garbage-collector settings for the long-running, allocation-heavy processes (the
engine, its ledger process, the simulator).

Why: CPython starts a collection when tracked objects grow by 700 (``gc.get_threshold()``
``(700, 10, 10)``), and every tenth or hundredth one walks older generations. The engine
keeps up to ``max_in_memory`` recipients alive for about a second each (jobs, parts, futures,
tuples), so they outlive the young collections, reach the oldest generation and make its
full collections both frequent and long. Measured with a ``gc.callbacks`` probe in
``smsblast run`` (``python -m loadtest e2e --recipients 300000``): the default settings spent
4.75 s of a 28.6 s run in the collector (37 full collections of ~91 ms each, 10,493
recipients/s); after :func:`tune_for_throughput` 0.07 s (one young collection), 13,349
recipients/s, peak RSS 116 -> 120 MB.

What it does: ``gc.freeze()`` moves everything alive at startup (modules, config,
compiled templates) out of the collector's sight for good, and the young generation's
threshold goes to 200,000 objects, so a collection runs every few seconds instead of
hundreds of times a second. Cycles are still collected (later, in larger batches); nothing
in the engine relies on prompt collection, since its per-message objects are freed by
reference counting.

The price is a pause of tens of milliseconds per collection. The engine's pacing does not
mind (its limiter grants by time, so a pause delays submits, never bunches them), but the
simulator counts submits per 100 ms and per second as it reads them: with the high threshold
its own pauses made it count up to 107 submits in a second on a 100 TPS bind, so the
simulator uses the freeze only (``young=None``; ``python -m loadtest paced``: every 1 s
window within its cap again, 100 ms overshoots from 59-63 back to 44-50 at 400/s).
"""

from __future__ import annotations

import gc
from typing import Final

#: Young-generation threshold (objects); the older two keep CPython's defaults.
YOUNG_THRESHOLD: Final = 200_000


def tune_for_throughput(young: int | None = YOUNG_THRESHOLD) -> None:
    """Call once, after startup's imports and configuration, before the hot loop.
    ``young=None`` keeps CPython's thresholds (only the freeze): shorter pauses."""
    gc.freeze()
    if young is not None:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(young, middle, old)
