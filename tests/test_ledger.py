"""The ledger on real SQLite files: claims, outcomes, receipts, restarts, kill -9, asyncio."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsblast.ledger import (
    AsyncLedger,
    Claim,
    LedgerError,
    NumbersLevels,
    Outcome,
    ReceiptRow,
    SqliteLedger,
    State,
    _split_cached,
)

CAMPAIGN = "spring-sale"
SNAPSHOT = {"segments:0": 100, "segments:1": 50}
#: Tiny levels, so a few dozen numbers pass through memory, numbers_recent and numbers.
SMALL = NumbersLevels(in_memory=8, recent=12, move=5)

LedgerFactory = Callable[..., SqliteLedger]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def make_ledger(db_path: Path) -> Iterator[LedgerFactory]:
    """``make_ledger()`` opens (or reopens) the test's ledger file; all are closed at the end."""
    opened: list[SqliteLedger] = []

    def make(**kwargs: object) -> SqliteLedger:
        ledger = SqliteLedger(db_path, **kwargs)  # type: ignore[arg-type]
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(make_ledger: LedgerFactory) -> SqliteLedger:
    led = make_ledger()
    led.open_campaign(CAMPAIGN, SNAPSHOT)
    return led


def claims_for(numbers: range | list[int], route: str | None = "tsel", **kw: object) -> list[Claim]:
    return [
        Claim(f"62811{n:07d}", route, 1, "segments", n % 2, n, **kw)  # type: ignore[arg-type]
        for n in numbers
    ]


def msisdn(n: int) -> str:
    return f"62811{n:07d}"


def submitted(n: int, parts: int = 1) -> Outcome:
    ids = tuple((p, f"ID{n}-{p}", f"k{n}-{p}") for p in range(1, parts + 1))
    return Outcome(msisdn(n), State.SUBMITTED, 0, "", ids)


def receipt(n: int, state: str = "delivered", part: int = 1, at: float = 0.0) -> ReceiptRow:
    return ReceiptRow(f"k{n}-{part}", state, f"ID{n}-{part}", at or time.time())


def state_of(led: SqliteLedger, n: int) -> State | None:
    """The stored state, read through ``claim`` as the engine would after a restart."""
    return led.claim(CAMPAIGN, claims_for([n]), State.IN_FLIGHT)[0]


def assert_tallies_match_rows(led: SqliteLedger, campaign: str = CAMPAIGN) -> None:
    assert led.counts(campaign) == led.recount(campaign)


# ---------------------------------------------------------------------- campaigns


def test_open_campaign_keeps_the_first_snapshot_across_restarts(
    make_ledger: LedgerFactory,
) -> None:
    first = make_ledger().open_campaign(CAMPAIGN, SNAPSHOT)
    assert first.snapshot == SNAPSHOT and first.control == "running"
    again = make_ledger().open_campaign(CAMPAIGN, {"segments:0": 999})
    assert again == first
    assert make_ledger().open_campaign(CAMPAIGN, None) == first


def test_open_campaign_without_snapshot_needs_an_existing_campaign(
    make_ledger: LedgerFactory,
) -> None:
    with pytest.raises(LedgerError):
        make_ledger().open_campaign("nope", None)
    with pytest.raises(LedgerError):
        make_ledger().claim("nope", claims_for([1]), State.IN_FLIGHT)


def test_control_survives_a_restart_and_is_validated(
    ledger: SqliteLedger, make_ledger: LedgerFactory
) -> None:
    ledger.set_control(CAMPAIGN, "paused")
    assert make_ledger().open_campaign(CAMPAIGN, None).control == "paused"
    ledger.set_control(CAMPAIGN, "cancelled")
    assert [c.control for c in make_ledger().campaigns()] == ["cancelled"]
    with pytest.raises(LedgerError):
        ledger.set_control(CAMPAIGN, "sleeping")


def test_a_control_asked_before_the_campaign_opens_waits_for_it(
    ledger: SqliteLedger, make_ledger: LedgerFactory
) -> None:
    with pytest.raises(LedgerError, match="no campaign 'later'"):
        ledger.set_control("later", "paused")  # not allowed unless asked for before_open
    assert ledger.control("later") is None
    ledger.set_control("later", "paused", before_open=True)
    assert make_ledger().control("later") == "paused"  # durable: a restart keeps it
    assert [c.name for c in ledger.campaigns()] == [CAMPAIGN]  # still not opened
    assert ledger.open_campaign("later", {"seg:0": 1}).control == "paused"
    ledger.set_control("later", "running", before_open=True)  # opened: the campaign's own
    assert ledger.open_campaign("later", None).control == "running"
    assert ledger.control("later") == "running"
    assert ledger.open_campaign("other", {}).control == "running"


def test_campaigns_are_separate(ledger: SqliteLedger) -> None:
    ledger.open_campaign("other", {})
    assert ledger.claim("other", claims_for([1]), State.IN_FLIGHT) == [None]
    assert ledger.claim(CAMPAIGN, claims_for([1]), State.IN_FLIGHT) == [None]
    assert [c.name for c in ledger.campaigns()] == [CAMPAIGN, "other"]
    assert ledger.counts("other")["in_flight"] == 1


# ---------------------------------------------------------------------- claims


def test_claim_inserts_new_recipients_in_flight(ledger: SqliteLedger) -> None:
    assert ledger.claim(CAMPAIGN, claims_for(range(5)), State.IN_FLIGHT) == [None] * 5
    assert ledger.counts(CAMPAIGN)["in_flight"] == 5
    assert ledger.in_flight(CAMPAIGN, 10) == [msisdn(n) for n in range(5)]


def test_claim_reports_duplicates_across_batches(ledger: SqliteLedger) -> None:
    ledger.claim(CAMPAIGN, claims_for(range(3)), State.IN_FLIGHT)
    ledger.record_outcomes(CAMPAIGN, [submitted(1)])
    again = ledger.claim(CAMPAIGN, claims_for([0, 1, 7]), State.IN_FLIGHT)
    assert again == [State.IN_FLIGHT, State.SUBMITTED, None]
    assert ledger.counts(CAMPAIGN)["in_flight"] == 3  # 0, 2 and 7
    assert_tallies_match_rows(ledger)


