"""metrics.observe_many: the same histogram as observe() value by value."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram

from smsblast.metrics import observe_many


def _samples(h: Histogram) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("le", "")): s.value
        for metric in h.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def test_observe_many_matches_observe_one_by_one() -> None:
    buckets = (0.001, 0.005, 0.01, 0.1, 1.0, 10.0)
    one = Histogram("one_seconds", "x", ["route"], buckets=buckets, registry=CollectorRegistry())
    many = Histogram("one_seconds", "x", ["route"], buckets=buckets, registry=CollectorRegistry())
    rng = random.Random(7)
    # Values on every bound (le is inclusive), between them, and past the last one.
    values = [*buckets, 0.0, 99.0] + [rng.expovariate(20) for _ in range(5000)]
    for v in values:
        one.labels("xl").observe(v)
    observe_many(many.labels("xl"), values[:100])
    observe_many(many.labels("xl"), values[100:])
    observe_many(many.labels("xl"), [])
    expected = _samples(one)
    got = _samples(many)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert abs(got[key] - value) < 1e-9, key
    assert got["one_seconds_count", ""] == len(values)
    assert got["one_seconds_bucket", "0.001"] == sum(1 for v in values if v <= 0.001)
