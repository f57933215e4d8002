"""Cutting a Kafka read batch into slices, so the engine's loop can breathe between them.

Why: the read loop takes READ_BATCH (5,000) records at a time, one ledger transaction each
(fewer, larger transactions cost the ledger less a row). Preparing such a batch in one go
(parse, route, render: ~7 us a record) held the event loop for ~35 ms, and every bind's
window sat idle meanwhile: measured, the binds' windows were 90% full with 15-25k parts
queued, and the engine's core 80% busy. Preparing it in slices of 1,000, with a turn of
the loop between them, raised 1M end to end from 21,797 and 22,593/s to 23,564 and
23,337/s (alternating runs; BENCHMARKS.md, "Session 11"). The ledger still gets the whole
batch in one call.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TypeVar

__all__ = ["slices"]

K = TypeVar("K")
V = TypeVar("V")


def slices(batch: Mapping[K, Sequence[V]], size: int) -> Iterator[dict[K, Sequence[V]]]:
    """``batch`` (partition -> records) in pieces of at most ``size`` records, in order:
    the pieces together hold every record once, each partition's records in their order."""
    if size < 1:
        raise ValueError(f"slice size must be at least 1, not {size}")
    piece: dict[K, Sequence[V]] = {}
    room = size
    for key, records in batch.items():
        at = 0
        while at < len(records):
            if room == 0:
                yield piece
                piece, room = {}, size
            take = records[at : at + room]
            piece[key] = take
            at += len(take)
            room -= len(take)
    if piece:
        yield piece
