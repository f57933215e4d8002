"""Throughput and cost of the ledger: claim -> record_outcomes -> record_receipts.

N recipients (default 1M) go through the three write paths in batches (default 2,000), one
part each with a message id and a delivered receipt, on a fresh SQLite file. Two orders:

* ``phased``: all claims, then all outcomes, then all receipts (each phase timed alone);
* ``pipelined`` (default also runs it): what the engine does, batch k claimed while batch
  k-1's outcomes and batch k-LAG's receipts are recorded, each call its own transaction.

Numbers are rows/s per phase while inside ledger calls, ledger CPU in seconds per 1M
recipients (process CPU inside the calls: SQLite and the ledger's Python), DB size, and the
process's peak RSS. Numbers are generated per batch from the index (a bijection onto
10^9 national numbers, so they come in random order, the worst case for the index), so the
benchmark itself holds nothing per recipient and peak RSS is the ledger's.

    python -m loadtest.ledger_bench [-n 1000000] [--batch 2000] [--order both]
        [--sorted] [--random-ids] [--dir /tmp] [--checkpoint-every SECONDS] [--cache-mb 64]

``--checkpoint-every`` runs the engine's background checkpointer (smsblast.checkpointer)
beside the ledger, as the ledger process does; the CPU figures then include its thread.

Numbers vary with the machine and its load; nothing here gates CI.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from smsblast.checkpointer import Checkpointer
from smsblast.ledger import Claim, Outcome, ReceiptRow, SqliteLedger, State

_SPREAD = 387_420_489  # 3**18: odd and not a multiple of 5, so i -> i*_SPREAD mod 10**9 is 1:1
_CAMPAIGN = "bench"


def msisdn(i: int, ordered: bool) -> str:
    n = i if ordered else (i * _SPREAD) % 1_000_000_000
    return f"628{n:010d}"


def message_key(i: int, random_ids: bool) -> str:
    if random_ids:
        return hashlib.blake2b(i.to_bytes(8, "big"), digest_size=8).hexdigest()
    return f"{0x10000000 + i:x}"  # sequential, as most SMSCs issue them


@dataclass
class Phase:
    rows: int = 0
    cpu: float = 0.0
    wall: float = 0.0

    def line(self, name: str) -> str:
        rate = self.rows / self.wall if self.wall else 0.0
        per_m = self.cpu / self.rows * 1e6 if self.rows else 0.0
        return (
            f"  {name:<10} {self.rows:>10,} rows  {rate:>10,.0f} rows/s  "
            f"{per_m:>6.1f} CPU s per 1M  ({per_m:.1f} us/row)"
        )


@dataclass
class Bench:
    ledger: SqliteLedger
    batch: int
    ordered: bool
    random_ids: bool
    phases: dict[str, Phase] = field(default_factory=dict)

    def timed(self, name: str, rows: int, call: Callable[[], object]) -> None:
        phase = self.phases.setdefault(name, Phase())
        cpu, wall = time.process_time(), time.perf_counter()
        call()
        phase.cpu += time.process_time() - cpu
        phase.wall += time.perf_counter() - wall
        phase.rows += rows

    def claims(self, k: int) -> list[Claim]:
        first = k * self.batch
        return [
            Claim(msisdn(i, self.ordered), "tsel", 1, "bench.segments", 0, i)
            for i in range(first, first + self.batch)
        ]

    def outcomes(self, k: int) -> list[Outcome]:
        first = k * self.batch
        out = []
        for i in range(first, first + self.batch):
            key = message_key(i, self.random_ids)
            out.append(Outcome(msisdn(i, self.ordered), State.SUBMITTED, 0, "", ((1, key, key),)))
        return out

    def receipts(self, k: int) -> list[ReceiptRow]:
        first = k * self.batch
        now = time.time()
        rows = []
        for i in range(first, first + self.batch):
            key = message_key(i, self.random_ids)
            rows.append(ReceiptRow(key, "delivered", key, now))
        return rows

    def claim(self, k: int) -> None:
        claims = self.claims(k)
        self.timed(
            "claim", len(claims), lambda: self.ledger.claim(_CAMPAIGN, claims, State.IN_FLIGHT)
        )

    def outcome(self, k: int) -> None:
        rows = self.outcomes(k)
        self.timed("outcome", len(rows), lambda: self.ledger.record_outcomes(_CAMPAIGN, rows))

    def receipt(self, k: int) -> None:
        rows = self.receipts(k)
        unmatched: list[ReceiptRow] = []
        self.timed(
            "receipt", len(rows), lambda: unmatched.extend(self.ledger.record_receipts(rows))
        )
        if unmatched:
            raise SystemExit(f"{len(unmatched)} receipts did not match")

    def replay(self, k: int) -> None:
        claims = self.claims(k)
        seen: list[State | None] = []
        self.timed(
            "replay",
            len(claims),
            lambda: seen.extend(self.ledger.claim(_CAMPAIGN, claims, State.IN_FLIGHT)),
        )
        if any(s is None for s in seen):
            raise SystemExit("a replayed claim was taken as new")


def run(
    order: str,
    n: int,
    batch: int,
    ordered: bool,
    random_ids: bool,
    folder: str,
    checkpoint_every: float | None = None,
    cache_mb: int = 64,
) -> None:
    path = os.path.join(folder, f"ledger-bench-{order}-{os.getpid()}.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    ledger = SqliteLedger(path, cache_mb=cache_mb)
    checkpointer = None if checkpoint_every is None else Checkpointer(path, checkpoint_every)
    if checkpointer is not None:
        checkpointer.start()
    ledger.open_campaign(_CAMPAIGN, {"bench.segments:0": n})
    bench = Bench(ledger, batch, ordered, random_ids)
    batches = n // batch
    lag = 5
    cpu, wall = time.process_time(), time.perf_counter()
    if order == "phased":
        for step in (bench.claim, bench.outcome, bench.receipt):
            for k in range(batches):
                step(k)
    else:
        for k in range(batches + lag):
            if k < batches:
                bench.claim(k)
            if 0 <= k - 1 < batches:
                bench.outcome(k - 1)
            if 0 <= k - lag < batches:
                bench.receipt(k - lag)
    total_cpu, total_wall = time.process_time() - cpu, time.perf_counter() - wall
    for k in range(min(batches, max(1, 100_000 // batch))):  # a restart re-reading 100k
        bench.replay(k)
    counts = ledger.counts(_CAMPAIGN)
    recount_start = time.perf_counter()
    recount = ledger.recount(_CAMPAIGN)
    recount_s = time.perf_counter() - recount_start
    size = sum(os.path.getsize(path + s) for s in ("", "-wal", "-shm") if os.path.exists(path + s))
    if checkpointer is not None:
        checkpointer.stop()
    ledger.close()
    rows = batches * batch
    recipients = sum(p.cpu for name, p in bench.phases.items() if name != "replay")
    print(
        f"{order}: {rows:,} recipients, batch {batch}, "
        f"{'sorted' if ordered else 'random'} numbers, "
        f"{'random' if random_ids else 'sequential'} message ids, {cache_mb} MB page cache"
        + ("" if checkpoint_every is None else f", checkpoints every {checkpoint_every} s")
    )
    for name, phase in bench.phases.items():
        print(phase.line(name))
    print(
        f"  ledger CPU per recipient (claim+outcome+receipt): {recipients / rows * 1e6:.1f} us"
        f" = {recipients / rows * 1e6:.1f} CPU s per 1M"
        f"; at 25,000/s: {recipients / rows * 25_000:.0%} of a core"
    )
    print(f"  whole run incl. building rows: {total_cpu:.1f} CPU s, {total_wall:.1f} s wall")
    print(f"  DB size {size / 1e6:,.0f} MB ({size / rows:.0f} B/recipient)")
    print(
        f"  full recount {recount_s:.2f} s; counts {dict((k, v) for k, v in counts.items() if v)}"
    )
    if counts != recount or counts["delivered"] != rows:
        raise SystemExit(f"inconsistent counts: tallies {counts} rows {recount}")
    os.remove(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1_000_000, help="recipients")
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--order", choices=("phased", "pipelined", "both"), default="both")
    parser.add_argument("--sorted", action="store_true", help="numbers in ascending order")
    parser.add_argument("--random-ids", action="store_true", help="random message ids")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the DB file goes")
    parser.add_argument(
        "--checkpoint-every", type=float, default=None, help="background checkpoints (s)"
    )
    parser.add_argument(
        "--cache-mb", type=int, default=64, help="SQLite page cache (the ledger's default: 64)"
    )
    args = parser.parse_args(argv)
    os.makedirs(args.dir, exist_ok=True)
    orders = ("phased", "pipelined") if args.order == "both" else (args.order,)
    for order in orders:
        run(
            order,
            args.n,
            args.batch,
            args.sorted,
            args.random_ids,
            args.dir,
            args.checkpoint_every,
            args.cache_mb,
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MB (SQLite page cache capped at {args.cache_mb} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
