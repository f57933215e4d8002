"""`smsblast run` and `smsblast report`: the engine's commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smsblast.aio import run as run_async
from smsblast.config import (
    ConfigError,
    check_campaign_routes,
    load_campaigns,
    load_engine_config,
)
from smsblast.gctune import tune_for_throughput
from smsblast.ledger_lock import LedgerLock
from smsblast.logs import register_secret

if TYPE_CHECKING:
    from smsblast.config import EngineConfig
    from smsblast.engine.campaign import CampaignRun
    from smsblast.optout import OptOutList

log = logging.getLogger("smsblast.engine")

EXIT_OK, EXIT_INCOMPLETE, EXIT_CONFIG, EXIT_LEDGER = 0, 1, 2, 3


def add_parsers(sub: Any) -> None:
    run = sub.add_parser(
        "run", help="run campaigns from campaigns.yaml against the routes in config/"
    )
    run.add_argument(
        "--config", help="engine config (default $SMSBLAST_CONFIG or config/smsblast.yaml)"
    )
    run.add_argument("--campaigns", default="campaigns.yaml", help="campaigns file")
    run.add_argument(
        "--campaign",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this campaign (repeatable)",
    )
    run.add_argument(
        "--until-done",
        action="store_true",
        help="exit when the campaigns are complete and receipts are in (or waited for)",
    )
    run.add_argument(
        "--max-in-memory",
        type=int,
        default=50_000,
        help="recipients held between read and outcome, per campaign",
    )
    run.add_argument(
        "--route-down-grace",
        type=float,
        default=300.0,
        help="seconds a route may have no bind up before its backlog is left pending",
    )
    run.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        help="on SIGTERM, seconds to let in-flight messages settle",
    )
    run.add_argument(
        "--progress",
        choices=("auto", "rich", "plain", "off"),
        default="auto",
        help="live progress: a table on a terminal (rich), a line every "
        "--progress-interval seconds otherwise (plain)",
    )
    run.add_argument(
        "--progress-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds between progress updates (default 0.5 rich, 10 plain)",
    )
    run.set_defaults(func=run_main)

    rep = sub.add_parser("report", help="final states of a campaign from the ledger")
    rep.add_argument("campaign")
    rep.add_argument("--config")
    rep.add_argument("--format", choices=("table", "json", "csv"), default="table")
    rep.add_argument(
        "--chart",
        metavar="FILE",
        help="also write a PNG: submits and receipts per second over the campaign, per route "
        "(needs the 'chart' extra: matplotlib)",
    )
    rep.set_defaults(func=report_main)


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    config = load_engine_config(args.config)
    campaigns_file = load_campaigns(args.campaigns)
    check_campaign_routes(config, campaigns_file)
    campaigns = campaigns_file.campaigns
    if args.campaign:
        names = {c.name for c in campaigns}
        missing = [n for n in args.campaign if n not in names]
        if missing:
            raise ConfigError(
                f"{args.campaigns}: campaigns: no campaign named {', '.join(missing)}"
            )
        campaigns = [c for c in campaigns if c.name in args.campaign]
    return config, campaigns


def run_main(args: argparse.Namespace) -> int:
    try:
        config, campaigns = _load(args)
    except ConfigError as exc:
        print(f"smsblast run: configuration error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    tune_for_throughput()
    return run_async(_run(args, config, campaigns))


async def _run(args: argparse.Namespace, config: Any, campaigns: list[Any]) -> int:
    options = RunOptions(
        until_done=args.until_done,
        max_in_memory=args.max_in_memory,
        route_down_grace=args.route_down_grace,
        drain_timeout=args.drain_timeout,
        progress=args.progress,
        progress_interval=args.progress_interval,
    )
    return (await run_engine(config, campaigns, options)).code


@dataclass(frozen=True)
class RunOptions:
    """How :func:`run_engine` runs: the ``smsblast run`` flags."""

    until_done: bool = True
    max_in_memory: int = 50_000
    route_down_grace: float = 300.0
    drain_timeout: float = 10.0
    progress: str = "off"  # auto | rich | plain | off
    progress_interval: float | None = None


@dataclass(frozen=True)
class RunResult:
    code: int  # EXIT_OK, EXIT_INCOMPLETE, EXIT_CONFIG or EXIT_LEDGER
    stopped: bool  # SIGTERM/SIGINT ended the run
    metrics_url: str | None = None


def register_secrets(config: Any) -> None:
    """Tell the log filter every password this configuration reads, so none is logged."""
    with contextlib.suppress(ConfigError):
        register_secret(config.kafka.sasl_password())
    for route in config.routes.values():
        for smsc in route.smscs:
            with contextlib.suppress(ConfigError):
                register_secret(smsc.password())


def start_metrics(config: Any) -> tuple[str | None, Callable[[], None]]:
    """Serve :data:`smsblast.metrics.REGISTRY` on ``metrics.listen``; (URL, stop)."""
    address = config.metrics.listen_address()
    if address is None:
        return None, lambda: None
    from prometheus_client import start_http_server

    from smsblast.metrics import REGISTRY

    server, thread = start_http_server(address[1], addr=address[0], registry=REGISTRY)
    host = f"[{address[0]}]" if ":" in address[0] else address[0]

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return f"http://{host}:{server.server_port}/metrics", stop


async def run_engine(config: Any, campaigns: list[Any], options: RunOptions) -> RunResult:
    """Run ``campaigns`` with the engine as ``smsblast run`` does: opt-out list, metrics
    endpoint, admin API, live progress, SIGTERM/SIGINT draining, one summary line per
    campaign."""
    try:
        config.check_secrets()  # fail now, not at the first bind
    except ConfigError as exc:
        print(f"smsblast run: configuration error:\n{exc}", file=sys.stderr)
        return RunResult(EXIT_CONFIG, False)
    problem = ledger_path_problem(config.ledger.path, create=True)
    if problem is not None:
        print(f"smsblast run: configuration error:\nledger.path: {problem}", file=sys.stderr)
        return RunResult(EXIT_CONFIG, False)
    lock = LedgerLock(config.ledger.path)
    refused = lock.try_acquire()
    if refused is not None:
        print(f"smsblast run: {refused}", file=sys.stderr)
        return RunResult(EXIT_CONFIG, False)
    try:
        return await _run_locked(config, campaigns, options)
    finally:
        lock.release()


async def _run_locked(config: Any, campaigns: list[Any], options: RunOptions) -> RunResult:
    """:func:`run_engine` once this process holds the ledger's lock."""
    import sqlite3

    from aiokafka.errors import KafkaError

    from smsblast.admin.control import LedgerController
    from smsblast.admin.server import serve_admin
    from smsblast.engine.engine import Engine
    from smsblast.engine.reconnect import describe
    from smsblast.ledger import AsyncLedger, LedgerError
    from smsblast.optout import OptOutList, TopicNotFound, keep_following, load_file
    from smsblast.progress import show

    register_secrets(config)
    optout = OptOutList()
    if config.optout.file:
        optout = load_file(config.optout.file)
        for line_no, reason in optout.rejected[:20]:
            log.warning("%s:%d: opt-out entry ignored: %s", config.optout.file, line_no, reason)
    if config.optout.topic:
        try:
            from_topic = await _load_optout_topic(config)
        except (TopicNotFound, KafkaError) as exc:
            print(
                f"smsblast run: cannot read the opt-out topic {config.optout.topic!r}: "
                f"{describe(exc)}. Nothing was sent.",
                file=sys.stderr,
            )
            return RunResult(EXIT_CONFIG, False)
        if from_topic is None:
            print("stopped by signal while Kafka was unreachable: nothing was sent")
            return RunResult(EXIT_OK, True)
        from_topic.merge(optout)  # the file's numbers stay, whatever the topic says
        optout = from_topic
    metrics_url, stop_metrics = start_metrics(config)
    if metrics_url is not None:
        print(f"metrics: {metrics_url}", flush=True)
    ledger = AsyncLedger(config.ledger.path, process=config.ledger.worker == "process")
    engine = Engine(
        config,
        campaigns,
        ledger,
        optout,
        max_in_memory=options.max_in_memory,
        route_down_grace=options.route_down_grace,
        drain_timeout=options.drain_timeout,
    )
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, engine.stop)
    controller = LedgerController(ledger, engine.on_control, engine.status, ready=engine.ready)
    admin = await serve_admin(config.admin, controller)
    progress = asyncio.create_task(
        show(
            options.progress,
            interval=options.progress_interval,
            campaigns=[c.name for c in campaigns],
        ),
        name="progress",
    )
    # Refusals that arrive during the run apply to every record read after them, and to
    # every recipient the backfill takes from the ledger.
    stop_following = asyncio.Event()
    following = None
    if config.optout.topic:
        following = asyncio.create_task(
            keep_following(
                optout,
                config.kafka.bootstrap_servers,
                config.optout.topic,
                stop_following,
                **config.kafka.aiokafka_kwargs(),
            ),
            name="optout follow",
        )
    try:
        try:
            await engine.run(until_done=options.until_done)
        except (LedgerError, sqlite3.Error) as exc:
            # Nothing more could be recorded, so nothing more may be sent: the process is
            # gone, or SQLite failed (a full disk, an I/O error).
            reason = str(exc) if isinstance(exc, LedgerError) else describe(exc)
            print(
                f"smsblast run: the ledger failed: {reason}. Stopped; what the ledger "
                "recorded stands, and a new `smsblast run` goes on from it (free disk space "
                "first if it is full).",
                file=sys.stderr,
            )
            return RunResult(EXIT_LEDGER, engine.stopped, metrics_url)
        finally:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
            stop_following.set()
            if following is not None:
                await following
        complete = True
        stopped = engine.stopped
        opened = {info.name for info in await ledger.campaigns()}
        for run in engine.runs:
            if run.name not in opened:  # failed to start, cancelled or stopped before
                print(f"campaign {run.name}: not started: {not_started(run)}")
                if run.failure is not None or not (stopped or run.state == "cancelled"):
                    complete = False
                continue
            counts = await ledger.counts(run.name)
            print(format_summary(run.name, counts, dict(run.stats)))
            if run.pruned_at is not None:  # over before this run: the counts are its own
                print(f"campaign {run.name}: pruned from the ledger; not sent again")
                continue
            if run.failure is not None:
                print(f"campaign {run.name}: failed: {run.failure}")
                complete = False
            if counts.get("in_flight"):
                complete = False  # uncertain: it would be UNKNOWN after a restart
            elif not stopped and (counts.get("pending") or not run.completed):
                complete = False  # --until-done ended with recipients left to send
        if stopped:
            print("stopped by signal: nothing in flight was lost; run again to continue")
    finally:
        if admin is not None:
            admin.close()
            await admin.wait_closed()
        for sig in signals:
            loop.remove_signal_handler(sig)
        await ledger.close()
        stop_metrics()
    return RunResult(EXIT_OK if complete else EXIT_INCOMPLETE, stopped, metrics_url)


