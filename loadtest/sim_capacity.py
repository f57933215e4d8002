"""Capacity of the SMSC simulator: how many submit_sm/s (with receipts) one process serves.

Starts ``python -m smsblast.simulator`` in its own process (receipts on, no limits, no
latency), then drives it from this process with a raw asyncio client that costs as little as
possible: pre-built submit_sm via :class:`smsblast.smpp.fast.SubmitTemplate`, a fixed window
per bind refilled as submit_sm_resps come back, every deliver_sm acknowledged with a
pre-encoded deliver_sm_resp, one ``write`` per read. Prints one JSON line per run and the
medians::

    python -m loadtest.sim_capacity                      # 4 binds, window 300, 3 runs of 10 s
    python -m loadtest.sim_capacity --binds 4 --window 300 --seconds 10 --runs 3

Never gates anything on wall-clock time: it only reports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from smsblast.procs import stop_process
from smsblast.smpp.codec import encode
from smsblast.smpp.constants import CommandId
from smsblast.smpp.fast import SubmitTemplate
from smsblast.smpp.pdu import BindTransceiver, SubmitSm

_HEADER = struct.Struct(">IIII")
_SUBMIT_SM_RESP = int(CommandId.SUBMIT_SM_RESP)
_DELIVER_SM = int(CommandId.DELIVER_SM)
_DELIVER_SM_RESP = int(CommandId.DELIVER_SM_RESP)
_BIND_TRX_RESP = int(CommandId.BIND_TRANSCEIVER_RESP)

PROFILE = """
listen: 127.0.0.1:0
seed: 1
accounts:
  - system_id: loadtest
    password: secret
    max_binds: 16
receipts:
  enabled: true
  delay: %(delay)s
  outcomes: {DELIVRD: 0.95, UNDELIV: 0.05}
