"""The schedule core: clock, quiet hours (DST included), waves and pacing math."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from smsblast.config import Campaign, CampaignsFile
from smsblast.schedule import (
    ManualClock,
    QuietHours,
    SystemClock,
    Wave,
    parse_quiet_range,
    projected_finish,
    target_rate,
    wait_until_sendable,
    wave_for,
    waves,
)

JAKARTA = ZoneInfo("Asia/Jakarta")
BERLIN = ZoneInfo("Europe/Berlin")
HOUR = 3600.0
DAY = 86_400.0


def at(text: str, tz: ZoneInfo = JAKARTA) -> float:
    """Epoch seconds of a local wall time."""
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def campaign(**extra: Any) -> Campaign:
    data: dict[str, Any] = {
        "name": "jaga-persatuan",
        "sender": "KOMINFO",
        "segments": ["smsblast.segment.nasional"],
        "template": "Jaga Persatuan Indonesia",
    }
    data.update(extra)
    return CampaignsFile.model_validate({"campaigns": [data]}).campaigns[0]


# --- clock ---------------------------------------------------------------------------------


async def test_manual_clock_wakes_sleepers_in_time_order_and_only_when_due() -> None:
    clock = ManualClock(1000.0)
    woken: list[str] = []

    async def sleeper(name: str, until: float) -> None:
        await clock.sleep_until(until)
        woken.append(name)

    tasks = [
        asyncio.create_task(sleeper("late", 1010.0)),
        asyncio.create_task(sleeper("early", 1005.0)),
    ]
    await asyncio.sleep(0)
    assert clock.sleepers == 2
    clock.advance(4.9)
    await asyncio.sleep(0)
    assert woken == []
    clock.advance(0.1)
    await asyncio.sleep(0)
    assert woken == ["early"]
    clock.set(2000.0)
    await asyncio.gather(*tasks)
    assert woken == ["early", "late"]
    assert clock.now() == 2000.0
    assert clock.sleepers == 0


async def test_manual_clock_past_time_returns_at_once_and_never_goes_back() -> None:
    clock = ManualClock(50.0)
    await asyncio.wait_for(clock.sleep_until(10.0), 1)
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="does not go back"):
        clock.set(49.0)


async def test_manual_clock_cancelled_sleeper_does_not_break_the_others() -> None:
    clock = ManualClock(0.0)
    cancelled = asyncio.create_task(clock.sleep_until(5.0))
    kept = asyncio.create_task(clock.sleep_until(6.0))
    await asyncio.sleep(0)
    cancelled.cancel()
    clock.advance(10)
    await asyncio.wait_for(kept, 1)
    assert cancelled.cancelled()


async def test_system_clock_sleeps_until_the_time() -> None:
    clock = SystemClock()
    target = clock.now() + 0.05
    await clock.sleep_until(target)
    assert clock.now() >= target


# --- quiet ranges --------------------------------------------------------------------------


def test_parse_quiet_range() -> None:
    assert parse_quiet_range("21:00-07:00") == (1260, 420)
    assert parse_quiet_range("12:30-13:15") == (750, 795)
    assert parse_quiet_range("22:00-24:00") == (1320, 1440)


@pytest.mark.parametrize(
    "text", ["21-07", "9:00-10:00", "25:00-01:00", "10:60-11:00", "24:30-01:00", "08:00-08:00"]
)
def test_bad_quiet_ranges_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"21:00-07:00|00-23|same time"):
        parse_quiet_range(text)


def test_whole_day_of_quiet_is_refused() -> None:
    with pytest.raises(ValueError, match="whole day"):
        QuietHours(["00:00-12:00", "12:00-24:00"])
    with pytest.raises(ValueError, match="whole day"):
        QuietHours(["07:00-07:01", "07:01-07:00"])


def test_no_quiet_hours_never_quiet() -> None:
    quiet = QuietHours()
    t = at("2024-02-05T23:00")
    assert not quiet
    assert not quiet.is_quiet(t)
    assert quiet.next_change(t) == math.inf
    assert quiet.sending_seconds(t, t + 5 * DAY) == 5 * DAY
    assert quiet.finish_after(t, 1234.5) == t + 1234.5


def test_quiet_range_wrapping_midnight() -> None:
    quiet = QuietHours(["21:00-07:00"], "Asia/Jakarta")
    assert not quiet.is_quiet(at("2024-02-05T20:59:59"))
    assert quiet.is_quiet(at("2024-02-05T21:00"))
    assert quiet.is_quiet(at("2024-02-06T00:00"))
    assert quiet.is_quiet(at("2024-02-06T06:59:59"))
    assert not quiet.is_quiet(at("2024-02-06T07:00"))
    # next change: quiet begins at 21:00, ends at 07:00 the next morning (one merged night)
    assert quiet.next_change(at("2024-02-05T12:00")) == at("2024-02-05T21:00")
    assert quiet.next_change(at("2024-02-05T23:30")) == at("2024-02-06T07:00")
    assert quiet.next_change(at("2024-02-06T03:00")) == at("2024-02-06T07:00")


def test_adjacent_and_overlapping_ranges_merge() -> None:
    quiet = QuietHours(["22:00-24:00", "00:00-06:00", "05:00-07:00"], "Asia/Jakarta")
    assert quiet.next_change(at("2024-02-05T22:30")) == at("2024-02-06T07:00")
    assert quiet.sending_seconds(at("2024-02-05T00:00"), at("2024-02-06T00:00")) == 15 * HOUR


def test_sending_seconds_excludes_quiet_nights() -> None:
    quiet = QuietHours(["21:00-07:00"], "Asia/Jakarta")
    start, end = at("2024-02-05T12:00"), at("2024-02-08T12:00")  # three days
    assert quiet.sending_seconds(start, end) == 3 * 14 * HOUR
    # inside a quiet night: nothing until 07:00
    assert quiet.sending_seconds(at("2024-02-05T22:00"), at("2024-02-06T07:00")) == 0
    assert quiet.sending_seconds(at("2024-02-05T22:00"), at("2024-02-06T08:00")) == HOUR
    assert quiet.sending_seconds(end, start) == 0


def test_sending_seconds_over_weeks_is_exact() -> None:
    quiet = QuietHours(["21:00-07:00", "12:00-13:00"], "Asia/Jakarta")
    start = at("2024-01-01T00:00")
    assert quiet.sending_seconds(start, start + 70 * DAY) == 70 * 13 * HOUR


def test_sending_seconds_across_dst_in_berlin() -> None:
    quiet = QuietHours(["21:00-07:00"], "Europe/Berlin")
    # Clocks go forward at 02:00 on 2024-03-31: that night is 9 hours long, not 10.
    night_start = at("2024-03-30T21:00", BERLIN)
    assert quiet.next_change(night_start) == at("2024-03-31T07:00", BERLIN)
    assert at("2024-03-31T07:00", BERLIN) - night_start == 9 * HOUR
    # Noon to noon across the change is 23 real hours, of which 14 can be used to send.
    assert quiet.sending_seconds(
        at("2024-03-30T12:00", BERLIN), at("2024-03-31T12:00", BERLIN)
    ) == (14 * HOUR)
    # Clocks go back at 03:00 on 2024-10-27: that night is 11 hours long.
    assert at("2024-10-27T07:00", BERLIN) - at("2024-10-26T21:00", BERLIN) == 11 * HOUR
    start, end = at("2024-10-26T12:00", BERLIN), at("2024-10-27T12:00", BERLIN)
    assert end - start == 25 * HOUR
    assert quiet.sending_seconds(start, end) == 14 * HOUR


def test_quiet_range_bound_in_the_dst_gap_is_the_change_itself() -> None:
    quiet = QuietHours(["02:30-04:00"], "Europe/Berlin")  # 02:30 does not exist on 03-31
    day = datetime(2024, 3, 31, tzinfo=BERLIN).timestamp()
    change = datetime(2024, 3, 31, 1, tzinfo=ZoneInfo("UTC")).timestamp()  # 02:00 -> 03:00
    assert quiet.next_change(day) == change
    assert not quiet.is_quiet(change - 1)
    assert quiet.is_quiet(change)  # the clock reads 03:00, inside 02:30-04:00
    assert quiet.sending_seconds(day, day + 23 * HOUR) == 22 * HOUR


def test_quiet_range_ending_in_the_repeated_hour_lasts_until_its_second_time() -> None:
    quiet = QuietHours(["21:00-02:30"], "Europe/Berlin")  # 02:00-03:00 happens twice
    start = at("2024-10-26T21:00", BERLIN)
    end = datetime(2024, 10, 27, 1, 30, tzinfo=ZoneInfo("UTC")).timestamp()  # 02:30 CET
    assert quiet.next_change(start) == end
    assert end - start == 6.5 * HOUR


def wall_quiet(t: float, tz: ZoneInfo, ranges: list[tuple[int, int]]) -> bool:
    local = datetime.fromtimestamp(t, tz)
    minute = local.hour * 60 + local.minute
    return any((s <= minute < e) if s < e else (minute >= s or minute < e) for s, e in ranges)


minutes = st.integers(0, 23).flatmap(lambda h: st.sampled_from([h * 60, h * 60 + 15, h * 60 + 45]))


@settings(max_examples=60, deadline=None)
@given(
    bounds=st.lists(st.tuples(minutes, minutes), min_size=1, max_size=3),
    zone=st.sampled_from(["Asia/Jakarta", "Europe/Berlin", "America/New_York"]),
    start_day=st.sampled_from(["2024-03-08", "2024-03-29", "2024-10-25", "2024-11-01"]),
    offset=st.integers(0, 24 * 60 - 1),
)
def test_quiet_hours_agree_with_the_wall_clock_minute_by_minute(
    bounds: list[tuple[int, int]], zone: str, start_day: str, offset: int
) -> None:
    """Brute force over four days around DST changes: sending seconds are the minutes whose
    wall clock reads outside every range. Bounds in the hour a fall-back night repeats are
    left out there: a range then covers more than the wall clock reads, on purpose."""
    ranges = [(s, e) for s, e in bounds if s != e]
    tz = ZoneInfo(zone)
    fall_back = start_day in ("2024-10-25", "2024-11-01")
    assume(ranges and not (fall_back and any(60 <= b < 180 for r in ranges for b in r)))
    try:
        quiet = QuietHours(ranges, tz)
    except ValueError:
        return  # the whole day
    start = datetime.fromisoformat(start_day).replace(tzinfo=tz).timestamp() + offset * 60
    end = start + 4 * DAY
    expected = sum(60 for t in range(int(start), int(end), 60) if not wall_quiet(t, tz, ranges))
    assert quiet.sending_seconds(start, end) == expected
    finish = quiet.finish_after(start, expected / 2)
    assert quiet.sending_seconds(start, finish) == pytest.approx(expected / 2)


def test_finish_after_skips_several_quiet_nights() -> None:
    quiet = QuietHours(["21:00-07:00"], "Asia/Jakarta")
    start = at("2024-02-05T19:00")
    # 2 h today, 14 h tomorrow, 14 h the day after, 2 h more: 32 h of sending
    assert quiet.finish_after(start, 32 * HOUR) == at("2024-02-08T09:00")
    # exactly at the start of quiet: done at 21:00, not the next morning
    assert quiet.finish_after(start, 2 * HOUR) == at("2024-02-05T21:00")
    assert quiet.finish_after(start, 2 * HOUR + 1) == at("2024-02-06T07:00:01")
    # starting inside quiet hours waits for the morning
    assert quiet.finish_after(at("2024-02-05T23:00"), 60) == at("2024-02-06T07:01")
    assert quiet.finish_after(start, 0) == start
    assert quiet.finish_after(start, math.inf) == math.inf


def test_finish_after_inverts_sending_seconds() -> None:
    quiet = QuietHours(["21:00-07:00", "11:30-13:00"], "Europe/Berlin")
    start = at("2024-03-29T10:00", BERLIN)
    for needed in (1.0, 5 * HOUR, 3 * DAY, 17 * DAY + 123.0):
        finish = quiet.finish_after(start, needed)
        assert quiet.sending_seconds(start, finish) == pytest.approx(needed)
        assert not quiet.is_quiet(finish - 0.5)


async def test_a_sender_sleeps_through_quiet_hours_on_a_manual_clock() -> None:
    """The engine's pattern: send only outside quiet hours, the backlog resumes after."""
    quiet = QuietHours(["21:00-07:00"], "Asia/Jakarta")
    clock = ManualClock(at("2024-02-05T20:59:58"))
    sent: list[float] = []

    async def sender(backlog: int) -> None:
        for _ in range(backlog):
            now = await wait_until_sendable(clock, quiet)
            sent.append(now)
            await clock.sleep_until(now + 1)  # one message per second

    async def settle() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    task = asyncio.create_task(sender(4))
    await settle()
    clock.advance(1)
    await settle()
    clock.advance(1)  # 21:00: quiet
    await settle()
    clock.set(at("2024-02-06T03:00"))
    await settle()
    assert sent == [at("2024-02-05T20:59:58"), at("2024-02-05T20:59:59")]  # none at night
    clock.set(at("2024-02-06T07:00"))
    for _ in range(3):
        await settle()
        clock.advance(1)
    await asyncio.wait_for(task, 1)
    assert sent[2:] == [at("2024-02-06T07:00"), at("2024-02-06T07:00:01")]
    assert not any(quiet.is_quiet(t) for t in sent)


