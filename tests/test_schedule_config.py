"""Campaign schedule keys in campaigns.yaml: timezone, start_at, deadline, quiet_hours, pace,
max_share, repeat; errors name the file and the key path."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from smsblast.config import (
    CampaignsFile,
    ConfigError,
    EngineConfig,
    check_campaign_routes,
    load_campaigns,
)

CAMPAIGN: dict[str, Any] = {
    "name": "jaga-persatuan",
    "sender": "KOMINFO",
    "segments": ["smsblast.segment.nasional"],
    "template": "Jaga Persatuan Indonesia, datang ke TPS dan gunakan hak pilih",
}
SMSC: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 2775,
    "system_id": "kominfo",
    "password_env": "TEST_PASSWORD",
    "tps_per_bind": 100,
}
ENGINE = EngineConfig.model_validate(
    {
        "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
        "routes": {
            "telkomsel": {"prefixes": ["812"], "smscs": [SMSC]},
            "indosat": {"prefixes": ["856"], "smscs": [{**SMSC, "system_id": "k2"}]},
        },
    }
)
JAKARTA = ZoneInfo("Asia/Jakarta")


def write(tmp_path: Path, *campaigns: dict[str, Any]) -> Path:
    path = tmp_path / "campaigns.yaml"
    path.write_text(yaml.safe_dump({"campaigns": list(campaigns)}, sort_keys=False), "utf-8")
    return path


def load(tmp_path: Path, **extra: Any) -> Any:
    return load_campaigns(write(tmp_path, {**copy.deepcopy(CAMPAIGN), **extra})).campaigns[0]


def problems(tmp_path: Path, **extra: Any) -> dict[str, str]:
    path = write(tmp_path, {**copy.deepcopy(CAMPAIGN), **extra})
    with pytest.raises(ConfigError) as caught:
        load_campaigns(path)
    assert caught.value.file == str(path)
    for line in str(caught.value).splitlines():
        assert line.startswith(f"{path}: campaigns.0.")
    return dict(caught.value.problems)


def test_defaults_send_now_at_full_capacity(tmp_path: Path) -> None:
    c = load(tmp_path)
    assert c.timezone == "Asia/Jakarta"
    assert (c.start_at, c.deadline, c.repeat) == (None, None, None)
    assert c.quiet_hours == []
    assert c.pace == "asap"
    assert c.share_for("telkomsel") == 1.0
    assert not c.quiet()


def test_full_schedule_loads(tmp_path: Path) -> None:
    c = load(
        tmp_path,
        timezone="Asia/Makassar",
        start_at="2024-02-05T07:00:00",
        deadline="2024-02-06T21:00:00+07:00",
        quiet_hours=["21:00-07:00", "12:00-13:00"],
        pace="even",
        max_share={"telkomsel": 0.6, "indosat": 1},
        repeat={"every": "7d", "until": "2024-02-12T07:00"},
    )
    assert c.start_at == datetime(2024, 2, 5, 7, tzinfo=ZoneInfo("Asia/Makassar"))
    assert c.deadline == datetime(2024, 2, 6, 21, tzinfo=timezone(timedelta(hours=7)))
    assert c.share_for("telkomsel") == 0.6
    assert c.share_for("indosat") == 1.0
    assert c.share_for("xl") == 1.0  # not listed: the whole TPS
    assert c.repeat.every == timedelta(days=7)
    assert c.repeat.until == datetime(2024, 2, 12, 7, tzinfo=ZoneInfo("Asia/Makassar"))
    assert c.quiet().is_quiet(
        datetime(2024, 2, 5, 12, 30, tzinfo=ZoneInfo("Asia/Makassar")).timestamp()
    )
    check_campaign_routes(ENGINE, CampaignsFile.model_validate({"campaigns": [c.model_dump()]}))


def test_unquoted_yaml_timestamps_are_read(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "campaigns:\n"
        "  - name: jaga-persatuan\n"
        "    sender: KOMINFO\n"
        "    segments: [smsblast.segment.nasional]\n"
        "    template: Jaga Persatuan Indonesia\n"
        "    start_at: 2024-02-05T07:00:00\n"
        "    deadline: 2024-02-05T21:00:00+07:00\n",
        "utf-8",
    )
    c = load_campaigns(path).campaigns[0]
    assert c.start_at == datetime(2024, 2, 5, 7, tzinfo=JAKARTA)
    assert c.deadline.timestamp() == datetime(2024, 2, 5, 21, tzinfo=JAKARTA).timestamp()


def test_max_share_as_one_number(tmp_path: Path) -> None:
    c = load(tmp_path, max_share=0.25)
    assert c.share_for("telkomsel") == c.share_for("anything") == 0.25


def test_unknown_timezone(tmp_path: Path) -> None:
    found = problems(tmp_path, timezone="Asia/Jakarat")
    assert "IANA time zone" in found["campaigns.0.timezone"]


def test_bad_datetime(tmp_path: Path) -> None:
    found = problems(tmp_path, start_at="next tuesday")
    assert "campaigns.0.start_at" in found


def test_deadline_must_be_after_start(tmp_path: Path) -> None:
    found = problems(tmp_path, start_at="2024-02-05T09:00", deadline="2024-02-05T02:00:00Z")
    assert "is not after start_at" in found["campaigns.0.deadline"]


def test_bad_quiet_ranges_name_their_index(tmp_path: Path) -> None:
    found = problems(tmp_path, quiet_hours=["21:00-07:00", "25:00-07:00", "9-10"])
    assert "00-23" in found["campaigns.0.quiet_hours.1"]
    assert "21:00-07:00" in found["campaigns.0.quiet_hours.2"]
    assert "campaigns.0.quiet_hours.0" not in found


def test_quiet_hours_covering_the_day(tmp_path: Path) -> None:
    found = problems(tmp_path, quiet_hours=["00:00-12:00", "12:00-24:00"])
    assert "whole day" in found["campaigns.0.quiet_hours"]


def test_pace_even_needs_a_deadline(tmp_path: Path) -> None:
    found = problems(tmp_path, pace="even")
    assert "set a deadline" in found["campaigns.0.pace"]
    assert "campaigns.0.pace" in problems(tmp_path, pace="fast")


@pytest.mark.parametrize(
    ("share", "words"),
    [
        (0, "not in (0, 1]"),
        (1.5, "not in (0, 1]"),
        ("half", "not a number"),
        (True, "not a number"),
    ],
)
def test_bad_max_share(tmp_path: Path, share: object, words: str) -> None:
    assert words in problems(tmp_path, max_share=share)["campaigns.0.max_share"]


def test_bad_max_share_per_route_names_the_route(tmp_path: Path) -> None:
    problem = problems(tmp_path, max_share={"telkomsel": 0.5, "xl": 2})["campaigns.0.max_share"]
    assert "route xl" in problem
    assert "campaigns.0.max_share" in problems(tmp_path, max_share={})


def test_unknown_route_in_max_share(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        copy.deepcopy(CAMPAIGN),
        {**copy.deepcopy(CAMPAIGN), "name": "other", "max_share": {"telkomse": 0.5, "xl": 1}},
    )
    campaigns = load_campaigns(path)
    with pytest.raises(ConfigError) as caught:
        check_campaign_routes(ENGINE, campaigns)
    found = dict(caught.value.problems)
    assert "did you mean 'telkomsel'" in found["campaigns.1.max_share.telkomse"]
    assert "no route 'xl'" in found["campaigns.1.max_share.xl"]
    assert str(caught.value).startswith(f"{path}: campaigns.1.max_share.")


def test_repeat_needs_start_at(tmp_path: Path) -> None:
    found = problems(tmp_path, repeat={"every": "7d", "until": "2024-03-01"})
    assert "needs start_at" in found["campaigns.0.repeat"]


def test_repeat_until_before_start(tmp_path: Path) -> None:
    found = problems(
        tmp_path, start_at="2024-02-05T09:00", repeat={"every": "7d", "until": "2024-01-01"}
    )
    assert "before start_at" in found["campaigns.0.repeat"]


def test_repeat_every_is_a_positive_duration(tmp_path: Path) -> None:
    start = {"start_at": "2024-02-05T09:00"}
    assert (
        "unit"
        in problems(tmp_path, **start, repeat={"every": 7, "until": "2024-03-01"})[
            "campaigns.0.repeat.every"
        ]
    )
    assert (
        "more than 0s"
        in problems(tmp_path, **start, repeat={"every": "0s", "until": "2024-03-01"})[
            "campaigns.0.repeat.every"
        ]
    )
    assert "campaigns.0.repeat.until" in problems(tmp_path, **start, repeat={"every": "7d"})
    assert "did you mean 'every'" in problems(
        tmp_path, **start, repeat={"evry": "7d", "until": "2024-03-01"}
    ).get("campaigns.0.repeat.evry", "")


def test_waves_may_not_overlap(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        start_at="2024-02-05T09:00",
        deadline="2024-02-07T09:00",
        repeat={"every": "1d", "until": "2024-03-01"},
    )
    assert "waves would overlap" in found["campaigns.0.repeat"]


def test_too_many_waves(tmp_path: Path) -> None:
    found = problems(
        tmp_path, start_at="2024-02-05T09:00", repeat={"every": "1m", "until": "2024-03-01"}
    )
    assert "more than 1000 waves" in found["campaigns.0.repeat"]


def test_shipped_seed_campaign_has_no_dates() -> None:
    seed = load_campaigns(Path(__file__).resolve().parent.parent / "campaigns.yaml").get(
        "jaga-persatuan"
    )
    assert seed.start_at is None and seed.deadline is None and seed.repeat is None
    assert seed.timezone == "Asia/Jakarta"
