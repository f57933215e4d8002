"""`smsblast report --chart`: per-second submits and receipts per route, from the ledger."""

from __future__ import annotations

import asyncio
import sqlite3
import struct
from pathlib import Path

import yaml

from smsblast import cli
from smsblast.chart import CHART_DPI, CHART_SIZE_IN, series
from smsblast.ledger import SCHEMA_VERSION, Claim, Outcome, SqliteLedger, State, Timeline
from smsblast.simulator import Simulator
from tests.conftest import TopicFactory
from tests.engine_stack import (
    RouteSpec,
    campaign,
    engine_config,
    fill,
    make_engine,
    simulator_profile,
)

ROUTES = [
    RouteSpec("telkomsel", ("811", "812", "813"), tps=300),
    RouteSpec("xl", ("817", "818", "819"), tps=150),
]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_report_chart_is_a_png_of_every_submit_and_receipt_per_route(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    topic = await kafka_topic(partitions=2)
    numbers = [f"62812{i:08d}" for i in range(400)] + [f"62817{i:08d}" for i in range(200)]
    await fill(kafka_bootstrap, topic, numbers)
    ledger_path = tmp_path / "ledger.sqlite"
    async with Simulator(simulator_profile(ROUTES)) as smsc:
        config = engine_config(kafka_bootstrap, smsc.port, ROUTES, str(ledger_path))
        engine, ledger = make_engine(config, [campaign("charted", [topic])])
        await asyncio.wait_for(engine.run(until_done=True), 60)
        await ledger.close()
        accepted = smsc.stats()["totals"]["submits_accepted"]
    assert accepted == 600

    config_path = tmp_path / "smsblast.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    chart = tmp_path / "charted.png"
    assert cli.main(["report", "charted", "--config", str(config_path), "--chart", str(chart)]) == 0
    assert png_size(chart) == (CHART_SIZE_IN[0] * CHART_DPI, CHART_SIZE_IN[1] * CHART_DPI)

    led = SqliteLedger(ledger_path)
    try:
        timeline = led.per_second("charted")
        counts = led.counts("charted")
    finally:
        led.close()
    assert sum(timeline.submits["telkomsel"].values()) == 400
    assert sum(timeline.submits["xl"].values()) == 200
    final = counts["delivered"] + counts["failed"] + counts["expired"]
    assert sum(n for r in timeline.receipts.values() for n in r.values()) == final == 600
    data = series(timeline)
    assert sum(data.submits["telkomsel"]) + sum(data.submits["xl"]) == accepted
    # 300/s and 150/s binds: the 400 telkomsel parts cannot all fall in one second
    assert len([n for n in data.submits["telkomsel"] if n]) >= 2


def test_series_aligns_routes_on_one_zero_filled_time_axis() -> None:
    timeline = Timeline(
        submits={"xl": {100: 5, 102: 1}, "telkomsel": {101: 7}},
        receipts={"xl": {103: 6}},
    )
    data = series(timeline)
    assert data.start == 100 and data.seconds == [0, 1, 2, 3]
    assert data.submits == {"telkomsel": [0, 7, 0, 0], "xl": [5, 0, 1, 0]}
    assert data.receipts == {"xl": [0, 0, 0, 6]}
    assert series(Timeline({}, {})).seconds == []


def test_a_version_1_ledger_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    led = SqliteLedger(path, clock=lambda: 1000.5)
    led.open_campaign("old", {"t:0": 1})
    led.claim("old", [Claim("6281200000001", "telkomsel", 1, "t", 0, 0)], State.IN_FLIGHT)
    led.record_outcomes(
        "old", [Outcome("6281200000001", State.SUBMITTED, 0, "", [(0, "A1", "a1")])]
    )
    led.close()
    conn = sqlite3.connect(path)  # make it what version 1 wrote: no submit_at column
    conn.execute("ALTER TABLE message_ids DROP COLUMN submit_at")
    conn.execute("DROP TABLE early_controls")  # version 3's
    conn.execute("ALTER TABLE campaigns DROP COLUMN pruned_at")  # version 4's
    conn.execute("DROP TABLE numbers")  # version 5's, which replaced the unique index
    conn.execute("DROP TABLE numbers_recent")
    conn.execute("DELETE FROM meta WHERE key = 'numbers_from'")
    conn.execute("CREATE UNIQUE INDEX recipients_by_msisdn ON recipients (campaign, msisdn)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()

    led = SqliteLedger(path, clock=lambda: 2000.25)
    try:
        assert led.counts("old")["submitted"] == 1
        again = [Claim("6281200000001", "telkomsel", 1, "t", 0, 0)]
        assert led.claim("old", again, State.IN_FLIGHT) == [State.SUBMITTED]  # in numbers
        assert led.per_second("old").submits == {}  # old parts have no submit time
        led.claim("old", [Claim("6281200000002", "telkomsel", 1, "t", 0, 1)], State.IN_FLIGHT)
        led.record_outcomes(
            "old", [Outcome("6281200000002", State.SUBMITTED, 0, "", [(0, "B2", "b2")])]
        )
        assert led.per_second("old").submits == {"telkomsel": {2000: 1}}
        led.set_control("next", "paused", before_open=True)  # version 3's table is there
        assert led.open_campaign("next", {}).control == "paused"
        assert led.open_campaign("old", None).pruned_at is None  # version 4's column
        assert led.mark_pruned("old") == 2000.25
    finally:
        led.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    assert conn.execute("SELECT msisdn, id FROM numbers").fetchall() == [("6281200000001", 1)]
    assert not conn.execute(
        "SELECT * FROM sqlite_master WHERE name = 'recipients_by_msisdn'"
    ).fetchall()
    conn.close()