def test_claim_duplicate_within_a_batch_first_wins(ledger: SqliteLedger) -> None:
    batch = claims_for([4, 5, 4, 6, 5, 4])
    assert ledger.claim(CAMPAIGN, batch, State.PENDING) == [
        None,
        None,
        State.PENDING,
        None,
        State.PENDING,
        State.PENDING,
    ]
    assert ledger.counts(CAMPAIGN)["pending"] == 3
    assert_tallies_match_rows(ledger)


def test_reclaim_after_reopening_returns_the_stored_state(
    ledger: SqliteLedger, make_ledger: LedgerFactory
) -> None:
    ledger.claim(CAMPAIGN, claims_for(range(4)), State.IN_FLIGHT)
    ledger.record_outcomes(CAMPAIGN, [submitted(0)])
    ledger.record_outcomes(CAMPAIGN, [Outcome(msisdn(1), State.FAILED, 0x0B, "bad dest")])
    ledger.close()
    reopened = make_ledger()
    reopened.open_campaign(CAMPAIGN, SNAPSHOT)
    assert reopened.claim(CAMPAIGN, claims_for(range(5)), State.IN_FLIGHT) == [
        State.SUBMITTED,
        State.FAILED,
        State.IN_FLIGHT,
        State.IN_FLIGHT,
        None,
    ]


def test_claims_from_several_partitions_keep_their_source(
    ledger: SqliteLedger, db_path: Path
) -> None:
    batch = [*claims_for(range(4)), Claim(msisdn(9), "xl", 2, "other-topic", 3, 77)]
    ledger.claim(CAMPAIGN, batch, State.IN_FLIGHT)
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT r.msisdn, s.topic, s.partition, r.src_offset, r.parts FROM recipients r "
            "JOIN sources s ON s.id = r.source ORDER BY r.id"
        ).fetchall()
    assert rows[0] == (msisdn(0), "segments", 0, 0, 1)
    assert rows[1] == (msisdn(1), "segments", 1, 1, 1)
    assert rows[-1] == (msisdn(9), "other-topic", 3, 77, 2)


def test_rejects_are_recorded_once_and_block_later_claims(ledger: SqliteLedger) -> None:
    ledger.claim(CAMPAIGN, claims_for([1]), State.IN_FLIGHT)
    ledger.record_rejects(
        CAMPAIGN,
        [
            (msisdn(1), State.SUPPRESSED, "opt-out"),  # already claimed: kept as it is
            (msisdn(2), State.SUPPRESSED, "opt-out"),
            (msisdn(3), State.REJECTED, "no route"),
            (msisdn(3), State.SUPPRESSED, "opt-out"),  # first wins
        ],
    )
    assert ledger.claim(CAMPAIGN, claims_for([1, 2, 3]), State.IN_FLIGHT) == [
        State.IN_FLIGHT,
        State.SUPPRESSED,
        State.REJECTED,
    ]
    counts = ledger.counts(CAMPAIGN)
    assert (counts["suppressed"], counts["rejected"], counts["in_flight"]) == (1, 1, 1)
    assert_tallies_match_rows(ledger)


# ---------------------------------------------------------------------- outcomes and receipts


def test_outcomes_store_state_status_error_and_message_ids(
    ledger: SqliteLedger, db_path: Path
) -> None:
    ledger.claim(CAMPAIGN, claims_for(range(3)), State.IN_FLIGHT)
    ledger.record_outcomes(
        CAMPAIGN,
        [
            submitted(0, parts=2),
            Outcome(msisdn(1), State.FAILED, 0x45, "ESME_RSUBMITFAIL"),
            Outcome(msisdn(2), State.UNKNOWN, None, "connection lost"),
        ],
    )
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT msisdn, n.name, status, error FROM recipients r "
            "JOIN state_names n ON n.code = r.state ORDER BY r.id"
        ).fetchall()
        ids = conn.execute("SELECT key, part, raw_id FROM message_ids ORDER BY key").fetchall()
    assert rows == [
        (msisdn(0), "submitted", 0, ""),
        (msisdn(1), "failed", 0x45, "ESME_RSUBMITFAIL"),
        (msisdn(2), "unknown", None, "connection lost"),
    ]
    assert ids == [("k0-1", 1, "ID0-1"), ("k0-2", 2, "ID0-2")]
    assert ledger.report(CAMPAIGN)["statuses"] == {"ESME_ROK": 1, "ESME_RSUBMITFAIL": 1}
    assert_tallies_match_rows(ledger)


def test_outcomes_after_a_restart_find_their_rows_without_the_cache(
    ledger: SqliteLedger, make_ledger: LedgerFactory
) -> None:
    ledger.claim(CAMPAIGN, claims_for(range(3)), State.IN_FLIGHT)
    reopened = make_ledger()
    reopened.record_outcomes(CAMPAIGN, [submitted(n) for n in range(3)])
    assert reopened.counts(CAMPAIGN)["submitted"] == 3
    assert_tallies_match_rows(reopened)


def test_a_tiny_flight_cache_still_gives_the_same_answers(make_ledger: LedgerFactory) -> None:
    led = make_ledger(flight_cache=3)
    led.open_campaign(CAMPAIGN, SNAPSHOT)
    led.claim(CAMPAIGN, claims_for(range(2)), State.IN_FLIGHT)  # cached
    led.claim(CAMPAIGN, claims_for(range(2, 10)), State.IN_FLIGHT)  # too many: not cached
    led.record_outcomes(CAMPAIGN, [submitted(n) for n in range(10)])
    assert led.record_receipts([receipt(n) for n in range(10)]) == []
    assert led.counts(CAMPAIGN)["delivered"] == 10
    assert_tallies_match_rows(led)


def test_a_final_state_is_not_overwritten_by_a_later_outcome(ledger: SqliteLedger) -> None:
    ledger.claim(CAMPAIGN, claims_for([1]), State.IN_FLIGHT)
    ledger.record_outcomes(CAMPAIGN, [submitted(1)])
    assert ledger.record_receipts([receipt(1)]) == []
    ledger.record_outcomes(CAMPAIGN, [Outcome(msisdn(1), State.UNKNOWN, None, "late")])
    assert state_of(ledger, 1) is State.DELIVERED
    assert_tallies_match_rows(ledger)


