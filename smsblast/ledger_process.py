"""The ledger in a process of its own, so SQLite work runs on the second core.

Why: measured on the 2-core machine (``python -m loadtest e2e``, 600k recipients), the engine
ran its event loop and the ledger's worker thread in one interpreter, and the two together
never used more than one core: the ledger thread held the GIL for its Python half (binding
rows, building results) and the loop waited for it, ~45% of the samples each. The engine was
GIL-bound with most of the second core idle. In a process of its own the ledger costs the
loop only the pickling of each batch.

Theory of operation
-------------------
:class:`ProcessBackend` (``AsyncLedger(path, process=True)``) starts
``python -m smsblast.ledger_process FD PATH OPTIONS`` with one end of a socket pair and talks
to it from the event loop: each call is a frame (4-byte length, pickled ``(name, args)``),
answered by a frame ``(ok, value)``. The child runs the calls one at a time in the order they
were written, so the ledger's one-transaction-per-call guarantees are those of the thread it
replaces; calls are pipelined (the engine writes the next batch while the child still works
on the last), and replies come back in order, each resolving the oldest waiting future.

Rows cross as plain tuples: pickling a NamedTuple costs a Python call per row
(``__getnewargs__``), measured at 8% of the engine's samples; the child rebuilds them.

A second thread copies the WAL into the database file every second (smsblast.checkpointer),
so the COMMIT that reaches SQLite's checkpoint threshold does not make a claim wait for ~200 MB
of copying.

Crash semantics. The child answers a call only after its transaction committed, and the
engine acts (submits, commits offsets) only on the answer, so a reply lost with a dead engine
leaves nothing sent that the ledger does not know about. The child ignores SIGINT and SIGTERM
(a terminal's Ctrl-C and systemd's stop reach the whole process group): the engine drains and
then closes it. When the engine dies (``kill -9``) the child reads EOF, closes the database
and exits; a restarted engine that opens the file meanwhile waits on SQLite's lock.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any, Final

from smsblast.checkpointer import Checkpointer
from smsblast.gctune import tune_for_throughput
from smsblast.ledger import Claim, LedgerError, Outcome, ReceiptRow, SqliteLedger, open_failed

__all__ = ["ProcessBackend", "serve"]

_LEN: Final = struct.Struct("!I")
#: The calls a client may make (the Ledger protocol), and for each the position of its row
#: batch and the NamedTuple the child rebuilds its rows into (None: plain tuples serve).
_CALLS: Final[dict[str, tuple[int, Callable[[Any], Any] | None] | None]] = {
    "open_campaign": None,
    "set_control": None,
    "control": None,
    "claim": (1, Claim._make),
    "record_rejects": (1, None),
    "record_outcomes": (1, Outcome._make),
    "record_receipts": (0, ReceiptRow._make),
    "park_unmatched": (0, ReceiptRow._make),
    "match_parked": None,
    "pending": None,
    "pending_by_route": None,
    "in_flight": None,
    "mark": None,
    "counts": None,
    "counts_by_route": None,
    "report": None,
    "campaign_info": None,
    "campaigns": None,
}
_CLOSE: Final = "close"
_EXIT_TIMEOUT: Final = 30.0


def frame(obj: Any) -> bytes:
    """One message on the wire: its length, then its pickle."""
    data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


def _read_frame(stream: IO[bytes]) -> Any:
    """The next message from a blocking stream; EOFError at the end."""
    head = stream.read(_LEN.size)
    if len(head) < _LEN.size:
        raise EOFError
    (size,) = _LEN.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a LedgerError that says what it was."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return LedgerError(f"{type(exc).__name__}: {exc}")
    return exc


def _run(ledger: SqliteLedger, name: str, args: tuple[Any, ...]) -> Any:
    if name not in _CALLS:
        raise LedgerError(f"no such ledger call: {name!r}")
    rows = _CALLS[name]
    make = None if rows is None else rows[1]
    if rows is not None and make is not None:
        at = rows[0]
        args = (*args[:at], list(map(make, args[at])), *args[at + 1 :])
    return getattr(ledger, name)(*args)


def serve(sock: socket.socket, path: str, options: dict[str, Any]) -> int:
    """The child's loop: open the ledger, answer calls until ``close`` or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    reader = sock.makefile("rb")
    try:
        ledger = SqliteLedger(path, **options)
    except Exception as exc:
        sock.sendall(frame((False, _portable(exc))))
        return 1
    checkpointer = None if path == ":memory:" else Checkpointer(path)
    try:
        if checkpointer is not None:
            checkpointer.start()
        sock.sendall(frame((True, None)))
        while True:
            try:
                name, args = _read_frame(reader)
            except (EOFError, OSError):
                return 0  # the engine is gone
            if name == _CLOSE:
                break
            try:
                reply: tuple[bool, Any] = (True, _run(ledger, name, args))
            except Exception as exc:
                reply = (False, _portable(exc))
            try:
                sock.sendall(frame(reply))
            except OSError:
                return 0
    finally:
        if checkpointer is not None:
            checkpointer.stop()  # first: the ledger's close is then the last, and tidies the WAL
        ledger.close()
    with contextlib.suppress(OSError):
        sock.sendall(frame((True, None)))
    return 0


