"""Session state machine: an ESME and an SMSC session paired in memory, no network.

``Pair.send`` makes one side ``send`` a PDU and feeds the bytes to the other side's
``receive_data``: exactly what the asyncio bind client and the SMSC simulator do
around a socket.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from smsblast.smpp.codec import encode
from smsblast.smpp.constants import MAX_SEQUENCE, RESPONSE_BIT, CommandId, Status
from smsblast.smpp.errors import FramingError, LocalProtocolError, PduError
from smsblast.smpp.pdu import (
    PDU_BY_COMMAND_ID,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Outbind,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from smsblast.smpp.session import (
    BIND_STATE,
    RULES,
    Event,
    Role,
    Session,
    State,
    Violation,
    error_reply,
    response_type,
)

BindRequestType = type[BindTransmitter | BindReceiver | BindTransceiver]
BindResponseType = type[BindTransmitterResp | BindReceiverResp | BindTransceiverResp]
BINDS: dict[State, tuple[BindRequestType, BindResponseType]] = {
    State.BOUND_TX: (BindTransmitter, BindTransmitterResp),
    State.BOUND_RX: (BindReceiver, BindReceiverResp),
    State.BOUND_TRX: (BindTransceiver, BindTransceiverResp),
}


@dataclass
class Pair:
    esme: Session = field(default_factory=lambda: Session(Role.ESME))
    smsc: Session = field(default_factory=lambda: Session(Role.SMSC))

    def peer(self, side: Session) -> Session:
        return self.smsc if side is self.esme else self.esme

    def send(self, side: Session, pdu: Pdu) -> list[Event]:
        """``side`` sends ``pdu``; return what the peer's session makes of it."""
        return self.peer(side).receive_data(side.send(pdu))

    def bind(self, state: State, status: int = Status.ROK) -> None:
        request_cls, response_cls = BINDS[state]
        seq = self.esme.next_sequence()
        request = request_cls(sequence_number=seq, system_id="smsblast", password="secret")
        assert self.send(self.esme, request) == [request]
        response = response_cls(sequence_number=seq, command_status=status, system_id="SMSC")
        if status:
            response = response_cls(sequence_number=seq, command_status=status)
        assert self.send(self.smsc, response) == [response]


@pytest.fixture
def pair() -> Pair:
    return Pair()


def bound(state: State) -> Pair:
    p = Pair()
    p.bind(state)
    return p


def only_violation(events: list[Event]) -> Violation:
    assert len(events) == 1
    (event,) = events
    assert isinstance(event, Violation), event
    return event


def submit(seq: int) -> SubmitSm:
    return SubmitSm(sequence_number=seq, destination_addr="6281234567890", short_message=b"hi")


def deliver(seq: int) -> DeliverSm:
    return DeliverSm(sequence_number=seq, source_addr="6281234567890", short_message=b"hi")


# ------------------------------------------------------------------------ binding


def test_new_sessions_start_open() -> None:
    assert Session(Role.ESME).state is State.OPEN
    assert Session(Role.SMSC).state is State.OPEN


@pytest.mark.parametrize("state", list(BINDS))
def test_successful_bind_moves_both_sides_to_bound(pair: Pair, state: State) -> None:
    request_cls, response_cls = BINDS[state]
    request = request_cls(sequence_number=1, system_id="smsblast", password="secret")
    assert pair.send(pair.esme, request) == [request]
    # Nothing is bound until the response travels.
    assert pair.esme.state is State.OPEN
    assert pair.smsc.state is State.OPEN
    response = response_cls(sequence_number=1, system_id="SMSC")
    assert pair.send(pair.smsc, response) == [response]
    assert pair.smsc.state is state
    assert pair.esme.state is state