async def _load_optout_topic(config: EngineConfig) -> OptOutList | None:
    """The opt-out topic's numbers, waiting for Kafka while it is unreachable (``None``:
    SIGTERM or SIGINT came first). Nothing may be sent before the list is read."""
    from smsblast.engine.reconnect import until_reachable
    from smsblast.optout import load_topic

    topic = config.optout.topic
    assert topic is not None
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    try:
        return await until_reachable(
            "optout",
            lambda: load_topic(
                config.kafka.bootstrap_servers, topic, **config.kafka.aiokafka_kwargs()
            ),
            stopped,
        )
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def ledger_path_problem(path: str, *, create: bool) -> str | None:
    """What stops the ledger file at ``path`` from being opened (``None``: nothing seen):
    a missing or read-only directory when the file must be created (``create``), a
    missing file when it must not, an unreadable or read-only file, a file that is not a
    ledger (:func:`smsblast.ledger.ledger_file_problem`). Checked before
    anything starts, so the error names the path instead of SQLite's "unable to open
    database file"."""
    if path == ":memory:":
        return None
    file = Path(path)
    folder = file.parent
    if file.exists():
        if file.is_dir():
            return f"{path} is a directory, not a ledger file"
        if not os.access(file, os.R_OK | os.W_OK):
            return f"{path}: no permission to read and write it"
        from smsblast.ledger import ledger_file_problem

        problem = ledger_file_problem(path)
        if problem is not None:
            return problem
    elif not create:
        return f"no ledger at {path} (no campaign has run with this configuration)"
    elif not folder.is_dir():
        return f"{path}: the directory {folder} does not exist (create it for the engine)"
    if not os.access(folder, os.W_OK | os.X_OK):  # SQLite's WAL files go next to it
        return f"{path}: no permission to create files in {folder}"
    return None


