"""Every Prometheus metric of the engine, defined once, here.

Labels are bounded sets only (campaign, route, bind name, state, status name,
reason): never an MSISDN or a message id. Metrics live on a registry of their
own (``REGISTRY``) so the simulator, tests and the engine never collide.
"""

from __future__ import annotations

import contextlib
import os
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Sequence
from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_RECEIPT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400)

# ------------------------------------------------------------------ the funnel
RECORDS_READ = Counter(
    "smsblast_records_read_total",
    "Segment records read from Kafka",
    ["campaign"],
    registry=REGISTRY,
)
RECORDS_REJECTED = Counter(
    "smsblast_records_rejected_total",
    "Records dead-lettered (bad record, invalid or unroutable number, missing field)",
    ["campaign", "reason"],
    registry=REGISTRY,
)
RECIPIENTS_SUPPRESSED = Counter(
    "smsblast_recipients_suppressed_total",
    "Recipients on the opt-out list",
    ["campaign"],
    registry=REGISTRY,
)
RECIPIENTS_DUPLICATE = Counter(
    "smsblast_recipients_duplicate_total",
    "Records whose number already has a message in this campaign",
    ["campaign"],
    registry=REGISTRY,
)
SUBMITS_ACCEPTED = Counter(
    "smsblast_submits_accepted_total",
    "submit_sm answered ESME_ROK",
    ["campaign", "route"],
    registry=REGISTRY,
)
SUBMITS_FAILED = Counter(
    "smsblast_submits_failed_total",
    "submit_sm permanently refused, by command_status",
    ["campaign", "route", "status"],
    registry=REGISTRY,
)
SUBMITS_RETRIED = Counter(
    "smsblast_submits_retried_total",
    "submit_sm retried after a transient outcome",
    ["campaign", "route", "reason"],
    registry=REGISTRY,
)
SUBMITS_UNKNOWN = Counter(
    "smsblast_submits_unknown_total",
    "submit_sm whose connection died in flight",
    ["campaign", "route"],
    registry=REGISTRY,
)
RECIPIENTS_FINISHED = Counter(
    "smsblast_recipients_total",
    "Recipients reaching a sending outcome, by state",
    ["campaign", "route", "state"],
    registry=REGISTRY,
)
RECEIPTS = Counter(
    "smsblast_receipts_total",
    "Delivery receipts received, by route and final state",
    ["route", "state"],
    registry=REGISTRY,
)
RECEIPTS_UNMATCHED = Counter(
    "smsblast_receipts_unmatched_total",
    "Receipts not (yet) matched to a submitted part; kept for late matching",
    registry=REGISTRY,
)

