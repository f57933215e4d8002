"""The opt-out list: numbers that refused broadcast messages and must never get one.

Sources:

* a file (:func:`load_file`): one number per line in any accepted spelling; ``#`` starts a
  comment (whole line or the rest of one); blank lines are ignored; bad lines are counted
  and listed as ``(line number, reason)`` in :attr:`OptOutList.rejected`.
* a compacted Kafka topic (:func:`load_topic`, then optionally :meth:`OptOutList.follow`):
  key = the number (any spelling; producers should use the normalised one, so that every
  record for a number lands on one partition and compaction keeps the latest); value
  ``null`` or empty = opted back in (tombstone), any other value = opted out. Records are
  applied in offset order per partition, so a later record wins.

The list keeps the normalised numbers (``62812...``) as ints in an :class:`IntSet`: about
8 bytes a number (8.4 MB for a million, against 69.5 MB in a Python ``set`` of ints and
about 110 MB as strings), so a national list of millions fits the engine's memory budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition

from smsblast.intset import IntSet
from smsblast.msisdn import InvalidMsisdn, normalize_msisdn
from smsblast.segments.kafka import TopicNotFound, topic_partitions

__all__ = [
    "MAX_REJECTED_KEPT",
    "OptOutList",
    "TopicNotFound",
    "keep_following",
    "load_file",
    "load_topic",
]

log = logging.getLogger(__name__)

#: At most this many rejected lines/records are kept in :attr:`OptOutList.rejected`.
MAX_REJECTED_KEPT: Final = 1000
_LOGGED_BAD_RECORDS: Final = 20
_LOAD_BATCH: Final = 100_000  # file numbers added to the list at once
_CONSUMER_DEFAULTS: Final[dict[str, Any]] = {
    "group_id": None,  # no consumer group: partitions are assigned by hand
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
}


def _as_int(msisdn: str | int) -> int:
    """The normalised number as an int; raises InvalidMsisdn."""
    if type(msisdn) is int:
        msisdn = str(msisdn)
    if not isinstance(msisdn, str):
        raise InvalidMsisdn("not a string")
    return int(normalize_msisdn(msisdn))


class OptOutList:
    """A set of opted-out numbers, looked up by any spelling of the number.

    Attributes:
        rejected: ``(line number, reason)`` of bad lines from :func:`load_file` (the first
            :data:`MAX_REJECTED_KEPT`); topic records with a bad key are logged instead.
        rejected_count: how many lines or records were rejected in all.
        applied: topic records applied so far (by :func:`load_topic` and :meth:`follow`).
        version: grows whenever a number not in the list is added, so a holder of
            recipients checked earlier knows when to check them again (the engine's armer,
            before it sends a recipient that waited in memory).
    """

    def __init__(self, numbers: Iterable[str | int] = ()) -> None:
        """Raises InvalidMsisdn if one of ``numbers`` is not a mobile number."""
        self._numbers = IntSet(_as_int(n) for n in numbers)  # every one: what lookups read
        self.rejected: list[tuple[int, str]] = []
        self.rejected_count = 0
        self.applied = 0
        self._topic: str | None = None
        self._offsets: dict[int, int] = {}  # partition -> next offset to apply
        self._fixed = IntSet()  # merged from a file (also in _numbers): the topic keeps them
        self.version = 0

    def __contains__(self, msisdn: object) -> bool:
        """True if ``msisdn`` (a string in any spelling, or the normalised int) opted out.

        Anything that is not a valid mobile number is not in the list.
        """
        if type(msisdn) is str:
            if msisdn.startswith("62") and msisdn.isascii() and msisdn.isdigit():
                number = int(msisdn)  # already normalised: the hot path
            else:
                try:
                    number = int(normalize_msisdn(msisdn))
                except InvalidMsisdn:
                    return False
        elif type(msisdn) is int:
            number = msisdn
        else:
            return False
        return number in self._numbers

    def __len__(self) -> int:
        return len(self._numbers)

    def __iter__(self) -> Iterator[str]:
        """The normalised numbers, as strings, in no particular order."""
        return (str(n) for n in self._numbers)

    def __repr__(self) -> str:
        return f"<OptOutList {len(self):,} numbers>"

    def add(self, msisdn: str | int) -> None:
        """Record an opt-out. Raises InvalidMsisdn."""
        if self._numbers.add(_as_int(msisdn)):
            self.version += 1

    def remove(self, msisdn: str | int) -> None:
        """Remove an opt-out (the number opted back in).

        Raises:
            InvalidMsisdn: not a mobile number.
            KeyError: the number was not in the list.
        """
        number = _as_int(msisdn)
        if number not in self._numbers:
            raise KeyError(msisdn)
        self._drop(number)

    def discard(self, msisdn: str | int) -> None:
        """Remove an opt-out if present. Raises InvalidMsisdn."""
        self._drop(_as_int(msisdn))

    def _drop(self, number: int) -> None:
        if number not in self._fixed:  # a number from a file stays
            self._numbers.discard(number)

    def merge(self, other: OptOutList) -> None:
        """Add every number of ``other`` (the file's list) for good: a tombstone on the
        topic (opted back in there), :meth:`remove` or :meth:`discard` do not take out a
        number the file lists."""
        self._fixed.update(other._numbers)
        self._numbers.update(other._numbers)
        self.version += 1

    def apply(self, key: bytes | None, value: bytes | None) -> bool:
        """Apply one opt-out topic record; False (and nothing changed) if the key is bad."""
        if key is None:
            return False
        try:
            number = int(normalize_msisdn(key.decode("ascii")))
        except (UnicodeDecodeError, InvalidMsisdn):
            return False
        if value:
            if self._numbers.add(number):
                self.version += 1
        else:
            self._drop(number)
        self.applied += 1
        return True

    def _reject(self, where: int, reason: str) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_REJECTED_KEPT:
            self.rejected.append((where, reason))

    def _apply_record(self, partition: int, offset: int, key: bytes | None, value: Any) -> None:
        if not self.apply(key, value):
            self.rejected_count += 1
            if self.rejected_count <= _LOGGED_BAD_RECORDS:
                log.warning(
                    "opt-out topic %s partition %d offset %d: key is not a mobile number; "
                    "record ignored",
                    self._topic,
                    partition,
                    offset,
                )

    async def follow(
        self,
        bootstrap: str | list[str],
        topic: str,
        *,
        poll_timeout_ms: int = 500,
        **kafka_kwargs: Any,
    ) -> None:
        """Keep applying new records of ``topic`` until cancelled.

        Starts where :func:`load_topic` stopped for the same topic (otherwise from the
        beginning), so no record is missed or applied twice. Run it as a task next to a
        campaign: ``task = asyncio.create_task(optout.follow(bootstrap, topic))``; cancel the
        task to stop. Partitions added to the topic later are not picked up.

        Raises:
            TopicNotFound: the topic does not exist.
            aiokafka.errors.KafkaError: the broker could not be reached.
        """
        partitions = await topic_partitions(bootstrap, topic, **kafka_kwargs)
        if partitions is None:
            raise TopicNotFound(f"opt-out topic {topic!r} does not exist")
        if self._topic != topic:
            self._topic, self._offsets = topic, {}
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **_consumer(kafka_kwargs))
        try:
            await consumer.start()
            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            for tp in tps:
                offset = self._offsets.get(tp.partition)
                if offset is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, offset)
            while True:
                batches = await consumer.getmany(timeout_ms=poll_timeout_ms)
                for tp, records in batches.items():
                    for r in records:
                        self._apply_record(tp.partition, r.offset, r.key, r.value)
                    if records:
                        self._offsets[tp.partition] = records[-1].offset + 1
        finally:
            await consumer.stop()


async def keep_following(
    optout: OptOutList,
    bootstrap: str | list[str],
    topic: str,
    stopped: asyncio.Event,
    **kafka_kwargs: Any,
) -> None:
    """Apply the refusals that reach ``topic`` during a run (:meth:`OptOutList.follow`,
    which returns only by an error) until ``stopped`` is set, waiting out an unreachable
    Kafka. An error waiting cannot fix (the topic deleted, no permission) is logged and
    ends the following: the list stays as it is, and new refusals apply from the next
    start."""
    from smsblast.engine.reconnect import describe, until_reachable

    try:
        await until_reachable(
            "optout", lambda: optout.follow(bootstrap, topic, **kafka_kwargs), stopped
        )
    except Exception as exc:
        log.error(
            "opt-out topic %s: no longer followed (%s); refusals that arrive now apply "
            "from the next start",
            topic,
            describe(exc),
        )


def _consumer(kafka_kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**_CONSUMER_DEFAULTS, **kafka_kwargs}


def load_file(path: str | Path) -> OptOutList:
    """Read an opt-out file: one number per line, ``#`` comments and blank lines ignored.

    Bad lines do not stop the load: they are counted in ``rejected_count`` and listed in
    ``rejected`` as ``(line number, reason)``; the reason never contains the number.

    Raises:
        OSError: the file cannot be read.
    """
    optout = OptOutList()
    numbers: list[int] = []
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                numbers.append(int(normalize_msisdn(text)))
            except InvalidMsisdn as exc:
                optout._reject(line_no, exc.reason)
            if len(numbers) >= _LOAD_BATCH:  # bounded: a file of millions of lines
                optout._numbers.update(numbers)
                numbers.clear()
    optout._numbers.update(numbers)
    return optout


async def load_topic(
    bootstrap: str | list[str],
    topic: str,
    *,
    timeout: float = 60.0,
    **kafka_kwargs: Any,
) -> OptOutList:
    """Read a compacted opt-out topic from the beginning up to its end offsets at the start.

    Records already fetched past those offsets are applied too (they are newer); records
    produced later are left to :meth:`OptOutList.follow`.

    No consumer group: partitions are assigned by hand and nothing is committed.
    ``kafka_kwargs`` are :class:`aiokafka.AIOKafkaConsumer` settings. Records with a bad key
    are skipped, counted in ``rejected_count`` and logged (without the key). The result
    remembers where it stopped, for :meth:`OptOutList.follow`.

    Raises:
        TopicNotFound: the topic does not exist.
        TimeoutError: the snapshot was not read within ``timeout`` seconds.
        aiokafka.errors.KafkaError: the broker could not be reached.
    """
    optout = OptOutList()
    optout._topic = topic
    async with asyncio.timeout(timeout):
        partitions = await topic_partitions(bootstrap, topic, **kafka_kwargs)
        if partitions is None:
            raise TopicNotFound(f"opt-out topic {topic!r} does not exist")
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **_consumer(kafka_kwargs))
        try:
            await consumer.start()
            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end: dict[TopicPartition, int] = await consumer.end_offsets(tps)
            remaining = {tp for tp in tps if await consumer.position(tp) < end[tp]}
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=200)
                # Every fetched record is applied, also past the end offset: it is newer,
                # and Tansu 0.6 reports the end of a partition as the first offset of its
                # last record batch + 1, so stopping there would drop that batch's rest.
                for tp, records in batches.items():
                    for r in records:
                        optout._apply_record(tp.partition, r.offset, r.key, r.value)
                for tp in list(remaining):
                    if await consumer.position(tp) >= end[tp]:
                        remaining.discard(tp)
            positions = {tp.partition: await consumer.position(tp) for tp in tps}
        finally:
            await consumer.stop()
    optout._offsets = positions
    if optout.rejected_count > _LOGGED_BAD_RECORDS:
        log.warning(
            "opt-out topic %s: %d records with a bad key ignored", topic, optout.rejected_count
        )
    return optout