class CommitFailsOnce:
    """A connection whose next COMMIT fails, as on a full disk; everything else passes."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.armed = True

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT" and self.armed:
            self.armed = False
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def test_a_failed_commit_stores_nothing_and_the_ledger_keeps_working(
    ledger: SqliteLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.claim(CAMPAIGN, claims_for([0]), State.IN_FLIGHT)
    real = ledger._conn
    monkeypatch.setattr(ledger, "_conn", CommitFailsOnce(real))
    with pytest.raises(sqlite3.OperationalError):
        ledger.claim(CAMPAIGN, claims_for(range(1, 4)), State.PENDING)
    assert ledger.claim(CAMPAIGN, claims_for(range(1, 4)), State.PENDING) == [None] * 3
    monkeypatch.setattr(ledger, "_conn", CommitFailsOnce(real))
    with pytest.raises(sqlite3.OperationalError):
        ledger.record_outcomes(CAMPAIGN, [submitted(0)])
    ledger.record_outcomes(CAMPAIGN, [submitted(0)])
    counts = ledger.counts(CAMPAIGN)
    assert (counts["pending"], counts["submitted"], counts["in_flight"]) == (3, 1, 0)
    assert_tallies_match_rows(ledger)


def test_an_outcome_batch_that_fails_midway_leaves_nothing_and_its_retry_counts_right(
    ledger: SqliteLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.claim(CAMPAIGN, claims_for(range(3)), State.IN_FLIGHT)
    early = [("k1-1", "delivered", time.time())]
    rows = [submitted(0), submitted(1)._replace(receipts=early), submitted(2)]

    def disk_error(*_: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(ledger, "_tally", disk_error)  # fails after every row was prepared
    with pytest.raises(sqlite3.OperationalError):
        ledger.record_outcomes(CAMPAIGN, rows)
    monkeypatch.undo()
    assert ledger.counts(CAMPAIGN)["in_flight"] == 3
    ledger.record_outcomes(CAMPAIGN, rows)  # the engine keeps a failed batch and retries it
    counts = ledger.counts(CAMPAIGN)
    assert (counts["in_flight"], counts["submitted"], counts["delivered"]) == (0, 2, 1)
    assert_tallies_match_rows(ledger)
    assert state_of(ledger, 1) is State.DELIVERED


def test_an_outcome_for_an_unclaimed_number_is_counted_not_lost(ledger: SqliteLedger) -> None:
    ledger.record_outcomes(CAMPAIGN, [submitted(42)])
    assert ledger.counts(CAMPAIGN)["submitted"] == 1
    assert ledger.record_receipts([receipt(42)]) == []
    assert state_of(ledger, 42) is State.DELIVERED
    assert_tallies_match_rows(ledger)


def test_receipt_marks_the_recipient_delivered(ledger: SqliteLedger) -> None:
    ledger.claim(CAMPAIGN, claims_for(range(3)), State.IN_FLIGHT)
    ledger.record_outcomes(CAMPAIGN, [submitted(n) for n in range(3)])
    unmatched = ledger.record_receipts(
        [receipt(0), receipt(1, "expired"), receipt(2, "undeliverable"), receipt(9)]
    )
    assert unmatched == [receipt(9, at=unmatched[0].received_at)]
    assert [state_of(ledger, n) for n in range(3)] == [
        State.DELIVERED,
        State.EXPIRED,
        State.FAILED,
    ]
    report = ledger.report(CAMPAIGN)
    assert report["receipts"] == {"delivered": 1, "expired": 1, "undeliverable": 1}
    assert_tallies_match_rows(ledger)


def test_receipts_match_across_campaigns(ledger: SqliteLedger) -> None:
    ledger.open_campaign("other", {})
    ledger.claim("other", claims_for([5]), State.IN_FLIGHT)
    ledger.record_outcomes("other", [submitted(5)])
    ledger.claim(CAMPAIGN, claims_for([6]), State.IN_FLIGHT)
    ledger.record_outcomes(CAMPAIGN, [submitted(6)])
    assert ledger.record_receipts([receipt(5), receipt(6, "failed")]) == []
    assert ledger.counts("other")["delivered"] == 1
    assert ledger.counts(CAMPAIGN)["failed"] == 1
    assert_tallies_match_rows(ledger, "other")
    assert_tallies_match_rows(ledger)


def test_multipart_is_delivered_only_when_every_part_is(ledger: SqliteLedger) -> None:
    ledger.claim(CAMPAIGN, [Claim(msisdn(1), "tsel", 3, "segments", 0, 1)], State.IN_FLIGHT)
    ledger.record_outcomes(CAMPAIGN, [submitted(1, parts=3)])
    ledger.record_receipts([receipt(1, part=1), receipt(1, part=1)])  # a duplicate
    assert ledger.counts(CAMPAIGN)["submitted"] == 1
    ledger.record_receipts([receipt(1, "enroute", part=2), receipt(1, part=2)])
    assert ledger.counts(CAMPAIGN)["submitted"] == 1
    ledger.record_receipts([receipt(1, part=3)])
    assert ledger.counts(CAMPAIGN)["delivered"] == 1
    assert ledger.report(CAMPAIGN)["receipts"] == {"delivered": 3}
    assert_tallies_match_rows(ledger)


def test_multipart_fails_as_soon_as_one_part_fails(ledger: SqliteLedger) -> None:
    ledger.claim(CAMPAIGN, [Claim(msisdn(1), "tsel", 2, "segments", 0, 1)], State.IN_FLIGHT)
    ledger.record_outcomes(CAMPAIGN, [submitted(1, parts=2)])
    ledger.record_receipts([receipt(1, "failed", part=2)])
    assert state_of(ledger, 1) is State.FAILED
    ledger.record_receipts([receipt(1, part=1)])  # the other part arrives: still failed
    assert state_of(ledger, 1) is State.FAILED
    assert_tallies_match_rows(ledger)


def test_intermediate_receipt_is_recorded_without_settling(ledger: SqliteLedger) -> None:
    ledger.claim(CAMPAIGN, claims_for([1]), State.IN_FLIGHT)
    ledger.record_outcomes(CAMPAIGN, [submitted(1)])
    assert ledger.record_receipts([receipt(1, "accepted")]) == []
    assert ledger.report(CAMPAIGN)["receipts"] == {"accepted": 1}
    assert state_of(ledger, 1) is State.SUBMITTED
    ledger.record_receipts([receipt(1, "delivered")])
    assert state_of(ledger, 1) is State.DELIVERED


def test_receipt_before_outcome_matches_on_retry(ledger: SqliteLedger) -> None:
    ledger.claim(CAMPAIGN, claims_for([1]), State.IN_FLIGHT)
    early = receipt(1)
    assert ledger.record_receipts([early]) == [early]  # its submit_sm_resp is not recorded yet
    ledger.record_outcomes(CAMPAIGN, [submitted(1)])
    assert ledger.record_receipts([early]) == []
    assert state_of(ledger, 1) is State.DELIVERED


RECEIPT_STATES = ["delivered", "expired", "undeliverable", "accepted", "enroute", "unknown"]


def table_rows(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Every recipient row and every message id row, as a reader of the file sees them."""
    conn = sqlite3.connect(path)
    try:
        recipients = conn.execute(
            "SELECT msisdn, state, status, error, delivered, updated_at FROM recipients ORDER BY id"
        ).fetchall()
        parts = conn.execute(
            "SELECT key, recipient, part, raw_id, receipt, receipt_at, submit_at "
            "FROM message_ids ORDER BY key"
        ).fetchall()
    finally:
        conn.close()
    return recipients, parts


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    people=st.lists(
        st.tuples(
            st.integers(1, 3),  # parts
            st.integers(0, 3),  # parts accepted (message ids)
            st.sampled_from([State.SUBMITTED, State.FAILED, State.UNKNOWN]),
            st.lists(st.tuples(st.integers(0, 2), st.sampled_from(RECEIPT_STATES)), max_size=5),
            st.booleans(),  # already FINAL (rejected) when its outcome comes
        ),
        min_size=1,
        max_size=8,
    ),
    cache=st.sampled_from([0, 250_000]),
)
def test_early_receipts_land_as_if_recorded_right_after_their_outcome(
    tmp_path: Path,
    people: list[tuple[int, int, State, list[tuple[int, str]], bool]],
    cache: int,
) -> None:
    """An outcome carrying its early receipts leaves the file exactly as the outcome and
    then ``record_receipts`` with the same receipts in the same order: states, delivered
    counts, times, the parts' receipts and the tallies."""
    claims, outcomes, bare, receipts, rejected = [], [], [], [], []
    for i, (parts, accepted, state, got, final) in enumerate(people):
        claims.append(Claim(msisdn(i), "tsel", parts, "segments", 0, i))
        ids = tuple((p, f"ID{i}-{p}", f"k{i}-{p}") for p in range(1, min(parts, accepted) + 1))
        early = (
            [
                (ids[j % len(ids)][2], rs, 2000.0 + len(receipts) + k)
                for k, (j, rs) in enumerate(got)
            ]
            if ids
            else []
        )
        receipts += [ReceiptRow(key, rs, key, at) for key, rs, at in early]
        outcomes.append(
            Outcome(msisdn(i), state, 0 if state is State.SUBMITTED else 8, "", ids, early)
        )
        bare.append(Outcome(msisdn(i), state, 0 if state is State.SUBMITTED else 8, "", ids))
        if final:
            rejected.append(msisdn(i))
    files = []
    for name, rows, then in (("joined", outcomes, []), ("apart", bare, receipts)):
        path = tmp_path / f"{name}-{uuid.uuid4().hex}.db"
        led = SqliteLedger(path, flight_cache=cache, clock=lambda: 1000.0)
        try:
            led.open_campaign(CAMPAIGN, {})
            led.claim(CAMPAIGN, claims, State.PENDING)
            led.mark(CAMPAIGN, [c.msisdn for c in claims], State.IN_FLIGHT)
            led.mark(CAMPAIGN, rejected, State.REJECTED)
            led.record_outcomes(CAMPAIGN, rows)
            assert led.record_receipts(then) == []
            assert_tallies_match_rows(led)
            files.append((path, led.counts(CAMPAIGN)))
        finally:
            led.close()
    (joined, joined_counts), (apart, apart_counts) = files
    assert joined_counts == apart_counts
    assert table_rows(joined) == table_rows(apart)


