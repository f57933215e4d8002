"""The simulated SMSC: an asyncio Protocol per connection around the sans-IO SMSC session.

Theory of operation
-------------------
Each TCP connection is a :class:`SmscConnection` (an ``asyncio.Protocol``). Its
``data_received`` feeds a :class:`FrameDecoder` and walks the complete frames:

* submit_sm on a bound transmitter/transceiver takes the fast path
  (:func:`smsblast.smpp.fast.parse_submit_sm`, struct-packed responses);
* deliver_sm_resp is matched to the receipt it acknowledges;
* everything else goes through :meth:`Session.receive_frame`, which enforces the state table
  (submit before bind -> ESME_RINVBNDSTS) and answers malformed PDUs.

Every byte to send is appended to the connection's ``out`` list and written once at the end
of the read (or of the timer tick): one ``write`` per loop pass, not per PDU.

Delays (submit_sm_resp latency, receipt delay) go into one :class:`Wheel` per simulator,
drained by a single timer. Receipts are routed per account: round-robin over the account's
receiver and transceiver binds with room in their deliver_sm window, else into the
account's queue until a receiver binds or acknowledges.

A submit_sm is decided in this order: window full (ESME_RMSGQFUL, answered at once), magic
destination (forced status or no answer), injected error rate, then the TPS limits of the
bind and the account (ESME_RTHROTTLED, answered at once). Only submits that reach ESME_ROK
count toward the TPS windows, so a window's count is exactly the number accepted.

Randomness: one ``random.Random`` per bind, seeded from ``(seed, system_id, bind index)``,
so a seeded run draws the same latencies, errors and outcomes for the same traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import struct
import time
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from prometheus_client import CollectorRegistry

from smsblast.simulator.dedup import fingerprint
from smsblast.simulator.profile import NO_ANSWER, Account, Limits, Profile
from smsblast.simulator.render import (
    MinuteClock,
    ReceiptFactory,
    id_format_spec,
    message_key,
    receipt_text_sample,
    submit_sm_resp,
)
from smsblast.simulator.stats import (
    AccountStats,
    BindStats,
    account_dict,
    bind_dict,
    status_counts,
)
from smsblast.simulator.wheel import Wheel
from smsblast.smpp.codec import Frame, FrameDecoder, encode
from smsblast.smpp.constants import CommandId, Status
from smsblast.smpp.errors import FramingError, PduError
from smsblast.smpp.fast import SubmitView, parse_submit_sm
from smsblast.smpp.pdu import (
    NO_TLVS,
    BindReceiver,
    BindReceiverResp,
    BindRequest,
    BindResponse,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Unbind,
    UnbindResp,
)
from smsblast.smpp.receipt import ReceiptState, stat_text
from smsblast.smpp.session import CAN_SUBMIT, Role, Session, State, Violation, error_reply

__all__ = ["Simulator", "SmscConnection"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">IIII")
_pack_header = _HEADER.pack
_SUBMIT_SM = int(CommandId.SUBMIT_SM)
_DELIVER_SM = int(CommandId.DELIVER_SM)
_DELIVER_SM_RESP = int(CommandId.DELIVER_SM_RESP)
_UNLIMITED = 1 << 62
_DELIVERED = int(ReceiptState.DELIVERED)

_BIND_REQUESTS = (BindTransmitter, BindReceiver, BindTransceiver)
_BIND_TYPES: dict[int, tuple[str, type[BindResponse]]] = {
    CommandId.BIND_TRANSMITTER: ("transmitter", BindTransmitterResp),
    CommandId.BIND_RECEIVER: ("receiver", BindReceiverResp),
    CommandId.BIND_TRANSCEIVER: ("transceiver", BindTransceiverResp),
}
_RECEIVES = frozenset({"receiver", "transceiver"})

#: (deliver_sm body without header, message_state)
ReceiptRec = tuple[bytes, int]

# Reasons to stop reading a socket (bit mask).
_PAUSE_SLOW_READER = 1
_PAUSE_BACKPRESSURE = 2


class _AccountRuntime:
    """Live state of one account: its binds, receivers and waiting receipts."""

    __slots__ = (
        "active",
        "bind_seq",
        "cfg",
        "limits",
        "pending",
        "receivers",
        "rr",
        "scheduled",
        "sim",
        "stats",
        "tps",
    )

    def __init__(self, sim: Simulator, cfg: Account, limits: Limits) -> None:
        self.sim = sim
        self.cfg = cfg
        self.limits = limits
        self.tps = limits.tps_per_account or _UNLIMITED
        self.stats = AccountStats(cfg.system_id, sim.profile.dedup)
        self.active: list[SmscConnection] = []
        self.receivers: list[SmscConnection] = []
        self.rr = 0
        self.pending: deque[ReceiptRec] = deque()
        self.scheduled = 0
        self.bind_seq = 0

    def deliver(self, rec: ReceiptRec) -> None:
        """Send a receipt on a receiver with room, else queue it."""
        receivers = self.receivers
        if self.pending:  # keep the order: queued receipts go first
            self.enqueue(rec)
            if receivers:
                self.drain()
            return
        if receivers:
            window = self.sim.receipt_window
            n = len(receivers)
            for _ in range(n):
                i = self.rr % n
                self.rr = i + 1
                conn = receivers[i]
                if len(conn.unacked) < window:
                    conn.send_receipt(rec)
                    return
        self.enqueue(rec)

    def enqueue(self, rec: ReceiptRec) -> None:
        if len(self.pending) >= self.sim.profile.receipts.queue_limit:
            self.stats.receipts_dropped += 1
        else:
            self.pending.append(rec)

    def drain(self) -> None:
        """Move queued receipts to receivers with room in their window."""
        pending = self.pending
        window = self.sim.receipt_window
        for conn in self.receivers:
            room = window - len(conn.unacked)
            while room > 0 and pending:
                conn.send_receipt(pending.popleft())
                room -= 1
            if not pending:
                return


class SmscConnection(asyncio.Protocol):
    """One client connection (see the module docstring)."""

    __slots__ = (
        "account",
        "bstats",
        "closing",
        "decoder",
        "held",
        "max_outstanding",
        "out",
        "outstanding",
        "pause",
        "pdus_since_bind",
        "peer",
        "rng",
        "session",
        "sim",
        "timers",
        "tps",
        "transport",
        "unacked",
    )

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.session = Session(Role.SMSC, max_pdu_length=sim.profile.max_pdu_length)
        self.decoder = FrameDecoder(sim.profile.max_pdu_length)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.out: list[bytes] = []
        self.account: _AccountRuntime | None = None
        self.bstats: BindStats | None = None
        self.rng = random.Random()
        self.tps = _UNLIMITED
        self.max_outstanding = _UNLIMITED
        self.outstanding = 0
        self.unacked: dict[int, ReceiptRec] = {}
        self.closing = False
        self.pause = 0
        self.held = False  # frames left in the decoder while reading is paused
        self.pdus_since_bind = 0
        self.timers: dict[str, asyncio.TimerHandle] = {}  # one per purpose

    # ------------------------------------------------------------------ transport events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport = transport
        transport.set_write_buffer_limits(high=4 << 20)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = f"{peer[0]}:{peer[1]}"
        self.sim.connections.add(self)
        self.sim.counters["connections"] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.shutdown("peer closed" if exc is None else f"connection lost: {exc}")
        self.sim.connections.discard(self)
        self.transport = None

    def pause_writing(self) -> None:
        self._pause_reading(_PAUSE_BACKPRESSURE)

    def resume_writing(self) -> None:
        self._resume_reading(_PAUSE_BACKPRESSURE)

    def data_received(self, data: bytes) -> None:
        sim = self.sim
        try:
            self.process(data)
        except Exception:
            log.exception("simulator: internal error on %s; closing it", self.peer)
            sim.counters["internal_errors"] += 1
            self.shutdown("internal error")
        sim.flush()
        if sim.wheel.size:
            sim.arm()

    # ------------------------------------------------------------------ output
    def emit(self, data: bytes) -> None:
        out = self.out
        if not out:
            self.sim.dirty.append(self)
        out.append(data)

    def send_receipt(self, rec: ReceiptRec) -> None:
        seq = self.session.next_sequence()
        body = rec[0]
        self.emit(_pack_header(16 + len(body), _DELIVER_SM, 0, seq) + body)
        self.unacked[seq] = rec
        bstats = self.bstats
        if bstats is not None:
            bstats.receipts_sent += 1

    # ------------------------------------------------------------------ input
    def process(self, data: bytes) -> None:
        """Handle every complete frame in the stream so far."""
        if self.closing:
            return
        sim = self.sim
        now = sim.loop.time()
        wall = time.time()
        bstats = self.bstats
        acct = self.account
        if bstats is not None and acct is not None:
            bstats.window.expire(now)
            acct.stats.window.expire(now)
        drain = False
        decoder = self.decoder
        try:
            decoder.feed(data)
            for frame in decoder.frames():
                cid = frame.command_id
                if cid == _SUBMIT_SM and self.session.state in CAN_SUBMIT:
                    self.on_submit(frame, now, wall)
                elif cid == _DELIVER_SM_RESP and self.bstats is not None:
                    self.on_deliver_sm_resp(frame)
                    drain = True
                else:
                    was_bound = self.bstats is not None
                    self.on_other(frame)
                    if not was_bound:
                        continue
                if self.closing:
                    break
                if self.bstats is not None:
                    self.bstats.pdus_in += 1
                    self.pdus_since_bind += 1
                    if sim.pdu_faults and self.after_pdu():
                        break
        except FramingError as exc:
            sim.counters["framing_errors"] += 1
            log.info("simulator: %s lost framing (%s); closing it", self.peer, exc)
            self.emit(encode(GenericNack(command_status=exc.status)))
            self.shutdown(f"framing error: {exc}")
        finally:
            self.held = bool(self.pause) and decoder.buffered >= 16
            bstats = self.bstats
            acct = self.account
            if bstats is not None and acct is not None:
                bstats.window.commit(now)
                acct.stats.window.commit(now)
                if drain and acct.pending:
                    acct.drain()

    def after_pdu(self) -> bool:
        """Apply PDU-count faults; True to stop processing this read."""
        faults = self.sim.profile.faults
        n = self.pdus_since_bind
        if faults.drop_after_pdus is not None and n >= faults.drop_after_pdus:
            self.sim.counters["fault_drops"] += 1
            self.shutdown(f"fault: drop after {n} PDUs")
            return True
        slow = faults.slow_reader
        if slow is not None and slow.after_pdus is not None and n % slow.after_pdus == 0:
            self.slow_read(slow.pause_ms / 1000.0)
            return True
        return False

    def on_submit(self, frame: Frame, now: float, wall: float) -> None:
        sim = self.sim
        bstats = self.bstats
        acct = self.account
        assert bstats is not None and acct is not None
        counts = bstats.submits
        try:
            view = parse_submit_sm(frame)
        except PduError as exc:
            bstats.malformed += 1
            counts[exc.status] = counts.get(exc.status, 0) + 1
            self.emit(sim.malformed_reply(frame, exc))
            return
        seq = view.sequence_number
        if self.outstanding >= self.max_outstanding:
            bstats.window_full += 1
            counts[Status.RMSGQFUL] = counts.get(Status.RMSGQFUL, 0) + 1
            self.emit(submit_sm_resp(seq, Status.RMSGQFUL, b""))
            return
        status = 0
        if sim.magic:
            forced = sim.magic.get(view.destination_addr)
            if forced is not None:
                if forced == NO_ANSWER:
                    bstats.no_answer += 1
                    return
                status = forced
        rng = self.rng
        if not status and sim.error_table:
            r = rng.random()
            for threshold, code in sim.error_table:
                if r < threshold:
                    status = code
                    break
        message_id = b""
        counter = 0
        if not status:
            bwin = bstats.window
            awin = acct.stats.window
            if bwin.total >= self.tps:
                bstats.throttled_bind += 1
                status = Status.RTHROTTLED
            elif awin.total >= acct.tps:
                bstats.throttled_account += 1
                status = Status.RTHROTTLED
            if status:
                counts[status] = counts.get(status, 0) + 1
                self.emit(submit_sm_resp(seq, status, b""))
                return
            bwin.total += 1
            bwin.pending += 1
            awin.total += 1
            awin.pending += 1
            counter = sim.next_id
            sim.next_id = counter + 1
            message_id = format(counter, sim.resp_spec).encode("ascii")
            if sim.dedup:
                self.track(acct.stats, view.destination_addr, view)
        latency = sim.latency_fixed
        if latency is None:
            latency = sim.profile.latency.sample_s(rng)
        data = submit_sm_resp(seq, status, message_id)
        counts[status] = counts.get(status, 0) + 1
        if latency <= 0:
            self.emit(data)
        else:
            self.outstanding += 1
            sim.wheel.add_response(now + latency, (self, data))
        if not status and sim.receipts_on and view.registered_delivery & 3:
            self.make_receipt(view, counter, message_id, now, wall, latency)

    def track(self, stats: AccountStats, destination: str, view: SubmitView) -> None:
        """Count unique destinations and duplicates (same destination and same text)."""
        dest = destination.encode("latin-1")
        tlvs = view.tlvs
        payload = None
        segment = None
        if tlvs is not NO_TLVS:
            payload = tlvs.message_payload
            if tlvs.sar_segment_seqnum is not None and tlvs.sar_total_segments is not None:
                segment = (tlvs.sar_segment_seqnum, tlvs.sar_total_segments)
        key = message_key(dest, view.short_message, view.esm_class, payload, segment)
        assert stats.messages is not None and stats.destinations is not None
        if not stats.messages.add(fingerprint(key)):
            stats.duplicates += 1
        stats.destinations.add(fingerprint(dest))

    def make_receipt(
        self,
        view: SubmitView,
        counter: int,
        message_id: bytes,
        now: float,
        wall: float,
        latency: float,
    ) -> None:
        sim = self.sim
        acct = self.account
        assert acct is not None
        rd = view.registered_delivery & 3
        outcomes = sim.outcomes
        if len(outcomes) == 1:
            _t, state, stat, err = outcomes[0]
        else:
            r = self.rng.random() * sim.outcome_total
            _t, state, stat, err = outcomes[-1]
            for outcome in outcomes:
                if r < outcome[0]:
                    _t, state, stat, err = outcome
                    break
        delivered = state == _DELIVERED
        if (rd == 2 and delivered) or (rd == 3 and not delivered):
            return
        delay = sim.receipt_delay_fixed
        if delay is None:
            delay = sim.profile.receipts.delay.sample_s(self.rng)
        rid = message_id if sim.same_id_format else format(counter, sim.rcpt_spec).encode()
        payload = view.short_message
        if not payload and view.tlvs.message_payload is not None:
            payload = view.tlvs.message_payload
        body = sim.receipt_factory.body(
            view.destination_addr,
            view.source_addr,
            rid,
            stat,
            err,
            sim.submit_clock(wall),
            sim.done_clock(wall + latency + delay),
            receipt_text_sample(payload, view.esm_class, view.data_coding),
            state,
        )
        gen = acct.stats.receipts_generated
        gen[state] = gen.get(state, 0) + 1
        due = (now if sim.receipt_race else now + latency) + delay
        rec = (body, state)
        if due <= now:
            acct.deliver(rec)
        else:
            acct.scheduled += 1
            sim.wheel.add_receipt(due, (acct, rec))

    def on_deliver_sm_resp(self, frame: Frame) -> None:
        rec = self.unacked.pop(frame.sequence_number, None)
        bstats = self.bstats
        assert bstats is not None and self.account is not None
        if rec is None:
            self.account.stats.receipts_stray += 1
        elif frame.command_status == 0:
            bstats.receipts_acked += 1
        else:
            bstats.receipts_failed += 1

    def on_other(self, frame: Frame) -> None:
        sim = self.sim
        session = self.session
        cid = frame.command_id
        if cid in _BIND_TYPES and session.state is not State.OPEN:
            sim.counters["protocol_errors"] += 1
            self.emit(encode(error_reply(cid, frame.sequence_number, Status.RALYBND)))
            return
        event = session.receive_frame(frame)
        if isinstance(event, Violation):
            sim.counters["protocol_errors"] += 1
            err = event.error
            if event.reply is None:
                return
            if isinstance(err, PduError) and err.status != Status.RINVBNDSTS:
                # a malformed body (the state check is the only RINVBNDSTS source)
                self.emit(sim.malformed_reply(frame, err))
            else:
                self.emit(encode(event.reply))
            return
        if isinstance(event, _BIND_REQUESTS):
            self.on_bind(event)
        elif isinstance(event, EnquireLink):
            self.emit(session.send(EnquireLinkResp(sequence_number=event.sequence_number)))
        elif isinstance(event, Unbind):
            self.emit(session.send(UnbindResp(sequence_number=event.sequence_number)))
            self.unregister("unbound")
        # enquire_link_resp, unbind_resp, generic_nack from the client: nothing to do

    # ------------------------------------------------------------------ binds
    def on_bind(self, pdu: BindRequest) -> None:
        sim = self.sim
        bind_type, resp_cls = _BIND_TYPES[pdu.command_id]
        acct = sim.accounts.get(pdu.system_id)
        status: int = Status.ROK
        if acct is None:
            status = Status.RINVSYSID
        elif pdu.password != acct.cfg.password:
            status = Status.RINVPASWD
        elif bind_type not in acct.cfg.bind_types or len(acct.active) >= acct.cfg.max_binds:
            status = Status.RBINDFAIL
        resp = resp_cls(
            sequence_number=pdu.sequence_number,
            command_status=status,
            system_id=sim.profile.system_id,
        )
        self.emit(self.session.send(resp))
        if status:
            failures = acct.stats.bind_failures if acct is not None else sim.unknown_bind_failures
            failures[status] = failures.get(status, 0) + 1
            return
        assert acct is not None
        acct.bind_seq += 1
        index = acct.bind_seq
        system_id = acct.cfg.system_id
        bstats = BindStats(system_id, index, bind_type, self.peer, time.time())
        acct.stats.binds[bstats.key] = bstats
        acct.stats.binds_by_type[bind_type] = acct.stats.binds_by_type.get(bind_type, 0) + 1
        seed = sim.profile.seed
        self.rng = (
            random.Random(f"{seed}/{system_id}/{index}") if seed is not None else random.Random()
        )
        self.account = acct
        self.bstats = bstats
        self.tps = acct.limits.tps_per_bind or _UNLIMITED
        self.max_outstanding = acct.limits.max_outstanding or _UNLIMITED
        acct.active.append(self)
        faults = sim.profile.faults
        if faults.drop_every_s is not None:
            self.timers["drop"] = sim.loop.call_later(
                faults.drop_every_s, self.fault_drop, faults.drop_every_s
            )
        if faults.slow_reader is not None and faults.slow_reader.every_s is not None:
            self.timers["slow"] = sim.loop.call_later(
                faults.slow_reader.every_s, self.slow_read_tick
            )
        if bind_type in _RECEIVES:
            acct.receivers.append(self)
            if acct.pending:
                acct.drain()

    def unregister(self, reason: str) -> None:
        """Leave the account (after unbind or on close); requeue unacknowledged receipts."""
        acct = self.account
        bstats = self.bstats
        if acct is None or bstats is None or bstats.state != "bound":
            return
        bstats.state = "unbound" if reason == "unbound" else "closed"
        with contextlib.suppress(ValueError):
            acct.active.remove(self)
        with contextlib.suppress(ValueError):
            acct.receivers.remove(self)

    def shutdown(self, reason: str) -> None:
        """Close this connection (idempotent); flushes what was already emitted."""
        if self.closing:
            return
        self.closing = True
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        self.unregister(reason)
        acct = self.account
        bstats = self.bstats
        if acct is not None and bstats is not None:
            bstats.state = "closed"
            bstats.closed_at = time.time()
            bstats.close_reason = reason
            if self.unacked:
                recs = list(self.unacked.values())
                self.unacked.clear()
                acct.stats.receipts_requeued += len(recs)
                acct.pending.extendleft(reversed(recs))
                if self.sim.running:
                    acct.drain()
            self.sim.retire(acct, bstats)
        transport = self.transport
        if transport is not None:
            if self.out:
                transport.write(b"".join(self.out))
            transport.close()
        self.out.clear()

    # ------------------------------------------------------------------ faults
    def fault_drop(self, after_s: float) -> None:
        self.sim.counters["fault_drops"] += 1
        self.shutdown(f"fault: drop after {after_s:g} s")
        self.sim.flush()

    def slow_read_tick(self) -> None:
        slow = self.sim.profile.faults.slow_reader
        if self.closing or slow is None or slow.every_s is None:
            return
        self.slow_read(slow.pause_ms / 1000.0)
        self.timers["slow"] = self.sim.loop.call_later(slow.every_s, self.slow_read_tick)

    def slow_read(self, pause_s: float) -> None:
        if self.pause & _PAUSE_SLOW_READER or self.closing:
            return
        self.sim.counters["slow_reader_pauses"] += 1
        self._pause_reading(_PAUSE_SLOW_READER)
        self.timers["resume"] = self.sim.loop.call_later(
            pause_s, self._resume_reading, _PAUSE_SLOW_READER
        )

    def _pause_reading(self, reason: int) -> None:
        was = self.pause
        self.pause |= reason
        if not was and self.transport is not None and not self.closing:
            self.transport.pause_reading()

    def _resume_reading(self, reason: int) -> None:
        if not self.pause & reason:
            return
        self.pause &= ~reason
        if self.pause or self.closing or self.transport is None:
            return
        self.transport.resume_reading()
        if self.held:
            self.data_received(b"")


class Simulator:
    """A simulated SMSC. ``async with Simulator(profile) as smsc:`` listens on
    ``smsc.host:smsc.port`` (port 0 in the profile picks a free port)."""

    def __init__(self, profile: Profile | None = None) -> None:
        self.profile = profile if profile is not None else Profile()
        p = self.profile
        self.host, self.port = p.host, p.port
        self.http_port: int | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.connections: set[SmscConnection] = set()
        self.dirty: list[SmscConnection] = []
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "connections",
                "protocol_errors",
                "framing_errors",
                "internal_errors",
                "fault_drops",
                "slow_reader_pauses",
            ),
            0,
        )
        self.unknown_bind_failures: dict[int, int] = {}
        self.accounts: dict[str, _AccountRuntime] = {
            a.system_id: _AccountRuntime(self, a, a.effective(p.limits)) for a in p.accounts
        }
        self.wheel: Wheel[tuple[SmscConnection, bytes], tuple[_AccountRuntime, ReceiptRec]] = Wheel(
            p.tick_ms / 1000.0
        )
        self.next_id = p.ids.start
        self.resp_spec = id_format_spec(p.ids.resp_format, p.ids.hex_width, p.ids.dec_width)
        self.rcpt_spec = id_format_spec(
            p.ids.receipt_format or p.ids.resp_format, p.ids.hex_width, p.ids.dec_width
        )
        self.same_id_format = self.resp_spec == self.rcpt_spec
        self.latency_fixed = p.latency.fixed_s
        self.receipt_delay_fixed = p.receipts.delay.fixed_s
        self.receipts_on = p.receipts.enabled
        self.receipt_window = p.receipts.window
        self.dedup = p.dedup
        self.pdu_faults = p.faults.drop_after_pdus is not None or (
            p.faults.slow_reader is not None and p.faults.slow_reader.after_pdus is not None
        )
        self.magic: dict[str, int] = dict(p.faults.magic_destinations)
        cumulative = 0.0
        self.error_table: list[tuple[float, int]] = []
        for code, rate in sorted(p.faults.error_rates.items()):
            if rate > 0:
                cumulative += rate
                self.error_table.append((cumulative, code))
        self.outcomes: list[tuple[float, int, bytes, bytes]] = []
        total = 0.0
        for stat, weight in p.receipts.outcomes.items():
            if weight > 0:
                total += weight
                err = p.receipts.err_codes.get(stat, "000")
                self.outcomes.append((total, _state_of(stat), stat.encode(), err.encode()))
        self.receipt_factory = ReceiptFactory(p.receipts.tlvs)
        self.receipt_race = p.receipts.receipt_before_resp
        self.outcome_total = total
        self.submit_clock = MinuteClock()
        self.done_clock = MinuteClock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._http: asyncio.Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self.started_at = 0.0
        self.stopped = asyncio.Event()

    @property
    def running(self) -> bool:
        """Started and not yet stopping."""
        return self._server is not None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("simulator not started")
        return self._loop

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Listen for SMPP (and HTTP, if configured).

        Raises:
            OSError: an address cannot be bound.
        """
        from smsblast.simulator.http import start_http
        from smsblast.simulator.metrics import register_collector

        self._loop = asyncio.get_running_loop()
        self.started_at = time.time()
        self._server = await self._loop.create_server(
            lambda: SmscConnection(self), self.profile.host, self.profile.port
        )
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]
        register_collector(self)
        http = self.profile.http
        if http.port is not None:
            self._http = await start_http(self, http.host, http.port)
            self.http_port = self._http.sockets[0].getsockname()[1]
        log.info("simulator listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening, close every connection, write the stats file (if configured)."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        for conn in list(self.connections):
            conn.shutdown("simulator stopped")
        if self._http is not None:
            self._http.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await server.wait_closed()
        if self._http is not None:
            await self._http.wait_closed()
            self._http = None
        if self.profile.stats_file:
            self.write_stats(self.profile.stats_file)
        self.stopped.set()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def write_stats(self, path: str | Path) -> None:
        """Write :meth:`stats` as JSON (atomically: temp file, then rename)."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.stats(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(target)

    # ------------------------------------------------------------------ output & timers
    def flush(self) -> None:
        """Write every connection's pending output, one write each."""
        dirty = self.dirty
        if not dirty:
            return
        for conn in dirty:
            out = conn.out
            if out and not conn.closing and conn.transport is not None:
                conn.transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()
        dirty.clear()

    def arm(self) -> None:
        """Make sure the tick timer fires for the earliest due bucket."""
        due = self.wheel.next_due()
        if due is None or not self.running:
            return
        if self._timer is not None:
            if self._timer_when <= due:
                return
            self._timer.cancel()
        self._timer_when = due
        self._timer = self.loop.call_at(due, self._tick)

    def _tick(self) -> None:
        self._timer = None
        try:
            now = self.loop.time()
            for resps, receipts in self.wheel.pop_due(now):
                for conn, data in resps:
                    conn.outstanding -= 1
                    if conn.closing:
                        if conn.bstats is not None:
                            conn.bstats.resps_lost += 1
                    else:
                        conn.emit(data)
                for acct, rec in receipts:
                    acct.scheduled -= 1
                    acct.deliver(rec)
            self.flush()
        except Exception:  # never let one bad item stop the clock for everyone
            log.exception("simulator: internal error in the timer tick")
            self.counters["internal_errors"] += 1
            self.dirty.clear()
        finally:
            if self.wheel.size and self.running:
                self.arm()

    # ------------------------------------------------------------------ helpers
    def malformed_reply(self, frame: Frame, exc: PduError) -> bytes:
        """generic_nack (default) or the request's own response, with the error status."""
        if self.profile.malformed_reply == "response":
            return encode(error_reply(frame.command_id, frame.sequence_number, exc.status))
        return encode(GenericNack(sequence_number=frame.sequence_number, command_status=exc.status))

    def retire(self, acct: _AccountRuntime, bstats: BindStats) -> None:
        """Fold the oldest closed binds into the account total beyond ``bind_history``."""
        stats = acct.stats
        closed = [b for b in stats.binds.values() if b.closed_at is not None]
        excess = len(closed) - self.profile.bind_history
        for b in closed[: max(excess, 0)]:
            b.fold_into(stats.retired)
            stats.retired_count += 1
            del stats.binds[b.key]

    # ------------------------------------------------------------------ observation
    def stats(self) -> dict[str, Any]:
        """The JSON stats document (see docs/simulator.md)."""
        now = self.loop.time() if self._loop is not None else 0.0
        wall = time.time()
        accounts: dict[str, Any] = {}
        binds: dict[str, Any] = {}
        outstanding = {id(c.bstats): c.outstanding for c in self.connections if c.bstats}
        in_flight = {id(c.bstats): len(c.unacked) for c in self.connections if c.bstats}
        for system_id, acct in self.accounts.items():
            accounts[system_id] = account_dict(
                acct.stats,
                active_binds=len(acct.active),
                pending=len(acct.pending),
                scheduled=acct.scheduled,
                in_flight=sum(len(c.unacked) for c in acct.receivers),
            )
            for b in acct.stats.binds.values():
                entry = bind_dict(b, now, wall, outstanding=outstanding.get(id(b), 0))
                entry["receipts"]["in_flight"] = in_flight.get(id(b), 0)
                binds[b.key] = entry
        totals: dict[str, Any] = {
            "submits_received": sum(a["submits"]["received"] for a in accounts.values()),
            "submits_accepted": sum(a["submits"]["accepted"] for a in accounts.values()),
            "throttled": sum(
                a["throttled"]["bind"] + a["throttled"]["account"] for a in accounts.values()
            ),
            "receipts_generated": sum(a["receipts"]["generated"] for a in accounts.values()),
            "receipts_sent": sum(a["receipts"]["sent"] for a in accounts.values()),
            "duplicates": sum(a["duplicates"] or 0 for a in accounts.values()),
        }
        return {
            "simulator": {
                "listen": f"{self.host}:{self.port}",
                "seed": self.profile.seed,
                "started_at": round(self.started_at, 3),
                "uptime_s": round(wall - self.started_at, 3) if self.started_at else 0.0,
                "connections_active": len(self.connections),
                **self.counters,
                "bind_failures_unknown_account": status_counts(self.unknown_bind_failures),
            },
            "totals": totals,
            "accounts": accounts,
            "binds": binds,
        }


def _state_of(stat: str) -> int:
    for state in ReceiptState:
        if stat_text(state) == stat:
            return int(state)
    raise ValueError(stat)
