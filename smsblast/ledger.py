"""The blast engine's durable ledger: one row per (campaign, recipient), in SQLite.

Theory of operation
-------------------
Every recipient of a campaign has one row in ``recipients``; its ``state`` says how far it got
(:class:`State`). The engine talks to the ledger in batches, and every method is exactly one
SQLite transaction, so a batch is either wholly on disk or not at all:

1. :meth:`SqliteLedger.claim` inserts a batch (the engine claims PENDING) and returns
   ``None`` for each new recipient, or the state already stored for a number seen before: a
   duplicate in the campaign, or a record read again after a restart. The engine queues only
   what came back ``None``, and :meth:`~SqliteLedger.mark` sets a batch IN_FLIGHT before any
   of its parts is written (or the claim stores it IN_FLIGHT at once, its ``in_flight``
   argument, for recipients the engine sends at once), so after a crash every recipient
   that may have been sent is IN_FLIGHT (or further) on disk, and a PENDING one is safe to
   send.
2. :meth:`~SqliteLedger.record_outcomes` records each recipient's submit outcome and the
   message id of every part; a key (the normalised id) indexes ``message_ids``.
3. :meth:`~SqliteLedger.record_receipts` finds parts by key and moves the recipient to
   DELIVERED (every part delivered), FAILED or EXPIRED (any part failed or expired) or UNKNOWN
   (a part's fate is unknown to the SMSC). A receipt that finds no key is handed back; the
   caller retries it, then parks it (:meth:`~SqliteLedger.park_unmatched`). Parked receipts
   are matched as soon as their key is recorded, and dropped (and counted) after
   ``receipt_max_age``. Receipts that came before their outcome was written travel with it
   (``Outcome.receipts``) and are applied in its transaction by the same rules
   (``_fold_receipts``): one write per recipient where an SMSC answers within milliseconds.

After ``kill -9`` the engine reopens the file: :meth:`~SqliteLedger.in_flight` lists who may
or may not have been sent (the on_unknown policy decides), ``claim`` answers "already
handled" for everyone else, and :meth:`~SqliteLedger.counts` accounts for every row.

Durability: WAL with ``synchronous=NORMAL``. A committed transaction is in the WAL file (the
OS page cache) when COMMIT returns, so it survives the process being killed at any moment; a
power cut may lose the last transactions, never consistency.

Cost: rows are written with ``executemany`` over tuples (or the caller's NamedTuples as they
are); per-call constants (campaign id, state, timestamp) are inlined into the SQL text, so a
statement is compiled once per batch and stepped once per row. ``recipients`` is a rowid table
in claim order: outcomes and receipts update recently claimed rows, which sit together on a
few hot pages, while a table clustered by msisdn (WITHOUT ROWID) dirtied one random page per
row per phase: 2.5x the CPU for random numbers (measured while designing this).
Per-campaign per-route per-state tallies are kept in the same transactions, so ``counts`` is
O(routes), not a scan. Memory does not grow with the campaign: SQLite's page cache is capped
(``cache_mb``), and the per-recipient state in Python is bounded: a cache (``flight_cache``)
of row ids for recipients this process claimed and still awaits outcomes for, which spares
each outcome a lookup, and the newest numbers (below).

Numbers: which (campaign, msisdn) the ledger has, and its row. A unique index on
``recipients`` (campaign, msisdn), as versions 1-4 had, takes the numbers in random order:
every COMMIT writes each index page a claim batch touched to the WAL (then the checkpoint
copies it), so once the index outgrows a batch each claimed number costs about one page
write, and claim CPU rose with the campaign (``loadtest/ledger_bench.py``: 7.9 and 11.0 us a
row at 1M and 3M recipients, 3.4 us when numbers came sorted; a 1 GB page cache did not
help: the cost is the writes, not the reads). So numbers are filed in sorted runs, in three
places, each number in exactly one:

* memory (``_recent``): the numbers of the rows from meta ``numbers_from`` on, up to
  ``levels.in_memory``; rebuilt from those rows when the ledger opens (after a crash too);
* ``numbers_recent``: when memory is full, the transaction that filled it sorts those rows'
  numbers into this table (one pass over its pages) and moves ``numbers_from`` past them;
* ``numbers``: beyond ``levels.recent`` rows in ``numbers_recent``, each write transaction
  moves its next ``levels.move`` keys here, in key order, so one pass through the key space
  touches each page of ``numbers`` about once.

A claim then looks its numbers up (one seek per number and table) and appends its rows: 5.9
and 8.4 us a row in the same bench at 1M and 3M (BENCHMARKS.md, "Session 13").

Each move is in the transaction that makes it necessary, so a crash leaves every number in
exactly one place; the memory side changes only when that transaction commits (and what a
rolled-back one put there leaves with it). The tables, not a constraint, keep a number
unique, so one writer must own the file: the engine's lock (smsblast.ledger_lock) sees to
that, and other processes only read or write controls.

Not thread-safe: one :class:`SqliteLedger` belongs to one thread. :class:`AsyncLedger` runs one
on a dedicated worker thread (:class:`ThreadBackend`) or, as the engine does, in a child process
(``smsblast/ledger_process.py``: on a thread, the ledger's Python half held the GIL and the
engine never used more than one core).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import itertools
import json
import os
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final, NamedTuple, Protocol, TypeVar, cast

from smsblast.smpp.constants import status_name

__all__ = [
    "FINAL",
    "AsyncLedger",
    "CampaignInfo",
    "Claim",
    "Control",
    "KeyedReceipt",
    "Ledger",
    "LedgerError",
    "NumbersLevels",
    "Outcome",
    "PendingRow",
    "ReceiptRow",
    "Reject",
    "SqliteLedger",
    "State",
    "Timeline",
    "ledger_file_problem",
    "open_failed",
]


class State(enum.StrEnum):
    """Where a recipient stands. Stored as a small integer (``_CODE``)."""

    PENDING = "pending"  # known, not sent: parked (route busy or down) or to resubmit
    IN_FLIGHT = "in_flight"  # claimed for sending: may have been sent
    SUBMITTED = "submitted"  # the SMSC acknowledged every part: final for sending
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # may or may not have been sent; reported, never resent
    SUPPRESSED = "suppressed"  # opt-out and the like: never sent
    REJECTED = "rejected"  # invalid before sending: never sent


#: States nothing moves a recipient out of, except an explicit :meth:`SqliteLedger.mark`.
FINAL: Final = frozenset(
    {State.DELIVERED, State.FAILED, State.EXPIRED, State.SUPPRESSED, State.REJECTED}
)

# The one table of state codes (persisted: never renumber). Codes below _FIRST_FINAL can still
# change by outcome; _RECEIPT_LOW.._RECEIPT_HIGH are the states a receipt may settle.
_CODE: Final[dict[State, int]] = {
    State.PENDING: 0,
    State.IN_FLIGHT: 1,
    State.SUBMITTED: 2,
    State.UNKNOWN: 3,
    State.DELIVERED: 4,
    State.FAILED: 5,
    State.EXPIRED: 6,
    State.SUPPRESSED: 7,
    State.REJECTED: 8,
}
_STATE_OF: Final[tuple[State, ...]] = tuple(sorted(_CODE, key=_CODE.__getitem__))
_FIRST_FINAL: Final = _CODE[State.DELIVERED]
assert all(_CODE[s] >= _FIRST_FINAL for s in FINAL) and all(
    _CODE[s] < _FIRST_FINAL for s in State if s not in FINAL
)
_PENDING, _IN_FLIGHT, _SUBMITTED, _UNKNOWN, _DELIVERED = (
    _CODE[State.PENDING],
    _CODE[State.IN_FLIGHT],
    _CODE[State.SUBMITTED],
    _CODE[State.UNKNOWN],
    _CODE[State.DELIVERED],
)
# A receipt settles a recipient that is in flight, submitted or unknown (an SMSC that knows
# the message id knows better than a lost submit_sm_resp).
_RECEIPT_SETTLES: Final = frozenset({_IN_FLIGHT, _SUBMITTED, _UNKNOWN})

#: Final receipt states (lowercase ``ReceiptState`` names, or the ledger's own words) and the
#: recipient state each one implies. Any other receipt state is intermediate: recorded on the
#: part, no effect on the recipient.
_RECEIPT_EFFECT: Final[dict[str, int]] = {
    "delivered": _CODE[State.DELIVERED],
    "expired": _CODE[State.EXPIRED],
    "failed": _CODE[State.FAILED],
    "undeliverable": _CODE[State.FAILED],
    "deleted": _CODE[State.FAILED],
    "rejected": _CODE[State.FAILED],
    "unknown": _CODE[State.UNKNOWN],
}


#: A part's receipt so far: (receipt state or None, unix time or None).
PartReceipt = tuple[str | None, float | None]
#: A receipt as a recipient's parts take it: (key, receipt state, unix time received).
KeyedReceipt = tuple[str, str, float]


def _fold_receipts(
    code: int,
    delivered: int,
    parts: int,
    receipts: Iterable[KeyedReceipt],
    current: dict[str, PartReceipt],
) -> tuple[int, int, float]:
    """Apply one recipient's receipts (key, receipt state, time), in arrival order.

    ``code``, ``delivered`` and ``parts`` are the recipient's state code, delivered parts and
    parts; ``current`` maps every key of its parts to the receipt recorded so far, and is
    updated in place. Per part the first final receipt counts (later ones are ignored) and an
    intermediate one is recorded until a final one comes. A recipient in flight, submitted
    or unknown becomes DELIVERED when every part is delivered, and FAILED, EXPIRED or UNKNOWN
    on the first part that is. Returns the new code and delivered count, and the time of the
    last receipt that counted for the recipient (0.0: none did). Pure: no I/O.
    """
    at = 0.0
    for key, receipt, received in receipts:
        if current[key][0] in _RECEIPT_EFFECT:
            continue  # this part has its final receipt already
        current[key] = (receipt, received)
        effect = _RECEIPT_EFFECT.get(receipt)
        if effect is None:
            continue
        at = received
        if effect == _DELIVERED:
            delivered += 1
            if code in _RECEIPT_SETTLES and delivered >= parts:
                code = _DELIVERED
        elif code in _RECEIPT_SETTLES:
            code = effect
    return code, delivered, at


class Control(enum.StrEnum):
    """A campaign's operator control; it survives restarts."""

    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"


