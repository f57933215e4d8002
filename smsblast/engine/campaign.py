"""One campaign's run: read the segment snapshot, claim, send, record, commit.

Theory of operation
-------------------
At start the campaign's segment is snapshotted (end offset of every partition
of its topics) and the snapshot is stored in the ledger, so a restart finishes
the *same* segment. Recipients the ledger still holds IN_FLIGHT from a crash
are settled first by the ``on_unknown`` policy (skip: UNKNOWN, never risk a
duplicate; resubmit: PENDING, sent again by the backfill loop). While Kafka does
not answer, the run stays ``waiting`` and retries (engine.reconnect); a segment
topic that does not exist, or a Kafka that refuses us, ends the run ``failed``
with the reason, before anything is recorded, and the other campaigns go on.

The read loop takes batches from Kafka and turns each record into exactly one
durable fact in the ledger before its offset may be committed:

* bad record, invalid or unroutable number, missing template field, too many
  parts: REJECTED (and a copy with the reason on ``<campaign>.rejected``);
* number on the opt-out list: SUPPRESSED;
* number already in this campaign (another segment, or a record re-read after a
  restart): nothing new; the ledger's answer to ``claim`` says so;
* otherwise the recipient is claimed PENDING in one ledger transaction per
  batch and queued on its route; the route's armer marks it IN_FLIGHT, again
  in batches, just before its parts are written (see engine.pool). While the
  armer would do so at once anyway (nothing waiting on the route, room in its
  armed queue), the recipient is claimed IN_FLIGHT in that same transaction
  and handed to the binds: one write instead of two. After a
  crash a PENDING recipient is simply sent again (by the backfill loop, never
  by re-reading its record) and only an IN_FLIGHT one is uncertain. If the
  route's backlog is full (a slow or dead SMSC) the recipient is parked: left
  PENDING and not queued, so the other routes keep flowing; the backfill loop
  feeds parked recipients back when the route has room. The text is stored
  with the claim unless the template is static (then it is re-rendered).

Part outcomes arrive through the pools' callback. Transient ones are retried
with backoff; when every part of a recipient is settled the recipient's state
(SUBMITTED, FAILED or UNKNOWN) joins a batch the flush loop writes to the
ledger, and only then are the offsets marked complete (OffsetTracker), so a
commit never runs ahead of the ledger. Memory is bounded by ``max_in_memory``
recipients: the reader waits for room, it never loads a segment.

The campaign is done when every partition reached its snapshot, nothing is in
memory or PENDING (or only on routes down longer than ``route_down_grace``),
and, with receipts requested, every SUBMITTED recipient has its receipt or
``receipt_wait`` has passed.

Schedule and control: a run waits for its wave's ``start_at`` (on the engine's
clock), then owns one lane per route (engine.pool). The plan loop, every
PLAN_TICK, opens or shuts those lanes (operator pause or cancel, quiet hours)
and re-plans each route (engine.planner): the lane's pacer gets the rate that
ends the route's remaining work just before the deadline (``pace: even``) or
its ``max_share`` of the route, and the remaining, target and projected-finish
gauges are set for Grafana. An operator's control is stored in the ledger
before the run hears of it, so a restarted run starts paused or cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from smsblast import metrics as m
from smsblast.client import OutcomeKind, SubmitOutcome
from smsblast.client.bind import backoff_delay
from smsblast.config import Campaign, SmscConfig
from smsblast.engine.jobs import Job, WorkItem
from smsblast.engine.offsets import OffsetTracker
from smsblast.engine.planner import aim, plan_route, remaining_recipients
from smsblast.engine.reconnect import describe, transient, until_reachable
from smsblast.engine.slicing import slices
from smsblast.engine.snapshot import SegmentNotFound, segment_end_offsets
from smsblast.ledger import Claim, Control, Outcome, PendingRow, State
from smsblast.render import MissingField
from smsblast.schedule import Wave
from smsblast.segments import BadRecord, parse_record_fields
from smsblast.smpp import pdu as P
from smsblast.smpp.constants import status_name
from smsblast.smpp.fast import SubmitTemplate
from smsblast.smpp.parts import PartSpec, submit_parts
from smsblast.smpp.text import TextEncodingError, TooManyPartsError, split_message

if TYPE_CHECKING:
    from smsblast.engine.engine import Engine
    from smsblast.engine.pool import BindWorker

log = logging.getLogger("smsblast.engine")

MAX_ATTEMPTS = 8
RETRY_MIN = 0.2
RETRY_MAX = 10.0
SPLIT_CACHE_MAX = 4096
#: A route with no bind up for this long gets new recipients parked, not queued.
ROUTE_DOWN_PARK = 2.0
#: Records per read batch: one ledger transaction each.
READ_BATCH = 5000
#: Records prepared, or claimed recipients started, between two turns of the event loop.
SLICE = 1000
BACKLOG_SECONDS = 3.0  # a route may hold what it sends in this long (see _prepare)
#: The plan loop: gates (pause, quiet hours), pacing and projection, re-done this often.
PLAN_TICK = 0.5
#: Seconds of sending before the achieved rate counts in the projected finish.
WARM_UP = 3.0
STATES = ("waiting", "running", "quiet", "paused", "cancelled", "done", "failed")

PartKey = tuple[str, int]
#: ``tuple.__new__(Claim, (...))`` is ``Claim(...)`` without the Python-level ``__new__`` a
#: NamedTuple runs (~0.1 us saved, timeit): claims, parts and outcomes are built per recipient.
_new = tuple.__new__


class _Batch(NamedTuple):
    """A batch of records, prepared: what ``_record`` makes durable, then acts on."""

    rejects: list[tuple[str, State, str]]
    reject_offsets: list[tuple[PartKey, int]]
    dead: list[tuple[Any, str, str]]
    claims: list[tuple[Claim, PartKey, int, tuple[PartSpec, ...], bool]]
    #: The opt-out list's version the claims were checked against (engine._arm checks a
    #: recipient again if the list has changed since).
    optout_version: int


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what is done on the partitions the group takes away (aiokafka passes sets)."""

    def __init__(self, run: CampaignRun) -> None:
        self.run = run

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self.run.commit(only=revoked)
        self.run.tracker.forget([(tp.topic, tp.partition) for tp in revoked])

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        return None


