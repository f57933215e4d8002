"""The opt-out list: lookups by any spelling, files, and a compacted topic with tombstones."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from smsblast.msisdn import InvalidMsisdn
from smsblast.optout import OptOutList, TopicNotFound, keep_following, load_file, load_topic
from smsblast.segments.kafka import produce, topic_partitions
from tests.conftest import TopicFactory

A, B, C, D = "6281234567890", "6285712345678", "6287712345678", "6288112345678"


def test_lookup_by_any_spelling_of_the_number() -> None:
    optout = OptOutList(["0812-3456-7890"])
    for spelling in (A, "081234567890", "+62 812 3456 7890", "81234567890", int(A)):
        assert spelling in optout
    assert B not in optout
    assert "0812" not in optout  # not a number: not opted out, and no exception
    assert "not a number" not in optout
    assert None not in optout
    assert len(optout) == 1
    assert list(optout) == [A]


def test_version_grows_only_when_a_number_is_added() -> None:
    """The engine's armer checks queued recipients again only after the version moved."""
    optout = OptOutList([A])
    start = optout.version
    optout.add(A)  # already there
    optout.discard(A)
    optout.discard(B)
    assert optout.apply(B.encode(), None)  # a tombstone
    assert optout.version == start
    optout.add(B)
    assert optout.version == start + 1
    assert optout.apply(C.encode(), b"STOP")
    assert not optout.apply(b"not a number", b"STOP")
    assert optout.version == start + 2
    optout.merge(OptOutList([D]))
    assert optout.version == start + 3 and D in optout


def test_add_remove_discard() -> None:
    optout = OptOutList()
    optout.add("0857-1234-5678")
    optout.add(int(C))
    optout.add(B)  # again: still one entry
    assert len(optout) == 2 and B in optout and C in optout
    optout.remove("+6285712345678")
    assert B not in optout
    with pytest.raises(KeyError):
        optout.remove(B)
    optout.discard(B)  # absent: no error
    optout.discard("087712345678")
    assert len(optout) == 0
    with pytest.raises(InvalidMsisdn):
        optout.add("021-555-0123")
    with pytest.raises(InvalidMsisdn):
        OptOutList(["0812"])


def test_numbers_are_stored_as_ints() -> None:
    optout = OptOutList([A, B])
    assert {type(n) for n in optout._numbers} == {int}


def test_load_file_skips_comments_and_blanks_and_reports_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "optout.txt"
    path.write_text(
        "\ufeff# refusals collected by the call centre\n"  # 1
        "0812-3456-7890\n"  # 2
        "\n"  # 3
        "   +62 857 1234 5678   # asked on 2024-03-01\n"  # 4
        "021-555-0123\n"  # 5 landline
        "0812\n"  # 6 too short
        "6281234567890\n"  # 7 duplicate of line 2
        "0877 1234 5678\r\n"  # 8
        "   # indented comment\n"  # 9
        "call me maybe\n",  # 10
        encoding="utf-8",
    )
    optout = load_file(path)
    assert sorted(optout) == [A, B, C]
    assert [line for line, _ in optout.rejected] == [5, 6, 10]
    assert optout.rejected_count == 3
    assert all("555" not in reason and reason for _, reason in optout.rejected)


def test_load_file_of_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_file(tmp_path / "missing.txt")


