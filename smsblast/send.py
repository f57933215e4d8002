"""`smsblast send`: a NOC smoke test through one bind.

Submits one message (or ``--count`` messages to consecutive numbers), waits for
the delivery receipts, and prints a per-outcome summary, so an engineer can
prove a route end to end before a campaign goes live. Each message is split
into parts exactly as a campaign would split it; every part is a submit_sm with
its own outcome and its own receipt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from smsblast.aio import run as run_async
from smsblast.client import (
    Bind,
    BindConfig,
    BindError,
    BindMode,
    OutcomeKind,
    SubmitOutcome,
)
from smsblast.config import sender_ton_npi
from smsblast.logs import register_secret
from smsblast.msisdn import InvalidMsisdn, normalize_msisdn
from smsblast.smpp import pdu as P
from smsblast.smpp.constants import Npi, Ton, status_name
from smsblast.smpp.fast import SubmitTemplate
from smsblast.smpp.parts import submit_parts
from smsblast.smpp.receipt import (
    IdFormat,
    Receipt,
    ReceiptParseError,
    normalize_message_id,
    receipt_from_deliver,
    stat_text,
)
from smsblast.smpp.text import EncodedMessage, TextEncodingError, TooManyPartsError, split_message

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BIND = 0, 1, 2, 3


class UsageError(Exception):
    """Bad arguments or environment: printed, exit code 2, nothing sent."""


@dataclass(frozen=True, slots=True)
class SendRequest:
    host: str
    port: int
    system_id: str
    password: str
    source: str
    first_msisdn: str
    text: str
    count: int = 1
    window: int = 10
    tps: float | None = None
    wait_dlr: float = 0.0
    resp_id_format: IdFormat = IdFormat.HEX
    receipt_id_format: IdFormat = IdFormat.HEX
    encoding: str = "auto"
    bind_timeout: float = 15.0
    mode: BindMode = BindMode.TRANSCEIVER


@dataclass(slots=True)
class SendReport:
    messages: int = 0
    parts: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    receipts: Counter[str] = field(default_factory=Counter)
    receipts_missing: int = 0
    receipts_unmatched: int = 0
    submit_seconds: float = 0.0
    total_seconds: float = 0.0
    bind_error: str = ""

    @property
    def submit_rate(self) -> float:
        return self.parts / self.submit_seconds if self.submit_seconds > 0 else 0.0

    def ok(self, waited_for_receipts: bool) -> bool:
        if self.bind_error or self.outcomes[OutcomeKind.ACCEPTED.value] != self.parts:
            return False
        return not (waited_for_receipts and self.receipts_missing)

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "parts": self.parts,
            "outcomes": {k.value: self.outcomes[k.value] for k in OutcomeKind},
            "statuses": dict(self.statuses),
            "receipts": dict(self.receipts),
            "receipts_missing": self.receipts_missing,
            "receipts_unmatched": self.receipts_unmatched,
            "submit_seconds": round(self.submit_seconds, 4),
            "submit_rate": round(self.submit_rate, 1),
            "total_seconds": round(self.total_seconds, 4),
            "bind_error": self.bind_error,
        }


def consecutive_msisdns(first: str, count: int) -> list[str]:
    """``count`` numbers starting at ``first`` (normalised), keeping its length."""
    width = len(first)
    start = int(first)
    if len(str(start + count - 1)) > width:
        raise UsageError(f"--count {count} runs past the numbering range of {first}")
    return [str(start + i).zfill(width) for i in range(count)]


def make_template(req: SendRequest, registered_delivery: int) -> SubmitTemplate:
    source_ton, source_npi = sender_ton_npi(req.source)
    return SubmitTemplate(
        P.SubmitSm(
            source_addr=req.source,
            source_addr_ton=source_ton,
            source_addr_npi=source_npi,
            dest_addr_ton=Ton.INTERNATIONAL,
            dest_addr_npi=Npi.ISDN,
            registered_delivery=registered_delivery,
        )
    )


class _Tracker:
    """Matches receipts to accepted parts, in whichever order they arrive."""

    def __init__(self, req: SendRequest, report: SendReport) -> None:
        self.req = req
        self.report = report
        self.awaiting: set[str] = set()  # receipt keys of accepted parts
        self.early: dict[str, Receipt] = {}  # receipts that beat their submit_sm_resp
        self.outcomes_pending = 0
        self.all_settled = asyncio.Event()
        self.all_receipts = asyncio.Event()

    def on_outcome(self, _ctx: Any, outcome: SubmitOutcome) -> None:
        rep = self.report
        rep.outcomes[outcome.kind.value] += 1
        if outcome.kind is OutcomeKind.ACCEPTED:
            key = normalize_message_id(outcome.message_id, self.req.resp_id_format)
            early = self.early.pop(key, None)
            if early is not None:
                rep.receipts[stat_text(early.state)] += 1
            else:
                self.awaiting.add(key)
        elif outcome.status is not None:
            rep.statuses[status_name(outcome.status)] += 1
        else:
            rep.statuses[outcome.reason] += 1
        self.outcomes_pending -= 1
        if self.outcomes_pending == 0:
            self.all_settled.set()
        self._check_done()

    def on_deliver(self, deliver: P.DeliverSm) -> None:
        if not deliver.esm_class & 0x04:
            return  # a mobile-originated message, not a receipt
        try:
            receipt = receipt_from_deliver(
                deliver.short_message,
                deliver.tlvs.receipted_message_id,
                deliver.tlvs.message_state,
            )
        except ReceiptParseError:
            self.report.receipts_unmatched += 1
            return
        key = normalize_message_id(receipt.message_id, self.req.receipt_id_format)
        if key in self.awaiting:
            self.awaiting.discard(key)
            self.report.receipts[stat_text(receipt.state)] += 1
            self._check_done()
        else:
            self.early[key] = receipt

    def _check_done(self) -> None:
        if self.all_settled.is_set() and not self.awaiting:
            self.all_receipts.set()


async def run_send(req: SendRequest) -> SendReport:
    """Bind, submit, collect receipts, unbind. Never raises for SMSC-side failures:
    they are in the report."""
    numbers = consecutive_msisdns(req.first_msisdn, req.count)
    rng = random.Random()
    report = SendReport(messages=req.count)
    tracker = _Tracker(req, report)
    template = make_template(req, 1 if req.wait_dlr > 0 else 0)
    config = BindConfig(
        host=req.host,
        port=req.port,
        system_id=req.system_id,
        password=req.password,
        mode=req.mode,
        window=req.window,
        bind_timeout=req.bind_timeout,
        name=f"{req.system_id}@{req.host}:{req.port}",
    )
    limiter = None
    if req.tps:
        from smsblast.ratelimit import AsyncRateLimiter

        limiter = AsyncRateLimiter(req.tps)
    started = time.perf_counter()
    async with Bind(config, on_deliver=tracker.on_deliver) as bind:
        try:
            await bind.wait_ready(req.bind_timeout)
        except (TimeoutError, BindError) as exc:
            report.bind_error = str(bind.last_error or exc)
            report.total_seconds = time.perf_counter() - started
            return report
        submit_started = time.perf_counter()
        for number in numbers:
            encoded = _split(req, rng)
            tracker.outcomes_pending += len(encoded.parts)
            report.parts += len(encoded.parts)
            for part in submit_parts(encoded):
                conn = await bind.wait_slot()
                if limiter is not None:
                    await limiter.acquire(1)
                conn.send_submit(
                    template,
                    number.encode("ascii"),
                    part.short_message,
                    tracker.on_outcome,
                    None,
                    part.esm_class,
                    part.data_coding,
                    part.tlvs,
                )
        if tracker.outcomes_pending:
            await tracker.all_settled.wait()
        report.submit_seconds = time.perf_counter() - submit_started
        if req.wait_dlr > 0:
            tracker._check_done()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tracker.all_receipts.wait(), req.wait_dlr)
            report.receipts_missing = len(tracker.awaiting)
            report.receipts_unmatched += len(tracker.early)
    report.total_seconds = time.perf_counter() - started
    return report


def _split(req: SendRequest, rng: random.Random) -> EncodedMessage:
    policy: Any = req.encoding
    return split_message(req.text, policy=policy, ref=rng.randrange(256))


# ---------------------------------------------------------------------- command line


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "send",
        help="submit test messages through one bind and report every outcome",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--smsc", required=True, metavar="HOST:PORT")
    p.add_argument("--system-id", required=True)
    p.add_argument(
        "--password-env",
        required=True,
        metavar="VAR",
        help="name of the environment variable holding the password",
    )
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="SENDER",
        help="alphanumeric sender id (<= 11 chars) or an MSISDN",
    )
    p.add_argument(
        "--to",
        required=True,
        metavar="MSISDN",
        help="destination in any Indonesian form: 0812..., +62812..., 62812...",
    )
    p.add_argument("--text", required=True)
    p.add_argument("--count", type=int, default=1, help="messages to consecutive numbers")
    p.add_argument("--window", type=int, default=10, help="max submit_sm in flight")
    p.add_argument("--tps", type=float, default=None, help="cap on submit_sm per second")
    p.add_argument(
        "--wait-dlr",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="request receipts and wait up to SECONDS for them",
    )
    p.add_argument(
        "--msg-id-format",
        default="hex",
        metavar="hex|dec|RESP:RECEIPT",
        help="how the SMSC writes message ids, e.g. hex, dec, or hex:dec",
    )
    p.add_argument("--encoding", choices=("auto", "gsm7", "ucs2"), default="auto")
    p.add_argument("--bind", choices=("transceiver", "transmitter"), default="transceiver")
    p.add_argument("--bind-timeout", type=float, default=15.0)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=main)


def _parse_id_formats(value: str) -> tuple[IdFormat, IdFormat]:
    try:
        if ":" in value:
            resp, receipt = value.split(":", 1)
            return IdFormat(resp), IdFormat(receipt)
        return IdFormat(value), IdFormat(value)
    except ValueError:
        raise UsageError(f"--msg-id-format {value!r}: use hex, dec or RESP:RECEIPT") from None


def request_from_args(args: argparse.Namespace) -> SendRequest:
    host, sep, port = args.smsc.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise UsageError(f"--smsc {args.smsc!r}: expected HOST:PORT")
    password = os.environ.get(args.password_env)
    if password is None:
        raise UsageError(f"environment variable {args.password_env} is not set")
    register_secret(password)
    try:
        first = normalize_msisdn(args.to)
    except InvalidMsisdn as exc:
        raise UsageError(f"--to: {exc}") from None
    if args.count < 1 or args.window < 1:
        raise UsageError("--count and --window must be at least 1")
    if args.tps is not None and args.tps <= 0:
        raise UsageError("--tps must be positive")
    if len(args.source) > 11 and not args.source.isdigit():
        raise UsageError("--from: an alphanumeric sender id has at most 11 characters")
    resp_fmt, receipt_fmt = _parse_id_formats(args.msg_id_format)
    try:
        split_message(args.text, policy=args.encoding)
    except (TextEncodingError, TooManyPartsError) as exc:
        raise UsageError(f"--text: {exc}") from None
    return SendRequest(
        host=host.strip("[]"),
        port=int(port),
        system_id=args.system_id,
        password=password,
        source=args.source,
        first_msisdn=first,
        text=args.text,
        count=args.count,
        window=args.window,
        tps=args.tps,
        wait_dlr=args.wait_dlr,
        resp_id_format=resp_fmt,
        receipt_id_format=receipt_fmt,
        encoding=args.encoding,
        bind_timeout=args.bind_timeout,
        mode=BindMode(args.bind),
    )


def format_report(req: SendRequest, rep: SendReport) -> str:
    title = (
        f"smsblast send: {rep.messages} message(s), {rep.parts} part(s) "
        f"via {req.host}:{req.port} as {req.system_id}"
    )
    return format_summary(title, rep, req.wait_dlr > 0)


def format_summary(title: str, rep: SendReport, receipts: bool) -> str:
    lines = [title]
    if rep.bind_error:
        lines.append(f"  BIND FAILED   {rep.bind_error}")
        return "\n".join(lines)
    for kind in OutcomeKind:
        lines.append(f"  {kind.value:<12}{rep.outcomes[kind.value]:>10,}")
    for status, n in sorted(rep.statuses.items()):
        lines.append(f"    {status:<26}{n:>10,}")
    lines.append(
        f"  rate        {rep.submit_rate:>10,.0f} submit/s over {rep.submit_seconds:.3f} s"
    )
    if receipts:
        states = ", ".join(f"{k} {v:,}" for k, v in sorted(rep.receipts.items())) or "none"
        lines.append(f"  receipts    {states}")
        lines.append(
            f"              missing {rep.receipts_missing:,}, unmatched {rep.receipts_unmatched:,}"
        )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    try:
        req = request_from_args(args)
        report = run_async(run_send(req))
    except UsageError as exc:
        print(f"smsblast send: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    else:
        print(format_report(req, report))
    if report.bind_error:
        return EXIT_BIND
    return EXIT_OK if report.ok(req.wait_dlr > 0) else EXIT_FAILED
