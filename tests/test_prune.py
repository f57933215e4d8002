"""`smsblast prune`: a finished wave's rows leave the ledger (archived first if asked), its
counts stay, its space goes to the next wave, and nothing unfinished or locked is touched."""

from __future__ import annotations

import contextlib
import csv
import gzip
import os
import sqlite3
from pathlib import Path

import pytest
import yaml

from smsblast.cli import main
from smsblast.ledger import Claim, Outcome, ReceiptRow, SqliteLedger, State
from smsblast.ledger_lock import LedgerInUse, LedgerLock
from smsblast.metrics import REGISTRY, watch_ledger_disk
from smsblast.prune import archive_path, prune_refusal
from tests.conftest import small_disk
from tests.engine_process import ROUTES
from tests.engine_stack import engine_config

SIZE = 300  # recipients per wave


def number(wave: int, n: int) -> str:
    return f"628{wave}1{n:07d}"


def fill(ledger: SqliteLedger, wave: int, size: int = SIZE, settle: bool = True) -> None:
    """Wave ``wave``: ``size`` recipients claimed IN_FLIGHT; with ``settle`` every third
    submitted in 2 parts with receipts for both, every third failed, every third unknown."""
    name = f"wave-{wave}"
    ledger.open_campaign(name, {"t:0": size})
    claims = [
        Claim(number(wave, n), "telkomsel", 2 if n % 3 == 0 else 1, "t", 0, n) for n in range(size)
    ]
    ledger.claim(name, claims, State.IN_FLIGHT)
    if not settle:
        return
    outcomes = []
    for n in range(size):
        if n % 3 == 0:
            ids = ((1, f"{wave}A{n}", f"{wave}a{n}"), (2, f"{wave}B{n}", f"{wave}b{n}"))
            outcomes.append(Outcome(number(wave, n), State.SUBMITTED, 0, "", ids))
        elif n % 3 == 1:
            outcomes.append(Outcome(number(wave, n), State.FAILED, 0x0B, "ESME_RINVDSTADR"))
        else:
            outcomes.append(Outcome(number(wave, n), State.UNKNOWN, None, "connection lost"))
    ledger.record_outcomes(name, outcomes)
    receipts = [
        ReceiptRow(f"{wave}{p}{n}", "delivered", f"{wave}{p.upper()}{n}", 1.0e9)
        for n in range(0, size, 3)
        for p in "ab"
    ]
    assert ledger.record_receipts(receipts) == []


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite"


@pytest.fixture
def config(tmp_path: Path, ledger_path: Path) -> Path:
    cfg = engine_config("127.0.0.1:9", 9, ROUTES, str(ledger_path))
    path = tmp_path / "smsblast.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return path


def rows(ledger_path: Path, wave: str) -> tuple[int, int]:
    """(recipient rows, message id rows) of ``wave`` in the file (closed: its WAL is
    checkpointed), read without the -shm file SQLite cannot create on a full disk."""
    with sqlite3.connect(f"file:{ledger_path}?immutable=1", uri=True) as conn:
        cid = conn.execute("SELECT id FROM campaigns WHERE name = ?", (wave,)).fetchone()[0]
        found = [
            conn.execute(f"SELECT count(*) FROM {table} WHERE campaign = ?", (cid,)).fetchone()[0]
            for table in ("recipients", "message_ids")
        ]
    return found[0], found[1]


def prune(config: Path, *args: str) -> int:
    return main(["prune", *args, "--config", str(config)])


