"""Plain counters behind the JSON stats document and the Prometheus collector.

Counters are bare ints on ``__slots__`` objects, bumped inline on the hot path; nothing
here is computed until a reader asks (:func:`bind_dict`, :func:`account_dict`).
"""

from __future__ import annotations

from typing import Any

from smsblast.intset import IntSet
from smsblast.simulator.dedup import fingerprint_set
from smsblast.simulator.window import SlidingWindow
from smsblast.smpp.constants import status_name
from smsblast.smpp.receipt import ReceiptState, stat_text

__all__ = [
    "AccountStats",
    "BindStats",
    "RecordingWindow",
    "account_dict",
    "bind_dict",
    "status_counts",
    "timeline_dict",
]

#: Resolution of the per-bind timeline of accepted submits (load tests plot it).
SLOT_S = 0.1
#: Slots kept per bind (two hours at 100 ms); older ones are forgotten.
MAX_SLOTS = 72_000


def status_counts(counts: dict[int, int]) -> dict[str, int]:
    """``{0: 5, 0x58: 2}`` -> ``{"ESME_ROK": 5, "ESME_RTHROTTLED": 2}`` in code order."""
    return {status_name(code): counts[code] for code in sorted(counts)}


class RecordingWindow(SlidingWindow):
    """A bind's one-second window that also remembers, for load tests, the exact peak over
    any 100 ms (:attr:`short`) and the accepted count per 100 ms slot (:attr:`slots`).

    It costs one dict update per committed batch (one per socket read), not per submit.
    """

    __slots__ = ("short", "slots")

    def __init__(self) -> None:
        super().__init__(1.0)
        self.short = SlidingWindow(SLOT_S)
        self.slots: dict[int, int] = {}

    def commit(self, now: float) -> None:
        n = self.pending
        super().commit(now)
        if n:
            record_slot(self, now, n)


def record_slot(window: RecordingWindow, now: float, n: int) -> None:
    """Add ``n`` admissions stamped ``now`` to the 100 ms peak and the slot timeline."""
    short = window.short
    short.expire(now)
    short.total += n
    short.pending = n
    short.commit(now)
    slots = window.slots
    slot = int(now / SLOT_S)
    slots[slot] = slots.get(slot, 0) + n
    if len(slots) > MAX_SLOTS:
        del slots[next(iter(slots))]


def timeline_dict(window: RecordingWindow, now: float, wall_now: float) -> dict[str, Any]:
    """``{"start": wall time of the first slot, "step_s": 0.1, "counts": [...]}``: accepted
    submits per 100 ms slot, gaps filled with 0 (empty when nothing was accepted)."""
    slots = window.slots
    if not slots:
        return {"start": None, "step_s": SLOT_S, "counts": []}
    first, last = min(slots), max(slots)
    return {
        "start": round(first * SLOT_S + (wall_now - now), 3),
        "step_s": SLOT_S,
        "counts": [slots.get(i, 0) for i in range(first, last + 1)],
    }


class BindStats:
    """Counters of one bind (one successfully bound connection)."""

    __slots__ = (
        "account",
        "bind_type",
        "bound_at",
        "close_reason",
        "closed_at",
        "index",
        "key",
        "malformed",
        "no_answer",
        "pdus_in",
        "peer",
        "receipts_acked",
        "receipts_failed",
        "receipts_sent",
        "resps_lost",
        "state",
        "submits",
        "throttled_account",
        "throttled_bind",
        "window",
        "window_full",
    )

    def __init__(
        self, account: str, index: int, bind_type: str, peer: str, bound_at: float
    ) -> None:
        self.key = f"{account}#{index}"
        self.account = account
        self.index = index
        self.bind_type = bind_type
        self.peer = peer
        self.bound_at = bound_at
        self.closed_at: float | None = None
        self.close_reason = ""
        self.state = "bound"
        self.submits: dict[int, int] = {}
        self.throttled_bind = 0
        self.throttled_account = 0
        self.window_full = 0
        self.no_answer = 0
        self.malformed = 0
        self.resps_lost = 0
        self.receipts_sent = 0
        self.receipts_acked = 0
        self.receipts_failed = 0
        self.pdus_in = 0
        self.window = RecordingWindow()

    def fold_into(self, total: BindStats) -> None:
        """Add this bind's counters to ``total`` (used to retire old closed binds)."""
        for code, n in self.submits.items():
            total.submits[code] = total.submits.get(code, 0) + n
        for name in (
            "throttled_bind",
            "throttled_account",
            "window_full",
            "no_answer",
            "malformed",
            "resps_lost",
            "receipts_sent",
            "receipts_acked",
            "receipts_failed",
            "pdus_in",
        ):
            setattr(total, name, getattr(total, name) + getattr(self, name))
        total.window.peak = max(total.window.peak, self.window.peak)
        total.window.short.peak = max(total.window.short.peak, self.window.short.peak)