@pytest.mark.parametrize("state", list(BINDS))
@pytest.mark.parametrize("status", [Status.RINVPASWD, Status.RBINDFAIL, Status.RINVSYSID])
def test_failed_bind_leaves_both_sides_open_and_a_rebind_works(
    pair: Pair, state: State, status: int
) -> None:
    pair.bind(state, status)
    assert pair.esme.state is State.OPEN
    assert pair.smsc.state is State.OPEN
    pair.bind(state)
    assert pair.esme.state is state
    assert pair.smsc.state is state


def test_bind_response_with_other_sequence_number_does_not_bind_the_esme(pair: Pair) -> None:
    pair.esme.send(BindTransmitter(sequence_number=5))
    events = pair.esme.receive_data(encode(BindTransmitterResp(sequence_number=6)))
    assert events == [BindTransmitterResp(sequence_number=6)]
    assert pair.esme.state is State.OPEN


def test_bind_response_of_other_type_does_not_bind_the_esme(pair: Pair) -> None:
    pair.esme.send(BindTransmitter(sequence_number=5))
    pair.esme.receive_data(encode(BindReceiverResp(sequence_number=5)))
    assert pair.esme.state is State.OPEN


def test_unsolicited_bind_response_does_not_bind_the_esme(pair: Pair) -> None:
    assert pair.esme.receive_data(encode(BindTransceiverResp(sequence_number=1))) == [
        BindTransceiverResp(sequence_number=1)
    ]
    assert pair.esme.state is State.OPEN


@pytest.mark.parametrize("state", list(BINDS))
def test_bind_while_bound_is_refused_both_ways(state: State) -> None:
    p = bound(state)
    with pytest.raises(LocalProtocolError):
        p.esme.send(BindTransceiver(sequence_number=p.esme.next_sequence()))
    violation = only_violation(p.smsc.receive_data(encode(BindTransmitter(sequence_number=9))))
    assert violation.reply == BindTransmitterResp(sequence_number=9, command_status=Status.RALYBND)
    assert p.smsc.state is state


def test_smsc_may_not_send_bind_and_esme_may_not_send_bind_response(pair: Pair) -> None:
    with pytest.raises(LocalProtocolError):
        pair.smsc.send(BindTransmitter(sequence_number=1))
    with pytest.raises(LocalProtocolError):
        pair.esme.send(BindTransmitterResp(sequence_number=1))


def test_outbind_from_smsc_then_esme_binds(pair: Pair) -> None:
    outbind = Outbind(sequence_number=1, system_id="SMSC", password="pw")
    assert pair.send(pair.smsc, outbind) == [outbind]
    pair.bind(State.BOUND_RX)
    assert pair.esme.state is State.BOUND_RX


def test_outbind_from_esme_is_refused(pair: Pair) -> None:
    with pytest.raises(LocalProtocolError):
        pair.esme.send(Outbind(sequence_number=1))
    violation = only_violation(pair.smsc.receive_data(encode(Outbind(sequence_number=4))))
    assert violation.reply == GenericNack(sequence_number=4, command_status=Status.RINVBNDSTS)


# ------------------------------------------------------------------ wrong state


def test_submit_before_bind_gives_smsc_a_violation_answered_with_rinvbndsts(pair: Pair) -> None:
    violation = only_violation(pair.smsc.receive_data(encode(submit(7))))
    assert isinstance(violation.error, PduError)
    assert violation.error.status == Status.RINVBNDSTS
    assert not violation.fatal
    assert violation.reply == SubmitSmResp(sequence_number=7, command_status=Status.RINVBNDSTS)
    assert encode(violation.reply) == bytes.fromhex("00000010800000040000000400000007")
    assert pair.smsc.state is State.OPEN


VIOLATION_REPLY_CASES = [
    pytest.param(Role.SMSC, State.OPEN, submit(7), id="smsc-open-submit_sm"),
    pytest.param(Role.SMSC, State.BOUND_RX, submit(7), id="smsc-rx-submit_sm"),
    pytest.param(Role.ESME, State.BOUND_TX, deliver(7), id="esme-tx-deliver_sm"),
    pytest.param(
        Role.SMSC, State.BOUND_TRX, BindTransmitter(sequence_number=7), id="smsc-bound-bind"
    ),
    pytest.param(Role.SMSC, State.OPEN, Unbind(sequence_number=7), id="smsc-open-unbind"),
]


