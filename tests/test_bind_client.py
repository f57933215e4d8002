"""The asyncio ESME bind client against a scripted SMSC on loopback.

Every test drives the real :class:`Bind` / :class:`EsmeConnection` over a real
TCP (or TLS) socket; the SMSC side is our sans-IO ``Session(Role.SMSC)`` with
fault-injection knobs (tests/smsc_script.py), and the assertions are the ones a
NOC engineer would make: what the SMSC saw, and which outcome each message got.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import itertools
import random
import ssl
import struct
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from smsblast.client import (
    Bind,
    BindConfig,
    BindError,
    BindMode,
    OutcomeKind,
    SubmitOutcome,
    backoff_delay,
)
from smsblast.smpp import pdu as P
from smsblast.smpp.constants import MAX_SEQUENCE, Status
from smsblast.smpp.fast import DeliverFields, SubmitTemplate

try:  # works whether or not tests/ is a package / on sys.path
    from tests.smsc_script import ScriptedSmsc, receipt_text
except ModuleNotFoundError:  # pragma: no cover - depends on the pytest import mode
    from smsc_script import ScriptedSmsc, receipt_text  # type: ignore[no-redef]

pytestmark = pytest.mark.timeout(20)

ACCEPTED, REJECTED = OutcomeKind.ACCEPTED, OutcomeKind.REJECTED
RETRYABLE, UNKNOWN = OutcomeKind.RETRYABLE, OutcomeKind.UNKNOWN

TEMPLATE = SubmitTemplate(
    P.SubmitSm(
        source_addr="SMSBLAST",
        source_addr_ton=5,
        source_addr_npi=0,
        dest_addr_ton=1,
        dest_addr_npi=1,
    )
)


def dest(i: int) -> str:
    return f"62812{i:08d}"


# --------------------------------------------------------------------------- fixtures

SmscFactory = Callable[..., Awaitable[ScriptedSmsc]]
BindFactory = Callable[..., Awaitable[Bind]]


@pytest.fixture
async def make_smsc() -> AsyncIterator[SmscFactory]:
    servers: list[ScriptedSmsc] = []

    async def factory(**knobs: Any) -> ScriptedSmsc:
        smsc = await ScriptedSmsc(**knobs).start()
        servers.append(smsc)
        return smsc

    yield factory
    for smsc in servers:
        await smsc.stop()


def config_for(smsc: ScriptedSmsc, **overrides: Any) -> BindConfig:
    settings: dict[str, Any] = {
        "host": smsc.host,
        "port": smsc.port,
        "system_id": "esme",
        "password": "secret",
        "window": 10,
        "response_timeout": 5.0,
        "enquire_link_interval": 30.0,
        "connect_timeout": 2.0,
        "bind_timeout": 2.0,
        "reconnect_min": 0.05,
        "reconnect_max": 0.2,
        "bind_error_backoff": 1.0,
    }
    settings.update(overrides)
    return BindConfig(**settings)


@pytest.fixture
async def open_bind() -> AsyncIterator[BindFactory]:
    """Start a Bind (and by default wait until bound); closed at teardown, bounded."""
    binds: list[Bind] = []

    async def factory(config: BindConfig, *, ready: bool = True, **kwargs: Any) -> Bind:
        bind = Bind(config, rng=random.Random(7), **kwargs)
        binds.append(bind)
        bind.start()
        if ready:
            await bind.wait_ready(3.0)
        return bind

    yield factory
    for bind in binds:
        await asyncio.wait_for(bind.close(drain_timeout=0.2, unbind_timeout=0.2), 3.0)


class Outcomes:
    """Collects every outcome callback by context (the message index)."""

    def __init__(self, n: int) -> None:
        self.by_index: list[list[SubmitOutcome]] = [[] for _ in range(n)]
        self.remaining = n
        self.all_done = asyncio.Event()
        if n == 0:
            self.all_done.set()

    def __call__(self, index: int, outcome: SubmitOutcome) -> None:
        calls = self.by_index[index]
        calls.append(outcome)
        if len(calls) == 1:
            self.remaining -= 1
            if self.remaining == 0:
                self.all_done.set()

    def single(self) -> list[SubmitOutcome]:
        """Each message's one outcome; fails if any message got zero or several."""
        counts = [len(calls) for calls in self.by_index]
        assert counts == [1] * len(counts), f"outcomes per message: {counts}"
        return [calls[0] for calls in self.by_index]

    def kinds(self) -> Counter[OutcomeKind]:
        return Counter(o.kind for o in self.single())

    async def wait(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self.all_done.wait(), timeout)


