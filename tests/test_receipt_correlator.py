"""The engine's receipt correlator against a real ledger: a receipt joins its outcome when it
comes before the outcome is written (before or after its submit_sm_resp), and goes to the
ledger on its own afterwards; either way the recipient ends DELIVERED."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from smsblast.engine.receipts import EarlyReceipts, ReceiptCorrelator
from smsblast.ledger import AsyncLedger, Claim, Outcome, State
from smsblast.smpp.constants import ESM_CLASS_DELIVERY_RECEIPT
from smsblast.smpp.fast import DeliverFields
from smsblast.smpp.receipt import IdFormat, ReceiptState

CAMPAIGN = "pemilu"
MSISDN = "6281100000001"
RAW_ID = "1A2B"
KEY = "tsel-1:6699"  # the engine's key for hex id 1A2B from this SMSC (its decimal value)


def delivered_receipt() -> DeliverFields:
    return DeliverFields(ESM_CLASS_DELIVERY_RECEIPT, b"", RAW_ID, ReceiptState.DELIVERED.value)


def outcome(early: EarlyReceipts) -> Outcome:
    return Outcome(MSISDN, State.SUBMITTED, 0, "", ((1, RAW_ID, KEY),), early)


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[AsyncLedger]:
    led = AsyncLedger(tmp_path / "ledger.db")
    await led.open_campaign(CAMPAIGN, {})
    await led.claim(CAMPAIGN, [Claim(MSISDN, "tsel", 1, "seg", 0, 0)], State.IN_FLIGHT)
    yield led
    await led.close()


async def write_outcome(
    correlator: ReceiptCorrelator, ledger: AsyncLedger, early: EarlyReceipts
) -> None:
    """What the campaign's flush does: tell the correlator, then write the outcome."""
    correlator.recorded([outcome(early)])
    await ledger.record_outcomes(CAMPAIGN, [outcome(early)])


async def state(ledger: AsyncLedger) -> dict[str, int]:
    return {k: v for k, v in (await ledger.counts(CAMPAIGN)).items() if v}


async def test_a_receipt_after_the_resp_joins_the_outcome(ledger: AsyncLedger) -> None:
    correlator = ReceiptCorrelator(ledger)
    on_deliver = correlator.handler(IdFormat.HEX, "tsel-1:", "tsel")
    early: EarlyReceipts = []
    correlator.note_accepted(KEY, early)
    on_deliver(delivered_receipt())
    assert [(key, st) for key, st, _ in early] == [(KEY, "delivered")]
    await correlator.flush()  # nothing of its own to write
    assert await state(ledger) == {"in_flight": 1}
    await write_outcome(correlator, ledger, early)
    assert await state(ledger) == {"delivered": 1}
    assert correlator.stats["matched"] == 1


async def test_a_receipt_before_the_resp_waits_in_the_buffer_for_it(ledger: AsyncLedger) -> None:
    correlator = ReceiptCorrelator(ledger)
    on_deliver = correlator.handler(IdFormat.HEX, "tsel-1:", "tsel")
    on_deliver(delivered_receipt())  # on another bind, ahead of the submit_sm_resp
    early: EarlyReceipts = []
    correlator.note_accepted(KEY, early)
    assert [(key, st) for key, st, _ in early] == [(KEY, "delivered")]
    assert KEY not in correlator.accepted_at  # no receipt to wait for: nothing kept
    await correlator.flush()
    await write_outcome(correlator, ledger, early)
    assert await state(ledger) == {"delivered": 1}


async def test_a_receipt_flushed_before_the_resp_is_retried_by_the_ledger(
    ledger: AsyncLedger,
) -> None:
    correlator = ReceiptCorrelator(ledger)
    on_deliver = correlator.handler(IdFormat.HEX, "tsel-1:", "tsel")
    on_deliver(delivered_receipt())
    await correlator.flush()  # tried: no such key yet, kept for a retry
    early: EarlyReceipts = []
    correlator.note_accepted(KEY, early)
    assert early == []  # already on its way to the ledger: it does not join twice
    await write_outcome(correlator, ledger, early)
    assert await state(ledger) == {"submitted": 1}
    await correlator.flush()
    assert await state(ledger) == {"delivered": 1}


async def test_a_receipt_after_the_outcome_was_sent_goes_to_the_ledger_alone(
    ledger: AsyncLedger,
) -> None:
    correlator = ReceiptCorrelator(ledger)
    on_deliver = correlator.handler(IdFormat.HEX, "tsel-1:", "tsel")
    early: EarlyReceipts = []
    correlator.note_accepted(KEY, early)
    await write_outcome(correlator, ledger, early)
    on_deliver(delivered_receipt())
    assert early == []
    assert await state(ledger) == {"submitted": 1}
    await correlator.flush()
    assert await state(ledger) == {"delivered": 1}
