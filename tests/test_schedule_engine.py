"""The schedule in the running engine: deadline pacing, projection, quiet hours, waves.

Real Tansu, real simulator, the real engine in-process; wall-clock schedules use an
injected clock (``ManualClock``) so a night of quiet hours or a week between waves
takes a second of real time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from smsblast.metrics import REGISTRY
from smsblast.schedule import ManualClock
from smsblast.simulator import Simulator
from tests.conftest import TopicFactory
from tests.engine_stack import (
    RouteSpec,
    campaign,
    engine_config,
    fill,
    make_engine,
    simulator_profile,
)

JAKARTA = ZoneInfo("Asia/Jakarta")
NO_RECEIPTS = {"receipts": {"enabled": False}}


def accepted(name: str, route: str = "telkomsel") -> float:
    labels = {"campaign": name, "route": route}
    return REGISTRY.get_sample_value("smsblast_submits_accepted_total", labels) or 0.0


def gauge(metric: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, labels)


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def numbers(kafka_bootstrap: str, topic: str, n: int) -> None:
    await fill(kafka_bootstrap, topic, [f"62812{i:08d}" for i in range(n)])


# ------------------------------------------------------------------ deadline pacing


async def blast_finish_time(
    kafka_bootstrap: str, topic: str, tmp_path, name: str, **schedule: object
) -> tuple[float, float, float]:
    """Run 10,000 recipients at 2,000/s capacity; (start, first accepted, last accepted)."""
    route = RouteSpec("telkomsel", ("812",), tps=1000, binds=2, window=50)
    async with Simulator(simulator_profile([route], **NO_RECEIPTS)) as smsc:
        config = engine_config(kafka_bootstrap, smsc.port, [route], str(tmp_path / "l.sqlite"))
        start = time.monotonic()
        now = datetime.now(UTC)
        camp = campaign(
            name,
            [topic],
            registered_delivery=False,
            start_at=now.isoformat(),
            deadline=(now + timedelta(seconds=20)).isoformat(),
            **schedule,
        )
        engine, ledger = make_engine(config, [camp])
        first = last = 0.0

        async def watch() -> None:
            nonlocal first, last
            while True:
                n = accepted(name)
                if n and not first:
                    first = time.monotonic()
                if n >= 10_000:
                    last = time.monotonic()
                    return
                await asyncio.sleep(0.02)

        watcher = asyncio.create_task(watch())
        await asyncio.wait_for(engine.run(until_done=True), 60)
        await asyncio.wait_for(watcher, 5)
        await ledger.close()
        stats = smsc.stats()
    assert stats["totals"]["submits_accepted"] == 10_000
    assert stats["totals"]["duplicates"] == 0
    return start, first, last


async def test_even_pace_finishes_just_before_the_deadline(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path
) -> None:
    """10,000 recipients, deadline 20 s ahead, capacity 2,000/s, pace even: the sending
    is spread out and ends between 17 and 20 s after the start."""
    topic = await kafka_topic(partitions=2)
    await numbers(kafka_bootstrap, topic, 10_000)
    start, _, last = await blast_finish_time(kafka_bootstrap, topic, tmp_path, "even", pace="even")
    print(f"pace even: last submit {last - start:.2f} s after the start")
    assert 17.0 <= last - start <= 20.0, last - start


async def test_asap_pace_sends_at_the_capacity(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path
) -> None:
    topic = await kafka_topic(partitions=2)
    await numbers(kafka_bootstrap, topic, 10_000)
    start, first, last = await blast_finish_time(
        kafka_bootstrap, topic, tmp_path, "asap", pace="asap"
    )
    print(f"pace asap: {10_000 / (last - first):,.0f}/s from first to last submit")
    # 10,000 at 2,000/s is 5 s of sending (generous bounds: the machine is shared)
    assert last - first <= 10_000 / 2000 * 1.6, last - first
    assert last - start < 17.0


async def test_projected_finish_shows_a_late_campaign_early(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path
) -> None:
    """Capacity 500/s for 10,000 recipients (20 s) and a deadline 10 s ahead: the
    projected-finish metric passes the deadline within the first 5% of the sending."""
    topic = await kafka_topic(partitions=1)
    await numbers(kafka_bootstrap, topic, 10_000)
    route = RouteSpec("telkomsel", ("812",), tps=500, window=50)
    name = "late"
    async with Simulator(simulator_profile([route], **NO_RECEIPTS)) as smsc:
        config = engine_config(kafka_bootstrap, smsc.port, [route], str(tmp_path / "l.sqlite"))
        now = datetime.now(UTC)
        camp = campaign(
            name,
            [topic],
            registered_delivery=False,
            start_at=now.isoformat(),
            deadline=(now + timedelta(seconds=10)).isoformat(),
            pace="even",
        )
        engine, ledger = make_engine(config, [camp])
        running = asyncio.create_task(engine.run(until_done=True))
        seen_late_at: float | None = None
        try:
            async with asyncio.timeout(40):
                while accepted(name) <= 500:  # the first 5% of the sending
                    projected = gauge(
                        "smsblast_campaign_projected_finish_timestamp_seconds",
                        campaign=name,
                        route="telkomsel",
                    )
                    deadline = gauge("smsblast_campaign_deadline_timestamp_seconds", campaign=name)
                    if projected is not None and deadline is not None and projected > deadline:
                        seen_late_at = accepted(name)
                        break
                    await asyncio.sleep(0.05)
        finally:
            engine.stop()
            await running
            await ledger.close()
    print(f"projected finish passed the deadline after {seen_late_at} of 10,000 submits")
    assert seen_late_at is not None and seen_late_at <= 500


# ------------------------------------------------------------------ quiet hours


async def test_quiet_hours_defer_and_resume_the_backlog(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path
) -> None:
    """22:00-06:00 Jakarta time is quiet: nothing is submitted inside it; the backlog
    goes out after it, every recipient once."""
    topic = await kafka_topic(partitions=1)
    total = 3000
    await numbers(kafka_bootstrap, topic, total)
    route = RouteSpec("telkomsel", ("812",), tps=500, window=20)
    clock = ManualClock(datetime(2024, 2, 5, 21, 0, tzinfo=JAKARTA).timestamp())
    name = "quiet"
    async with Simulator(simulator_profile([route], **NO_RECEIPTS)) as smsc:
        config = engine_config(kafka_bootstrap, smsc.port, [route], str(tmp_path / "l.sqlite"))
        camp = campaign(name, [topic], registered_delivery=False, quiet_hours=["22:00-06:00"])
        engine, ledger = make_engine(config, [camp], clock=clock)
        running = asyncio.create_task(engine.run(until_done=True))
        try:
            await wait_for(lambda: accepted(name) >= 300, 30, "the first submits")
            clock.set(datetime(2024, 2, 5, 22, 30, tzinfo=JAKARTA).timestamp())
            await asyncio.sleep(1.0)  # one plan tick, and what was already written settles
            at_quiet = smsc.stats()["totals"]["submits_accepted"]
            await asyncio.sleep(2.0)
            assert smsc.stats()["totals"]["submits_accepted"] == at_quiet
            assert at_quiet < total
            assert gauge("smsblast_campaign_state", campaign=name, state="quiet") == 1
            clock.set(datetime(2024, 2, 6, 6, 0, 1, tzinfo=JAKARTA).timestamp())
            await asyncio.wait_for(running, 30)
        finally:
            engine.stop()
            await asyncio.gather(running, return_exceptions=True)
            counts = await ledger.counts(name)
            await ledger.close()
        stats = smsc.stats()
    assert stats["totals"]["submits_accepted"] == total
    assert stats["totals"]["duplicates"] == 0
    assert counts["submitted"] == total


async def test_starts_in_quiet_hours_sends_nothing_until_they_end(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path
) -> None:
    topic = await kafka_topic(partitions=1)
    await numbers(kafka_bootstrap, topic, 500)
    route = RouteSpec("telkomsel", ("812",), tps=500, window=20)
    clock = ManualClock(datetime(2024, 2, 5, 23, 0, tzinfo=JAKARTA).timestamp())
    name = "night"
    async with Simulator(simulator_profile([route], **NO_RECEIPTS)) as smsc:
        config = engine_config(kafka_bootstrap, smsc.port, [route], str(tmp_path / "l.sqlite"))
        camp = campaign(name, [topic], registered_delivery=False, quiet_hours=["22:00-06:00"])
        engine, ledger = make_engine(config, [camp], clock=clock)
        running = asyncio.create_task(engine.run(until_done=True))
        try:
            read = {"campaign": name}
            await wait_for(
                lambda: (
                    (REGISTRY.get_sample_value("smsblast_records_read_total", read) or 0) >= 500
                ),
                30,
                "the segment to be read",
            )
            await asyncio.sleep(1.5)
            assert smsc.stats()["totals"]["submits_accepted"] == 0
            clock.set(datetime(2024, 2, 6, 6, 0, tzinfo=JAKARTA).timestamp())
            await asyncio.wait_for(running, 30)
        finally:
            engine.stop()
            await asyncio.gather(running, return_exceptions=True)
            await ledger.close()
        assert smsc.stats()["totals"]["submits_accepted"] == 500


# ------------------------------------------------------------------ waves


async def test_waves_each_send_to_everyone_once(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path
) -> None:
    """Every 7 days for two weeks: three waves, each its own run and dedup scope."""
    topic = await kafka_topic(partitions=1)
    n = 200
    await numbers(kafka_bootstrap, topic, n)
    route = RouteSpec("telkomsel", ("812",), tps=500, window=20)
    start = datetime(2024, 1, 1, 9, 0, tzinfo=JAKARTA)
    clock = ManualClock(start.timestamp())
    async with Simulator(simulator_profile([route], **NO_RECEIPTS)) as smsc:
        config = engine_config(kafka_bootstrap, smsc.port, [route], str(tmp_path / "l.sqlite"))
        camp = campaign(
            "weekly",
            [topic],
            registered_delivery=False,
            start_at=start.isoformat(),
            deadline=(start + timedelta(days=1)).isoformat(),
            repeat={"every": "7d", "until": (start + timedelta(days=14)).isoformat()},
        )
        engine, ledger = make_engine(config, [camp], clock=clock)
        running = asyncio.create_task(engine.run(until_done=True))
        names = ["weekly@2024-01-01", "weekly@2024-01-08", "weekly@2024-01-15"]
        try:
            for i, name in enumerate(names):
                await wait_for(lambda name=name: accepted(name) >= n, 30, f"wave {name}")
                await asyncio.sleep(0.5)
                assert smsc.stats()["totals"]["submits_accepted"] == n * (i + 1)
                clock.advance(7 * 86400)
            await asyncio.wait_for(running, 30)
        finally:
            engine.stop()
            await asyncio.gather(running, return_exceptions=True)
            reports = [await ledger.counts(name) for name in names]
            await ledger.close()
    assert [r["submitted"] for r in reports] == [n, n, n]
    assert [r.name for r in engine.runs] == names
