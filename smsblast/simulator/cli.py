"""``smsblast simulate``: run the SMSC simulator until SIGINT/SIGTERM.

The profile comes from ``--config`` (YAML) with the common knobs overridable by flags. On
stop the JSON stats are written to ``--stats-file`` (or the profile's ``stats_file``) and
the process exits 0. Prints ``LISTENING host:port`` (and ``HTTP host:port``) on stdout once
ready, so scripts can wait for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any

from pydantic import ValidationError

from smsblast.aio import run as run_async
from smsblast.gctune import tune_for_throughput
from smsblast.simulator.profile import Profile, load_profile, parse_hostport
from smsblast.simulator.server import Simulator

__all__ = [
    "add_arguments",
    "build_parser",
    "profile_from_args",
    "run_from_args",
    "simulate_main",
]

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulator's options (shared with the ``smsblast simulate`` subcommand)."""
    parser.add_argument("--config", help="YAML profile (default: built-in defaults)")
    parser.add_argument("--listen", help="SMPP address, host:port (default 127.0.0.1:2775)")
    parser.add_argument("--seed", type=int, help="seed every random choice (reproducible runs)")
    parser.add_argument("--stats-file", help="write the JSON stats here on exit")
    parser.add_argument("--http", help="serve /stats and /metrics on [host:]port")
    parser.add_argument("--tps", type=int, help="submit_sm per second per bind (0 = unlimited)")
    parser.add_argument("--account-tps", type=int, help="submit_sm per second per account")
    parser.add_argument("--window", type=int, help="max outstanding submit_sm per bind")
    parser.add_argument(
        "--receipts",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="send delivery receipts (when registered_delivery asks)",
    )
    parser.add_argument("--latency-ms", type=float, help="fixed submit_sm_resp latency")
    parser.add_argument("--receipt-delay-ms", type=float, help="fixed receipt delay")
    parser.add_argument("--id-format", choices=("hex", "dec"), help="message ids in resps")
    parser.add_argument(
        "--receipt-id-format", choices=("hex", "dec"), help="message ids in receipts"
    )
    parser.add_argument("--no-dedup", action="store_true", help="skip duplicate tracking")
    parser.add_argument(
        "--no-uvloop", action="store_true", help="use the standard asyncio event loop"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsblast simulate", description="Simulated SMSC for tests and load tests."
    )
    parser.add_argument(
        "--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    add_arguments(parser)
    return parser


#: Flags that set one profile key as they are (None = flag not given).
FLAG_KEYS = {
    "seed": "seed",
    "stats_file": "stats_file",
    "tps": "limits.tps_per_bind",
    "account_tps": "limits.tps_per_account",
    "window": "limits.max_outstanding",
    "receipts": "receipts.enabled",
    "latency_ms": "latency",
    "receipt_delay_ms": "receipts.delay",
    "id_format": "ids.resp_format",
    "receipt_id_format": "ids.receipt_format",
}


def profile_from_args(args: argparse.Namespace) -> Profile:
    """Load ``--config`` and apply the flags.

    Raises:
        OSError, ValueError, pydantic.ValidationError: unreadable or invalid profile.
    """
    overrides: dict[str, Any] = {}
    if args.listen is not None:
        host, port = parse_hostport(args.listen)
        overrides["listen"] = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    for flag, key in FLAG_KEYS.items():
        value = getattr(args, flag)
        if value is not None:
            overrides[key] = value
    if args.http is not None:
        host, port = parse_hostport(args.http)
        overrides["http.host"] = host
        overrides["http.port"] = port
    if args.no_dedup:
        overrides["dedup"] = False
    return load_profile(args.config, overrides)


async def serve(profile: Profile) -> Simulator:
    """Run a simulator until SIGINT/SIGTERM; return it (stopped, stats written)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    sim = Simulator(profile)
    async with sim:
        print(f"LISTENING {sim.host}:{sim.port}", flush=True)
        if sim.http_port is not None:
            print(f"HTTP {profile.http.host}:{sim.http_port}", flush=True)
        await stop.wait()
    return sim


def simulate_main(argv: list[str] | None = None) -> int:
    """Entry point of ``smsblast simulate``; returns the exit code (0, or 2 on a bad profile)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return run_from_args(args)


def run_from_args(args: argparse.Namespace) -> int:
    """Run with already-parsed options (the ``smsblast simulate`` subcommand)."""
    try:
        profile = profile_from_args(args)
    except (OSError, ValueError, ValidationError) as exc:
        print(f"smsblast simulate: bad profile: {exc}", file=sys.stderr)
        return 2
    tune_for_throughput(young=None)
    try:
        run_async(serve(profile), use_uvloop=not args.no_uvloop)
    except OSError as exc:
        print(f"smsblast simulate: {exc}", file=sys.stderr)
        return 1
    return 0
