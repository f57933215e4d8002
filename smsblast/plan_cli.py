"""`smsblast plan [CAMPAIGN ...]`: will the campaigns finish by their deadlines?

Counts every campaign's recipients per route exactly, by streaming its segment topics up to
their current ends (no consumer group: nothing is committed, the engine's position is not
touched), then projects each route at its granted capacity with quiet hours skipped.
Details: docs/scheduling.md.

Exit status: 0 every campaign is on time (or has no deadline), 1 at least one route of one
campaign is late, 2 configuration error or the segments could not be read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from smsblast.aio import run as run_async
from smsblast.config import (
    DEFAULT_CAMPAIGNS_PATH,
    Campaign,
    ConfigError,
    EngineConfig,
    check_campaign_routes,
    load_campaigns,
    load_engine_config,
)
from smsblast.engine.snapshot import SegmentNotFound, segment_end_offsets
from smsblast.optout import OptOutList, TopicNotFound, load_file, load_topic
from smsblast.plan import (
    CampaignPlan,
    RecipientCounter,
    SegmentCount,
    format_plan,
    plan_json,
    project,
    route_capacity,
)
from smsblast.schedule import load_timezone

__all__ = ["EXIT_CONFIG", "EXIT_LATE", "EXIT_OK", "add_parser", "count_segments", "plan_main"]

EXIT_OK, EXIT_LATE, EXIT_CONFIG = 0, 1, 2


def add_parser(sub: Any) -> None:
    """Register ``plan`` on the ``smsblast`` subcommands."""
    plan = sub.add_parser(
        "plan",
        help="count recipients per route and project whether campaigns meet their deadlines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plan.add_argument("names", nargs="*", metavar="CAMPAIGN", help="campaigns (default: all)")
    plan.add_argument("--json", action="store_true", help="print JSON for scripts")
    plan.add_argument(
        "--config", help="engine config (default $SMSBLAST_CONFIG or config/smsblast.yaml)"
    )
    plan.add_argument("--campaigns", default=DEFAULT_CAMPAIGNS_PATH, help="campaigns file")
    plan.add_argument(
        "--at",
        type=_iso_time,
        metavar="ISO-TIME",
        help="plan as if sending could start at this time (default now); without an offset "
        "it is read in each campaign's timezone",
    )
    plan.add_argument(
        "--timeout", type=float, default=600.0, help="seconds allowed to read each campaign"
    )
    plan.set_defaults(func=plan_main)


def _iso_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time like 2024-02-05T07:00 or 2024-02-05T07:00+07:00"
        ) from None


def _epoch(at: datetime | None, campaign: Campaign) -> float | None:
    if at is None:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=load_timezone(campaign.timezone))
    return at.timestamp()


def plan_main(args: argparse.Namespace) -> int:
    """Run ``smsblast plan``; returns the exit status."""
    try:
        config = load_engine_config(args.config)
        campaigns_file = load_campaigns(args.campaigns)
        check_campaign_routes(config, campaigns_file)
        missing = [name for name in args.names if name not in campaigns_file.names()]
        if missing:
            raise ConfigError(
                args.campaigns,
                [("campaigns", f"no campaign named {name!r}") for name in missing],
            )
        campaigns = [c for c in campaigns_file.campaigns if not args.names or c.name in args.names]
    except ConfigError as exc:
        print(f"smsblast plan: configuration error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        plans = run_async(_plan_all(config, campaigns, args.at, args.timeout))
    except (SegmentNotFound, TopicNotFound, KafkaError, TimeoutError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        print(f"smsblast plan: cannot read the segments: {reason}", file=sys.stderr)
        return EXIT_CONFIG
    if args.json:
        print(json.dumps(plan_json(plans), indent=2))
    else:
        print("\n\n".join(format_plan(plan) for plan in plans))
    return EXIT_OK if all(plan.on_time for plan in plans) else EXIT_LATE


async def _plan_all(
    config: EngineConfig, campaigns: list[Campaign], at: datetime | None, timeout: float
) -> list[CampaignPlan]:
    optout = await _optout(config)
    plans: list[CampaignPlan] = []
    for campaign in campaigns:
        counts = await count_segments(config, campaign, optout, timeout=timeout)
        now = _epoch(at, campaign)
        capacities = {route: route_capacity(config, campaign, route) for route in config.routes}
        plans.append(project(campaign, counts, capacities, time.time() if now is None else now))
    return plans


async def _optout(config: EngineConfig) -> OptOutList:
    """The opt-out list the engine would use (file and topic, as configured)."""
    optout = OptOutList()
    if config.optout.file:
        optout = load_file(config.optout.file)
    if config.optout.topic:
        from_topic = await load_topic(
            config.kafka.bootstrap_servers, config.optout.topic, **config.kafka.aiokafka_kwargs()
        )
        for number in from_topic:
            optout.add(number)
    return optout


async def count_segments(
    config: EngineConfig, campaign: Campaign, optout: OptOutList, *, timeout: float = 600.0
) -> SegmentCount:
    """Stream ``campaign``'s segment topics from the beginning to their ends as of now and
    count the recipients (see :class:`smsblast.plan.RecipientCounter`, memory included).

    Raises:
        SegmentNotFound: a segment topic does not exist.
        TimeoutError: the segments were not read within ``timeout`` seconds.
        aiokafka.errors.KafkaError: the broker could not be reached.
    """
    kafka = config.kafka.aiokafka_kwargs()
    bootstrap = config.kafka.bootstrap_servers
    counter = RecipientCounter(config, campaign, optout)
    async with asyncio.timeout(timeout):
        ends = await segment_end_offsets(bootstrap, list(campaign.segments), **kafka)
        todo = {TopicPartition(t, p): end for (t, p), end in ends.items() if end > 0}
        if not todo:
            return counter.result()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **kafka,
        )
        await consumer.start()
        try:
            consumer.assign(list(todo))
            await consumer.seek_to_beginning(*todo)
            while todo:
                batch = await consumer.getmany(*todo, timeout_ms=500, max_records=10_000)
                for tp, records in batch.items():
                    end = todo.get(tp, 0)
                    for record in records:
                        if record.offset >= end:
                            break
                        counter.add(record.value)
                for tp in list(todo):
                    if await consumer.position(tp) >= todo[tp]:
                        del todo[tp]
        finally:
            await consumer.stop()
    return counter.result()