http: {host: 127.0.0.1, port: 0}
dedup: %(dedup)s
latency: %(latency)s
"""


class Counters:
    def __init__(self) -> None:
        self.resps = 0
        self.resp_errors = 0
        self.receipts = 0


class LoadBind(asyncio.Protocol):
    """One transceiver bind pushing a constant window of submit_sm."""

    def __init__(self, index: int, window: int, counters: Counters, stop: asyncio.Event) -> None:
        self.index = index
        self.window = window
        self.c = counters
        self.stop = stop
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.seq = 1
        self.sent = 0
        self.in_flight = 0
        self.bound = asyncio.get_running_loop().create_future()
        self.template = SubmitTemplate(
            SubmitSm(
                source_addr_ton=5,
                source_addr="SMSBLAST",
                dest_addr_ton=1,
                dest_addr_npi=1,
                registered_delivery=1,
            )
        )
        self.text = b"Promo smsblast: your code is 123456. Reply STOP to opt out."

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(
            encode(BindTransceiver(sequence_number=1, system_id="loadtest", password="secret"))
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.bound.done():
            self.bound.set_exception(ConnectionError("connection lost before bind"))

    def submits(self, n: int) -> bytes:
        encode_one = self.template.encode
        parts = []
        base = self.index * 100_000_000
        for _ in range(n):
            self.seq += 1
            self.sent += 1
            dest = b"628%010d" % (base + self.sent)
            parts.append(encode_one(self.seq, dest, self.text))
        self.in_flight += n
        return b"".join(parts)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        end = len(buf)
        out: list[bytes] = []
        refill = 0
        c = self.c
        unpack = _HEADER.unpack_from
        pack = _HEADER.pack
        while end - pos >= 16:
            length, cid, status, seq = unpack(buf, pos)
            if end - pos < length:
                break
            pos += length
            if cid == _SUBMIT_SM_RESP:
                c.resps += 1
                if status:
                    c.resp_errors += 1
                refill += 1
            elif cid == _DELIVER_SM:
                c.receipts += 1
                out.append(pack(17, _DELIVER_SM_RESP, 0, seq) + b"\x00")
            elif cid == _BIND_TRX_RESP:
                if status:
                    self.bound.set_exception(ConnectionError(f"bind refused 0x{status:X}"))
                else:
                    self.bound.set_result(None)
        del buf[:pos]
        self.in_flight -= refill
        if not self.stop.is_set() and self.bound.done() and self.in_flight < self.window:
            out.append(self.submits(self.window - self.in_flight))
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def start(self) -> None:
        assert self.transport is not None
        self.transport.write(self.submits(self.window))


def _factory(proto: LoadBind) -> Callable[[], LoadBind]:
    return lambda: proto


async def drive(
    host: str, port: int, binds: int, window: int, seconds: float, warmup: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    counters = Counters()
    stop = asyncio.Event()
    protos: list[LoadBind] = []
    for i in range(binds):
        proto = LoadBind(i, window, counters, stop)
        await loop.create_connection(_factory(proto), host, port)
        protos.append(proto)
    await asyncio.gather(*(p.bound for p in protos))
    for p in protos:
        p.start()
    await asyncio.sleep(warmup)
    t0, r0, d0 = time.perf_counter(), counters.resps, counters.receipts
    await asyncio.sleep(seconds)
    t1, r1, d1 = time.perf_counter(), counters.resps, counters.receipts
    stop.set()
    await asyncio.sleep(1.0)  # let in-flight answers and receipts arrive
    for p in protos:
        if p.transport is not None:
            p.transport.close()
    elapsed = t1 - t0
    return {
        "submits_per_s": round((r1 - r0) / elapsed),
        "receipts_per_s": round((d1 - d0) / elapsed),
        "resp_errors": counters.resp_errors,
        "submitted": sum(p.sent for p in protos),
        "resps": counters.resps,
        "receipts": counters.receipts,
    }


def run_once(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp) / "sim.yaml"
        profile.write_text(
            PROFILE
            % {
                "dedup": "false" if args.no_dedup else "true",
                "latency": args.latency_ms,
                "delay": args.receipt_delay_ms,
            }
        )
        launcher = [args.sim_script] if args.sim_script else ["-m", "smsblast.simulator"]
        cmd = [sys.executable, *launcher, "--config", str(profile)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            host, port, http = "", 0, 0
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not (port and http):
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError("simulator exited before listening")
                kind, _, addr = line.strip().partition(" ")
                h, _, p = addr.rpartition(":")
                if kind == "LISTENING":
                    host, port = h, int(p)
                elif kind == "HTTP":
                    http = int(p)
            result = run_client(args, host, port)
            with urllib.request.urlopen(f"http://{host}:{http}/stats", timeout=10) as resp:
                stats = json.load(resp)
            acct = stats["accounts"]["loadtest"]
            result["sim_accepted"] = acct["submits"]["accepted"]
            result["sim_receipts_sent"] = acct["receipts"]["sent"]
            result["sim_max_accepted_1s_per_bind"] = acct["max_accepted_1s_per_bind"]
            result["sim_unique_destinations"] = acct["unique_destinations"]
            return result
        finally:
            stop_process(proc, grace=20)


def run_client(args: argparse.Namespace, host: str, port: int) -> dict[str, Any]:
    coro = drive(host, port, args.binds, args.window, args.seconds, args.warmup)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binds", type=int, default=4)
    parser.add_argument("--window", type=int, default=300, help="submit_sm in flight per bind")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured interval")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-dedup", action="store_true", help="simulator without dedup stats")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="submit_sm_resp latency")
    parser.add_argument("--receipt-delay-ms", type=float, default=0.0, help="receipt delay")
    parser.add_argument(
        "--sim-script",
        help="run the simulator as `python SCRIPT --config ...` (e.g. a cProfile wrapper)",
    )
    args = parser.parse_args(argv)
    results = []
    for i in range(args.runs):
        result = run_once(args)
        results.append(result)
        print(json.dumps({"run": i + 1, **result}), flush=True)
    summary = {
        "binds": args.binds,
        "window": args.window,
        "latency_ms": args.latency_ms,
        "receipt_delay_ms": args.receipt_delay_ms,
        "median_submits_per_s": statistics.median(r["submits_per_s"] for r in results),
        "median_receipts_per_s": statistics.median(r["receipts_per_s"] for r in results),
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
