"""`python -m loadtest ceiling`: the SMPP layer's own limit.

The bind client (smsblast.client.Bind + SubmitTemplate, the same code the
engine uses) against the minimal sink (loadtest/sink.py) running in its own
process, for a matrix of bind counts and window sizes. Each cell submits N
messages as fast as the window allows and reports accepted submit_sm/s.
``--profile`` runs one cell under cProfile and prints the top entries.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import pstats
import subprocess
import sys
import time
from typing import Any

from loadtest import plots
from loadtest.report import scenario_dir, write_results
from smsblast.client import Bind, BindConfig, OutcomeKind, SubmitOutcome
from smsblast.procs import stop_process
from smsblast.smpp.constants import Npi, Ton
from smsblast.smpp.fast import SubmitTemplate
from smsblast.smpp.pdu import SubmitSm

TEXT = b"Jaga Persatuan Indonesia, datang ke TPS dan gunakan hak pilih"


def start_sink() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadtest.sink"],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("LISTENING"):
        stop_process(proc, grace=5)
        raise RuntimeError(f"sink did not start: {line!r}")
    return proc, int(line.split()[1])


async def run_cell(port: int, binds: int, window: int, total: int) -> dict[str, Any]:
    template = SubmitTemplate(
        SubmitSm(
            source_addr="KOMINFO",
            source_addr_ton=Ton.ALPHANUMERIC,
            dest_addr_ton=Ton.INTERNATIONAL,
            dest_addr_npi=Npi.ISDN,
            registered_delivery=1,
        )
    )
    accepted = 0
    settled = 0
    done = asyncio.Event()

    def on_outcome(_ctx: object, outcome: SubmitOutcome) -> None:
        nonlocal accepted, settled
        settled += 1
        if outcome.kind is OutcomeKind.ACCEPTED:
            accepted += 1
        if settled == total:
            done.set()

    clients = [
        Bind(
            BindConfig(
                host="127.0.0.1", port=port, system_id=f"bench{i}", password="x", window=window
            )
        )
        for i in range(binds)
    ]
    for b in clients:
        b.start()
    await asyncio.gather(*(b.wait_ready(10) for b in clients))
    share = [total // binds + (1 if i < total % binds else 0) for i in range(binds)]

    async def pump(bind: Bind, n: int, offset: int) -> None:
        sent = 0
        while sent < n:
            conn = await bind.wait_slot()
            for _ in range(min(conn.window.free, n - sent)):
                number = b"62812%08d" % ((offset + sent) % 100_000_000)
                conn.send_submit(template, number, TEXT, on_outcome)
                sent += 1

    started = time.perf_counter()
    cpu0 = time.process_time()
    await asyncio.gather(
        *(pump(b, n, sum(share[:i])) for i, (b, n) in enumerate(zip(clients, share, strict=True)))
    )
    await done.wait()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    await asyncio.gather(*(b.close(drain_timeout=1) for b in clients))
    return {
        "binds": binds,
        "window": window,
        "messages": total,
        "accepted": accepted,
        "seconds": round(elapsed, 4),
        "rate": round(accepted / elapsed, 1),
        "client_cpu_percent": round(100 * cpu / elapsed, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest ceiling", description=__doc__)
    parser.add_argument("--binds", default="1,4,8")
    parser.add_argument("--windows", default="1,10,100")
    parser.add_argument(
        "--messages",
        "--recipients",
        dest="messages",
        type=int,
        default=200_000,
        help="per cell (window 1 cells send a tenth of it)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per cell; the median is kept")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile one cell (first bind count and last window) instead",
    )
    parser.add_argument("--out", default="out", help="results go to OUT/ceiling/")
    args = parser.parse_args(argv)
    import uvloop

    binds = [int(x) for x in args.binds.split(",")]
    windows = [int(x) for x in args.windows.split(",")]
    sink, port = start_sink()
    try:
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            cell = uvloop.run(run_cell(port, binds[0], windows[-1], args.messages))
            prof.disable()
            print(f"profiled cell: {cell}")
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
            print(buf.getvalue())
            return 0
        cells = []
        print(f"{'binds':>5} {'window':>6} {'median submit/s':>16}  runs")
        for b in binds:
            for w in windows:
                n = args.messages // 10 if w == 1 else args.messages
                runs = [uvloop.run(run_cell(port, b, w, n)) for _ in range(args.runs)]
                runs.sort(key=lambda r: r["rate"])
                median = runs[len(runs) // 2]
                cells.append({**median, "runs": [r["rate"] for r in runs]})
                print(
                    f"{b:>5} {w:>6} {median['rate']:>16,.0f}  "
                    + ", ".join(f"{r['rate']:,.0f}" for r in runs),
                    flush=True,
                )
        plots.bar_plot(
            scenario_dir(args.out, "ceiling") / "throughput.png",
            [f"{c['binds']}b w{c['window']}" for c in cells],
            [c["rate"] for c in cells],
            "bind client against the minimal sink (b = binds, w = window)",
            "accepted submit_sm per second",
        )
        write_results(args.out, "ceiling", {"cells": cells}, args, plots=["throughput.png"])
    finally:
        assert sink.stdin is not None
        sink.stdin.close()  # the sink exits at EOF on stdin
        with contextlib.suppress(subprocess.TimeoutExpired):
            sink.wait(10)
        stop_process(sink, grace=5)  # if it did not
    return 0


if __name__ == "__main__":
    sys.exit(main())
