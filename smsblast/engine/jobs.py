"""What travels through the engine: one Job per recipient, one item per part."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from smsblast.smpp.parts import PartSpec

if TYPE_CHECKING:
    from smsblast.engine.campaign import CampaignRun
    from smsblast.ledger import KeyedReceipt


@dataclass(slots=True, eq=False)
class Job:
    """One recipient between claim and a durable outcome."""

    run: CampaignRun
    msisdn: str
    route: str
    parts: tuple[PartSpec, ...]
    partition: tuple[str, int] | None  # None for recipients taken from the ledger backlog
    offset: int
    remaining: int = 0
    message_ids: list[tuple[int, str, str]] = field(default_factory=list)
    #: Receipts that came before the outcome was recorded (see engine.receipts).
    receipts: list[KeyedReceipt] = field(default_factory=list)
    failed_status: int | None = None
    unknown: bool = False
    armed: bool = False  # marked IN_FLIGHT in the ledger
    abandoned: bool = False  # a transient failure while shutting down: send after restart
    #: The opt-out list's version when this recipient was last checked against it.
    optout_version: int = 0
    suppressed: bool = False  # opted out while it waited in memory: none of its parts goes
    error: str = ""
    started: float = 0.0
    dest: bytes = b""

    def __post_init__(self) -> None:
        self.remaining = len(self.parts)
        self.dest = self.msisdn.encode("ascii")


class WorkItem(NamedTuple):
    """One part waiting for a bind; ``attempt`` counts transient failures."""

    job: Job
    part: int
    attempt: int
