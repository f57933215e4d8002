"""One engine run on this machine, the way production runs it, each part in its own process:
Tansu (the embedded Kafka-protocol broker), the SMSC simulator, and ``smsblast run
--until-done``. The e2e, paced and chaos scenarios differ only in the routes, the simulator
profile and the campaign they hand to :func:`run_stack`.

The engine's peak RSS comes from ``os.wait4`` on its own pid (not RUSAGE_CHILDREN, which
would also count earlier simulators and brokers of the same loadtest process). The engine runs
its ledger in a child process (``smsblast/ledger_process.py``): its peak (``VmHWM``) and the
peak of engine + child together (resident sets summed every 0.2 s) are reported beside it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from loadtest.ledger_view import LedgerFigures, ledger_figures
from smsblast.broker import EmbeddedBroker
from smsblast.procs import child_pids
from smsblast.segments import OPERATOR_PREFIXES, produce, synthetic_recipients
from smsblast.simulator import Profile
from smsblast.simulator.process import simulator_process

PASSWORD_ENV = "SMSBLAST_BENCH_PASSWORD"
PASSWORD = "pw"
CAMPAIGN = "bench"
TOPIC = "segment"
TEXT = "Jaga Persatuan Indonesia, datang ke TPS dan gunakan hak pilih"


@dataclass(frozen=True)
class Route:
    """One operator route: its SMSC account on the simulator and the engine's binds to it."""

    name: str  # an operator of OPERATOR_PREFIXES; also the simulator account
    tps_per_bind: float
    binds: int
    window: int = 50

    @property
    def capacity(self) -> float:
        return self.tps_per_bind * self.binds


def capacity_mix(routes: list[Route]) -> dict[str, float]:
    """Recipient shares proportional to each route's TPS capacity: every route finishes at
    the same time when sent at full rate."""
    total = sum(r.capacity for r in routes)
    return {r.name: r.capacity / total for r in routes}


def simulator_profile(
    routes: list[Route],
    *,
    tps_factor: float | None = None,
    receipts: Mapping[str, Any] | None = None,
    faults: Mapping[str, Any] | None = None,
    seed: int = 1,
) -> Profile:
    """One simulator account per route; ``tps_factor`` sets each account's per-bind limit to
    that fraction of the engine's configured TPS (None: no limit at the SMSC)."""
    accounts = [
        {
            "system_id": r.name,
            "password": PASSWORD,
            "max_binds": max(8, r.binds),
            "tps_per_bind": 0 if tps_factor is None else max(1, int(r.tps_per_bind * tps_factor)),
        }
        for r in routes
    ]
    return Profile.model_validate(
        {
            "listen": "127.0.0.1:0",
            "seed": seed,
            "accounts": accounts,
            "receipts": dict(receipts or {"enabled": True, "delay": 0}),
            "faults": dict(faults or {}),
            "dedup": True,
        }
    )


def engine_config(bootstrap: str, port: int, routes: list[Route], ledger: Path) -> dict[str, Any]:
    return {
        "kafka": {"bootstrap_servers": [bootstrap]},
        "ledger": {"path": str(ledger)},
        "routes": {
            r.name: {
                "prefixes": list(OPERATOR_PREFIXES[r.name]),
                "smscs": [
                    {
                        "host": "127.0.0.1",
                        "port": port,
                        "system_id": r.name,
                        "password_env": PASSWORD_ENV,
                        "binds": r.binds,
                        "tps_per_bind": r.tps_per_bind,
                        "window": r.window,
                        "enquire_link_interval": 5,
                        "response_timeout": 10,
                    }
                ],
            }
            for r in routes
        },
    }


def write_optout_file(path: Path, n: int) -> Path:
    """``n`` distinct numbers under the prefix 0810, which no route of the benchmark has."""
    with path.open("w") as f:
        for i in range(n):
            f.write(f"0810{i:08d}\n")
    return path


def campaign(extra: Mapping[str, Any]) -> dict[str, Any]:
    """The benchmark campaign (one segment topic, a 62-character GSM text), plus ``extra``."""
    return {
        "name": CAMPAIGN,
        "sender": "KOMINFO",
        "segments": [TOPIC],
        "template": TEXT,
        "receipt_wait": "60s",
        **extra,
    }


