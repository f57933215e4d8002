"""The reader's choice between reading on (a full route parks its overflow) and holding
the batch a moment for a busy route (engine.readgate): pure, so driven with plain numbers."""

from __future__ import annotations

import pytest

from smsblast.engine.readgate import HOLD_BUSY, CpuLoad, RouteRoom, expected_parts, hold

BUSY = 0.95  # the engine's loop using 95% of a core
IDLE = 0.30


def test_expected_parts_scale_the_last_batch_to_the_next_one() -> None:
    # last batch: 1,000 records, half telkomsel; multipart xl (3 parts each)
    last = {"telkomsel": 500, "xl": 600, "smartfren": 50}
    caps = {"telkomsel": 20_000, "xl": 20_000, "smartfren": 20_000}

    assert expected_parts(last, 1000, 5000, caps) == {
        "telkomsel": 2500,
        "xl": 3000,
        "smartfren": 250,
    }


def test_expected_parts_never_ask_more_than_half_a_route_can_hold() -> None:
    # a lane capped at 1,000 parts can never have room for 2,500: asking for it would hold
    # the reader the full second on every batch
    assert expected_parts({"telkomsel": 500}, 1000, 5000, {"telkomsel": 1000}) == {"telkomsel": 500}


def test_nothing_is_expected_before_the_first_batch() -> None:
    assert expected_parts({}, 0, 5000, {"telkomsel": 20_000}) == {}


def test_a_busy_route_that_drains_its_shortfall_soon_holds_the_reader() -> None:
    # telkomsel needs 2,500 parts of room, has 1,000, and sends 8,000 a second
    routes = [RouteRoom(2500, 1000, 8000.0, True), RouteRoom(1250, 19_000, 4000.0, True)]

    assert hold(routes, BUSY)


def test_the_reader_reads_on_when_every_route_has_room() -> None:
    routes = [RouteRoom(2500, 2500, 8000.0, True), RouteRoom(1250, 19_000, 4000.0, True)]

    assert not hold(routes, BUSY)


def test_a_slow_route_parks_its_overflow_instead_of_holding_the_others() -> None:
    # 100 parts a second would need 15 s for its 1,500-part shortfall
    routes = [RouteRoom(2500, 1000, 100.0, True), RouteRoom(1250, 19_000, 4000.0, True)]

    assert not hold(routes, BUSY)


@pytest.mark.parametrize(("rate", "up"), [(8000.0, False), (0.0, True)], ids=["down", "paused"])
def test_a_route_that_is_down_or_paused_never_holds_the_reader(rate: float, up: bool) -> None:
    assert not hold([RouteRoom(2500, 0, rate, up)], BUSY)


def test_a_slow_route_does_not_hide_a_busy_one() -> None:
    # smartfren is slow and will park its overflow; telkomsel is busy and worth waiting for
    routes = [RouteRoom(250, 0, 10.0, True), RouteRoom(2500, 2000, 8000.0, True)]

    assert hold(routes, BUSY)


def test_an_engine_with_cpu_to_spare_never_holds_the_reader() -> None:
    # A route capped by its TPS while the loop idles: holding would pace every route to it
    # (head-of-line blocking); its overflow parks and the others keep their pace.
    routes = [RouteRoom(2500, 1000, 8000.0, True)]

    assert not hold(routes, IDLE)
    assert not hold(routes, HOLD_BUSY - 0.01)
    assert hold(routes, HOLD_BUSY)


def test_cpu_load_is_cpu_time_over_wall_time_per_completed_span() -> None:
    wall = [100.0]
    cpu = [5.0]
    load = CpuLoad(span=1.0, wall=lambda: wall[0], cpu=lambda: cpu[0])

    assert load.sample() == 0.0  # no span completed yet
    wall[0], cpu[0] = 100.5, 5.5
    assert load.sample() == 0.0  # half a span: the mark stays
    wall[0], cpu[0] = 101.25, 6.0
    assert load.sample() == pytest.approx(0.8)  # 1.0 s of CPU in 1.25 s
    wall[0], cpu[0] = 102.25, 6.25
    assert load.sample() == pytest.approx(0.25)  # the next span stands on its own
