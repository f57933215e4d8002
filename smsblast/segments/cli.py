"""``smsblast segments load`` and ``smsblast segments generate``: fill segment topics.

load FILE --topic T
    Stream a CSV (header with an ``msisdn`` column) or NDJSON file, optionally gzipped, to
    the topic: valid lines become records keyed by the normalised number, invalid lines
    are reported on stderr (line number and reason) and counted.
    Exit status: 0 all lines produced, 1 some lines rejected, 2 usage, file or Kafka error.

generate --count N --topic T
    Produce N synthetic recipients (realistic Indonesian numbers per operator mix; unique
    unless --duplicates; --invalid adds records for dead-letter tests). Deterministic with
    --seed. --output FILE writes NDJSON instead of producing.

The Kafka bootstrap servers come from --bootstrap, else from ``kafka.bootstrap_servers`` in
the engine configuration (--config, else $SMSBLAST_CONFIG, else config/smsblast.yaml).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final, TextIO, TypeVar

import yaml
from aiokafka.errors import KafkaError

from smsblast.aio import run as run_async
from smsblast.segments.files import FileSource, FileUsageError, detect_format
from smsblast.segments.kafka import (
    ProduceError,
    TopicNotFound,
    check_topic_name,
    ensure_topic,
    produce,
)
from smsblast.segments.record import BadRecord
from smsblast.segments.synthetic import DEFAULT_MIX, parse_mix, plan, synthetic_recipients

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "RejectReporter",
    "UsageError",
    "add_parser",
    "resolve_bootstrap",
    "run_generate",
    "run_load",
]

DEFAULT_CONFIG_PATH: Final = "config/smsblast.yaml"
_PROGRESS_EVERY_S: Final = 10.0
_T = TypeVar("_T")


class UsageError(Exception):
    """A problem with the command line or the configuration; exit status 2."""


# Configuration ---------------------------------------------------------------------------


def resolve_bootstrap(
    cli_value: str | None,
    config_path: str | None = None,
    environ: dict[str, str] | None = None,
) -> list[str]:
    """Kafka bootstrap servers: ``--bootstrap`` (comma-separated) or the engine config.

    The config file is ``config_path``, else ``$SMSBLAST_CONFIG``, else
    :data:`DEFAULT_CONFIG_PATH` if it exists; ``kafka.bootstrap_servers`` may be a list or a
    comma-separated string.

    Raises:
        UsageError: nothing given, a named config file missing or unreadable, or no usable
            ``kafka.bootstrap_servers`` in it.
    """
    if cli_value is not None:
        servers = _split_servers(cli_value)
        if not servers:
            raise UsageError("--bootstrap is empty")
        return servers
    env = os.environ if environ is None else environ
    named = config_path or env.get("SMSBLAST_CONFIG")
    path = Path(named or DEFAULT_CONFIG_PATH)
    if not path.exists():
        if named:
            raise UsageError(f"config file {str(path)!r} not found")
        raise UsageError(
            "no Kafka bootstrap servers: pass --bootstrap HOST:PORT or set "
            f"kafka.bootstrap_servers in {DEFAULT_CONFIG_PATH} (or --config, $SMSBLAST_CONFIG)"
        )
    try:
        with path.open(encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read config file {str(path)!r}: {exc}") from None
    kafka = data.get("kafka") if isinstance(data, dict) else None
    value = kafka.get("bootstrap_servers") if isinstance(kafka, dict) else None
    if isinstance(value, str):
        servers = _split_servers(value)
    elif isinstance(value, list) and all(isinstance(s, str) for s in value):
        servers = [s.strip() for s in value if s.strip()]
    else:
        servers = []
    if not servers:
        raise UsageError(f"{path}: no kafka.bootstrap_servers (a list of HOST:PORT)")
    return servers


def _split_servers(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


# Reporting -------------------------------------------------------------------------------


class RejectReporter:
    """Count rejected lines by reason and print the first ``limit`` of them."""

    def __init__(self, label: str, stream: TextIO, limit: int = 20) -> None:
        self.label = label
        self.stream = stream
        self.limit = limit
        self.by_reason: Counter[str] = Counter()
        self.total = 0

    def __call__(self, line_no: int, error: BadRecord) -> None:
        self.total += 1
        self.by_reason[error.reason] += 1
        if self.total <= self.limit:
            print(f"{self.label}:{line_no}: rejected: {error}", file=self.stream)

    def finish(self) -> None:
        hidden = self.total - self.limit
        if hidden > 0:
            print(f"{self.label}: {hidden:,} more rejected lines not shown", file=self.stream)

    def breakdown(self) -> str:
        return ", ".join(f"{reason} {n:,}" for reason, n in self.by_reason.most_common())


class _Progress:
    """``on_ack`` callback printing a progress line every few seconds."""

    def __init__(self, command: str, stream: TextIO) -> None:
        self.command = command
        self.stream = stream
        self.produced = 0
        self.started = time.monotonic()
        self._next = self.started + _PROGRESS_EVERY_S

    def __call__(self, n: int) -> None:
        self.produced += n
        now = time.monotonic()
        if now >= self._next:
            self._next = now + _PROGRESS_EVERY_S
            rate = self.produced / (now - self.started)
            print(f"{self.command}: {self.produced:,} produced ({rate:,.0f}/s)", file=self.stream)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}" if seconds > 0 else "-"


# load ------------------------------------------------------------------------------------


def run_load(args: argparse.Namespace) -> int:
    """``smsblast segments load``; returns the exit status (0, 1 or 2)."""
    command = "smsblast segments load"
    err: TextIO = sys.stderr
    try:
        fmt = args.format or detect_format(args.file)
        check_topic_name(args.topic)
        bootstrap = resolve_bootstrap(args.bootstrap, args.config)
    except (UsageError, FileUsageError, ValueError) as exc:
        print(f"{command}: {exc}", file=err)
        return 2
    reporter = RejectReporter(args.file, err, args.show_rejected)
    try:
        source = FileSource(args.file, fmt, reporter)
    except FileUsageError as exc:
        print(f"{command}: {exc}", file=err)
        return 2
    except OSError as exc:
        print(f"{command}: cannot read {args.file!r}: {exc.strerror or exc}", file=err)
        return 2
    progress = _Progress(command, err)
    with source:
        try:
            produced = run_async(
                _load(bootstrap, args.topic, source, progress, args.create_partitions)
            )
        except TopicNotFound as exc:
            print(f"{command}: {exc} (create it, or pass --create-partitions N)", file=err)
            return 2
        except ProduceError as exc:
            reporter.finish()
            print(f"{command}: {exc}; {exc.produced:,} records were produced", file=err)
            return 2
        except KafkaError as exc:
            print(f"{command}: Kafka at {','.join(bootstrap)}: {exc}", file=err)
            return 2
        except OSError as exc:
            print(
                f"{command}: reading {args.file!r} failed after line {source.lines_read}: "
                f"{exc}; {progress.produced:,} records were produced",
                file=err,
            )
            return 2
        except KeyboardInterrupt:
            print(f"{command}: interrupted; {progress.produced:,} produced", file=err)
            return 130
    seconds = progress.elapsed()
    reporter.finish()
    rejected = f"rejected {reporter.total:,}"
    if reporter.total:
        rejected += f" ({reporter.breakdown()})"
    print(
        f"produced {produced:,} to {args.topic}, {rejected}, "
        f"{seconds:.2f} s, {_rate(produced, seconds)} records/s"
    )
    return 1 if reporter.total else 0


async def _load(
    bootstrap: list[str],
    topic: str,
    source: FileSource,
    progress: _Progress,
    create_partitions: int | None,
) -> int:
    await ensure_topic(bootstrap, topic, create_partitions=create_partitions)
    progress.started = time.monotonic()
    return await produce(bootstrap, topic, source, on_ack=progress)


# generate --------------------------------------------------------------------------------


def run_generate(args: argparse.Namespace) -> int:
    """``smsblast segments generate``; returns the exit status (0 or 2)."""
    command = "smsblast segments generate"
    err: TextIO = sys.stderr
    seed: int = args.seed if args.seed is not None else random.randrange(2**32)
    bootstrap: list[str] = []
    try:
        counts = plan(args.count, args.duplicates, args.invalid)
        if args.topic is not None:
            check_topic_name(args.topic)
            bootstrap = resolve_bootstrap(args.bootstrap, args.config)
    except (UsageError, ValueError) as exc:
        print(f"{command}: {exc}", file=err)
        return 2
    records = synthetic_recipients(args.count, args.mix, seed, args.duplicates, args.invalid)
    progress = _Progress(command, err)
    try:
        if args.topic is None:
            destination = args.output
            produced = _write_ndjson(args.output, records)
        else:
            destination = args.topic
            produced = run_async(_generate(bootstrap, args.topic, records, progress, args))
    except TopicNotFound as exc:
        print(f"{command}: {exc} (create it, or pass --create-partitions N)", file=err)
        return 2
    except ProduceError as exc:
        print(f"{command}: {exc}; {exc.produced:,} records were produced", file=err)
        return 2
    except KafkaError as exc:
        print(f"{command}: Kafka at {','.join(bootstrap)}: {exc}", file=err)
        return 2
    except OSError as exc:
        print(f"{command}: cannot write {args.output!r}: {exc}", file=err)
        return 2
    except KeyboardInterrupt:
        print(f"{command}: interrupted; {progress.produced:,} produced", file=err)
        return 130
    seconds = progress.elapsed()
    print(
        f"produced {produced:,} to {destination} (fresh {counts.fresh:,}, duplicates "
        f"{counts.duplicates:,}, invalid {counts.invalid:,}; seed {seed}), "
        f"{seconds:.2f} s, {_rate(produced, seconds)} records/s",
        file=err if args.output == "-" else sys.stdout,  # keep an NDJSON stdout clean
    )
    return 0


async def _generate(
    bootstrap: list[str],
    topic: str,
    records: Iterator[tuple[bytes | None, bytes]],
    progress: _Progress,
    args: argparse.Namespace,
) -> int:
    await ensure_topic(bootstrap, topic, create_partitions=args.create_partitions)
    progress.started = time.monotonic()
    return await produce(bootstrap, topic, records, on_ack=progress)


def _write_ndjson(path: str, records: Iterator[tuple[bytes | None, bytes]]) -> int:
    with contextlib.ExitStack() as stack:
        out: BinaryIO | io.BufferedIOBase
        if path == "-":
            out = sys.stdout.buffer
        elif path.endswith(".gz"):
            out = stack.enter_context(gzip.GzipFile(path, "wb", compresslevel=3))
        else:
            out = stack.enter_context(open(path, "wb", buffering=1 << 20))
        written = 0
        write = out.write
        for _, value in records:
            write(value + b"\n")
            written += 1
        out.flush()
    return written


# argparse --------------------------------------------------------------------------------


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {text!r}")
    return value


def _mix(text: str) -> dict[str, float]:
    try:
        return parse_mix(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _kafka_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bootstrap",
        metavar="HOST:PORT[,...]",
        help="Kafka bootstrap servers (default: kafka.bootstrap_servers of the config file)",
    )
    p.add_argument(
        "--config",
        metavar="PATH",
        help=f"engine config file (default: $SMSBLAST_CONFIG, else {DEFAULT_CONFIG_PATH})",
    )
    p.add_argument(
        "--create-partitions",
        type=_positive_int,
        metavar="N",
        help="create the topic with N partitions if it does not exist (default: it must exist)",
    )


def add_parser(sub: Any) -> None:
    """Register ``segments`` with its ``load`` and ``generate`` subcommands on ``sub``."""
    segments = sub.add_parser(
        "segments",
        help="load recipient files into segment topics, or generate synthetic ones",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = segments.add_subparsers(dest="segments_command", required=True, metavar="ACTION")

    load = actions.add_parser(
        "load",
        help="stream a CSV or NDJSON file of recipients to a topic",
        description="Stream a CSV (header with an msisdn column) or NDJSON recipient file "
        "to a segment topic. Exit status: 0 all lines produced, 1 some rejected, 2 error.",
    )
    load.add_argument("file", metavar="FILE", help="CSV or NDJSON file, optionally .gz")
    load.add_argument("--topic", required=True, help="segment topic")
    load.add_argument(
        "--format",
        choices=("csv", "ndjson"),
        help="file format (default: by extension: .csv .tsv / .ndjson .jsonl .json)",
    )
    load.add_argument(
        "--show-rejected",
        type=int,
        default=20,
        metavar="N",
        help="print the first N rejected lines (default 20); all are counted",
    )
    _kafka_arguments(load)
    load.set_defaults(func=run_load)

    generate = actions.add_parser(
        "generate",
        help="produce synthetic recipients to a topic (tests, benchmarks)",
        description="Produce synthetic recipients with realistic Indonesian numbers.",
    )
    generate.add_argument(
        "--count",
        type=_count,
        required=True,
        metavar="N",
        help="records in all, duplicates and invalid ones included (1_000_000 is fine)",
    )
    target = generate.add_mutually_exclusive_group(required=True)
    target.add_argument("--topic", help="segment topic")
    target.add_argument(
        "--output",
        metavar="FILE",
        help="write NDJSON here instead (.gz compresses; - = stdout, summary on stderr)",
    )
    generate.add_argument(
        "--mix",
        type=_mix,
        default=dict(DEFAULT_MIX),
        metavar="OP=W,...",
        help="operator weights (default telkomsel=0.5,indosat=0.25,xl=0.2,smartfren=0.05)",
    )
    generate.add_argument("--seed", type=int, help="random seed (default: random, printed)")
    generate.add_argument(
        "--duplicates",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="fraction of records repeating an earlier number",
    )
    generate.add_argument(
        "--invalid",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="fraction of invalid records (not JSON, no msisdn, landline)",
    )
    _kafka_arguments(generate)
    generate.set_defaults(func=run_generate)