@pytest.mark.parametrize(("role", "state", "request_pdu"), VIOLATION_REPLY_CASES)
def test_violation_reply_can_be_sent_through_the_session(
    role: Role, state: State, request_pdu: Pdu
) -> None:
    session = Session(role)
    session.state = state
    violation = only_violation(session.receive_data(encode(request_pdu)))
    assert violation.reply is not None
    assert session.send(violation.reply) == encode(violation.reply)
    assert session.state is state


def test_fatal_violation_reply_can_be_sent_before_closing(pair: Pair) -> None:
    violation = only_violation(pair.smsc.receive_data(b"\x00" * 16))
    assert violation.fatal and violation.reply is not None
    pair.smsc.send(violation.reply)


def test_esme_sending_submit_in_open_raises_local_protocol_error(pair: Pair) -> None:
    with pytest.raises(LocalProtocolError):
        pair.esme.send(submit(1))
    assert pair.esme.state is State.OPEN


def test_esme_sending_submit_on_receiver_bind_raises() -> None:
    p = bound(State.BOUND_RX)
    with pytest.raises(LocalProtocolError):
        p.esme.send(submit(p.esme.next_sequence()))


@pytest.mark.parametrize("state", [State.BOUND_TX, State.BOUND_TRX])
def test_submit_round_trip_on_transmitting_binds(state: State) -> None:
    p = bound(state)
    seq = p.esme.next_sequence()
    assert p.send(p.esme, submit(seq)) == [submit(seq)]
    resp = SubmitSmResp(sequence_number=seq, message_id="04000000086ECD50")
    assert p.send(p.smsc, resp) == [resp]
    throttled = SubmitSmResp(sequence_number=seq, command_status=Status.RTHROTTLED)
    assert p.send(p.smsc, throttled) == [throttled]


def test_deliver_sm_on_transmitter_bind_is_a_violation() -> None:
    p = bound(State.BOUND_TX)
    with pytest.raises(LocalProtocolError):
        p.smsc.send(deliver(1))
    violation = only_violation(p.esme.receive_data(encode(deliver(3))))
    assert violation.reply == DeliverSmResp(sequence_number=3, command_status=Status.RINVBNDSTS)
    assert not violation.fatal
    assert p.esme.state is State.BOUND_TX


@pytest.mark.parametrize("state", [State.BOUND_RX, State.BOUND_TRX])
def test_deliver_round_trip_on_receiving_binds(state: State) -> None:
    p = bound(state)
    assert p.send(p.smsc, deliver(1)) == [deliver(1)]
    assert p.send(p.esme, DeliverSmResp(sequence_number=1)) == [DeliverSmResp(sequence_number=1)]


def test_esme_receiving_submit_sm_is_a_role_violation() -> None:
    p = bound(State.BOUND_TRX)
    violation = only_violation(p.esme.receive_data(encode(submit(8))))
    assert violation.reply == SubmitSmResp(sequence_number=8, command_status=Status.RINVBNDSTS)


def test_smsc_receiving_deliver_sm_is_a_role_violation() -> None:
    p = bound(State.BOUND_TRX)
    violation = only_violation(p.smsc.receive_data(encode(deliver(8))))
    assert violation.reply == DeliverSmResp(sequence_number=8, command_status=Status.RINVBNDSTS)


def test_unexpected_response_is_a_violation_without_reply(pair: Pair) -> None:
    violation = only_violation(pair.esme.receive_data(encode(SubmitSmResp(sequence_number=3))))
    assert violation.reply is None


