"""The one-line campaign summary `smsblast run` prints at exit."""

from __future__ import annotations

from smsblast.engine.cli import format_summary


def test_summary_counts_states_and_says_what_waited_in_the_ledger() -> None:
    line = format_summary(
        "vote",
        {"delivered": 1_200_000, "failed": 3, "unknown": 0},
        {"duplicates": 41, "parked": 123_233, "read": 1_200_044},
    )
    assert line == (
        "campaign vote: 1,200,003 recipient(s): delivered 1,200,000  failed 3"
        "  duplicates 41  parked 123,233"
    )


def test_summary_leaves_out_what_did_not_happen() -> None:
    line = format_summary("vote", {"delivered": 10}, {"duplicates": 0})
    assert line == "campaign vote: 10 recipient(s): delivered 10"
