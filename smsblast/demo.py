"""`smsblast demo`: the product on embedded defaults, on a machine with nothing else.

Until the Kafka engine lands, the demo exercises everything below it: it starts
the bundled SMSC simulator on a free loopback port (three operator accounts,
realistic latency and a receipt mix), sends the seed campaign's message from
``campaigns.yaml`` to synthetic Indonesian numbers through real SMPP binds (one
per operator), waits for every receipt, prints the report, and stops everything
it started (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from smsblast.aio import run as run_async
from smsblast.client import BindMode
from smsblast.send import SendReport, SendRequest, format_summary, run_send
from smsblast.simulator import Profile, Simulator
from smsblast.smpp.receipt import IdFormat

#: (operator, first synthetic number, share of the recipients, TPS per bind)
OPERATORS = (
    ("telkomsel", "6281200000000", 0.5),
    ("indosat", "6285600000000", 0.3),
    ("xl", "6281700000000", 0.2),
)
DEMO_PASSWORD = "demo-pw"
SEED_TEXT = "Jaga Persatuan Indonesia, datang ke TPS dan gunakan hak pilih"


def seed_campaign(path: Path = Path("campaigns.yaml")) -> tuple[str, str]:
    """(sender, template) of the first campaign in campaigns.yaml, or the seed defaults."""
    try:
        data = yaml.safe_load(path.read_text())
        first = data["campaigns"][0]
        return str(first["sender"]), str(first["template"])
    except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
        return "KOMINFO", SEED_TEXT


def demo_profile(seed: int) -> Profile:
    return Profile.model_validate(
        {
            "listen": "127.0.0.1:0",
            "seed": seed,
            "accounts": [
                {"system_id": name, "password": DEMO_PASSWORD} for name, _, _ in OPERATORS
            ],
            "latency": {"dist": "lognormal", "median_ms": 3, "sigma": 0.5, "max_ms": 50},
            "receipts": {
                "enabled": True,
                "delay": {"dist": "uniform", "min_ms": 5, "max_ms": 200},
                "outcomes": {"DELIVRD": 95, "UNDELIV": 3, "EXPIRED": 2},
            },
        }
    )


async def run_demo(
    recipients: int, seed: int
) -> tuple[list[tuple[str, SendReport]], dict[str, Any]]:
    sender, text = seed_campaign()
    async with Simulator(demo_profile(seed)) as smsc:
        requests = []
        for name, first, share in OPERATORS:
            count = max(1, round(recipients * share))
            requests.append(
                (
                    name,
                    SendRequest(
                        host=smsc.host,
                        port=smsc.port,
                        system_id=name,
                        password=DEMO_PASSWORD,
                        source=sender,
                        first_msisdn=first,
                        text=text,
                        count=count,
                        window=100,
                        wait_dlr=30.0,
                        resp_id_format=IdFormat.HEX,
                        receipt_id_format=IdFormat.HEX,
                        mode=BindMode.TRANSCEIVER,
                    ),
                )
            )
        reports = await asyncio.gather(*(run_send(req) for _, req in requests))
        stats = smsc.stats()
    return [(name, rep) for (name, _), rep in zip(requests, reports, strict=True)], stats


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run the demo on embedded defaults",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--recipients", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.recipients < 3:
        print("smsblast demo: --recipients must be at least 3", file=sys.stderr)
        return 2
    try:
        results, stats = run_async(run_demo(args.recipients, args.seed))
    except KeyboardInterrupt:
        print("smsblast demo: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    total = sum(rep.messages for _, rep in results)
    accepted = sum(rep.outcomes["accepted"] for _, rep in results)
    receipts = sum(sum(rep.receipts.values()) for _, rep in results)
    missing = sum(rep.receipts_missing for _, rep in results)
    if args.json:
        print(json.dumps({name: rep.as_dict() for name, rep in results}, indent=2))
    else:
        for name, rep in results:
            title = f"[{name}] {rep.messages:,} recipient(s), {rep.parts:,} part(s)"
            print(format_summary(title, rep, receipts=True))
        print(
            f"TOTAL  recipients {total:,}  accepted {accepted:,}  receipts {receipts:,}  "
            f"missing {missing:,}  simulator duplicates "
            f"{stats['totals']['duplicates']:,}"
        )
    ok = all(rep.ok(True) for _, rep in results)
    return 0 if ok else 1
