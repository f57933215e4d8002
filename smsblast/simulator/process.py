"""Run the simulator in its own process, as a real SMSC would be: no shared event
loop, no shared GIL. Used by the engine's end-to-end tests and by loadtest/.

with simulator_process(profile, tmp_dir) as smsc:
    ...  # connect to 127.0.0.1:smsc.port
    smsc.stats()["totals"]["duplicates"]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import yaml

from smsblast.procs import stop_process
from smsblast.simulator.profile import Profile

__all__ = ["SimulatorProcess", "simulator_process"]


@dataclass
class SimulatorProcess:
    process: subprocess.Popen[str]
    port: int
    http_port: int

    def stats(self) -> dict[str, Any]:
        """The JSON stats document, over the simulator's HTTP endpoint."""
        url = f"http://127.0.0.1:{self.http_port}/stats"
        with urllib.request.urlopen(url, timeout=30) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data


@contextmanager
def simulator_process(
    profile: Profile, tmp_dir: str, *, new_session: bool = False
) -> Iterator[SimulatorProcess]:
    """Start ``python -m smsblast.simulator`` with ``profile`` (HTTP on a free port);
    terminate it on exit. ``new_session``: its own session, so a terminal's Ctrl-C reaches
    only the caller, which stops the simulator when it is done with it."""
    path = os.path.join(tmp_dir, "simulator.yaml")
    data = profile.model_dump(mode="json", exclude_none=True)
    data["http"] = {"host": "127.0.0.1", "port": 0}
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f)
    proc = subprocess.Popen(
        [sys.executable, "-m", "smsblast.simulator", "--config", path],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=new_session,
    )
    try:
        assert proc.stdout is not None
        port = http_port = 0
        for _ in range(2):
            line = proc.stdout.readline()
            if line.startswith("LISTENING"):
                port = int(line.rsplit(":", 1)[1])
            elif line.startswith("HTTP"):
                http_port = int(line.rsplit(":", 1)[1])
        if not port or not http_port:
            raise RuntimeError("simulator process did not start")
        yield SimulatorProcess(proc, port, http_port)
    finally:
        stop_process(proc, 10)
