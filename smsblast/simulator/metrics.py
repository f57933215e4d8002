"""Every Prometheus object of the simulator, on a registry of its own.

The simulator never touches prometheus-client on the hot path: a custom collector reads
the plain counters of :mod:`smsblast.simulator.stats` when ``/metrics`` is scraped, and it
is registered on the simulator's dedicated ``CollectorRegistry`` (never the global one: the
engine has its own metrics, and tests run several simulators in one process). Labels carry
account names, statuses, states and bind indexes; never an MSISDN or a message id.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from smsblast.smpp.constants import status_name
from smsblast.smpp.receipt import ReceiptState, stat_text

if TYPE_CHECKING:
    from smsblast.simulator.server import Simulator

__all__ = ["SimulatorCollector", "register_collector", "render_metrics"]

PREFIX = "smsblast_sim"


class SimulatorCollector(Collector):
    def __init__(self, sim: Simulator) -> None:
        self._sim = sim

    def collect(self) -> Iterator[Metric]:
        sim = self._sim
        now = sim.loop.time() if sim._loop is not None else 0.0
        binds_active = GaugeMetricFamily(
            f"{PREFIX}_binds_active", "Binds currently bound", labels=["account", "bind_type"]
        )
        binds_total = CounterMetricFamily(
            f"{PREFIX}_binds", "Successful binds", labels=["account", "bind_type"]
        )
        bind_failures = CounterMetricFamily(
            f"{PREFIX}_bind_failures", "Refused binds by status", labels=["account", "status"]
        )
        submits = CounterMetricFamily(
            f"{PREFIX}_submits",
            "submit_sm answered, by command_status",
            labels=["account", "status"],
        )
        no_answer = CounterMetricFamily(
            f"{PREFIX}_submits_unanswered",
            "submit_sm left unanswered (fault)",
            labels=["account"],
        )
        throttled = CounterMetricFamily(
            f"{PREFIX}_throttled",
            "submit_sm answered ESME_RTHROTTLED, by limit",
            labels=["account", "scope"],
        )
        window_full = CounterMetricFamily(
            f"{PREFIX}_window_full", "submit_sm answered ESME_RMSGQFUL", labels=["account"]
        )
        receipts = CounterMetricFamily(
            f"{PREFIX}_receipts", "Receipts generated, by state", labels=["account", "state"]
        )
        receipts_sent = CounterMetricFamily(
            f"{PREFIX}_receipts_sent", "deliver_sm receipts written", labels=["account"]
        )
        receipts_pending = GaugeMetricFamily(
            f"{PREFIX}_receipts_pending", "Receipts waiting for a receiver", labels=["account"]
        )
        tps = GaugeMetricFamily(
            f"{PREFIX}_bind_tps",
            "submit_sm accepted in the last second, per bind",
            labels=["account", "bind"],
        )
        outstanding = GaugeMetricFamily(
            f"{PREFIX}_bind_outstanding",
            "submit_sm received and not yet answered, per bind",
            labels=["account", "bind"],
        )
        for system_id, acct in sim.accounts.items():
            st = acct.stats
            active: dict[str, int] = {}
            for conn in acct.active:
                if conn.bstats is not None:
                    t = conn.bstats.bind_type
                    active[t] = active.get(t, 0) + 1
            for t in ("transmitter", "receiver", "transceiver"):
                binds_active.add_metric([system_id, t], active.get(t, 0))
                binds_total.add_metric([system_id, t], st.binds_by_type.get(t, 0))
            for code, n in sorted(st.bind_failures.items()):
                bind_failures.add_metric([system_id, status_name(code)], n)
            by_status: dict[int, int] = {}
            sums = {"bind": 0, "account": 0, "full": 0, "sent": 0, "none": 0}
            for b in st.all_binds():
                for code, n in b.submits.items():
                    by_status[code] = by_status.get(code, 0) + n
                sums["bind"] += b.throttled_bind
                sums["account"] += b.throttled_account
                sums["full"] += b.window_full
                sums["sent"] += b.receipts_sent
                sums["none"] += b.no_answer
            for code, n in sorted(by_status.items()):
                submits.add_metric([system_id, status_name(code)], n)
            no_answer.add_metric([system_id], sums["none"])
            throttled.add_metric([system_id, "bind"], sums["bind"])
            throttled.add_metric([system_id, "account"], sums["account"])
            window_full.add_metric([system_id], sums["full"])
            for state, n in sorted(st.receipts_generated.items()):
                receipts.add_metric([system_id, stat_text(ReceiptState(state))], n)
            receipts_sent.add_metric([system_id], sums["sent"])
            receipts_pending.add_metric([system_id], len(acct.pending))
            for conn in acct.active:
                live = conn.bstats
                if live is not None:
                    tps.add_metric([system_id, str(live.index)], live.window.current(now))
                    outstanding.add_metric([system_id, str(live.index)], conn.outstanding)
        for bind_failure_code, n in sorted(sim.unknown_bind_failures.items()):
            bind_failures.add_metric(["", status_name(bind_failure_code)], n)
        connections = GaugeMetricFamily(f"{PREFIX}_connections_active", "Open TCP connections")
        connections.add_metric([], len(sim.connections))
        errors = CounterMetricFamily(
            f"{PREFIX}_protocol_errors", "Malformed or illegal PDUs received"
        )
        errors.add_metric([], sim.counters["protocol_errors"] + sim.counters["framing_errors"])
        yield from (
            binds_active,
            binds_total,
            bind_failures,
            submits,
            no_answer,
            throttled,
            window_full,
            receipts,
            receipts_sent,
            receipts_pending,
            tps,
            outstanding,
            connections,
            errors,
        )


def register_collector(sim: Simulator) -> None:
    sim.registry.register(SimulatorCollector(sim))


def render_metrics(sim: Simulator) -> bytes:
    """The Prometheus text exposition of ``sim``'s registry."""
    return generate_latest(sim.registry)
