"""Per-route pools of throttled binds pulling from one queue.

Theory of operation
-------------------
Each route owns a :class:`RoutePool`: two in-memory queues of parts and one
:class:`BindWorker` per configured bind. Claimed recipients wait in ``queue``
(PENDING in the ledger: after a crash they are simply sent again). The arming
task moves them, a batch at a time, to ``armed`` once the ledger has durably
marked them IN_FLIGHT: only armed parts are ever written, so a crash can leave
at most the armed buffer plus the windows UNKNOWN. The buffer is kept just deep
enough to keep every bind busy (window + 100 ms of its rate).

A worker loops: wait for armed work, wait for a free window slot, take up to
that many tokens from its own rate limiter (a batch per pass, never a wake per
message), then write that many submit_sm.
Routes share nothing, so a slow or dead SMSC only fills its own queue; the
campaign parks the overflow in the ledger instead of stalling the reader
(no head-of-line blocking between routes).

Every part's outcome comes back through one callback (``on_outcome``), which
the campaign turns into ledger rows, retries and metrics. ESME_RTHROTTLED also
pauses the bind that got it (a bind-wide pause, doubling while the SMSC keeps
throttling), rather than delaying messages one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
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
from smsblast.engine.jobs import WorkItem
from smsblast.ratelimit import AsyncRateLimiter, LimiterClosed
from smsblast.smpp.constants import Status
from smsblast.smpp.errors import LocalProtocolError
from smsblast.smpp.pdu import DeliverSm
from smsblast.smpp.receipt import IdFormat

log = logging.getLogger("smsblast.engine")

OutcomeHandler = Callable[["BindWorker", WorkItem, SubmitOutcome], None]
Armer = Callable[[list[WorkItem]], Awaitable[None]]  # marks the items' jobs IN_FLIGHT

#: Each rate window is enforced over W + 5 ms, so network jitter between our send
#: and the SMSC's receive cannot push its 1-second count over the TPS (~0.5% of rate).
LIMITER_GUARD = 0.005
THROTTLE_PAUSE_MIN = 0.05
THROTTLE_PAUSE_MAX = 1.0


class BindWorker:
    def __init__(
        self,
        pool: RoutePool,
        config: BindConfig,
        smsc_index: int,
        tps: float,
        on_deliver: Callable[[DeliverSm], None] | None,
        id_format: IdFormat = IdFormat.HEX,
        key_prefix: str = "",
    ) -> None:
        self.pool = pool
        self.config = config
        self.name = config.label()
        self.smsc_index = smsc_index
        self.tps = tps
        #: message ids from this bind's SMSC: how to read them, and the prefix that
        #: keeps two SMSCs' ids apart in the ledger (receipts use the same prefix).
        self.id_format = id_format
        self.key_prefix = key_prefix
        self.limiter = AsyncRateLimiter(tps, guard=LIMITER_GUARD)
        self.bind = Bind(config, on_deliver=on_deliver, on_state=self._on_state)
        self.sends = config.mode is not BindMode.RECEIVER
        self._task: asyncio.Task[None] | None = None
        self._pause_until = 0.0
        self._pause = THROTTLE_PAUSE_MIN
        labels = (pool.name, self.name)
        self._m_submits = m.BIND_SUBMITS.labels(*labels)
        self._m_window = m.WINDOW_IN_USE.labels(*labels)
        m.TPS_CONFIGURED.labels(*labels).set(tps if self.sends else 0)
        m.TPS_TARGET.labels(*labels).set(tps if self.sends else 0)
        m.WINDOW_SIZE.labels(*labels).set(config.window)
        m.BIND_UP.labels(*labels).set(0)

    @property
    def is_up(self) -> bool:
        return self.bind.is_ready

    def _on_state(self, _label: str, up: bool) -> None:
        m.BIND_UP.labels(self.pool.name, self.name).set(1 if up else 0)
        if up:
            self.pool.last_up = asyncio.get_running_loop().time()
        else:
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
        if outcome.status == Status.RTHROTTLED:
            self.throttled(asyncio.get_running_loop().time())
        elif outcome.status == 0:
            self.accepted()
        self.pool.on_outcome(self, item, outcome)

    async def close(self, drain_timeout: float) -> None:
        self.limiter.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.bind.close(drain_timeout=drain_timeout)


class RoutePool:
    def __init__(self, name: str, queue_cap: int, on_outcome: OutcomeHandler, arm: Armer) -> None:
        self.name = name
        self.queue: deque[WorkItem] = deque()  # claimed, not yet armed
        self.armed: deque[WorkItem] = deque()  # IN_FLIGHT in the ledger, ready to write
        self.queue_cap = queue_cap
        self.on_outcome = on_outcome
        self._arm = arm
        self.workers: list[BindWorker] = []
        self.last_up: float | None = None
        self.started_at = 0.0
        self._work = asyncio.Event()  # armed work for the pumps
        self._queued = asyncio.Event()  # queued work for the armer
        self._armer: asyncio.Task[None] | None = None
        self._m_queue = m.ROUTE_QUEUE.labels(name)

    @property
    def arm_target(self) -> int:
        """Armed parts that keep every sending bind busy: window + 100 ms of its rate."""
        return sum(w.config.window + int(w.limiter.rate * 0.1) + 1 for w in self.workers if w.sends)

    async def _arm_loop(self) -> None:
        while True:
            target = self.arm_target
            if not self.queue or len(self.armed) >= target // 2:
                self._queued.clear()
                if not self.queue:
                    await self._queued.wait()
                else:
                    await asyncio.sleep(0.002)
                continue
            n = min(len(self.queue), max(target - len(self.armed), 1), 5000)
            batch = [self.queue.popleft() for _ in range(n)]
            try:
                await self._arm(batch)
            except Exception:
                log.exception("%s: could not mark recipients in flight; retrying", self.name)
                self.queue.extendleft(reversed(batch))
                await asyncio.sleep(0.5)
                continue
            self.armed.extend(batch)
            self._m_queue.set(len(self.queue) + len(self.armed))
            if not self._work.is_set():
                self._work.set()

    def add_worker(self, worker: BindWorker) -> None:
        self.workers.append(worker)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.started_at = loop.time()
        self._armer = loop.create_task(self._arm_loop(), name=f"arm {self.name}")
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
        return len(self.queue) + len(self.armed)

    def enqueue(self, item: WorkItem) -> None:
        """A freshly claimed part: it is armed (marked IN_FLIGHT) before any write."""
        self.queue.append(item)
        if not self._queued.is_set():
            self._queued.set()

    def retry(self, item: WorkItem) -> None:
        """A part already IN_FLIGHT goes again: straight to the front of the armed queue."""
        self.armed.appendleft(item)
        if not self._work.is_set():
            self._work.set()

    def note_sent(self, _n: int) -> None:
        self._m_queue.set(len(self.queue) + len(self.armed))

    def evict(self, run: object) -> list[WorkItem]:
        """Take ``run``'s unwritten parts out of both queues (the route is down)."""
        evicted: list[WorkItem] = []
        for queue in (self.queue, self.armed):
            keep = [item for item in queue if item.job.run is not run]
            evicted += [item for item in queue if item.job.run is run]
            queue.clear()
            queue.extend(keep)
        self._m_queue.set(self.backlog)
        return evicted

    async def wait_work(self) -> None:
        self._work.clear()
        if self.armed:
            return
        await self._work.wait()

    async def close(self, drain_timeout: float) -> None:
        if self._armer is not None:
            self._armer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._armer
        await asyncio.gather(*(w.close(drain_timeout) for w in self.workers))
