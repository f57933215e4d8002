"""The simulator driven by our own bind client (smpplib drives it in test_simulator_smpplib)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from smsblast.client import Bind, BindConfig, OutcomeKind, SubmitOutcome
from smsblast.ratelimit import AsyncRateLimiter
from smsblast.simulator import Profile, Simulator
from smsblast.smpp.constants import Npi, Status, Ton
from smsblast.smpp.fast import SubmitTemplate
from smsblast.smpp.pdu import DeliverSm, SubmitSm
from smsblast.smpp.receipt import IdFormat, normalize_message_id, receipt_from_deliver

TEMPLATE = SubmitTemplate(
    SubmitSm(
        source_addr="KOMINFO",
        source_addr_ton=Ton.ALPHANUMERIC,
        dest_addr_ton=Ton.INTERNATIONAL,
        dest_addr_npi=Npi.ISDN,
        registered_delivery=1,
    )
)


def profile(**extra: Any) -> Profile:
    data: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "seed": 7,
        "accounts": [{"system_id": "esme", "password": "pw"}],
    }
    data.update(extra)
    return Profile.model_validate(data)


def config(smsc: Simulator, **kw: Any) -> BindConfig:
    return BindConfig(
        host=smsc.host, port=smsc.port, system_id="esme", password="pw", bind_timeout=5, **kw
    )


async def blast(
    bind: Bind, count: int, rate: float | None = None, first: int = 6281200000000
) -> list[SubmitOutcome]:
    """Submit ``count`` messages (paced at ``rate`` if given); return every outcome."""
    outcomes: list[SubmitOutcome] = []
    done = asyncio.Event()
    limiter = AsyncRateLimiter(rate) if rate else None

    def on_outcome(_ctx: object, outcome: SubmitOutcome) -> None:
        outcomes.append(outcome)
        if len(outcomes) == count:
            done.set()

    sent = 0
    while sent < count:
        conn = await bind.wait_slot()
        n = min(conn.window.free, count - sent)
        if limiter is not None:
            n = await limiter.acquire(n)
        for _ in range(n):
            conn.send_submit(TEMPLATE, b"%d" % (first + sent), b"hello", on_outcome)
            sent += 1
    await asyncio.wait_for(done.wait(), 20)
    return outcomes


async def test_pushing_twice_the_tps_gets_half_throttled_and_no_second_above_the_limit() -> None:
    tps = 200
    async with Simulator(profile(limits={"tps_per_bind": tps})) as smsc:
        async with Bind(config(smsc, window=50)) as bind:
            await bind.wait_ready(5)
            outcomes = await blast(bind, count=2 * tps * 2, rate=2 * tps)  # 2 s at 2x
        stats = smsc.stats()
    kinds = Counter(o.kind for o in outcomes)
    throttled = sum(1 for o in outcomes if o.status == Status.RTHROTTLED)
    assert kinds[OutcomeKind.ACCEPTED] + throttled == len(outcomes)
    assert 0.35 <= throttled / len(outcomes) <= 0.65
    account = stats["accounts"]["esme"]
    assert account["max_accepted_1s_per_bind"] <= tps
    assert account["submits"]["accepted"] == kinds[OutcomeKind.ACCEPTED]


async def test_window_overflow_is_answered_rmsgqful() -> None:
    prof = profile(limits={"max_outstanding": 5}, latency=100)
    async with Simulator(prof) as smsc, Bind(config(smsc, window=20)) as bind:
        await bind.wait_ready(5)
        outcomes = await blast(bind, count=20)
    statuses = Counter(o.status for o in outcomes)
    assert statuses[Status.ROK] == 5
    assert statuses[Status.RMSGQFUL] == 15
    assert all(o.kind is OutcomeKind.RETRYABLE for o in outcomes if o.status == Status.RMSGQFUL)


@pytest.mark.parametrize(
    ("resp_format", "receipt_format"),
    [("hex", "hex"), ("dec", "dec"), ("hex", "dec")],
)
async def test_receipts_match_their_submits_in_both_id_formats(
    resp_format: str, receipt_format: str
) -> None:
    receipts: list[DeliverSm] = []
    prof = profile(ids={"resp_format": resp_format, "receipt_format": receipt_format})
    async with Simulator(prof) as smsc, Bind(config(smsc), on_deliver=receipts.append) as bind:
        await bind.wait_ready(5)
        outcomes = await blast(bind, count=50)
        for _ in range(200):
            if len(receipts) == 50:
                break
            await asyncio.sleep(0.02)
    resp_keys = {normalize_message_id(o.message_id, IdFormat(resp_format)) for o in outcomes}
    receipt_keys = {
        normalize_message_id(
            receipt_from_deliver(
                r.short_message, r.tlvs.receipted_message_id, r.tlvs.message_state
            ).message_id,
            IdFormat(receipt_format),
        )
        for r in receipts
    }
    assert len(resp_keys) == 50
    assert receipt_keys == resp_keys


async def test_receipt_before_resp_race_is_delivered_and_acked() -> None:
    """Receipt delay 0 counted from the submit, resp latency 50 ms: receipts win the race."""
    order: list[str] = []
    prof = profile(latency=50, receipts={"delay": 0, "receipt_before_resp": True})
    async with Simulator(prof) as smsc:

        def on_deliver(_: DeliverSm) -> None:
            order.append("receipt")

        async with Bind(config(smsc), on_deliver=on_deliver) as bind:
            await bind.wait_ready(5)
            conn = await bind.wait_slot()
            done = asyncio.Event()

            def on_outcome(_ctx: object, outcome: SubmitOutcome) -> None:
                order.append("resp")
                done.set()

            conn.send_submit(TEMPLATE, b"6281200000001", b"race", on_outcome)
            await asyncio.wait_for(done.wait(), 5)
            await asyncio.sleep(0.05)
        stats = smsc.stats()
    assert order == ["receipt", "resp"]
    assert stats["accounts"]["esme"]["receipts"]["acked"] == 1
