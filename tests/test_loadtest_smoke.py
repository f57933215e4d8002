"""The load-test scenarios run end to end at a tiny size and write the figures they promise.

Real components (Tansu, the simulator in its own process, ``smsblast run``), a few thousand
recipients at most; nothing here checks a speed. Needs the ``loadtest`` extra (matplotlib).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

from loadtest import baseline, chaos, e2e, paced
from smsblast.ledger import SqliteLedger


def results(out: Path, scenario: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / scenario / "results.json").read_text())
    assert data["scenario"] == scenario
    assert data["machine"]["git_commit"]
    assert data["machine"]["versions"]["smpplib"]
    for plot in data["plots"]:
        assert (out / scenario / plot).stat().st_size > 1000
    return data


def test_e2e_reports_cpu_per_recipient_and_keeps_the_ledger_when_asked(tmp_path: Path) -> None:
    kept = tmp_path / "kept.sqlite"
    argv = ["--recipients", "2000", "--out", str(tmp_path), "--keep-ledger", str(kept)]
    assert e2e.main(argv) == 0
    run = results(tmp_path, "e2e")["median"]
    assert run["sim_duplicates"] == 0 and run["ledger"]["states"] == {"delivered": 2000}
    cpu = run["cpu_us_per_recipient"]
    assert cpu["engine"] > 0 and cpu["ledger_process"] > 0 and cpu["simulator"] > 0
    parts = ("engine", "ledger_process", "simulator", "broker")
    assert cpu["together"] == pytest.approx(sum(cpu[k] for k in parts), abs=0.5)
    ledger = SqliteLedger(kept)
    try:
        assert ledger.counts("bench")["delivered"] == 2000
    finally:
        ledger.close()


def test_paced_reports_per_bind_peaks_against_each_bind_tps(tmp_path: Path) -> None:
    assert paced.main(["--recipients", "1500", "--out", str(tmp_path)]) == 0
    data = results(tmp_path, "paced")
    binds = data["binds"]
    assert {b["bind"].split("#")[0] for b in binds} == {r.name for r in paced.ROUTES}
    assert sum(b["accepted"] for b in binds) == 1500
    for b in binds:
        assert 0 < b["max_1s"] <= b["accepted"]
        assert b["max_100ms"] <= b["max_1s"]
        assert b["cap_100ms"] == int(b["tps"] / 10) + 1
    figures = data["figures"]
    assert figures["pacing_mode"] in ("even", "asap")
    assert figures["last_accept_vs_deadline_s"] is not None
    assert data["engine"]["exit_code"] == 0


def test_chaos_loses_no_recipient(tmp_path: Path) -> None:
    argv = ["--recipients", "3000", "--drop-every", "1", "--out", str(tmp_path)]
    assert chaos.main(argv) == 0
    data = results(tmp_path, "chaos")
    figures = data["figures"]
    assert figures["lost"] == 0
    assert figures["duplicates"] == 0
    assert figures["unknown"] >= 0
    assert figures["chaos_seconds"] > 0 and figures["clean_seconds"] > 0
    run = data["runs"]["chaos"]
    assert run["sim_fault_drops"] > 0  # the faults did happen
    assert run["sim_transient_errors"] > 0


def test_baseline_reports_both_smpplib_variants_and_the_ratio(tmp_path: Path) -> None:
    assert baseline.main(["--recipients", "600", "--out", str(tmp_path)]) == 0
    data = results(tmp_path, "baseline")
    variants = {v["window"]: v for v in data["variants"]}
    assert set(variants) == {1, 50}
    for v in variants.values():
        assert v["msgs_per_s"] > 0
        assert v["receipts"] == 600
        assert v["resp_errors"] == 0
        assert v["e2e_ratio"] > 0
    assert data["e2e"]["source"] == "run by baseline"
    # e2e's figures came with it: the engine claimed its first recipient after it started
    # and before it finished
    assert 0 < data["e2e"]["startup_seconds"] < data["e2e"]["engine_seconds"]
    assert data["sim_totals"]["submits_accepted"] == 1200  # both variants, every recipient
