"""Refusals that come while a blast runs, or between two runs, are honoured: the engine
follows the opt-out topic, and re-reads the list before it sends a recipient it claimed
earlier (parked, or left PENDING by a stop)."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from smsblast.engine.engine import Engine
from smsblast.ledger import AsyncLedger, Claim, SqliteLedger, State
from smsblast.msisdn import normalize_msisdn
from smsblast.optout import OptOutList
from smsblast.segments import produce, synthetic_recipients
from smsblast.simulator import Simulator
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
from tests.engine_stack import (
    RouteSpec,
    SimulatorProcess,
    campaign,
    engine_config,
    fill,
    make_engine,
    simulator_process,
    simulator_profile,
)

REFUSING = 30  # numbers that opt out while the blast runs


async def until_accepted(
    engine: subprocess.Popen[str], smsc: SimulatorProcess, share: float
) -> None:
    """Wait until the SMSC accepted ``share`` of the recipients."""
    deadline = time.monotonic() + 60
    while accepted(smsc) < RECIPIENTS * share:
        assert time.monotonic() < deadline, "the blast did not progress"
        assert engine.poll() is None, engine.communicate()[0]
        await asyncio.sleep(0.05)


def numbers_of(records: list[tuple[bytes | None, bytes]]) -> list[str]:
    """The records' numbers, normalised as the ledger keeps them."""
    return [normalize_msisdn(json.loads(value)["msisdn"]) for _, value in records]


def ledger_states(tmp: Path, msisdns: list[str], recipients: int = RECIPIENTS) -> set[str]:
    """The states the ledger file holds for these numbers (read with sqlite3, read-only)."""
    db = sqlite3.connect(f"file:{tmp / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        rows = dict(
            db.execute("SELECT msisdn, name FROM recipients JOIN state_names ON code = state")
        )
    finally:
        db.close()
    assert len(rows) == recipients
    return {rows[n] for n in msisdns}


