"""Issue acceptance, end to end over a real broker (Tansu) and the simulator:
three routes with different TPS, receipts on, bad records, opt-outs, a dead route."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from smsblast.msisdn import normalize_msisdn
from smsblast.optout import OptOutList
from smsblast.segments import produce, synthetic_recipients
from tests.conftest import TopicFactory
from tests.engine_stack import (
    PREFIXES,
    RouteSpec,
    campaign,
    dead_letters,
    engine_config,
    make_engine,
    simulator_process,
    simulator_profile,
)

RECIPIENTS = 50_000
ROUTES = [
    RouteSpec(
        "telkomsel",
        PREFIXES["telkomsel"],
        tps=3000,
        binds=2,
        window=100,
    ),
    RouteSpec(
        "indosat",
        PREFIXES["indosat"],
        tps=2000,
        binds=2,
        window=100,
    ),
    RouteSpec(
        "xl",
        PREFIXES["xl"],
        tps=1500,
        binds=1,
        window=100,
    ),
]
DEAD = RouteSpec("smartfren", PREFIXES["smartfren"], tps=100, port=1)
MIX = {"telkomsel": 0.5, "indosat": 0.3, "xl": 0.19, "smartfren": 0.01}
BAD = [b"not json", b"{}", b'{"msisdn": "021-555-1234"}', b'{"msisdn": "0812", "x": 1}', b""]


async def test_fifty_thousand_recipients_three_routes_exactly_once(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    topic = await kafka_topic(partitions=4)
    records = list(synthetic_recipients(RECIPIENTS, MIX, seed=5))
    numbers = [normalize_msisdn(json.loads(v)["msisdn"]) for _, v in records]
    opted_out = {n for n in numbers[::1000]}  # 50 recipients refused the campaign
    await produce(kafka_bootstrap, topic, records + [(None, b) for b in BAD])
    optout = OptOutList(opted_out)
    smartfren = sum(1 for n in numbers if n[2:5] in DEAD.prefixes)

    with simulator_process(simulator_profile(ROUTES), str(tmp_path)) as smsc:
        config = engine_config(
            kafka_bootstrap, smsc.port, [*ROUTES, DEAD], str(tmp_path / "ledger.sqlite")
        )
        engine, ledger = make_engine(config, [campaign("e2e", [topic])], optout)
        await asyncio.wait_for(engine.run(until_done=True), 240)
        counts = await ledger.counts("e2e")
        report = await ledger.report("e2e")
        await ledger.close()
        stats = smsc.stats()

    sent = RECIPIENTS - len(opted_out & set(numbers)) - smartfren
    # every reachable recipient exactly once, nobody on the opt-out list
    assert stats["totals"]["duplicates"] == 0
    assert stats["totals"]["submits_accepted"] == sent
    for spec in ROUTES:
        account = stats["accounts"][spec.name]
        # never faster than the SMSC allows: no 1-second window above a bind's TPS
        assert account["max_accepted_1s_per_bind"] <= spec.tps
        assert account["throttled"]["bind"] == 0
    # every receipt correlated
    assert counts["submitted"] == 0
    assert counts["delivered"] + counts["failed"] + counts["expired"] == sent
    assert counts["suppressed"] == len(opted_out)
    # the dead route's recipients are parked, not lost, and did not stop the others
    assert counts["pending"] == smartfren
    assert counts["in_flight"] == 0
    assert counts["rejected"] == len(BAD)
    assert sum(counts.values()) == RECIPIENTS + len(BAD)
    assert report["by_route"]["smartfren"].get("pending") == smartfren
    letters = await dead_letters(kafka_bootstrap, "e2e.rejected", len(BAD))
    assert sorted(str(d["reason"]) for d in letters) == sorted(
        ["not_json", "no_msisdn", "invalid_msisdn", "invalid_msisdn", "empty"]
    )
