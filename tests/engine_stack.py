"""Helpers for engine tests: a simulator with one account per route, an engine
config pointing at it, segments in a real broker, and an engine run in-process."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from smsblast.config import Campaign, CampaignsFile, EngineConfig
from smsblast.engine.engine import Engine
from smsblast.ledger import AsyncLedger
from smsblast.optout import OptOutList
from smsblast.segments import encode_record, produce
from smsblast.simulator import Profile
from smsblast.simulator.process import SimulatorProcess, simulator_process

PASSWORD_ENV = "SMSBLAST_TEST_SMSC_PASSWORD"
PASSWORD = "pw"
#: The campaigns' consumer group session. Tansu holds a new group's first join for half of
#: it, so 3 s instead of the default 6 s starts every engine of the tests 1.5 s sooner; a
#: real Kafka (``KAFKA_BOOTSTRAP``) refuses less than 6 s by default.
SESSION_TIMEOUT_MS = 6000 if os.environ.get("KAFKA_BOOTSTRAP") else 3000

__all__ = ["SimulatorProcess", "simulator_process"]  # re-exported for the tests


#: Indonesian operator prefixes (national digits), as in config/smsblast.yaml.
PREFIXES: dict[str, tuple[str, ...]] = {
    "telkomsel": ("811", "812", "813", "821", "822", "823", "851", "852", "853"),
    "indosat": ("814", "815", "816", "855", "856", "857", "858", "895", "896", "897", "898", "899"),
    "xl": ("817", "818", "819", "859", "877", "878", "879", "831", "832", "833", "838"),
    "smartfren": ("881", "882", "883", "887", "888", "889"),
}


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


def engine_config(
    bootstrap: str, sim_port: int, routes: Iterable[RouteSpec], ledger_path: str, **extra: Any
) -> EngineConfig:
    os.environ[PASSWORD_ENV] = PASSWORD
    data: dict[str, Any] = {
        "kafka": {"bootstrap_servers": [bootstrap], "session_timeout_ms": SESSION_TIMEOUT_MS},
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
    ledger = AsyncLedger(config.ledger.path, process=config.ledger.worker == "process")
    kw.setdefault("route_down_grace", 3.0)
    kw.setdefault("drain_timeout", 3.0)
    return Engine(config, campaigns, ledger, optout, **kw), ledger


async def dead_letters(bootstrap: str, topic: str, expect: int) -> list[dict[str, object]]:
    """The dead letters in ``topic``, read from the beginning until ``expect`` came (or
    10 s passed)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    out: list[dict[str, object]] = []
    try:
        for _ in range(50):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out += [json.loads(r.value) for r in records if r.value]
            if len(out) >= expect:
                break
    finally:
        await consumer.stop()
    return out


async def squat_group(bootstrap: str, topic: str, campaign_name: str) -> AIOKafkaConsumer:
    """Another program's consumer in ``campaign_name``'s group (``smsblast.<name>``), joined
    with the range assignor before the engine: Kafka then refuses the engine's join
    (InconsistentGroupProtocolError). The caller stops it. Give the campaign a name no other
    test uses: the session's broker keeps every earlier member of a group."""
    squatter = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"smsblast.{campaign_name}",
        partition_assignment_strategy=(RangePartitionAssignor,),
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=SESSION_TIMEOUT_MS // 3,
    )
    await squatter.start()  # joined: it holds every partition
    return squatter
