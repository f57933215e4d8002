"""Two `smsblast run` on one ledger: the second is refused before it does anything, so
two engines can never send the same campaign's recipients twice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from smsblast.segments import produce, synthetic_recipients
from tests.conftest import TopicFactory
from tests.engine_process import (
    MIX,
    ROUTES,
    accounted_for,
    start_engine,
    write_files,
)
from tests.engine_stack import simulator_process, simulator_profile

#: The first engine's blast (~2 s after its group join): the second starts as soon as the
#: lock is taken, and is refused only while the first holds it (after, it would run: exit 0).
SMALL = 8000


async def test_a_second_engine_on_the_same_ledger_is_refused(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    topic = await kafka_topic(partitions=3)
    await produce(kafka_bootstrap, topic, list(synthetic_recipients(SMALL, MIX, seed=37)))
    with simulator_process(simulator_profile(ROUTES), str(tmp_path)) as smsc:
        cmd = write_files(tmp_path, kafka_bootstrap, smsc.port, topic, "skip")
        first = start_engine(cmd)
        lock = tmp_path / "ledger.sqlite.lock"
        deadline = time.monotonic() + 30
        while not (lock.exists() and f"pid {first.pid}," in lock.read_text()):
            assert first.poll() is None, first.communicate()[0]
            assert time.monotonic() < deadline, "the first engine never took the lock"
            await asyncio.sleep(0.02)
        second = start_engine(cmd)  # while the first runs: it holds the lock until it exits
        out2, _ = await asyncio.to_thread(second.communicate, timeout=120)
        out1, _ = await asyncio.to_thread(first.communicate, timeout=120)
        final = smsc.stats()["totals"]
    assert second.returncode == 2, out2
    assert f"in use by another smsblast run (pid {first.pid}," in out2, out2
    assert first.returncode == 0, out1
    assert final["duplicates"] == 0 and final["submits_accepted"] == SMALL
    accounted_for(tmp_path, out1, SMALL)
