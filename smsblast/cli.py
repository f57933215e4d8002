"""The `smsblast` command: one subcommand per job, each defined in its own module."""

from __future__ import annotations

import argparse
import sys

from smsblast import __version__, demo, logs, plan_cli, prune, segments, send
from smsblast.admin import ctl
from smsblast.engine import cli as engine_cli
from smsblast.simulator import cli as simulator_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsblast", description="Bulk SMS blast engine for mobile operators."
    )
    parser.add_argument("--version", action="version", version=f"smsblast {__version__}")
    parser.add_argument(
        "--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=("text", "json"),
        help="json: one object per line (ts, level, logger, msg, extra fields)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    send.add_parser(sub)
    simulate = sub.add_parser(
        "simulate",
        help="run the SMSC simulator for QA and load tests",
        description=simulator_cli.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    simulator_cli.add_arguments(simulate)
    simulate.set_defaults(func=simulator_cli.run_from_args)
    demo.add_parser(sub)
    engine_cli.add_parsers(sub)
    segments.add_parser(sub)
    plan_cli.add_parser(sub)
    prune.add_parser(sub)
    ctl.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
