"""Waiting out an unreachable Kafka (smsblast.engine.reconnect), with real asyncio timing."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    TopicAuthorizationFailedError,
)

from smsblast import metrics as m
from smsblast.engine.reconnect import describe, retry_delay, transient, until_reachable


def unreachable(step: str) -> float:
    value = m.REGISTRY.get_sample_value("smsblast_kafka_unreachable_total", {"step": step})
    return value or 0.0


def test_what_waiting_can_fix() -> None:
    assert transient(KafkaConnectionError("Unable to bootstrap from [...]"))
    assert transient(NodeNotReadyError())
    assert transient(KafkaTimeoutError())
    assert transient(TimeoutError())
    assert transient(ConnectionRefusedError())
    assert not transient(TopicAuthorizationFailedError())  # no permission: waiting won't help
    assert not transient(LookupError("segment topic 'x' not found"))
    assert not transient(ValueError())


def test_the_delay_doubles_up_to_the_cap() -> None:
    assert [retry_delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert retry_delay(3, first=0.5, cap=1.5) == 1.5


def test_describe_names_the_type_once() -> None:
    assert describe(KafkaConnectionError("Unable to bootstrap")) == (
        "KafkaConnectionError: Unable to bootstrap"
    )
    assert describe(LookupError("topic 'x' not found")) == "LookupError: topic 'x' not found"
    assert describe(TimeoutError()) == "TimeoutError"


async def test_retries_until_kafka_answers_and_logs_each_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]")
        return "connected"

    before = unreachable("unit")
    with caplog.at_level(logging.WARNING, "smsblast.engine"):
        result = await until_reachable("unit", attempt, asyncio.Event(), first=0.01, cap=0.02)
    assert (result, calls) == ("connected", 3)
    assert unreachable("unit") - before == 2
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert warnings[0].startswith("unit: Kafka unreachable (KafkaConnectionError: Unable to")
    assert "(1 failed so far)" in warnings[0] and "(2 failed so far)" in warnings[1]


async def test_an_error_waiting_cannot_fix_is_raised_at_once() -> None:
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise TopicAuthorizationFailedError()

    with pytest.raises(TopicAuthorizationFailedError):
        await until_reachable("unit", attempt, asyncio.Event(), first=0.01)
    assert calls == 1


async def test_a_stop_while_waiting_to_retry_returns_none() -> None:
    stopped = asyncio.Event()

    async def attempt() -> None:
        raise KafkaConnectionError("down")

    asyncio.get_running_loop().call_later(0.2, stopped.set)
    started = asyncio.get_running_loop().time()
    assert await until_reachable("unit", attempt, stopped, first=30.0) is None
    assert asyncio.get_running_loop().time() - started < 5.0  # not the 30 s delay


async def test_a_stop_during_a_hung_attempt_cancels_it_and_it_cleans_up() -> None:
    stopped = asyncio.Event()
    cleaned = asyncio.Event()

    async def attempt() -> None:
        try:
            await asyncio.sleep(3600)  # a broker that accepts and never answers
        finally:
            cleaned.set()  # what _connect does: close the half-started consumer

    asyncio.get_running_loop().call_later(0.2, stopped.set)
    assert await asyncio.wait_for(until_reachable("unit", attempt, stopped), 10) is None
    assert cleaned.is_set()


async def test_cancelling_the_wait_cancels_the_attempt_too() -> None:
    cleaned = asyncio.Event()

    async def attempt() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.set()

    waiting = asyncio.create_task(until_reachable("unit", attempt, asyncio.Event()))
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert cleaned.is_set()  # no attempt left running on its own