async def send_all(
    bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_load_topic_applies_records_in_order_and_tombstones_opt_back_in(
    kafka_bootstrap: str, kafka_topic: TopicFactory, caplog: pytest.LogCaptureFixture
) -> None:
    topic = await kafka_topic(prefix="optout", partitions=3, compacted=True)
    k = str.encode
    await send_all(
        kafka_bootstrap,
        topic,
        [
            (k(A), b"1"),
            (k(B), b"1"),
            (k(A), None),  # A opted back in: tombstone
            (k(C), b"opted out by SMS STOP"),
            (k(C), b""),  # empty value: also a tombstone
            (k(D), b""),  # tombstone first...
            (k(D), b"1"),  # ...then opted out again: the later record wins
            (b"0212345678", b"1"),  # landline key: ignored, counted
            (None, b"1"),  # no key: ignored, counted
        ],
    )
    with caplog.at_level(logging.WARNING, logger="smsblast.optout"):
        optout = await load_topic(kafka_bootstrap, topic, timeout=20)
    assert sorted(optout) == [B, D]
    assert optout.rejected_count == 2
    assert optout.applied == 7
    assert "0212345678" not in caplog.text  # the bad key is not logged
    assert "key is not a mobile number" in caplog.text


async def test_keys_in_any_spelling_count_as_the_same_number(
    kafka_bootstrap: str, kafka_topic: TopicFactory
) -> None:
    # One partition: records for one number spelled differently keep their order.
    topic = await kafka_topic(prefix="optout", partitions=1, compacted=True)
    await send_all(
        kafka_bootstrap,
        topic,
        [(b"0812-3456-7890", b"1"), (b"+6281234567890", None), (b"085712345678", b"1")],
    )
    optout = await load_topic(kafka_bootstrap, topic)
    assert list(optout) == [B]


async def test_load_topic_of_an_empty_topic_returns_at_once(
    kafka_bootstrap: str, kafka_topic: TopicFactory
) -> None:
    topic = await kafka_topic(prefix="optout", partitions=2, compacted=True)
    started = time.monotonic()
    optout = await load_topic(kafka_bootstrap, topic, timeout=10)
    assert len(optout) == 0
    assert time.monotonic() - started < 5


async def test_load_topic_reads_every_record_of_large_batches(
    kafka_bootstrap: str, kafka_topic: TopicFactory
) -> None:
    # Batches of hundreds of records: Tansu reports a partition's end offset as the first
    # offset of its last batch + 1, so a reader stopping there would lose opt-outs.
    topic = await kafka_topic(prefix="optout", partitions=2, compacted=True)
    numbers = [b"62812%08d" % i for i in range(5_000)]
    await produce(kafka_bootstrap, topic, [(n, b"1") for n in numbers], max_batch_size=16_384)
    optout = await load_topic(kafka_bootstrap, topic)
    assert len(optout) == 5_000
    assert sum(optout._offsets.values()) == 5_000  # where follow() will continue


async def test_missing_topic_is_an_error_and_is_not_created(kafka_bootstrap: str) -> None:
    topic = "optout-does-not-exist-7f3a"
    with pytest.raises(TopicNotFound):
        await load_topic(kafka_bootstrap, topic)
    assert await topic_partitions(kafka_bootstrap, topic) is None


async def test_load_topic_is_bounded_in_time_even_if_the_broker_never_answers() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # accept the connection, read requests, never answer
        await reader.read()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await load_topic(f"127.0.0.1:{port}", "optout", timeout=0.5)
        assert time.monotonic() - started < 3
        assert accepted  # it really connected and waited for an answer
    finally:
        server.close()
        for writer in accepted:
            writer.close()
        await server.wait_closed()


async def test_follow_applies_new_records_while_a_campaign_runs(
    kafka_bootstrap: str, kafka_topic: TopicFactory
) -> None:
    topic = await kafka_topic(prefix="optout", partitions=3, compacted=True)
    await send_all(kafka_bootstrap, topic, [(A.encode(), b"1"), (B.encode(), b"1")])
    optout = await load_topic(kafka_bootstrap, topic)
    assert sorted(optout) == [A, B] and optout.applied == 2

    follower = asyncio.create_task(optout.follow(kafka_bootstrap, topic, poll_timeout_ms=100))
    try:
        await send_all(kafka_bootstrap, topic, [(C.encode(), b"1"), (A.encode(), None)])
        await eventually(lambda: C in optout and A not in optout)
        assert sorted(optout) == [B, C]
        assert optout.applied == 4  # the snapshot's records were not applied again
    finally:
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower


async def test_follow_without_a_snapshot_reads_from_the_beginning(
    kafka_bootstrap: str, kafka_topic: TopicFactory
) -> None:
    topic = await kafka_topic(prefix="optout", partitions=2, compacted=True)
    await send_all(kafka_bootstrap, topic, [(A.encode(), b"1"), (B.encode(), b"1")])
    optout = OptOutList()
    follower = asyncio.create_task(optout.follow(kafka_bootstrap, topic, poll_timeout_ms=100))
    try:
        await eventually(lambda: len(optout) == 2)
    finally:
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower


async def test_a_file_number_stays_opted_out_whatever_the_topic_says(
    kafka_bootstrap: str, kafka_topic: TopicFactory
) -> None:
    topic = await kafka_topic(prefix="optout", partitions=2, compacted=True)
    await send_all(kafka_bootstrap, topic, [(A.encode(), b"1"), (B.encode(), b"1")])
    optout = await load_topic(kafka_bootstrap, topic)
    optout.merge(OptOutList([A, C]))  # the file lists A and C
    assert sorted(optout) == [A, B, C]
    stop = asyncio.Event()
    follower = asyncio.create_task(keep_following(optout, kafka_bootstrap, topic, stop))
    try:
        # A and B opt back in on the topic; D opts out
        await send_all(
            kafka_bootstrap, topic, [(A.encode(), None), (B.encode(), None), (D.encode(), b"1")]
        )
        await eventually(lambda: D in optout)
        assert sorted(optout) == [A, C, D]  # B left; A stays: the file says so
    finally:
        stop.set()
        await asyncio.wait_for(follower, 10)  # a stop ends the following by itself


async def test_keep_following_ends_with_an_error_it_cannot_wait_out(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    optout = OptOutList([A])
    with caplog.at_level(logging.ERROR, logger="smsblast.optout"):
        await asyncio.wait_for(
            keep_following(optout, kafka_bootstrap, "no-such-optouts", asyncio.Event()), 30
        )
    assert "opt-out topic no-such-optouts: no longer followed (TopicNotFound" in caplog.text
    assert sorted(optout) == [A]  # the list stays as it was