async def test_a_refusal_that_comes_during_the_blast_is_honoured(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    segment = await kafka_topic(partitions=3)
    optouts = await kafka_topic(prefix="optout", partitions=2, compacted=True)
    records = list(synthetic_recipients(RECIPIENTS, MIX, seed=23))
    await produce(kafka_bootstrap, segment, records)
    late = numbers_of(records[-REFUSING:])  # read last on every partition
    with simulator_process(simulator_profile(ROUTES), str(tmp_path)) as smsc:
        cmd = write_files(
            tmp_path, kafka_bootstrap, smsc.port, segment, "skip", optout={"topic": optouts}
        )
        engine = start_engine([*cmd, "--max-in-memory", "500"])  # reads as it sends
        await until_accepted(engine, smsc, 0.05)
        await produce(kafka_bootstrap, optouts, [(n.encode(), b"STOP") for n in late])
        out, _ = await asyncio.to_thread(engine.communicate, timeout=120)
        final = smsc.stats()["totals"]
    assert engine.returncode == 0, out
    assert final["submits_accepted"] == RECIPIENTS - REFUSING and final["duplicates"] == 0
    assert ledger_states(tmp_path, late) == {"suppressed"}
    assert accounted_for(tmp_path, out)["suppressed"] == REFUSING


async def test_a_refusal_between_two_runs_is_honoured_for_recipients_left_pending(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    """SIGTERM leaves claimed recipients PENDING; some of them opt out before the restart,
    which sends the rest from the ledger (not from Kafka): those are suppressed."""
    segment = await kafka_topic(partitions=3)
    optouts = await kafka_topic(prefix="optout", partitions=2, compacted=True)
    await produce(kafka_bootstrap, segment, list(synthetic_recipients(RECIPIENTS, MIX, seed=29)))
    with simulator_process(simulator_profile(ROUTES), str(tmp_path)) as smsc:
        cmd = write_files(
            tmp_path, kafka_bootstrap, smsc.port, segment, "skip", optout={"topic": optouts}
        )
        first = start_engine(cmd)
        await until_accepted(first, smsc, 0.3)
        first.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(first.communicate, timeout=60)
        assert first.returncode == 0, out
        ledger = SqliteLedger(str(tmp_path / "ledger.sqlite"))
        try:
            pending = [
                row.msisdn
                for route in ("telkomsel", "indosat")
                for row in ledger.pending("crash", route, REFUSING // 2)
            ]
        finally:
            ledger.close()
        assert len(pending) == REFUSING  # the stop left claimed recipients PENDING
        await produce(kafka_bootstrap, optouts, [(n.encode(), b"STOP") for n in pending])

        second = start_engine(cmd)
        out, _ = await asyncio.to_thread(second.communicate, timeout=120)
        final = smsc.stats()["totals"]
    assert second.returncode == 0, out
    assert final["submits_accepted"] == RECIPIENTS - REFUSING and final["duplicates"] == 0
    assert ledger_states(tmp_path, pending) == {"suppressed"}
    assert accounted_for(tmp_path, out)["suppressed"] == REFUSING


QUEUED = 1000  # recipients of the in-memory test: 2 s at its route's 500/s


@pytest.mark.parametrize("parts", [1, 2])
async def test_a_refusal_reaches_recipients_already_queued_in_memory(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path, parts: int
) -> None:
    """Recipients claimed and waiting in their route's queue (not parked) when they opt out
    are not sent: the armer reads the list again before it marks anyone in flight."""
    route = RouteSpec("telkomsel", ("811", "812", "813"), tps=500, window=10)
    topic = await kafka_topic(partitions=1)
    numbers = [f"62811{i:08d}" for i in range(QUEUED)]
    await fill(kafka_bootstrap, topic, numbers)
    late = numbers[-REFUSING:]  # at the back of the queue
    text = "Jaga Persatuan Indonesia, datang ke TPS dan gunakan hak pilih. " * (2 * parts - 1)
    optout = OptOutList()
    async with Simulator(simulator_profile([route])) as smsc:
        config = engine_config(kafka_bootstrap, smsc.port, [route], str(tmp_path / "ledger.sqlite"))
        name = f"queued{parts}"  # a group of its own
        engine, ledger = make_engine(config, [campaign(name, [topic], template=text)], optout)
        run = asyncio.create_task(engine.run(until_done=True))
        lanes = engine.pools["telkomsel"].lanes.values()
        deadline = time.monotonic() + 30
        while not set(late) <= {item.job.msisdn for lane in lanes for item in lane.queue}:
            assert time.monotonic() < deadline and not run.done(), "never queued"
            await asyncio.sleep(0.005)
        sent_before = smsc.stats()["totals"]["submits_accepted"]
        for n in late:
            optout.add(n)
        await asyncio.wait_for(run, 60)
        counts = await ledger.counts(name)
        await ledger.close()
        totals = smsc.stats()["totals"]
    assert sent_before < (QUEUED - REFUSING) * parts  # they were refused mid-blast
    assert totals["submits_accepted"] == (QUEUED - REFUSING) * parts
    assert totals["duplicates"] == 0
    assert counts["suppressed"] == REFUSING and counts["delivered"] == QUEUED - REFUSING
    assert ledger_states(tmp_path, late, QUEUED) == {"suppressed"}


async def test_a_refusal_during_the_claim_round_trip_is_honoured(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    """A number that opts out after its batch was checked against the list and while the
    batch's claim is in the ledger is not sent: its job carries the list's version of the
    check, so the armer reads the list again. (It carried the version of the moment it was
    queued, after the claim, and such a number was sent.)"""
    route = RouteSpec("telkomsel", ("811", "812", "813"), tps=2000, window=10)
    topic = await kafka_topic(partitions=1)
    numbers = [f"62811{i:08d}" for i in range(200)]
    await fill(kafka_bootstrap, topic, numbers)
    late = set(numbers[::7])
    optout = OptOutList()
    loop = asyncio.get_running_loop()
    path = str(tmp_path / "ledger.sqlite")

    class RefusalsDuringTheClaim(SqliteLedger):
        """Adds ``late`` to the engine's opt-out list (on the engine's loop) while it
        claims them, after the engine checked them against the list."""

        def claim(
            self, campaign: str, claims: Sequence[Claim], state: State, in_flight: int = 0
        ) -> list[Any]:
            result = super().claim(campaign, claims, state, in_flight)
            refusing = [c.msisdn for c in claims if c.msisdn in late]
            added = threading.Event()

            def refuse() -> None:
                for n in refusing:
                    optout.add(n)
                added.set()

            loop.call_soon_threadsafe(refuse)
            assert added.wait(10)
            return result

    async with Simulator(simulator_profile([route])) as smsc:
        config = engine_config(kafka_bootstrap, smsc.port, [route], path)
        ledger = AsyncLedger(factory=lambda: RefusalsDuringTheClaim(path))
        engine = Engine(config, [campaign("roundtrip", [topic])], ledger, optout, drain_timeout=3.0)
        await asyncio.wait_for(engine.run(until_done=True), 60)
        counts = await ledger.counts("roundtrip")
        await ledger.close()
        totals = smsc.stats()["totals"]
    assert totals["submits_accepted"] == len(numbers) - len(late)
    assert counts["suppressed"] == len(late) and counts["delivered"] == len(numbers) - len(late)
    assert ledger_states(tmp_path, sorted(late), len(numbers)) == {"suppressed"}