_NUMBERS = st.sampled_from([f"6281{i}" for i in range(12)])


@given(
    st.dictionaries(_NUMBERS, st.integers(0, 99)),
    st.lists(_NUMBERS, max_size=12),
)
def test_split_cached_finds_what_the_cache_has_and_keeps_the_rest_in_order(
    cache: dict[str, int], keys: list[str]
) -> None:
    """All found, none found and some found (the three paths) agree with the definition;
    keys may repeat, and may come as an iterator."""
    found, rest = _split_cached(cache, iter(keys))
    assert found == {k: cache[k] for k in keys if k in cache}
    assert rest == [k for k in keys if k not in cache]


@pytest.mark.parametrize("parts", [1, 2])  # one part and one receipt: checked without sets
def test_an_early_receipt_for_another_part_is_refused_and_nothing_recorded(
    ledger: SqliteLedger, parts: int
) -> None:
    ledger.claim(CAMPAIGN, claims_for(range(2)), State.IN_FLIGHT)
    ids = submitted(1, parts).message_ids
    early = [("k1-1", "delivered", 2000.0)] * (parts - 1) + [("k0-1", "delivered", 2000.0)]
    stray = Outcome(msisdn(1), State.SUBMITTED, 0, "", ids, early)
    with pytest.raises(LedgerError, match="not for one of its parts"):
        ledger.record_outcomes(CAMPAIGN, [submitted(0), stray])
    assert ledger.counts(CAMPAIGN)["in_flight"] == 2


def test_parked_receipt_matches_when_its_outcome_is_recorded(
    ledger: SqliteLedger, make_ledger: LedgerFactory
) -> None:
    ledger.claim(CAMPAIGN, claims_for([1, 2]), State.IN_FLIGHT)
    ledger.park_unmatched([receipt(1, "expired"), receipt(7)])
    ledger.close()
    reopened = make_ledger()  # parked receipts are durable
    reopened.record_outcomes(CAMPAIGN, [submitted(1), submitted(2)])
    assert reopened.counts(CAMPAIGN)["expired"] == 1
    assert reopened.report(CAMPAIGN)["unmatched_receipts"]["parked"] == 1  # k7 still waits
    assert_tallies_match_rows(reopened)


