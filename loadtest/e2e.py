"""`python -m loadtest e2e`: Tansu + engine + simulator on this machine, receipts on, no TPS cap.

Fills a segment topic with N synthetic recipients (four operators; generated and produced
as a stream, so 17M fit), starts the simulator in its own process with no TPS limit, runs
``smsblast run --until-done`` as a subprocess, and reports recipients/s end to end (engine
start, Kafka group join included, to its exit after the last receipt) and the engine's
peak RSS. ``--recipients 100000,1000000,4000000`` runs each size in turn: the cost-growth
table (time should grow linearly, RSS stay flat).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from loadtest import plots
from loadtest.report import percentiles, scenario_dir, table, write_results
from loadtest.sim_view import bind_figures, unique_destinations
from loadtest.stack import Route, StackRun, run_stack, simulator_profile
from smsblast.segments import DEFAULT_MIX

UNCAPPED_TPS = 1_000_000


def routes(binds: int, window: int) -> list[Route]:
    return [Route(name, UNCAPPED_TPS, binds, window) for name in DEFAULT_MIX]


def cpu_per_recipient(run: StackRun) -> dict[str, float | None]:
    """CPU microseconds a recipient, per process and together, over the engine's run."""
    seconds = {
        "engine": run.engine.cpu_s,
        "ledger_process": run.engine.children_cpu_s,
        "simulator": run.sim_cpu_s,
        "broker": run.broker_cpu_s,
    }
    known = [s for s in seconds.values() if s is not None]
    seconds["together"] = sum(known) if len(known) == len(seconds) else None
    return {
        name: None if s is None else round(s / run.recipients * 1e6, 1)
        for name, s in seconds.items()
    }


def summarise(run: StackRun) -> dict[str, Any]:
    """The figures of one run, JSON-ready."""
    totals = run.sim["totals"]
    seconds = run.engine.seconds
    return {
        "recipients": run.recipients,
        "fill_seconds": run.fill_seconds,
        "engine_seconds": round(seconds, 2),
        "recipients_per_s": round(run.recipients / seconds, 1),
        # engine start (a fresh process) -> first recipient claimed: imports, ledger, binds,
        # and the Kafka group join
        "startup_seconds": (
            None
            if run.ledger.first_claim_at is None
            else round(run.ledger.first_claim_at - run.engine.started_at, 2)
        ),
        "engine_peak_rss_mb": run.engine.peak_rss_mb,
        "ledger_process_peak_rss_mb": run.engine.children_peak_rss_mb,
        "engine_total_peak_rss_mb": run.engine.total_peak_rss_mb,
        "exit_code": run.engine.exit_code,
        "summary": run.engine.summary,
        "sim_accepted": totals["submits_accepted"],
        "sim_unique_destinations": unique_destinations(run.sim),
        "sim_duplicates": totals["duplicates"],
        "sim_receipts_sent": totals["receipts_sent"],
        "ledger": run.ledger.as_dict(),
        "ledger_mb": run.ledger_mb,
        "broker_peak_rss_mb": run.broker_peak_rss_mb,
        "sim_peak_rss_mb": run.sim_peak_rss_mb,
        "cpu_us_per_recipient": cpu_per_recipient(run),
        "latency_claim_to_receipt_s": percentiles(run.ledger.latencies_s),
        "stderr_tail": run.engine.stderr_tail,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest e2e", description=__doc__)
    parser.add_argument(
        "--recipients", default="1000000", help="N, or N1,N2,... for the cost-growth table"
    )
    parser.add_argument("--binds", type=int, default=2, help="per route")
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--runs", type=int, default=1, help="runs per size; the median is kept")
    parser.add_argument(
        "--optout",
        type=int,
        default=0,
        help="an opt-out file of this many numbers for the engine (none of the recipients)",
    )
    parser.add_argument("--out", default="out", help="results go to OUT/e2e/")
    parser.add_argument(
        "--keep-ledger",
        metavar="FILE",
        help="move the last run's ledger file here (campaign 'bench'), e.g. to time a prune",
    )
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.recipients.split(",")]
    route_list = routes(args.binds, args.window)
    medians: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    last: StackRun | None = None
    for n in sizes:
        mine = []
        for i in range(args.runs):
            last = run_stack(
                n,
                route_list,
                simulator_profile(route_list),
                mix=DEFAULT_MIX,
                optout=args.optout,
                keep_ledger=None if args.keep_ledger is None else Path(args.keep_ledger),
            )
            result = summarise(last)
            mine.append(result)
            result["optout_numbers"] = args.optout
            print(json.dumps({"run": i + 1, **result}), flush=True)
        mine.sort(key=lambda r: r["recipients_per_s"])
        medians.append(mine[len(mine) // 2])
        runs += mine
    rows = [
        {
            "recipients": m["recipients"],
            "engine s": m["engine_seconds"],
            "recipients/s": m["recipients_per_s"],
            "peak RSS MB": m["engine_peak_rss_mb"],
            "ledger proc MB": m["ledger_process_peak_rss_mb"],
            "together MB": m["engine_total_peak_rss_mb"],
            "broker MB": m["broker_peak_rss_mb"],
            "s per 1M": round(m["engine_seconds"] / m["recipients"] * 1e6, 1),
            "CPU us/recipient": m["cpu_us_per_recipient"]["together"],
            "engine CPU us": m["cpu_us_per_recipient"]["engine"],
            "duplicates": m["sim_duplicates"],
            "delivered": m["ledger"]["states"].get("delivered", 0),
            "exit": m["exit_code"],
        }
        for m in medians
    ]
    print(table(rows, list(rows[0])))
    out = scenario_dir(args.out, "e2e")
    if last is not None:
        binds = bind_figures(last.sim, {})
        plots.rate_plot(
            out / "rate.png",
            [b.series for b in binds],
            f"e2e {last.recipients:,} recipients: accepted per bind (no TPS cap)",
        )
        plots.latency_plot(
            out / "latency.png",
            last.ledger.latencies_s,
            f"e2e {last.recipients:,} recipients",
            "claim to delivery receipt",
        )
    write_results(
        args.out,
        "e2e",
        {
            "sizes": medians,
            "median": medians[-1],
            "runs": runs,
            "table": rows,
        },
        args,
        plots=["rate.png", "latency.png"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