class AccountStats:
    """Counters of one account, across all its binds."""

    __slots__ = (
        "bind_failures",
        "binds",
        "binds_by_type",
        "destinations",
        "duplicates",
        "messages",
        "receipts_dropped",
        "receipts_generated",
        "receipts_requeued",
        "receipts_stray",
        "retired",
        "retired_count",
        "window",
    )

    def __init__(self, system_id: str, dedup: bool) -> None:
        self.binds: dict[str, BindStats] = {}
        self.retired = BindStats(system_id, 0, "retired", "", 0.0)
        self.retired_count = 0
        self.binds_by_type: dict[str, int] = {}
        self.bind_failures: dict[int, int] = {}
        self.receipts_generated: dict[int, int] = {}
        self.receipts_requeued = 0
        self.receipts_dropped = 0
        self.receipts_stray = 0
        self.window = SlidingWindow(1.0)
        self.messages: IntSet | None = fingerprint_set() if dedup else None
        self.destinations: IntSet | None = fingerprint_set() if dedup else None
        self.duplicates = 0

    def all_binds(self) -> list[BindStats]:
        return [self.retired, *self.binds.values()]


_SUMMED = (
    "throttled_bind",
    "throttled_account",
    "window_full",
    "no_answer",
    "malformed",
    "resps_lost",
    "receipts_sent",
    "receipts_acked",
    "receipts_failed",
    "pdus_in",
)


def bind_dict(b: BindStats, now: float, wall_now: float, *, outstanding: int) -> dict[str, Any]:
    ok = b.submits.get(0, 0)
    return {
        "account": b.account,
        "index": b.index,
        "bind_type": b.bind_type,
        "peer": b.peer,
        "state": b.state,
        "bound_at": round(b.bound_at, 3),
        "closed_at": None if b.closed_at is None else round(b.closed_at, 3),
        "close_reason": b.close_reason,
        "pdus_in": b.pdus_in,
        "submits": {
            "received": sum(b.submits.values()) + b.no_answer,
            "accepted": ok,
            "by_status": status_counts(b.submits),
            "no_answer": b.no_answer,
            "malformed": b.malformed,
        },
        "throttled": {"bind": b.throttled_bind, "account": b.throttled_account},
        "window_full": b.window_full,
        "outstanding": outstanding,
        "resps_lost": b.resps_lost,
        "receipts": {
            "sent": b.receipts_sent,
            "acked": b.receipts_acked,
            "failed": b.receipts_failed,
        },
        "max_accepted_1s": b.window.peak,
        "max_accepted_100ms": b.window.short.peak,
        "tps_now": b.window.current(now) if b.closed_at is None else 0,
        "accepted_per_100ms": timeline_dict(b.window, now, wall_now),
    }


def account_dict(
    a: AccountStats, *, active_binds: int, pending: int, scheduled: int, in_flight: int
) -> dict[str, Any]:
    submits: dict[int, int] = {}
    sums = dict.fromkeys(_SUMMED, 0)
    for b in a.all_binds():
        for code, n in b.submits.items():
            submits[code] = submits.get(code, 0) + n
        for name in _SUMMED:
            sums[name] += getattr(b, name)
    accepted = submits.get(0, 0)
    return {
        "binds": {
            "active": active_binds,
            "total": sum(a.binds_by_type.values()),
            "by_type": dict(sorted(a.binds_by_type.items())),
            "failed": status_counts(a.bind_failures),
            "retired": a.retired_count,
        },
        "submits": {
            "received": sum(submits.values()) + sums["no_answer"],
            "accepted": accepted,
            "by_status": status_counts(submits),
            "no_answer": sums["no_answer"],
            "malformed": sums["malformed"],
        },
        "throttled": {"bind": sums["throttled_bind"], "account": sums["throttled_account"]},
        "window_full": sums["window_full"],
        "resps_lost": sums["resps_lost"],
        "receipts": {
            "by_state": {
                stat_text(ReceiptState(s)): n for s, n in sorted(a.receipts_generated.items())
            },
            "generated": sum(a.receipts_generated.values()),
            "sent": sums["receipts_sent"],
            "acked": sums["receipts_acked"],
            "failed": sums["receipts_failed"],
            "requeued": a.receipts_requeued,
            "dropped": a.receipts_dropped,
            "stray_resps": a.receipts_stray,
            "scheduled": scheduled,
            "pending": pending,
            "in_flight": in_flight,
        },
        "unique_destinations": None if a.destinations is None else len(a.destinations),
        "unique_messages": None if a.messages is None else len(a.messages),
        "duplicates": None if a.messages is None else a.duplicates,
        "max_accepted_1s": a.window.peak,
        "max_accepted_1s_per_bind": max((b.window.peak for b in a.all_binds()), default=0),
    }