class LedgerError(Exception):
    """Misuse of the ledger: unknown campaign, bad control value, newer schema."""


def open_failed(cause: BaseException | None) -> LedgerError:
    """The error of a ledger that failed to open (either backend), naming ``cause``."""
    why = f": {type(cause).__name__}: {cause}" if cause is not None else ""
    error = LedgerError(f"the ledger failed to open{why}")
    error.__cause__ = cause
    return error


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    name: str
    snapshot: dict[str, int]  # {"topic:partition": end offset} taken when the campaign began
    control: str  # a Control value
    created_at: float
    pruned_at: float | None = None  # `smsblast prune` deleted its rows: it is over for good


class Claim(NamedTuple):
    """A recipient about to be sent (or parked). A NamedTuple so the ledger binds it as is."""

    msisdn: str
    route: str | None
    parts: int
    topic: str
    partition: int
    offset: int
    text: str | None = None  # only for parked (PENDING) rows: what to send later


class Outcome(NamedTuple):
    """How a recipient's submit ended. ``message_ids``: (part_no, raw_id, key) per part;
    ``receipts``: (key, receipt state, unix time received) of receipts for these parts that
    came before the outcome was recorded, in arrival order (recorded as ``record_receipts``
    would record them right after the outcome, in the same transaction)."""

    msisdn: str
    state: State  # SUBMITTED | FAILED | UNKNOWN | IN_FLIGHT | PENDING
    status: int | None = None
    error: str = ""
    message_ids: Sequence[tuple[int, str, str]] = ()
    receipts: Sequence[KeyedReceipt] = ()


class ReceiptRow(NamedTuple):
    """A delivery receipt: ``key`` is the normalised message id, ``state`` a receipt state."""

    key: str
    state: str  # "delivered" | "failed" | "expired" | ... (see _RECEIPT_EFFECT)
    raw_id: str
    received_at: float  # unix time


@dataclass(frozen=True, slots=True)
class Timeline:
    """Per route ('' for none): {unix second: parts submitted} and {second: receipts}."""

    submits: dict[str, dict[int, int]]
    receipts: dict[str, dict[int, int]]


class Reject(NamedTuple):
    msisdn: str
    state: State  # SUPPRESSED | REJECTED
    reason: str


class PendingRow(NamedTuple):
    msisdn: str
    route: str | None
    parts: int
    text: str | None
    id: int = 0  # the row's id: page on with ``pending(..., after=id)``


class Ledger(Protocol):
    """What the engine needs from a ledger; :class:`SqliteLedger` is the one implementation."""

    def open_campaign(self, campaign: str, snapshot: dict[str, int] | None) -> CampaignInfo: ...
    def control(self, campaign: str) -> str | None: ...
    def set_control(self, campaign: str, control: str, before_open: bool = False) -> None: ...
    def claim(
        self, campaign: str, claims: Sequence[Claim], state: State, in_flight: int = 0
    ) -> list[State | None]: ...
    def record_rejects(self, campaign: str, rows: Sequence[tuple[str, State, str]]) -> None: ...
    def record_outcomes(self, campaign: str, rows: Sequence[Outcome]) -> None: ...
    def record_receipts(self, rows: Sequence[ReceiptRow]) -> list[ReceiptRow]: ...
    def park_unmatched(self, rows: Sequence[ReceiptRow]) -> None: ...
    def match_parked(self, now: float | None = None) -> int: ...
    def pending(
        self, campaign: str, route: str | None, limit: int, after: int = 0
    ) -> list[PendingRow]: ...
    def pending_by_route(self, campaign: str) -> dict[str, int]: ...
    def in_flight(self, campaign: str, limit: int, after: str = "") -> list[str]: ...
    def mark(
        self,
        campaign: str,
        msisdns: Sequence[str],
        state: State,
        error: str = "",
        only_from: State | None = None,
    ) -> int: ...
    def counts(self, campaign: str) -> dict[str, int]: ...
    def counts_by_route(self, campaign: str) -> dict[str, dict[str, int]]: ...
    def report(self, campaign: str, unknown_cap: int = 1000) -> dict[str, Any]: ...
    def campaign_info(self, campaign: str) -> CampaignInfo | None: ...
    def campaigns(self) -> list[CampaignInfo]: ...
    def close(self) -> None: ...


SCHEMA_VERSION: Final = 5
#: Where each (campaign, msisdn) of the ledger is found, and its row id: ``numbers`` and
#: ``numbers_recent`` for rows below meta ``numbers_from``, the ledger's memory for the rows
#: above (see the module docstring). Each number is in exactly one of the three.
_NUMBERS_TABLES: Final = tuple(
    f"CREATE TABLE IF NOT EXISTS {table} (campaign INTEGER NOT NULL, msisdn TEXT NOT NULL, "
    "id INTEGER NOT NULL, PRIMARY KEY (campaign, msisdn)) WITHOUT ROWID"
    for table in ("numbers", "numbers_recent")
)


class NumbersLevels(NamedTuple):
    """When numbers move on (see the module docstring): ``in_memory`` numbers (~100 bytes
    each) are sorted into ``numbers_recent`` at once; beyond ``recent`` rows there, each
    write transaction moves its next ``move`` keys into ``numbers``."""

    in_memory: int = 100_000
    recent: int = 2_000_000
    move: int = 10_000


_LEVELS: Final = NumbersLevels()


