"""`smsblast prune CAMPAIGN ...`: delete finished campaigns' per-recipient rows from the ledger.

Why: the ledger keeps a row for every recipient and one for every part sent, about 3.1 GB for
a wave of 17 million recipients (3,118.7 MB measured in a 17M benchmark run). Wave after wave
the disk fills, and a full disk stops a blast in the middle of one. Pruning a finished wave
frees its pages inside the ledger file. SQLite fills free pages before it grows a file, so
the next wave goes into the space the pruned one left. The file itself does not shrink:
``--vacuum`` rewrites it smaller, which takes time and free disk as large as the ledger.

What stays: the campaign's row, marked pruned, and its counts per route and state, so
``smsblast report`` still prints them. A pruned campaign is over for good: the engine never
runs it again, since its numbers are no longer in the ledger to stop a second message to
anyone. Without that, a consumer group whose offsets were reset (or expired: Kafka drops a
group's offsets after ``offsets.retention.minutes``) would read the segment again from the
start, and every number would look new.

Safety:

* it takes the ledger's lock (:mod:`smsblast.ledger_lock`): never under a running engine, and
  no engine starts while it deletes;
* it refuses a campaign with recipients still pending (unless an operator cancelled it) or in
  flight at a crash (the engine's next run settles those by ``on_unknown``); ``--force``
  prunes anyway;
* ``--archive FILE`` first writes every recipient's final state to a CSV (gzip when FILE ends
  in ``.gz``), flushed to disk before anything is deleted; ``--no-archive`` says nobody needs
  it. One of the two is required;
* it deletes in a few large transactions (:data:`MIN_BATCH`), so the WAL stays bounded and a
  prune that was interrupted goes on where it stopped when run again.

Exit status: 0 pruned; 2 nothing deleted: a configuration error, an unknown campaign, the
ledger in use, a campaign not finished, an archive that could not be written; 3 SQLite
failed midway (a full disk: deleting needs a little room for the WAL): run it again.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from smsblast.config import ConfigError, load_engine_config
from smsblast.ledger import Control, SqliteLedger
from smsblast.ledger_lock import LedgerLock
from smsblast.smpp.constants import status_name

__all__ = [
    "ARCHIVE_COLUMNS",
    "PruneResult",
    "add_parser",
    "prune_campaign",
    "prune_main",
    "prune_refusal",
    "write_archive",
]

EXIT_OK, EXIT_REFUSED, EXIT_LEDGER = 0, 2, 3

DESCRIPTION = """\
Delete finished campaigns' (waves') per-recipient rows from the ledger, so that the disk
does not fill wave after wave (about 3.1 GB for a 17M wave). The space goes to the next
waves (--vacuum gives it back to the filesystem). The counts per route and state stay, and
`smsblast report` prints them. A pruned campaign is never sent again: give it a new name to
send the same message again.

Refused, with nothing deleted: campaigns with recipients still pending (unless cancelled) or
in flight at a crash (--force overrides), unknown campaigns, a ledger an engine is running
on. Interrupted, run it again: it goes on where it stopped. docs/operations.md, "Disk: prune
finished waves".

