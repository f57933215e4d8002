"""`smsblast run` in a subprocess against a simulator in its own process: the files it
runs on, starting it, and the checks after a stop or a crash (nobody lost, unknown within
what was at risk). Two routes, 20,000 recipients: a blast of a few seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from smsblast.ledger import SqliteLedger
from tests.engine_stack import (
    PASSWORD,
    PASSWORD_ENV,
    PREFIXES,
    RouteSpec,
    SimulatorProcess,
    engine_config,
)

RECIPIENTS = 20_000
ROUTES = [
    RouteSpec(
        "telkomsel",
        PREFIXES["telkomsel"],
        tps=1500,
        binds=2,
        window=50,
    ),
    RouteSpec(
        "indosat",
        PREFIXES["indosat"],
        tps=1500,
        binds=1,
        window=50,
    ),
]
MIX = {"telkomsel": 0.6, "indosat": 0.4}


def write_files(
    tmp: Path,
    bootstrap: str,
    sim_port: int,
    topic: str,
    on_unknown: str,
    *,
    more_segments: dict[str, str] | None = None,
    **extra_config: Any,
) -> list[str]:
    """Engine and campaign files; the command that runs them. ``more_segments``: other
    campaigns by name, each with its segment topic."""
    cfg = engine_config(bootstrap, sim_port, ROUTES, str(tmp / "ledger.sqlite"), **extra_config)
    (tmp / "smsblast.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    segments = {"crash": topic, **(more_segments or {})}
    campaigns = {
        "campaigns": [
            {
                "name": name,
                "sender": "KOMINFO",
                "segments": [segment],
                "template": "Jaga Persatuan Indonesia, datang ke TPS dan gunakan hak pilih",
                "on_unknown": on_unknown,
                "receipt_wait": "5s",  # receipts the killed engine acked are never re-sent
            }
            for name, segment in segments.items()
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


def start_engine(cmd: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, PASSWORD_ENV: PASSWORD}
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def accepted(smsc: SimulatorProcess) -> int:
    return int(smsc.stats()["totals"]["submits_accepted"])


def at_risk() -> tuple[int, int]:
    """Parts that may be on the wire at a crash: the windows, and the armed buffers
    (window + 100 ms of rate per bind)."""
    windows = sum(r.window * r.binds for r in ROUTES)
    armed = sum((r.window + int(r.tps * 0.1) + 1) * r.binds for r in ROUTES)
    return windows, armed


def accounted_for(tmp: Path, out: str, recipients: int = RECIPIENTS) -> dict[str, int]:
    """The ledger's counts after the restart, checked: nobody lost (every recipient has a
    final state or is reported unknown) and the unknown at most those at risk."""
    ledger = SqliteLedger(str(tmp / "ledger.sqlite"))
    try:
        counts = ledger.counts("crash")
    finally:
        ledger.close()
    # SUBMITTED without a receipt is possible: a receipt acknowledged by the killed
    # process but not yet written to the ledger is not sent again by the SMSC.
    final_states = sum(
        counts[state]
        for state in ("delivered", "failed", "expired", "submitted", "rejected", "suppressed")
    )
    assert counts["in_flight"] == 0 and counts["pending"] == 0, out
    assert final_states + counts["unknown"] == recipients, out
    assert counts["unknown"] <= sum(at_risk())
    return counts