def test_match_parked_matches_late_keys_and_drops_old_receipts(
    ledger: SqliteLedger, make_ledger: LedgerFactory
) -> None:
    ledger.claim(CAMPAIGN, claims_for([1]), State.IN_FLIGHT)
    ledger.record_outcomes(CAMPAIGN, [submitted(1)])
    now = time.time()
    other = make_ledger(receipt_max_age=3600.0)  # another process parked them
    other.park_unmatched([receipt(1, at=now), receipt(8, at=now - 7200), receipt(9, at=now)])
    assert other.match_parked(now) == 1
    assert state_of(other, 1) is State.DELIVERED
    unmatched = other.report(CAMPAIGN)["unmatched_receipts"]
    assert unmatched == {"parked": 1, "expired": 1, "overflow": 0}
    assert other.match_parked(now + 7200) == 0
    assert other.report(CAMPAIGN)["unmatched_receipts"]["expired"] == 2


def test_parked_receipts_are_capped(make_ledger: LedgerFactory) -> None:
    led = make_ledger(max_parked=3)
    led.open_campaign(CAMPAIGN, SNAPSHOT)
    led.park_unmatched([receipt(n) for n in range(5)])
    assert led.report(CAMPAIGN)["unmatched_receipts"] == {
        "parked": 3,
        "expired": 0,
        "overflow": 2,
    }


# ---------------------------------------------------------------------- queries and marks


def test_pending_pages_by_route_oldest_first(ledger: SqliteLedger) -> None:
    ledger.claim(CAMPAIGN, claims_for([5, 3, 9], text="hello"), State.PENDING)
    ledger.claim(CAMPAIGN, claims_for([1], route="xl", text="hi"), State.PENDING)
    ledger.claim(CAMPAIGN, claims_for([2], route=None, text="hey"), State.PENDING)
    ledger.claim(CAMPAIGN, claims_for([4, 8], text="later"), State.PENDING)
    first = ledger.pending(CAMPAIGN, "tsel", 4)
    assert [r.msisdn for r in first] == [msisdn(n) for n in (5, 3, 9, 4)]
    assert first[0].text == "hello" and first[0].parts == 1 and first[0].route == "tsel"
    assert [r.msisdn for r in ledger.pending(CAMPAIGN, None, 10)] == [msisdn(2)]
    assert ledger.pending(CAMPAIGN, "", 10) == ledger.pending(CAMPAIGN, None, 10)
    assert ledger.pending_by_route(CAMPAIGN) == {"tsel": 5, "xl": 1, "": 1}
    assert ledger.mark(CAMPAIGN, [r.msisdn for r in first], State.IN_FLIGHT) == 4
    assert [r.msisdn for r in ledger.pending(CAMPAIGN, "tsel", 4)] == [msisdn(8)]
    assert ledger.pending_by_route(CAMPAIGN) == {"tsel": 1, "xl": 1, "": 1}
    assert_tallies_match_rows(ledger)


def test_in_flight_pages_and_recovery_marks(ledger: SqliteLedger) -> None:
    numbers = random.Random(3).sample(range(1000), 25)
    ledger.claim(CAMPAIGN, claims_for(numbers), State.IN_FLIGHT)
    ledger.record_outcomes(CAMPAIGN, [submitted(n) for n in numbers[:5]])
    seen: list[str] = []
    after = ""
    while page := ledger.in_flight(CAMPAIGN, 7, after):
        seen += page
        after = page[-1]
    assert seen == sorted(msisdn(n) for n in numbers[5:])
    marked = ledger.mark(
        CAMPAIGN, [*seen, msisdn(numbers[0])], State.UNKNOWN, "crash", State.IN_FLIGHT
    )
    assert marked == 20
    assert ledger.in_flight(CAMPAIGN, 100) == []
    counts = ledger.counts(CAMPAIGN)
    assert (counts["unknown"], counts["submitted"]) == (20, 5)
    report = ledger.report(CAMPAIGN, unknown_cap=3)
    assert report["unknown"]["count"] == 20 and len(report["unknown"]["msisdns"]) == 3
    assert_tallies_match_rows(ledger)


def test_mark_keeps_the_error_unless_given(ledger: SqliteLedger, db_path: Path) -> None:
    ledger.claim(CAMPAIGN, claims_for([1, 2]), State.IN_FLIGHT)
    ledger.mark(CAMPAIGN, [msisdn(1)], State.PENDING, "in flight at a crash")
    ledger.mark(CAMPAIGN, [msisdn(1)], State.IN_FLIGHT)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute(
            "SELECT error FROM recipients WHERE msisdn = ?", (msisdn(1),)
        ).fetchone() == ("in flight at a crash",)
    # The mark dropped the cached id: the outcome looks the row up and still counts right.
    ledger.record_outcomes(CAMPAIGN, [submitted(1), submitted(2)])
    assert ledger.counts(CAMPAIGN)["submitted"] == 2
    assert_tallies_match_rows(ledger)