Exit status: 0 pruned; 2 refused, nothing deleted; 3 SQLite failed midway (a full disk):
run it again once there is room.
"""

#: Recipient rows are deleted by row id ranges, one transaction each, at least this wide,
#: and at most BATCHES of them per campaign. Each transaction rewrites (in the WAL, then in
#: the file) every page it touches, and a range's numbers sit at random places in the
#: ledger's numbers tables (keyed by campaign and msisdn), so narrow ranges rewrite the same
#: pages there over and over (measured with the unique index the tables replaced):
#: measured on a 2M-recipient wave, 50,000-row batches wrote 7.4 GB, 250,000-row ones 1.8 GB
#: and one transaction 0.4 GB. Wide ranges bound that, and the WAL still stays under about
#: a quarter of the campaign's size.
MIN_BATCH = 500_000
BATCHES = 8
#: message_ids rows are walked by key, this many keys a transaction (a key range is
#: contiguous in that table: each of its pages is rewritten once).
KEYS_BATCH = 100_000

ARCHIVE_COLUMNS = (
    "msisdn",
    "route",
    "state",
    "parts",
    "parts_delivered",
    "status",
    "error",
    "created_at",
    "updated_at",
)


def add_parser(sub: Any) -> None:
    """Register ``prune`` on the ``smsblast`` subcommands."""
    prune = sub.add_parser(
        "prune",
        help="delete finished campaigns' per-recipient rows from the ledger (keeps counts)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prune.add_argument("names", nargs="+", metavar="CAMPAIGN", help="campaigns (waves) to prune")
    keep = prune.add_mutually_exclusive_group(required=True)
    keep.add_argument(
        "--archive",
        metavar="FILE",
        help="first write every recipient's final state to FILE (CSV; gzip if it ends in .gz;"
        " with several campaigns, FILE gets the campaign's name: FILE-CAMPAIGN.csv...)",
    )
    keep.add_argument(
        "--no-archive", action="store_true", help="delete without keeping the per-recipient rows"
    )
    prune.add_argument(
        "--force",
        action="store_true",
        help="prune even with recipients pending or in flight at a crash (they stay counted "
        "as such and are never sent)",
    )
    prune.add_argument(
        "--vacuum",
        action="store_true",
        help="then rewrite the ledger file smaller (needs free disk as large as the ledger)",
    )
    prune.add_argument("--batch", type=int, default=0, help=argparse.SUPPRESS)  # ids, for tests
    prune.add_argument(
        "--config", help="engine config (default $SMSBLAST_CONFIG or config/smsblast.yaml)"
    )
    prune.set_defaults(func=prune_main)


# ---------------------------------------------------------------------------------- pure parts
def prune_refusal(counts: Mapping[str, int], control: str, force: bool) -> str | None:
    """Why a campaign with these counts (per state) and control may not be pruned, or
    ``None``."""
    if force:
        return None
    in_flight = counts.get("in_flight", 0)
    if in_flight:
        return (
            f"{in_flight:,} recipient(s) were in flight at a crash: run the engine once more so "
            "it settles them by on_unknown (or --force)"
        )
    pending = counts.get("pending", 0)
    if pending and control != Control.CANCELLED:
        return (
            f"{pending:,} recipient(s) are still pending: let the campaign finish, or cancel it "
            "(`smsblast ctl cancel`) to give them up (or --force)"
        )
    return None


def archive_path(archive: str, campaign: str, several: bool) -> str:
    """The archive file of ``campaign``: ``archive`` itself, or with several campaigns
    ``archive`` with ``-<campaign>`` before its suffixes (``a.csv.gz`` -> ``a-x.csv.gz``)."""
    if not several:
        return archive
    folder, name = os.path.split(archive)
    stem, dot, suffixes = name.partition(".")
    safe = campaign.replace("@", "-").replace(":", "")  # wave names hold '@' and times
    return os.path.join(folder, f"{stem}-{safe}{dot}{suffixes}")


def _iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def archive_row(row: tuple[Any, ...]) -> list[Any]:
    """One ``recipient_rows`` row as archive columns (status by name, times in ISO 8601 UTC)."""
    msisdn, route, state, parts, delivered, status, error, created, updated = row
    return [
        msisdn,
        route or "",
        state,
        parts,
        delivered,
        "" if status is None else status_name(status),
        error or "",
        _iso(created),
        _iso(updated),
    ]


# ---------------------------------------------------------------------------------- I/O
def write_archive(rows: Iterable[tuple[Any, ...]], path: str) -> int:
    """Write ``rows`` (``SqliteLedger.recipient_rows``) to ``path`` as CSV, gzip when it ends
    in ``.gz``; returns how many. Written to ``path.partial``, flushed to disk, then renamed:
    ``path`` exists only complete. Refuses (``FileExistsError``) to replace a file."""
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists: give the archive a new name")
    partial = f"{path}.partial"
    try:
        n = _write_csv(rows, partial, gzipped=path.endswith(".gz"))
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(partial)
        raise
    os.replace(partial, path)
    return n


def _write_csv(rows: Iterable[tuple[Any, ...]], path: str, gzipped: bool) -> int:
    if not gzipped:
        with open(path, "w", encoding="utf-8", newline="") as text:
            n = _write_rows(rows, text)
            text.flush()
            os.fsync(text.fileno())
        return n
    with open(path, "wb") as raw:
        with gzip.open(raw, "wt", encoding="utf-8", newline="") as packed:
            n = _write_rows(rows, packed)
        raw.flush()
        os.fsync(raw.fileno())
    return n


def _write_rows(rows: Iterable[tuple[Any, ...]], text: TextIO) -> int:
    writer = csv.writer(text)
    writer.writerow(ARCHIVE_COLUMNS)
    n = 0
    for row in rows:
        writer.writerow(archive_row(row))
        n += 1
    return n


@dataclass(frozen=True)
class PruneResult:
    recipients: int  # recipient rows deleted
    message_ids: int  # part rows deleted


def prune_campaign(
    ledger: SqliteLedger, campaign: str, batch: int, progress: Callable[[str], None]
) -> PruneResult:
    """Mark ``campaign`` pruned, then delete its rows batch by batch (checks and the archive
    come first: :func:`prune_main`)."""
    ledger.mark_pruned(campaign)
    low, high = ledger.recipient_ids(campaign)
    width = batch or max(MIN_BATCH, (high - low + 1) // BATCHES)
    recipients = 0
    next_note = 1_000_000
    for start in range(low, high + 1, width):
        recipients += ledger.delete_recipients(campaign, start, start + width - 1)
        if recipients >= next_note:
            progress(f"{campaign}: {recipients:,} recipient rows deleted")
            next_note = (recipients // 1_000_000 + 1) * 1_000_000
    parts = 0
    after_key: str | None = None
    while True:
        n, after_key = ledger.delete_message_ids(campaign, after_key, batch or KEYS_BATCH)
        parts += n
        if after_key is None:
            break
    return PruneResult(recipients, parts)


def _megabytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def prune_main(args: argparse.Namespace) -> int:
    from smsblast.engine.cli import ledger_path_problem

    def say(text: str) -> None:
        print(f"smsblast prune: {text}", file=sys.stderr)

    try:
        config = load_engine_config(args.config)
    except ConfigError as exc:
        say(f"configuration error:\n{exc}")
        return EXIT_REFUSED
    path = config.ledger.path
    problem = ledger_path_problem(path, create=False)
    if problem is not None:
        say(f"ledger.path: {problem}")
        return EXIT_REFUSED
    lock = LedgerLock(path, command="smsblast prune")
    refused = lock.try_acquire()
    if refused is not None:
        say(refused)
        return EXIT_REFUSED
    try:
        ledger = SqliteLedger(path)
        try:
            return _prune_locked(ledger, args, say)
        finally:
            ledger.close()
    except sqlite3.Error as exc:  # a full disk (deleting needs WAL space too), an I/O error
        say(
            f"the ledger failed: {type(exc).__name__}: {exc}. What was deleted stays deleted "
            "and the counts are intact; run the same prune again to finish it"
        )
        return EXIT_LEDGER
    finally:
        lock.release()


def _prune_locked(
    ledger: SqliteLedger, args: argparse.Namespace, say: Callable[[str], None]
) -> int:
    infos = {info.name: info for info in ledger.campaigns()}
    names = list(dict.fromkeys(args.names))
    refused = [f"no campaign {name!r} in {ledger.path}" for name in names if name not in infos]
    for name in names:
        info = infos.get(name)
        if info is None or info.pruned_at is not None:
            continue  # unknown (said above), or resuming a prune that was interrupted
        why = prune_refusal(ledger.counts(name), info.control, args.force)
        if why is not None:
            refused.append(f"{name}: {why}")
    if refused:
        say("nothing deleted:\n  " + "\n  ".join(refused))
        return EXIT_REFUSED
    for name in names:
        info = infos[name]
        if info.pruned_at is not None:
            print(f"{name}: finishing the prune begun {_iso(info.pruned_at)}")
        elif args.archive:
            target = archive_path(args.archive, name, len(names) > 1)
            try:
                written = write_archive(ledger.recipient_rows(name), target)
            except OSError as exc:
                say(f"{name}: the archive could not be written ({exc}); {name} is not pruned")
                return EXIT_REFUSED
            print(f"{name}: {written:,} recipient(s) archived to {target}")
        started = time.monotonic()
        result = prune_campaign(ledger, name, args.batch, print)
        print(
            f"{name}: pruned: {result.recipients:,} recipient rows and {result.message_ids:,} "
            f"message ids deleted in {time.monotonic() - started:.1f} s; its counts stay"
        )
    if args.vacuum:
        started = time.monotonic()
        ledger.vacuum()
        print(f"ledger vacuumed in {time.monotonic() - started:.1f} s")
    size, free = ledger.space()
    print(f"ledger {ledger.path}: {_megabytes(size)}, {_megabytes(free)} of it free for new rows")
    return EXIT_OK
