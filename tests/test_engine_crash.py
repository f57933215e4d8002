"""kill -9 mid-blast, restart: nobody acknowledged is sent again, nobody is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from smsblast.broker import EmbeddedBroker, free_port
from smsblast.ledger import SqliteLedger
from smsblast.procs import child_pids
from smsblast.segments import produce, synthetic_recipients
from tests.conftest import TopicFactory, create_topic, small_disk
from tests.engine_process import (
    MIX,
    RECIPIENTS,
    ROUTES,
    accepted,
    accounted_for,
    at_risk,
    start_engine,
    write_files,
)
from tests.engine_stack import (
    SimulatorProcess,
    dead_letters,
    simulator_process,
    simulator_profile,
    squat_group,
)

DOWN_FOR = 3.0  # seconds Kafka refuses connections at the start
DEAD_LETTER_RECIPIENTS = 5000
FULL_DISK_RECIPIENTS = 8000  # a 1 MB disk fills a few thousand in
HUNG_FOR = 8.0  # seconds the broker hangs mid-blast (longer than the group session)


async def start_until_a_third_sent(cmd: list[str], smsc: SimulatorProcess) -> subprocess.Popen[str]:
    """Start the engine; return once the SMSC accepted 30% of the recipients (mid-blast)."""
    engine = start_engine(cmd)
    deadline = time.monotonic() + 60
    while accepted(smsc) < RECIPIENTS * 0.3 and time.monotonic() < deadline:
        assert engine.poll() is None, engine.communicate()[0]
        await asyncio.sleep(0.05)
    return engine


async def stopped_by_the_ledger(
    engine: subprocess.Popen[str], smsc: SimulatorProcess, reason: str, recipients: int
) -> None:
    """The engine exits 3 naming ``reason``, mid-blast, and sends nothing more after."""
    out, _ = await asyncio.to_thread(engine.communicate, timeout=120)
    assert engine.returncode == 3, out
    assert f"the ledger failed: {reason}" in out, out
    at_exit = accepted(smsc)
    assert at_exit < recipients  # it stopped mid-blast
    await asyncio.sleep(1.0)
    assert accepted(smsc) == at_exit  # and sends nothing more


@pytest.mark.parametrize("on_unknown", ["skip", "resubmit"])
async def test_kill_9_mid_blast_then_restart_loses_nobody(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path, on_unknown: str
) -> None:
    topic = await kafka_topic(partitions=3)
    await produce(kafka_bootstrap, topic, list(synthetic_recipients(RECIPIENTS, MIX, seed=9)))
    profile = simulator_profile(ROUTES, latency={"dist": "uniform", "min_ms": 5, "max_ms": 40})
    with simulator_process(profile, str(tmp_path)) as smsc:
        cmd = write_files(tmp_path, kafka_bootstrap, smsc.port, topic, on_unknown)
        first = await start_until_a_third_sent(cmd, smsc)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        at_kill = smsc.stats()["totals"]
        assert 0 < at_kill["submits_accepted"] < RECIPIENTS  # really killed mid-blast

        second = start_engine(cmd)
        out, _ = await asyncio.to_thread(second.communicate, timeout=120)
        final = smsc.stats()["totals"]

    counts = accounted_for(tmp_path, out)
    unknown = counts["unknown"]
    windows, armed = at_risk()
    if on_unknown == "skip":
        assert final["duplicates"] == 0  # never risk a duplicate
        # everyone not reported unknown reached the SMSC exactly once; of the unknown
        # ones, some had left before the kill and some had not
        assert RECIPIENTS - unknown <= final["submits_accepted"] <= RECIPIENTS
        assert second.returncode == 0, out
    else:
        assert unknown == 0  # resubmitted instead
        assert final["duplicates"] <= windows + armed  # at most those in flight at the kill
        assert final["submits_accepted"] - final["duplicates"] == RECIPIENTS
    assert f"campaign crash: {RECIPIENTS:,} recipient(s)" in out


async def test_sigterm_drains_commits_and_exits_0_then_restart_finishes_without_duplicates(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    topic = await kafka_topic(partitions=3)
    await produce(kafka_bootstrap, topic, list(synthetic_recipients(RECIPIENTS, MIX, seed=3)))
    profile = simulator_profile(ROUTES, latency={"dist": "uniform", "min_ms": 5, "max_ms": 40})
    with simulator_process(profile, str(tmp_path)) as smsc:
        cmd = write_files(tmp_path, kafka_bootstrap, smsc.port, topic, "skip")
        first = await start_until_a_third_sent(cmd, smsc)
        first.send_signal(signal.SIGTERM)
        out1, _ = await asyncio.to_thread(first.communicate, timeout=60)
        assert first.returncode == 0, out1
        assert "campaign crash:" in out1 and "stopped by signal" in out1  # the summary
        ledger = SqliteLedger(str(tmp_path / "ledger.sqlite"))
        try:
            after_stop = ledger.counts("crash")
        finally:
            ledger.close()
        assert after_stop["in_flight"] == 0, out1  # drained: nothing left uncertain
        assert after_stop["unknown"] == 0

        second = start_engine(cmd)
        out2, _ = await asyncio.to_thread(second.communicate, timeout=120)
        final = smsc.stats()["totals"]
    assert second.returncode == 0, out2
    assert final["duplicates"] == 0
    assert final["submits_accepted"] == RECIPIENTS


async def test_the_ledger_process_dying_stops_the_engine_and_a_restart_finishes(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    """kill -9 of the ledger's process (say, the OOM killer): the engine stops sending and
    exits 3 with the reason; a restart finishes the campaign with no duplicate."""
    topic = await kafka_topic(partitions=3)
    await produce(kafka_bootstrap, topic, list(synthetic_recipients(RECIPIENTS, MIX, seed=11)))
    profile = simulator_profile(ROUTES, latency={"dist": "uniform", "min_ms": 5, "max_ms": 40})
    with simulator_process(profile, str(tmp_path)) as smsc:
        cmd = write_files(tmp_path, kafka_bootstrap, smsc.port, topic, "skip")
        first = await start_until_a_third_sent(cmd, smsc)
        (ledger_pid,) = child_pids(first.pid)
        os.kill(ledger_pid, signal.SIGKILL)
        await stopped_by_the_ledger(
            first, smsc, "the ledger process is gone (exit code -9)", RECIPIENTS
        )

        second = start_engine(cmd)
        out, _ = await asyncio.to_thread(second.communicate, timeout=120)
        final = smsc.stats()["totals"]

    assert second.returncode == 0, out
    assert final["duplicates"] == 0
    accounted_for(tmp_path, out)


async def test_a_full_disk_stops_the_engine_and_a_restart_finishes(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    """The ledger's disk fills mid-blast: the engine stops sending and exits 3 saying so
    (it died with SQLite's traceback, exit 1). With space again, a restart finishes: nobody
    twice, nobody lost."""
    topic = await kafka_topic(partitions=3)
    records = list(synthetic_recipients(FULL_DISK_RECIPIENTS, MIX, seed=31))
    await produce(kafka_bootstrap, topic, records)
    with (
        small_disk(tmp_path / "disk", "1m") as disk,
        simulator_process(simulator_profile(ROUTES), str(tmp_path)) as smsc,
    ):
        ledger = disk / "ledger.sqlite"
        cmd = write_files(tmp_path, kafka_bootstrap, smsc.port, topic, "skip")
        config = yaml.safe_load((tmp_path / "smsblast.yaml").read_text())
        config["ledger"]["path"] = str(ledger)
        (tmp_path / "smsblast.yaml").write_text(yaml.safe_dump(config))
        first = start_engine(cmd)
        await stopped_by_the_ledger(
            first, smsc, "OperationalError: database or disk is full", FULL_DISK_RECIPIENTS
        )

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        second = start_engine(cmd)
        out, _ = await asyncio.to_thread(second.communicate, timeout=120)
        final = smsc.stats()["totals"]
        store = SqliteLedger(str(ledger))
        try:
            counts = store.counts("crash")
        finally:
            store.close()
    assert second.returncode == 0, out
    assert final["duplicates"] == 0
    assert sum(counts.values()) == FULL_DISK_RECIPIENTS
    assert counts["in_flight"] == counts["pending"] == 0, counts
    assert counts["unknown"] <= sum(at_risk())


async def forward(listen_port: int, target: int, connections: int = 0) -> asyncio.Server:
    """A TCP forwarder from ``listen_port`` to ``target`` on loopback: until it starts, the
    port refuses connections, as a Kafka that is down does. With ``connections``, it stops
    listening (refuses again) once it accepted that many."""
    accepted = 0

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        if accepted == connections:
            server.close()
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    return server


async def segment_topic(
    bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]
) -> None:
    """``topic`` with 3 partitions, holding ``records``."""
    await create_topic(bootstrap, topic)
    await produce(bootstrap, topic, records)


@pytest.mark.skipif(
    bool(os.environ.get("KAFKA_BOOTSTRAP")), reason="hangs its own broker process (SIGSTOP)"
)
async def test_kafka_down_at_start_then_hung_mid_blast_delays_the_blast_and_loses_nobody(
    tmp_path: Path,
) -> None:
    """Kafka refuses connections when the engine starts (down for maintenance): the engine
    waits for it, saying so, instead of dying. Then the broker hangs mid-blast (SIGSTOP: it
    accepts and answers nothing, like a broker in a long pause or behind a dead link). The
    engine sends everyone exactly once and exits 0."""
    with EmbeddedBroker() as broker:
        assert broker.process is not None
        records = list(synthetic_recipients(RECIPIENTS, MIX, seed=13))
        await segment_topic(broker.bootstrap, "kafka-outage", records)
        entry = free_port()  # the engine's bootstrap address: refused until forwarded
        profile = simulator_profile(ROUTES, latency={"dist": "uniform", "min_ms": 5, "max_ms": 40})
        with simulator_process(profile, str(tmp_path)) as smsc:
            cmd = write_files(tmp_path, f"127.0.0.1:{entry}", smsc.port, "kafka-outage", "skip")
            engine = start_engine(cmd)
            await asyncio.sleep(DOWN_FOR)
            assert engine.poll() is None, engine.communicate()[0]  # waiting, not dead
            assert accepted(smsc) == 0
            forwarder = await forward(entry, broker.port)
            try:
                deadline = time.monotonic() + 60
                while accepted(smsc) < RECIPIENTS * 0.3 and time.monotonic() < deadline:
                    assert engine.poll() is None, engine.communicate()[0]
                    await asyncio.sleep(0.05)
                broker.process.send_signal(signal.SIGSTOP)  # mid-blast
                try:
                    await asyncio.sleep(HUNG_FOR)
                    assert engine.poll() is None, engine.communicate()[0]
                finally:
                    broker.process.send_signal(signal.SIGCONT)
                out, _ = await asyncio.to_thread(engine.communicate, timeout=120)
            finally:
                forwarder.close()
            final = smsc.stats()["totals"]
    assert engine.returncode == 0, out
    assert "crash: Kafka unreachable (KafkaConnectionError" in out
    assert final["duplicates"] == 0
    assert final["submits_accepted"] == RECIPIENTS
    counts = accounted_for(tmp_path, out)
    assert counts["unknown"] == 0, out


@pytest.mark.skipif(
    bool(os.environ.get("KAFKA_BOOTSTRAP")), reason="reaches its own broker through a forwarder"
)
async def test_dead_letters_wait_for_kafka_and_nothing_is_lost(tmp_path: Path) -> None:
    """Kafka refuses the dead-letter producer's connection (the engine's consumer got in
    before): the engine waits for Kafka instead of dying, then copies every bad record to
    ``<campaign>.rejected`` and sends every good one exactly once."""
    with EmbeddedBroker() as broker:
        records = list(synthetic_recipients(DEAD_LETTER_RECIPIENTS, MIX, seed=19, invalid=0.02))
        await segment_topic(broker.bootstrap, "dead-letters", records)
        entry = free_port()
        # The campaign's consumer and its snapshot bootstrap through the forwarder; the
        # dead-letter producer, started at the first bad record, finds it closed.
        forwarder = await forward(entry, broker.port, connections=2)
        with simulator_process(simulator_profile(ROUTES), str(tmp_path)) as smsc:
            cmd = write_files(tmp_path, f"127.0.0.1:{entry}", smsc.port, "dead-letters", "skip")
            engine = start_engine(cmd)
            await asyncio.sleep(DOWN_FOR + 4.0)  # the group join, then a first refusal
            assert engine.poll() is None, engine.communicate()[0]
            await forwarder.wait_closed()
            forwarder = await forward(entry, broker.port)
            try:
                out, _ = await asyncio.to_thread(engine.communicate, timeout=120)
            finally:
                forwarder.close()
            final = smsc.stats()["totals"]
        counts = accounted_for(tmp_path, out, DEAD_LETTER_RECIPIENTS)
        copies = len(await dead_letters(broker.bootstrap, "crash.rejected", counts["rejected"]))
    assert engine.returncode == 0, out
    assert "crash dead letters: Kafka unreachable (KafkaConnectionError" in out
    assert counts["rejected"] > 0
    assert final["submits_accepted"] == DEAD_LETTER_RECIPIENTS - counts["rejected"]
    assert final["duplicates"] == 0
    assert copies >= counts["rejected"]  # at least once; a retried batch may repeat some


async def test_a_missing_segment_topic_fails_its_campaign_and_the_others_go_on(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    """A typo in a segment name: that campaign ends at once with the reason, nothing of it
    is recorded; the other campaign sends everyone; the exit code says it was incomplete."""
    topic = await kafka_topic(partitions=3)
    await produce(kafka_bootstrap, topic, list(synthetic_recipients(3000, MIX, seed=17)))
    with simulator_process(simulator_profile(ROUTES), str(tmp_path)) as smsc:
        cmd = write_files(
            tmp_path, kafka_bootstrap, smsc.port, topic, "skip", more_segments={"typo": "nope"}
        )
        engine = start_engine(cmd)
        out, _ = await asyncio.to_thread(engine.communicate, timeout=120)
        final = smsc.stats()["totals"]
    assert engine.returncode == 1, out
    assert "typo: cannot start: SegmentNotFound: segment topic 'nope' not found" in out
    assert "campaign typo: not started: SegmentNotFound: segment topic 'nope' not found" in out
    assert "campaign crash: 3,000 recipient(s): delivered 3,000" in out
    assert final["submits_accepted"] == 3000 and final["duplicates"] == 0
    ledger = SqliteLedger(str(tmp_path / "ledger.sqlite"))
    try:
        assert [c.name for c in ledger.campaigns()] == ["crash"]
    finally:
        ledger.close()


async def test_a_group_kafka_refuses_fails_its_campaign_and_the_others_go_on(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    """Another program already consumes in the campaign's group with another assignor:
    Kafka refuses the engine's join (InconsistentGroupProtocolError, which aiokafka does not
    retry). That campaign stops with the reason and nothing of it is sent; the other one
    sends everyone; the exit code says it was incomplete."""
    blocked = await kafka_topic(partitions=3)
    topic = await kafka_topic(partitions=3)
    name = f"squatted-{blocked}"  # a group of its own: the broker outlives every test's
    await produce(kafka_bootstrap, blocked, list(synthetic_recipients(2000, MIX, seed=41)))
    await produce(kafka_bootstrap, topic, list(synthetic_recipients(3000, MIX, seed=43)))
    squatter = await squat_group(kafka_bootstrap, blocked, name)
    try:
        with simulator_process(simulator_profile(ROUTES), str(tmp_path)) as smsc:
            cmd = write_files(
                tmp_path, kafka_bootstrap, smsc.port, topic, "skip", more_segments={name: blocked}
            )
            engine = start_engine(cmd)
            out, _ = await asyncio.to_thread(engine.communicate, timeout=120)
            final = smsc.stats()["totals"]
    finally:
        await squatter.stop()
    assert engine.returncode == 1, out
    assert f"campaign {name}: failed: InconsistentGroupProtocolError" in out, out
    assert "campaign crash: 3,000 recipient(s): delivered 3,000" in out, out
    assert final["submits_accepted"] == 3000 and final["duplicates"] == 0


@pytest.mark.parametrize("waiting_for", ["kafka", "start_at"])
async def test_sigterm_before_the_campaign_opens_exits_0_having_sent_nothing(
    kafka_bootstrap: str, tmp_path: Path, waiting_for: str
) -> None:
    """The run waits for Kafka (down: connections refused) or for its start_at; a SIGTERM
    ends it before it opened (the summary used to crash on a campaign not in the ledger)."""
    bootstrap = f"127.0.0.1:{free_port()}" if waiting_for == "kafka" else kafka_bootstrap
    with simulator_process(simulator_profile(ROUTES), str(tmp_path)) as smsc:
        cmd = write_files(tmp_path, bootstrap, smsc.port, "any", "skip")
        if waiting_for == "start_at":
            campaigns = yaml.safe_load((tmp_path / "campaigns.yaml").read_text())
            campaigns["campaigns"][0]["start_at"] = "2099-01-01T00:00:00+00:00"
            (tmp_path / "campaigns.yaml").write_text(yaml.safe_dump(campaigns))
        engine = start_engine(cmd)
        await asyncio.sleep(2.0)
        assert engine.poll() is None, engine.communicate()[0]
        engine.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(engine.communicate, timeout=30)
        assert accepted(smsc) == 0
    assert engine.returncode == 0, out
    assert "campaign crash: not started: stopped before it opened" in out


async def test_an_opt_out_topic_that_cannot_be_read_stops_the_engine_before_sending(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The law requires honouring refusals: without its opt-out list the engine sends
    nothing, and says why (exit 2, as for a configuration error)."""
    with simulator_process(simulator_profile(ROUTES), str(tmp_path)) as smsc:
        cmd = write_files(
            tmp_path, kafka_bootstrap, smsc.port, "any", "skip", optout={"topic": "no-optouts"}
        )
        engine = start_engine(cmd)
        out, _ = await asyncio.to_thread(engine.communicate, timeout=120)
        assert accepted(smsc) == 0
    assert engine.returncode == 2, out
    assert "cannot read the opt-out topic 'no-optouts': TopicNotFound" in out
    assert "Nothing was sent." in out
