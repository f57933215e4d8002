"""Start/stop the node-smpp SMSC test peer (tests/peers/nodesmpp/server.js).

Usage::

    from tests.peers.nodesmpp import start_nodesmpp

    with start_nodesmpp("smppclient1", "password") as smsc:
        client = smpplib.client.Client(smsc.host, smsc.port, timeout=5)
        ...
    stats = smsc.stop()  # idempotent; the ``with`` block already stopped it

``start_nodesmpp`` installs the pinned npm dependencies on first use (``npm ci``
under an inter-process file lock), starts ``node server.js 0``, waits for the
``LISTENING <port>`` line and returns a :class:`NodeSmpp`. ``stop()`` sends
SIGTERM, waits (bounded), kills if needed and returns the server's final
``STATS`` counters as a dict.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

NODESMPP_DIR = Path(__file__).resolve().parent / "nodesmpp"
SERVER_JS = NODESMPP_DIR / "server.js"

INSTALL_TIMEOUT_S = 300.0
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


class NodeSmppUnavailable(RuntimeError):
    """``node`` (or ``npm``) is not on PATH."""


def node_available() -> bool:
    return shutil.which("node") is not None


def _pinned_smpp_version() -> str:
    pkg = json.loads((NODESMPP_DIR / "package.json").read_text())
    return str(pkg["dependencies"]["smpp"])


def _installed_smpp_version() -> str | None:
    installed = NODESMPP_DIR / "node_modules" / "smpp" / "package.json"
    try:
        return str(json.loads(installed.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def _is_installed() -> bool:
    return _installed_smpp_version() == _pinned_smpp_version()


def _lock_path() -> Path:
    # Outside the work tree so no untracked file is left behind.
    key = hashlib.sha256(str(NODESMPP_DIR).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"smsblast-nodesmpp-{key}.lock"


def ensure_installed(timeout: float = INSTALL_TIMEOUT_S) -> None:
    """Install node_modules for the peer if missing. Idempotent and race-free."""
    if _is_installed():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise NodeSmppUnavailable("npm is not on PATH; cannot install the node-smpp test peer")
    deadline = time.monotonic() + timeout
    with open(_lock_path(), "a+") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError("timed out waiting for the node-smpp install lock") from None
                time.sleep(0.2)
        try:
            if _is_installed():  # another process finished it while we waited
                return
            has_lock = (NODESMPP_DIR / "package-lock.json").exists()
            cmd = [npm, "ci" if has_lock else "install", "--no-audit", "--no-fund"]
            try:
                proc = subprocess.run(
                    cmd,
                    cwd=NODESMPP_DIR,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=max(1.0, deadline - time.monotonic()),
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"{' '.join(cmd)} timed out after {timeout:.0f}s") from None
            if proc.returncode != 0 or not _is_installed():
                raise RuntimeError(
                    f"{' '.join(cmd)} failed in {NODESMPP_DIR} (rc={proc.returncode}):\n"
                    f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
                )
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _pump(stream: IO[str], sink: list[str], lines: queue.Queue[str | None] | None) -> None:
    try:
        for line in stream:
            line = line.rstrip("\n")
            sink.append(line)
            if lines is not None:
                lines.put(line)
    except (OSError, ValueError):
        pass
    finally:
        if lines is not None:
            lines.put(None)


@dataclass
class NodeSmpp:
    """A running node-smpp SMSC. Use as a context manager or call :meth:`stop`."""

    host: str
    port: int
    process: subprocess.Popen[str]
    system_id: str = ""
    password: str = ""
    stdout_lines: list[str] = field(default_factory=list, repr=False)
    stderr_lines: list[str] = field(default_factory=list, repr=False)
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue, repr=False)
    _threads: list[threading.Thread] = field(default_factory=list, repr=False)
    _stats: dict[str, Any] | None = field(default=None, repr=False)
    _io_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __enter__(self) -> NodeSmpp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_line(self, deadline: float) -> str | None:
        """Next stdout line, or None on EOF. Raises TimeoutError at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for node-smpp output")
        try:
            return self._lines.get(timeout=remaining)
        except queue.Empty:
            raise TimeoutError("timed out waiting for node-smpp output") from None

    def snapshot(self, timeout: float = 5.0) -> dict[str, Any]:
        """Current counters of the running server (asks it over stdin)."""
        with self._io_lock:
            if self.process.poll() is not None:
                raise RuntimeError(f"node-smpp is not running (rc={self.process.returncode})")
            assert self.process.stdin is not None
            self.process.stdin.write("stats\n")
            self.process.stdin.flush()
            deadline = time.monotonic() + timeout
            while True:
                line = self._next_line(deadline)
                if line is None:
                    raise RuntimeError("node-smpp exited while asked for stats")
                if line.startswith("STATS "):
                    return dict(json.loads(line[len("STATS ") :]))

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> dict[str, Any]:
        """SIGTERM, bounded wait, then SIGKILL. Returns the final STATS counters."""
        if self._stats is not None:
            return self._stats
        proc = self.process
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        for t in self._threads:
            t.join(timeout=timeout)
        for line in reversed(self.stdout_lines):
            if line.startswith("STATS "):
                self._stats = dict(json.loads(line[len("STATS ") :]))
                return self._stats
        raise RuntimeError(
            f"node-smpp exited (rc={proc.returncode}) without a STATS line; stderr:\n"
            + "\n".join(self.stderr_lines[-50:])
        )