@pytest.mark.parametrize("role", list(Role))
def test_enquire_link_works_in_open_and_bound(role: Role) -> None:
    for p in (Pair(), bound(State.BOUND_TRX)):
        side = p.esme if role is Role.ESME else p.smsc
        other = p.peer(side)
        assert p.send(side, EnquireLink(sequence_number=4)) == [EnquireLink(sequence_number=4)]
        resp = EnquireLinkResp(sequence_number=4)
        assert p.send(other, resp) == [resp]


# ------------------------------------------------------------------------ unbind


@pytest.mark.parametrize("state", list(BINDS))
@pytest.mark.parametrize("initiator", list(Role))
def test_unbind_moves_both_sides_to_unbound(state: State, initiator: Role) -> None:
    p = bound(state)
    side = p.esme if initiator is Role.ESME else p.smsc
    other = p.peer(side)
    assert p.send(side, Unbind(sequence_number=20)) == [Unbind(sequence_number=20)]
    assert side.state is State.UNBOUND
    assert other.state is State.UNBOUND
    assert p.send(other, UnbindResp(sequence_number=20)) == [UnbindResp(sequence_number=20)]
    assert side.state is State.UNBOUND
    assert other.state is State.UNBOUND


def test_unbind_in_open_is_refused(pair: Pair) -> None:
    with pytest.raises(LocalProtocolError):
        pair.esme.send(Unbind(sequence_number=1))
    violation = only_violation(pair.smsc.receive_data(encode(Unbind(sequence_number=2))))
    assert violation.reply == UnbindResp(sequence_number=2, command_status=Status.RINVBNDSTS)


def test_responses_still_flow_in_unbound_but_requests_do_not() -> None:
    p = bound(State.BOUND_TRX)
    # Requests in flight both ways when the ESME unbinds.
    p.send(p.esme, submit(1))
    p.send(p.smsc, deliver(2))
    p.send(p.esme, Unbind(sequence_number=3))
    assert p.esme.state is State.UNBOUND and p.smsc.state is State.UNBOUND

    late = [
        (p.smsc, SubmitSmResp(sequence_number=1, message_id="abc")),
        (p.esme, DeliverSmResp(sequence_number=2)),
        (p.smsc, UnbindResp(sequence_number=3)),
        (p.esme, EnquireLinkResp(sequence_number=9)),
        (p.smsc, GenericNack(sequence_number=10, command_status=Status.RSYSERR)),
    ]
    for side, response in late:
        assert p.send(side, response) == [response]

    for side, request in [
        (p.esme, submit(4)),
        (p.smsc, deliver(5)),
        (p.esme, EnquireLink(sequence_number=6)),
        (p.smsc, Unbind(sequence_number=7)),
    ]:
        with pytest.raises(LocalProtocolError):
            side.send(request)
        violation = only_violation(p.peer(side).receive_data(encode(request)))
        assert violation.reply is not None
        assert violation.reply.command_status == Status.RINVBNDSTS


# ------------------------------------------------------------- sequence numbers


def test_sequence_numbers_start_at_one_and_increase() -> None:
    session = Session(Role.ESME)
    assert [session.next_sequence() for _ in range(5)] == [1, 2, 3, 4, 5]


def test_sequence_numbers_wrap_from_0x7fffffff_to_1() -> None:
    session = Session(Role.ESME)
    session._seq = MAX_SEQUENCE - 2  # fast-forward: 2**31 calls would take minutes
    assert [session.next_sequence() for _ in range(4)] == [0x7FFFFFFE, 0x7FFFFFFF, 1, 2]


def test_each_session_has_its_own_sequence() -> None:
    a, b = Session(Role.ESME), Session(Role.ESME)
    a.next_sequence()
    a.next_sequence()
    assert b.next_sequence() == 1


