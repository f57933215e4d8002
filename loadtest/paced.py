"""`python -m loadtest paced`: pacing accuracy at realistic per-bind TPS, with a deadline.

Four routes with the TPS operators grant (400/300/200/100 per bind, 4/3/2/2 binds), the
recipient mix proportional to each route's capacity, and a campaign with a deadline and
``pace: even`` (quiet hours off). The simulator enforces no limit here, so it counts every
submit the engine lets out: the figures are the engine's own pacing. Per bind:

* max accepted in any 1 s window vs its TPS, and in any 100 ms window vs TPS/10 + 1
  (exact: the simulator's sliding windows, checked at every admission);
* mean rate (accepted / the bind's busy span) vs its target: the TPS when sending as fast
  as allowed, or, with ``pace: even``, the rate that ends exactly at the deadline;
* when the last submit was accepted, and when the engine exited, vs the deadline.

If the campaign model does not accept ``deadline``/``pace``/``timezone`` yet, the run falls
back to ``asap`` and says so in the results (``pacing_mode``).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from loadtest import plots
from loadtest.report import percentiles, scenario_dir, table, write_results
from loadtest.sim_view import BindFigures, bind_figures, first_accept, last_accept
from loadtest.stack import Route, campaign, run_stack, simulator_profile
from smsblast.config import CampaignsFile

ROUTES = [
    Route("telkomsel", 400, 4),
    Route("indosat", 300, 3),
    Route("xl", 200, 2),
    Route("smartfren", 100, 2),
]


def pacing_fields(deadline: float) -> tuple[str, dict[str, Any]]:
    """The campaign's pacing fields the installed config model accepts, and their mode:
    ``even`` with a deadline (quiet hours off), else ``asap`` (no pacing fields)."""
    when = datetime.fromtimestamp(deadline, UTC).isoformat(timespec="seconds")
    base = {"deadline": when, "pace": "even", "timezone": "UTC"}
    for extra in ({**base, "quiet_hours": None}, base):
        try:
            CampaignsFile.model_validate({"campaigns": [campaign(extra)]})
        except ValidationError:
            continue
        return "even", extra
    return "asap", {}


def bind_row(b: BindFigures, tps: float, mode: str, deadline: float) -> dict[str, Any]:
    span = len(b.series.counts) * b.series.step_s
    mean = b.accepted / span
    # even: the rate that ends at the deadline from this bind's first accept
    target = min(tps, b.accepted / max(deadline - b.series.start, 1e-9)) if mode == "even" else tps
    return {
        "bind": b.key,
        "tps": tps,
        "accepted": b.accepted,
        "max_1s": b.max_1s,
        "max_100ms": b.max_100ms,
        "cap_100ms": int(tps / 10) + 1,
        "within_1s": b.max_1s <= tps,
        "within_100ms": b.max_100ms <= int(tps / 10) + 1,
        "busy_s": round(span, 1),
        "mean_rate": round(mean, 1),
        "target_rate": round(target, 1),
        "mean_vs_target_pct": round(100 * (mean / target - 1), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest paced", description=__doc__)
    parser.add_argument("--recipients", type=int, default=200_000)
    parser.add_argument(
        "--deadline-factor",
        type=float,
        default=1.25,
        help="deadline = engine start + --startup-s + factor x (recipients / total TPS)",
    )
    parser.add_argument("--startup-s", type=float, default=5.0, help="allowance for startup")
    parser.add_argument("--out", default="out", help="results go to OUT/paced/")
    args = parser.parse_args(argv)
    capacity = sum(r.capacity for r in ROUTES)
    ideal_s = args.recipients / capacity
    chosen: dict[str, Any] = {}

    def fields() -> dict[str, Any]:
        chosen["engine_start"] = time.time()
        chosen["deadline"] = (
            chosen["engine_start"] + args.startup_s + args.deadline_factor * ideal_s
        )
        chosen["mode"], extra = pacing_fields(chosen["deadline"])
        chosen["campaign_fields"] = extra
        return extra

    run = run_stack(args.recipients, ROUTES, simulator_profile(ROUTES), campaign_extra=fields)
    mode, deadline = chosen["mode"], chosen["deadline"]
    if mode == "asap":
        print("note: the campaign model rejected deadline/pace/timezone: ran with pace asap")
    tps = {r.name: r.tps_per_bind for r in ROUTES}
    binds = bind_figures(run.sim, tps)
    rows = [bind_row(b, tps[b.account], mode, deadline) for b in binds]
    print(table(rows, list(rows[0])) if rows else "no bind accepted anything")
    last, first = last_accept(binds), first_accept(binds)
    finish = {
        "pacing_mode": mode,
        "campaign_fields": chosen["campaign_fields"],
        "deadline_s_after_engine_start": round(deadline - chosen["engine_start"], 2),
        "first_accept_s": None if first is None else round(first - chosen["engine_start"], 2),
        "last_accept_s": None if last is None else round(last - chosen["engine_start"], 2),
        "last_accept_vs_deadline_s": None if last is None else round(last - deadline, 2),
        "engine_exit_vs_deadline_s": round(
            run.engine.started_at + run.engine.seconds - deadline, 2
        ),
        "ideal_send_s": round(ideal_s, 2),
    }
    for key, value in finish.items():
        print(f"{key}: {value}")
    worst_pct = max((abs(r["mean_vs_target_pct"]) for r in rows), default=None)
    figures = {
        "recipients": args.recipients,
        "all_within_1s": all(r["within_1s"] for r in rows),
        "all_within_100ms": all(r["within_100ms"] for r in rows),
        "worst_mean_vs_target_pct": worst_pct,
        "sim_throttled": run.sim["totals"]["throttled"],
        "sim_duplicates": run.sim["totals"]["duplicates"],
        **finish,
    }
    print(
        f"within 1 s caps: {figures['all_within_1s']}, within 100 ms caps: "
        f"{figures['all_within_100ms']}, worst mean vs target: {worst_pct}%"
    )
    out = scenario_dir(args.out, "paced")
    plots.rate_plot(
        out / "rate.png",
        [b.series for b in binds],
        f"paced ({mode}): accepted per bind, TPS limits dashed",
    )
    plots.latency_plot(out / "latency.png", run.ledger.latencies_s, "paced", "claim to receipt")
    write_results(
        args.out,
        "paced",
        {
            "figures": figures,
            "binds": rows,
            "timelines": [b.as_dict() for b in binds],
            "routes": [vars(r) for r in ROUTES],
            "engine": {
                "seconds": round(run.engine.seconds, 2),
                "exit_code": run.engine.exit_code,
                "peak_rss_mb": run.engine.peak_rss_mb,
                "summary": run.engine.summary,
                "stderr_tail": run.engine.stderr_tail,
            },
            "ledger": run.ledger.as_dict(),
            "latency_claim_to_receipt_s": percentiles(run.ledger.latencies_s),
        },
        args,
        plots=["rate.png", "latency.png"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
