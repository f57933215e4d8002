"""A supervised ESME bind: connect, bind, keep bound, reconnect, unbind.

Theory of operation
-------------------
:class:`Bind` owns at most one :class:`EsmeConnection` at a time and a
supervisor task that loops: connect (TCP_NODELAY, optional TLS) -> bind ->
serve until the connection closes -> back off -> again. Backoff is capped
exponential with full jitter; a bind refused by the SMSC (wrong password,
unknown system_id, bind failure) waits at least ``bind_error_backoff`` so a bad
credential never turns into a tight reconnect loop. One ticker per bind drives
the connection's timers (response timeouts, enquire_link).

Submitters call :meth:`wait_ready` / :meth:`wait_slot` and then
:meth:`send_submit` (callback API, no task or future per message), or the
convenience coroutine :meth:`submit` (a future per message; for tools and
tests, not the blast hot path). :meth:`close` stops taking work, drains the
window for a bounded time, unbinds and closes; whatever is still in flight then
resolves as UNKNOWN.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Callable
from typing import Any

from smsblast.client.config import BindConfig, BindMode
from smsblast.client.connection import (
    BindError,
    ConnectionClosed,
    DeliverFieldsHandler,
    DeliverHandler,
    EsmeConnection,
)
from smsblast.client.outcome import OutcomeKind, SubmitOutcome
from smsblast.client.window import Callback
from smsblast.smpp.constants import BIND_FAILURE_STATUSES
from smsblast.smpp.fast import SubmitTemplate

log = logging.getLogger("smsblast.client")

StateListener = Callable[[str, bool], None]  # (bind label, is_up)


def backoff_delay(attempt: int, low: float, high: float, rng: random.Random) -> float:
    """Capped exponential backoff with full jitter: uniform(low, min(high, low * 2**attempt))."""
    ceiling = min(high, low * (2 ** min(attempt, 30)))
    return rng.uniform(low, max(low, ceiling))


class Bind:
    def __init__(
        self,
        config: BindConfig,
        *,
        on_deliver: DeliverHandler | None = None,
        on_deliver_fields: DeliverFieldsHandler | None = None,
        on_state: StateListener | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.on_deliver = on_deliver
        self.on_deliver_fields = on_deliver_fields
        self.on_state = on_state
        self._rng = rng or random.Random()
        self._conn: EsmeConnection | None = None
        self._ready = asyncio.Event()
        self._refused = asyncio.Event()  # set while the SMSC refuses our credentials
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None
        self.last_error: Exception | None = None
        self.stats: dict[str, int] = {"connects": 0, "binds": 0, "bind_failures": 0}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._supervisor is None:
            self._supervisor = asyncio.get_running_loop().create_task(
                self._supervise(), name=f"bind {self.config.label()}"
            )

    async def __aenter__(self) -> Bind:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def is_ready(self) -> bool:
        conn = self._conn
        return conn is not None and self._ready.is_set() and not self._stopping

    @property
    def connection(self) -> EsmeConnection | None:
        return self._conn

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until bound.

        Raises:
            BindError: the SMSC refused the bind (wrong password, unknown
                system_id, bind failure): no point waiting out the timeout.
            TimeoutError: not bound within ``timeout`` (SMSC down, slow, ...).
        """
        ready = asyncio.ensure_future(self._ready.wait())
        refused = asyncio.ensure_future(self._refused.wait())
        try:
            done, _ = await asyncio.wait(
                {ready, refused}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ready.cancel()
            refused.cancel()
        if self._ready.is_set():
            return
        if refused in done and isinstance(self.last_error, BindError):
            raise self.last_error
        raise TimeoutError(f"{self.config.label()}: not bound within {timeout}s")

    async def _supervise(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        attempt = 0
        while not self._stopping:
            conn: EsmeConnection | None = None
            try:
                conn = await self._connect()
                self.stats["connects"] += 1
                await conn.bind()
                self.stats["binds"] += 1
                attempt = 0
                self.last_error = None
                self._refused.clear()
                self._conn = conn
                self._ready.set()
                self._notify(True)
                log.info("%s: bound (%s)", cfg.label(), cfg.mode.value)
                await self._serve(conn, loop)
            except asyncio.CancelledError:
                if conn is not None:
                    conn.abort()
                raise
            except (OSError, TimeoutError, BindError, ConnectionClosed) as exc:
                self.last_error = exc
                if isinstance(exc, BindError):
                    self.stats["bind_failures"] += 1
                    if exc.status in BIND_FAILURE_STATUSES:
                        self._refused.set()
                log.warning("%s: %s", cfg.label(), exc or type(exc).__name__)
                if conn is not None:
                    conn.abort()
            was_ready = self._ready.is_set()
            self._ready.clear()
            self._conn = None
            if was_ready:
                self._notify(False)
            if self._stopping:
                break
            delay = backoff_delay(attempt, cfg.reconnect_min, cfg.reconnect_max, self._rng)
            if (
                isinstance(self.last_error, BindError)
                and self.last_error.status in BIND_FAILURE_STATUSES
            ):
                delay = max(delay, cfg.bind_error_backoff)
            attempt += 1
            log.info("%s: reconnecting in %.2fs", cfg.label(), delay)
            await asyncio.sleep(delay)

    async def _connect(self) -> EsmeConnection:
        cfg = self.config
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(
                lambda: EsmeConnection(cfg, self.on_deliver, self.on_deliver_fields),
                cfg.host,
                cfg.port,
                ssl=cfg.tls,
                server_hostname=(cfg.tls_server_hostname or cfg.host) if cfg.tls else None,
            ),
            cfg.connect_timeout,
        )
        transport = conn._transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    async def _serve(self, conn: EsmeConnection, loop: asyncio.AbstractEventLoop) -> None:
        """Drive the connection's timers until it closes."""
        cfg = self.config
        period = max(0.01, min(1.0, cfg.response_timeout / 10, cfg.enquire_link_interval / 4))
        while not conn.closed.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(conn.closed), period)
            conn.tick(loop.time())
        exc = conn.closed.result()
        if not self._stopping:
            raise ConnectionClosed(f"connection lost: {exc}" if exc else "connection closed")

    def _notify(self, up: bool) -> None:
        if self.on_state is not None:
            self.on_state(self.config.label(), up)

    async def close(self, drain_timeout: float = 5.0, unbind_timeout: float = 2.0) -> None:
        """Stop taking work, wait up to ``drain_timeout`` for responses, unbind, close."""
        self._stopping = True
        conn = self._conn
        if conn is not None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + drain_timeout
            while len(conn.window) and not conn.closed.done() and loop.time() < deadline:
                await asyncio.sleep(0.01)
            await conn.unbind(unbind_timeout)
            conn.close_transport()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(conn.closed), unbind_timeout)
            conn.abort()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        self._ready.clear()

    # ------------------------------------------------------------------ submitting
    async def wait_slot(self) -> EsmeConnection:
        """Wait until bound with a free window slot; return the connection to use."""
        while True:
            if self._stopping:
                raise ConnectionClosed(f"{self.config.label()}: closing")
            if self.config.mode is BindMode.RECEIVER:
                raise ConnectionClosed(f"{self.config.label()}: a receiver bind cannot submit")
            await self._ready.wait()
            conn = self._conn
            if conn is None:
                continue
            try:
                await conn.wait_slot()
            except ConnectionClosed:
                # The supervisor has not noticed yet; give it a moment to clear _ready.
                await asyncio.sleep(0.005)
                continue
            return conn

    async def submit(
        self,
        template: SubmitTemplate,
        destination: str,
        short_message: bytes,
        *,
        esm_class: int = 0,
        data_coding: int = 0,
        tlvs: bytes = b"",
    ) -> SubmitOutcome:
        """Send one submit_sm and await its outcome (a future per message: not the hot path)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[SubmitOutcome] = loop.create_future()

        def done(_ctx: Any, outcome: SubmitOutcome) -> None:
            if not fut.done():
                fut.set_result(outcome)

        try:
            conn = await self.wait_slot()
            conn.send_submit(
                template,
                destination.encode("ascii"),
                short_message,
                done,
                None,
                esm_class,
                data_coding,
                tlvs,
            )
        except ConnectionClosed as exc:
            return SubmitOutcome(OutcomeKind.RETRYABLE, reason=f"not sent: {exc}")
        return await fut


__all__ = ["Bind", "BindError", "Callback", "backoff_delay"]