# --- waves ---------------------------------------------------------------------------------


def test_one_wave_without_repeat() -> None:
    c = campaign(start_at="2024-02-05T09:00", deadline="2024-02-05T21:00")
    assert waves(c) == [
        Wave("jaga-persatuan", "jaga-persatuan", 0, at("2024-02-05T09:00"), at("2024-02-05T21:00"))
    ]
    assert waves(campaign()) == [Wave("jaga-persatuan", "jaga-persatuan", 0, None, None)]


def test_weekly_waves_are_named_by_local_date_and_shift_the_deadline() -> None:
    c = campaign(
        start_at="2023-12-04T07:00",
        deadline="2023-12-06T21:00",
        repeat={"every": "7d", "until": "2024-01-01T07:00"},
    )
    found = waves(c)
    assert [w.name for w in found] == [
        "jaga-persatuan@2023-12-04",
        "jaga-persatuan@2023-12-11",
        "jaga-persatuan@2023-12-18",
        "jaga-persatuan@2023-12-25",
        "jaga-persatuan@2024-01-01",
    ]
    assert [w.index for w in found] == [0, 1, 2, 3, 4]
    assert found[2].start == at("2023-12-18T07:00")
    assert found[2].deadline == at("2023-12-20T21:00")
    # '@' is not allowed in topic names: every wave dead-letters to the campaign's topic
    assert {w.dead_letter_topic for w in found} == {"jaga-persatuan.rejected"}


