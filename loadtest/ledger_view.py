"""What a finished run left in the ledger: states per recipient (the engine's own report),
recipients the SMSC accepted, and a sample of claim-to-receipt latencies.

The ledger stores when a recipient was claimed (read from Kafka; ``recipients.created_at``)
and when each part's receipt arrived (``message_ids.receipt_at``); their difference is the
end-to-end latency of one recipient, queueing in the engine included.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smsblast.ledger import SqliteLedger

#: At most this many latencies are sampled (evenly by claim order).
SAMPLE = 20_000


@dataclass(frozen=True)
class LedgerFigures:
    states: dict[str, int]  # recipients per state
    total: int
    accepted: int  # recipients with at least one part accepted by the SMSC (a message id)
    statuses: dict[str, int]  # last submit_sm_resp status -> recipients
    latencies_s: list[float]  # claim -> receipt, a sample
    first_claim_at: float | None = None  # unix time of the campaign's first claim

    def as_dict(self) -> dict[str, Any]:
        return {
            "states": self.states,
            "total": self.total,
            "accepted": self.accepted,
            "statuses": self.statuses,
        }


def ledger_figures(path: Path, campaign: str) -> LedgerFigures:
    """Read the figures of ``campaign`` from the ledger file at ``path`` (engine stopped)."""
    ledger = SqliteLedger(path)
    try:
        report = ledger.report(campaign, unknown_cap=0)
    finally:
        ledger.close()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (cid,) = conn.execute("SELECT id FROM campaigns WHERE name = ?", (campaign,)).fetchone()
        (accepted,) = conn.execute(
            "SELECT count(DISTINCT recipient) FROM message_ids WHERE campaign = ?", (cid,)
        ).fetchone()
        (first_claim_at,) = conn.execute(
            "SELECT min(created_at) FROM recipients WHERE campaign = ?", (cid,)
        ).fetchone()
        step = max(1, int(report["total"]) // SAMPLE)
        latencies = [
            float(d)
            for (d,) in conn.execute(
                "SELECT m.receipt_at - r.created_at FROM message_ids m "
                "JOIN recipients r ON r.id = m.recipient "
                "WHERE m.campaign = ? AND m.receipt_at IS NOT NULL AND m.recipient % ? = 0",
                (cid, step),
            )
        ]
    finally:
        conn.close()
    return LedgerFigures(
        states={k: v for k, v in report["states"].items() if v},
        total=int(report["total"]),
        accepted=int(accepted),
        statuses=dict(report["statuses"]),
        latencies_s=latencies,
        first_claim_at=first_claim_at,
    )
