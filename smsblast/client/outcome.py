"""The one explicit outcome every submit_sm resolves to."""

from __future__ import annotations

import enum
from typing import NamedTuple

from smsblast.smpp.constants import TRANSIENT_STATUSES, Status, status_name


class OutcomeKind(enum.Enum):
    ACCEPTED = "accepted"  # submit_sm_resp ESME_ROK: the SMSC has it, message_id set
    REJECTED = "rejected"  # a permanent error status: never resend as-is
    RETRYABLE = "retryable"  # a transient status, or never written: safe to resend
    UNKNOWN = "unknown"  # written, then no answer (timeout, connection died): maybe sent


class SubmitOutcome(NamedTuple):
    kind: OutcomeKind
    message_id: str = ""
    status: int | None = None
    reason: str = ""
    latency: float = 0.0  # seconds from write to response (0 when there was none)

    def describe(self) -> str:
        if self.kind is OutcomeKind.ACCEPTED:
            return f"accepted id={self.message_id}"
        what = status_name(self.status) if self.status is not None else self.reason
        return f"{self.kind.value} {what}"


def classify_status(status: int) -> OutcomeKind:
    """ROK -> ACCEPTED; the transient set (and RINVBNDSTS: rebind, then retry) ->
    RETRYABLE; every other status is permanent for the message -> REJECTED."""
    if status == Status.ROK:
        return OutcomeKind.ACCEPTED
    if status in TRANSIENT_STATUSES or status == Status.RINVBNDSTS:
        return OutcomeKind.RETRYABLE
    return OutcomeKind.REJECTED