def test_wave_name_uses_the_local_date_not_utc() -> None:
    # 06:00 in Jakarta is 23:00 UTC the day before
    c = campaign(start_at="2024-02-05T06:00+07:00", repeat={"every": "1d", "until": "2024-02-06"})
    assert [w.name for w in waves(c)] == ["jaga-persatuan@2024-02-05"]


def test_waves_keep_local_wall_time_across_dst() -> None:
    c = campaign(
        timezone="Europe/Berlin",
        start_at="2024-03-24T09:00",
        repeat={"every": "7d", "until": "2024-04-07T09:00"},
    )
    starts = [w.start for w in waves(c)]
    assert starts == [
        at(d, BERLIN) for d in ("2024-03-24T09:00", "2024-03-31T09:00", "2024-04-07T09:00")
    ]
    assert starts[1] is not None and starts[0] is not None
    assert starts[1] - starts[0] == 7 * DAY - HOUR


def test_sub_daily_waves_carry_the_time_in_their_name() -> None:
    c = campaign(start_at="2024-02-05T09:00", repeat={"every": "6h", "until": "2024-02-05T21:00"})
    assert [w.name for w in waves(c)] == [
        "jaga-persatuan@2024-02-05T0900",
        "jaga-persatuan@2024-02-05T1500",
        "jaga-persatuan@2024-02-05T2100",
    ]
    c = campaign(start_at="2024-02-05T09:00", repeat={"every": "90s", "until": "2024-02-05T09:02"})
    assert [w.name for w in waves(c)][-1] == "jaga-persatuan@2024-02-05T090130"


