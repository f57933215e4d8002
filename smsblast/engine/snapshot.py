"""The segment snapshot: where each partition of a campaign's topics ends, now.

``ListOffsets(latest)`` is the standard answer, but one Kafka-protocol broker we
test against (Tansu 0.6) reports the *base offset of the last record batch + 1*
instead of the offset after its last record, which would silently cut a
segment short. So the reported end is verified: fetch from ``end - 1`` and take
one past the highest offset actually there. On a correct broker the fetch
returns the last record and changes nothing; the cost is one fetch per
partition at campaign start.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

PartKey = tuple[str, int]


class SegmentNotFound(LookupError):
    """A segment topic does not exist (or has no partitions)."""


async def segment_end_offsets(
    bootstrap: list[str] | str, topics: list[str], *, timeout: float = 15.0, **kafka: Any
) -> dict[PartKey, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, **kafka
    )
    await consumer.start()
    try:
        partitions: list[TopicPartition] = []
        for topic in topics:
            parts = None
            for _ in range(50):
                await consumer.topics()  # refreshes cluster metadata
                parts = consumer.partitions_for_topic(topic)
                if parts:
                    break
                await asyncio.sleep(0.1)
            if not parts:
                raise SegmentNotFound(f"segment topic {topic!r} not found")
            partitions += [TopicPartition(topic, p) for p in sorted(parts)]
        reported = {tp: int(off) for tp, off in (await consumer.end_offsets(partitions)).items()}
        ends = dict(reported)
        probe = [tp for tp, off in reported.items() if off > 0]
        if probe:
            consumer.assign(probe)
            for tp in probe:
                consumer.seek(tp, reported[tp] - 1)
            remaining = set(probe)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while remaining and loop.time() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for tp, records in batch.items():
                    if records:
                        ends[tp] = max(ends[tp], records[-1].offset + 1)
                    remaining.discard(tp)
        return {(tp.topic, tp.partition): off for tp, off in ends.items()}
    finally:
        await consumer.stop()
