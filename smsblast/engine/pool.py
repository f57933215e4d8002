"""Per-route pools of throttled binds pulling from one queue.

Theory of operation
-------------------
Each route owns a :class:`RoutePool`: one :class:`Lane` per campaign, a shared
``armed`` queue of parts and one :class:`BindWorker` per configured bind.
Claimed recipients wait in their campaign's lane (PENDING in the ledger: after
a crash they are simply sent again). The arming task moves them, a batch at a
time, to ``armed`` once the ledger has durably marked them IN_FLIGHT: only
armed parts are ever written, so a crash can leave at most the armed buffer
plus the windows UNKNOWN. The buffer is kept just deep enough to keep every
bind busy (window + 100 ms of its rate), so the order in which lanes are armed
is the order in which the binds send. While the armer would arm a campaign's
new recipients at once anyway (:meth:`RoutePool.direct_room`: its lane open
and unpaced, no lane waiting, room under that depth), the campaign claims them
IN_FLIGHT and puts them in ``armed`` itself (:meth:`RoutePool.arm_claimed`):
one ledger write a recipient instead of two, the same bound on what a crash
leaves UNKNOWN. Otherwise:

* a lane whose gate is closed (campaign paused, cancelled, in quiet hours or
  not started) is skipped: its parts wait, nothing is dropped;
* a lane with a pacer (a limiter at the campaign's target rate on this route:
  deadline pacing, or its ``max_share`` of the route) gives at most that rate;
* the rest is shared by weight (2**priority): weighted fair share, so a
  higher-priority campaign gets more and none starves.

A worker loops: wait for armed work, wait for a free window slot, take up to
that many tokens from its own rate limiter (a batch per pass, never a wake per
message), then write that many submit_sm.
Routes share nothing, so a slow or dead SMSC only fills its own queue; the
campaign parks the overflow in the ledger instead of stalling the reader
(no head-of-line blocking between routes).

Every part's outcome comes back through one callback (``on_outcome``), which
the campaign turns into ledger rows, retries and metrics. ESME_RTHROTTLED also
pauses the bind that got it (a bind-wide pause, doubling while the SMSC keeps
throttling), rather than delaying messages one by one, and ESME_RTHROTTLED,
ESME_RMSGQFUL or a rising response latency cut the bind's rate (engine.congestion:
multiplicative decrease, additive increase back up to the configured TPS; the
pool's control timer ticks every 100 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from smsblast import metrics as m
from smsblast.client import (
    Bind,
    BindConfig,
    BindMode,
    ConnectionClosed,
    OutcomeKind,
    SubmitOutcome,
)
from smsblast.engine.congestion import RateController, RecentCount
from smsblast.engine.jobs import Job, WorkItem
from smsblast.ratelimit import AsyncRateLimiter, LimiterClosed, RateLimiter
from smsblast.smpp.constants import Status
from smsblast.smpp.errors import LocalProtocolError
from smsblast.smpp.fast import DeliverFields
from smsblast.smpp.receipt import IdFormat, id_normalizer

log = logging.getLogger("smsblast.engine")

OutcomeHandler = Callable[["BindWorker", WorkItem, SubmitOutcome], None]
#: Marks the items' jobs IN_FLIGHT; returns the items to send (a recipient who opted out
#: while queued is dropped).
Armer = Callable[[list[WorkItem]], Awaitable[list[WorkItem]]]
#: Told of jobs taken back before any of their parts was written (a gate closed): it marks
#: them PENDING again and clears ``armed``, so a crash while paused does not leave them UNKNOWN.
Disarmer = Callable[[list[Job]], None]

#: Each rate window is enforced over W + 5 ms, so network jitter between our send
#: and the SMSC's receive cannot push its 1-second count over the TPS (~0.5% of rate).
LIMITER_GUARD = 0.005
THROTTLE_PAUSE_MIN = 0.05
THROTTLE_PAUSE_MAX = 1.0
CONTROL_TICK = 0.1  # the pool's timer: AIMD ticks and the 1-second accepted counts
ARM_BATCH = 5000  # parts armed at once at most (one ledger call)
CONGESTION = frozenset((Status.RTHROTTLED, Status.RMSGQFUL))


class BindWorker:
    def __init__(
        self,
        pool: RoutePool,
        config: BindConfig,
        smsc_index: int,
        tps: float,
        on_deliver_fields: Callable[[DeliverFields], None] | None,
        id_format: IdFormat = IdFormat.HEX,
        key_prefix: str = "",
    ) -> None:
        self.pool = pool
        self.config = config
        self.name = config.label()
        self.smsc_index = smsc_index
        self.tps = tps
        #: message ids from this bind's SMSC: the key of one (it is written in ``id_format``),
        #: and the prefix that keeps two SMSCs' ids apart in the ledger (receipts use the same).
        self.normalize_id = id_normalizer(id_format)
        self.key_prefix = key_prefix
        self.limiter = AsyncRateLimiter(tps, guard=LIMITER_GUARD)
        self.bind = Bind(config, on_deliver_fields=on_deliver_fields, on_state=self._on_state)
        self.sends = config.mode is not BindMode.RECEIVER
        self._task: asyncio.Task[None] | None = None
        self._pause_until = 0.0
        self._pause = THROTTLE_PAUSE_MIN
        self.rate_control = RateController(tps)
        self.accepted_1s = RecentCount(round(1 / CONTROL_TICK))
        self._now = 0.0  # coarse time, set by the control tick: no clock read per response
        labels = (pool.name, self.name)
        self._m_throttled = m.BIND_THROTTLED.labels(*labels)
        self._m_target = m.TPS_TARGET.labels(*labels)
        self._m_submits = m.BIND_SUBMITS.labels(*labels)
        self._m_window = m.WINDOW_IN_USE.labels(*labels)
        m.TPS_CONFIGURED.labels(*labels).set(tps if self.sends else 0)
        self._m_target.set(tps if self.sends else 0)
        m.WINDOW_SIZE.labels(*labels).set(config.window)
        m.BIND_UP.labels(*labels).set(0)

    @property
    def is_up(self) -> bool:
        return self.bind.is_ready

    def _on_state(self, _label: str, up: bool) -> None:
        m.BIND_UP.labels(self.pool.name, self.name).set(1 if up else 0)
        # Up or going down, the route was up until now: down_for counts from here.
        self.pool.last_up = asyncio.get_running_loop().time()
        if not up:
            m.BIND_RECONNECTS.labels(self.pool.name, self.name).inc()

    def start(self) -> None:
        self.bind.start()
        if self.sends:
            self._task = asyncio.get_running_loop().create_task(
                self._pump(), name=f"pump {self.name}"
            )

    def throttled(self, now: float) -> None:
        """The SMSC answered ESME_RTHROTTLED: pause this bind, longer if it keeps on."""
        if now >= self._pause_until:
            self._pause_until = now + self._pause
            self._pause = min(self._pause * 2, THROTTLE_PAUSE_MAX)

    def accepted(self) -> None:
        self._pause = max(THROTTLE_PAUSE_MIN, self._pause * 0.9)

    def control_tick(self, now: float) -> None:
        """Every CONTROL_TICK: age the accepted counts, probe the rate back up."""
        self._now = now
        self.accepted_1s.rotate()
        if self.rate_control.tick(now):
            self._apply_rate()

    def _congested(self) -> None:
        if self.rate_control.congested(self._now, self.accepted_1s.total):
            self._apply_rate()

    def _apply_rate(self) -> None:
        rate = self.rate_control.rate
        self.limiter.set_rate(rate)
        self._m_target.set(rate)

    async def _pump(self) -> None:
        pool = self.pool
        queue = pool.armed
        loop = asyncio.get_running_loop()
        on_outcome = self._on_outcome
        while True:
            if not queue:
                await pool.wait_work()
                continue
            try:
                conn = await self.bind.wait_slot()
            except ConnectionClosed:
                return  # closing
            pause = self._pause_until - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            want = min(conn.window.free, len(queue))
            if want <= 0:
                continue
            try:
                granted = await self.limiter.acquire(want)
            except LimiterClosed:
                return
            sent = 0
            try:
                while sent < granted and queue:
                    item = queue.popleft()
                    job = item.job
                    spec = job.parts[item.part]
                    template = job.run.templates[pool.name][self.smsc_index]
                    try:
                        conn.send_submit(
                            template,
                            job.dest,
                            spec.short_message,
                            on_outcome,
                            item,
                            spec.esm_class,
                            spec.data_coding,
                            spec.tlvs,
                        )
                    except LocalProtocolError as exc:  # this message can never be encoded
                        pool.on_outcome(
                            self, item, SubmitOutcome(OutcomeKind.REJECTED, reason=str(exc))
                        )
                        continue
                    sent += 1
            except ConnectionClosed:
                queue.appendleft(item)  # not written: it goes to the next bind
            if sent:
                self._m_submits.inc(sent)
                pool.note_sent(sent)
            self._m_window.set(len(conn.window))

    def _on_outcome(self, item: Any, outcome: SubmitOutcome) -> None:
        status = outcome.status
        if status == 0:
            self.accepted()
            self.accepted_1s.add()
            if self.rate_control.latency(self._now, outcome.latency, self.accepted_1s.total):
                self._apply_rate()
        elif status in CONGESTION:
            self._m_throttled.inc()
            if status == Status.RTHROTTLED:
                self.throttled(asyncio.get_running_loop().time())
            self._congested()
        self.pool.on_outcome(self, item, outcome)

    async def close(self, drain_timeout: float) -> None:
        self.limiter.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.bind.close(drain_timeout=drain_timeout)


def never_written(items: list[WorkItem]) -> list[Job]:
    """The armed jobs among ``items`` none of whose parts can have been written: every part
    is among ``items``, on its first attempt, and nothing of the job has settled. Pure."""
    held: dict[int, int] = {}
    jobs: dict[int, Job] = {}
    for item in items:
        job = item.job
        if item.attempt == 0 and job.armed:
            held[id(job)] = held.get(id(job), 0) + 1
            jobs[id(job)] = job
    return [
        job
        for key, job in jobs.items()
        if held[key] == len(job.parts) == job.remaining and not job.message_ids
    ]


class Lane:
    """One campaign's parts waiting on one route, with its gate, pacer and weight."""

    __slots__ = ("open", "pacer", "queue", "run", "weight")

    def __init__(self, run: object, weight: float) -> None:
        self.run = run
        self.weight = weight
        self.queue: deque[WorkItem] = deque()  # claimed, not yet armed
        self.open = True  # False: paused, cancelled, quiet hours, not started
        self.pacer: RateLimiter | None = None  # None: as fast as the binds allow


