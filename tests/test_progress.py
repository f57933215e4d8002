"""The progress display: metrics snapshot -> screen, as an operator would read it."""

from __future__ import annotations

import io
import math

from rich.console import Console

from smsblast import metrics as m
from smsblast.progress import (
    CampaignSnapshot,
    RouteLink,
    RouteSnapshot,
    Snapshot,
    collect,
    eta,
    plain_line,
    render,
    resolve_mode,
)

T0 = 1_700_000_000.0


def snapshots() -> tuple[Snapshot, Snapshot]:
    def snap(at: float, tsel: float, isat: float) -> Snapshot:
        return Snapshot(
            at=at,
            campaigns=(
                CampaignSnapshot(
                    name="jaga-persatuan",
                    total=10_000,
                    rejected=12,
                    state="running",
                    deadline=T0 + 60,
                    routes=(
                        RouteSnapshot("telkomsel", {"submitted": tsel, "failed": 3}),
                        RouteSnapshot("indosat", {"submitted": isat}, throttled=7),
                    ),
                ),
            ),
            links=(
                RouteLink("telkomsel", binds=2, binds_up=2, tps_target=1000),
                RouteLink("indosat", binds=2, binds_up=1, tps_target=600),
            ),
            receipts={"delivered": 900, "failed": 20},
        )

    return snap(T0, 1000, 500), snap(T0 + 10, 3000, 1500)


def screen(renderable: object) -> str:
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_the_screen_shows_campaign_routes_counts_rates_binds_and_receipts() -> None:
    prev, cur = snapshots()
    text = screen(render(cur, prev))
    assert "campaign jaga-persatuan [running]" in text
    assert "sent 4,503 / 10,000" in text  # both routes, failed included
    assert "rejected 12" in text
    tsel = next(line for line in text.splitlines() if "telkomsel" in line)
    assert "3,003" in tsel and "200" in tsel and "1,000" in tsel and "2/2" in tsel
    isat = next(line for line in text.splitlines() if "indosat" in line)
    assert "100" in isat and "7" in isat and "1/2" in isat  # 1,000 in 10 s; throttled; binds
    assert "refused" in text and "binds 3/4 up" in text
    assert "delivered 900" in text and "failed 20" in text
    # 5,497 left at 300/s: about 18 s, within the deadline 60 s after T0
    assert "deadline" in text and "LATE" not in text


def test_eta_uses_the_achieved_rate_and_flags_a_late_campaign() -> None:
    _, cur = snapshots()
    c = cur.campaigns[0]
    assert eta(c, 300.0, cur.at) == cur.at + c.remaining / 300.0
    assert eta(c, 0.0, cur.at) == math.inf
    stalled = Snapshot(cur.at - 10, cur.campaigns, cur.links)  # nothing sent in 10 s
    text = screen(render(cur, stalled))
    assert "ETA never" in text and "LATE" in text


def test_the_plain_line_is_one_line_with_the_same_facts() -> None:
    prev, cur = snapshots()
    line = plain_line(cur, prev)
    assert "\n" not in line
    assert "campaign=jaga-persatuan sent=4,503/10,000" in line
    assert "telkomsel=3,003" in line and "rate=300/s" in line and "binds=3/4" in line


def test_collect_reads_the_engine_metrics_registry() -> None:
    m.CAMPAIGN_TOTAL.labels("ux-collect").set(50)
    m.RECIPIENTS_FINISHED.labels("ux-collect", "xl", "submitted").inc(20)
    m.RECIPIENTS_FINISHED.labels("ux-collect", "xl", "failed").inc(2)
    m.SUBMITS_RETRIED.labels("ux-collect", "xl", "ESME_RTHROTTLED").inc(4)
    m.BIND_UP.labels("ux-xl", "ux-xl-0").set(1)
    m.BIND_UP.labels("ux-xl", "ux-xl-1").set(0)
    snap = collect(now=T0)
    c = snap.campaign("ux-collect")
    assert c is not None and c.total == 50 and c.sent == 22
    assert c.routes[0].route == "xl" and c.routes[0].throttled == 4
    link = next(link for link in snap.links if link.route == "ux-xl")
    assert (link.binds, link.binds_up) == (2, 1)


def test_auto_mode_is_plain_when_output_is_not_a_terminal() -> None:
    assert resolve_mode("auto", io.StringIO()) == "plain"
    assert resolve_mode("rich", io.StringIO()) == "rich"