def test_wave_for_picks_the_running_or_next_wave() -> None:
    c = campaign(
        start_at="2024-02-05T09:00",
        deadline="2024-02-05T21:00",
        repeat={"every": "1d", "until": "2024-02-07T09:00"},
    )
    found = waves(c)
    assert wave_for(found, at("2024-02-01T00:00")).index == 0
    assert wave_for(found, at("2024-02-05T20:00")).index == 0
    assert wave_for(found, at("2024-02-05T22:00")).index == 1
    assert wave_for(found, at("2024-03-01T00:00")).index == 2
    undated = waves(
        campaign(start_at="2024-02-05T09:00", repeat={"every": "1d", "until": "2024-02-07"})
    )
    assert wave_for(undated, at("2024-02-04T00:00")).index == 0
    assert wave_for(undated, at("2024-02-06T10:00")).index == 1


# --- pacing --------------------------------------------------------------------------------


def test_even_pace_spreads_the_remainder_over_the_time_left() -> None:
    quiet = QuietHours()
    assert target_rate(10_000, 0.0, 20.0, quiet, 2000.0) == 500.0
    # capped by the capacity granted
    assert target_rate(100_000, 0.0, 20.0, quiet, 2000.0) == 2000.0


def test_even_pace_only_counts_sending_time() -> None:
    quiet = QuietHours(["21:00-07:00"], "Asia/Jakarta")
    now = at("2024-02-05T19:00")
    deadline = at("2024-02-06T09:00")  # 2 h tonight + 2 h tomorrow morning
    assert target_rate(14_400, now, deadline, quiet, 1000.0) == 1.0