# Migrations from each older version to the next, run in order in one transaction.
_MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: ("ALTER TABLE message_ids ADD COLUMN submit_at REAL",),  # 2: per-part submit time
    2: (),  # 3: early_controls (a new table: _SCHEMA creates it)
    3: ("ALTER TABLE campaigns ADD COLUMN pruned_at REAL",),  # 4: smsblast prune
    4: (  # 5: the numbers tables replace the unique index on recipients (campaign, msisdn)
        *_NUMBERS_TABLES,
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) "
        "WITHOUT ROWID",
        "INSERT INTO numbers (campaign, msisdn, id) "
        "SELECT campaign, msisdn, id FROM recipients ORDER BY campaign, msisdn",
        "DROP INDEX IF EXISTS recipients_by_msisdn",
        "INSERT OR REPLACE INTO meta (key, value) "
        "VALUES ('numbers_from', (SELECT ifnull(max(id), 0) + 1 FROM recipients))",
    ),
}

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    snapshot TEXT NOT NULL,              -- JSON {"topic:partition": end_offset}
    control TEXT NOT NULL DEFAULT 'running'
        CHECK (control IN ('running', 'paused', 'cancelled')),
    created_at REAL NOT NULL,
    first_id INTEGER NOT NULL,           -- every recipient row of the campaign has id >= this
    pruned_at REAL                       -- when `smsblast prune` began deleting its rows
);
CREATE TABLE IF NOT EXISTS early_controls (  -- asked for before the campaign opened
    name TEXT PRIMARY KEY,
    control TEXT NOT NULL CHECK (control IN ('running', 'paused', 'cancelled'))
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sources (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    UNIQUE (topic, partition)
);
CREATE TABLE IF NOT EXISTS recipients (
    id INTEGER PRIMARY KEY,              -- claim order
    campaign INTEGER NOT NULL,
    msisdn TEXT NOT NULL,
    state INTEGER NOT NULL,              -- see state_names
    route TEXT,
    parts INTEGER NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,  -- parts with a delivered receipt
    source INTEGER,                      -- sources.id: where the record was read
    src_offset INTEGER,
    status INTEGER,                      -- last submit_sm_resp command_status
    error TEXT,
    text TEXT,                           -- parked rows only
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS recipients_pending ON recipients (campaign, route) WHERE state = 0;
CREATE TABLE IF NOT EXISTS tallies (
    campaign INTEGER NOT NULL,
    route TEXT NOT NULL,                 -- '' for none
    state INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (campaign, route, state)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS message_ids (
    key TEXT PRIMARY KEY,                -- normalised message id
    campaign INTEGER NOT NULL,
    recipient INTEGER NOT NULL,          -- recipients.id
    part INTEGER NOT NULL,
    raw_id TEXT,                         -- as the SMSC wrote it, NULL when equal to key
    receipt TEXT,                        -- last receipt state for this part
    receipt_at REAL,
    submit_at REAL                       -- when submit_sm_resp was recorded (version 2)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS unmatched_receipts (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    raw_id TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS unmatched_receipts_by_key ON unmatched_receipts (key);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state_names (code INTEGER PRIMARY KEY, name TEXT NOT NULL);
"""

_FIRST = itemgetter(0)  # msisdn of a Claim, Outcome or Reject; key of a ReceiptRow
_ROUTE = itemgetter(1)
_SOURCE = itemgetter(3, 4)

Deltas = defaultdict[tuple[str, int], int]
_V = TypeVar("_V")


def _sql_float(value: float) -> str:
    return repr(float(value))


def _route_counts(routes: Counter[str | None], code: int) -> Counter[tuple[str, int]]:
    return Counter({(route or "", code): n for route, n in routes.items()})


def _split_cached(cache: Mapping[str, _V], keys: Iterable[str]) -> tuple[dict[str, _V], list[str]]:
    """The keys ``cache`` has, with their values, and the others (in order).

    The usual cases take one quick pass: none found (claims of new numbers) or all found
    (marks and outcomes of recipients just claimed). 5,000 keys: 0.27 -> 0.10 ms none
    found, 0.29 -> 0.21 ms all found (timeit)."""
    keys = keys if isinstance(keys, list) else list(keys)
    if not cache or cache.keys().isdisjoint(keys):
        return {}, keys
    try:
        return {key: cache[key] for key in keys}, []
    except KeyError:
        pass
    found: dict[str, _V] = {}
    rest = []
    for key in keys:
        value = cache.get(key)
        if value is None:
            rest.append(key)
        else:
            found[key] = value
    return found, rest


def _json(values: Iterable[str] | Iterable[int]) -> str:
    return json.dumps(list(values), ensure_ascii=False)


def ledger_file_problem(path: str) -> str | None:
    """Why the existing file at ``path`` is not a ledger this code can use (``None``: it is
    one, or it is empty). Reads only; checked before anything starts, so a wrong
    ``ledger.path`` (a corrupt file, another program's SQLite database, a ledger of a newer
    smsblast) is named as such instead of failing in the ledger's process."""
    try:
        conn = sqlite3.connect(path)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF not in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
            # It could not be read, which says nothing about what it is. Opening a ledger
            # (WAL mode) creates its -shm file: on a full disk that fails as "disk I/O error".
            return (
                f"{path}: SQLite cannot open it ({exc}): is its disk full or failing? SQLite "
                "needs a few MB free next to the ledger for its -wal and -shm files"
            )
        return f"{path} is not an smsblast ledger (SQLite: {exc})"
    if version > SCHEMA_VERSION:
        return (
            f"{path}: ledger schema version {version} is newer than this smsblast's "
            f"({SCHEMA_VERSION}): run the smsblast that wrote it, or a newer one"
        )
    if version == 0 and tables:
        return f"{path} is an SQLite database, but not an smsblast ledger (no schema version)"
    return None


class SqliteLedger:
    """The ledger in one SQLite file. See the module docstring for the guarantees.

    ``cache_mb`` caps SQLite's page cache (memory stays bounded whatever the campaign size);
    ``receipt_max_age`` is how long a parked receipt waits for its message id (seconds);
    ``max_parked`` caps parked receipts (the oldest are dropped, and counted, beyond it);
    ``flight_cache`` caps the msisdn -> row id cache of recipients this process claimed and
    awaits outcomes for (about 230 bytes each; it spares ``mark`` and ``record_outcomes`` a
    lookup); the default covers the engine's default of 50,000 recipients in memory plus a
    read batch, not the parked ones (at 1M the cache held 146k rows, ~35 MB, when parked
    rows stayed in it).
    Raises :class:`sqlite3.Error` on I/O errors, :class:`LedgerError` on misuse.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        cache_mb: int = 64,
        receipt_max_age: float = 2 * 86400.0,
        max_parked: int = 1_000_000,
        flight_cache: int = 64_000,
        levels: NumbersLevels = _LEVELS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = os.fspath(path)
        self.levels = NumbersLevels(*levels)  # a list when it came through JSON
        self.flight_cache = flight_cache
        self.receipt_max_age = receipt_max_age
        self.max_parked = max_parked
        self._clock = clock
        conn = sqlite3.connect(self.path, isolation_level=None, cached_statements=256)
        self._conn = conn
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal" and self.path != ":memory:":
                raise LedgerError(f"{self.path}: cannot use WAL (journal_mode={mode})")
            for pragma in (
                "synchronous=NORMAL",
                "secure_delete=OFF",  # Debian builds turn it on: zeroing freed space costs CPU
                f"cache_size={-1024 * int(cache_mb)}",
                # Pages (~200 MB): fewer, larger checkpoints. A checkpoint writes each page
                # once however often the WAL holds it, and the (campaign, msisdn) index
                # takes random inserts: at 4M recipients 50,000 made 23,199 and 22,903/s
                # end to end against 22,358 and 22,086/s with 10,000 (BENCHMARKS.md,
                # "Session 11"), the ledger process's CPU unchanged.
                "wal_autocheckpoint=50000",
                # Above the ~206 MB the WAL reaches between checkpoints, so it is reused in
                # place. Cut back to 64 MB after each checkpoint, it grew again block by
                # block (allocated and zeroed by the filesystem): the ledger bench at 3M
                # (BENCHMARKS.md, "Session 12") spent 30.5-31.2 s in COMMIT with 64 MB
                # and 22.3-24.6 s with no limit.
                "journal_size_limit=268435456",
                "busy_timeout=10000",
            ):
                conn.execute(f"PRAGMA {pragma}")
            self._create_schema()
        except BaseException:
            conn.close()
            raise
        self._ids: dict[str, tuple[int, int]] = {}  # name -> (campaign id, first_id)
        #: msisdn -> [row id, state code, route or '', parts, delivered] of rows this process
        #: claimed and has not yet settled, per campaign; kept exact by every write that
        #: changes them.
        self._flight: dict[int, dict[str, list[Any]]] = {}
        self._sources: dict[tuple[str, int], int] = dict(
            ((topic, partition), sid)
            for sid, topic, partition in conn.execute("SELECT id, topic, partition FROM sources")
        )
        self._parked: int = conn.execute("SELECT count(*) FROM unmatched_receipts").fetchone()[0]
        # The numbers of the newest rows (id >= numbers_from), per campaign: msisdn -> id.
        #: (campaign id, numbers) put in _recent by the open transaction, a batch at a time
        self._undo: list[tuple[int, list[str]]] = []
        self._after_commit: list[Callable[[], None]] = []
        self._recent: defaultdict[int, dict[str, int]] = defaultdict(dict)
        row = conn.execute("SELECT value FROM meta WHERE key = 'numbers_from'").fetchone()
        # Never above the next row id: `smsblast prune` may have deleted the newest rows.
        self._numbers_from = min(1 if row is None else int(row[0]), self._next_id())
        self._recent_n = 0
        for cid, msisdn, rid in conn.execute(
            f"SELECT campaign, msisdn, id FROM recipients WHERE id >= {self._numbers_from}"
        ):
            self._recent[cid][msisdn] = rid
            self._recent_n += 1
        self._on_disk_recent: int = conn.execute("SELECT count(*) FROM numbers_recent").fetchone()[
            0
        ]
        self._move_after: tuple[int, str] = (-1, "")  # numbers_recent -> numbers, in key order
        self._filled = {  # has the table ever had a row (stays True: a cheap, safe answer)
            t: conn.execute(f"SELECT EXISTS (SELECT 1 FROM {t})").fetchone()[0] == 1
            for t in ("numbers_recent", "numbers")
        }
        self._filing = False  # _file_numbers ran in the open transaction

    # ------------------------------------------------------------------ plumbing
    def _create_schema(self) -> None:
        conn = self._conn
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(f"{self.path}: schema version {version} is newer than this code")
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version:  # an older ledger: migrate it, keep every row
                for old in range(version, SCHEMA_VERSION):
                    for statement in _MIGRATIONS[old]:
                        conn.execute(statement)
            for statement in (*_SCHEMA.split(";"), *_NUMBERS_TABLES):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany(
                "INSERT OR REPLACE INTO state_names (code, name) VALUES (?, ?)",
                [(code, state.value) for state, code in _CODE.items()],
            )
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _begin(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        self._undo.clear()
        self._after_commit.clear()
        self._filing = False

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction around the ``with`` body: BEGIN IMMEDIATE, then COMMIT
        (:meth:`_commit`), or ROLLBACK if the body raised (anything, cancellation too)."""
        self._begin()
        try:
            yield
        except BaseException:
            self._rollback()
            raise
        self._commit()

    def _commit(self) -> None:
        """COMMIT, or roll back and raise: a COMMIT that fails (SQLITE_BUSY, a full disk) can
        leave the transaction open, and every later BEGIN would then fail."""
        try:
            self._conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._undo.clear()
        while self._after_commit:
            self._after_commit.pop(0)()

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
        self._after_commit.clear()
        while self._undo:  # newest first: numbers this transaction put in memory
            cid, msisdns = self._undo.pop()
            recent = self._recent[cid]
            for msisdn in msisdns:
                recent.pop(msisdn, None)
            self._recent_n -= len(msisdns)

    # ------------------------------------------------------------------ numbers
    def _known(self, cid: int, msisdns: Iterable[str]) -> dict[str, int]:
        """msisdn -> row id of the given numbers the campaign already has."""
        found, rest = _split_cached(self._recent.get(cid, {}), msisdns)
        # One seek per number and table, json_each the outer loop (CROSS JOIN keeps it
        # there): ~1.1 us a number against 1M keys, where IN (SELECT ...) first built a
        # sorted copy of the list (~1.4 us). A table never filled is not looked at.
        tables = [t for t in ("numbers_recent", "numbers") if self._filled[t]]
        if rest and tables:
            found.update(
                self._conn.execute(
                    " UNION ALL ".join(
                        f"SELECT j.value, n.id FROM json_each(?1) AS j CROSS JOIN {t} AS n "
                        f"WHERE n.campaign = {cid} AND n.msisdn = j.value"
                        for t in tables
                    ),
                    (_json(rest),),
                )
            )
        return found

    def _insert_recipients(
        self, cid: int, sql: str, rows: Sequence[Any], msisdns: list[str]
    ) -> tuple[int, int]:
        """Insert new recipient rows (``msisdns``: their numbers, in order, none known yet)
        and keep their numbers in memory; returns the row ids before and after (first, and
        last + 1: the rows have first..last when they are as many as the rows)."""
        conn = self._conn
        first = self._next_id()
        conn.executemany(sql, rows)
        last = self._next_id()
        if last - first == len(msisdns):  # always, unless a row id was taken out of turn
            self._recent[cid].update(zip(msisdns, range(first, last), strict=True))
            added = msisdns
        else:
            pairs = conn.execute(
                f"SELECT msisdn, id FROM recipients WHERE id >= {first} AND +campaign = {cid}"
            ).fetchall()
            self._recent[cid].update(pairs)
            added = [msisdn for msisdn, _ in pairs]
        self._undo.append((cid, added))
        self._recent_n += len(msisdns)
        self._file_numbers()
        return first, last

    def _file_numbers(self) -> None:
        """Within the open transaction: once enough numbers are in memory, sort them into
        ``numbers_recent`` (one pass over its pages); once that is big, move its next keys
        into ``numbers`` (a slice of the key space a time, so each pass over ``numbers``
        touches each of its pages about once). The memory side changes on COMMIT."""
        if self._filing:
            return
        self._filing = True
        conn = self._conn
        levels = self.levels
        if self._recent_n >= levels.in_memory:
            moved = conn.execute(
                "INSERT INTO numbers_recent (campaign, msisdn, id) SELECT campaign, msisdn, id "
                f"FROM recipients WHERE id >= {self._numbers_from} ORDER BY campaign, msisdn"
            ).rowcount
            upto = self._next_id()
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('numbers_from', ?)", (upto,)
            )
            self._after_commit.append(functools.partial(self._filed, upto, moved))
        if self._on_disk_recent > levels.recent:
            rows = conn.execute(
                "SELECT campaign, msisdn, id FROM numbers_recent "
                f"WHERE (campaign, msisdn) > (?, ?) ORDER BY campaign, msisdn LIMIT {levels.move}",
                self._move_after,
            ).fetchall()
            if rows:
                conn.executemany("INSERT INTO numbers (campaign, msisdn, id) VALUES (?,?,?)", rows)
                conn.execute(
                    "DELETE FROM numbers_recent "
                    "WHERE (campaign, msisdn) >= (?, ?) AND (campaign, msisdn) <= (?, ?)",
                    (*rows[0][:2], *rows[-1][:2]),
                )
            after = (-1, "") if len(rows) < levels.move else (rows[-1][0], rows[-1][1])
            self._after_commit.append(functools.partial(self._moved, after, len(rows)))

    def _filed(self, upto: int, n: int) -> None:
        self._recent.clear()
        self._recent_n = 0
        self._numbers_from = upto
        self._on_disk_recent += n
        self._filled["numbers_recent"] = True

    def _moved(self, after: tuple[int, str], n: int) -> None:
        self._move_after = after
        self._on_disk_recent -= n
        self._filled["numbers"] = True

    def _campaign(self, campaign: str) -> tuple[int, int]:
        found = self._ids.get(campaign)
        if found is None:
            row = self._conn.execute(
                "SELECT id, first_id FROM campaigns WHERE name = ?", (campaign,)
            ).fetchone()
            if row is None:
                raise LedgerError(f"no campaign {campaign!r} in the ledger: open_campaign first")
            found = self._ids[campaign] = (int(row[0]), int(row[1]))
        return found

    def _tally(self, cid: int, deltas: Deltas | Counter[tuple[str, int]]) -> None:
        rows = [(cid, route, code, n) for (route, code), n in deltas.items() if n]
        if rows:
            self._conn.executemany(
                "INSERT INTO tallies (campaign, route, state, n) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (campaign, route, state) DO UPDATE SET n = n + excluded.n",
                rows,
            )

    def _bump_meta(self, key: str, n: int) -> None:
        if n:
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                (key, n),
            )

    def _ensure_sources(self, wanted: set[tuple[str, int]]) -> None:
        new = wanted - self._sources.keys()
        if not new:
            return
        conn = self._conn
        with self._transaction():
            conn.executemany("INSERT OR IGNORE INTO sources (topic, partition) VALUES (?, ?)", new)
            found = {
                (topic, partition): int(sid)
                for sid, topic, partition in conn.execute(
                    "SELECT id, topic, partition FROM sources"
                )
            }
        self._sources = found

    # ------------------------------------------------------------------ campaigns
    def open_campaign(self, campaign: str, snapshot: dict[str, int] | None) -> CampaignInfo:
        """Create the campaign with ``snapshot``, or return it as first stored.

        A restart passes a fresh snapshot and gets the original back. ``snapshot=None`` only
        opens an existing campaign (:class:`LedgerError` when there is none). A new campaign
        starts with the control an operator asked for before it opened (``set_control`` with
        ``before_open``), else running.
        """
        info = self.campaign_info(campaign)
        if info is not None:
            return info
        if snapshot is None:
            raise LedgerError(f"no campaign {campaign!r} in the ledger and no snapshot to start it")
        conn = self._conn
        with self._transaction():
            conn.execute(
                "INSERT INTO campaigns (name, snapshot, control, created_at, first_id) "
                "VALUES (?, ?, ifnull((SELECT control FROM early_controls WHERE name = ?1), "
                "'running'), ?, (SELECT ifnull(max(id), 0) + 1 FROM recipients))",
                (campaign, json.dumps(snapshot, sort_keys=True), self._clock()),
            )
            conn.execute("DELETE FROM early_controls WHERE name = ?", (campaign,))
        info = self.campaign_info(campaign)
        assert info is not None
        return info

    def campaign_info(self, campaign: str) -> CampaignInfo | None:
        """The campaign of this name, or None if the ledger has none."""
        row = self._conn.execute(
            "SELECT name, snapshot, control, created_at, pruned_at FROM campaigns WHERE name = ?",
            (campaign,),
        ).fetchone()
        return None if row is None else _campaign_info(row)

    def campaigns(self) -> list[CampaignInfo]:
        """Every campaign in the ledger, oldest first."""
        rows = self._conn.execute(
            "SELECT name, snapshot, control, created_at, pruned_at FROM campaigns ORDER BY id"
        )
        return [_campaign_info(row) for row in rows]

    def control(self, campaign: str) -> str | None:
        """The campaign's control; for one not opened yet, the control asked for it before
        (``None`` when nobody asked)."""
        info = self.campaign_info(campaign)
        if info is not None:
            return info.control
        row = self._conn.execute(
            "SELECT control FROM early_controls WHERE name = ?", (campaign,)
        ).fetchone()
        return None if row is None else str(row[0])

    def set_control(self, campaign: str, control: str, before_open: bool = False) -> None:
        """Store running / paused / cancelled for the campaign (it survives restarts).

        A campaign not in the ledger is a :class:`LedgerError`, unless ``before_open``: then
        the control waits in ``early_controls`` and :meth:`open_campaign` starts the campaign
        with it (one transaction either way, so it cannot fall between the two).
        """
        try:
            value = Control(control)
        except ValueError:
            raise LedgerError(f"control must be one of {[c.value for c in Control]}") from None
        with self._transaction():
            changed = self._conn.execute(
                "UPDATE campaigns SET control = ? WHERE name = ?", (value.value, campaign)
            ).rowcount
            if not changed:
                if not before_open:
                    raise LedgerError(f"no campaign {campaign!r} in the ledger: open it first")
                self._conn.execute(
                    "INSERT OR REPLACE INTO early_controls (name, control) VALUES (?, ?)",
                    (campaign, value.value),
                )

    # ------------------------------------------------------------------ claims
    def claim(
        self, campaign: str, claims: Sequence[Claim], state: State, in_flight: int = 0
    ) -> list[State | None]:
        """Insert new recipients with ``state``; report those already known.

        The first ``in_flight`` claims are stored IN_FLIGHT instead (recipients the engine
        sends at once: engine.campaign says when). Returns, per claim, ``None`` when it was
        new (now stored) or the state stored before. Within the batch the first claim of a
        number wins, and later ones get the state it was stored with. One transaction: when
        this returns, the new rows are on disk.
        """
        if not claims:
            return []
        cid, _ = self._campaign(campaign)
        code = _CODE[State(state)]
        groups = [(claims[:in_flight], _IN_FLIGHT), (claims[in_flight:], code)]
        sources = set(map(_SOURCE, claims))
        self._ensure_sources(sources)
        if len(sources) == 1:
            source_sql = str(self._sources[sources.pop()])
        else:
            source_sql = "(SELECT id FROM sources WHERE topic = ?4 AND partition = ?5)"
        now = _sql_float(self._clock())
        result: list[State | None] = []
        stored = []
        self._begin()
        try:
            for group, group_code in groups:
                if group:
                    insert = (
                        "INSERT INTO recipients (campaign, msisdn, state, route, parts, source, "
                        "src_offset, text, created_at, updated_at) "
                        f"VALUES ({cid}, ?1, {group_code}, ?2, ?3, {source_sql}, ?6, ?7, {now}, "
                        f"{now})"
                    )
                    fresh, first, last = self._claim_group(cid, group, group_code, insert, result)
                    stored.append((fresh, group_code, first, last))
        except BaseException:
            self._rollback()
            raise
        self._commit()
        for fresh, group_code, first, last in stored:
            self._remember(cid, fresh, group_code, first, last)
        return result

    def _claim_group(
        self, cid: int, claims: Sequence[Claim], code: int, insert: str, result: list[State | None]
    ) -> tuple[Sequence[Claim], int, int]:
        """Within :meth:`claim`'s transaction: insert the new ones of ``claims`` with state
        ``code`` and append, per claim, what :meth:`claim` returns to ``result``. Returns the
        new claims and their row ids (first, last + 1)."""
        msisdns = list(map(_FIRST, claims))
        known = self._known(cid, msisdns)
        if not known and len(set(msisdns)) == len(msisdns):  # the usual case: all new
            fresh: Sequence[Claim] = claims
            result += [None] * len(claims)
        else:  # some known, or repeated in the batch (the first claims it)
            rows = self._rows_by_id(known.values())
            if len(rows) != len(set(known.values())):
                raise LedgerError(f"{self.path}: numbers point to missing recipient rows")
            fresh = []
            seen: set[str] = set()
            for c in claims:
                rid = known.get(c[0])
                if rid is not None:
                    result.append(_STATE_OF[rows[rid][1]])
                elif c[0] in seen:
                    result.append(_STATE_OF[code])
                else:
                    seen.add(c[0])
                    fresh.append(c)
                    result.append(None)
            msisdns = list(map(_FIRST, fresh))
        first, last = self._insert_recipients(cid, insert, fresh, msisdns)
        self._tally(cid, _route_counts(Counter(map(_ROUTE, fresh)), code))
        return fresh, first, last

    def _rows_by_id(self, ids: Iterable[int]) -> dict[int, list[Any]]:
        """row id -> [id, state code, route or '', parts, delivered] of the rows that exist."""
        return {
            rid: [rid, code, route, parts, delivered]
            for rid, code, route, parts, delivered in self._conn.execute(
                "SELECT id, state, ifnull(route, ''), parts, delivered FROM recipients "
                "WHERE id IN (SELECT value FROM json_each(?))",
                (_json(ids),),
            )
        }

    def _next_id(self) -> int:
        """The id the next recipient row gets (rowids grow by one from the largest)."""
        row = self._conn.execute("SELECT ifnull(max(id), 0) + 1 FROM recipients").fetchone()
        return int(row[0])

    def _remember(
        self, cid: int, claims: Sequence[Claim], code: int, first: int, last: int
    ) -> None:
        """Cache msisdn -> [id, state, route, parts, delivered] for rows just committed with
        ids first..last-1, so marking them and recording their outcomes needs no lookup
        (delivered is 0: a new row has no message id for a receipt to find until its outcome
        is recorded, which drops it from the cache). Bounded by ``flight_cache``: beyond it
        the oldest entries go, which are the rows waiting longest for an outcome (parked
        ones, sent much later); a miss costs a query."""
        flight = self._flight.setdefault(cid, {})
        if last - first != len(claims) or len(claims) > self.flight_cache:
            return
        overflow = len(flight) + len(claims) - self.flight_cache
        if overflow > 0:
            for msisdn in list(itertools.islice(flight, overflow)):
                del flight[msisdn]
        flight.update(
            (c[0], [rid, code, c[1] or "", c[2], 0])
            for c, rid in zip(claims, range(first, last), strict=True)
        )

    def record_rejects(self, campaign: str, rows: Sequence[tuple[str, State, str]]) -> None:
        """Store (msisdn, SUPPRESSED | REJECTED, reason) rows; numbers already known are kept
        as they are (first record wins)."""
        if not rows:
            return
        cid, _ = self._campaign(campaign)
        now = self._clock()
        with self._transaction():
            known = set(self._known(cid, map(_FIRST, rows)))
            fresh = []
            deltas: Counter[tuple[str, int]] = Counter()
            for msisdn, state, reason in rows:
                if msisdn in known:
                    continue
                known.add(msisdn)
                code = _CODE[State(state)]
                fresh.append((cid, msisdn, code, reason, now, now))
                deltas["", code] += 1
            self._insert_recipients(
                cid,
                "INSERT INTO recipients (campaign, msisdn, state, parts, error, created_at, "
                "updated_at) VALUES (?, ?, ?, 0, ?, ?, ?)",
                fresh,
                [row[1] for row in fresh],
            )
            self._tally(cid, deltas)

    # ------------------------------------------------------------------ outcomes
    def record_outcomes(self, campaign: str, rows: Sequence[Outcome]) -> None:
        """Record submit outcomes and the message id of every part.

        A recipient already in a FINAL state keeps it (a receipt or a rejection came first);
        otherwise it takes the outcome's state, status and error. Message ids are stored
        whatever the state (INSERT OR REPLACE on the key: keys must be unique in the ledger,
        so the engine qualifies them by SMSC when two SMSCs can issue the same ids). An
        outcome for a number never claimed creates its row rather than being lost. An
        outcome's early ``receipts`` are applied as :meth:`record_receipts` would apply them
        right after it, and parked receipts whose key arrives here are matched, all in the
        same transaction. Raises :class:`LedgerError` (and records nothing) for an early
        receipt whose key is not one of its outcome's parts.
        """
        if not rows:
            return
        for o in rows:
            early = o[5]
            if not early:
                continue
            if len(early) == 1 and len(o[4]) == 1:  # the usual case: no sets to build
                if early[0][0] == o[4][0][2]:
                    continue
            elif {r[0] for r in early} <= {k for _, _, k in o[4]}:
                continue
            raise LedgerError(f"{o[0]}: an early receipt is not for one of its parts")
        cid, _ = self._campaign(campaign)
        conn = self._conn
        now = self._clock()
        self._begin()
        try:
            flight = self._flight.get(cid)
            found = self._rows(cid, [o[0] for o in rows])
            missing = {o[0]: o for o in rows if o[0] not in found}
            if missing:  # engine bug or hand-made outcome: make it countable, not lost
                self._insert_recipients(
                    cid,
                    "INSERT INTO recipients (campaign, msisdn, state, parts, created_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (cid, m, _IN_FLIGHT, max(1, len(o.message_ids)), now, now)
                        for m, o in missing.items()
                    ],
                    list(missing),
                )
                found.update(self._recipients_by_msisdn(cid, list(missing)))
                self._tally(cid, Counter({("", _IN_FLIGHT): len(missing)}))
            deltas: Deltas = defaultdict(int)
            # Rows with early receipts also set delivered and the parts' receipts: separate
            # statements, so outcomes without receipts cost what they did before. Keyed by
            # row id and message key, so a number or key twice in a batch ends as its last
            # row says whichever statement runs last.
            updates: dict[int, tuple[Any, ...]] = {}
            receipt_updates: dict[int, tuple[Any, ...]] = {}
            final_updates: dict[int, tuple[Any, ...]] = {}
            mids: dict[str, tuple[Any, ...]] = {}
            receipt_mids: dict[str, tuple[Any, ...]] = {}
            for msisdn, state, status, error, message_ids, early in rows:
                rec = found[msisdn]
                rid, old, route, parts, delivered = rec
                new = _CODE[state] if old < _FIRST_FINAL else old
                if early:
                    current: dict[str, PartReceipt] = {k: (None, None) for _, _, k in message_ids}
                    new, delivered, at = _fold_receipts(new, delivered, parts, early, current)
                    rec[4] = delivered
                    updates.pop(rid, None)
                    if old < _FIRST_FINAL:
                        receipt_updates[rid] = (new, status, error, delivered, at or now, rid)
                    elif at:  # a FINAL recipient keeps its state; its receipts still count
                        final_updates[rid] = (delivered, at, rid)
                    for part, raw_id, key in message_ids:
                        raw = None if raw_id == key else raw_id
                        receipt_mids[key] = (key, cid, rid, part, raw, *current[key])
                        mids.pop(key, None)
                else:
                    if old < _FIRST_FINAL:
                        updates[rid] = (new, status, error, now, rid)
                        receipt_updates.pop(rid, None)
                    for part, raw_id, key in message_ids:
                        mids[key] = (key, cid, rid, part, None if raw_id == key else raw_id)
                        receipt_mids.pop(key, None)
                if new != old:
                    deltas[route, old] -= 1
                    deltas[route, new] += 1
                    rec[1] = new
            conn.executemany(
                "UPDATE recipients SET state = ?, status = ?, error = ?, updated_at = ? "
                "WHERE id = ?",
                updates.values(),
            )
            if mids:
                conn.executemany(
                    "INSERT OR REPLACE INTO message_ids (key, campaign, recipient, part, raw_id, "
                    f"submit_at) VALUES (?, ?, ?, ?, ?, {_sql_float(now)})",
                    mids.values(),
                )
            if receipt_updates:
                conn.executemany(
                    "UPDATE recipients SET state = ?, status = ?, error = ?, delivered = ?, "
                    "updated_at = ? WHERE id = ?",
                    receipt_updates.values(),
                )
            if final_updates:
                conn.executemany(
                    "UPDATE recipients SET delivered = ?, updated_at = ? WHERE id = ?",
                    final_updates.values(),
                )
            if receipt_mids:
                conn.executemany(
                    "INSERT OR REPLACE INTO message_ids (key, campaign, recipient, part, raw_id, "
                    "receipt, receipt_at, submit_at) "
                    f"VALUES (?, ?, ?, ?, ?, ?, ?, {_sql_float(now)})",
                    receipt_mids.values(),
                )
            self._tally(cid, deltas)
            parked = self._parked
            if parked and (mids or receipt_mids):
                parked -= self._match_parked_keys(_json([*mids, *receipt_mids]))
            self._commit()
        except BaseException:
            self._rollback()
            # The loop above set cached rows (state, delivered) to what this transaction
            # would have stored; rolled back, they are wrong. Drop the campaign's cache:
            # later calls read the table (a retry of this batch then counts it right).
            self._flight.pop(cid, None)
            raise
        self._parked = parked
        if flight:
            for msisdn in map(_FIRST, rows):
                flight.pop(msisdn, None)

    def _rows(self, cid: int, msisdns: Sequence[str]) -> dict[str, list[Any]]:
        """msisdn -> [id, state code, route or '', parts, delivered], from the cache where it
        can (the cache's lists themselves: the caller may update them), else the table."""
        flight = self._flight.get(cid)
        if not flight:
            return self._recipients_by_msisdn(cid, msisdns)
        found, lookup = _split_cached(flight, msisdns)
        if lookup:
            found.update(self._recipients_by_msisdn(cid, lookup))
        return found

    def _recipients_by_msisdn(self, cid: int, msisdns: Iterable[str]) -> dict[str, list[Any]]:
        """msisdn -> [id, state code, route or '', parts, delivered] for the numbers given
        that the campaign has."""
        ids = self._known(cid, msisdns)
        if not ids:
            return {}
        rows = self._rows_by_id(ids.values())
        return {m: rows[rid] for m, rid in ids.items() if rid in rows}

    # ------------------------------------------------------------------ receipts
    def record_receipts(self, rows: Sequence[ReceiptRow]) -> list[ReceiptRow]:
        """Apply receipts to their parts and recipients; return those whose key is unknown.

        Per part, the first final receipt counts; later receipts for that part are ignored
        (duplicates), intermediate ones are recorded until a final one arrives. A recipient
        in flight, submitted or unknown becomes DELIVERED when every part has a delivered
        receipt, and FAILED, EXPIRED or UNKNOWN as soon as one part has such a receipt (the
        first of those wins). FINAL recipients never change.
        """
        if not rows:
            return []
        with self._transaction():
            unmatched = self._apply_receipts(rows)
        return unmatched

    def _apply_receipts(self, rows: Sequence[ReceiptRow]) -> list[ReceiptRow]:
        conn = self._conn
        owner: dict[str, int] = {}  # key -> recipient id
        current: dict[str, PartReceipt] = {}  # key -> the part's receipt so far
        recipients: dict[int, tuple[int, int, int, str, int]] = {}
        for key, rid, receipt, receipt_at, cid, state, delivered, n_parts, route in conn.execute(
            "SELECT m.key, m.recipient, m.receipt, m.receipt_at, r.campaign, r.state, "
            "r.delivered, r.parts, ifnull(r.route, '') FROM message_ids AS m "
            "JOIN recipients AS r ON r.id = m.recipient "
            "WHERE m.key IN (SELECT value FROM json_each(?))",
            (_json(map(_FIRST, rows)),),
        ):
            owner[key] = rid
            current[key] = (receipt, receipt_at)
            recipients[rid] = (state, delivered, n_parts, route, cid)
        unmatched: list[ReceiptRow] = []
        by_recipient: defaultdict[int, list[KeyedReceipt]] = defaultdict(list)
        for row in rows:
            rid = owner.get(row[0])
            if rid is None:
                unmatched.append(row)
            else:
                by_recipient[rid].append((row[0], row[1], row[3]))
        before = dict(current)
        updates = []
        deltas: dict[int, Deltas] = defaultdict(lambda: defaultdict(int))
        for rid, receipts in by_recipient.items():
            state, delivered, n_parts, route, cid = recipients[rid]
            new, delivered, at = _fold_receipts(state, delivered, n_parts, receipts, current)
            if at:
                updates.append((new, delivered, at, rid))
                if new != state:
                    deltas[cid][route, state] -= 1
                    deltas[cid][route, new] += 1
        part_updates = [(key, *got) for key, got in current.items() if got is not before[key]]
        if not part_updates:
            return unmatched
        conn.executemany(
            "UPDATE message_ids SET receipt = ?2, receipt_at = ?3 WHERE key = ?1", part_updates
        )
        conn.executemany(
            "UPDATE recipients SET state = ?, delivered = ?, updated_at = ? WHERE id = ?", updates
        )
        for cid, campaign_deltas in deltas.items():
            self._tally(cid, campaign_deltas)
        return unmatched

    def park_unmatched(self, rows: Sequence[ReceiptRow]) -> None:
        """Persist receipts that found no message id, for :meth:`match_parked` and for
        :meth:`record_outcomes` to match later. Beyond ``max_parked`` the oldest are dropped
        (counted in the report as ``overflow``)."""
        if not rows:
            return
        conn = self._conn
        with self._transaction():
            conn.executemany(
                "INSERT INTO unmatched_receipts (key, state, raw_id, received_at) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )
            parked = self._parked + len(rows)
            excess = parked - self.max_parked
            if excess > 0:
                conn.execute(
                    "DELETE FROM unmatched_receipts WHERE id IN "
                    "(SELECT id FROM unmatched_receipts ORDER BY id LIMIT ?)",
                    (excess,),
                )
                self._bump_meta("receipts_overflow", excess)
                parked -= excess
        self._parked = parked

    def match_parked(self, now: float | None = None) -> int:
        """Retry every parked receipt; drop those older than ``receipt_max_age`` (counted in
        the report as ``expired``). Returns how many matched. Cheap when nothing is parked."""
        if not self._parked:
            return 0
        conn = self._conn
        cutoff = (self._clock() if now is None else now) - self.receipt_max_age
        with self._transaction():
            matched = self._match_parked_keys(None)
            expired = conn.execute(
                "DELETE FROM unmatched_receipts WHERE received_at < ?", (cutoff,)
            ).rowcount
            self._bump_meta("receipts_expired", expired)
            parked = conn.execute("SELECT count(*) FROM unmatched_receipts").fetchone()[0]
        self._parked = parked
        return matched

    def _match_parked_keys(self, keys_json: str | None) -> int:
        """Apply and delete parked receipts whose key is now known (all keys, or those in the
        JSON array). Inside the caller's transaction. Returns how many matched."""
        conn = self._conn
        if keys_json is None:
            found = conn.execute(
                "SELECT u.id, u.key, u.state, u.raw_id, u.received_at FROM unmatched_receipts u "
                "WHERE EXISTS (SELECT 1 FROM message_ids m WHERE m.key = u.key) ORDER BY u.id"
            ).fetchall()
        else:
            found = conn.execute(
                "SELECT id, key, state, raw_id, received_at FROM unmatched_receipts "
                "WHERE key IN (SELECT value FROM json_each(?)) ORDER BY id",
                (keys_json,),
            ).fetchall()
        if not found:
            return 0
        self._apply_receipts([ReceiptRow(*row[1:]) for row in found])
        conn.execute(
            "DELETE FROM unmatched_receipts WHERE id IN (SELECT value FROM json_each(?))",
            (_json(row[0] for row in found),),
        )
        return len(found)

    # ------------------------------------------------------------------ queries and marks
    def pending(
        self, campaign: str, route: str | None, limit: int, after: int = 0
    ) -> list[PendingRow]:
        """PENDING recipients of ``route`` (``None`` or ``''``: those without a route), oldest
        first (claim order), from the row after id ``after`` on (paging)."""
        cid, _ = self._campaign(campaign)
        route_sql = "route = ?" if route else "route IS NULL"
        args: tuple[Any, ...] = (route, int(after), limit) if route else (int(after), limit)
        rows = self._conn.execute(
            f"SELECT msisdn, route, parts, text, id FROM recipients WHERE campaign = {cid} "
            f"AND {route_sql} AND state = 0 AND id > ? ORDER BY id LIMIT ?",
            args,
        )
        return [PendingRow(*row) for row in rows]

    def pending_by_route(self, campaign: str) -> dict[str, int]:
        """PENDING recipients per route ('' for none), from the tallies: O(routes)."""
        cid, _ = self._campaign(campaign)
        rows = self._conn.execute(
            "SELECT route, n FROM tallies WHERE campaign = ? AND state = ? AND n != 0",
            (cid, _PENDING),
        )
        return {route: int(n) for route, n in rows}

    def in_flight(self, campaign: str, limit: int, after: str = "") -> list[str]:
        """Up to ``limit`` IN_FLIGHT numbers greater than ``after``, in order.

        At startup these are the recipients whose outcome a crash lost. One pass over the
        campaign's rows per call (sequential, ~0.1 us a row), so page with a large limit.
        """
        cid, first_id = self._campaign(campaign)
        rows = self._conn.execute(
            f"SELECT msisdn FROM recipients WHERE id >= {first_id} AND +campaign = {cid} "
            f"AND state = {_IN_FLIGHT} AND msisdn > ? ORDER BY msisdn LIMIT ?",
            (after, limit),
        )
        return [m for (m,) in rows]

    def mark(
        self,
        campaign: str,
        msisdns: Sequence[str],
        state: State,
        error: str = "",
        only_from: State | None = None,
    ) -> int:
        """Set ``state`` (and ``error`` when given) on these recipients, whatever their state,
        or only on those in ``only_from``. Returns how many rows changed."""
        if not msisdns:
            return 0
        cid, _ = self._campaign(campaign)
        code = _CODE[State(state)]
        conn = self._conn
        flight = self._flight.get(cid)
        with self._transaction():
            found = self._rows(cid, msisdns)
            deltas: Deltas = defaultdict(int)
            ids = []
            changed = []
            for msisdn, (rid, old, route, _, _) in found.items():
                if only_from is not None and old != _CODE[only_from]:
                    continue
                ids.append(rid)
                changed.append(msisdn)
                deltas[route, old] -= 1
                deltas[route, code] += 1
            conn.execute(
                f"UPDATE recipients SET state = {code}, updated_at = ?, "
                "error = CASE WHEN ? = '' THEN error ELSE ? END "
                "WHERE id IN (SELECT value FROM json_each(?))",
                (self._clock(), error, error, _json(ids)),
            )
            self._tally(cid, deltas)
        if flight:
            settled = code >= _FIRST_FINAL
            for msisdn in changed:
                hit = flight.get(msisdn)
                if hit is not None:
                    if settled:
                        del flight[msisdn]
                    else:
                        hit[1] = code
        return len(ids)

    def counts(self, campaign: str) -> dict[str, int]:
        """Recipients per state (every state, zeros included), from the tallies: O(routes)."""
        cid, _ = self._campaign(campaign)
        counts = dict.fromkeys((s.value for s in State), 0)
        for code, n in self._conn.execute(
            "SELECT state, sum(n) FROM tallies WHERE campaign = ? GROUP BY state", (cid,)
        ):
            counts[_STATE_OF[code].value] = int(n)
        return counts

    def counts_by_route(self, campaign: str) -> dict[str, dict[str, int]]:
        """Recipients per route ('' for none) and state (non-zero only), from the tallies."""
        cid, _ = self._campaign(campaign)
        found: dict[str, dict[str, int]] = {}
        for route, code, n in self._conn.execute(
            "SELECT route, state, n FROM tallies WHERE campaign = ? AND n != 0", (cid,)
        ):
            found.setdefault(route, {})[_STATE_OF[code].value] = int(n)
        return found

    def recount(self, campaign: str) -> dict[str, int]:
        """Recipients per state counted from the rows themselves (a full pass): a check on
        the tallies, which :meth:`counts` reads. The two agree unless the file was edited."""
        cid, first_id = self._campaign(campaign)
        # One aggregate row, no GROUP BY: a GROUP BY would sort every row (memory, time).
        sums = ", ".join(f"ifnull(sum(state = {code}), 0)" for code in range(len(_STATE_OF)))
        row = self._conn.execute(
            f"SELECT {sums} FROM recipients WHERE id >= {first_id} AND +campaign = {cid}"
        ).fetchone()
        return {state.value: int(n) for state, n in zip(_STATE_OF, row, strict=True)}

    def report(self, campaign: str, unknown_cap: int = 1000) -> dict[str, Any]:
        """The campaign's final account, JSON-ready.

        Keys: campaign, control, created_at, pruned_at (``None``, or when ``smsblast prune``
        deleted the rows: then statuses, receipts and the unknown numbers are empty, and
        the counts are what they were), snapshot, total, states {state: n},
        by_route {route ('' none): {state: n}}, statuses {ESME_x: recipients},
        receipts {receipt state or 'none': parts}, unknown {count, msisdns (first
        ``unknown_cap``)}, unmatched_receipts {parked, expired, overflow} (ledger-wide).
        One pass over the campaign's rows and over ``message_ids``.
        """
        cid, first_id = self._campaign(campaign)
        info = self.campaign_info(campaign)
        assert info is not None
        conn = self._conn
        by_route: dict[str, dict[str, int]] = {}
        for route, code, n in conn.execute(
            "SELECT route, state, n FROM tallies WHERE campaign = ? AND n != 0", (cid,)
        ):
            by_route.setdefault(route, {})[_STATE_OF[code].value] = int(n)
        states = self.counts(campaign)
        statuses = {
            status_name(status): int(n)
            for status, n in conn.execute(
                f"SELECT status, count(*) FROM recipients WHERE id >= {first_id} "
                f"AND +campaign = {cid} AND status IS NOT NULL GROUP BY status"
            )
        }
        receipts = {
            receipt or "none": int(n)
            for receipt, n in conn.execute(
                "SELECT receipt, count(*) FROM message_ids WHERE campaign = ? GROUP BY receipt",
                (cid,),
            )
        }
        unknown = [
            m
            for (m,) in conn.execute(
                f"SELECT msisdn FROM recipients WHERE id >= {first_id} AND +campaign = {cid} "
                f"AND state = {_UNKNOWN} ORDER BY id LIMIT ?",
                (unknown_cap,),
            )
        ]
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        return {
            "campaign": info.name,
            "control": info.control,
            "created_at": info.created_at,
            "pruned_at": info.pruned_at,
            "snapshot": info.snapshot,
            "total": sum(states.values()),
            "states": states,
            "by_route": by_route,
            "statuses": statuses,
            "receipts": receipts,
            "unknown": {"count": states[State.UNKNOWN.value], "msisdns": unknown},
            "unmatched_receipts": {
                "parked": self._parked,
                "expired": int(meta.get("receipts_expired", 0)),
                "overflow": int(meta.get("receipts_overflow", 0)),
            },
        }

    def per_second(self, campaign: str) -> Timeline:
        """Parts submitted and receipts received per second (unix time, floored), per route,
        aggregated in SQL. Parts stored by a ledger older than schema 2 have no submit
        time and are not counted as submits."""
        cid, _ = self._campaign(campaign)
        series: list[dict[str, dict[int, int]]] = []
        for column in ("submit_at", "receipt_at"):
            found: dict[str, dict[int, int]] = {}
            for route, second, n in self._conn.execute(
                f"SELECT ifnull(r.route, ''), CAST(m.{column} AS INTEGER) AS s, count(*) "
                "FROM message_ids AS m JOIN recipients AS r ON r.id = m.recipient "
                f"WHERE m.campaign = ? AND m.{column} IS NOT NULL GROUP BY 1, s",
                (cid,),
            ):
                found.setdefault(route, {})[int(second)] = int(n)
            series.append(found)
        return Timeline(submits=series[0], receipts=series[1])

    # ------------------------------------------------------------------ retention
    def mark_pruned(self, campaign: str) -> float:
        """Mark the campaign pruned (once: the first time stands) and return when. From then
        on the engine never runs it again, so its numbers, about to leave the ledger, can
        never be claimed as new. Its counts (the tallies) stay."""
        self._campaign(campaign)
        with self._transaction():
            self._conn.execute(
                "UPDATE campaigns SET pruned_at = ifnull(pruned_at, ?) WHERE name = ?",
                (self._clock(), campaign),
            )
        info = self.campaign_info(campaign)
        assert info is not None and info.pruned_at is not None
        return info.pruned_at

    def recipient_rows(self, campaign: str) -> Iterable[tuple[Any, ...]]:
        """Every recipient row of the campaign in claim order, as (msisdn, route, state,
        parts, delivered, status, error, created_at, updated_at), read lazily."""
        cid, first_id = self._campaign(campaign)
        names = [state.value for state in _STATE_OF]
        for row in self._conn.execute(
            "SELECT msisdn, route, state, parts, delivered, status, error, created_at, "
            f"updated_at FROM recipients WHERE id >= {first_id} AND +campaign = {cid} "
            "ORDER BY id"
        ):
            yield (row[0], row[1], names[row[2]], *row[3:])

    def recipient_ids(self, campaign: str) -> tuple[int, int]:
        """(lowest, highest) row id the campaign's rows can have: its ``first_id``, and the
        last row of the ledger (later campaigns' rows above its own are skipped by the
        deletes, not touched)."""
        _, first_id = self._campaign(campaign)
        last = self._conn.execute("SELECT ifnull(max(id), 0) FROM recipients").fetchone()[0]
        return first_id, int(last)

    def delete_recipients(self, campaign: str, low: int, high: int) -> int:
        """Delete the campaign's recipient rows with ids in ``low..high``, and their numbers
        (one transaction); returns how many. By id ranges, so the table's pages are each
        rewritten once; the numbers tables take these rows in random order, so a wide range
        (hundreds of thousands of rows) rewrites each of their pages about once per range."""
        cid, _ = self._campaign(campaign)
        conn = self._conn
        with self._transaction():
            gone = {
                table: conn.execute(
                    f"DELETE FROM {table} WHERE campaign = {cid} AND msisdn IN (SELECT msisdn "
                    f"FROM recipients WHERE id BETWEEN ?1 AND ?2 AND +campaign = {cid})",
                    (low, high),
                ).rowcount
                for table in ("numbers", "numbers_recent")
            }
            deleted = conn.execute(
                f"DELETE FROM recipients WHERE id BETWEEN ? AND ? AND +campaign = {cid}",
                (low, high),
            ).rowcount
            self._after_commit.append(
                functools.partial(self._forget, cid, low, high, gone["numbers_recent"])
            )
        return int(deleted)

    def _forget(self, cid: int, low: int, high: int, from_recent: int) -> None:
        """Drop the numbers of deleted rows ``low..high`` from memory, and count the
        ``from_recent`` deleted from numbers_recent out of its level."""
        self._on_disk_recent -= from_recent
        recent = self._recent.get(cid)
        if recent:
            gone = [m for m, rid in recent.items() if low <= rid <= high]
            for msisdn in gone:
                del recent[msisdn]
            self._recent_n -= len(gone)

    def delete_message_ids(
        self, campaign: str, after: str | None, limit: int
    ) -> tuple[int, str | None]:
        """Walk the next ``limit`` keys of ``message_ids`` (the whole table, in key order:
        it has no index by campaign) after ``after`` and delete the campaign's among them,
        in one transaction. Returns (rows deleted, the key to pass as ``after`` next, or
        ``None`` once the walk reached the end)."""
        cid, _ = self._campaign(campaign)
        conn = self._conn
        with self._transaction():
            where, args = ("", (limit,)) if after is None else ("WHERE key > ? ", (after, limit))
            keys = [
                k
                for (k,) in conn.execute(
                    f"SELECT key FROM message_ids {where}ORDER BY key LIMIT ?", args
                )
            ]
            deleted = 0
            if keys:
                deleted = conn.execute(
                    f"DELETE FROM message_ids WHERE key >= ? AND key <= ? AND campaign = {cid}",
                    (keys[0], keys[-1]),
                ).rowcount
        return deleted, keys[-1] if len(keys) == limit else None

    def space(self) -> tuple[int, int]:
        """(the file's size in bytes, of which free pages: reused before the file grows)."""
        conn = self._conn
        page = int(conn.execute("PRAGMA page_size").fetchone()[0])
        pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
        free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        return pages * page, free * page

    def vacuum(self) -> None:
        """Rewrite the file without its free pages (VACUUM: needs free disk as large as the
        file), then empty the WAL."""
        self._conn.execute("VACUUM")
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Close the connection (a clean close checkpoints and removes the WAL file)."""
        self._conn.close()


def _campaign_info(row: tuple[Any, ...]) -> CampaignInfo:
    name, snapshot, control, created_at, pruned_at = row
    return CampaignInfo(
        name,
        {k: int(v) for k, v in json.loads(snapshot).items()},
        control,
        float(created_at),
        None if pruned_at is None else float(pruned_at),
    )


class LedgerBackend(Protocol):
    """Where :class:`AsyncLedger` runs its ledger: ``call`` runs one Ledger method by name.
    Calls run one at a time, in the order made."""

    async def call(self, name: str, args: tuple[Any, ...]) -> Any: ...
    async def close(self) -> None: ...
    def failure(self) -> asyncio.Future[LedgerError] | None: ...


class ThreadBackend:
    """A :class:`Ledger` made by ``factory`` on one dedicated worker thread (SQLite
    connections stay on the thread that made them). An error opening it is raised by every
    call. Arguments cross to the thread as they are."""

    def __init__(self, factory: Callable[[], Ledger]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
        self._ledger: Ledger | None = None
        self._open_error: BaseException | None = None
        self._executor.submit(self._open, factory)

    def _open(self, factory: Callable[[], Ledger]) -> None:
        try:
            self._ledger = factory()
        except BaseException as exc:
            self._open_error = exc

    def _on_thread(self, name: str, args: tuple[Any, ...]) -> Any:
        if self._ledger is None:
            raise open_failed(self._open_error)
        return getattr(self._ledger, name)(*args)

    async def call(self, name: str, args: tuple[Any, ...]) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._on_thread, name, args)

    def failure(self) -> asyncio.Future[LedgerError] | None:
        return None  # a thread does not die on its own

    async def close(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        finally:
            self._executor.shutdown(wait=False)

    def _close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None


class AsyncLedger:
    """A :class:`Ledger` for use from an event loop.

    ``AsyncLedger(path)`` runs a :class:`SqliteLedger` on a worker thread
    (:class:`ThreadBackend`); with ``process=True`` it runs in a child process instead
    (:class:`~smsblast.ledger_process.ProcessBackend`; the engine's default, see that module
    for why), which needs a running event loop. Pass ``factory`` for another implementation
    on the thread. Calls run one at a time, in the order made; an error opening the ledger is
    raised by every call. Do not mutate a batch while its call is pending.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        factory: Callable[[], Ledger] | None = None,
        process: bool = False,
        **options: Any,
    ) -> None:
        """``options``: :class:`SqliteLedger`'s keyword arguments, for a ledger on a path."""
        self._closed = False
        self._backend: LedgerBackend
        if factory is None and path is None:
            raise TypeError("AsyncLedger needs a path or a factory")
        if factory is None and process:
            from smsblast.ledger_process import ProcessBackend  # it imports this module

            self._backend = ProcessBackend(os.fspath(path or ""), **options)
        else:
            self._backend = ThreadBackend(
                factory or functools.partial(SqliteLedger, path or "", **options)
            )

    def failure(self) -> asyncio.Future[LedgerError] | None:
        """A future that gets the error if the ledger stops serving on its own (its process
        died), or None where it cannot (a thread). The engine stops when it does."""
        return self._backend.failure()

    async def _call(self, name: str, *args: Any) -> Any:
        if self._closed:
            raise LedgerError("the ledger is closed")
        return await self._backend.call(name, args)

    async def open_campaign(self, campaign: str, snapshot: dict[str, int] | None) -> CampaignInfo:
        return cast("CampaignInfo", await self._call("open_campaign", campaign, snapshot))

    async def control(self, campaign: str) -> str | None:
        return cast("str | None", await self._call("control", campaign))

    async def set_control(self, campaign: str, control: str, before_open: bool = False) -> None:
        await self._call("set_control", campaign, control, before_open)

    async def claim(
        self, campaign: str, claims: Sequence[Claim], state: State, in_flight: int = 0
    ) -> list[State | None]:
        return cast(
            "list[State | None]", await self._call("claim", campaign, claims, state, in_flight)
        )

    async def record_rejects(self, campaign: str, rows: Sequence[tuple[str, State, str]]) -> None:
        await self._call("record_rejects", campaign, rows)

    async def record_outcomes(self, campaign: str, rows: Sequence[Outcome]) -> None:
        await self._call("record_outcomes", campaign, rows)

    async def record_receipts(self, rows: Sequence[ReceiptRow]) -> list[ReceiptRow]:
        return cast("list[ReceiptRow]", await self._call("record_receipts", rows))

    async def park_unmatched(self, rows: Sequence[ReceiptRow]) -> None:
        await self._call("park_unmatched", rows)

    async def match_parked(self, now: float | None = None) -> int:
        return cast("int", await self._call("match_parked", now))

    async def pending(
        self, campaign: str, route: str | None, limit: int, after: int = 0
    ) -> list[PendingRow]:
        return cast("list[PendingRow]", await self._call("pending", campaign, route, limit, after))

    async def pending_by_route(self, campaign: str) -> dict[str, int]:
        return cast("dict[str, int]", await self._call("pending_by_route", campaign))

    async def in_flight(self, campaign: str, limit: int, after: str = "") -> list[str]:
        return cast("list[str]", await self._call("in_flight", campaign, limit, after))

    async def mark(
        self,
        campaign: str,
        msisdns: Sequence[str],
        state: State,
        error: str = "",
        only_from: State | None = None,
    ) -> int:
        return cast("int", await self._call("mark", campaign, msisdns, state, error, only_from))

    async def counts(self, campaign: str) -> dict[str, int]:
        return cast("dict[str, int]", await self._call("counts", campaign))

    async def counts_by_route(self, campaign: str) -> dict[str, dict[str, int]]:
        return cast("dict[str, dict[str, int]]", await self._call("counts_by_route", campaign))

    async def report(self, campaign: str, unknown_cap: int = 1000) -> dict[str, Any]:
        return cast("dict[str, Any]", await self._call("report", campaign, unknown_cap))

    async def campaign_info(self, campaign: str) -> CampaignInfo | None:
        return cast("CampaignInfo | None", await self._call("campaign_info", campaign))

    async def campaigns(self) -> list[CampaignInfo]:
        return cast("list[CampaignInfo]", await self._call("campaigns"))

    async def close(self) -> None:
        """Close the ledger (its last transaction is on disk when this returns). Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._backend.close()
