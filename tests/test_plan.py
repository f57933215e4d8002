"""`smsblast plan`: counting per route, capacity, projection with quiet hours, the verdict,
and the command end to end against a real broker."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from smsblast import cli
from smsblast.config import Campaign, CampaignsFile, EngineConfig
from smsblast.optout import OptOutList
from smsblast.plan import (
    RecipientCounter,
    RouteCount,
    SegmentCount,
    format_plan,
    plan_json,
    project,
    route_capacity,
)
from smsblast.segments import encode_record
from tests.conftest import TopicFactory
from tests.engine_stack import fill

JAKARTA = ZoneInfo("Asia/Jakarta")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=JAKARTA).timestamp()


def smsc(name: str, tps: float, binds: int = 1) -> dict[str, Any]:
    return {
        "name": name,
        "host": "127.0.0.1",
        "port": 2775,
        "system_id": name,
        "password_env": "SMSBLAST_TEST_SMSC_PASSWORD",
        "tps_per_bind": tps,
        "binds": binds,
    }


def engine_data(bootstrap: str = "127.0.0.1:9092") -> dict[str, Any]:
    return {
        "kafka": {"bootstrap_servers": [bootstrap]},
        "routes": {
            "telkomsel": {"prefixes": ["811", "812"], "smscs": [smsc("tsel", 10, binds=2)]},
            "xl": {"prefixes": ["817"], "smscs": [smsc("xl-a", 3), smsc("xl-b", 2)]},
        },
    }


CONFIG = EngineConfig.model_validate(engine_data())


def campaign(**extra: Any) -> Campaign:
    data: dict[str, Any] = {
        "name": "jaga-persatuan",
        "sender": "KOMINFO",
        "segments": ["smsblast.segment.nasional"],
        "template": "Jaga Persatuan Indonesia, datang ke TPS dan gunakan hak pilih",
    }
    data.update(extra)
    return CampaignsFile.model_validate({"campaigns": [data]}).campaigns[0]


def record(msisdn: str, **fields: Any) -> bytes:
    return encode_record({"msisdn": msisdn, **fields})


# --- counting ------------------------------------------------------------------------------


def test_counter_applies_the_engine_rules() -> None:
    counter = RecipientCounter(CONFIG, campaign(), OptOutList(["081200000009"]))
    for value in [
        record("081200000001"),
        record("+62 812-0000-0002"),
        record("6281200000001"),  # the first number again, spelled differently
        record("081700000001"),
        record("081200000009"),  # opted out
        record("085600000001"),  # Indosat: no route in this config
        b"not json",
        None,
    ]:
        counter.add(value)
    counts = counter.result()
    assert counts.records == 8
    assert counts.routes == {"telkomsel": RouteCount(2, 2), "xl": RouteCount(1, 1)}
    assert counts.recipients == 3
    assert counts.duplicates == 1
    assert counts.suppressed == 1
    assert counts.rejected == {"unroutable": 1, "not_json": 1, "empty": 1}


def test_counter_counts_parts_of_rendered_texts() -> None:
    long_text = "Jaga Persatuan Indonesia {name} " + "x" * 140
    c = campaign(template=long_text, max_parts=2)
    counter = RecipientCounter(CONFIG, c, OptOutList())
    counter.add(record("081200000001", name="Budi"))  # 2 parts
    counter.add(record("081200000002", name="x" * 200))  # 3 parts: over max_parts
    counter.add(record("081200000003"))  # no name: missing field
    counter.add(record("081200000004", name="Wayan"))
    counter.add(record("081200000004", name="Wayan"))  # duplicate
    counts = counter.result()
    assert counts.routes == {"telkomsel": RouteCount(2, 4)}
    assert counts.rejected == {"too_many_parts": 1, "missing_field": 1}
    assert counts.duplicates == 1


def test_counter_rejects_texts_whose_fields_are_all_blank_as_the_engine_does() -> None:
    c = campaign(template="{pesan}", on_missing_field="empty")
    counter = RecipientCounter(CONFIG, c, OptOutList())
    counter.add(record("081200000001", pesan="Jaga Persatuan Indonesia"))
    counter.add(record("081200000002", pesan="  "))
    counter.add(record("081200000003"))  # missing: empty under on_missing_field=empty
    counts = counter.result()
    assert counts.routes == {"telkomsel": RouteCount(1, 1)}
    assert counts.rejected == {"empty_text": 2}


def test_counter_unicode_text_needs_more_parts() -> None:
    c = campaign(template="{text}", max_parts=5)
    counter = RecipientCounter(CONFIG, c, OptOutList())
    counter.add(record("081200000001", text="a" * 100))  # GSM-7: 1 part
    counter.add(record("081200000002", text="é" * 70 + "€" * 3))  # still GSM-7 (€ is 2 septets)
    counter.add(record("081200000003", text="日本" * 40))  # UCS-2, 80 chars: 2 parts
    assert counter.result().routes["telkomsel"] == RouteCount(3, 4)


# --- capacity and projection ---------------------------------------------------------------


def test_capacity_sums_smscs_and_binds_times_the_share() -> None:
    assert route_capacity(CONFIG, campaign(), "telkomsel") == 20.0
    assert route_capacity(CONFIG, campaign(), "xl") == 5.0
    shared = campaign(max_share={"telkomsel": 0.5})
    assert route_capacity(CONFIG, shared, "telkomsel") == 10.0
    assert route_capacity(CONFIG, shared, "xl") == 5.0
    assert route_capacity(CONFIG, campaign(max_share=0.2), "xl") == 1.0


COUNTS = SegmentCount(
    records=1000,
    routes={"telkomsel": RouteCount(600, 600), "xl": RouteCount(100, 100)},
    rejected={"unroutable": 3},
)
CAPACITY = {"telkomsel": 20.0, "xl": 5.0}


def test_projection_without_deadline_is_on_time() -> None:
    plan = project(campaign(), COUNTS, CAPACITY, 1000.0)
    assert plan.wave == "jaga-persatuan"
    assert plan.start == 1000.0
    assert [(r.route, r.finish) for r in plan.routes] == [("telkomsel", 1030.0), ("xl", 1020.0)]
    assert plan.finish == 1030.0
    assert plan.on_time and plan.late_by == 0
    assert all(r.required_rate is None for r in plan.routes)


def test_projection_late_route_across_a_quiet_night() -> None:
    c = campaign(
        start_at="2024-02-05T20:59:50",
        deadline="2024-02-06T07:00:15",
        quiet_hours=["21:00-07:00"],
    )
    plan = project(c, COUNTS, CAPACITY, at("2024-02-05T12:00"))
    tsel, xl = plan.routes
    assert plan.start == at("2024-02-05T20:59:50")  # start_at, not now
    # 30 s of sending: 10 s before quiet hours, 20 s after 07:00
    assert tsel.finish == at("2024-02-06T07:00:20")
    assert not tsel.on_time and tsel.late_by == 5.0
    assert tsel.required_rate == 600 / 25
    assert xl.finish == at("2024-02-06T07:00:10") and xl.on_time
    assert not plan.on_time and plan.late_by == 5.0
    text = format_plan(plan)
    assert "2024-02-06 07:00:20 WIB" in text
    assert "LATE by 5s" in text
    assert "on time (5s to spare)" in text


def test_projection_starts_now_when_start_at_has_passed() -> None:
    c = campaign(start_at="2024-02-05T08:00", deadline="2024-02-05T09:00")
    plan = project(c, COUNTS, CAPACITY, at("2024-02-05T08:59:50"))
    assert plan.start == at("2024-02-05T08:59:50")
    assert plan.routes[0].late_by == 20.0


def test_projection_after_the_deadline_needs_an_infinite_rate() -> None:
    c = campaign(start_at="2024-02-05T08:00", deadline="2024-02-05T09:00")
    plan = project(c, COUNTS, CAPACITY, at("2024-02-05T10:00"))
    assert plan.routes[0].required_rate == math.inf
    assert plan.late_by == 3600 + 30
    assert plan_json([plan])["campaigns"][0]["routes"][0]["required_per_second"] is None


def test_route_without_recipients_or_capacity() -> None:
    c = campaign(deadline="2024-02-05T09:00")
    counts = SegmentCount(routes={"telkomsel": RouteCount(10, 10)})
    plan = project(c, counts, {"telkomsel": 0.0, "xl": 5.0}, at("2024-02-05T08:00"))
    tsel, xl = plan.routes
    assert tsel.finish == math.inf and tsel.late_by == math.inf
    assert xl.finish == xl.start and xl.on_time and xl.required_rate == 0.0
    assert "never finishes" in format_plan(plan)
    found = plan_json([plan])
    assert found["feasible"] is False
    assert found["campaigns"][0]["finish"] is None


def test_projection_plans_the_running_or_next_wave() -> None:
    c = campaign(
        start_at="2024-02-05T09:00",
        deadline="2024-02-05T21:00",
        repeat={"every": "7d", "until": "2024-02-26T09:00"},
    )
    plan = project(c, COUNTS, CAPACITY, at("2024-02-10T00:00"))
    assert plan.wave == "jaga-persatuan@2024-02-12"
    assert plan.start == at("2024-02-12T09:00")
    assert plan.deadline == at("2024-02-12T21:00")
    assert "(wave jaga-persatuan@2024-02-12)" in format_plan(plan)


def test_plan_json_shape() -> None:
    c = campaign(deadline="2024-02-06T00:00", quiet_hours=["21:00-07:00"], pace="even")
    found = plan_json([project(c, COUNTS, CAPACITY, at("2024-02-05T12:00"))])
    assert found["feasible"] is True
    (entry,) = found["campaigns"]
    assert entry["pace"] == "even"
    assert entry["deadline_iso"] == "2024-02-06T00:00:00+07:00"
    assert entry["finish_iso"] == "2024-02-05T12:00:30+07:00"
    assert entry["rejected"] == {"unroutable": 3}
    assert [r["route"] for r in entry["routes"]] == ["telkomsel", "xl"]
    assert entry["routes"][0]["required_per_second"] == pytest.approx(600 / (9 * 3600))
    json.dumps(found, allow_nan=False)


# --- the command, end to end ---------------------------------------------------------------


def write_files(tmp_path: Path, bootstrap: str, topic: str) -> tuple[Path, Path]:
    config = tmp_path / "smsblast.yaml"
    config.write_text(yaml.safe_dump(engine_data(bootstrap)), "utf-8")
    base = {
        "sender": "KOMINFO",
        "segments": [topic],
        "template": "Jaga Persatuan Indonesia, datang ke TPS dan gunakan hak pilih",
        "start_at": "2024-02-05T20:59:50",
        "quiet_hours": ["21:00-07:00"],
        "pace": "even",
    }
    campaigns = tmp_path / "campaigns.yaml"
    campaigns.write_text(
        yaml.safe_dump(
            {
                "campaigns": [
                    {"name": "tight", **base, "deadline": "2024-02-06T07:00:15"},
                    {"name": "relaxed", **base, "deadline": "2024-02-06T07:01:00"},
                ]
            }
        ),
        "utf-8",
    )
    return config, campaigns


async def smsblast(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli.main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_plan_command_exit_status_and_projection(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path, capsys: Any
) -> None:
    topic = await kafka_topic(partitions=3)
    numbers = [f"62812{i:08d}" for i in range(600)] + [f"62817{i:08d}" for i in range(100)]
    numbers += numbers[:50]  # duplicates
    await fill(kafka_bootstrap, topic, numbers, extra=[b"not json", record("085600000001")])
    config, campaigns = write_files(tmp_path, kafka_bootstrap, topic)
    common = ["plan", "--config", str(config), "--campaigns", str(campaigns)]
    common += ["--at", "2024-02-05T12:00"]

    code, out, _ = await smsblast(capsys, *common, "tight")
    assert code == 1
    assert "recipients 700, duplicates 50, suppressed 0, rejected 2" in out
    assert "projected finish 2024-02-06 07:00:20 WIB: LATE by 5s" in out
    assert "telkomsel" in out and "xl" in out

    code, out, _ = await smsblast(capsys, *common, "relaxed")
    assert code == 0
    assert "projected finish 2024-02-06 07:00:20 WIB: on time (40s to spare)" in out

    code, out, _ = await smsblast(capsys, *common, "--json")
    assert code == 1
    found = json.loads(out)
    assert found["feasible"] is False
    assert [(c["campaign"], c["on_time"]) for c in found["campaigns"]] == [
        ("tight", False),
        ("relaxed", True),
    ]
    tight = found["campaigns"][0]
    assert tight["late_by_seconds"] == 5.0
    assert tight["finish_iso"] == "2024-02-06T07:00:20+07:00"
    assert {r["route"]: r["recipients"] for r in tight["routes"]} == {"telkomsel": 600, "xl": 100}
    assert tight["rejected"] == {"not_json": 1, "unroutable": 1}


async def test_plan_command_errors_exit_2(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path, capsys: Any
) -> None:
    topic = await kafka_topic(partitions=1)
    config, campaigns = write_files(tmp_path, kafka_bootstrap, topic)
    common = ["plan", "--config", str(config), "--campaigns", str(campaigns)]

    code, _, err = await smsblast(capsys, *common, "nope")
    assert code == 2
    assert "no campaign named 'nope'" in err

    data = yaml.safe_load(campaigns.read_text("utf-8"))
    data["campaigns"][0]["max_share"] = {"indosat": 0.5}
    campaigns.write_text(yaml.safe_dump(data), "utf-8")
    code, _, err = await smsblast(capsys, *common)
    assert code == 2
    assert f"{campaigns}: campaigns.0.max_share.indosat: no route 'indosat'" in err

    data["campaigns"][0].pop("max_share")
    data["campaigns"][0]["segments"] = ["no-such-topic-plan"]
    campaigns.write_text(yaml.safe_dump(data), "utf-8")
    code, _, err = await smsblast(capsys, *common, "tight")
    assert code == 2
    assert "no-such-topic-plan" in err


async def test_plan_command_empty_segment_is_on_time(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path, capsys: Any
) -> None:
    topic = await kafka_topic(partitions=2)
    config, campaigns = write_files(tmp_path, kafka_bootstrap, topic)
    code, out, _ = await smsblast(
        capsys, "plan", "--config", str(config), "--campaigns", str(campaigns), "tight"
    )
    assert code == 0
    assert "records 0" in out