class CampaignRun:
    def __init__(self, engine: Engine, campaign: Campaign, wave: Wave | None = None) -> None:
        self.engine = engine
        self.cfg = campaign
        #: a wave of a repeating campaign is its own run: own name, ledger scope, report
        self.wave = wave
        self.name = wave.name if wave is not None else campaign.name
        self.start_at = wave.start if wave is not None else None
        self.deadline = wave.deadline if wave is not None else None
        self.quiet = campaign.quiet()
        self.control = Control.RUNNING
        self._controlled = False  # set_control was called: newer than the ledger's read
        self.state = "waiting"
        self.plans: dict[str, Any] = {}  # route -> RoutePlan, for status and progress
        self._sent: Counter[str] = Counter()  # parts accepted per route (for the achieved rate)
        self._sent_then: dict[str, int] = {}  # _sent at the last plan tick
        self._achieved: dict[str, float] = {}  # EWMA of parts/s accepted, per route
        self._open_since: float | None = None
        self._parts_seen = 0
        self._jobs_seen = 0
        self.template = campaign.compiled
        self.templates: dict[str, list[SubmitTemplate]] = {
            route: [self._submit_template(smsc) for smsc in route_cfg.smscs]
            for route, route_cfg in engine.config.routes.items()
        }
        self.tracker: OffsetTracker[PartKey] = OffsetTracker()
        self.snapshot: dict[PartKey, int] = {}
        self.in_memory = 0
        self.pending_routes: set[str] = set()
        #: route -> (cursor, found something in this pass): the backfill pages through
        self._backfill_at: dict[str, tuple[int, bool]] = {}
        self._m_routes: dict[str, tuple[Any, Any]] = {}
        self._latencies: defaultdict[str, list[float]] = defaultdict(list)
        self._route_jobs: Counter[str] = Counter()  # jobs in memory per route
        self._active: set[str] = set()  # msisdns of the jobs in memory (bounded by in_memory)
        self.stats: Counter[str] = Counter()
        self._outcomes: list[tuple[Outcome, PartKey | None, int, str]] = []
        self._split_cache: dict[str, tuple[PartSpec, ...]] = {}
        self._room = asyncio.Event()
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._paused: set[TopicPartition] = set()
        self.finished = asyncio.Event()  # the run is over (complete, stopped or failed)
        self.completed = False  # every record read, nothing left in memory, receipts waited
        self.failure: str | None = None  # why the run could not start (state ``failed``)
        self.pruned_at: float | None = None  # the ledger says `smsblast prune` ended it
        labels = (self.name,)
        self._m_read = m.RECORDS_READ.labels(*labels)
        self._m_dup = m.RECIPIENTS_DUPLICATE.labels(*labels)
        self._m_supp = m.RECIPIENTS_SUPPRESSED.labels(*labels)
        self._m_in_flight = m.CAMPAIGN_IN_FLIGHT.labels(*labels)
        self._m_lag = m.CONSUMER_LAG.labels(*labels)
        self._m_pending = m.CAMPAIGN_PENDING.labels(*labels)
        self._read_to: dict[PartKey, int] = {}  # next offset to read, per partition

    # ------------------------------------------------------------------ setup
    def _submit_template(self, smsc: SmscConfig) -> SubmitTemplate:
        cfg = self.cfg
        src_ton, src_npi = smsc.source_ton_npi(cfg.sender)
        return SubmitTemplate(
            P.SubmitSm(
                source_addr=cfg.sender,
                source_addr_ton=src_ton,
                source_addr_npi=src_npi,
                dest_addr_ton=smsc.dest_ton,
                dest_addr_npi=smsc.dest_npi,
                registered_delivery=1 if cfg.registered_delivery else 0,
                validity_period=cfg.validity_period(),
                priority_flag=cfg.priority,
            )
        )

    async def _recover(self) -> None:
        """Settle recipients a crash left IN_FLIGHT, by the on_unknown policy."""
        ledger = self.engine.ledger
        after = ""
        state = State.PENDING if self.cfg.on_unknown == "resubmit" else State.UNKNOWN
        while True:
            rows = await ledger.in_flight(self.name, 5000, after)
            if not rows:
                return
            await ledger.mark(self.name, rows, state, "in flight at a crash")
            self.stats["recovered_" + state.value] += len(rows)
            log.warning(
                "%s: %d recipient(s) in flight at the last crash -> %s",
                self.name,
                len(rows),
                state.value,
            )
            after = rows[-1]

    # ------------------------------------------------------------------ main loop
    async def run(self) -> None:
        try:
            if not await self._wait_start():
                return
            await self._run()
        finally:
            for pool in self.engine.pools.values():
                pool.lanes.pop(self, None)
            if self.completed:
                self._set_state("done")
            self.finished.set()

    async def _wait_start(self) -> bool:
        """Wait for the wave's start (False: stopped first)."""
        start = self.start_at
        if start is None or self.engine.clock.now() >= start:
            return True
        self._set_state("waiting")
        log.info("%s: waiting for its start at %s", self.name, start)
        sleeper = asyncio.create_task(self.engine.clock.sleep_until(start))
        stopper = asyncio.create_task(self._stop_event.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()
        return not self._stopping

    async def _connect(self) -> tuple[AIOKafkaConsumer, dict[PartKey, int]]:
        """A started consumer of the campaign's group, and the segment's end offsets now (the
        snapshot, for a campaign not opened yet). The consumer is closed if this fails."""
        kafka = self.engine.config.kafka
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            group_id=f"smsblast.{self.name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **kafka.group_kwargs(),
            **kafka.aiokafka_kwargs(),
        )
        try:
            await consumer.start()
            snapshot = await segment_end_offsets(
                kafka.bootstrap_servers, list(self.cfg.segments), **kafka.aiokafka_kwargs()
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        return consumer, snapshot

    async def _run(self) -> None:
        engine = self.engine
        # Pruned: its numbers left the ledger, so it must never run again. Checked before
        # Kafka (no group join for nothing); `smsblast prune` cannot start meanwhile, since
        # this engine holds the ledger's lock.
        known = await engine.ledger.campaign_info(self.name)
        if known is not None and known.pruned_at is not None:
            log.warning(
                "%s: pruned from the ledger (smsblast prune): it is over and is not sent "
                "again; give it a new name to send it again",
                self.name,
            )
            self.pruned_at = known.pruned_at
            self.completed = True
            return
        try:  # Kafka down or hung: wait for it (``waiting``), until it is back or a stop
            connected = await until_reachable(self.name, self._connect, self._stop_event)
        except (SegmentNotFound, KafkaError) as exc:
            self._fail(describe(exc))
            return
        if connected is None:
            return  # stopped (or cancelled) before Kafka came back
        consumer, snapshot = connected
        self._consumer = consumer
        try:
            info = await engine.ledger.open_campaign(
                self.name, {f"{t}:{p}": off for (t, p), off in snapshot.items()}
            )
            self.snapshot = {
                (key.rsplit(":", 1)[0], int(key.rsplit(":", 1)[1])): int(off)
                for key, off in info.snapshot.items()
            }
            if not self._controlled:  # an operator's control that came meanwhile is newer
                self.control = Control(info.control)
            if self.control is Control.CANCELLED:
                log.warning("%s: cancelled by an operator; nothing is sent", self.name)
                self._stopping = True
                self._set_state("cancelled")
                return
            if self.deadline is not None:
                m.CAMPAIGN_DEADLINE.labels(self.name).set(self.deadline)
            m.CAMPAIGN_TOTAL.labels(self.name).set(sum(self.snapshot.values()))
            for pool in engine.pools.values():
                pool.lane(self, self.cfg.priority)
            self._apply_gates()
            await self._recover()
            self.pending_routes.update(self.engine.pools)  # parked rows from a previous run
            consumer.subscribe(list(self.cfg.segments), listener=_Rebalance(self))
            tasks = [
                asyncio.create_task(self._flush_loop(), name=f"{self.name} flush"),
                asyncio.create_task(self._commit_loop(), name=f"{self.name} commit"),
                asyncio.create_task(self._backfill_loop(), name=f"{self.name} backfill"),
                asyncio.create_task(self._plan_loop(), name=f"{self.name} plan"),
            ]
            try:
                await self._read_loop(consumer)
                await self._drain()
                await self._wait_receipts()
                self.completed = not self._stopping
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await self._flush()
                await self.commit()
        finally:
            await consumer.stop()

    def stop(self) -> None:
        """Stop reading; what is in memory still settles (SIGTERM)."""
        self._stopping = True
        self._stop_event.set()
        self._room.set()

    # ------------------------------------------------------------------ operator control
    def set_control(self, control: Control) -> None:
        """Pause, resume or cancel (already stored in the ledger by the caller). Before its
        start a run only notes a pause or a resume (it stays ``waiting``; it opens with the
        control), while a cancel ends it at once."""
        self._controlled = True
        if self.control is Control.CANCELLED:
            return
        self.control = control
        if self.state == "waiting" and control is not Control.CANCELLED:
            return
        if control is Control.CANCELLED:
            log.warning("%s: cancelled by an operator", self.name)
            self._set_state("cancelled")
            self.stop()
        self._apply_gates()

    def _sending_allowed(self, now: float) -> bool:
        return (
            self.control is Control.RUNNING
            and not self._stopping
            and not (self.quiet and self.quiet.is_quiet(now))
        )

    def _apply_gates(self) -> None:
        now = self.engine.clock.now()
        allowed = self._sending_allowed(now)
        for pool in self.engine.pools.values():
            if self in pool.lanes:
                pool.set_gate(self, allowed)
        if self.failure is not None:
            state = "failed"  # it stays so while what was in flight settles
        elif self.control is Control.CANCELLED:
            state = "cancelled"
        elif self.control is Control.PAUSED:
            state = "paused"
        elif self.quiet and self.quiet.is_quiet(now):
            state = "quiet"
        else:
            state = "running"
        self._set_state(state)
        if not allowed:
            self._open_since = None
        elif self._open_since is None:
            self._open_since = now

    def _fail(self, reason: str) -> None:
        """The campaign cannot start (its segment topic is missing, Kafka refuses us): say
        why, and end this run with nothing sent; the other campaigns go on."""
        self.failure = reason
        log.error("%s: cannot start: %s", self.name, reason)
        self._set_state("failed")

    def _fail_reading(self, reason: str) -> None:
        """Kafka refused to go on serving the campaign's group (a fatal error aiokafka does
        not retry: the group's protocol, authorisation, the session timeout): stop reading,
        as a SIGTERM would for this campaign alone. What is in flight settles; the rest
        stays PENDING for the next run; the other campaigns go on."""
        self.failure = reason
        log.error("%s: stopped reading: %s", self.name, reason)
        self._set_state("failed")
        self.stop()

    def _set_state(self, state: str) -> None:
        self.state = state
        for name in STATES:
            m.CAMPAIGN_STATE.labels(self.name, name).set(1 if name == state else 0)

    # ------------------------------------------------------------------ pacing and projection
    def _unread(self) -> int:
        """Records of the snapshot not read yet (the consumer lag)."""
        return sum(max(0, end - self._read_to.get(k, 0)) for k, end in self.snapshot.items())

    async def _plan_loop(self) -> None:
        while True:
            try:
                await self._plan()
            except Exception:
                log.exception("%s: planning failed; sending goes on with the last plan", self.name)
            await asyncio.sleep(PLAN_TICK)

    async def _plan(self) -> None:
        engine = self.engine
        self._apply_gates()
        now = engine.clock.now()
        tallies = await engine.ledger.counts_by_route(self.name)
        self._m_pending.set(sum(states.get(State.PENDING.value, 0) for states in tallies.values()))
        remaining = remaining_recipients(tallies, self._unread(), engine.pools)
        parts_per = self._parts_seen / self._jobs_seen if self._jobs_seen else 1.0
        deadline = aim(self.start_at, self.deadline)
        warm = self._open_since is not None and now - self._open_since >= WARM_UP
        even = self.cfg.pace == "even"
        for route, pool in engine.pools.items():
            sent = self._sent[route]
            rate = (sent - self._sent_then.get(route, sent)) / PLAN_TICK
            self._sent_then[route] = sent
            ewma = self._achieved.get(route)
            ewma = rate if ewma is None else ewma + 0.2 * (rate - ewma)
            self._achieved[route] = ewma
            share = self.cfg.share_for(route)
            plan = plan_route(
                now=now,
                remaining=remaining[route] * parts_per,
                capacity=pool.capacity,
                configured_capacity=pool.configured_capacity,
                share=share,
                deadline=deadline,
                quiet=self.quiet,
                even=even,
                achieved=ewma if warm else None,
            )
            self.plans[route] = plan
            if self in pool.lanes:
                pool.set_pace(self, plan.pace)
            m.CAMPAIGN_REMAINING.labels(self.name, route).set(round(remaining[route]))
            m.CAMPAIGN_TARGET_RATE.labels(self.name, route).set(plan.target)
            finish = plan.projected_finish if self.control is not Control.PAUSED else math.inf
            m.CAMPAIGN_PROJECTED_FINISH.labels(self.name, route).set(finish)

    def status(self) -> dict[str, Any]:
        """What the admin API and the progress display show of this run."""
        return {
            "campaign": self.name,
            "state": self.state,
            "failure": self.failure,  # why, when the state is failed
            "control": self.control.value,
            "start_at": self.start_at,
            "deadline": self.deadline,
            "in_memory": self.in_memory,
            "stats": dict(self.stats),
            "routes": {
                route: {
                    "remaining": round(plan.remaining),
                    "target_rate": plan.target,
                    "projected_finish": (
                        None if math.isinf(plan.projected_finish) else plan.projected_finish
                    ),
                }
                for route, plan in self.plans.items()
            },
        }

    async def _read_loop(self, consumer: AIOKafkaConsumer) -> None:
        """Read, prepare and record batches until the snapshot is read (or a stop).

        A batch is prepared (parsed, checked, routed, rendered: CPU only) while the one
        before it is being recorded (ledger round trips, then queued on the routes), so the
        ledger's latency overlaps the next batch's work instead of idling the loop: measured
        at 250-300 ms a claim under load. Batches are recorded one at a time and in order,
        so of a number in two batches the first claims it and the second sees the claim.
        Parking decisions and the memory cap may run one batch behind."""
        cap = self.engine.max_in_memory
        recording: asyncio.Task[None] | None = None
        try:
            while not self._stopping:
                if self.in_memory >= cap:
                    self._room.clear()
                    await self._room.wait()
                    continue
                try:
                    batch = await consumer.getmany(timeout_ms=100, max_records=min(READ_BATCH, cap))
                except KafkaError as exc:  # aiokafka retries the transient ones itself
                    if not transient(exc):
                        self._fail_reading(describe(exc))
                        return
                    log.warning("%s: reading: %s; retrying", self.name, describe(exc))
                    m.KAFKA_UNREACHABLE.labels(self.name).inc()
                    await asyncio.sleep(1.0)
                    continue
                if batch:
                    prepared = await self._prepare_in_slices(consumer, batch)
                    if recording is not None:
                        await recording
                    recording = asyncio.create_task(self._record(prepared))
                elif await self._input_exhausted(consumer):
                    return
        finally:
            if recording is not None:
                await recording

    async def _input_exhausted(self, consumer: AIOKafkaConsumer) -> bool:
        """Every assigned partition has been read up to its snapshot end."""
        assignment = consumer.assignment()
        if not assignment:
            return False
        for tp in assignment:
            if tp in self._paused:
                continue
            if await consumer.position(tp) < self.snapshot.get((tp.topic, tp.partition), 0):
                return False
        return True

    # ------------------------------------------------------------------ one batch
    async def _prepare_in_slices(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[Any]]
    ) -> _Batch:
        """:meth:`_prepare` a slice at a time, with a turn of the loop between slices (so
        the binds' responses are read meanwhile: engine.slicing says why)."""
        routes_added: Counter[str] = Counter()
        whole = _Batch([], [], [], [], self.engine.optout.version)  # the oldest of the slices'
        for piece in slices(batch, SLICE):
            part = self._prepare(consumer, piece, routes_added)
            whole.rejects.extend(part.rejects)
            whole.reject_offsets.extend(part.reject_offsets)
            whole.dead.extend(part.dead)
            whole.claims.extend(part.claims)
            await asyncio.sleep(0)
        return whole

    def _prepare(
        self,
        consumer: AIOKafkaConsumer,
        batch: Mapping[TopicPartition, Sequence[Any]],
        routes_added: Counter[str],
    ) -> _Batch:
        """Turn a batch of records into what must be recorded: rejects (and their dead
        letters) and claims, each new recipient parked or not. No I/O. ``routes_added``:
        parts this batch queues per route (its earlier slices included), for the parking
        decisions; updated here."""
        engine = self.engine
        rejects: list[tuple[str, State, str]] = []
        reject_offsets: list[tuple[PartKey, int]] = []
        dead: list[tuple[Any, str, str]] = []
        claims: list[tuple[Claim, PartKey, int, tuple[PartSpec, ...], bool]] = []
        store_text = not self.template.is_static
        now = asyncio.get_running_loop().time()
        read = 0
        # No route may hold more than its share of the memory budget (retries included), so
        # one slow or throttling SMSC cannot starve the others: an equal share, or what the
        # route sends in BACKLOG_SECONDS if more (memory in proportion to throughput: with
        # equal shares a route taking half the traffic parked 22% of a 300k e2e run, and
        # every parked recipient costs a second trip through the ledger).
        equal = max(1000, engine.max_in_memory // max(1, len(engine.pools)))
        # Parts a route may still take in this batch before its recipients are parked: the
        # room in its lane's queue and in its share, none while it is down. Nothing else
        # runs while this loop does, so it is worked out once, not once a record.
        room = {}
        for r, p in engine.pools.items():
            share = min(engine.max_in_memory, max(equal, int(p.recent_rate() * BACKLOG_SECONDS)))
            room[r] = (
                -1
                if p.down_for(now) > ROUTE_DOWN_PARK
                else min(p.queue_cap - p.lane_backlog(self), share - self._route_jobs[r])
            )
        template = self.template
        on_missing = self.cfg.on_missing_field
        optout = engine.optout
        router = engine.router
        tracker = self.tracker
        for tp, records in batch.items():
            key = (tp.topic, tp.partition)
            end = self.snapshot.get(key, 0)
            for rec in records:
                if rec.offset >= end:
                    consumer.pause(tp)
                    self._paused.add(tp)
                    break
                tracker.read(key, rec.offset)
                self._read_to[key] = rec.offset + 1
                read += 1
                try:
                    msisdn, fields, _ = parse_record_fields(rec.value)
                except BadRecord as exc:
                    dead.append((rec, exc.reason, str(exc)))
                    rejects.append(
                        (f"#{tp.topic}:{tp.partition}:{rec.offset}", State.REJECTED, exc.reason)
                    )
                    reject_offsets.append((key, rec.offset))
                    continue
                if msisdn in optout:
                    rejects.append((msisdn, State.SUPPRESSED, "opt-out"))
                    reject_offsets.append((key, rec.offset))
                    self._m_supp.inc()
                    continue
                route = router.route(msisdn)
                reason = ""
                parts: tuple[PartSpec, ...] = ()
                text = ""
                if route is None:
                    reason = "unroutable"
                else:
                    try:
                        text = template.render(fields, on_missing)
                        if store_text and not text.strip():  # its fields were all blank
                            reason = "empty_text"
                        else:
                            parts = self._split(text)
                    except MissingField as exc:
                        reason = f"missing_field:{exc}"
                    except TooManyPartsError:
                        reason = "too_many_parts"
                    except TextEncodingError:
                        reason = "unencodable_text"
                if reason:
                    dead.append((rec, reason.split(":", 1)[0], reason))
                    rejects.append((msisdn, State.REJECTED, reason))
                    reject_offsets.append((key, rec.offset))
                    continue
                assert route is not None
                parked = routes_added[route] >= room[route]
                if not parked:
                    routes_added[route] += len(parts)
                claim = _new(
                    Claim,
                    (
                        msisdn,
                        route,
                        len(parts),
                        tp.topic,
                        tp.partition,
                        rec.offset,
                        text if store_text else None,
                    ),
                )
                claims.append((claim, key, rec.offset, parts, parked))
        self._m_read.inc(read)
        self._m_lag.set(self._unread())
        return _Batch(rejects, reject_offsets, dead, claims, optout.version)

    async def _record(self, batch: _Batch) -> None:
        """Durable facts first; then queue, dead-letter and complete offsets."""
        engine = self.engine
        tracker = self.tracker
        rejects, reject_offsets, dead, claims, optout_version = batch
        if rejects:
            await engine.ledger.record_rejects(self.name, rejects)
        if dead:  # Kafka unreachable: wait for it (the batch's claims wait too)
            copied = await until_reachable(
                f"{self.name} dead letters",
                lambda: engine.dead_letter(self.cfg.name, dead),
                self._stop_event,
            )
            if copied is None:
                return  # stopped first: no offset of this batch completes; a restart re-reads
            for _, reason, _ in dead:
                m.RECORDS_REJECTED.labels(self.name, reason).inc()
        for key, offset in reject_offsets:
            tracker.complete(key, offset)
        self.stats["rejected"] += sum(1 for _, s, _ in rejects if s is State.REJECTED)
        self.stats["suppressed"] += sum(1 for _, s, _ in rejects if s is State.SUPPRESSED)
        if not claims:
            return
        # A new recipient is claimed PENDING (durable, resendable) and queued; the pool's
        # armer marks it IN_FLIGHT just before its parts are written. While the armer
        # would arm it at once anyway (RoutePool.direct_room), it is claimed IN_FLIGHT
        # instead and its parts go straight to the armed queue: one ledger write instead
        # of two. Those claims go first, so the ledger stores them IN_FLIGHT.
        ordered = self._direct_first(claims)
        direct = sum(1 for c in ordered if c[5])
        existing = await engine.ledger.claim(
            self.name, [c[0] for c in ordered], State.PENDING, direct
        )
        # Classified in one pass (a number twice in the batch must find its first claim
        # in _active), started a slice at a time with a turn of the loop between slices.
        starts = []
        for (claim, key, offset, parts, parked, armed), before in zip(
            ordered, existing, strict=True
        ):
            route = claim.route or ""
            if before is None and not parked:
                self._active.add(claim.msisdn)
                starts.append((claim.msisdn, route, parts, key, offset, optout_version, armed))
                continue
            if before is None:  # parked: durable; the backfill sends it when the route can
                self.pending_routes.add(route)
                self.stats["parked"] += 1
            elif before is State.PENDING and claim.msisdn not in self._active:
                # Re-read after a restart while still PENDING: the backfill sends it.
                self.pending_routes.add(route)
            else:
                self.stats["duplicates"] += 1
                self._m_dup.inc()
            tracker.complete(key, offset)
        for at in range(0, len(starts), SLICE):
            if at:
                await asyncio.sleep(0)
            for start in starts[at : at + SLICE]:
                self._start(*start)

    def _direct_first(
        self, claims: Sequence[tuple[Claim, PartKey, int, tuple[PartSpec, ...], bool]]
    ) -> list[tuple[Claim, PartKey, int, tuple[PartSpec, ...], bool, bool]]:
        """The batch's claims, each with whether it is claimed IN_FLIGHT and handed
        straight to its binds, those first: unparked recipients, as many parts a route as
        its pool has direct room for (RoutePool.direct_room)."""
        room = {route: pool.direct_room(self) for route, pool in self.engine.pools.items()}
        if not any(room.values()):
            return [(*c, False) for c in claims]
        direct = []
        rest = []
        for c in claims:
            route, parts, parked = c[0].route or "", c[3], c[4]
            free = room.get(route, 0)
            if not parked and free >= len(parts):
                room[route] = free - len(parts)
                direct.append((*c, True))
            else:
                rest.append((*c, False))
        return direct + rest

    def _split(self, text: str) -> tuple[PartSpec, ...]:
        cached = self._split_cache.get(text)
        if cached is not None:
            return cached
        cfg = self.cfg
        encoded = split_message(
            text,
            policy=cfg.encoding,
            concat=cfg.concat,
            ref=len(self._split_cache) & 0xFFFF,
            max_parts=cfg.max_parts,
        )
        result = submit_parts(encoded)
        if len(self._split_cache) >= SPLIT_CACHE_MAX:
            self._split_cache.clear()
        self._split_cache[text] = result
        return result

    def _start(
        self,
        msisdn: str,
        route: str,
        parts: tuple[PartSpec, ...],
        key: PartKey | None,
        offset: int,
        optout_version: int,
        armed: bool = False,
    ) -> None:
        """Queue a claimed recipient's parts on its route, or, ``armed`` (claimed
        IN_FLIGHT: see _record), hand them to its binds. ``optout_version``: the opt-out
        list's version it was checked against (it is checked again before it is armed if
        the list has changed since: a claim's round trip, or a turn of the loop, may let a
        refusal in)."""
        job = Job(
            self,
            msisdn,
            route,
            parts,
            key,
            offset,
            optout_version=optout_version,
            started=time.monotonic(),
        )
        self._jobs_seen += 1
        self._parts_seen += len(parts)
        self._active.add(msisdn)
        self._route_jobs[route] += 1
        self.in_memory += 1
        pool = self.engine.pools[route]
        if not armed:
            for i in range(len(parts)):
                pool.enqueue(_new(WorkItem, (job, i, 0)))
            return
        # As the armer does before it hands parts on: refused, the IN_FLIGHT claim
        # becomes SUPPRESSED.
        if self.engine.refused_since_checked(job):
            return
        job.armed = True
        pool.arm_claimed(self, [_new(WorkItem, (job, i, 0)) for i in range(len(parts))])

    # ------------------------------------------------------------------ outcomes
    def on_part_outcome(self, worker: BindWorker, item: WorkItem, outcome: SubmitOutcome) -> None:
        job = item.job
        route = job.route
        kind = outcome.kind
        if kind is OutcomeKind.ACCEPTED:
            key = worker.key_prefix + worker.normalize_id(outcome.message_id)
            job.message_ids.append((item.part, outcome.message_id, key))
            self._sent[route] += 1
            self._latencies[route].append(outcome.latency)  # to the metrics at the next flush
            self.engine.receipts.note_accepted(key, job.receipts)
        elif kind is OutcomeKind.RETRYABLE or (
            kind is OutcomeKind.UNKNOWN and self.cfg.on_unknown == "resubmit"
        ):
            if self._stopping and kind is OutcomeKind.RETRYABLE:
                job.abandoned = True  # never sent: PENDING, its record is re-read later
            elif item.attempt + 1 < MAX_ATTEMPTS and not self._stopping:
                why = (
                    status_name(outcome.status)
                    if outcome.status is not None
                    else ("timeout" if "timeout" in outcome.reason else kind.value)
                )
                m.SUBMITS_RETRIED.labels(self.name, route, why).inc()
                delay = backoff_delay(item.attempt, RETRY_MIN, RETRY_MAX, self.engine.rng)
                pool = self.engine.pools[route]
                asyncio.get_running_loop().call_later(
                    delay, pool.retry, WorkItem(job, item.part, item.attempt + 1)
                )
                return
            elif kind is OutcomeKind.UNKNOWN:
                job.unknown = True
            else:
                job.failed_status = outcome.status if outcome.status is not None else -1
                job.error = f"gave up after {MAX_ATTEMPTS} attempts: {outcome.describe()}"
        elif kind is OutcomeKind.REJECTED:
            job.failed_status = outcome.status
            job.error = outcome.describe()
            m.SUBMITS_FAILED.labels(self.name, route, status_name(outcome.status or 0)).inc()
        else:  # UNKNOWN with on_unknown=skip: never risk a duplicate
            job.unknown = True
            m.SUBMITS_UNKNOWN.labels(self.name, route).inc()
        job.remaining -= 1
        if job.remaining == 0:
            self._settle(job)

    def refuse(self, job: Job) -> None:
        """``job`` opted out while it waited in memory, before any of its parts was armed:
        it is settled SUPPRESSED now, and its parts still queued are dropped when reached."""
        job.suppressed = True
        job.error = "opt-out"
        job.remaining = 0
        self._m_supp.inc()
        self._settle(job)

    def _park(self, items: list[WorkItem]) -> None:
        """Parts taken back from a dead route's queue: never written, so PENDING."""
        for item in items:
            job = item.job
            if job.suppressed:
                continue  # settled already
            job.abandoned = True
            job.remaining -= 1
            if job.remaining == 0:
                self._settle(job)

    def _flush_metrics(self) -> None:
        """Accepted parts and their response latencies since the last flush, to Prometheus
        in one step per route (per-message metric calls cost ~5% of the loop)."""
        for route, latencies in self._latencies.items():
            if latencies:
                found = self._m_routes.get(route)
                if found is None:
                    found = self._m_routes[route] = (
                        m.SUBMITS_ACCEPTED.labels(self.name, route),
                        m.SUBMIT_LATENCY.labels(route),
                    )
                found[0].inc(len(latencies))
                m.observe_many(found[1], latencies)
                latencies.clear()

    def _settle(self, job: Job) -> None:
        if job.suppressed:
            state, status = State.SUPPRESSED, None
        elif job.failed_status is not None:
            state, status = State.FAILED, job.failed_status
        elif job.unknown or (job.abandoned and job.message_ids):
            state, status = State.UNKNOWN, None  # (partly) sent, the rest not: never resend
        elif job.abandoned:
            state, status = State.PENDING, None
        else:
            state, status = State.SUBMITTED, 0
        # job.receipts itself: receipts keep joining it until _flush sends it.
        outcome = _new(
            Outcome, (job.msisdn, state, status, job.error, tuple(job.message_ids), job.receipts)
        )
        self._outcomes.append((outcome, job.partition, job.offset, job.route))
        self._active.discard(job.msisdn)
        self._route_jobs[job.route] -= 1
        self.in_memory -= 1
        if not self._room.is_set():
            self._room.set()

    async def _flush(self) -> None:
        self._flush_metrics()
        self._m_in_flight.set(self.in_memory)
        if not self._outcomes:
            return
        batch, self._outcomes = self._outcomes, []
        outcomes = [o for o, _, _, _ in batch]
        self.engine.receipts.recorded(outcomes)
        try:
            await self.engine.ledger.record_outcomes(self.name, outcomes)
        except BaseException:
            self._outcomes[:0] = batch  # not written: keep them for the next flush
            raise
        tracker = self.tracker
        finished: Counter[tuple[str, State]] = Counter()  # .value once a key, not a row
        for outcome, key, offset, route in batch:
            state = outcome.state
            if key is not None and state is not State.PENDING:
                # A PENDING outcome (shutdown) keeps its offset open: the record is
                # re-read after the restart and sent then.
                tracker.complete(key, offset)
            finished[route, state] += 1
        for (route, state), n in finished.items():
            self.stats[state.value] += n
            m.RECIPIENTS_FINISHED.labels(self.name, route, state.value).inc(n)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            try:
                await self._flush()
            except Exception:
                log.exception("%s: writing outcomes to the ledger failed; retrying", self.name)
                await asyncio.sleep(1.0)

    async def commit(self, only: Collection[TopicPartition] | None = None) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        offsets = self.tracker.committable()
        assignment = consumer.assignment()
        wanted = set(only) if only is not None else assignment
        to_commit = {
            TopicPartition(t, p): off
            for (t, p), off in offsets.items()
            if TopicPartition(t, p) in wanted and TopicPartition(t, p) in assignment
        }
        if not to_commit:
            return
        try:
            await consumer.commit({tp: OffsetAndMetadata(off, "") for tp, off in to_commit.items()})
        except Exception as exc:  # a failed commit only means a re-read later
            log.warning("%s: offset commit failed: %s", self.name, exc)
            return
        self.tracker.mark_committed(
            {(tp.topic, tp.partition): off for tp, off in to_commit.items()}
        )
        done = sum(min(end, self.tracker.position(k) or 0) for k, end in self.snapshot.items())
        m.CAMPAIGN_DONE.labels(self.name).set(done)

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.commit()
            except Exception:
                log.exception("%s: offset commit failed; retrying", self.name)

    # ------------------------------------------------------------------ backlog
    async def _backfill_loop(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            try:
                await self._backfill()
            except Exception:
                log.exception("%s: backfill from the ledger failed; retrying", self.name)
                await asyncio.sleep(1.0)

    async def _backfill(self) -> None:
        if self._stopping:
            return  # stopping: nothing new is started
        ledger = self.engine.ledger
        for route in sorted(self.pending_routes):
            pool = self.engine.pools.get(route)
            if pool is None:
                continue
            room = pool.queue_cap // 2 - pool.lane_backlog(self)
            if room <= 0 or not pool.binds_up:
                continue
            # Page through the route's PENDING rows (those queued in memory are PENDING
            # too, until armed), so parked rows behind a long queue are found at once.
            # A pass always starts at the first row (a route is dropped only at a pass's end).
            after, fresh_seen = self._backfill_at.get(route, (0, False))
            rows = await ledger.pending(self.name, route, min(room, 5000), after)
            if not rows:
                if not fresh_seen:
                    # A whole pass found nothing that is not queued in memory: stop asking
                    # until a recipient is parked again (or the drain looks at the end).
                    self.pending_routes.discard(route)
                self._backfill_at[route] = (0, False)
                continue
            fresh = [r for r in rows if r.msisdn not in self._active]
            self._backfill_at[route] = (rows[-1].id, fresh_seen or bool(fresh))
            # Refused since it was claimed (parked, or left PENDING by a stop or a crash):
            # the opt-out list is read again here, never only at the claim.
            optout = self.engine.optout
            checked = optout.version
            sendable: list[PendingRow] = []
            refused: list[str] = []
            for row in fresh:
                if row.msisdn in optout:
                    refused.append(row.msisdn)
                else:
                    sendable.append(row)
            if refused:
                await ledger.mark(
                    self.name, refused, State.SUPPRESSED, "opt-out", only_from=State.PENDING
                )
                self._m_supp.inc(len(refused))
                self.stats["suppressed"] += len(refused)
                log.info("%s: %d pending recipient(s) opted out meanwhile", self.name, len(refused))
            for i, row in enumerate(sendable):
                if i and i % SLICE == 0:
                    await asyncio.sleep(0)  # a turn of the loop (engine.slicing says why)
                    if self._stopping:
                        return  # the rest stay PENDING, as at any stop
                text = row.text if row.text is not None else self.template.render({}, "empty")
                try:
                    parts = self._split(text)
                except (TooManyPartsError, TextEncodingError) as exc:  # config changed since
                    await ledger.mark(self.name, [row.msisdn], State.REJECTED, str(exc))
                    continue
                self._start(row.msisdn, route, parts, None, -1, checked)

    # ------------------------------------------------------------------ completion
    async def _drain(self) -> None:
        """Wait until nothing is in memory and nothing sendable is parked."""
        loop = asyncio.get_running_loop()
        grace = self.engine.route_down_grace
        stop_deadline: float | None = None
        while True:
            if self._stopping:
                if stop_deadline is None:
                    stop_deadline = loop.time() + self.engine.drain_timeout
                elif loop.time() > stop_deadline:
                    # What is still in a window stays IN_FLIGHT: truly uncertain, it is
                    # reported UNKNOWN (or resubmitted) by the next run.
                    log.warning(
                        "%s: %d recipient(s) still in flight after the drain timeout",
                        self.name,
                        self.in_memory,
                    )
                    return
            now = loop.time()
            for pool in self.engine.pools.values():
                if self._stopping or pool.down_for(now) >= grace:
                    # Stopping: only what is already in a window must settle; the rest
                    # goes back to PENDING and is sent after the restart.
                    self._park(pool.evict(self))
            await self._flush()
            if self.in_memory == 0 and not self._outcomes:
                pending = await self.engine.ledger.pending_by_route(self.name)
                live = {
                    r
                    for r, n in pending.items()
                    if n and self.engine.pools[r].down_for(loop.time()) < grace
                }
                if self._stopping or not live:
                    if pending and any(pending.values()):
                        self.stats["left_pending"] = sum(pending.values())
                    return
                self.pending_routes.update(live)
            await asyncio.sleep(0.05)

    async def _wait_receipts(self) -> None:
        if not self.cfg.registered_delivery or self._stopping:
            return
        deadline = time.monotonic() + self.cfg.receipt_wait_seconds()
        while time.monotonic() < deadline and not self._stopping:
            counts = await self.engine.ledger.counts(self.name)
            if not counts.get(State.SUBMITTED.value):
                return
            await asyncio.sleep(0.2)


def dead_letter_value(rec: Any, reason: str, detail: str) -> bytes:
    """The JSON a dead-lettered record carries on ``<campaign>.rejected``."""
    value = rec.value
    return json.dumps(
        {
            "reason": reason,
            "detail": detail,
            "topic": rec.topic,
            "partition": rec.partition,
            "offset": rec.offset,
            "value": value.decode("utf-8", "replace") if value is not None else None,
        }
    ).encode()
