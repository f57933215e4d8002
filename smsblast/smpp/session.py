"""SMPP session state machine, for both the ESME and the SMSC role.

Theory of operation
-------------------
A :class:`Session` is a pure object: bytes in, typed events out; PDUs in, bytes
out. It never touches a socket, a task or a clock (an h11 habit), so the very
same object drives our asyncio bind client, the SMSC simulator and the in-memory
tests that pair one role with the other.

State lives in one place, :data:`RULES`: for every command, which role may send
it and in which states. Both directions consult the same table: ``send`` raises
:class:`LocalProtocolError` when *we* break it, ``receive_frame`` reports a
:class:`Violation` (with the reply the peer is owed) when the *peer* breaks it.
Transitions happen on the bind response (OPEN -> BOUND_*), on unbind in either
direction (BOUND_* -> UNBOUND), and on :meth:`Session.close` or a framing error
(-> CLOSED).

The session does not match responses to requests: that is the window's job,
since a bind client keeps thousands in flight and owns their timers. It does
hand out sequence numbers (1 .. 0x7FFFFFFF, then wrap to 1) and says which
commands need a response (:func:`response_type`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from smsblast.smpp.codec import Frame, FrameDecoder, decode_pdu, encode
from smsblast.smpp.constants import DEFAULT_MAX_PDU_LENGTH, MAX_SEQUENCE, RESPONSE_BIT, CommandId
from smsblast.smpp.constants import Status as St
from smsblast.smpp.errors import FramingError, LocalProtocolError, PduError, UnknownCommandError
from smsblast.smpp.pdu import PDU_BY_COMMAND_ID, GenericNack, Pdu


class Role(enum.Enum):
    ESME = "esme"
    SMSC = "smsc"


class State(enum.Enum):
    OPEN = "open"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBOUND = "unbound"
    CLOSED = "closed"


ESME = frozenset({Role.ESME})
SMSC = frozenset({Role.SMSC})
BOTH = ESME | SMSC
BOUND = frozenset({State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX})
CAN_SUBMIT = frozenset({State.BOUND_TX, State.BOUND_TRX})
CAN_DELIVER = frozenset({State.BOUND_RX, State.BOUND_TRX})
LIVE = BOUND | {State.OPEN}
DRAINING = BOUND | {State.UNBOUND}
NOT_CLOSED = LIVE | {State.UNBOUND}

#: command -> (roles that may send it, states in which they may send it).
RULES: dict[int, tuple[frozenset[Role], frozenset[State]]] = {
    CommandId.BIND_TRANSMITTER: (ESME, frozenset({State.OPEN})),
    CommandId.BIND_RECEIVER: (ESME, frozenset({State.OPEN})),
    CommandId.BIND_TRANSCEIVER: (ESME, frozenset({State.OPEN})),
    CommandId.BIND_TRANSMITTER_RESP: (SMSC, frozenset({State.OPEN})),
    CommandId.BIND_RECEIVER_RESP: (SMSC, frozenset({State.OPEN})),
    CommandId.BIND_TRANSCEIVER_RESP: (SMSC, frozenset({State.OPEN})),
    CommandId.OUTBIND: (SMSC, frozenset({State.OPEN})),
    CommandId.SUBMIT_SM: (ESME, CAN_SUBMIT),
    CommandId.SUBMIT_SM_RESP: (SMSC, CAN_SUBMIT | {State.UNBOUND}),
    CommandId.DELIVER_SM: (SMSC, CAN_DELIVER),
    CommandId.DELIVER_SM_RESP: (ESME, CAN_DELIVER | {State.UNBOUND}),
    CommandId.ENQUIRE_LINK: (BOTH, LIVE),
    CommandId.ENQUIRE_LINK_RESP: (BOTH, NOT_CLOSED),
    CommandId.UNBIND: (BOTH, BOUND),
    CommandId.UNBIND_RESP: (BOTH, DRAINING),
    CommandId.GENERIC_NACK: (BOTH, NOT_CLOSED),
}

#: bind request (or its response) -> the state a successful bind enters.
BIND_STATE: dict[int, State] = {
    CommandId.BIND_TRANSMITTER: State.BOUND_TX,
    CommandId.BIND_RECEIVER: State.BOUND_RX,
    CommandId.BIND_TRANSCEIVER: State.BOUND_TRX,
}


def response_type(command_id: int) -> type[Pdu] | None:
    """The response PDU class a request needs, or None (responses, outbind)."""
    if command_id & RESPONSE_BIT:
        return None
    return PDU_BY_COMMAND_ID.get(command_id | RESPONSE_BIT)


def error_reply(command_id: int, sequence_number: int, status: int) -> Pdu:
    """The reply owed to a bad request: its own response type with ``status``,
    or generic_nack where the request has none (or is unknown)."""
    resp = response_type(command_id)
    if resp is None:
        return GenericNack(sequence_number=sequence_number, command_status=status)
    return resp(sequence_number=sequence_number, command_status=status)


@dataclass(frozen=True, slots=True)
class Violation:
    """The peer broke the protocol. ``reply`` (if any) should be sent back;
    ``fatal`` means the stream is unusable and the connection must close."""

    error: Exception
    reply: Pdu | None = None
    fatal: bool = False


Event = Pdu | Violation


class Session:
    """One side of one SMPP connection. See the module docstring."""

    __slots__ = ("_decoder", "_pending_bind", "_seq", "role", "state")

    def __init__(self, role: Role, *, max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH) -> None:
        self.role = role
        self.state = State.OPEN
        self._seq = 0
        self._decoder = FrameDecoder(max_pdu_length)
        self._pending_bind: tuple[int, int] | None = None  # (seq, bind command id)

    # ----------------------------------------------------------- sequence numbers
    def next_sequence(self) -> int:
        """1 .. 0x7FFFFFFF, then back to 1."""
        seq = self._seq + 1
        if seq > MAX_SEQUENCE:
            seq = 1
        self._seq = seq
        return seq

    # ----------------------------------------------------------- outbound
    def can_send(self, command_id: int) -> bool:
        rule = RULES.get(command_id)
        return rule is not None and self.role in rule[0] and self.state in rule[1]

    @staticmethod
    def is_error_reply(pdu: Pdu) -> bool:
        """A generic_nack or a response carrying an error status: the answer to a
        peer's mistake, legal in every state (it changes no state)."""
        return pdu.command_id == CommandId.GENERIC_NACK or (
            bool(pdu.command_id & RESPONSE_BIT) and pdu.command_status != St.ROK
        )

    def send(self, pdu: Pdu) -> bytes:
        """Check ``pdu`` against the rules, apply its transition, return its bytes.

        Raises:
            LocalProtocolError: the PDU is illegal for this role in this state,
                or a field does not fit.
        """
        cid = pdu.command_id
        if self.is_error_reply(pdu):
            return encode(pdu)
        if not self.can_send(cid):
            raise LocalProtocolError(
                f"{self.role.value} may not send {CommandId(cid).name} in state {self.state.value}"
            )
        data = encode(pdu)
        if cid in BIND_STATE:
            self._pending_bind = (pdu.sequence_number, cid)
        elif cid & RESPONSE_BIT and (cid & ~RESPONSE_BIT) in BIND_STATE:
            request = cid & ~RESPONSE_BIT
            if self._pending_bind != (pdu.sequence_number, request):
                raise LocalProtocolError(
                    f"{CommandId(cid).name} seq {pdu.sequence_number} answers no bind received"
                )
            self._pending_bind = None
            self.state = BIND_STATE[request]
        elif cid == CommandId.UNBIND or cid == CommandId.UNBIND_RESP:
            self.state = State.UNBOUND
        return data

    def close(self) -> None:
        self.state = State.CLOSED

    # ----------------------------------------------------------- inbound
    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; return the events they complete."""
        return list(self.events(data))

    def events(self, data: bytes) -> Iterator[Event]:
        if self.state is State.CLOSED:
            return
        try:
            self._decoder.feed(data)
            for frame in self._decoder.frames():
                yield self.receive_frame(frame)
        except FramingError as exc:
            self.state = State.CLOSED
            yield Violation(exc, GenericNack(command_status=exc.status), fatal=True)

    def receive_frame(self, frame: Frame) -> Event:
        """Decode and check one frame received from the peer."""
        cid = frame.command_id
        try:
            pdu = decode_pdu(frame)
        except UnknownCommandError as exc:  # v3.4 4.3: generic_nack, whatever bit 31 says
            return Violation(
                exc, GenericNack(sequence_number=frame.sequence_number, command_status=exc.status)
            )
        except PduError as exc:
            is_request = not cid & RESPONSE_BIT
            reply = error_reply(cid, frame.sequence_number, exc.status) if is_request else None
            return Violation(exc, reply)
        roles, states = RULES[cid]
        peer = Role.SMSC if self.role is Role.ESME else Role.ESME
        if peer not in roles or self.state not in states:
            already = cid in BIND_STATE and self.state in BOUND
            exc2 = PduError(
                f"peer sent {CommandId(cid).name} in state {self.state.value}",
                command_id=cid,
                sequence_number=frame.sequence_number,
                status=St.RALYBND if already else St.RINVBNDSTS,
            )
            reply = (
                None if cid & RESPONSE_BIT else error_reply(cid, frame.sequence_number, exc2.status)
            )
            return Violation(exc2, reply)
        self._apply_received(pdu)
        return pdu

    def _apply_received(self, pdu: Pdu) -> None:
        cid = pdu.command_id
        if cid in BIND_STATE:  # SMSC: remember which bind the response must answer
            self._pending_bind = (pdu.sequence_number, cid)
        elif cid & RESPONSE_BIT and (cid & ~RESPONSE_BIT) in BIND_STATE:
            pending = self._pending_bind
            if (
                pending is not None
                and pending[0] == pdu.sequence_number
                and pending[1] == cid & ~RESPONSE_BIT
                and pdu.command_status == St.ROK
            ):
                self.state = BIND_STATE[pending[1]]
            self._pending_bind = None
        elif cid == CommandId.UNBIND or cid == CommandId.UNBIND_RESP:
            self.state = State.UNBOUND