def start_nodesmpp(
    system_id: str,
    password: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    receipt_delay_ms: int = 0,
    start_timeout: float = START_TIMEOUT_S,
    install_timeout: float = INSTALL_TIMEOUT_S,
) -> NodeSmpp:
    """Install (if needed) and start the node-smpp SMSC on a loopback port."""
    node = shutil.which("node")
    if node is None:
        raise NodeSmppUnavailable("node is not on PATH")
    ensure_installed(install_timeout)
    env = dict(os.environ)
    env.update(
        SMSC_HOST=host,
        SMSC_SYSTEM_ID=system_id,
        SMSC_PASSWORD=password,
        SMSC_RECEIPT_DELAY_MS=str(receipt_delay_ms),
    )
    env.pop("SMSC_IGNORE_STDIN", None)
    # stdin stays a pipe we hold open: if this Python process dies, node sees EOF and exits.
    proc = subprocess.Popen(
        [node, str(SERVER_JS), str(port)],
        cwd=NODESMPP_DIR,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    smsc = NodeSmpp(host=host, port=0, process=proc, system_id=system_id, password=password)
    assert proc.stdout is not None and proc.stderr is not None
    smsc._threads = [
        threading.Thread(
            target=_pump,
            args=(proc.stdout, smsc.stdout_lines, smsc._lines),
            name="nodesmpp-stdout",
            daemon=True,
        ),
        threading.Thread(
            target=_pump,
            args=(proc.stderr, smsc.stderr_lines, None),
            name="nodesmpp-stderr",
            daemon=True,
        ),
    ]
    for t in smsc._threads:
        t.start()
    deadline = time.monotonic() + start_timeout
    try:
        while True:
            line = smsc._next_line(deadline)
            if line is None:
                proc.wait(timeout=5)
                smsc._threads[1].join(timeout=2)
                raise RuntimeError(
                    f"node-smpp exited before listening (rc={proc.returncode}); stderr:\n"
                    + "\n".join(smsc.stderr_lines[-50:])
                )
            if line.startswith("LISTENING "):
                smsc.port = int(line.split()[1])
                return smsc
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        raise


__all__ = [
    "NODESMPP_DIR",
    "NodeSmpp",
    "NodeSmppUnavailable",
    "ensure_installed",
    "node_available",
    "start_nodesmpp",
]