def test_prune_archives_then_deletes_one_wave_and_keeps_its_counts(
    ledger_path: Path, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = SqliteLedger(ledger_path)
    fill(ledger, 1)
    fill(ledger, 2)
    counts = ledger.counts("wave-1")
    stored = {row[0]: row[2] for row in ledger.recipient_rows("wave-1")}
    ledger.close()
    archive = tmp_path / "wave-1.csv.gz"

    assert prune(config, "wave-1", "--archive", str(archive), "--batch", "64") == 0

    out = capsys.readouterr().out
    assert f"wave-1: {SIZE} recipient(s) archived to {archive}" in out
    assert f"wave-1: pruned: {SIZE} recipient rows and {2 * (SIZE // 3)} message ids" in out
    with gzip.open(archive, "rt", newline="") as f:
        archived = list(csv.DictReader(f))
    assert {r["msisdn"]: r["state"] for r in archived} == stored
    assert {r["state"] for r in archived} == {"delivered", "failed", "unknown"}
    failed = next(r for r in archived if r["state"] == "failed")
    assert failed["status"] == "ESME_RINVDSTADR" and failed["route"] == "telkomsel"
    assert rows(ledger_path, "wave-1") == (0, 0)
    assert rows(ledger_path, "wave-2") == (SIZE, 2 * (SIZE // 3))

    ledger = SqliteLedger(ledger_path)
    try:
        assert ledger.counts("wave-1") == counts  # the counts stay
        report = ledger.report("wave-1")
        assert report["pruned_at"] is not None and report["total"] == SIZE
        assert report["receipts"] == {} and report["unknown"]["msisdns"] == []
        assert ledger.report("wave-2")["pruned_at"] is None
        # wave 2 still correlates its receipts
        late = ReceiptRow("2b3", "undeliverable", "2B3", 1.0e9)
        assert ledger.record_receipts([late]) == []
    finally:
        ledger.close()
    assert main(["report", "wave-1", "--config", str(config)]) == 0
    table = capsys.readouterr().out
    assert "pruned" in table and f"{SIZE:>12,}" in table


def test_the_space_of_a_pruned_wave_goes_to_the_next_wave(ledger_path: Path, config: Path) -> None:
    ledger = SqliteLedger(ledger_path)
    try:
        fill(ledger, 1, size=20_000)
        one_wave, _ = ledger.space()
    finally:
        ledger.close()
    assert prune(config, "wave-1", "--no-archive") == 0
    ledger = SqliteLedger(ledger_path)
    try:
        _, free = ledger.space()
        assert free > one_wave // 2
        fill(ledger, 2, size=20_000)
        two_waves, _ = ledger.space()
    finally:
        ledger.close()
    # Without the prune the file would hold both waves (~2x); the second reuses the pages.
    assert two_waves < one_wave * 1.2, (one_wave, two_waves)


@pytest.mark.parametrize(
    ("counts", "control", "why"),
    [
        ({"pending": 4}, "running", "4 recipient(s) are still pending"),
        ({"pending": 4}, "paused", "still pending"),
        ({"in_flight": 2}, "running", "2 recipient(s) were in flight at a crash"),
        ({"in_flight": 2, "pending": 4}, "cancelled", "in flight at a crash"),
        ({"pending": 4, "delivered": 9}, "cancelled", None),
        ({"delivered": 9, "failed": 1, "submitted": 3}, "running", None),
    ],
)
def test_prune_refuses_unfinished_campaigns(
    counts: dict[str, int], control: str, why: str | None
) -> None:
    refusal = prune_refusal(counts, control, force=False)
    assert refusal is None if why is None else why in (refusal or "")
    assert prune_refusal(counts, control, force=True) is None


def test_a_refused_prune_deletes_nothing(
    ledger_path: Path, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = SqliteLedger(ledger_path)
    fill(ledger, 1)
    fill(ledger, 2, settle=False)  # everyone in flight, as a crash leaves them
    ledger.close()
    taken = tmp_path / "taken.csv"
    taken.write_text("someone's file\n")

    assert prune(config, "wave-1", "wave-2", "--no-archive") == 2  # all or nothing
    err = capsys.readouterr().err
    assert "nothing deleted" in err and f"wave-2: {SIZE} recipient(s) were in flight" in err
    assert prune(config, "wave-1", "nope", "--no-archive") == 2
    assert "no campaign 'nope'" in capsys.readouterr().err
    assert prune(config, "wave-1", "--archive", str(taken)) == 2
    assert "exists" in capsys.readouterr().err and taken.read_text() == "someone's file\n"
    assert prune(config, "wave-1", "--archive", str(tmp_path / "no" / "dir.csv")) == 2
    assert "could not be written" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # say where the rows go, or that nobody needs them
        prune(config, "wave-1")
    assert rows(ledger_path, "wave-1") == (SIZE, 2 * (SIZE // 3))
    assert rows(ledger_path, "wave-2") == (SIZE, 0)
    ledger = SqliteLedger(ledger_path)
    try:
        assert all(info.pruned_at is None for info in ledger.campaigns())
    finally:
        ledger.close()

    assert prune(config, "wave-2", "--no-archive", "--force") == 0
    assert rows(ledger_path, "wave-2") == (0, 0)


def test_prune_waits_for_no_engine_and_no_engine_starts_under_it(
    ledger_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = SqliteLedger(ledger_path)
    fill(ledger, 1)
    ledger.close()
    with LedgerLock(str(ledger_path)):  # an engine runs on this ledger
        assert prune(config, "wave-1", "--no-archive") == 2
    err = capsys.readouterr().err
    assert "in use by another smsblast run (pid" in err
    assert rows(ledger_path, "wave-1") == (SIZE, 2 * (SIZE // 3))
    held = LedgerLock(str(ledger_path), command="smsblast prune").acquire()
    try:
        with pytest.raises(LedgerInUse, match=r"another smsblast prune \(pid \d+.*Wait for it"):
            LedgerLock(str(ledger_path)).acquire()
    finally:
        held.release()


def test_an_interrupted_prune_goes_on_where_it_stopped(
    ledger_path: Path, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = SqliteLedger(ledger_path)
    try:
        fill(ledger, 1)
        ledger.mark_pruned("wave-1")  # the first prune stopped after one batch
        assert ledger.delete_recipients("wave-1", 0, 100) == 100
    finally:
        ledger.close()
    late_archive = tmp_path / "late.csv"
    assert prune(config, "wave-1", "--archive", str(late_archive)) == 0
    assert "finishing the prune begun" in capsys.readouterr().out
    assert not late_archive.exists()  # only part of the rows were left: no partial archive
    assert rows(ledger_path, "wave-1") == (0, 0)


def test_archive_names_with_several_campaigns() -> None:
    assert archive_path("/a/w.csv.gz", "x@2024-02-05", several=False) == "/a/w.csv.gz"
    assert archive_path("/a/w.csv.gz", "x@2024-02-05", several=True) == "/a/w-x-2024-02-05.csv.gz"
    assert archive_path("w", "x@2024-02-05T0700", several=True) == "w-x-2024-02-05T0700"


def test_vacuum_gives_the_space_back_to_the_filesystem(ledger_path: Path, config: Path) -> None:
    ledger = SqliteLedger(ledger_path)
    try:
        fill(ledger, 1, size=5000)
        fill(ledger, 2, size=5000)
        before, _ = ledger.space()
    finally:
        ledger.close()
    assert prune(config, "wave-1", "--no-archive", "--vacuum") == 0
    ledger = SqliteLedger(ledger_path)
    try:
        after, free = ledger.space()
        assert ledger.counts("wave-2")["delivered"] == 5000 // 3 + 1
    finally:
        ledger.close()
    assert free == 0 and after < before * 0.7, (before, after)
    assert ledger_path.stat().st_size == after


def test_the_disk_metrics_read_the_ledger_and_its_filesystem_at_each_scrape(
    ledger_path: Path, config: Path
) -> None:
    ledger = SqliteLedger(ledger_path)
    try:
        fill(ledger, 1, size=5000)
        fill(ledger, 2, size=5000)
    finally:
        ledger.close()
    watch_ledger_disk(str(ledger_path))
    before = REGISTRY.get_sample_value("smsblast_ledger_file_bytes")
    assert before == ledger_path.stat().st_size > 0
    free = REGISTRY.get_sample_value("smsblast_ledger_disk_free_bytes")
    found = os.statvfs(ledger_path.parent)
    assert free is not None and abs(free - found.f_bavail * found.f_frsize) < 64e6
    assert prune(config, "wave-1", "--no-archive", "--vacuum") == 0
    after = REGISTRY.get_sample_value("smsblast_ledger_file_bytes")
    assert after == ledger_path.stat().st_size and after < before * 0.7


def test_a_prune_on_a_full_disk_stops_cleanly_and_finishes_once_there_is_room(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQLite needs a little room to open the ledger and to delete (its -shm and WAL files):
    on a full disk the prune says the disk is full (exit 2: the ledger was reported "not an
    smsblast ledger"), with too little room it stops midway (exit 3), and once there is room
    the same prune finishes it; the next wave then fits."""
    with small_disk(tmp_path / "disk", "6m") as disk:
        ledger_path = disk / "ledger.sqlite"
        cfg = engine_config("127.0.0.1:9", 9, ROUTES, str(ledger_path))
        config = tmp_path / "smsblast.yaml"
        config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
        ledger = SqliteLedger(ledger_path)
        try:
            fill(ledger, 1, size=4000)
            counts = ledger.counts("wave-1")
        finally:
            ledger.close()
        filler = disk / "filler"
        with open(filler, "wb") as f, contextlib.suppress(OSError):
            while True:  # everything left, as another program's logs would take it
                f.write(b"\0" * 65536)
                f.flush()

        assert prune(config, "wave-1", "--no-archive", "--batch", "500") == 2
        assert "is its disk full" in capsys.readouterr().err  # not "not a ledger"
        assert rows(ledger_path, "wave-1")[0] == 4000

        os.truncate(filler, filler.stat().st_size - 256 * 1024)  # room to open, not to finish
        assert prune(config, "wave-1", "--no-archive", "--batch", "500") == 3
        assert "run the same prune again" in capsys.readouterr().err
        assert 0 < rows(ledger_path, "wave-1")[0] < 4000  # some batches went through

        filler.unlink()
        assert prune(config, "wave-1", "--no-archive", "--batch", "500") == 0
        assert rows(ledger_path, "wave-1") == (0, 0)
        ledger = SqliteLedger(ledger_path)
        try:
            assert ledger.counts("wave-1") == counts
            fill(ledger, 2, size=4000)  # the next wave goes into the freed pages
        finally:
            ledger.close()
