"""Delivery receipts -> the ledger, in batches, tolerant of every race.

A receipt is keyed by its normalised message id (``receipted_message_id`` TLV
first, else the id in the text; hex or decimal as the SMSC that sent it is
configured). A receipt for a part accepted here whose outcome is not in the
ledger yet (``note_accepted`` until ``recorded``) joins that outcome, and the
ledger applies both in one write; so does one that came just before its
submit_sm_resp (it waits in the buffer, and ``note_accepted`` takes it out).
Why: an SMSC that answers within milliseconds otherwise has most receipts miss
and go round again (measured at 600k with the simulator's receipt delay 0: 904k
receipt rows sent to the ledger for 600k receipts; 18% of receipts came before
their submit_sm_resp, on another bind of the same SMSC).

Any other receipt is buffered and matched against the ledger every
``interval``. One that finds no key (its submit_sm_resp was not recorded yet)
is retried on every flush for ``grace`` seconds, then parked in the ledger,
where later flushes keep matching parked receipts (bounded by the ledger's max
age).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable

from smsblast import metrics as m
from smsblast.ledger import AsyncLedger, KeyedReceipt, Outcome, ReceiptRow
from smsblast.smpp.constants import ESM_CLASS_DELIVERY_RECEIPT
from smsblast.smpp.fast import DeliverFields
from smsblast.smpp.receipt import (
    IdFormat,
    ReceiptParseError,
    ReceiptState,
    id_normalizer,
    receipt_from_deliver,
)

log = logging.getLogger("smsblast.engine")

ACCEPTED_AT_MAX = 200_000

#: Receipts that came before their outcome was recorded: (key, ledger state, unix time).
EarlyReceipts = list[KeyedReceipt]

#: Receipt state -> the ledger's word for it. Intermediate states are not recorded.
LEDGER_STATE: dict[ReceiptState, str] = {
    ReceiptState.DELIVERED: "delivered",
    ReceiptState.EXPIRED: "expired",
    ReceiptState.DELETED: "failed",
    ReceiptState.UNDELIVERABLE: "failed",
    ReceiptState.REJECTED: "failed",
    ReceiptState.UNKNOWN: "failed",
}

#: The same by ``message_state`` value (1-8): None for the intermediate states.
_LEDGER_STATE_BY_CODE: dict[int | None, str | None] = {
    state.value: LEDGER_STATE.get(state) for state in ReceiptState
}


class ReceiptCorrelator:
    def __init__(self, ledger: AsyncLedger, *, interval: float = 0.05, grace: float = 30.0) -> None:
        self.ledger = ledger
        #: key -> monotonic time its submit_sm was accepted, for the receipt latency
        #: histogram; bounded (oldest dropped first), never needed for correctness.
        self.accepted_at: dict[str, float] = {}
        #: key -> the early receipts of its outcome, from accepted until recorded (bounded
        #: by the parts in memory: every accepted part's outcome is recorded).
        self._unrecorded: dict[str, EarlyReceipts] = {}
        self.interval = interval
        self.grace = grace
        self._buffer: list[ReceiptRow | None] = []  # None: taken by note_accepted
        self._orphans: dict[str, int] = {}  # key -> its receipt's index in _buffer
        self._retry: list[ReceiptRow] = []
        # Receipts per (route, ledger state) and receipt latencies since the last flush: they
        # reach Prometheus once per flush, not once per receipt.
        self._by_state: Counter[tuple[str, str]] = Counter()
        self._latencies: list[float] = []
        self.stats = {
            "received": 0,
            "matched": 0,
            "unparseable": 0,
            "intermediate": 0,
            "mobile_originated": 0,
            "parked": 0,
        }
        self._last_parked_match = 0.0

    def handler(
        self, receipt_format: IdFormat, key_prefix: str, route: str
    ) -> Callable[[DeliverFields], None]:
        """A deliver_sm callback (``Bind(on_deliver_fields=...)``) for the binds of one SMSC
        of ``route`` (the receipts metric's label): its receipts write ids in
        ``receipt_format``; ``key_prefix`` names the SMSC, so two SMSCs issuing the same id
        never meet in the ledger."""
        normalize = id_normalizer(receipt_format)

        def on_deliver(pdu: DeliverFields) -> None:
            esm_class, short_message, raw_id, state_code = pdu
            if not esm_class & ESM_CLASS_DELIVERY_RECEIPT:
                self.stats["mobile_originated"] += 1
                return
            self.stats["received"] += 1
            if raw_id and state_code in _LEDGER_STATE_BY_CODE:  # both TLVs: no text to read
                ledger_state = _LEDGER_STATE_BY_CODE[state_code]
            else:
                try:
                    receipt = receipt_from_deliver(short_message, raw_id, state_code)
                except ReceiptParseError as exc:
                    self.stats["unparseable"] += 1
                    log.warning("unparseable receipt: %s", exc)
                    return
                raw_id, ledger_state = receipt.message_id, LEDGER_STATE.get(receipt.state)
            if ledger_state is None:
                self.stats["intermediate"] += 1
                return
            key = key_prefix + normalize(raw_id)
            early = self._unrecorded.get(key)
            if early is None:
                self._orphans[key] = len(self._buffer)
                self._buffer.append(ReceiptRow(key, ledger_state, raw_id, time.time()))
            else:
                early.append((key, ledger_state, time.time()))
                self.stats["matched"] += 1
            self._by_state[route, ledger_state] += 1
            sent = self.accepted_at.pop(key, None)
            if sent is not None:
                self._latencies.append(time.monotonic() - sent)

        return on_deliver

    def _flush_metrics(self) -> None:
        for (route, state), n in self._by_state.items():
            m.RECEIPTS.labels(route, state).inc(n)
        self._by_state.clear()
        m.observe_many(m.RECEIPT_LATENCY, self._latencies)
        self._latencies.clear()

    async def flush(self) -> None:
        self._flush_metrics()
        retried = len(self._retry)
        rows = self._retry + [row for row in self._buffer if row is not None]
        self._buffer = []
        self._orphans = {}
        if not rows:
            return
        try:
            unmatched = await self.ledger.record_receipts(rows)
        except BaseException:
            # Not written: all of them go again at the next flush, ahead of what came
            # meanwhile (as retries: the buffer's indices in _orphans stay right).
            self._retry = rows
            raise
        self.stats["matched"] += len(rows) - len(unmatched)
        now = time.time()
        keep = [r for r in unmatched if now - r.received_at < self.grace]
        expired = [r for r in unmatched if now - r.received_at >= self.grace]
        first_misses = len(unmatched) - min(retried, len(unmatched))
        if first_misses > 0:
            m.RECEIPTS_UNMATCHED.inc(first_misses)
        self._retry = keep
        if expired:
            await self.ledger.park_unmatched(expired)
            self.stats["parked"] += len(expired)
        if now - self._last_parked_match > 5.0:
            self._last_parked_match = now
            self.stats["matched"] += await self.ledger.match_parked()

    async def close(self) -> None:
        """Last flush; receipts still unmatched are parked in the ledger, not dropped."""
        await self.flush()
        if self._retry:
            await self.ledger.park_unmatched(self._retry)
            self.stats["parked"] += len(self._retry)
            self._retry = []

    def note_accepted(self, key: str, early: EarlyReceipts) -> None:
        """``key``'s part was accepted: until :meth:`recorded` its receipts go to ``early``
        (its outcome's list, written to the ledger with the outcome), and so does one that
        came first and still waits in the buffer."""
        self._unrecorded[key] = early
        if self._orphans:
            at = self._orphans.pop(key, None)
            if at is not None:
                row = self._buffer[at]
                assert row is not None
                self._buffer[at] = None
                early.append((key, row.state, row.received_at))
                self.stats["matched"] += 1
                return  # its receipt is in: no latency to time (and no entry left behind)
        accepted = self.accepted_at
        accepted[key] = time.monotonic()
        if len(accepted) > ACCEPTED_AT_MAX:
            for old in list(itertools.islice(accepted, len(accepted) - ACCEPTED_AT_MAX // 2)):
                del accepted[old]

    def recorded(self, outcomes: Iterable[Outcome]) -> None:
        """These outcomes are being written: later receipts for their parts go to the ledger
        alone (call it before the write is sent: nothing may join an outcome once sent)."""
        unrecorded = self._unrecorded
        for outcome in outcomes:
            for _, _, key in outcome.message_ids:
                unrecorded.pop(key, None)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:  # a ledger hiccup must not kill receipt handling
                log.exception("receipt flush failed; retrying")