async def fill(bootstrap: str, n: int, mix: Mapping[str, float], partitions: int) -> float:
    """Create the segment topic and produce ``n`` synthetic recipients (streamed: memory does
    not grow with ``n``); return the seconds it took."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, partitions, 1)])
    finally:
        await admin.close()
    started = time.perf_counter()
    await produce(bootstrap, TOPIC, synthetic_recipients(n, mix, seed=1))
    return time.perf_counter() - started


@dataclass(frozen=True)
class EngineResult:
    started_at: float  # wall clock
    seconds: float
    exit_code: int
    peak_rss_mb: float
    summary: str
    stderr_tail: list[str]
    #: the engine's children (its ledger process), each one's peak, summed
    children_peak_rss_mb: float = 0.0
    total_peak_rss_mb: float = 0.0  # engine + its children, sampled together
    #: CPU seconds (user + system) of the engine and of its children (the ledger process),
    #: as last sampled (every 0.2 s) before they exited
    cpu_s: float = 0.0
    children_cpu_s: float = 0.0


def run_engine(tmp: Path, config: dict[str, Any], campaigns: list[dict[str, Any]]) -> EngineResult:
    """Run ``smsblast run --until-done`` as a child process and wait for it."""
    config_path, campaigns_path = tmp / "smsblast.yaml", tmp / "campaigns.yaml"
    config_path.write_text(yaml.safe_dump(config))
    campaigns_path.write_text(yaml.safe_dump({"campaigns": campaigns}))
    run = ["run", "--config", str(config_path), "--campaigns", str(campaigns_path)]
    cmd = [sys.executable, "-m", "smsblast.cli", *run, "--until-done"]
    env = {**os.environ, PASSWORD_ENV: PASSWORD}
    with open(tmp / "engine.out", "w+") as out, open(tmp / "engine.err", "w+") as err:
        started_at = time.time()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        status, usage, children_mb, total_mb, cpu = _wait_sampling(proc.pid)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    lines = stdout.strip().splitlines()
    return EngineResult(
        started_at=started_at,
        seconds=seconds,
        exit_code=proc.returncode,
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),
        summary=lines[-1] if lines else "",
        stderr_tail=stderr.strip().splitlines()[-5:],
        children_peak_rss_mb=children_mb,
        total_peak_rss_mb=max(total_mb, round(usage.ru_maxrss / 1024, 1)),
        cpu_s=cpu.get(proc.pid, 0.0),
        children_cpu_s=round(sum(v for k, v in cpu.items() if k != proc.pid), 2),
    )


def _wait_sampling(pid: int) -> tuple[int, Any, float, float, dict[int, float]]:
    """``os.wait4`` for ``pid`` while sampling it and its children every 0.2 s: (status,
    rusage, sum of the children's peaks, peak of the sampled sum of resident sets) in MB, and
    the CPU seconds of each, by pid, as last sampled."""
    children_hwm: dict[int, float] = {}
    cpu: dict[int, float] = {}
    total_peak = 0.0
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            peaks = round(sum(children_hwm.values()), 1)
            return status, usage, peaks, round(total_peak, 1), cpu
        total = _proc_mb(pid, "VmRSS") or 0.0
        children = child_pids(pid)
        for proc in (pid, *children):
            seconds = cpu_seconds(proc)
            if seconds is not None:
                cpu[proc] = seconds
        for child in children:
            total += _proc_mb(child, "VmRSS") or 0.0
            hwm = _proc_mb(child, "VmHWM")
            if hwm is not None:
                children_hwm[child] = hwm
        total_peak = max(total_peak, total)
        time.sleep(0.2)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a running process (``/proc/PID/stat``), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / _TICKS


_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_mb(pid: int, field: str) -> float | None:
    """A ``/proc/PID/status`` memory field in MB, None if the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return None


def peak_rss_mb(pid: int) -> float | None:
    """The peak resident set of a running process (Linux ``VmHWM``), None if unknown."""
    mb = _proc_mb(pid, "VmHWM")
    return None if mb is None else round(mb, 1)


@dataclass(frozen=True)
class StackRun:
    recipients: int
    fill_seconds: float
    engine: EngineResult
    sim: dict[str, Any]  # the simulator's stats document at the end
    ledger: LedgerFigures
    ledger_mb: float
    broker_peak_rss_mb: float | None
    sim_peak_rss_mb: float | None
    #: CPU seconds the simulator and the broker used while the engine ran
    sim_cpu_s: float | None = None
    broker_cpu_s: float | None = None


def run_stack(
    n: int,
    routes: list[Route],
    profile: Profile,
    *,
    mix: Mapping[str, float] | None = None,
    campaign_extra: Callable[[], dict[str, Any]] = dict,
    partitions: int = 4,
    optout: int = 0,
    keep_ledger: Path | None = None,
) -> StackRun:
    """Fill a topic with ``n`` recipients, start the simulator with ``profile`` and run the
    engine to completion against it. ``campaign_extra()`` is called just before the engine
    starts (a deadline is relative to that moment). ``optout``: the size of an opt-out file
    for the engine (numbers no recipient has: it costs memory and lookups, suppresses none).
    ``keep_ledger``: move the ledger file there at the end (for ``smsblast prune`` or
    ``report`` on a real campaign's ledger)."""
    with tempfile.TemporaryDirectory() as tmp_name, EmbeddedBroker() as broker:
        tmp = Path(tmp_name)
        fill_s = asyncio.run(fill(broker.bootstrap, n, mix or capacity_mix(routes), partitions))
        with simulator_process(profile, tmp_name) as sim:
            config = engine_config(broker.bootstrap, sim.port, routes, tmp / "ledger.sqlite")
            if optout:
                config["optout"] = {"file": str(write_optout_file(tmp / "optout.txt", optout))}
            assert broker.process is not None
            others = (sim.process.pid, broker.process.pid)
            before = [cpu_seconds(pid) for pid in others]
            engine = run_engine(tmp, config, [campaign(campaign_extra())])
            after = [cpu_seconds(pid) for pid in others]
            sim_stats = sim.stats()
            sim_rss = peak_rss_mb(sim.process.pid)
        broker_rss = peak_rss_mb(broker.process.pid)
        used = [
            None if a is None or b is None else round(a - b, 2)
            for a, b in zip(after, before, strict=True)
        ]
        ledger = ledger_figures(tmp / "ledger.sqlite", CAMPAIGN)
        ledger_mb = round((tmp / "ledger.sqlite").stat().st_size / 1e6, 1)
        if keep_ledger is not None:
            shutil.move(tmp / "ledger.sqlite", keep_ledger)
    return StackRun(
        n, round(fill_s, 2), engine, sim_stats, ledger, ledger_mb, broker_rss, sim_rss, *used
    )