def not_started(run: CampaignRun) -> str:
    """Why a run never opened its campaign in the ledger (nothing of it was sent)."""
    if run.failure is not None:
        return run.failure
    if run.state == "cancelled":
        return "cancelled by an operator"
    return "stopped before it opened"


def format_summary(name: str, counts: dict[str, int], stats: dict[str, int]) -> str:
    total = sum(counts.values())
    states = "  ".join(f"{k} {v:,}" for k, v in sorted(counts.items()) if v)
    # duplicates: numbers already claimed; parked: waited in the ledger for a busy route
    extra = "".join(f"  {key} {stats[key]:,}" for key in ("duplicates", "parked") if stats.get(key))
    return f"campaign {name}: {total:,} recipient(s): {states}{extra}"


def report_main(args: argparse.Namespace) -> int:
    from smsblast.ledger import SqliteLedger

    try:
        config = load_engine_config(args.config)
    except ConfigError as exc:
        print(f"smsblast report: configuration error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    problem = ledger_path_problem(config.ledger.path, create=False)
    if problem is not None:  # a report never creates a ledger
        print(f"smsblast report: ledger.path: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    ledger = SqliteLedger(config.ledger.path)
    try:
        if args.campaign not in {c.name for c in ledger.campaigns()}:
            print(
                f"smsblast report: no campaign {args.campaign!r} in {config.ledger.path}",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        report = ledger.report(args.campaign)
        if args.chart:
            from smsblast.chart import ChartUnavailable, write_chart

            try:
                write_chart(ledger, args.campaign, args.chart)
            except ChartUnavailable as exc:
                print(f"smsblast report: {exc}", file=sys.stderr)
                return EXIT_CONFIG
    finally:
        ledger.close()
    if args.format == "json":
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
    elif args.format == "csv":
        print(report_csv(report), end="")
    else:
        print(report_table(args.campaign, report))
    return EXIT_OK


def report_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["route", "state", "count"])
    for route, states in sorted(report.get("by_route", {}).items()):
        for state, n in sorted(states.items()):
            writer.writerow([route, state, n])
    return out.getvalue()


def report_table(name: str, report: dict[str, Any]) -> str:
    lines = [f"campaign {name}"]
    by_route: dict[str, dict[str, int]] = report.get("by_route", {})
    states = sorted({s for r in by_route.values() for s in r})
    lines.append(f"  {'route':<14}" + "".join(f"{s:>12}" for s in states) + f"{'total':>12}")
    for route, counts in sorted(by_route.items()):
        row = "".join(f"{counts.get(s, 0):>12,}" for s in states)
        lines.append(f"  {route or '-':<14}{row}{sum(counts.values()):>12,}")
    for title, key in (("status codes", "statuses"), ("receipts", "receipts")):
        data = report.get(key) or {}
        if data:
            lines.append(f"  {title}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(data.items())))
    unknown = report.get("unknown") or {}
    if unknown.get("count"):
        first = ", ".join(unknown.get("msisdns", [])[:10])
        lines.append(f"  unknown: {unknown.get('count', 0):,} (first: {first})")
    pruned_at = report.get("pruned_at")
    if pruned_at is not None:
        when = time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(pruned_at))
        lines.append(
            f"  pruned {when}: the counts above stand; per-recipient rows, status codes "
            "and receipts were deleted (smsblast prune)"
        )
    return "\n".join(lines)