def _child_env() -> dict[str, str]:
    """This environment, with the directory this smsblast came from first on the path."""
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (here, env.get("PYTHONPATH"))))
    return env


class _Replies(asyncio.Protocol):
    """Reads reply frames and resolves the oldest waiting future with each."""

    def __init__(self, waiting: collections.deque[asyncio.Future[Any]]) -> None:
        self._buf = bytearray()
        self._waiting = waiting
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        at = 0
        while len(buf) - at >= _LEN.size:
            (size,) = _LEN.unpack_from(buf, at)
            end = at + _LEN.size + size
            if len(buf) < end:
                break
            ok, value = pickle.loads(memoryview(buf)[at + _LEN.size : end])
            at = end
            fut = self._waiting.popleft()
            if fut.done():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
        del buf[:at]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class ProcessBackend:
    """A :class:`~smsblast.ledger.SqliteLedger` at ``path`` in a child process, driven
    from the running event loop (see the module docstring). ``options`` are SqliteLedger's
    keyword arguments (JSON-able ones). An error opening the ledger is raised by every call;
    a child that dies makes every pending and later call raise :class:`LedgerError`."""

    def __init__(self, path: str, **options: Any) -> None:
        parent, child = socket.socketpair()
        try:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "smsblast.ledger_process",
                    str(child.fileno()),
                    path,
                    json.dumps(options),
                ],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                env=_child_env(),
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        loop = asyncio.get_running_loop()
        self._waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._opened: asyncio.Future[Any] = loop.create_future()
        self._opened.add_done_callback(self._on_opened)
        self._waiting.append(self._opened)
        self._early: list[bytes] = []  # frames written before the connection was made
        self._transport: asyncio.Transport | None = None
        self._gone: LedgerError | None = None
        self._closing = False
        self._failure: asyncio.Future[LedgerError] = loop.create_future()
        self._connect = loop.create_task(self._start(parent))

    @property
    def pid(self) -> int:
        return self._proc.pid

    async def _start(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(
            lambda: _Replies(self._waiting), sock=sock
        )
        protocol.lost.add_done_callback(self._on_lost)
        transport.write(b"".join(self._early))
        self._early.clear()
        self._transport = transport

    def _on_opened(self, opened: asyncio.Future[Any]) -> None:
        exc = None if opened.cancelled() else opened.exception()
        if exc is not None:
            self._gone = open_failed(exc)

    def failure(self) -> asyncio.Future[LedgerError]:
        """Resolved with the error when the child stops serving without being closed."""
        return self._failure

    def _on_lost(self, _: object) -> None:
        if self._gone is None:
            self._gone = LedgerError(f"the ledger process is gone (exit code {self._exit_code()})")
        if not self._closing and not self._failure.done():
            self._failure.set_result(self._gone)
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_exception(self._gone)

    async def call(self, name: str, args: tuple[Any, ...]) -> Any:
        """Write the call now (so calls reach the child in the order made), await its reply."""
        if self._gone is not None:
            raise LedgerError(str(self._gone)) from self._gone.__cause__
        rows = _CALLS.get(name)
        if rows is not None:
            at = rows[0]
            args = (*args[:at], list(map(tuple, args[at])), *args[at + 1 :])
        data = frame((name, args))
        if self._transport is None:
            self._early.append(data)
        else:
            self._transport.write(data)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        return await fut

    def _exit_code(self) -> int | None:
        """The child's exit code, waiting a moment for it: the socket closes as it exits."""
        try:
            return self._proc.wait(0.5)
        except subprocess.TimeoutExpired:
            return None

    async def close(self) -> None:
        """Ask the child to close the ledger and wait for it to exit."""
        self._closing = True
        try:
            await self.call(_CLOSE, ())
        except LedgerError:
            pass  # gone already, or never opened: SQLite committed or rolled back
        finally:
            await asyncio.gather(self._connect, return_exceptions=True)
            if self._transport is not None:
                self._transport.close()
            loop = asyncio.get_running_loop()
            try:
                await asyncio.wait_for(loop.run_in_executor(None, self._proc.wait), _EXIT_TIMEOUT)
            except TimeoutError:
                self._proc.kill()
                await loop.run_in_executor(None, self._proc.wait)


def main(argv: Sequence[str]) -> int:
    fd, path, options = argv
    tune_for_throughput()
    return serve(socket.socket(fileno=int(fd)), path, json.loads(options))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