def test_report_accounts_for_every_recipient(ledger: SqliteLedger) -> None:
    ledger.claim(CAMPAIGN, claims_for(range(6)), State.IN_FLIGHT)
    ledger.claim(CAMPAIGN, claims_for([6], route="xl", text="x"), State.PENDING)
    ledger.record_rejects(CAMPAIGN, [(msisdn(7), State.SUPPRESSED, "opt-out")])
    ledger.record_outcomes(
        CAMPAIGN,
        [submitted(0), submitted(1), Outcome(msisdn(2), State.FAILED, 0x58, "throttled")],
    )
    ledger.record_outcomes(CAMPAIGN, [Outcome(msisdn(3), State.UNKNOWN, None, "lost")])
    ledger.record_receipts([receipt(0)])
    report = ledger.report(CAMPAIGN)
    assert json.loads(json.dumps(report)) == report  # JSON-ready
    assert report["total"] == 8
    assert report["by_route"] == {
        "tsel": {"delivered": 1, "submitted": 1, "failed": 1, "unknown": 1, "in_flight": 2},
        "xl": {"pending": 1},
        "": {"suppressed": 1},
    }
    assert report["statuses"] == {"ESME_ROK": 2, "ESME_RTHROTTLED": 1}
    assert report["receipts"] == {"delivered": 1, "none": 1}
    assert report["unknown"] == {"count": 1, "msisdns": [msisdn(3)]}
    assert report["snapshot"] == SNAPSHOT and report["control"] == "running"
    assert sum(report["states"].values()) == 8


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(st.lists(st.integers(0, 30), max_size=12), max_size=6),
    settle=st.lists(st.integers(0, 30), max_size=20),
    levels=st.sampled_from([NumbersLevels(), SMALL]),
)
def test_claims_agree_with_a_dict_model(
    tmp_path: Path, batches: list[list[int]], settle: list[int], levels: NumbersLevels
) -> None:
    path = tmp_path / f"model-{uuid.uuid4().hex}.db"  # hypothesis seeds `random`
    led = SqliteLedger(path, levels=levels)
    try:
        led.open_campaign(CAMPAIGN, {})
        model: dict[str, State] = {}
        for i, batch in enumerate(batches):
            state = State.PENDING if i % 3 == 2 else State.IN_FLIGHT
            got = led.claim(CAMPAIGN, claims_for(batch), state)
            want: list[State | None] = []
            for n in batch:
                want.append(model.get(msisdn(n)))
                model.setdefault(msisdn(n), state)
            assert got == want
            done = [n for n in settle if model.get(msisdn(n)) is State.IN_FLIGHT]
            led.record_outcomes(CAMPAIGN, [submitted(n) for n in done])
            for n in done:
                model[msisdn(n)] = State.SUBMITTED
        counts = led.counts(CAMPAIGN)
        assert counts == led.recount(CAMPAIGN)
        for state in State:
            assert counts[state.value] == sum(1 for s in model.values() if s is state)
    finally:
        led.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["claim", "arm", "unarm", "outcome", "fail"]),
            st.lists(st.integers(0, 25), max_size=10),
        ),
        max_size=14,
    ),
    cache=st.sampled_from([0, 5, 250_000]),
    levels=st.sampled_from([NumbersLevels(), SMALL]),
)
def test_the_engine_path_agrees_with_a_dict_model(
    tmp_path: Path, steps: list[tuple[str, list[int]]], cache: int, levels: NumbersLevels
) -> None:
    """claim PENDING -> mark IN_FLIGHT -> (back to PENDING) -> outcome, as the engine does:
    whatever the cache holds and wherever the numbers are, states and tallies match a plain
    dict."""
    path = tmp_path / f"path-{uuid.uuid4().hex}.db"
    led = SqliteLedger(path, flight_cache=cache, levels=levels)
    try:
        led.open_campaign(CAMPAIGN, {})
        model: dict[str, State] = {}
        for op, numbers in steps:
            names = list(dict.fromkeys(msisdn(n) for n in numbers))
            if op == "claim":
                led.claim(CAMPAIGN, claims_for(list(dict.fromkeys(numbers))), State.PENDING)
                for name in names:
                    model.setdefault(name, State.PENDING)
            elif op in ("arm", "unarm"):
                src, dst = (
                    (State.PENDING, State.IN_FLIGHT)
                    if op == "arm"
                    else (State.IN_FLIGHT, State.PENDING)
                )
                known = [m for m in names if m in model]
                led.mark(CAMPAIGN, known, dst, only_from=src)
                for name in known:
                    if model[name] is src:
                        model[name] = dst
            else:
                state = State.SUBMITTED if op == "outcome" else State.FAILED
                done = [m for m in names if model.get(m) is State.IN_FLIGHT]
                led.record_outcomes(CAMPAIGN, [Outcome(m, state, 0, "", ()) for m in done])
                for name in done:
                    model[name] = state
        counts = led.counts(CAMPAIGN)
        assert counts == led.recount(CAMPAIGN)
        for state in State:
            assert counts[state.value] == sum(1 for s in model.values() if s is state)
    finally:
        led.close()


# ---------------------------------------------------------------------- numbers


def where_numbers_are(db_path: Path) -> dict[tuple[int, str], list[str]]:
    """(campaign, msisdn) -> the places that hold it: the two tables, and 'memory' for rows
    at or above numbers_from (what the ledger keeps in memory)."""
    conn = sqlite3.connect(db_path)
    try:
        (start,) = conn.execute(
            "SELECT ifnull((SELECT value FROM meta WHERE key = 'numbers_from'), 1)"
        ).fetchone()
        places: dict[tuple[int, str], list[str]] = {}
        for table in ("numbers", "numbers_recent"):
            for cid, number, rid in conn.execute(f"SELECT campaign, msisdn, id FROM {table}"):
                (row,) = conn.execute(
                    "SELECT campaign, msisdn FROM recipients WHERE id = ?", (rid,)
                ).fetchall()
                assert row == (cid, number), f"{table} points {number} to another row"
                places.setdefault((cid, number), []).append(table)
        for cid, number in conn.execute(
            "SELECT campaign, msisdn FROM recipients WHERE id >= ?", (start,)
        ):
            places.setdefault((cid, number), []).append("memory")
        total = conn.execute("SELECT count(*) FROM recipients").fetchone()[0]
        assert len(places) == total, "a recipient row whose number is nowhere"
        return places
    finally:
        conn.close()


def test_numbers_pass_through_every_level_once_and_stay_known_across_restarts(
    make_ledger: LedgerFactory, db_path: Path
) -> None:
    led = make_ledger(levels=SMALL)
    led.open_campaign(CAMPAIGN, SNAPSHOT)
    states = {}
    for start in range(0, 45, 5):
        state = State.PENDING if start % 10 else State.IN_FLIGHT
        assert led.claim(CAMPAIGN, claims_for(range(start, start + 5)), state) == [None] * 5
        states.update(dict.fromkeys(range(start, start + 5), state))
        places = where_numbers_are(db_path)
        assert all(len(p) == 1 for p in places.values()), places
    assert {p[0] for p in places.values()} == {"numbers", "numbers_recent", "memory"}
    led.record_outcomes(CAMPAIGN, [submitted(n) for n in (0, 21, 38)])
    states.update(dict.fromkeys((0, 21, 38), State.SUBMITTED))
    want = [states[n] for n in range(45)]
    assert led.claim(CAMPAIGN, claims_for(range(45)), State.PENDING) == want
    led.close()
    for levels in (SMALL, NumbersLevels()):  # a restart, with the same levels or others
        again = make_ledger(levels=levels)
        assert again.claim(CAMPAIGN, claims_for(range(45)), State.PENDING) == want
        again.close()
    last = make_ledger(levels=SMALL)
    assert last.claim(CAMPAIGN, claims_for([50, 51, 50, 7]), State.PENDING) == [
        None,
        None,
        State.PENDING,  # the batch's first 50 claimed it
        states[7],
    ]
    assert all(len(p) == 1 for p in where_numbers_are(db_path).values())
    assert_tallies_match_rows(last)


