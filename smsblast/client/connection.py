"""One TCP connection of an ESME: the only code that reads and writes its socket.

Theory of operation
-------------------
:class:`EsmeConnection` is an ``asyncio.Protocol``. ``data_received`` is the
bind's single reader: it cuts frames with the session's decoder, completes
submit_sm requests in the :class:`Window` straight from the frame (the hot path
skips building a dataclass for submit_sm_resp), and hands every other PDU to
the sans-IO :class:`Session`, which checks it against the state table.

Writes are batched: ``send_*`` appends bytes to a buffer and, once per event
loop pass, ``_flush`` hands the whole buffer to the transport in one call (a
write per PDU costs ~6 us and would halve throughput).

Every request written gets exactly one outcome, delivered through its callback:
a response (accepted / rejected / retryable by status); a response timeout
(UNKNOWN: the SMSC may well have taken it, so resending risks a duplicate);
or, when the connection dies, UNKNOWN if its bytes were handed to the transport
and RETRYABLE if they were still in our buffer (they never left).

A periodic tick (``tick``, driven by the owning :class:`Bind`) expires requests
whose response is overdue, sends enquire_link after ``enquire_link_interval`` of
silence, and closes the connection when an enquire_link goes unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from typing import Any, cast

from smsblast.client.config import BindConfig, BindMode
from smsblast.client.outcome import OutcomeKind, SubmitOutcome, classify_status
from smsblast.client.window import Callback, Window
from smsblast.smpp import pdu as P
from smsblast.smpp.codec import Frame, encode
from smsblast.smpp.constants import CommandId, Status, status_name
from smsblast.smpp.errors import RemoteProtocolError
from smsblast.smpp.fast import (
    DeliverFields,
    SubmitTemplate,
    decode_short_message,
    deliver_fields,
    submit_sm_resp_message_id,
)
from smsblast.smpp.session import Role, Session, State, Violation

log = logging.getLogger("smsblast.client")

_SUBMIT_SM_RESP = int(CommandId.SUBMIT_SM_RESP)
_GENERIC_NACK = int(CommandId.GENERIC_NACK)
_DELIVER_SM = int(CommandId.DELIVER_SM)
_DELIVER_SM_RESP = struct.Struct(">IIII")
_CAN_DELIVER = (State.BOUND_RX, State.BOUND_TRX)
_ACCEPTED = OutcomeKind.ACCEPTED
#: A NamedTuple built without its Python-level ``__new__`` (see smpp.codec): one a response.
_new = tuple.__new__

_BIND_PDU: dict[BindMode, type[P.BindTransmitter | P.BindReceiver | P.BindTransceiver]] = {
    BindMode.TRANSCEIVER: P.BindTransceiver,
    BindMode.TRANSMITTER: P.BindTransmitter,
    BindMode.RECEIVER: P.BindReceiver,
}

DeliverHandler = Callable[[P.DeliverSm], None]
#: Told of each deliver_sm as its receipt fields only (see ``fast.deliver_fields``):
#: the engine's receipt path, which needs no dataclass per receipt.
DeliverFieldsHandler = Callable[[DeliverFields], None]


class BindError(Exception):
    """The SMSC refused the bind (``status``) or did not answer it in time."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConnectionClosed(Exception):
    """The connection is gone; nothing more can be written on it."""


