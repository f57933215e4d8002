"""`smsblast demo`: the product on embedded defaults, on a machine with nothing else.

It starts an embedded Kafka-protocol broker (Tansu, from the ``demo`` extra) and the SMSC
simulator (its own process: three operator accounts, network-like latency, a receipt
mix), writes a synthetic segment of Indonesian numbers into the seed campaign's topic,
then runs the seed campaign from ``campaigns.yaml`` with the real engine, exactly as
``smsblast run --until-done`` would (a generated engine configuration, a temporary
ledger, passwords from the environment), with the live progress display and the metrics
endpoint up. It ends with the campaign's report, every recipient accounted for, and stops
everything it started, also on Ctrl-C (the engine drains first; exit code 130).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from smsblast.aio import run as run_async
from smsblast.broker import BrokerUnavailable, EmbeddedBroker, free_port
from smsblast.config import Campaign, CampaignsFile, ConfigError, EngineConfig, load_campaigns
from smsblast.simulator import Profile

#: Demo routes: operator -> (binds, TPS per bind). Prefixes come from the shipped map.
ROUTES: Final[Mapping[str, tuple[int, int]]] = {
    "telkomsel": (2, 1000),
    "indosat": (2, 600),
    "xl": (1, 800),
}
MIX: Final[Mapping[str, float]] = {"telkomsel": 0.5, "indosat": 0.3, "xl": 0.2}
PASSWORD_ENV: Final = "SMSBLAST_DEMO_PASSWORD"
DEMO_PASSWORD: Final = "demo-pw"
SEED_CAMPAIGN: Final[dict[str, Any]] = {
    "name": "jaga-persatuan",
    "sender": "KOMINFO",
    "segments": ["smsblast.segment.nasional"],
    "template": "Jaga Persatuan Indonesia, datang ke TPS dan gunakan hak pilih",
    "max_parts": 2,
    "validity": "24h",
}
RECEIPT_WAIT_S: Final = 120.0
EXIT_INTERRUPTED: Final = 130


def seed_campaign(path: Path = Path("campaigns.yaml")) -> Campaign:
    """The first campaign of ``campaigns.yaml`` (the seed), or the built-in seed when the
    file is absent (an installed package run from another directory)."""
    try:
        first = load_campaigns(str(path)).campaigns[0] if path.exists() else None
    except (ConfigError, IndexError):
        first = None
    if first is None:
        first = CampaignsFile.model_validate({"campaigns": [SEED_CAMPAIGN]}).campaigns[0]
    return first


def demo_profile(seed: int) -> Profile:
    """Three operator accounts; ~20 ms submit round trips; receipts within 0.2-3 s, 94%
    delivered, the rest undeliverable, expired or rejected."""
    return Profile.model_validate(
        {
            "listen": "127.0.0.1:0",
            "seed": seed,
            "accounts": [
                {"system_id": name, "password": DEMO_PASSWORD, "tps_per_bind": tps}
                for name, (_, tps) in ROUTES.items()
            ],
            "latency": {"dist": "lognormal", "median_ms": 20, "sigma": 0.4, "max_ms": 200},
            "receipts": {
                "enabled": True,
                "delay": {"dist": "uniform", "min_ms": 200, "max_ms": 3000},
                "outcomes": {"DELIVRD": 94, "UNDELIV": 3, "EXPIRED": 2, "REJECTD": 1},
            },
        }
    )


def demo_config(
    bootstrap: str, smsc_port: int, ledger_path: str, metrics_port: int
) -> EngineConfig:
    """An engine configuration pointing at the demo's broker and simulator."""
    from smsblast.segments import OPERATOR_PREFIXES

    return EngineConfig.model_validate(
        {
            "kafka": {"bootstrap_servers": [bootstrap], "client_id": "smsblast-demo"},
            "ledger": {"path": ledger_path},
            "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
            "routes": {
                name: {
                    "prefixes": list(OPERATOR_PREFIXES[name]),
                    "smscs": [
                        {
                            "host": "127.0.0.1",
                            "port": smsc_port,
                            "system_id": name,
                            "password_env": PASSWORD_ENV,
                            "binds": binds,
                            "tps_per_bind": tps,
                            "window": 100,
                            "msg_id_format": "hex",
                        }
                    ],
                }
                for name, (binds, tps) in ROUTES.items()
            },
        }
    )