async def blast(bind: Bind, destinations: list[str], timeout: float = 5.0) -> Outcomes:
    """Submit like the blast hot path does: one submitter, wait_slot + send_submit."""
    outcomes = Outcomes(len(destinations))
    async with asyncio.timeout(timeout):
        for i, number in enumerate(destinations):
            conn = await bind.wait_slot()
            conn.send_submit(TEMPLATE, number.encode(), b"hello", outcomes, i)
        await outcomes.wait(timeout)
    return outcomes


# --------------------------------------------------------------------------- bind modes


@pytest.mark.parametrize(
    "mode", [BindMode.TRANSCEIVER, BindMode.TRANSMITTER], ids=lambda m: m.value
)
async def test_transmitting_binds_use_their_bind_command_and_submit(
    make_smsc: SmscFactory, open_bind: BindFactory, mode: BindMode
) -> None:
    smsc = await make_smsc()
    bind = await open_bind(config_for(smsc, mode=mode))

    outcome = await asyncio.wait_for(bind.submit(TEMPLATE, dest(1), b"hi"), 3)

    assert smsc.bind_requests == [(mode.value, "esme", Status.ROK)]
    assert outcome.kind is ACCEPTED
    assert outcome.message_id == smsc.id_by_destination[dest(1)]
    assert smsc.destinations == [dest(1)]