class EsmeConnection(asyncio.Protocol):
    def __init__(
        self,
        config: BindConfig,
        on_deliver: DeliverHandler | None,
        on_deliver_fields: DeliverFieldsHandler | None = None,
    ) -> None:
        """A deliver_sm goes to ``on_deliver_fields`` when it is given, else to
        ``on_deliver``; with neither it is acknowledged and dropped."""
        self.config = config
        self.session = Session(Role.ESME, max_pdu_length=config.max_pdu_length)
        self.window = Window(config.window)
        self.on_deliver = on_deliver
        self.on_deliver_fields = on_deliver_fields
        self.stats: dict[str, int] = {
            "late_responses": 0,
            "violations": 0,
            "delivers": 0,
            "timeouts": 0,
        }
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._out: list[bytes] = []
        self._out_seqs: list[int] = []  # submit seqs whose bytes are still in _out
        self._flush_scheduled = False
        self._slot_waiters: list[asyncio.Future[None]] = []
        self._control: dict[int, asyncio.Future[P.Pdu]] = {}  # seq -> bind/unbind/enquire
        self._last_rx = self._loop.time()
        self._enquire_sent_at: float | None = None
        self._enquire_seq = 0
        self.closed: asyncio.Future[Exception | None] = self._loop.create_future()

    # ------------------------------------------------------------------ protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: cast, don't assert.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self.session.close()
        unsent = set(self._out_seqs)
        self._out.clear()
        self._out_seqs.clear()
        reason = f"connection lost: {exc}" if exc else "connection closed"
        for seq, entry in self.window.fail_all():
            kind = OutcomeKind.RETRYABLE if seq in unsent else OutcomeKind.UNKNOWN
            why = "never written: " + reason if seq in unsent else reason
            entry.callback(entry.context, SubmitOutcome(kind, reason=why))
        for fut in self._control.values():
            if not fut.done():
                fut.set_exception(ConnectionClosed(reason))
        self._control.clear()
        self._wake_slot_waiter()
        if not self.closed.done():
            self.closed.set_result(exc)

    def data_received(self, data: bytes) -> None:
        self._last_rx = now = self._loop.time()
        decoder = self.session._decoder
        try:
            decoder.feed(data)
            window = self.window.pending  # hot path: pop directly
            for frame in decoder.frames():
                if frame.command_id == _SUBMIT_SM_RESP:
                    entry = window.pop(frame.sequence_number, None)
                    if entry is None:
                        self.stats["late_responses"] += 1
                        continue
                    status = frame.command_status
                    if status == 0:
                        outcome = _new(
                            SubmitOutcome,
                            (
                                _ACCEPTED,
                                submit_sm_resp_message_id(frame.body),
                                0,
                                "",
                                now - entry.sent_at,
                            ),
                        )
                    else:
                        outcome = _new(
                            SubmitOutcome,
                            (classify_status(status), "", status, "", now - entry.sent_at),
                        )
                    try:
                        entry.callback(entry.context, outcome)
                    except Exception:  # an application bug must not drop the bind
                        log.exception("%s: submit outcome handler failed", self.config.label())
                elif frame.command_id == _DELIVER_SM and self.session.state in _CAN_DELIVER:
                    self._deliver_fast(frame, now)
                else:
                    self._handle_event(self.session.receive_frame(frame), now)
        except RemoteProtocolError as exc:  # framing lost: close this connection only
            log.warning("%s: closing, stream unusable: %s", self.config.label(), exc)
            self.stats["violations"] += 1
            self.abort()
        self._wake_slot_waiter()

    def _deliver_fast(self, frame: Frame, now: float) -> None:
        """deliver_sm (receipts: one per part sent) without the generic decoder."""
        try:
            if self.on_deliver_fields is not None:
                status = self._call_handler(self.on_deliver_fields, deliver_fields(frame))
            else:
                status = self._deliver(decode_short_message(frame, P.DeliverSm))
        except RemoteProtocolError:
            self._handle_event(self.session.receive_frame(frame), now)  # names the fault
            return
        body = b"\x00" if status == 0 else b""  # error responses carry no body
        self._write(
            _DELIVER_SM_RESP.pack(
                16 + len(body), CommandId.DELIVER_SM_RESP, status, frame.sequence_number
            )
            + body
        )

    def _deliver(self, pdu: P.DeliverSm) -> int:
        """Hand a deliver_sm to the application; the status to acknowledge it with.

        A failing handler must not take the connection down: the deliver_sm is
        answered ESME_RX_T_APPN (temporary application error) so the SMSC sends
        it again later, and the error is logged."""
        if self.on_deliver_fields is not None:
            tlvs = pdu.tlvs
            fields = DeliverFields(
                pdu.esm_class, pdu.short_message, tlvs.receipted_message_id, tlvs.message_state
            )
            return self._call_handler(self.on_deliver_fields, fields)
        if self.on_deliver is None:
            self.stats["delivers"] += 1
            return 0
        return self._call_handler(self.on_deliver, pdu)

    def _call_handler(self, handler: Callable[[Any], None], what: object) -> int:
        self.stats["delivers"] += 1
        try:
            handler(what)
        except Exception:
            self.stats["deliver_handler_errors"] = self.stats.get("deliver_handler_errors", 0) + 1
            log.exception(
                "%s: deliver_sm handler failed; asking the SMSC to retry", self.config.label()
            )
            return int(Status.RX_T_APPN)
        return 0

    def _handle_event(self, event: P.Pdu | Violation, now: float) -> None:
        if isinstance(event, Violation):
            self.stats["violations"] += 1
            log.warning("%s: peer protocol violation: %s", self.config.label(), event.error)
            if event.reply is not None and self.session.state is not State.CLOSED:
                self._write(encode(event.reply))
            if event.fatal:
                self.abort()
            return
        cid = event.command_id
        if isinstance(event, P.DeliverSm):
            status = self._deliver(event)
            self._write(
                self.session.send(
                    P.DeliverSmResp(sequence_number=event.sequence_number, command_status=status)
                )
            )
        elif isinstance(event, P.EnquireLink):
            self._write(self.session.send(P.EnquireLinkResp(sequence_number=event.sequence_number)))
        elif isinstance(event, P.Unbind):
            self._write(self.session.send(P.UnbindResp(sequence_number=event.sequence_number)))
            self._flush()
            self.close_transport()
        elif cid == _GENERIC_NACK and event.sequence_number == self._enquire_seq:
            # Some older SMSCs nack enquire_link: the link is alive all the same.
            self._enquire_sent_at = None
        elif cid == _GENERIC_NACK and event.sequence_number in self.window:
            entry = self.window.complete(event.sequence_number)
            assert entry is not None
            status = event.command_status
            entry.callback(
                entry.context,
                SubmitOutcome(
                    classify_status(status) if status else OutcomeKind.REJECTED,
                    "",
                    status,
                    "generic_nack",
                    now - entry.sent_at,
                ),
            )
        elif event.command_id == CommandId.ENQUIRE_LINK_RESP:
            self._enquire_sent_at = None
            self._resolve_control(event)
        else:
            self._resolve_control(event)

    def _resolve_control(self, pdu: P.Pdu) -> None:
        fut = self._control.pop(pdu.sequence_number, None)
        if fut is not None and not fut.done():
            fut.set_result(pdu)

    # ------------------------------------------------------------------ writing
    def _write(self, data: bytes) -> None:
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        transport = self._transport
        if transport is None or transport.is_closing():
            # The bytes would be dropped silently: keep them, so connection_lost
            # reports these submits as never written (RETRYABLE), not UNKNOWN.
            return
        if self._out:
            transport.write(b"".join(self._out))
        self._out.clear()
        self._out_seqs.clear()

    @property
    def can_submit(self) -> bool:
        return self._transport is not None and self.session.state in (
            State.BOUND_TX,
            State.BOUND_TRX,
        )

    def send_submit(
        self,
        template: SubmitTemplate,
        destination: bytes,
        short_message: bytes,
        callback: Callback,
        context: Any = None,
        esm_class: int = 0,
        data_coding: int = 0,
        tlvs: bytes = b"",
    ) -> int:
        """Write one submit_sm; its outcome reaches ``callback(context, outcome)``.

        The caller must have checked ``window.free > 0`` (see ``wait_slot``).

        Raises:
            ConnectionClosed: not bound for submitting (nothing was written).
            LocalProtocolError: the message does not fit the PDU.
        """
        if not self.can_submit:
            raise ConnectionClosed(f"{self.config.label()}: not bound for submit")
        seq = self.session.next_sequence()
        while seq in self.window:
            seq = self.session.next_sequence()
        data = template.encode(seq, destination, short_message, esm_class, data_coding, tlvs)
        self.window.offer(seq, callback, context, self._loop.time(), self.config.response_timeout)
        self._out_seqs.append(seq)
        self._write(data)
        return seq

    async def wait_slot(self) -> int:
        """Wait until the window has room (or the connection dies); return free slots.

        Any number of tasks may wait; every waiter is woken when slots free up
        and re-checks, so none is left behind."""
        while self.window.free <= 0 and self._transport is not None:
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._slot_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._slot_waiters:
                    self._slot_waiters.remove(waiter)
        if self._transport is None:
            raise ConnectionClosed(f"{self.config.label()}: connection closed")
        return self.window.free

    def _wake_slot_waiter(self) -> None:
        if not self._slot_waiters or (self.window.free <= 0 and self._transport is not None):
            return
        waiters, self._slot_waiters = self._slot_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------ control PDUs
    async def request(self, pdu_factory: Callable[[int], P.Pdu], timeout: float) -> P.Pdu:
        """Send a control request (bind, unbind, enquire_link) and await its response."""
        seq = self.session.next_sequence()
        fut: asyncio.Future[P.Pdu] = self._loop.create_future()
        self._control[seq] = fut
        self._write(self.session.send(pdu_factory(seq)))
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._control.pop(seq, None)

    async def bind(self) -> P.Pdu:
        cfg = self.config
        cls = _BIND_PDU[cfg.mode]
        try:
            resp = await self.request(
                lambda seq: cls(
                    sequence_number=seq,
                    system_id=cfg.system_id,
                    password=cfg.password,
                    system_type=cfg.system_type,
                ),
                cfg.bind_timeout,
            )
        except TimeoutError:
            raise BindError(f"no bind response in {cfg.bind_timeout}s") from None
        if resp.command_status != Status.ROK:
            raise BindError(
                f"bind refused: {status_name(resp.command_status)}",
                resp.command_status,
            )
        return resp

    async def unbind(self, timeout: float) -> None:
        if self.session.state not in (State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX):
            return
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            await self.request(lambda seq: P.Unbind(sequence_number=seq), timeout)

    def tick(self, now: float) -> None:
        """Expire overdue requests; keep the link alive; detect a dead peer."""
        for entry in self.window.expire(now):
            self.stats["timeouts"] += 1
            entry.callback(
                entry.context,
                SubmitOutcome(
                    OutcomeKind.UNKNOWN, reason="response timeout", latency=now - entry.sent_at
                ),
            )
        self._wake_slot_waiter()
        cfg = self.config
        if self._enquire_sent_at is not None:
            if now - self._enquire_sent_at > cfg.response_timeout:
                log.warning("%s: enquire_link unanswered; closing", cfg.label())
                self.abort()
            return
        if now - self._last_rx >= cfg.enquire_link_interval and self.session.can_send(
            CommandId.ENQUIRE_LINK
        ):
            self._enquire_sent_at = now
            self._enquire_seq = seq = self.session.next_sequence()
            self._write(self.session.send(P.EnquireLink(sequence_number=seq)))

    # ------------------------------------------------------------------ teardown
    def close_transport(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
