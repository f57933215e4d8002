"""Run a :class:`Simulator` from blocking code: on its own event loop, in a background thread.

with SimulatorThread(profile) as smsc:
    client = smpplib.client.Client(smsc.host, smsc.port)
    ...
    assert smsc.stats()["totals"]["submits_accepted"] == 10
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from types import TracebackType
from typing import Any

from smsblast.simulator.profile import Profile
from smsblast.simulator.server import Simulator

__all__ = ["SimulatorThread"]

_START_TIMEOUT_S = 30.0


class SimulatorThread:
    """A simulator on a daemon thread; ``stats()`` is safe to call from any thread."""

    def __init__(self, profile: Profile | None = None, *, use_uvloop: bool = False) -> None:
        self.sim = Simulator(profile)
        self._use_uvloop = use_uvloop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def profile(self) -> Profile:
        return self.sim.profile

    @property
    def host(self) -> str:
        return self.sim.host

    @property
    def port(self) -> int:
        return self.sim.port

    @property
    def http_port(self) -> int | None:
        return self.sim.http_port

    def _new_loop(self) -> asyncio.AbstractEventLoop:
        if self._use_uvloop:
            try:
                import uvloop
            except ImportError:
                pass
            else:
                return uvloop.new_event_loop()
        return asyncio.new_event_loop()

    def start(self) -> None:
        """Start the loop thread and the simulator.

        Raises:
            OSError: the simulator could not listen.
        """
        loop = self._loop = self._new_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="smsc-sim", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.sim.start(), loop).result(_START_TIMEOUT_S)

    def stop(self) -> None:
        """Stop the simulator (stats file written), then the loop and its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.sim.stop(), loop).result(_START_TIMEOUT_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_START_TIMEOUT_S)
            loop.close()
            self._loop = self._thread = None

    def stats(self) -> dict[str, Any]:
        """The simulator's stats, computed on its own loop."""
        loop = self._loop
        if loop is None:
            return self.sim.stats()
        result: Future[dict[str, Any]] = Future()

        def compute() -> None:
            try:
                result.set_result(self.sim.stats())
            except Exception as exc:  # pragma: no cover - stats() does not raise
                result.set_exception(exc)

        loop.call_soon_threadsafe(compute)
        return result.result(_START_TIMEOUT_S)

    def __enter__(self) -> SimulatorThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