# ------------------------------------------------------------------- framing errors


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("length", [0, 15, 70_000])
def test_framing_error_is_a_fatal_violation_and_closes(role: Role, length: int) -> None:
    p = bound(State.BOUND_TRX)
    session = p.esme if role is Role.ESME else p.smsc
    bad = length.to_bytes(4, "big") + bytes.fromhex("00000015 00000000 00000003")
    violation = only_violation(session.receive_data(bad))
    assert violation.fatal
    assert isinstance(violation.error, FramingError)
    assert violation.reply == GenericNack(command_status=Status.RINVCMDLEN)
    assert session.state is State.CLOSED
    assert session.receive_data(encode(EnquireLink(sequence_number=1))) == []
    with pytest.raises(LocalProtocolError):
        session.send(EnquireLinkResp(sequence_number=1))


def test_framing_error_split_across_chunks(pair: Pair) -> None:
    assert pair.smsc.receive_data(b"\x00\x00") == []
    assert pair.smsc.receive_data(b"\x00\x05" + b"\x00" * 11) == []
    violation = only_violation(pair.smsc.receive_data(b"\x01"))
    assert violation.fatal
    assert pair.smsc.state is State.CLOSED


def test_malformed_body_is_not_fatal(pair: Pair) -> None:
    bad = bytes.fromhex("00000013 00000002 00000000 00000001 616263")  # no NUL
    violation = only_violation(pair.smsc.receive_data(bad))
    assert not violation.fatal
    assert violation.reply == BindTransmitterResp(
        sequence_number=1, command_status=Status.RINVMSGLEN
    )
    assert pair.smsc.state is State.OPEN
    pair.bind(State.BOUND_TX)  # the stream carries on: a good bind still works
    assert (pair.esme.state, pair.smsc.state) == (State.BOUND_TX, State.BOUND_TX)


def test_malformed_response_gets_no_reply() -> None:
    p = bound(State.BOUND_TX)
    bad = bytes.fromhex("00000013 80000004 00000000 00000001 616263")  # message_id no NUL
    violation = only_violation(p.esme.receive_data(bad))
    assert violation.reply is None
    assert not violation.fatal


def test_close_closes(pair: Pair) -> None:
    pair.esme.close()
    assert pair.esme.state is State.CLOSED
    for command_id in RULES:
        assert not pair.esme.can_send(command_id)


def test_pdus_split_and_batched_arrive_in_order() -> None:
    p = bound(State.BOUND_TRX)
    data = b"".join(encode(submit(i)) for i in range(1, 11))
    events: list[Event] = []
    for i in range(0, len(data), 7):
        events += p.smsc.receive_data(data[i : i + 7])
    assert events == [submit(i) for i in range(1, 11)]


# ---------------------------------------------------------------- the rule table

# Written out from SMPP v3.4 sections 2.3 and 4, independently of session.RULES:
# (sender role, states in which that sender may send it).
TX_STATES = {State.BOUND_TX, State.BOUND_TRX}
RX_STATES = {State.BOUND_RX, State.BOUND_TRX}
BOUND_STATES = {State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX}
EXPECTED_RULES: dict[int, tuple[set[Role], set[State]]] = {
    CommandId.BIND_TRANSMITTER: ({Role.ESME}, {State.OPEN}),
    CommandId.BIND_RECEIVER: ({Role.ESME}, {State.OPEN}),
    CommandId.BIND_TRANSCEIVER: ({Role.ESME}, {State.OPEN}),
    CommandId.BIND_TRANSMITTER_RESP: ({Role.SMSC}, {State.OPEN}),
    CommandId.BIND_RECEIVER_RESP: ({Role.SMSC}, {State.OPEN}),
    CommandId.BIND_TRANSCEIVER_RESP: ({Role.SMSC}, {State.OPEN}),
    CommandId.OUTBIND: ({Role.SMSC}, {State.OPEN}),
    CommandId.SUBMIT_SM: ({Role.ESME}, TX_STATES),
    CommandId.SUBMIT_SM_RESP: ({Role.SMSC}, TX_STATES | {State.UNBOUND}),
    CommandId.DELIVER_SM: ({Role.SMSC}, RX_STATES),
    CommandId.DELIVER_SM_RESP: ({Role.ESME}, RX_STATES | {State.UNBOUND}),
    CommandId.ENQUIRE_LINK: (set(Role), BOUND_STATES | {State.OPEN}),
    CommandId.ENQUIRE_LINK_RESP: (set(Role), BOUND_STATES | {State.OPEN, State.UNBOUND}),
    CommandId.UNBIND: (set(Role), BOUND_STATES),
    CommandId.UNBIND_RESP: (set(Role), BOUND_STATES | {State.UNBOUND}),
    CommandId.GENERIC_NACK: (set(Role), BOUND_STATES | {State.OPEN, State.UNBOUND}),
}


