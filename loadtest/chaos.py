"""`python -m loadtest chaos`: the paced routes under faults, against the same run without.

Two runs of the same N recipients over the routes of the paced scenario (asap):

1. clean: no faults, the SMSC enforces no limit;
2. chaos: every bind dropped by the SMSC every ``--drop-every`` seconds, the SMSC
   throttling (ESME_RTHROTTLED) at 70% of the TPS the engine is configured with, 1% transient
   errors (ESME_RSYSERR and ESME_RX_T_APPN, half each) and receipts delayed (lognormal,
   median 200 ms, capped at 5 s).

Figures (chaos run): recipients lost (must be 0), duplicates the SMSC saw, unknowns in the
ledger, and the time overrun vs the clean run. "Lost" adds up three ways to lose someone:
never claimed from Kafka (N - ledger rows), left pending or in flight when the engine said
it was done, and recorded as accepted in the ledger but never accepted by the SMSC
(ledger accepted - SMSC unique destinations, when positive).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from loadtest import plots
from loadtest.paced import ROUTES
from loadtest.report import percentiles, scenario_dir, table, write_results
from loadtest.sim_view import bind_figures, route_series, unique_destinations
from loadtest.stack import StackRun, run_stack, simulator_profile

THROTTLE_AT = 0.7
TRANSIENT = {"ESME_RSYSERR": 0.005, "ESME_RX_T_APPN": 0.005}
RECEIPT_DELAY = {"dist": "lognormal", "median_ms": 200, "sigma": 1.0, "max_ms": 5000}


def chaos_profile(drop_every: float) -> Any:
    return simulator_profile(
        ROUTES,
        tps_factor=THROTTLE_AT,
        receipts={"enabled": True, "delay": RECEIPT_DELAY},
        faults={"drop_every_s": drop_every, "error_rates": TRANSIENT},
    )


def losses(run: StackRun) -> dict[str, int]:
    """The ways a recipient can be lost, and their sum (see the module docstring)."""
    states = run.ledger.states
    sim_unique = unique_destinations(run.sim)
    never_claimed = max(0, run.recipients - run.ledger.total)
    unfinished = states.get("pending", 0) + states.get("in_flight", 0)
    phantom = max(0, run.ledger.accepted - sim_unique)
    return {
        "never_claimed": never_claimed,
        "unfinished": unfinished,
        "accepted_in_ledger_not_at_smsc": phantom,
        "lost": never_claimed + unfinished + phantom,
    }


def run_figures(run: StackRun) -> dict[str, Any]:
    sim = run.sim
    return {
        "engine_seconds": round(run.engine.seconds, 2),
        "exit_code": run.engine.exit_code,
        "summary": run.engine.summary,
        **losses(run),
        "duplicates": sim["totals"]["duplicates"],
        "unknown": run.ledger.states.get("unknown", 0),
        "ledger_states": run.ledger.states,
        "ledger_accepted": run.ledger.accepted,
        "sim_unique_destinations": unique_destinations(sim),
        "sim_accepted": sim["totals"]["submits_accepted"],
        "sim_throttled": sim["totals"]["throttled"],
        "sim_transient_errors": sum(
            a["submits"]["by_status"].get(code, 0)
            for a in sim["accounts"].values()
            for code in TRANSIENT
        ),
        "sim_fault_drops": sim["simulator"].get("fault_drops", 0),
        "sim_receipts_requeued": sum(a["receipts"]["requeued"] for a in sim["accounts"].values()),
        "latency_claim_to_receipt_s": percentiles(run.ledger.latencies_s),
        "stderr_tail": run.engine.stderr_tail,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest chaos", description=__doc__)
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--drop-every", type=float, default=10.0, help="seconds per bind")
    parser.add_argument("--out", default="out", help="results go to OUT/chaos/")
    args = parser.parse_args(argv)
    clean = run_stack(args.recipients, ROUTES, simulator_profile(ROUTES))
    chaos = run_stack(args.recipients, ROUTES, chaos_profile(args.drop_every))
    results = {"clean": run_figures(clean), "chaos": run_figures(chaos)}
    overrun = chaos.engine.seconds / clean.engine.seconds - 1
    columns = [
        "engine_seconds",
        "lost",
        "duplicates",
        "unknown",
        "sim_throttled",
        "sim_transient_errors",
        "sim_fault_drops",
        "exit_code",
    ]
    print(table([{"run": k, **v} for k, v in results.items()], ["run", *columns]))
    print(f"time overrun vs clean: {100 * overrun:+.1f}%")
    out = scenario_dir(args.out, "chaos")
    capacity = {r.name: r.capacity for r in ROUTES}
    throttled_at = {k: v * THROTTLE_AT for k, v in capacity.items()}
    binds = bind_figures(chaos.sim, {})
    plots.rate_plot(
        out / "rate.png",
        route_series(binds, throttled_at),
        "chaos: accepted per route (all binds); SMSC limit (70% of configured) dashed",
    )
    plots.latency_plot(
        out / "latency.png", chaos.ledger.latencies_s, "chaos", "claim to delivery receipt"
    )
    write_results(
        args.out,
        "chaos",
        {
            "figures": {
                "recipients": args.recipients,
                "lost": results["chaos"]["lost"],
                "duplicates": results["chaos"]["duplicates"],
                "unknown": results["chaos"]["unknown"],
                "clean_seconds": results["clean"]["engine_seconds"],
                "chaos_seconds": results["chaos"]["engine_seconds"],
                "overrun_pct": round(100 * overrun, 1),
            },
            "runs": results,
            "faults": {
                "drop_every_s": args.drop_every,
                "throttle_at": THROTTLE_AT,
                "transient_error_rates": TRANSIENT,
                "receipt_delay": RECEIPT_DELAY,
            },
            "routes": [vars(r) for r in ROUTES],
        },
        args,
        plots=["rate.png", "latency.png"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
