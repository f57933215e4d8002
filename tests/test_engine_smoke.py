"""The engine end to end on a small segment: Tansu + simulator + engine in-process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from smsblast.metrics import REGISTRY
from smsblast.segments import encode_record, produce
from smsblast.simulator import Simulator
from tests.conftest import TopicFactory
from tests.engine_stack import (
    RouteSpec,
    campaign,
    dead_letters,
    engine_config,
    fill,
    make_engine,
    simulator_profile,
    squat_group,
)

ROUTES = [
    RouteSpec("telkomsel", ("811", "812", "813"), tps=400),
    RouteSpec("indosat", ("814", "815", "816", "856"), tps=300),
    RouteSpec("xl", ("817", "818", "819"), tps=200),
]


async def test_small_blast_reaches_every_recipient_once(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path
) -> None:
    topic = await kafka_topic(partitions=3)
    numbers = [f"6281{2 + (i % 3) * 0}{i:08d}" for i in range(300)]
    numbers += [f"62856{i:08d}" for i in range(200)] + [f"62817{i:08d}" for i in range(100)]
    await fill(kafka_bootstrap, topic, numbers, extra=[b"not json", b'{"msisdn": "021555"}'])
    receipts_before = {route.name: receipts_of(route.name) for route in ROUTES}
    async with Simulator(simulator_profile(ROUTES)) as smsc:
        config = engine_config(kafka_bootstrap, smsc.port, ROUTES, str(tmp_path / "l.sqlite"))
        engine, ledger = make_engine(config, [campaign("smoke", [topic])])
        await asyncio.wait_for(engine.run(until_done=True), 60)
        counts = await ledger.counts("smoke")
        await ledger.close()
        stats = smsc.stats()
    assert stats["totals"]["duplicates"] == 0
    assert stats["totals"]["submits_accepted"] == 600
    assert counts.get("delivered", 0) + counts.get("failed", 0) + counts.get("expired", 0) == 600
    assert counts.get("rejected") == 2
    # the funnel, as Prometheus would scrape it
    assert sample("smsblast_records_read_total", campaign="smoke") == 602
    assert sample("smsblast_records_rejected_total", campaign="smoke", reason="not_json") == 1
    assert sample("smsblast_records_rejected_total", campaign="smoke", reason="invalid_msisdn") == 1
    assert sample("smsblast_submits_accepted_total", campaign="smoke", route="telkomsel") == 300
    assert (
        sample("smsblast_recipients_total", campaign="smoke", route="xl", state="submitted") == 100
    )
    assert sample("smsblast_consumer_lag", campaign="smoke") == 0
    assert sample("smsblast_campaign_records", campaign="smoke") == 602
    assert sample("smsblast_receipt_latency_seconds_count") >= 600
    # one final receipt per recipient, counted on its route (the registry is shared by the
    # tests of this process: compare with before)
    receipts = {r.name: receipts_of(r.name) - receipts_before[r.name] for r in ROUTES}
    assert receipts == {"telkomsel": 300, "indosat": 200, "xl": 100}


def receipts_of(route: str) -> float:
    """``smsblast_receipts_total`` of ``route``, every state summed."""
    return sum(
        s.value
        for metric in REGISTRY.collect()
        for s in metric.samples
        if s.name == "smsblast_receipts_total" and s.labels.get("route") == route
    )


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    assert value is not None, f"no sample {name}{labels}"
    return value


async def test_a_message_whose_fields_are_all_blank_is_dead_lettered_not_sent(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    """A template made of fields (``{pesan}``): a record whose field is empty or blank
    renders to nothing, and is rejected as ``empty_text`` instead of sending a blank SMS."""
    topic = await kafka_topic(partitions=1)
    route = ROUTES[0]
    good = [(f"62811{i:08d}", "Jaga Persatuan Indonesia") for i in range(20)]
    blank = [("6281100000100", ""), ("6281100000101", "   "), ("6281100000102", None)]
    records: list[tuple[bytes | None, bytes | None]] = [
        (n.encode(), encode_record({"msisdn": n} | ({} if text is None else {"pesan": text})))
        for n, text in good + blank
    ]
    await produce(kafka_bootstrap, topic, records)
    async with Simulator(simulator_profile([route])) as smsc:
        config = engine_config(kafka_bootstrap, smsc.port, [route], str(tmp_path / "l.sqlite"))
        blast = campaign("blank", [topic], template="{pesan}", on_missing_field="empty")
        engine, ledger = make_engine(config, [blast])
        await asyncio.wait_for(engine.run(until_done=True), 60)
        counts = await ledger.counts("blank")
        await ledger.close()
        accepted = smsc.stats()["totals"]["submits_accepted"]
    assert accepted == len(good)
    assert counts["rejected"] == len(blank) and counts["delivered"] == len(good)
    letters = await dead_letters(kafka_bootstrap, "blank.rejected", len(blank))
    assert [d["reason"] for d in letters] == ["empty_text"] * len(blank)


async def test_a_failed_campaign_tells_why_in_its_status(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    """What the admin API and `smsblast ctl` show of a campaign that could not start, and of
    one whose consumer group Kafka refused (another consumer holds it with another assignor)."""
    topic = await kafka_topic(partitions=1)
    await fill(kafka_bootstrap, topic, ["6281100000001"])
    squatted = f"squatted-{topic}"  # a group of its own
    squatter = await squat_group(kafka_bootstrap, topic, squatted)
    route = ROUTES[0]
    try:
        async with Simulator(simulator_profile([route])) as smsc:
            config = engine_config(kafka_bootstrap, smsc.port, [route], str(tmp_path / "l.sqlite"))
            campaigns = [
                campaign("typo", ["no-such-topic"]),
                campaign(squatted, [topic]),
                campaign("fine", [topic]),
            ]
            engine, ledger = make_engine(config, campaigns)
            await asyncio.wait_for(engine.run(until_done=True), 60)
            await ledger.close()
            status = engine.status()
    finally:
        await squatter.stop()
    assert status["typo"]["state"] == "failed"
    assert status["typo"]["failure"] == "SegmentNotFound: segment topic 'no-such-topic' not found"
    assert status[squatted]["state"] == "failed"
    assert status[squatted]["failure"].startswith("InconsistentGroupProtocolError")
    assert status["fine"]["state"] == "done" and status["fine"]["failure"] is None


async def test_a_campaign_that_failed_mid_run_stays_failed_while_it_drains(
    tmp_path: Path,
) -> None:
    """The planner re-applies the gates every tick while in-flight parts settle; it must not
    turn a failed campaign back to running (its alert and `ctl status` read that state)."""
    route = ROUTES[0]
    config = engine_config("127.0.0.1:9", 9, [route], str(tmp_path / "l.sqlite"))
    engine, ledger = make_engine(config, [campaign("refused", ["any"])])
    try:
        (run,) = engine.runs
        run._fail_reading("GroupAuthorizationFailedError: smsblast.refused")
        run._apply_gates()  # what the planner does every tick
        assert engine.status()["refused"]["state"] == "failed"
    finally:
        await ledger.close()