def test_rule_table_matches_the_spec_reading() -> None:
    assert set(RULES) == set(EXPECTED_RULES) == set(PDU_BY_COMMAND_ID)
    for command_id, (roles, states) in EXPECTED_RULES.items():
        assert (set(RULES[command_id][0]), set(RULES[command_id][1])) == (roles, states)


def sample_pdu(command_id: int) -> Pdu:
    cls = PDU_BY_COMMAND_ID[command_id]
    return cls(sequence_number=42)


@pytest.mark.parametrize(
    ("command_id", "sender", "state"),
    list(itertools.product(sorted(EXPECTED_RULES), list(Role), list(State))),
)
def test_send_and_receive_agree_with_the_table(command_id: int, sender: Role, state: State) -> None:
    roles, states = EXPECTED_RULES[command_id]
    allowed = sender in roles and state in states
    pdu = sample_pdu(command_id)

    local = Session(sender)
    local.state = state
    assert local.can_send(command_id) is allowed
    if allowed and (command_id & ~RESPONSE_BIT) in BIND_STATE and command_id & RESPONSE_BIT:
        # An SMSC may only answer a bind it received: feed it the request first.
        request = PDU_BY_COMMAND_ID[command_id & ~RESPONSE_BIT](sequence_number=42)
        assert local.receive_data(encode(request)) == [request]
    if allowed or Session.is_error_reply(pdu):  # generic_nack is legal in every state
        assert local.send(pdu) == encode(pdu)
    else:
        with pytest.raises(LocalProtocolError):
            local.send(pdu)

    receiver = Session(Role.SMSC if sender is Role.ESME else Role.ESME)
    receiver.state = state
    events = receiver.receive_data(encode(pdu))
    if state is State.CLOSED:
        assert events == []
        return
    (event,) = events
    if allowed:
        assert event == pdu
    else:
        assert isinstance(event, Violation)
        assert not event.fatal
        if command_id & RESPONSE_BIT:
            assert event.reply is None
        else:
            already = command_id in BIND_STATE and state in BOUND_STATES
            status = Status.RALYBND if already else Status.RINVBNDSTS
            assert event.reply == error_reply(command_id, 42, status)
            expected_cls = response_type(command_id) or GenericNack
            assert type(event.reply) is expected_cls


def test_response_type_and_error_reply() -> None:
    assert response_type(CommandId.SUBMIT_SM) is SubmitSmResp
    assert response_type(CommandId.BIND_RECEIVER) is BindReceiverResp
    assert response_type(CommandId.ENQUIRE_LINK) is EnquireLinkResp
    assert response_type(CommandId.SUBMIT_SM_RESP) is None
    assert response_type(CommandId.OUTBIND) is None
    assert response_type(0x00000003) is None  # query_sm: not supported
    assert error_reply(CommandId.OUTBIND, 5, Status.RSYSERR) == GenericNack(
        sequence_number=5, command_status=Status.RSYSERR
    )
    assert error_reply(CommandId.DELIVER_SM, 5, Status.RX_T_APPN) == DeliverSmResp(
        sequence_number=5, command_status=Status.RX_T_APPN
    )