async def test_receiver_bind_gets_deliver_sm_and_never_submits(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc()
    delivered: list[P.DeliverSm] = []
    bind = await open_bind(config_for(smsc, mode=BindMode.RECEIVER), on_deliver=delivered.append)

    seq = smsc.send_deliver(
        P.DeliverSm(source_addr="6281200000001", destination_addr="SMSBLAST", short_message=b"MO")
    )
    await smsc.wait_until(lambda: len(smsc.deliver_acks) == 1)
    outcome = await asyncio.wait_for(bind.submit(TEMPLATE, dest(1), b"hi"), 3)

    assert smsc.bind_requests == [("receiver", "esme", Status.ROK)]
    assert smsc.deliver_acks == [(seq, Status.ROK)]
    assert [d.short_message for d in delivered] == [b"MO"]
    assert outcome.kind is RETRYABLE and "receiver bind cannot submit" in outcome.reason
    assert smsc.submits == []


# --------------------------------------------------------------------------- window


async def test_responses_in_reverse_order_are_matched_by_sequence_number(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc(reverse=True)
    bind = await open_bind(config_for(smsc, window=10))
    numbers = [dest(i) for i in range(30)]

    outcomes = (await blast(bind, numbers)).single()

    assert smsc.max_batch > 1, "the SMSC never reordered anything: the test proves nothing"
    assert [o.kind for o in outcomes] == [ACCEPTED] * 30
    assert [o.message_id for o in outcomes] == [smsc.id_by_destination[n] for n in numbers]


async def test_window_caps_submits_outstanding_at_the_smsc(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc(response_delay=0.03, reverse=True)
    bind = await open_bind(config_for(smsc, window=4))

    outcomes = await blast(bind, [dest(i) for i in range(40)])

    assert outcomes.kinds() == {ACCEPTED: 40}
    assert smsc.max_outstanding == 4  # the window is used in full and never exceeded


async def test_concurrent_submits_beyond_the_window_all_complete(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc(response_delay=0.05)
    bind = await open_bind(config_for(smsc, window=2))

    tasks = [asyncio.create_task(bind.submit(TEMPLATE, dest(i), b"x")) for i in range(6)]
    _, stuck = await asyncio.wait(tasks, timeout=2.0)
    for task in stuck:
        task.cancel()

    assert not stuck, f"{len(stuck)} of 6 submits still waiting for a window slot after 2 s"
    assert [t.result().kind for t in tasks] == [ACCEPTED] * 6
    assert smsc.max_outstanding <= 2


# --------------------------------------------------------------------------- outcomes

STATUS_CASES: list[tuple[int, OutcomeKind]] = [
    (Status.ROK, ACCEPTED),
    (Status.RTHROTTLED, RETRYABLE),
    (Status.RMSGQFUL, RETRYABLE),
    (Status.RSYSERR, RETRYABLE),
    (Status.RX_T_APPN, RETRYABLE),
    (Status.RINVBNDSTS, RETRYABLE),
    (Status.RINVDSTADR, REJECTED),
    (Status.RSUBMITFAIL, REJECTED),
    (Status.RX_P_APPN, REJECTED),
    (Status.RINVSRCADR, REJECTED),
    (0x0400, REJECTED),  # vendor-specific code
]
NACK_CASES: list[tuple[int, OutcomeKind]] = [
    (Status.RTHROTTLED, RETRYABLE),
    (Status.RSYSERR, RETRYABLE),
    (Status.RINVCMDLEN, REJECTED),
    (Status.RINVCMDID, REJECTED),
]


async def test_each_status_maps_to_its_outcome(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    statuses = {dest(i): status for i, (status, _) in enumerate(STATUS_CASES)}
    nacks = {dest(100 + i): status for i, (status, _) in enumerate(NACK_CASES)}
    smsc = await make_smsc(
        statuses_by_destination=statuses, nack_by_destination=nacks, reverse=True
    )
    bind = await open_bind(config_for(smsc))
    numbers = list(statuses) + list(nacks)

    outcomes = (await blast(bind, numbers)).single()

    got = {n: (o.kind, o.status) for n, o in zip(numbers, outcomes, strict=True)}
    expected = {dest(i): (kind, status) for i, (status, kind) in enumerate(STATUS_CASES)}
    expected |= {dest(100 + i): (kind, status) for i, (status, kind) in enumerate(NACK_CASES)}
    assert got == expected
    assert outcomes[0].message_id == smsc.id_by_destination[dest(0)] != ""
    assert all(o.message_id == "" for o in outcomes[1:])
    assert all(o.reason == "generic_nack" for o in outcomes[len(statuses) :])


async def test_response_timeout_is_unknown_and_late_response_is_counted_not_resolved(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc(response_delay=0.5)
    bind = await open_bind(config_for(smsc, response_timeout=0.15))

    outcomes = await blast(bind, [dest(i) for i in range(5)], timeout=3)
    conn = bind.connection
    assert conn is not None
    timed_out = outcomes.single()
    await smsc.wait_until(lambda: smsc.conns[0].submits_answered == 5)
    await asyncio.wait_for(_until(lambda: conn.stats["late_responses"] == 5), 2)

    # the SMSC may have taken them: resending could reach a phone twice
    assert [(o.kind, o.reason) for o in timed_out] == [(UNKNOWN, "response timeout")] * 5
    assert all(o.latency >= 0.15 for o in timed_out)
    assert outcomes.single() == timed_out  # the late submit_sm_resp did not resolve again
    assert conn.stats["timeouts"] == 5
    assert bind.is_ready and smsc.connections == 1  # a slow SMSC is not a dead link


async def test_mixed_traffic_every_submit_resolves_exactly_once(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    numbers = [dest(i) for i in range(60)]
    smsc = await make_smsc(
        reverse=True,
        statuses_by_destination={n: Status.RTHROTTLED for n in numbers[1::7]},
        nack_by_destination={n: Status.RINVCMDLEN for n in numbers[2::9]},
        drop=lambda i: i % 11 == 5,  # never answered: must time out
    )
    bind = await open_bind(config_for(smsc, window=8, response_timeout=0.3))

    outcomes = await blast(bind, numbers, timeout=8)

    kinds = outcomes.kinds()  # raises unless exactly one outcome per message
    dropped = sum(1 for i in range(60) if i % 11 == 5)
    timeouts = [o for o in outcomes.single() if o.reason == "response timeout"]
    assert len(timeouts) == dropped
    assert sum(kinds.values()) == 60 == len(smsc.submits)
    assert kinds[ACCEPTED] == len(smsc.id_by_destination)


async def test_drop_with_submits_in_flight_resolves_them_unknown(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    # Answers the first 4 submits, receives 6 more, then hangs up without answering them.
    smsc = await make_smsc(drop=lambda i: i >= 4, close_after_submits=10)
    bind = await open_bind(config_for(smsc, window=10))

    outcomes = await blast(bind, [dest(i) for i in range(10)])

    await smsc.wait_until(lambda: smsc.conns[0].unanswered_at_close is not None)
    kinds = outcomes.kinds()
    assert kinds == {ACCEPTED: 4, UNKNOWN: 6}
    assert kinds[UNKNOWN] == smsc.conns[0].unanswered_at_close
    unknown = [o for o in outcomes.single() if o.kind is UNKNOWN]
    assert all("connection" in o.reason for o in unknown)


async def test_submit_written_after_the_connection_died_is_retryable_not_unknown(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc(drop=lambda i: True)
    bind = await open_bind(config_for(smsc))
    in_flight = await _submit_and_wait_received(bind, smsc, 3)
    conn = bind.connection
    assert conn is not None
    late = Outcomes(2)

    conn.abort()  # e.g. the ticker found the link dead; connection_lost is still pending
    for i in range(2):
        conn.send_submit(TEMPLATE, dest(50 + i).encode(), b"x", late, i)
    await in_flight.wait(2)
    await late.wait(2)

    assert in_flight.kinds() == {UNKNOWN: 3}
    assert late.kinds() == {RETRYABLE: 2}
    assert all(o.reason.startswith("never written") for o in late.single())
    assert len(smsc.submits) == 3


async def test_submit_still_buffered_when_connection_is_aborted_is_retryable(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc()
    bind = await open_bind(config_for(smsc))
    conn = bind.connection
    assert conn is not None
    outcomes = Outcomes(2)

    for i in range(2):
        conn.send_submit(TEMPLATE, dest(i).encode(), b"x", outcomes, i)  # buffered, not flushed
    conn.abort()
    await outcomes.wait(2)
    await smsc.wait_until(lambda: smsc.conns[0].closed_at is not None)

    assert smsc.submits == []  # they never reached the SMSC ...
    assert outcomes.kinds() == {RETRYABLE: 2}  # ... so resending them is safe


# --------------------------------------------------------------------------- enquire_link


async def test_idle_bind_sends_enquire_link_and_stays_up(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc()
    bind = await open_bind(config_for(smsc, enquire_link_interval=0.2, response_timeout=1.0))

    await smsc.wait_until(lambda: smsc.enquire_links >= 3, timeout=3)

    assert smsc.connections == 1 and bind.is_ready
    outcome = await asyncio.wait_for(bind.submit(TEMPLATE, dest(1), b"x"), 2)
    assert outcome.kind is ACCEPTED


async def test_unanswered_enquire_link_closes_the_connection_and_rebinds(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc(answer_enquire_link=False)
    states: list[bool] = []
    bind = await open_bind(
        config_for(smsc, enquire_link_interval=0.1, response_timeout=0.3),
        on_state=lambda _label, up: states.append(up),
    )

    await smsc.wait_until(lambda: smsc.binds_ok == 2, timeout=4)
    smsc.answer_enquire_link = True
    await bind.wait_ready(2)
    outcome = await asyncio.wait_for(bind.submit(TEMPLATE, dest(1), b"x"), 2)

    assert smsc.conns[0].closed_at is not None  # the silent link was closed by the ESME
    assert smsc.enquire_links >= 1
    assert states[:3] == [True, False, True]
    assert outcome.kind is ACCEPTED


# --------------------------------------------------------------------------- reconnect


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    rng = random.Random(1)
    low, high = 0.5, 30.0
    for attempt in range(12):
        ceiling = min(high, low * 2**attempt)
        draws = [backoff_delay(attempt, low, high, rng) for _ in range(300)]
        assert all(low <= d <= ceiling for d in draws), attempt
        if ceiling > low:
            assert len(set(draws)) > 250  # jitter: binds do not reconnect in lockstep
            assert max(draws) > low + 0.8 * (ceiling - low)  # the range is really used
    assert backoff_delay(10_000, low, high, rng) <= high  # no overflow on long outages


async def test_reconnect_after_drop_rebinds_and_submits_flow_again(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc()
    states: list[bool] = []
    bind = await open_bind(config_for(smsc), on_state=lambda _label, up: states.append(up))
    first = await blast(bind, [dest(i) for i in range(5)])

    smsc.live()[0].close()  # the SMSC drops the session
    await smsc.wait_until(lambda: smsc.binds_ok == 2, timeout=3)
    await bind.wait_ready(2)
    second = await blast(bind, [dest(i) for i in range(5, 10)])

    assert first.kinds() == second.kinds() == {ACCEPTED: 5}
    assert states == [True, False, True]
    assert smsc.connections == 2 and bind.stats["connects"] == 2
    assert [c.submits_received for c in smsc.conns] == [5, 5]


async def test_reconnect_attempts_back_off_capped_and_never_tight(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc(accept_and_close=True)  # TCP up, then hung up before bind
    bind = await open_bind(config_for(smsc, reconnect_min=0.05, reconnect_max=0.2), ready=False)

    await asyncio.sleep(1.2)  # observe the supervisor for a while

    opened = [c.opened_at for c in smsc.conns]
    gaps = [b - a for a, b in itertools.pairwise(opened)]
    assert 4 <= len(opened) <= 1.2 / 0.05 + 1, opened
    assert min(gaps) >= 0.045, gaps  # at least reconnect_min between attempts
    assert max(gaps) <= 0.2 + 0.1, gaps  # capped at reconnect_max (+ connect time)
    assert not bind.is_ready and isinstance(bind.last_error, Exception)


@pytest.mark.parametrize(
    ("knobs", "status"),
    [
        ({"password": "other"}, Status.RINVPASWD),
        ({"bind_status": Status.RBINDFAIL}, Status.RBINDFAIL),
    ],
    ids=["wrong-password", "bind-fail"],
)
async def test_refused_bind_backs_off_and_reports_the_status(
    make_smsc: SmscFactory, open_bind: BindFactory, knobs: dict[str, Any], status: Status
) -> None:
    smsc = await make_smsc(**knobs)
    bind = await open_bind(
        config_for(smsc, reconnect_min=0.01, reconnect_max=0.05, bind_error_backoff=1.0),
        ready=False,
    )

    with pytest.raises(BindError):  # a refusal is reported at once, not at the timeout
        await bind.wait_ready(1.5)
    await asyncio.sleep(1.5)

    assert 1 <= smsc.connections <= 2  # no tight reconnect loop on a refused bind
    assert [s for _, _, s in smsc.bind_requests] == [status] * smsc.connections
    assert isinstance(bind.last_error, BindError)
    assert bind.last_error.status == status
    assert status.name in str(bind.last_error)
    assert bind.stats["bind_failures"] == smsc.connections


# --------------------------------------------------------------------------- deliver_sm


async def test_receipts_are_acknowledged_and_surfaced(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc(receipts=True)
    delivered: list[P.DeliverSm] = []
    bind = await open_bind(config_for(smsc), on_deliver=delivered.append)

    outcomes = await blast(bind, [dest(i) for i in range(5)])
    await smsc.wait_until(lambda: len(smsc.deliver_acks) == 5)
    extra = smsc.send_deliver(
        P.DeliverSm(
            source_addr=dest(9),
            destination_addr="SMSBLAST",
            esm_class=0x04,
            short_message=receipt_text("0221067780", "UNDELIV"),
            tlvs=P.Tlvs(receipted_message_id="0221067780", message_state=5),
        )
    )
    await smsc.wait_until(lambda: len(smsc.deliver_acks) == 6)

    assert outcomes.kinds() == {ACCEPTED: 5}
    assert sorted(smsc.deliver_acks) == sorted((seq, Status.ROK) for seq in smsc.deliver_sent)
    assert extra in smsc.deliver_sent
    assert len(delivered) == 6 and all(d.esm_class == 0x04 for d in delivered)
    ids = [o.message_id for o in outcomes.single()]
    texts = [d.short_message for d in delivered[:5]]
    assert all(f"id:{i} ".encode() in t for t, i in zip(texts, ids, strict=True))
    assert delivered[-1].tlvs.receipted_message_id == "0221067780"  # leading zero kept


async def test_a_failing_receipt_handler_asks_for_a_retry_and_keeps_the_bind(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc()
    calls: list[P.DeliverSm] = []

    def broken(pdu: P.DeliverSm) -> None:
        calls.append(pdu)
        raise RuntimeError("application bug")

    bind = await open_bind(config_for(smsc), on_deliver=broken)
    seq = smsc.send_deliver(
        P.DeliverSm(
            source_addr=dest(1),
            destination_addr="SMSBLAST",
            esm_class=0x04,
            short_message=receipt_text("0A", "DELIVRD"),
        )
    )
    await smsc.wait_until(lambda: len(smsc.deliver_acks) == 1)

    assert smsc.deliver_acks == [(seq, Status.RX_T_APPN)]  # the SMSC will send it again
    assert len(calls) == 1
    outcomes = await blast(bind, [dest(2)])  # and the bind still works
    assert outcomes.kinds() == {ACCEPTED: 1}
    assert smsc.connections == 1


async def test_the_fields_handler_gets_each_receipt_as_its_four_fields(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc()
    seen: list[DeliverFields] = []

    def on_fields(fields: DeliverFields) -> None:
        seen.append(fields)
        if fields.receipted_message_id == "BAD":
            raise RuntimeError("application bug")

    bind = await open_bind(config_for(smsc), on_deliver_fields=on_fields)
    text = receipt_text("0A", "DELIVRD")
    sent = [
        smsc.send_deliver(
            P.DeliverSm(
                source_addr=dest(1),
                destination_addr="SMSBLAST",
                esm_class=0x04,
                short_message=text,
                tlvs=tlvs,
            )
        )
        for tlvs in (
            P.Tlvs(),
            P.Tlvs(receipted_message_id="0221067780", message_state=2, user_message_reference=9),
            P.Tlvs(receipted_message_id="BAD"),
        )
    ]
    await smsc.wait_until(lambda: len(smsc.deliver_acks) == 3)

    assert seen == [
        DeliverFields(0x04, text, None, None),
        DeliverFields(0x04, text, "0221067780", 2),
        DeliverFields(0x04, text, "BAD", None),
    ]
    assert sorted(smsc.deliver_acks) == sorted(
        [(sent[0], Status.ROK), (sent[1], Status.ROK), (sent[2], Status.RX_T_APPN)]
    )
    assert (await blast(bind, [dest(2)])).kinds() == {ACCEPTED: 1}
    assert smsc.connections == 1


# --------------------------------------------------------------------------- close


async def test_graceful_close_drains_the_window_then_unbinds(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc(response_delay=0.3)
    bind = await open_bind(config_for(smsc))
    outcomes = Outcomes(5)
    for i in range(5):
        conn = await bind.wait_slot()
        conn.send_submit(TEMPLATE, dest(i).encode(), b"x", outcomes, i)

    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(bind.close(drain_timeout=3.0, unbind_timeout=1.0), 5)
    elapsed = loop.time() - started

    assert outcomes.kinds() == {ACCEPTED: 5}
    events = [e for e in smsc.events if e in ("submit_resp", "unbind")]
    assert events == ["submit_resp"] * 5 + ["unbind"]  # drained first, then unbind
    assert smsc.unbinds == smsc.unbind_resps_sent == 1
    assert 0.25 <= elapsed < 1.5  # waited for the responses, not for the drain timeout
    await smsc.wait_until(lambda: smsc.conns[0].closed_at is not None, timeout=2)
    assert not bind.is_ready
    late = await bind.submit(TEMPLATE, dest(9), b"x")
    assert late.kind is RETRYABLE  # a closed bind takes no more work
    assert len(smsc.submits) == 5


async def test_close_with_a_silent_smsc_is_bounded_and_resolves_unknown(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc(drop=lambda i: True, answer_unbind=False)
    bind = await open_bind(config_for(smsc, response_timeout=30.0))
    outcomes = await _submit_and_wait_received(bind, smsc, 5)

    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(bind.close(drain_timeout=0.3, unbind_timeout=0.3), 3)
    elapsed = loop.time() - started

    assert 0.55 <= elapsed < 0.3 + 0.3 + 0.4
    await outcomes.wait(1)
    assert outcomes.kinds() == {UNKNOWN: 5}
    assert smsc.unbinds == 1 and smsc.unbind_resps_sent == 0


async def test_enquire_link_from_the_smsc_is_answered(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc()
    await open_bind(config_for(smsc))

    seqs = smsc.enquire_all()
    await smsc.wait_until(lambda: len(smsc.enquire_link_resps_received) == 1)

    assert smsc.enquire_link_resps_received == seqs


async def test_sequence_numbers_wrap_to_1_without_confusing_responses(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc(reverse=True)
    bind = await open_bind(config_for(smsc, window=4))
    conn = bind.connection
    assert conn is not None
    conn.session._seq = MAX_SEQUENCE - 5  # as after ~2**31 PDUs on one bind

    outcomes = (await blast(bind, [dest(i) for i in range(12)])).single()

    seqs = [s.sequence_number for s in smsc.submits]
    assert seqs[:5] == list(range(MAX_SEQUENCE - 4, MAX_SEQUENCE + 1))
    assert seqs[5:] == list(range(1, 8))  # 1 .. 0x7FFFFFFF, then 1; never 0
    assert [o.message_id for o in outcomes] == [smsc.id_by_destination[dest(i)] for i in range(12)]


# --------------------------------------------------------------------------- bad peers


async def test_bad_command_length_closes_only_that_connection_and_it_rebinds(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc()
    victim = await open_bind(config_for(smsc, name="victim"))
    bystander = await open_bind(config_for(smsc, name="bystander"))
    victim_conn, bystander_conn = victim.connection, bystander.connection
    assert victim_conn is not None and bystander_conn is not None

    smsc.inject(struct.pack(">IIII", 8, 0x80000004, 0, 1), conn_index=0)  # length < 16
    await smsc.wait_until(lambda: smsc.binds_ok == 3, timeout=3)
    await victim.wait_ready(2)
    outcome = await asyncio.wait_for(victim.submit(TEMPLATE, dest(1), b"x"), 2)

    assert victim_conn.stats["violations"] == 1
    assert victim.connection is not victim_conn and victim.stats["connects"] == 2
    assert bystander.connection is bystander_conn and bystander.stats["connects"] == 1
    assert smsc.conns[0].closed_at is not None and smsc.conns[1].closed_at is None
    assert outcome.kind is ACCEPTED


async def test_unknown_command_id_is_answered_with_generic_nack(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc()
    bind = await open_bind(config_for(smsc))

    smsc.inject(struct.pack(">IIII", 16, 0x00000099, 0, 4242))
    await smsc.wait_until(lambda: len(smsc.generic_nacks_received) == 1)
    outcome = await asyncio.wait_for(bind.submit(TEMPLATE, dest(1), b"x"), 2)

    assert smsc.generic_nacks_received == [(4242, Status.RINVCMDID)]
    assert smsc.connections == 1 and outcome.kind is ACCEPTED  # the link survives


async def test_smsc_initiated_unbind_is_answered_and_the_bind_comes_back(
    make_smsc: SmscFactory, open_bind: BindFactory
) -> None:
    smsc = await make_smsc()
    bind = await open_bind(config_for(smsc))

    smsc.unbind_all()
    await smsc.wait_until(lambda: smsc.binds_ok == 2, timeout=3)
    await bind.wait_ready(2)
    outcome = await asyncio.wait_for(bind.submit(TEMPLATE, dest(1), b"x"), 2)

    assert smsc.unbind_resps_received == 1
    assert outcome.kind is ACCEPTED


# --------------------------------------------------------------------------- TLS


def _self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_tls_bind_and_submit_with_a_pinned_ca(
    make_smsc: SmscFactory, open_bind: BindFactory, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path, "smsc")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    smsc = await make_smsc(ssl_context=server_ctx, receipts=True)
    delivered: list[P.DeliverSm] = []
    bind = await open_bind(
        config_for(smsc, tls=ssl.create_default_context(cafile=str(cert))),
        on_deliver=delivered.append,
    )

    outcomes = await blast(bind, [dest(i) for i in range(3)])
    await smsc.wait_until(lambda: len(smsc.deliver_acks) == 3)

    assert outcomes.kinds() == {ACCEPTED: 3}
    assert len(delivered) == 3
    conn = bind.connection
    assert conn is not None and conn._transport is not None
    assert conn._transport.get_extra_info("ssl_object") is not None


async def test_tls_with_an_untrusted_certificate_never_binds(
    make_smsc: SmscFactory, open_bind: BindFactory, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path, "smsc")
    other_ca, _ = _self_signed(tmp_path, "other")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    smsc = await make_smsc(ssl_context=server_ctx)
    bind = await open_bind(
        config_for(smsc, tls=ssl.create_default_context(cafile=str(other_ca))), ready=False
    )

    with pytest.raises(TimeoutError):
        await bind.wait_ready(0.5)

    assert isinstance(bind.last_error, ssl.SSLCertVerificationError)
    assert smsc.bind_requests == []


# --------------------------------------------------------------------------- helpers


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.01)


async def _submit_and_wait_received(bind: Bind, smsc: ScriptedSmsc, n: int) -> Outcomes:
    """Write n submits and wait until the SMSC has read them all."""
    outcomes = Outcomes(n)
    base = len(smsc.submits)
    for i in range(n):
        conn = await bind.wait_slot()
        conn.send_submit(TEMPLATE, dest(i).encode(), b"x", outcomes, i)
    await smsc.wait_until(lambda: len(smsc.submits) == base + n)
    return outcomes
