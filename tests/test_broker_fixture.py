"""The broker fixture really is a Kafka-protocol broker: records round-trip."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.conftest import TopicFactory


async def test_records_round_trip_through_the_broker(
    kafka_bootstrap: str, kafka_topic: TopicFactory
) -> None:
    topic = await kafka_topic(partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, key=b"%d" % i, value=b"v%d" % i)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"g-{topic}",
    )
    await consumer.start()
    seen: set[bytes] = set()
    try:
        for _ in range(50):
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                seen.update(r.value for r in records if r.value is not None)
            if len(seen) == 10:
                break
    finally:
        await consumer.stop()
    assert seen == {b"v%d" % i for i in range(10)}