# ------------------------------------------------------------------ latency
SUBMIT_LATENCY = Histogram(
    "smsblast_submit_response_seconds",
    "submit_sm -> submit_sm_resp",
    ["route"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
RECEIPT_LATENCY = Histogram(
    "smsblast_receipt_latency_seconds",
    "submit_sm_resp -> delivery receipt (messages accepted by this process)",
    buckets=_RECEIPT_BUCKETS,
    registry=REGISTRY,
)

# ------------------------------------------------------------------ binds
BIND_UP = Gauge(
    "smsblast_bind_up", "1 while the bind is bound", ["route", "bind"], registry=REGISTRY
)
BIND_RECONNECTS = Counter(
    "smsblast_bind_reconnects_total",
    "Times a bind was lost",
    ["route", "bind"],
    registry=REGISTRY,
)
WINDOW_IN_USE = Gauge(
    "smsblast_window_in_use",
    "submit_sm awaiting a response",
    ["route", "bind"],
    registry=REGISTRY,
)
WINDOW_SIZE = Gauge(
    "smsblast_window_size", "Configured window", ["route", "bind"], registry=REGISTRY
)
TPS_CONFIGURED = Gauge(
    "smsblast_tps_configured",
    "Configured submit_sm per second",
    ["route", "bind"],
    registry=REGISTRY,
)
TPS_TARGET = Gauge(
    "smsblast_tps_target",
    "Rate the limiter currently allows",
    ["route", "bind"],
    registry=REGISTRY,
)
BIND_SUBMITS = Counter(
    "smsblast_bind_submits_total",
    "submit_sm written per bind (rate() = achieved TPS)",
    ["route", "bind"],
    registry=REGISTRY,
)
ROUTE_QUEUE = Gauge(
    "smsblast_route_queue", "Parts waiting in memory for a bind", ["route"], registry=REGISTRY
)

# ------------------------------------------------------------------ campaign progress
CONSUMER_LAG = Gauge(
    "smsblast_consumer_lag",
    "Records of the snapshot not yet read",
    ["campaign"],
    registry=REGISTRY,
)
CAMPAIGN_TOTAL = Gauge(
    "smsblast_campaign_records",
    "Records in the segment snapshot",
    ["campaign"],
    registry=REGISTRY,
)
CAMPAIGN_DONE = Gauge(
    "smsblast_campaign_records_done",
    "Snapshot records with a durable outcome",
    ["campaign"],
    registry=REGISTRY,
)
CAMPAIGN_IN_FLIGHT = Gauge(
    "smsblast_campaign_in_flight",
    "Recipients between read and outcome",
    ["campaign"],
    registry=REGISTRY,
)
CAMPAIGN_PENDING = Gauge(
    "smsblast_campaign_pending",
    "Recipients parked in the ledger for a busy or down route",
    ["campaign"],
    registry=REGISTRY,
)

# ------------------------------------------------------------------ schedule and projection
CAMPAIGN_REMAINING = Gauge(
    "smsblast_campaign_remaining",
    "Recipients of the campaign not yet submitted (or settled), per route",
    ["campaign", "route"],
    registry=REGISTRY,
)
CAMPAIGN_TARGET_RATE = Gauge(
    "smsblast_campaign_target_rate",
    "Recipients per second the pacer aims for on the route (capacity granted when asap)",
    ["campaign", "route"],
    registry=REGISTRY,
)
CAMPAIGN_PROJECTED_FINISH = Gauge(
    "smsblast_campaign_projected_finish_timestamp_seconds",
    "When the route's remaining recipients will be sent at the rate achievable now "
    "(quiet hours excluded); +Inf when nothing can be sent",
    ["campaign", "route"],
    registry=REGISTRY,
)
CAMPAIGN_DEADLINE = Gauge(
    "smsblast_campaign_deadline_timestamp_seconds",
    "The campaign's deadline (absent when it has none)",
    ["campaign"],
    registry=REGISTRY,
)
CAMPAIGN_STATE = Gauge(
    "smsblast_campaign_state",
    "1 for the campaign's current state (waiting, running, quiet, paused, cancelled, done, failed)",
    ["campaign", "state"],
    registry=REGISTRY,
)
KAFKA_UNREACHABLE = Counter(
    "smsblast_kafka_unreachable_total",
    "Steps that found Kafka unreachable and will retry: a campaign's start (its name), "
    "its dead letters (NAME dead letters), the opt-out list (optout)",
    ["step"],
    registry=REGISTRY,
)
# ------------------------------------------------------------------ the ledger's disk
LEDGER_FILE = Gauge(
    "smsblast_ledger_file_bytes",
    "Size of the ledger: its SQLite file and WAL (read at each scrape)",
    registry=REGISTRY,
)
LEDGER_DISK_FREE = Gauge(
    "smsblast_ledger_disk_free_bytes",
    "Free space the engine may use on the ledger's filesystem (read at each scrape); "
    "at 0 the engine stops (exit 3)",
    registry=REGISTRY,
)


def watch_ledger_disk(path: str) -> None:
    """Make :data:`LEDGER_FILE` and :data:`LEDGER_DISK_FREE` read ``path``'s size and its
    filesystem's free space whenever they are scraped (two ``stat`` calls per scrape,
    nothing on the engine's loop). A ledger in memory has no disk: left unset."""
    if path == ":memory:":
        return
    folder = os.path.dirname(os.path.abspath(path))

    def size() -> float:
        total = 0
        for name in (path, f"{path}-wal"):
            with contextlib.suppress(OSError):
                total += os.stat(name).st_size
        return float(total)

    def free() -> float:
        try:
            found = os.statvfs(folder)
        except OSError:
            return float("nan")
        return float(found.f_bavail * found.f_frsize)

    LEDGER_FILE.set_function(size)
    LEDGER_DISK_FREE.set_function(free)


BIND_THROTTLED = Counter(
    "smsblast_bind_throttled_total",
    "Responses asking this bind to slow down (ESME_RTHROTTLED, ESME_RMSGQFUL)",
    ["route", "bind"],
    registry=REGISTRY,
)


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for every value, in one pass.

    prometheus_client's ``observe`` takes a lock for the sum, walks the buckets in Python and
    takes another lock for the bucket: about 2 us per value, measured at 2-5% of the engine's
    samples when called per submit_sm_resp and per receipt. Here the bucket of each value is
    found by ``bisect`` and each bucket touched is incremented once. It uses the histogram's
    own fields (``_upper_bounds``, ``_buckets``, ``_sum``; tests/test_metrics_batch.py checks
    it agrees with ``observe``) and falls back to ``observe`` if they are not there.
    """
    if not values:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None:
        for value in values:
            histogram.observe(value)
        return
    for index, n in Tally(map(partial(bisect_left, bounds), values)).items():
        buckets[index].inc(n)
    total.inc(sum(values))
