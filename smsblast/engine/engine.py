"""The engine: routes and binds shared by every campaign, campaigns run side by side.

The engine owns what campaigns share: one :class:`RoutePool` per route with
its binds and limiters, the receipt correlator, the ledger, the opt-out list,
the router, the dead-letter producer and the clock. Each :class:`CampaignRun`
reads its own segment through its own consumer group and feeds the shared
pools; a repeating campaign runs its waves one after another, each wave a run
of its own (``<campaign>@<date>``: own dedup scope, consumer group, report).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from smsblast import metrics as m
from smsblast.client import SubmitOutcome
from smsblast.config import Campaign, EngineConfig
from smsblast.engine.campaign import CampaignRun, dead_letter_value
from smsblast.engine.jobs import Job, WorkItem
from smsblast.engine.pool import BindWorker, RoutePool
from smsblast.engine.receipts import ReceiptCorrelator
from smsblast.ledger import AsyncLedger, Control, LedgerError, State
from smsblast.optout import OptOutList
from smsblast.routing import Router
from smsblast.schedule import Clock, SystemClock, Wave, wave_for, waves

log = logging.getLogger("smsblast.engine")


class Engine:
    def __init__(
        self,
        config: EngineConfig,
        campaigns: list[Campaign],
        ledger: AsyncLedger,
        optout: OptOutList | None = None,
        *,
        max_in_memory: int = 50_000,
        route_queue_cap: int = 20_000,
        route_down_grace: float = 300.0,
        drain_timeout: float = 10.0,
        rng: random.Random | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.ledger = ledger
        m.watch_ledger_disk(config.ledger.path)
        self.optout = optout if optout is not None else OptOutList()
        self.router = Router.from_config(config)
        self.max_in_memory = max_in_memory
        self.route_down_grace = route_down_grace
        self.drain_timeout = drain_timeout
        self.rng = rng or random.Random()
        self.receipts = ReceiptCorrelator(ledger)
        self.pools: dict[str, RoutePool] = {}
        for route, route_cfg in config.routes.items():
            pool = RoutePool(route, route_queue_cap, self._on_outcome, self._arm, self._disarm)
            for index, smsc in enumerate(route_cfg.smscs):
                prefix = f"{smsc.label}:"
                on_deliver = self.receipts.handler(smsc.receipt_format, prefix, route)
                for bind_cfg in smsc.bind_configs(route):
                    worker = BindWorker(
                        pool,
                        bind_cfg,
                        index,
                        smsc.tps_per_bind,
                        on_deliver,
                        smsc.msg_id_format,
                        prefix,
                    )
                    pool.add_worker(worker)
            self.pools[route] = pool
        now = self.clock.now()
        self._waves: dict[str, list[Wave]] = {c.name: waves(c) for c in campaigns}
        self.runs = [CampaignRun(self, c, wave_for(self._waves[c.name], now)) for c in campaigns]
        self._started = False
        self._producer: AIOKafkaProducer | None = None
        self._dlq_ready: set[str] = set()
        self._stop = asyncio.Event()
        self._background: set[asyncio.Future[Any]] = set()  # ledger calls nobody awaits

    def _on_outcome(self, worker: BindWorker, item: WorkItem, outcome: SubmitOutcome) -> None:
        item.job.run.on_part_outcome(worker, item, outcome)

    async def _arm(self, items: list[WorkItem]) -> list[WorkItem]:
        """Mark the items' recipients IN_FLIGHT, durably, before any part is written; return
        the items to send.

        A recipient checked against the opt-out list before the list grew is checked again
        here, the last moment before it can be sent: one who opted out while waiting in
        memory is settled SUPPRESSED, and none of its parts is returned."""
        by_run: dict[str, list[str]] = {}
        jobs = []
        dropped = refused = 0
        for item in items:
            job = item.job
            if job.armed:
                continue
            if job.suppressed:  # refused when one of its earlier parts came here
                dropped += 1
                continue
            if self.refused_since_checked(job):
                refused += 1
                dropped += 1
                continue
            job.armed = True
            jobs.append(job)
            by_run.setdefault(job.run.name, []).append(job.msisdn)
        try:
            for name, msisdns in by_run.items():
                await self.ledger.mark(name, msisdns, State.IN_FLIGHT)
        except BaseException:
            for job in jobs:
                job.armed = False
            raise
        if not dropped:
            return items
        if refused:
            log.info("%d queued recipient(s) opted out meanwhile: not sent", refused)
        return [item for item in items if not item.job.suppressed]

    def refused_since_checked(self, job: Job) -> bool:
        """The last look at the opt-out list before ``job``'s parts may be written: if the
        list changed since the job was checked and now has its number, the job is refused
        (settled SUPPRESSED) and this is True; else the job is up to date with the list."""
        optout = self.optout
        if job.optout_version == optout.version:
            return False
        if job.msisdn in optout:
            job.run.refuse(job)
            return True
        job.optout_version = optout.version
        return False

    def _disarm(self, jobs: list[Job]) -> None:
        """Jobs a closed gate took back before any part was written: PENDING again.

        ``armed`` is cleared now and the ledger call is made now, so it precedes (the ledger
        runs calls in order) the IN_FLIGHT mark that re-arms them when the gate opens. If
        the call fails they stay IN_FLIGHT, which is only more cautious."""
        by_run: dict[str, list[str]] = {}
        for job in jobs:
            job.armed = False
            by_run.setdefault(job.run.name, []).append(job.msisdn)
        for name, msisdns in by_run.items():
            call = asyncio.ensure_future(
                self.ledger.mark(name, msisdns, State.PENDING, only_from=State.IN_FLIGHT)
            )
            self._background.add(call)
            call.add_done_callback(self._background_done)

    def _background_done(self, call: asyncio.Future[Any]) -> None:
        self._background.discard(call)
        if not call.cancelled() and call.exception() is not None:
            log.error("could not mark held recipients pending: %s", call.exception())

    # ------------------------------------------------------------------ dead letters
    async def dead_letter(self, campaign: str, dead: list[tuple[Any, str, str]]) -> int:
        """Copy bad records to ``<campaign>.rejected`` with the reason; wait until stored.
        Returns how many. Kafka errors propagate (the caller retries the whole batch, so a
        retried batch may store some copies twice: the dead-letter topic is at-least-once,
        while the ledger's REJECTED rows are exact)."""
        topic = f"{campaign}.rejected"
        producer = await self._dead_letter_producer()
        if topic not in self._dlq_ready:
            await self._ensure_topic(topic)
            self._dlq_ready.add(topic)
        futures = [
            await producer.send(topic, key=rec.key, value=dead_letter_value(rec, r, d))
            for rec, r, d in dead
        ]
        await asyncio.gather(*futures)
        return len(futures)

    async def _dead_letter_producer(self) -> AIOKafkaProducer:
        """The started producer for dead letters; one that failed to start is closed and
        not kept, so the next call starts a new one."""
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.config.kafka.bootstrap_servers,
                linger_ms=5,
                **self.config.kafka.aiokafka_kwargs(),
            )
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _ensure_topic(self, topic: str) -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.config.kafka.bootstrap_servers,
            **self.config.kafka.aiokafka_kwargs(),
        )
        await admin.start()
        try:
            if topic not in await admin.list_topics():
                with contextlib.suppress(Exception):  # created meanwhile by someone else
                    await admin.create_topics([NewTopic(topic, 1, 1)])
        finally:
            await admin.close()

    # ------------------------------------------------------------------ lifecycle
    async def run(self, until_done: bool = True) -> None:
        """Run every campaign; with ``until_done`` return when all are complete,
        otherwise keep serving (receipts, metrics) until :meth:`stop`."""
        for pool in self.pools.values():
            pool.start()
        self._started = True
        receipts = asyncio.create_task(self.receipts.run(), name="receipts")
        runs = [
            asyncio.create_task(self._drive(r), name=f"campaign {r.cfg.name}") for r in self.runs
        ]
        stopper = asyncio.create_task(self._stop.wait())
        # The ledger's process dying ends the run: nothing more could be recorded, so
        # nothing more may be sent. What it had committed stands; a restart goes on from it.
        failure = self.ledger.failure()
        watched: set[asyncio.Future[Any]] = {stopper} if failure is None else {stopper, failure}
        try:
            pending: set[asyncio.Future[Any]] = set(runs)
            while pending:
                done, pending = await asyncio.wait(
                    pending | watched, return_when=asyncio.FIRST_COMPLETED
                )
                pending -= watched
                if failure is not None and failure in done:
                    log.error("%s: stopping", failure.result())
                    raise failure.result()
                for task in done:
                    if task is not stopper and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
                if stopper in done:
                    for r in self.runs:
                        r.stop()
                    with contextlib.suppress(TimeoutError):  # the runs enforce drain_timeout
                        await asyncio.wait_for(
                            asyncio.gather(*pending, return_exceptions=True),
                            self.drain_timeout + 30,
                        )
                    break
            if not until_done and not self._stop.is_set():
                await self._stop.wait()
        finally:
            stopper.cancel()
            for r in self.runs:
                r.stop()
            for task in runs:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*runs, return_exceptions=True)
            # With the ledger gone the receipts still buffered cannot be written: say so, go on.
            gone = (LedgerError,) if failure is not None and failure.done() else ()
            with contextlib.suppress(*gone):
                await self.receipts.flush()
            await asyncio.gather(*(p.close(self.drain_timeout) for p in self.pools.values()))
            with contextlib.suppress(*gone):
                await self.receipts.close()
            receipts.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receipts
            if self._producer is not None:
                await self._producer.stop()

    async def _drive(self, run: CampaignRun) -> None:
        """Run ``run``, then the campaign's later waves, each in its turn."""
        campaign = run.cfg
        all_waves = self._waves[campaign.name]
        while True:
            await run.run()
            if self._stop.is_set() or run.wave is None:
                return
            later = [w for w in all_waves if w.index > run.wave.index]
            if not later:
                return
            run = CampaignRun(self, campaign, later[0])
            self.runs.append(run)

    def stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ operator control
    def on_control(self, name: str, control: Control) -> None:
        """An operator paused, resumed or cancelled ``name`` (already in the ledger)."""
        for run in self.runs:
            if run.name == name and not run.finished.is_set():
                run.set_control(control)

    def status(self) -> dict[str, dict[str, Any]]:
        """Every run's status (admin API, progress display)."""
        return {run.name: run.status() for run in self.runs}

    def ready(self) -> bool:
        """Serving: started, not stopping, and at least one bind up to send with."""
        return (
            self._started
            and not self._stop.is_set()
            and any(pool.binds_up for pool in self.pools.values())
        )

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called (SIGTERM/SIGINT)."""
        return self._stop.is_set()
