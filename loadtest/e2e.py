"""`python -m loadtest e2e`: Tansu + engine + simulator on this machine, receipts on.

Fills a segment topic with N synthetic recipients (four operators), starts the
simulator in its own process with no TPS limit, runs ``smsblast run
--until-done`` as a subprocess, and reports recipients/s end to end and the
engine's peak RSS (from the kernel's rusage of the finished child).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from loadtest.report import machine_info, write_results
from smsblast.broker import EmbeddedBroker
from smsblast.segments import produce, synthetic_recipients
from smsblast.simulator import Profile
from smsblast.simulator.process import simulator_process

ROUTES = {
    "telkomsel": ["811", "812", "813", "821", "822", "823", "851", "852", "853"],
    "indosat": ["814", "815", "816", "855", "856", "857", "858", "895", "896", "897", "898", "899"],
    "xl": ["817", "818", "819", "859", "877", "878", "879", "831", "832", "833", "838"],
    "smartfren": ["881", "882", "883", "887", "888", "889"],
}
MIX = {"telkomsel": 0.5, "indosat": 0.25, "xl": 0.2, "smartfren": 0.05}


def bench_profile() -> Profile:
    return Profile.model_validate(
        {
            "listen": "127.0.0.1:0",
            "accounts": [{"system_id": r, "password": "pw", "max_binds": 8} for r in ROUTES],
            "receipts": {"enabled": True, "delay": 0},
            "dedup": True,
        }
    )


def write_config(
    tmp: Path, bootstrap: str, port: int, topic: str, binds: int, window: int
) -> list[str]:
    config = {
        "kafka": {"bootstrap_servers": [bootstrap]},
        "ledger": {"path": str(tmp / "ledger.sqlite")},
        "routes": {
            name: {
                "prefixes": prefixes,
                "smscs": [
                    {
                        "host": "127.0.0.1",
                        "port": port,
                        "system_id": name,
                        "password_env": "SMSBLAST_BENCH_PASSWORD",
                        "binds": binds,
                        "tps_per_bind": 1_000_000,
                        "window": window,
                    }
                ],
            }
            for name, prefixes in ROUTES.items()
        },
    }
    (tmp / "smsblast.yaml").write_text(yaml.safe_dump(config))
    campaigns = {
        "campaigns": [
            {
                "name": "bench",
                "sender": "KOMINFO",
                "segments": [topic],
                "template": "Jaga Persatuan Indonesia, datang ke TPS dan gunakan hak pilih",
                "receipt_wait": "60s",
            }
        ]
    }
    (tmp / "campaigns.yaml").write_text(yaml.safe_dump(campaigns))
    return [
        sys.executable,
        "-m",
        "smsblast.cli",
        "run",
        "--config",
        str(tmp / "smsblast.yaml"),
        "--campaigns",
        str(tmp / "campaigns.yaml"),
        "--until-done",
    ]


async def fill(bootstrap: str, topic: str, n: int, partitions: int) -> float:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    started = time.perf_counter()
    await produce(bootstrap, topic, synthetic_recipients(n, MIX, seed=1))
    return time.perf_counter() - started


def run_once(n: int, binds: int, window: int, partitions: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp_name, EmbeddedBroker() as broker:
        tmp = Path(tmp_name)
        fill_s = asyncio.run(fill(broker.bootstrap, "segment", n, partitions))
        with simulator_process(bench_profile(), tmp_name) as sim:
            cmd = write_config(tmp, broker.bootstrap, sim.port, "segment", binds, window)
            env = {**os.environ, "SMSBLAST_BENCH_PASSWORD": "pw"}
            started = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            elapsed = time.perf_counter() - started
            peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            stats = sim.stats()["totals"]
        ledger_mb = (tmp / "ledger.sqlite").stat().st_size / 1e6
    return {
        "recipients": n,
        "fill_seconds": round(fill_s, 2),
        "engine_seconds": round(elapsed, 2),
        "recipients_per_s": round(n / elapsed, 1),
        "engine_peak_rss_mb": round(peak_kb / 1024, 1),
        "exit_code": proc.returncode,
        "summary": proc.stdout.strip().splitlines()[-1:] if proc.stdout else [],
        "sim_accepted": stats["submits_accepted"],
        "sim_duplicates": stats["duplicates"],
        "sim_receipts_sent": stats["receipts_sent"],
        "ledger_mb": round(ledger_mb, 1),
        "stderr_tail": proc.stderr.strip().splitlines()[-3:],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest e2e", description=__doc__)
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--binds", type=int, default=2, help="per route")
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--out", default="out/e2e")
    args = parser.parse_args(argv)
    runs = []
    for i in range(args.runs):
        result = run_once(args.recipients, args.binds, args.window, args.partitions)
        runs.append(result)
        print(json.dumps({"run": i + 1, **result}), flush=True)
    runs.sort(key=lambda r: r["recipients_per_s"])
    median = runs[len(runs) // 2]
    print(
        f"median: {median['recipients_per_s']:,.0f} recipients/s, "
        f"peak RSS {median['engine_peak_rss_mb']} MB ({args.recipients:,} recipients)"
    )
    write_results(
        args.out,
        "e2e",
        {"runs": runs, "median": median, "machine": machine_info(), "args": vars(args)},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