def test_deleting_rows_takes_their_numbers_from_every_level(
    make_ledger: LedgerFactory, db_path: Path
) -> None:
    led = make_ledger(levels=SMALL)
    for name in ("wave-1", "wave-2"):
        led.open_campaign(name, {})
        for start in range(0, 30, 5):
            led.claim(name, claims_for(range(start, start + 5)), State.PENDING)
    led.claim("wave-1", claims_for([30, 31, 32]), State.PENDING)  # these stay in memory
    assert {p[0] for p in where_numbers_are(db_path).values()} == {
        "numbers",
        "numbers_recent",
        "memory",
    }
    low, high = led.recipient_ids("wave-1")
    assert led.delete_recipients("wave-1", low, high) == 33
    places = where_numbers_are(db_path)
    assert len(places) == 30 and {cid for cid, _ in places} == {2}
    assert led.claim("wave-2", claims_for(range(30)), State.IN_FLIGHT) == [State.PENDING] * 30
    # wave 1's numbers are new again (for the ledger: the engine never runs a pruned
    # campaign), and filing them on does not meet stale entries
    assert led.claim("wave-1", claims_for(range(33)), State.PENDING) == [None] * 33
    assert all(len(p) == 1 for p in where_numbers_are(db_path).values())


def test_the_first_in_flight_claims_are_stored_in_flight_in_the_same_transaction(
    ledger: SqliteLedger, make_ledger: LedgerFactory
) -> None:
    """The engine claims recipients it sends at once IN_FLIGHT, the rest PENDING, in one
    call: a number in both groups is claimed by its first (IN_FLIGHT) claim, and the
    others see the state it was stored with; numbers known before keep theirs."""
    ledger.claim(CAMPAIGN, claims_for([9]), State.SUBMITTED)
    batch = claims_for([1, 2, 3]) + claims_for([4, 2, 9, 4])
    assert ledger.claim(CAMPAIGN, batch, State.PENDING, in_flight=3) == [
        None,
        None,
        None,
        None,
        State.IN_FLIGHT,
        State.SUBMITTED,
        State.PENDING,
    ]
    assert ledger.counts(CAMPAIGN)["in_flight"] == 3
    assert ledger.counts(CAMPAIGN)["pending"] == 1
    assert_tallies_match_rows(ledger)
    ledger.close()
    reopened = make_ledger()
    assert reopened.in_flight(CAMPAIGN, 10) == [msisdn(1), msisdn(2), msisdn(3)]
    assert reopened.pending(CAMPAIGN, "tsel", 10)[0].msisdn == msisdn(4)


