"""Two `smsblast run` on one ledger: the second is refused before it does anything, so
two engines can never send the same campaign's recipients twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

from smsblast.segments import produce, synthetic_recipients
from tests.conftest import TopicFactory
from tests.engine_process import (
    MIX,
    RECIPIENTS,
    ROUTES,
    accepted,
    accounted_for,
    start_engine,
    write_files,
)
from tests.engine_stack import simulator_process, simulator_profile


async def test_a_second_engine_on_the_same_ledger_is_refused(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    topic = await kafka_topic(partitions=3)
    await produce(kafka_bootstrap, topic, list(synthetic_recipients(RECIPIENTS, MIX, seed=37)))
    with simulator_process(simulator_profile(ROUTES), str(tmp_path)) as smsc:
        cmd = write_files(tmp_path, kafka_bootstrap, smsc.port, topic, "skip")
        first = start_engine(cmd)
        while accepted(smsc) == 0:
            assert first.poll() is None, first.communicate()[0]
            await asyncio.sleep(0.05)
        second = start_engine(cmd)
        out2, _ = await asyncio.to_thread(second.communicate, timeout=120)
        out1, _ = await asyncio.to_thread(first.communicate, timeout=120)
        final = smsc.stats()["totals"]
    assert second.returncode == 2, out2
    assert "in use by another smsblast run" in out2, out2
    assert first.returncode == 0, out1
    assert final["duplicates"] == 0 and final["submits_accepted"] == RECIPIENTS
    accounted_for(tmp_path, out1)