def share_out(n: int, lanes: list[tuple[Lane, int]]) -> list[int]:
    """Split ``n`` parts among lanes that may each give up to their allowance, by weight.

    Weighted fair share with redistribution: a lane that cannot use its share
    (small queue, pacer) leaves the rest to the others. Pure; returns one count
    per lane, in order, summing to min(n, sum of allowances).
    """
    got = [0] * len(lanes)
    left = n
    active = [i for i, (_, allow) in enumerate(lanes) if allow > 0]
    while left > 0 and active:
        total = sum(lanes[i][0].weight for i in active)
        given = 0
        for i in active:
            lane, allow = lanes[i]
            share = max(1, int(left * lane.weight / total))
            take = min(share, allow - got[i], left - given)
            got[i] += take
            given += take
            if given >= left:
                break
        left -= given
        active = [i for i in active if got[i] < lanes[i][1]]
        if given == 0:
            break
    return got


class RoutePool:
    def __init__(
        self,
        name: str,
        queue_cap: int,
        on_outcome: OutcomeHandler,
        arm: Armer,
        disarm: Disarmer | None = None,
    ) -> None:
        self.name = name
        self._disarm = disarm
        self.lanes: dict[object, Lane] = {}
        self.armed: deque[WorkItem] = deque()  # IN_FLIGHT in the ledger, ready to write
        self.queue_cap = queue_cap  # per lane
        self.on_outcome = on_outcome
        self._arm = arm
        self.workers: list[BindWorker] = []
        self.last_up: float | None = None
        self.started_at = 0.0
        self._work = asyncio.Event()  # armed work for the pumps
        self._queued = asyncio.Event()  # queued work (or an opened gate) for the armer
        self._tasks: list[asyncio.Task[None]] = []
        self._m_queue = m.ROUTE_QUEUE.labels(name)

    # ------------------------------------------------------------------ lanes
    def lane(self, run: object, priority: int = 0) -> Lane:
        found = self.lanes.get(run)
        if found is None:
            found = self.lanes[run] = Lane(run, float(2**priority))
        return found

    def set_gate(self, run: object, open_: bool) -> None:
        """Open or close ``run``'s lane (closed: its parts wait, the ones already armed but
        not written included: they go back to the front of the lane, still IN_FLIGHT in the
        ledger, so a pause holds at once even on a slow bind with a deep window)."""
        lane = self.lane(run)
        if lane.open != open_:
            lane.open = open_
            if open_:
                self._queued.set()
            else:
                self._hold(run)

    def _hold(self, run: object) -> None:
        """Move ``run``'s armed parts (not written yet) back to the front of its lane."""
        held = [item for item in self.armed if item.job.run is run]
        if not held:
            return
        keep = [item for item in self.armed if item.job.run is not run]
        self.armed.clear()  # in place: the pumps hold this deque
        self.armed.extend(keep)
        self.lane(run).queue.extendleft(reversed(held))
        self._m_queue.set(self.backlog)
        if self._disarm is not None:
            untouched = never_written(held)
            if untouched:
                self._disarm(untouched)

    def set_pace(self, run: object, rate: float | None) -> None:
        """Cap ``run``'s parts per second on this route (None: no cap of its own)."""
        lane = self.lane(run)
        if rate is None:
            lane.pacer = None
        elif lane.pacer is None:
            now = asyncio.get_running_loop().time()
            lane.pacer = RateLimiter(rate, now=now, guard=0.0)
        else:
            lane.pacer.set_rate(asyncio.get_running_loop().time(), rate)
        self._queued.set()

    @property
    def capacity(self) -> float:
        """Parts per second the route's sending binds that are up allow right now."""
        return sum(w.limiter.rate for w in self.workers if w.sends and w.is_up)

    @property
    def configured_capacity(self) -> float:
        return sum(w.tps for w in self.workers if w.sends)

    # ------------------------------------------------------------------ arming
    @property
    def arm_target(self) -> int:
        """Armed parts that keep every sending bind busy: window + 100 ms of its rate."""
        return sum(w.config.window + int(w.limiter.rate * 0.1) + 1 for w in self.workers if w.sends)

    def direct_room(self, run: object) -> int:
        """Parts of ``run``'s new recipients that may skip its lane and the armer: claimed
        IN_FLIGHT and handed to :meth:`arm_claimed`. Only while the armer would arm them at
        once anyway (``run``'s lane open and unpaced, no lane of any campaign with parts
        waiting, a bind up), and up to what it would arm in one go; else 0."""
        lane = self.lanes.get(run)
        if lane is None or not lane.open or lane.pacer is not None or not self.binds_up:
            return 0
        if any(other.queue for other in self.lanes.values()):
            return 0
        return max(0, min(self.arm_target - len(self.armed), ARM_BATCH))

    def arm_claimed(self, run: object, items: list[WorkItem]) -> None:
        """Parts of a recipient claimed IN_FLIGHT (:meth:`direct_room`): ready to write, as
        if the armer had marked them. If ``run``'s gate closed meanwhile they go back to its
        lane, as armed parts do (and PENDING again in the ledger)."""
        self._hand_over(items, (run,))

    def _hand_over(self, items: list[WorkItem], runs: Iterable[object]) -> None:
        """Armed ``items`` (of ``runs``) join the queue the pumps write from; a run whose
        gate closed while they were being armed gets its parts back (:meth:`_hold`)."""
        self.armed.extend(items)
        for run in runs:
            lane = self.lanes.get(run)
            if lane is not None and not lane.open:
                self._hold(run)
        if not self._work.is_set():
            self._work.set()

    def _pick(self, n: int, now: float) -> tuple[list[WorkItem], float | None]:
        """Up to ``n`` parts from the open lanes, by pacer and weight; else how long to wait
        (None: nothing is waiting in an open lane)."""
        ready = [lane for lane in self.lanes.values() if lane.open and lane.queue]
        if not ready:
            return [], None
        allowances = []
        for lane in ready:
            allow = len(lane.queue)
            if lane.pacer is not None:
                allow = min(allow, lane.pacer.allowance(now))
            allowances.append((lane, allow))
        counts = share_out(n, allowances)
        batch: list[WorkItem] = []
        for (lane, _), k in zip(allowances, counts, strict=True):
            if k:
                if lane.pacer is not None:
                    lane.pacer.take(now, k)
                queue = lane.queue
                batch += [queue.popleft() for _ in range(k)]
        if batch:
            return batch, 0.0
        wait = min(
            (lane.pacer.next_time(now) - now for lane in ready if lane.pacer is not None),
            default=0.05,
        )
        return [], min(max(wait, 0.002), 0.05)

    async def _arm_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._queued.clear()
            if not any(lane.open and lane.queue for lane in self.lanes.values()):
                await self._queued.wait()
                continue
            target = self.arm_target
            if len(self.armed) >= max(1, target // 2):
                await asyncio.sleep(0.002)
                continue
            n = min(max(target - len(self.armed), 1), ARM_BATCH)
            batch, wait = self._pick(n, loop.time())
            if not batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._queued.wait(), wait or 0.05)
                continue
            try:
                batch = await self._arm(batch)
            except Exception:
                log.exception("%s: could not mark recipients in flight; retrying", self.name)
                for item in reversed(batch):
                    self.lane(item.job.run).queue.appendleft(item)
                await asyncio.sleep(0.5)
                continue
            # A gate may have closed while the ledger marked: _hand_over holds its parts.
            self._hand_over(batch, {item.job.run for item in batch})
            self._m_queue.set(self.backlog)

    async def _control_loop(self) -> None:
        loop = asyncio.get_running_loop()
        senders = [w for w in self.workers if w.sends]
        while True:
            await asyncio.sleep(CONTROL_TICK)
            now = loop.time()
            for worker in senders:
                worker.control_tick(now)

    def add_worker(self, worker: BindWorker) -> None:
        self.workers.append(worker)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.started_at = loop.time()
        self._tasks = [
            loop.create_task(self._arm_loop(), name=f"arm {self.name}"),
            loop.create_task(self._control_loop(), name=f"rate control {self.name}"),
        ]
        for worker in self.workers:
            worker.start()

    @property
    def binds_up(self) -> int:
        return sum(1 for w in self.workers if w.sends and w.is_up)

    def down_for(self, now: float) -> float:
        """Seconds since a sending bind of this route was last up (0 while one is)."""
        if self.binds_up:
            return 0.0
        return now - (self.last_up if self.last_up is not None else self.started_at)

    @property
    def backlog(self) -> int:
        return sum(len(lane.queue) for lane in self.lanes.values()) + len(self.armed)

    def recent_rate(self) -> int:
        """Parts this route's binds had accepted over the last second."""
        return sum(w.accepted_1s.total for w in self.workers if w.sends)

    def lane_backlog(self, run: object) -> int:
        """``run``'s parts queued here (armed parts of every campaign included: they go first)."""
        lane = self.lanes.get(run)
        return (len(lane.queue) if lane is not None else 0) + len(self.armed)

    def enqueue(self, item: WorkItem) -> None:
        """A freshly claimed part: it is armed (marked IN_FLIGHT) before any write."""
        self.lane(item.job.run).queue.append(item)
        if not self._queued.is_set():
            self._queued.set()

    def retry(self, item: WorkItem) -> None:
        """A part already IN_FLIGHT goes again: straight to the front of the armed queue,
        or, while its lane is closed (paused, cancelled, quiet hours), to the front of the
        lane, to wait for the gate like the rest (the armer does not mark it again)."""
        lane = self.lanes.get(item.job.run)
        if lane is not None and not lane.open:
            lane.queue.appendleft(item)
            return
        self.armed.appendleft(item)
        if not self._work.is_set():
            self._work.set()

    def note_sent(self, _n: int) -> None:
        self._m_queue.set(self.backlog)

    def evict(self, run: object) -> list[WorkItem]:
        """Take ``run``'s unwritten parts out of the queues (route down, stop, cancel)."""
        evicted: list[WorkItem] = []
        lane = self.lanes.get(run)
        if lane is not None:
            evicted += lane.queue
            lane.queue.clear()
        keep = [item for item in self.armed if item.job.run is not run]
        evicted += [item for item in self.armed if item.job.run is run]
        self.armed.clear()
        self.armed.extend(keep)
        self._m_queue.set(self.backlog)
        return evicted

    async def wait_work(self) -> None:
        self._work.clear()
        if self.armed:
            return
        await self._work.wait()

    async def close(self, drain_timeout: float) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(w.close(drain_timeout) for w in self.workers))
