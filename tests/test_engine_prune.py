"""A pruned campaign is over for good: its numbers left the ledger, so the engine must never
run it again, even when its consumer group reads the segment from the start once more."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from smsblast.cli import main
from smsblast.segments import produce, synthetic_recipients
from tests.conftest import TopicFactory
from tests.engine_process import MIX, ROUTES, accepted, start_engine, write_files
from tests.engine_stack import SESSION_TIMEOUT_MS, simulator_process, simulator_profile

RECIPIENTS = 2000


async def rewind_group(bootstrap: str, group: str, topic: str, partitions: int) -> None:
    """Commit offset 0 for ``group`` on every partition of ``topic``, as
    ``kafka-consumer-groups --reset-offsets --to-earliest`` does (and as a group whose
    offsets expired behaves: the engine's consumers start from the earliest record)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=SESSION_TIMEOUT_MS,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 60
        while len(consumer.assignment()) < partitions:  # joined the group: may commit
            assert time.monotonic() < deadline, "never joined the campaign's group"
            await consumer.getmany(timeout_ms=200)
        await consumer.commit({tp: 0 for tp in consumer.assignment()})
    finally:
        await consumer.stop()


async def test_a_pruned_campaign_is_not_sent_again_when_its_group_is_rewound(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    topic = await kafka_topic(partitions=2)
    await produce(kafka_bootstrap, topic, list(synthetic_recipients(RECIPIENTS, MIX, seed=41)))
    with simulator_process(simulator_profile(ROUTES), str(tmp_path)) as smsc:
        cmd = write_files(tmp_path, kafka_bootstrap, smsc.port, topic, "skip")
        first = start_engine(cmd)
        out1, _ = await asyncio.to_thread(first.communicate, timeout=120)
        assert first.returncode == 0, out1
        assert accepted(smsc) == RECIPIENTS
        config = str(tmp_path / "smsblast.yaml")
        assert main(["prune", "crash", "--no-archive", "--config", config]) == 0
        await rewind_group(kafka_bootstrap, "smsblast.crash", topic, 2)

        second = start_engine(cmd)
        out2, _ = await asyncio.to_thread(second.communicate, timeout=120)
        totals = smsc.stats()["totals"]
    assert second.returncode == 0, out2
    assert "campaign crash: pruned from the ledger; not sent again" in out2, out2
    assert f"campaign crash: {RECIPIENTS:,} recipient(s)" in out2  # its counts, kept
    assert totals["submits_accepted"] == RECIPIENTS and totals["duplicates"] == 0