def test_target_rate_edge_cases() -> None:
    quiet = QuietHours(["21:00-07:00"], "Asia/Jakarta")
    now = at("2024-02-05T12:00")
    assert target_rate(0, now, now + 60, quiet, 500.0) == 0.0
    assert target_rate(10, now, now + 60, quiet, 0.0) == 0.0
    assert target_rate(10, now, None, quiet, 500.0) == 500.0  # no deadline
    assert target_rate(10, now, now + 60, quiet, 500.0, pace="asap") == 500.0
    assert target_rate(10, now, now - 1, quiet, 500.0) == 500.0  # already late: catch up
    # only quiet time left before the deadline: send at capacity when allowed
    late = at("2024-02-05T22:00")
    assert target_rate(10, late, at("2024-02-06T06:00"), quiet, 500.0) == 500.0


def test_projected_finish() -> None:
    quiet = QuietHours(["21:00-07:00"], "Asia/Jakarta")
    now = at("2024-02-05T20:00")
    assert projected_finish(now, 0, 0.0, quiet) == now
    assert projected_finish(now, 10, 0.0, quiet) == math.inf
    assert projected_finish(0.0, 10_000, 2000.0, QuietHours()) == 5.0
    # two hours of work at 20:00: half done before 21:00, the rest after 07:00
    assert projected_finish(now, 7200, 1.0, quiet) == at("2024-02-06T08:00")