def test_a_failed_claim_with_in_flight_claims_stores_neither_group(
    ledger: SqliteLedger, db_path: Path
) -> None:
    """Both groups are one transaction: when the second fails, the first is not left
    IN_FLIGHT (never sent, it would be reported UNKNOWN after a restart)."""
    conn = sqlite3.connect(db_path)
    conn.execute(
        "CREATE TRIGGER full BEFORE INSERT ON tallies WHEN NEW.route = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )
    conn.commit()
    batch = claims_for(range(3)) + claims_for(range(3, 6), route="boom")
    with pytest.raises(sqlite3.IntegrityError, match="disk is full"):
        ledger.claim(CAMPAIGN, batch, State.PENDING, in_flight=3)
    conn.execute("DROP TRIGGER full")
    conn.commit()
    conn.close()
    assert ledger.counts(CAMPAIGN)["in_flight"] == 0
    assert ledger.claim(CAMPAIGN, claims_for(range(6)), State.PENDING) == [None] * 6
    assert_tallies_match_rows(ledger)


def test_a_rolled_back_claim_leaves_its_numbers_unknown(
    ledger: SqliteLedger, db_path: Path
) -> None:
    """The numbers a failed transaction put in memory leave with it."""
    ledger.claim(CAMPAIGN, claims_for(range(3)), State.PENDING)
    conn = sqlite3.connect(db_path)
    conn.execute(
        "CREATE TRIGGER full BEFORE INSERT ON tallies WHEN NEW.route = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )
    conn.commit()
    with pytest.raises(sqlite3.IntegrityError, match="disk is full"):
        ledger.claim(CAMPAIGN, claims_for(range(3, 6), route="boom"), State.PENDING)
    conn.execute("DROP TRIGGER full")
    conn.commit()
    conn.close()
    assert (
        ledger.claim(CAMPAIGN, claims_for(range(6)), State.PENDING)
        == [State.PENDING] * 3 + [None] * 3
    )
    assert_tallies_match_rows(ledger)


# ---------------------------------------------------------------------- durability


def test_everything_survives_close_and_reopen(
    ledger: SqliteLedger, make_ledger: LedgerFactory
) -> None:
    ledger.claim(CAMPAIGN, claims_for(range(10)), State.IN_FLIGHT)
    ledger.record_outcomes(CAMPAIGN, [submitted(n) for n in range(8)])
    ledger.record_receipts([receipt(n) for n in range(4)])
    before = ledger.report(CAMPAIGN)
    ledger.close()
    reopened = make_ledger()
    assert reopened.report(CAMPAIGN) == before
    assert reopened.in_flight(CAMPAIGN, 100) == [msisdn(8), msisdn(9)]


_WRITER = textwrap.dedent(
    """
    import sys
    from smsblast.ledger import Claim, NumbersLevels, Outcome, ReceiptRow, SqliteLedger, State

    path, batch = sys.argv[1], int(sys.argv[2])
    led = SqliteLedger(path, levels=NumbersLevels(*map(int, sys.argv[3:])))
    led.open_campaign("crash", {"t:0": 0})

    def m(n):
        return f"62811{n:07d}"

    def say(what, k):
        sys.stdout.write(f"{what} {k}\\n")
        sys.stdout.flush()

    k = 0
    while True:
        led.claim("crash", [Claim(m(n), "r", 1, "t", 0, n)
                            for n in range(k * batch, k * batch + batch)], State.IN_FLIGHT)
        say("claimed", k)
        if k >= 1:
            led.record_outcomes("crash", [
                Outcome(m(n), State.SUBMITTED, 0, "", ((1, str(n), f"id{n}"),))
                for n in range((k - 1) * batch, k * batch)])
            say("submitted", k - 1)
        if k >= 2:
            led.record_receipts([ReceiptRow(f"id{n}", "delivered", str(n), 1.0)
                                 for n in range((k - 2) * batch, (k - 1) * batch)])
            say("delivered", k - 2)
        k += 1
    """
)


@pytest.mark.parametrize("kill_after", [0.3, 0.7, 1.3])
@pytest.mark.parametrize(
    "levels", [NumbersLevels(), NumbersLevels(1200, 3000, 700)], ids=["default", "small"]
)
def test_sigkill_at_a_random_moment_loses_nothing_committed(
    tmp_path: Path, kill_after: float, levels: NumbersLevels
) -> None:
    """With small levels the kill also lands while numbers are being filed on."""
    path = tmp_path / "crash.db"
    batch = 500
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), str(batch), *map(str, levels)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    reported: dict[str, int] = {"claimed": -1, "submitted": -1, "delivered": -1}
    deadline = time.monotonic() + kill_after + random.uniform(0.0, 0.3)
    try:
        while time.monotonic() < deadline or reported["delivered"] < 1:
            line = child.stdout.readline()
            assert line, "the writer died on its own"
            what, k = line.split()
            reported[what] = int(k)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    for line in child.stdout:  # lines written before the kill: committed too
        what, k = line.split()
        reported[what] = int(k)
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    led = SqliteLedger(path)
    try:
        counts = led.counts("crash")
        assert counts == led.recount("crash")  # tallies committed with their rows
        total = sum(counts.values())
        assert total % batch == 0  # each claim batch is all or nothing
        assert total >= (reported["claimed"] + 1) * batch

        def m(n: int) -> str:
            return f"62811{n:07d}"

        # Nobody acknowledged is sent again: a re-read says "already handled".
        acked = [Claim(m(n), "r", 1, "t", 0, n) for n in range((reported["submitted"] + 1) * batch)]
        states = led.claim("crash", acked, State.IN_FLIGHT)
        assert None not in states
        assert set(states) <= {State.SUBMITTED, State.DELIVERED}
        assert counts["delivered"] >= (reported["delivered"] + 1) * batch
        # Whoever may have been sent without a recorded outcome is in flight, nobody is lost.
        in_flight = led.in_flight("crash", 1_000_000)
        assert len(in_flight) == counts["in_flight"]
        assert counts["in_flight"] + counts["submitted"] + counts["delivered"] == total
        # Every claimed number is known, each in exactly one place.
        everyone = [Claim(m(n), "r", 1, "t", 0, n) for n in range(total)]
        assert None not in led.claim("crash", everyone, State.IN_FLIGHT)
    finally:
        led.close()
    places = where_numbers_are(path)
    assert len(places) == total and all(len(p) == 1 for p in places.values())


# ---------------------------------------------------------------------- asyncio


async def test_async_ledger_does_not_block_the_event_loop(db_path: Path) -> None:
    ledger = AsyncLedger(db_path)
    try:
        await ledger.open_campaign(CAMPAIGN, SNAPSHOT)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        start_ticks, start = ticks, time.perf_counter()
        result = await ledger.claim(CAMPAIGN, claims_for(range(150_000)), State.IN_FLIGHT)
        elapsed = time.perf_counter() - start
        ran = ticks - start_ticks
        task.cancel()
        assert result == [None] * 150_000
        assert elapsed > 0.1  # big enough to notice a blocked loop
        assert ran >= elapsed / 0.005 * 0.3, (ran, elapsed)
        assert (await ledger.counts(CAMPAIGN))["in_flight"] == 150_000
    finally:
        await ledger.close()


async def test_async_ledger_round_trip(db_path: Path) -> None:
    ledger = AsyncLedger(db_path)
    info = await ledger.open_campaign(CAMPAIGN, SNAPSHOT)
    assert info.snapshot == SNAPSHOT
    assert await ledger.claim(CAMPAIGN, claims_for([1, 2]), State.IN_FLIGHT) == [None, None]
    await ledger.record_outcomes(CAMPAIGN, [submitted(1)])
    early = receipt(2)
    assert await ledger.record_receipts([receipt(1), early]) == [early]
    await ledger.park_unmatched([early])
    await ledger.record_outcomes(CAMPAIGN, [submitted(2)])
    assert await ledger.match_parked() == 0  # matched already, when its key was recorded
    assert (await ledger.counts(CAMPAIGN))["delivered"] == 2
    await ledger.set_control(CAMPAIGN, "paused")
    assert [c.control for c in await ledger.campaigns()] == ["paused"]
    assert (await ledger.report(CAMPAIGN))["total"] == 2
    assert await ledger.in_flight(CAMPAIGN, 10) == []
    assert await ledger.pending(CAMPAIGN, "tsel", 10) == []
    assert await ledger.pending_by_route(CAMPAIGN) == {}
    assert await ledger.mark(CAMPAIGN, [msisdn(1)], State.FAILED) == 1
    await ledger.record_rejects(CAMPAIGN, [(msisdn(3), State.REJECTED, "bad")])
    await ledger.close()
    await ledger.close()  # idempotent
    with pytest.raises(LedgerError):
        await ledger.counts(CAMPAIGN)


async def test_async_ledger_reports_an_open_failure_on_use(tmp_path: Path) -> None:
    ledger = AsyncLedger(tmp_path / "missing-dir" / "ledger.db")
    with pytest.raises(LedgerError) as caught:
        await ledger.campaigns()
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    await ledger.close()


def test_after_deleting_rows_numbers_move_on_only_past_the_recent_level(
    make_ledger: LedgerFactory, db_path: Path
) -> None:
    """Numbers deleted from numbers_recent no longer count towards its level: a write
    moves keys on into numbers only while more than ``recent`` rows are really there."""
    led = make_ledger(levels=NumbersLevels(in_memory=8, recent=20, move=5))
    for name in ("wave-1", "wave-2"):
        led.open_campaign(name, {})
    for start in range(0, 16, 4):
        for name in ("wave-1", "wave-2"):
            led.claim(name, claims_for(range(start, start + 4)), State.PENDING)
    assert Counter(p[0] for p in where_numbers_are(db_path).values()) == {
        "numbers_recent": 27,  # past 20: one move of 5 keys so far
        "numbers": 5,
    }
    low, high = led.recipient_ids("wave-1")
    assert led.delete_recipients("wave-1", low, high) == 16
    assert Counter(p[0] for p in where_numbers_are(db_path).values()) == {"numbers_recent": 16}
    for number in (40, 41):  # two write transactions, with 16-17 rows there: no move
        led.claim("wave-2", claims_for([number]), State.PENDING)
    assert Counter(p[0] for p in where_numbers_are(db_path).values()) == {
        "numbers_recent": 16,
        "memory": 2,
    }
