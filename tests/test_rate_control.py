"""Adaptive rate control per bind (AIMD) and the weighted share of a route between lanes."""

from __future__ import annotations

import asyncio

import pytest

from smsblast.engine.congestion import RateController, RecentCount
from smsblast.engine.pool import Lane, share_out
from smsblast.metrics import REGISTRY
from smsblast.simulator import Simulator
from tests.conftest import TopicFactory
from tests.engine_stack import RouteSpec, campaign, engine_config, fill, make_engine
from tests.engine_stack import simulator_profile as sim_profile

# ------------------------------------------------------------------ the controller, pure


def test_throttle_cuts_to_what_the_smsc_accepted() -> None:
    rc = RateController(1000)
    assert rc.congested(now=5.0, accepted_1s=700)
    assert rc.rate == pytest.approx(700 * 0.97)


def test_one_cut_per_hold_period() -> None:
    rc = RateController(1000, hold=1.0, decrease=0.95)
    assert rc.congested(5.0, 700)
    assert not rc.congested(5.5, 100)  # the SMSC's window still counts the old burst
    assert rc.rate == pytest.approx(665)
    assert rc.congested(6.1, 600)
    assert rc.rate == pytest.approx(570)


def test_probes_back_up_additively_never_above_the_ceiling() -> None:
    rc = RateController(1000, increase=0.02, hold=1.0, decrease=0.95)
    rc.congested(0.0, 500)
    rc.tick(0.5)  # inside the hold: no increase
    assert rc.rate == pytest.approx(475)
    rc.tick(1.5)  # 1 s since the last tick: +2% of 1000
    assert rc.rate == pytest.approx(495)
    for t in range(2, 200):
        rc.tick(float(t))
    assert rc.rate == 1000


def test_rate_never_falls_below_the_floor() -> None:
    rc = RateController(1000, floor=0.01)
    for i in range(200):
        rc.congested(float(i * 2), 0)
    assert rc.rate == pytest.approx(10)


def test_rising_latency_counts_as_congestion() -> None:
    rc = RateController(1000)
    for i in range(100):
        assert not rc.latency(i * 0.01, 0.005, 900)
    cut = False
    for i in range(200):
        cut = cut or rc.latency(1.0 + i * 0.01, 0.8, 900)
    assert cut and rc.rate < 1000


def test_recent_count_forgets_after_a_second() -> None:
    c = RecentCount(10)
    c.add(5)
    for _ in range(9):
        c.rotate()
    assert c.total == 5
    c.rotate()
    assert c.total == 0


# ------------------------------------------------------------------ weighted share


def lanes(*specs: tuple[float, int]) -> list[tuple[Lane, int]]:
    return [(Lane(object(), w), allow) for w, allow in specs]


def test_share_follows_weights() -> None:
    assert share_out(90, lanes((1, 1000), (2, 1000))) == [30, 60]


def test_a_lane_that_cannot_use_its_share_leaves_it_to_others() -> None:
    assert share_out(100, lanes((8, 10), (1, 1000))) == [10, 90]


def test_low_weight_lane_is_not_starved() -> None:
    got = share_out(10, lanes((8, 1000), (1, 1000)))
    assert got[1] >= 1 and sum(got) == 10


def test_share_never_exceeds_what_is_there() -> None:
    assert share_out(100, lanes((1, 3), (1, 4))) == [3, 4]
    assert share_out(5, lanes((1, 0), (1, 0))) == [0, 0]


# ------------------------------------------------------------------ against the simulator

REAL_TPS = 700
CONFIGURED_TPS = 1000


async def test_adapts_to_an_smsc_throttling_at_70_percent(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path
) -> None:
    """The SMSC allows 70% of the configured TPS: the bind settles near the real limit
    within 10 s and, settled, gets ESME_RTHROTTLED for under 1% of its submits."""
    topic = await kafka_topic(partitions=1)
    seconds = 16
    await fill(kafka_bootstrap, topic, [f"62812{i:08d}" for i in range(REAL_TPS * seconds)])
    smsc_route = RouteSpec("telkomsel", ("812",), tps=REAL_TPS, window=20)
    route = RouteSpec("telkomsel", ("812",), tps=CONFIGURED_TPS, window=20)
    async with Simulator(sim_profile([smsc_route], receipts={"enabled": False})) as smsc:
        config = engine_config(kafka_bootstrap, smsc.port, [route], str(tmp_path / "l.sqlite"))
        engine, ledger = make_engine(config, [campaign("aimd", [topic], registered_delivery=False)])
        labels = {"route": "telkomsel", "bind": "telkomsel-0#1"}
        samples: list[tuple[float, float, float]] = []
        # The registry is process-wide: earlier tests may have counted on these labels.
        before = REGISTRY.get_sample_value("smsblast_bind_submits_total", labels) or 0

        async def sample() -> None:
            for _ in range(seconds * 3):
                await asyncio.sleep(1.0)
                samples.append(
                    (
                        REGISTRY.get_sample_value("smsblast_bind_submits_total", labels) or 0,
                        REGISTRY.get_sample_value("smsblast_bind_throttled_total", labels) or 0,
                        REGISTRY.get_sample_value("smsblast_tps_target", labels) or 0,
                    )
                )

        sampler = asyncio.create_task(sample())
        await asyncio.wait_for(engine.run(until_done=True), seconds * 3)
        sampler.cancel()
        await ledger.close()
        stats = smsc.stats()
    assert stats["totals"]["duplicates"] == 0
    assert stats["totals"]["submits_accepted"] == REAL_TPS * seconds
    # Settled (from 10 s after the first send, while there was backlog): the mean accepted
    # rate within 15% of the real limit, and throttles under 1% of the submits. The sawtooth
    # (cut to 0.97 x the last second's accepted count, +2% of the TPS a second, and a limiter
    # that after each cut keeps every sliding second under the new rate) averages 87-91% of
    # the limit over a 4-5 s window, as measured here: a 10% bound failed one run in two.
    start = next(i for i, (submits, *_) in enumerate(samples) if submits > before)  # first sends
    settled = samples[start + 10 : start + seconds - 1]
    assert len(settled) >= 4, str(samples)
    (s0, t0, _), (s1, t1, _) = settled[0], settled[-1]
    accepted_per_s = ((s1 - s0) - (t1 - t0)) / (len(settled) - 1)
    print(
        f"settled: {accepted_per_s:.0f} accepted/s against a real limit of {REAL_TPS}; "
        f"throttled {t1 - t0:.0f} of {s1 - s0:.0f} submits; all: {samples[-1]}"
    )
    assert REAL_TPS * 0.85 <= accepted_per_s <= REAL_TPS, str(samples)
    assert (t1 - t0) < 0.01 * (s1 - s0), str(samples)
