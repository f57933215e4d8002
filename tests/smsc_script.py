"""A small scripted SMSC for fault injection, on loopback, for the bind-client tests.

Theory of operation
-------------------
:class:`ScriptedSmsc` is an ``asyncio`` server (ephemeral loopback port, optional
TLS) whose every connection is driven by our own sans-IO ``Session(Role.SMSC)``:
the session cuts frames and checks the state table, this module only decides
*what to answer* and records *what it saw*, so a test can assert what a NOC
engineer would look at on the SMSC side (submits received, max outstanding,
enquire_links, unbinds, acknowledged receipts, connection attempts).

Knobs are plain attributes, readable and writable while the server runs:

* ``system_id`` / ``password`` (None accepts anything), ``bind_status`` (refuse
  every bind with that status), ``accept_and_close`` (close right after accept);
* ``statuses_by_destination`` / ``default_status``: the submit_sm_resp status;
  ``nack_by_destination``: answer with generic_nack(status) instead;
* ``drop(index)``: never answer the index-th submit of a connection (0-based);
* ``response_delay``: seconds before a batch of responses is written;
  ``reverse``: write the responses of each read batch in reverse order;
* ``close_after_submits``: close a connection once it has received N submits;
* ``answer_enquire_link``, ``answer_unbind``;
* ``receipts`` (send a deliver_sm receipt after each accepted submit),
  ``receipt_first`` (receipt before the submit_sm_resp), ``receipt_delay``
  (receipt that long after the response), ``message_id(n)`` and
  ``receipt_id(message_id)`` to shape the ids (hex in one, decimal in the other).

``inject(raw)`` writes raw bytes to live connections; ``unbind_all()`` and
``enquire_all()`` send an SMSC-initiated unbind / enquire_link; ``send_deliver``
sends one deliver_sm. ``wait_until(predicate, timeout)`` waits on the recorded
state without sleeping blindly.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from smsblast.smpp import pdu as P
from smsblast.smpp.codec import encode
from smsblast.smpp.constants import RESPONSE_BIT, CommandId, Status
from smsblast.smpp.session import Role, Session, State, Violation

BASE_MESSAGE_ID = 0x04000000086ECD50  # SMPP-FACTS test vector: decimal 288230376293190992

_BIND_MODE = {
    CommandId.BIND_TRANSCEIVER: "transceiver",
    CommandId.BIND_TRANSMITTER: "transmitter",
    CommandId.BIND_RECEIVER: "receiver",
}


def hex_message_id(n: int) -> str:
    """The n-th message id, 16 upper-case hex digits (like many real SMSCs)."""
    return f"{BASE_MESSAGE_ID + n:016X}"


def same_id(message_id: str) -> str:
    return message_id


def receipt_text(message_id: str, stat: str = "DELIVRD") -> bytes:
    return (
        f"id:{message_id} sub:001 dlvrd:001 submit date:2401011200 "
        f"done date:2401011200 stat:{stat} err:000 text:scripted"
    ).encode("ascii")


@dataclass
class ConnRecord:
    """What one TCP connection saw (kept after it closes)."""

    index: int
    opened_at: float
    closed_at: float | None = None
    bind_mode: str = ""
    bound: bool = False
    submits_received: int = 0
    submits_answered: int = 0
    max_outstanding: int = 0
    unanswered_at_close: int | None = None

    @property
    def outstanding(self) -> int:
        return self.submits_received - self.submits_answered


@dataclass
class ScriptedSmsc:
    # ---------------------------------------------------------------- knobs
    system_id: str | None = "esme"
    password: str | None = "secret"
    bind_status: int = Status.ROK
    accept_and_close: bool = False
    default_status: int = Status.ROK
    statuses_by_destination: dict[str, int] = field(default_factory=dict)
    nack_by_destination: dict[str, int] = field(default_factory=dict)
    drop: Callable[[int], bool] | None = None
    response_delay: float = 0.0
    reverse: bool = False
    close_after_submits: int | None = None
    answer_enquire_link: bool = True
    answer_unbind: bool = True
    receipts: bool = False
    receipt_first: bool = False
    receipt_delay: float = 0.0
    message_id: Callable[[int], str] = hex_message_id
    receipt_id: Callable[[str], str] = same_id
    ssl_context: ssl.SSLContext | None = None

    # ---------------------------------------------------------------- records
    conns: list[ConnRecord] = field(default_factory=list)
    submits: list[P.SubmitSm] = field(default_factory=list)
    submit_times: list[float] = field(default_factory=list)  # loop.time() of each submit read
    bind_requests: list[tuple[str, str, int]] = field(default_factory=list)  # mode, id, status
    enquire_links: int = 0
    unbinds: int = 0
    unbind_resps_sent: int = 0
    unbind_resps_received: int = 0
    enquire_link_resps_received: list[int] = field(default_factory=list)  # seqs
    deliver_acks: list[tuple[int, int]] = field(default_factory=list)  # (seq, status)
    deliver_sent: list[int] = field(default_factory=list)  # seqs of deliver_sm written
    generic_nacks_received: list[tuple[int, int]] = field(default_factory=list)
    violations: list[Exception] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # ordered log: "submit", "unbind", ...
    id_by_destination: dict[str, str] = field(default_factory=dict)  # accepted submits
    max_batch: int = 0  # most submit responses written in one batch

    # ---------------------------------------------------------------- plumbing
    host: str = "127.0.0.1"
    port: int = 0
    _server: asyncio.base_events.Server | None = None
    _protocols: list[_SmscProtocol] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _n_messages: int = 0

    async def start(self) -> ScriptedSmsc:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _SmscProtocol(self), self.host, 0, ssl=self.ssl_context
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for proto in list(self._protocols):
                proto.abort()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def __aenter__(self) -> ScriptedSmsc:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- queries
    @property
    def connections(self) -> int:
        return len(self.conns)

    @property
    def destinations(self) -> list[str]:
        return [s.destination_addr for s in self.submits]

    @property
    def max_outstanding(self) -> int:
        return max((c.max_outstanding for c in self.conns), default=0)

    @property
    def binds_ok(self) -> int:
        return sum(1 for _, _, status in self.bind_requests if status == Status.ROK)

    def live(self) -> list[_SmscProtocol]:
        return [p for p in self._protocols if not p.closed]

    def notify(self) -> None:
        self._changed.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds (re-checked on every recorded event).

        Raises:
            TimeoutError: it did not hold within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    # also re-check on the client's own progress, at a coarse pace
                    await asyncio.wait_for(self._changed.wait(), 0.05)

    # ---------------------------------------------------------------- actions
    def inject(self, raw: bytes, conn_index: int | None = None) -> None:
        """Write raw bytes on every live connection (or only on ``conns[conn_index]``)."""
        for proto in self.live():
            if conn_index is None or proto.record.index == conn_index:
                proto.write(raw)

    def unbind_all(self) -> None:
        for proto in self.live():
            if proto.session.state in (State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX):
                seq = proto.session.next_sequence()
                proto.write(proto.session.send(P.Unbind(sequence_number=seq)))

    def enquire_all(self) -> list[int]:
        """Send an SMSC-initiated enquire_link on every live connection; return the seqs."""
        seqs = []
        for proto in self.live():
            seq = proto.session.next_sequence()
            proto.write(proto.session.send(P.EnquireLink(sequence_number=seq)))
            seqs.append(seq)
        return seqs

    def send_deliver(self, pdu: P.DeliverSm) -> int:
        """Send one deliver_sm on the first live receiving connection; return its seq."""
        for proto in self.live():
            if proto.session.can_send(CommandId.DELIVER_SM):
                return proto.send_deliver(pdu)
        raise RuntimeError("no connection bound to receive deliver_sm")

    def next_message_id(self) -> str:
        n = self._n_messages
        self._n_messages += 1
        return self.message_id(n)


class _SmscProtocol(asyncio.Protocol):
    def __init__(self, smsc: ScriptedSmsc) -> None:
        self.smsc = smsc
        self.loop = asyncio.get_running_loop()
        self.session = Session(Role.SMSC)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.record = ConnRecord(index=len(smsc.conns), opened_at=self.loop.time())
        self._timers: list[asyncio.TimerHandle] = []

    # ---------------------------------------------------------------- asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.smsc.conns.append(self.record)
        self.smsc._protocols.append(self)
        self.smsc.events.append("connect")
        self.smsc.notify()
        if self.smsc.accept_and_close:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        for timer in self._timers:
            timer.cancel()
        rec = self.record
        rec.closed_at = self.loop.time()
        rec.unanswered_at_close = rec.outstanding
        with contextlib.suppress(ValueError):
            self.smsc._protocols.remove(self)
        self.smsc.events.append("disconnect")
        self.smsc.notify()

    def data_received(self, data: bytes) -> None:
        responses: list[tuple[bytes, bool, P.SubmitSm | None]] = []  # bytes, is_submit, req
        for event in self.session.receive_data(data):
            if isinstance(event, Violation):
                self.smsc.violations.append(event.error)
                if event.reply is not None:
                    self.write(encode(event.reply))
                if event.fatal:
                    self.abort()
                    return
                continue
            self._handle(event, responses)
        if responses:
            batch = responses[::-1] if self.smsc.reverse else responses
            if self.smsc.response_delay > 0:
                self._timers.append(
                    self.loop.call_later(self.smsc.response_delay, self._write_batch, batch)
                )
            else:
                self._write_batch(batch)
        limit = self.smsc.close_after_submits
        if limit is not None and self.record.submits_received >= limit:
            self.close()
        self.smsc.notify()

    # ---------------------------------------------------------------- decisions
    def _handle(self, pdu: P.Pdu, responses: list[tuple[bytes, bool, P.SubmitSm | None]]) -> None:
        smsc = self.smsc
        cid = pdu.command_id
        if cid in _BIND_MODE:
            assert isinstance(pdu, P.BindTransceiver | P.BindTransmitter | P.BindReceiver)
            status = smsc.bind_status
            if status == Status.ROK and smsc.system_id is not None:
                if pdu.system_id != smsc.system_id:
                    status = Status.RINVSYSID
                elif smsc.password is not None and pdu.password != smsc.password:
                    status = Status.RINVPASWD
            mode = _BIND_MODE[CommandId(cid)]
            smsc.bind_requests.append((mode, pdu.system_id, status))
            resp_cls = P.PDU_BY_COMMAND_ID[cid | RESPONSE_BIT]
            resp = resp_cls(  # type: ignore[call-arg]
                sequence_number=pdu.sequence_number, command_status=status, system_id="SCRIPTED"
            )
            self.write(self.session.send(resp))
            if status == Status.ROK:
                self.record.bind_mode = mode
                self.record.bound = True
                smsc.events.append(f"bind {mode}")
            else:
                smsc.events.append(f"bind refused 0x{status:02X}")
        elif isinstance(pdu, P.SubmitSm):
            index = self.record.submits_received
            self.record.submits_received += 1
            self.record.max_outstanding = max(self.record.max_outstanding, self.record.outstanding)
            smsc.submits.append(pdu)
            smsc.submit_times.append(self.loop.time())
            smsc.events.append("submit")
            if smsc.drop is not None and smsc.drop(index):
                return
            dest = pdu.destination_addr
            if dest in smsc.nack_by_destination:
                nack = P.GenericNack(
                    sequence_number=pdu.sequence_number,
                    command_status=smsc.nack_by_destination[dest],
                )
                responses.append((encode(nack), True, None))
                return
            status = smsc.statuses_by_destination.get(dest, smsc.default_status)
            if status == Status.ROK:
                message_id = smsc.next_message_id()
                smsc.id_by_destination[dest] = message_id
                resp = P.SubmitSmResp(sequence_number=pdu.sequence_number, message_id=message_id)
                responses.append((encode(resp), True, pdu))
            else:
                resp = P.SubmitSmResp(sequence_number=pdu.sequence_number, command_status=status)
                responses.append((encode(resp), True, None))
        elif isinstance(pdu, P.EnquireLink):
            smsc.enquire_links += 1
            smsc.events.append("enquire_link")
            if smsc.answer_enquire_link:
                self.write(
                    self.session.send(P.EnquireLinkResp(sequence_number=pdu.sequence_number))
                )
        elif isinstance(pdu, P.Unbind):
            smsc.unbinds += 1
            smsc.events.append("unbind")
            if smsc.answer_unbind:
                self.write(self.session.send(P.UnbindResp(sequence_number=pdu.sequence_number)))
                smsc.unbind_resps_sent += 1
        elif isinstance(pdu, P.UnbindResp):
            smsc.unbind_resps_received += 1
            smsc.events.append("unbind_resp")
        elif isinstance(pdu, P.EnquireLinkResp):
            smsc.enquire_link_resps_received.append(pdu.sequence_number)
            smsc.events.append("enquire_link_resp")
        elif isinstance(pdu, P.DeliverSmResp):
            smsc.deliver_acks.append((pdu.sequence_number, pdu.command_status))
            smsc.events.append("deliver_sm_resp")
        elif isinstance(pdu, P.GenericNack):
            smsc.generic_nacks_received.append((pdu.sequence_number, pdu.command_status))
            smsc.events.append("generic_nack")
        # anything else: nothing to do

    def _write_batch(self, batch: list[tuple[bytes, bool, P.SubmitSm | None]]) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            return
        smsc = self.smsc
        out: list[bytes] = []
        later: list[bytes] = []  # receipts sent receipt_delay after their responses
        for data, is_submit, accepted in batch:
            receipt = b""
            if accepted is not None and smsc.receipts:
                receipt = self._receipt_bytes(data, accepted)
            if receipt and smsc.receipt_delay > 0:
                later.append(receipt)
            elif receipt and smsc.receipt_first:
                out.append(receipt)
            out.append(data)
            if receipt and not smsc.receipt_first and smsc.receipt_delay <= 0:
                out.append(receipt)
            if is_submit:
                self.record.submits_answered += 1
                smsc.events.append("submit_resp")
        if later:
            self._timers.append(
                self.loop.call_later(smsc.receipt_delay, self.write, b"".join(later))
            )
        smsc.max_batch = max(smsc.max_batch, sum(1 for _, is_submit, _ in batch if is_submit))
        self.write(b"".join(out))
        smsc.notify()

    def _receipt_bytes(self, resp_bytes: bytes, req: P.SubmitSm) -> bytes:
        """A deliver_sm receipt for the submit whose (encoded) response is resp_bytes."""
        if not self.session.can_send(CommandId.DELIVER_SM):
            return b""
        message_id = resp_bytes[16:].split(b"\x00", 1)[0].decode("ascii")
        pdu = P.DeliverSm(
            sequence_number=self.session.next_sequence(),
            source_addr=req.destination_addr,
            source_addr_ton=req.dest_addr_ton,
            source_addr_npi=req.dest_addr_npi,
            destination_addr=req.source_addr,
            dest_addr_ton=req.source_addr_ton,
            dest_addr_npi=req.source_addr_npi,
            esm_class=0x04,
            short_message=receipt_text(self.smsc.receipt_id(message_id)),
        )
        self.smsc.deliver_sent.append(pdu.sequence_number)
        return self.session.send(pdu)

    # ---------------------------------------------------------------- io helpers
    def send_deliver(self, pdu: P.DeliverSm) -> int:
        seq = self.session.next_sequence()
        data = self.session.send(
            P.DeliverSm(
                sequence_number=seq,
                source_addr=pdu.source_addr,
                destination_addr=pdu.destination_addr,
                esm_class=pdu.esm_class,
                short_message=pdu.short_message,
                tlvs=pdu.tlvs,
            )
        )
        self.smsc.deliver_sent.append(seq)
        self.write(data)
        return seq

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing() and data:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


__all__ = [
    "BASE_MESSAGE_ID",
    "ConnRecord",
    "ScriptedSmsc",
    "hex_message_id",
    "receipt_text",
    "same_id",
]
