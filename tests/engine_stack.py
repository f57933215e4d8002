"""Helpers for engine tests: a simulator with one account per route, an engine
config pointing at it, segments in a real broker, and an engine run in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from smsblast.config import Campaign, CampaignsFile, EngineConfig
from smsblast.engine.engine import Engine
from smsblast.ledger import AsyncLedger
from smsblast.optout import OptOutList
from smsblast.segments import encode_record, produce
from smsblast.simulator import Profile

PASSWORD_ENV = "SMSBLAST_TEST_SMSC_PASSWORD"
PASSWORD = "pw"


@dataclass(frozen=True)
class RouteSpec:
    name: str
    prefixes: tuple[str, ...]
    tps: float
    binds: int = 1
    window: int = 50
    port: int | None = None  # None: the simulator's port


def simulator_profile(routes: Iterable[RouteSpec], **extra: Any) -> Profile:
    data: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "seed": 11,
        "accounts": [
            {"system_id": r.name, "password": PASSWORD, "tps_per_bind": int(r.tps)} for r in routes
        ],
        "receipts": {"enabled": True, "delay": {"dist": "uniform", "min_ms": 1, "max_ms": 30}},
    }
    data.update(extra)
    return Profile.model_validate(data)


@dataclass
class SimulatorProcess:
    """The simulator in its own process, as an SMSC would be: no shared event loop."""

    process: subprocess.Popen[str]
    port: int
    http_port: int

    def stats(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.http_port}/stats"
        with urllib.request.urlopen(url, timeout=10) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data


@contextmanager
def simulator_process(profile: Profile, tmp_dir: str) -> Iterator[SimulatorProcess]:
    import yaml

    path = os.path.join(tmp_dir, "simulator.yaml")
    data = profile.model_dump(mode="json", exclude_none=True)
    data["http"] = {"host": "127.0.0.1", "port": 0}
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    proc = subprocess.Popen(
        [sys.executable, "-m", "smsblast.simulator", "--config", path],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
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
            raise RuntimeError("simulator did not start")
        yield SimulatorProcess(proc, port, http_port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def engine_config(
    bootstrap: str, sim_port: int, routes: Iterable[RouteSpec], ledger_path: str, **extra: Any
) -> EngineConfig:
    os.environ[PASSWORD_ENV] = PASSWORD
    data: dict[str, Any] = {
        "kafka": {"bootstrap_servers": [bootstrap]},
        "ledger": {"path": ledger_path},
        "routes": {
            r.name: {
                "prefixes": list(r.prefixes),
                "smscs": [
                    {
                        "host": "127.0.0.1",
                        "port": r.port or sim_port,
                        "system_id": r.name,
                        "password_env": PASSWORD_ENV,
                        "binds": r.binds,
                        "tps_per_bind": r.tps,
                        "window": r.window,
                        "enquire_link_interval": 5,
                        "response_timeout": 5,
                    }
                ],
            }
            for r in routes
        },
    }
    data.update(extra)
    return EngineConfig.model_validate(data)


def campaign(name: str, topics: list[str], **extra: Any) -> Campaign:
    data: dict[str, Any] = {
        "name": name,
        "sender": "KOMINFO",
        "segments": topics,
        "template": "Jaga Persatuan Indonesia, datang ke TPS dan gunakan hak pilih",
        "receipt_wait": "20s",
    }
    data.update(extra)
    return CampaignsFile.model_validate({"campaigns": [data]}).campaigns[0]


async def fill(
    bootstrap: str, topic: str, numbers: Iterable[str], extra: Iterable[bytes] = ()
) -> int:
    records: list[tuple[bytes | None, bytes | None]] = [
        (n.encode(), encode_record({"msisdn": n, "name": "Budi"})) for n in numbers
    ]
    records += [(None, raw) for raw in extra]
    return await produce(bootstrap, topic, records)


def make_engine(
    config: EngineConfig,
    campaigns: list[Campaign],
    optout: OptOutList | None = None,
    **kw: Any,
) -> tuple[Engine, AsyncLedger]:
    ledger = AsyncLedger(config.ledger.path)
    kw.setdefault("route_down_grace", 3.0)
    kw.setdefault("drain_timeout", 3.0)
    return Engine(config, campaigns, ledger, optout, **kw), ledger