async def fill_segment(bootstrap: str, topic: str, count: int, seed: int) -> int:
    from smsblast.segments import ensure_topic, produce, synthetic_recipients

    await ensure_topic(bootstrap, topic, create_partitions=3)
    return await produce(bootstrap, topic, synthetic_recipients(count, MIX, seed))


async def run_demo(args: argparse.Namespace, bootstrap: str, smsc: Any, tmp: str) -> int:
    from smsblast.engine.cli import RunOptions, report_table, run_engine
    from smsblast.ledger import SqliteLedger

    campaign = seed_campaign().model_copy(
        update={"receipt_wait": timedelta(seconds=RECEIPT_WAIT_S)}
    )
    print(f"segment: {args.recipients:,} synthetic recipients -> {campaign.segments[0]}")
    await fill_segment(bootstrap, campaign.segments[0], args.recipients, args.seed)
    ledger_path = os.path.join(tmp, "ledger.sqlite")
    config = demo_config(bootstrap, smsc.port, ledger_path, free_port())
    options = RunOptions(
        until_done=True,
        progress=args.progress,
        progress_interval=args.progress_interval,
        drain_timeout=5.0,
        route_down_grace=30.0,
    )
    result = await run_engine(config, [campaign], options)
    ledger = SqliteLedger(ledger_path)
    try:
        report = ledger.report(campaign.name)
    finally:
        ledger.close()
    duplicates = int(smsc.stats()["totals"]["duplicates"])
    print(report_table(campaign.name, report))
    total = int(report["total"])
    print(
        f"accounted for: {total:,} of {args.recipients:,} recipient(s); "
        f"duplicates at the SMSC: {duplicates:,}"
    )
    if args.chart:
        from smsblast.chart import write_chart

        ledger = SqliteLedger(ledger_path)
        try:
            write_chart(ledger, campaign.name, args.chart)
        finally:
            ledger.close()
        print(f"chart: {args.chart}")
    if result.stopped:
        print("smsblast demo: interrupted; everything it started is stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    ok = result.code == 0 and total == args.recipients and duplicates == 0
    return 0 if ok else 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run the demo on embedded defaults (broker, simulator, engine)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--recipients", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--progress", choices=("auto", "rich", "plain", "off"), default="auto")
    p.add_argument("--progress-interval", type=float, default=None, metavar="SECONDS")
    p.add_argument("--chart", metavar="FILE", help="also write the report's PNG chart")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from smsblast.simulator.process import simulator_process

    if args.recipients < 1:
        print("smsblast demo: --recipients must be at least 1", file=sys.stderr)
        return 2
    os.environ[PASSWORD_ENV] = DEMO_PASSWORD
    try:
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="smsblast-demo-"))
            # Own sessions: Ctrl-C reaches this process only; it drains, then stops them.
            broker = stack.enter_context(EmbeddedBroker(new_session=True))
            print(f"broker: Tansu on {broker.bootstrap}")
            smsc = stack.enter_context(
                simulator_process(demo_profile(args.seed), tmp, new_session=True)
            )
            print(f"simulator: SMPP on 127.0.0.1:{smsc.port}")
            coro = run_demo(args, broker.bootstrap, smsc, tmp)
            try:
                return run_async(coro)
            finally:
                coro.close()  # a no-op once run; spares a warning when Ctrl-C came first
    except KeyboardInterrupt:
        print("smsblast demo: interrupted; everything it started is stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokerUnavailable as exc:
        print(f"smsblast demo: {exc}", file=sys.stderr)
        return 2


__all__ = ["add_parser", "demo_config", "demo_profile", "main", "run_demo", "seed_campaign"]
