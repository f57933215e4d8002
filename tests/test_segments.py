"""Segment records, recipient files, synthetic recipients and `smsblast segments`.

Unit tests run without a network; the `segments load|generate` and `produce` tests go
through the real Kafka-protocol broker of `tests/conftest.py` and count what arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gzip
import itertools
import json
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Iterable
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from smsblast.msisdn import normalize_msisdn
from smsblast.segments import (
    MAX_RECORD_BYTES,
    OPERATOR_PREFIXES,
    REASONS,
    BadRecord,
    FileSource,
    FileUsageError,
    Recipient,
    add_parser,
    detect_format,
    encode_record,
    parse_mix,
    parse_record,
    parse_record_fields,
    prefix_operator,
    produce,
    resolve_bootstrap,
    synthetic_recipients,
)
from smsblast.segments import record as record_module
from smsblast.segments.cli import UsageError
from smsblast.segments.kafka import topic_partitions
from smsblast.segments.synthetic import plan
from tests.conftest import TopicFactory

NUMBER = "6281234567890"

# parse_record ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty"),
        (b"", "empty"),
        (b"not json", "not_json"),
        (b'{"msisdn": "081234567890"', "not_json"),
        (b'{"msisdn": "081234567890", "name": "\xff\xfe"}', "not_json"),  # not UTF-8
        (b'{"msisdn": "081234567890", "score": NaN}', "not_json"),
        (b'{"msisdn": "081234567890", "score": -Infinity}', "not_json"),
        (b"[1, 2]", "not_object"),
        (b'"081234567890"', "not_object"),
        (b"6281234567890", "not_object"),
        (b"null", "not_object"),
        (b'{"name": "Budi"}', "no_msisdn"),
        (b'{"msisdn": null, "name": "Budi"}', "no_msisdn"),
        (b'{"MSISDN": "081234567890"}', "no_msisdn"),
        (b'{"msisdn": "021-555-0123"}', "invalid_msisdn"),  # Jakarta landline
        (b'{"msisdn": "0812"}', "invalid_msisdn"),
        (b'{"msisdn": ""}', "invalid_msisdn"),
        (b'{"msisdn": "+1 202 555 0100"}', "invalid_msisdn"),
        (b'{"msisdn": 6281234567890}', "invalid_msisdn"),  # a number, not a string
        (b'{"msisdn": "081234567890", "address": {"city": "Bandung"}}', "bad_field"),
        (b'{"msisdn": "081234567890", "tags": ["vip"]}', "bad_field"),
        (b'{"msisdn": "081234567890", "x": "' + b"a" * MAX_RECORD_BYTES + b'"}', "too_large"),
    ],
)
def test_parse_record_rejects_with_a_fixed_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(BadRecord) as caught:
        parse_record(value)
    assert caught.value.reason == reason
    assert caught.value.reason in REASONS
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith(reason)
    # The explanation never echoes the number.
    assert "1234567890" not in str(caught.value)
    assert "555" not in str(caught.value)


def _json_answer(decode: Any, text: str) -> tuple[str, Any]:
    try:
        return "ok", decode(text)
    except ValueError as exc:
        return type(exc).__name__, str(exc)


_JSONISH = st.text(alphabet='{}[]":,. 0123456789aeflnrstuNIy\\\n', max_size=40)


@given(st.one_of(_JSONISH, _JSONISH.map(lambda t: "{" + t)))
def test_the_object_fast_path_decodes_and_refuses_like_the_json_decoder(text: str) -> None:
    # A record that is one bare {...} skips JSONDecoder.decode's Python steps: every other
    # text, and every error, must still come out exactly as the decoder has it.
    assert _json_answer(record_module._decode_object, text) == _json_answer(
        record_module._decode, text
    )


@pytest.mark.parametrize(
    "raw", ["081234567890", "+6281234567890", "6281234567890", "0812-3456-7890", "81234567890"]
)
def test_parse_record_normalises_any_accepted_spelling(raw: str) -> None:
    value = json.dumps({"msisdn": raw, "name": "Budi"}).encode()
    r = parse_record(value)
    assert r == Recipient(msisdn=NUMBER, fields={"name": "Budi"}, raw_msisdn=raw)
    # The engine's form of the same answer.
    assert parse_record_fields(value) == (NUMBER, {"name": "Budi"}, raw)


def test_parse_record_stringifies_scalar_fields_for_the_template() -> None:
    value = (
        b'{"msisdn": "081234567890", "name": "Siti \\u00e9\xc3\xa9", "points": 120,'
        b' "ratio": 1.5, "big": 1e21, "vip": true, "churned": false, "note": null, "": "e"}'
    )
    r = parse_record(value)
    assert r.fields == {
        "name": "Siti éé",
        "points": "120",
        "ratio": "1.5",
        "big": "1e+21",
        "vip": "true",
        "churned": "false",
        "note": "",
        "": "e",
    }
    assert "msisdn" not in r.fields


def test_parse_record_accepts_exactly_64_kib_and_no_more() -> None:
    head = b'{"msisdn":"081234567890","pad":"'
    pad = MAX_RECORD_BYTES - len(head) - 2
    assert len(parse_record(head + b"x" * pad + b'"}').fields["pad"]) == pad
    with pytest.raises(BadRecord) as caught:
        parse_record(head + b"x" * (pad + 1) + b'"}')
    assert caught.value.reason == "too_large"


def test_recipient_is_frozen_and_hashable() -> None:
    r = parse_record(b'{"msisdn": "081234567890"}')
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.msisdn = "x"  # type: ignore[misc]
    assert {r, parse_record(b'{"msisdn": "081234567890"}')} == {r}


_scalar = st.one_of(
    st.text(max_size=20),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)


@given(fields=st.dictionaries(st.text(max_size=10), _scalar, max_size=8))
def test_any_scalar_fields_round_trip_as_strings(fields: dict[str, Any]) -> None:
    fields.pop("msisdn", None)
    r = parse_record(encode_record({"msisdn": "0812-3456-7890", **fields}))
    assert r.msisdn == NUMBER
    assert set(r.fields) == set(fields)
    for k, v in fields.items():
        expected = "" if v is None else v if isinstance(v, str) else json.dumps(v)
        assert r.fields[k] == expected


@settings(max_examples=300)
@given(value=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_parse_record_raises_only_bad_record_on_arbitrary_bytes(value: bytes) -> None:
    try:
        r = parse_record(value)
    except BadRecord as exc:
        assert exc.reason in REASONS
    else:
        assert r.msisdn == normalize_msisdn(r.raw_msisdn)


# Recipient files -------------------------------------------------------------------------


def read_source(path: Path, fmt: Any = None) -> tuple[list[tuple[bytes, bytes]], list[Any]]:
    rejected: list[tuple[int, str]] = []
    with FileSource(
        path, fmt or detect_format(path), lambda n, e: rejected.append((n, e.reason))
    ) as s:
        records = list(s)
    return records, rejected


def test_csv_rows_become_json_records_keyed_by_the_normalised_number(tmp_path: Path) -> None:
    path = tmp_path / "recipients.csv"
    path.write_text(
        "\ufeffName; MSISDN ;City;\n"  # BOM, semicolons, spaced header, empty last column
        "Budi;0812-3456-7890;Bandung;\n"
        "\n"
        'Siti "S";+6281234567891;"Solo;\nJawa Tengah";\n'  # quoted field over two lines
        "Agus;62 812 3456 7892;Medan;ignored\n",
        encoding="utf-8",
    )
    records, rejected = read_source(path)
    assert rejected == []
    assert [k for k, _ in records] == [b"6281234567890", b"6281234567891", b"6281234567892"]
    assert json.loads(records[1][1]) == {
        "Name": 'Siti "S"',
        "msisdn": "+6281234567891",
        "City": "Solo;\nJawa Tengah",
    }
    assert parse_record(records[0][1]).fields == {"Name": "Budi", "City": "Bandung"}


def test_csv_bad_rows_are_reported_with_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    lines = [
        b"msisdn,name\n",  # 1
        b"081234567890,ok\n",  # 2
        b"021-5550123,landline\n",  # 3
        b",no number\n",  # 4
        b"081234567891\n",  # 5: one column short
        b"081234567892,a,b\n",  # 6: one too many
        b"081234567893,\xff\xfe\n",  # 7: not UTF-8
        b'081234567894,"x"y\n',  # 8: malformed quoting
        b"081234567895," + b"x" * (MAX_RECORD_BYTES + 10) + b"\n",  # 9: too long
        b"\n",  # 10: blank, skipped
        b"+62 812 3456 7896,last\n",  # 11
    ]
    path.write_bytes(b"".join(lines))
    records, rejected = read_source(path)
    assert [k for k, _ in records] == [b"6281234567890", b"6281234567896"]
    assert rejected == [
        (3, "invalid_msisdn"),
        (4, "invalid_msisdn"),
        (5, "bad_field"),
        (6, "bad_field"),
        (7, "bad_field"),
        (8, "bad_field"),
        (9, "too_large"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("name,phone\nBudi,0812\n", "no 'msisdn'"),
        ("msisdn,MSISDN\n", "more than one"),
    ],
)
def test_csv_without_a_usable_header_is_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "r.csv"
    path.write_text(content)
    with pytest.raises(FileUsageError, match=message):
        FileSource(path, "csv", lambda n, e: None)


def test_ndjson_lines_are_validated_like_parse_record(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.gz"
    content = (
        b'\xef\xbb\xbf{"msisdn": "0812-3456-7890", "name": "Budi"}\r\n'  # 1 (BOM, CRLF)
        b"   \n"  # 2 blank
        b"[1]\n"  # 3
        b"nope\n"  # 4
        b'{"name": "x"}\n'  # 5
        b'{"msisdn": "0215550123"}\n'  # 6
        b'{"msisdn": "081234567891", "a": {}}\n'  # 7
        b'{"msisdn": "081234567892", "pad": "' + b"x" * 2 * MAX_RECORD_BYTES + b'"}\n'  # 8
        b'  {"msisdn": "+6281234567893", "vip": true}  '  # 9, no final newline
    )
    path.write_bytes(gzip.compress(content))
    records, rejected = read_source(path)
    assert records == [
        (b"6281234567890", b'{"msisdn": "0812-3456-7890", "name": "Budi"}'),
        (b"6281234567893", b'{"msisdn": "+6281234567893", "vip": true}'),
    ]
    assert rejected == [
        (3, "not_object"),
        (4, "not_json"),
        (5, "no_msisdn"),
        (6, "invalid_msisdn"),
        (7, "bad_field"),
        (8, "too_large"),
    ]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.csv", "csv"),
        ("a.CSV.gz", "csv"),
        ("a.tsv", "csv"),
        ("a.ndjson", "ndjson"),
        ("a.jsonl", "ndjson"),
    ],
)
def test_format_follows_the_extension(name: str, fmt: str) -> None:
    assert detect_format(name) == fmt


@pytest.mark.parametrize("name", ["a.txt", "a", "a.gz"])
def test_unknown_extension_needs_an_explicit_format(name: str) -> None:
    with pytest.raises(FileUsageError, match="--format"):
        detect_format(name)


def test_reading_a_file_keeps_memory_bounded(tmp_path: Path) -> None:
    path = tmp_path / "big.ndjson"
    with path.open("wb") as f:
        for _, value in synthetic_recipients(30_000, seed=5):
            f.write(value + b"\n")
    tracemalloc.start()
    try:
        n = 0
        with FileSource(path, "ndjson", lambda n, e: None) as source:
            for _ in source:
                n += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == 30_000
    assert peak < 300_000, peak  # the file is ~1.6 MB


# Configuration ---------------------------------------------------------------------------


def test_bootstrap_from_the_command_line_wins(tmp_path: Path) -> None:
    assert resolve_bootstrap("a:1, b:2", str(tmp_path / "missing.yaml")) == ["a:1", "b:2"]


def test_bootstrap_from_config_file_env_or_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = tmp_path / "listed.yaml"
    listed.write_text("kafka:\n  bootstrap_servers: ['k1:9092', 'k2:9092']\n")
    joined = tmp_path / "joined.yaml"
    joined.write_text("kafka:\n  bootstrap_servers: k3:9092,k4:9092\n")
    assert resolve_bootstrap(None, str(listed), {}) == ["k1:9092", "k2:9092"]
    assert resolve_bootstrap(None, None, {"SMSBLAST_CONFIG": str(joined)}) == ["k3:9092", "k4:9092"]
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "smsblast.yaml").write_bytes(listed.read_bytes())
    monkeypatch.chdir(tmp_path)
    assert resolve_bootstrap(None, None, {}) == ["k1:9092", "k2:9092"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("kafka: [unclosed\n", "cannot read"),
        ("kafka:\n  client_id: x\n", "no kafka.bootstrap_servers"),
        ("- just a list\n", "no kafka.bootstrap_servers"),
    ],
)
def test_unusable_config_is_a_usage_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "c.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=message):
        resolve_bootstrap(None, str(path), {})


def test_no_bootstrap_anywhere_says_how_to_give_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="--bootstrap"):
        resolve_bootstrap(None, None, {})


# Synthetic recipients --------------------------------------------------------------------

MIX = {"telkomsel": 0.5, "indosat": 0.25, "xl": 0.2, "smartfren": 0.05}


def check_counts(records: Iterable[tuple[bytes | None, bytes]]) -> dict[str, Any]:
    """Parse every value; check keys; count operators, reasons and distinct numbers."""
    operators: Counter[str | None] = Counter()
    reasons: Counter[str] = Counter()
    numbers: Counter[str] = Counter()
    lengths: Counter[int] = Counter()
    for key, value in records:
        try:
            r = parse_record(value)
        except BadRecord as exc:
            reasons[exc.reason] += 1
            assert key is None
            continue
        assert key == r.msisdn.encode()
        assert r.fields["name"]
        operators[prefix_operator(r.msisdn)] += 1
        numbers[r.msisdn] += 1
        lengths[len(r.msisdn) - 2] += 1
    valid = sum(numbers.values())
    return {
        "operators": operators,
        "reasons": reasons,
        "valid": valid,
        "distinct": len(numbers),
        "lengths": lengths,
        "share": {op: n / valid for op, n in operators.items()} if valid else {},
    }


def test_synthetic_numbers_follow_the_operator_mix_and_are_unique() -> None:
    seen = check_counts(synthetic_recipients(60_000, MIX, seed=11))
    assert seen["valid"] == seen["distinct"] == 60_000
    assert None not in seen["operators"]
    for op, share in MIX.items():
        assert seen["share"][op] == pytest.approx(share, abs=0.01)
    assert set(seen["lengths"]) == {10, 11, 12}  # national numbers of 10-12 digits
    assert seen["lengths"][10] / 60_000 == pytest.approx(0.05, abs=0.01)


def test_synthetic_prefixes_are_the_operators_own() -> None:
    prefixes: Counter[str] = Counter()
    for key, _ in synthetic_recipients(20_000, {"xl": 1}, seed=3):
        assert key is not None
        prefixes[key[2:5].decode()] += 1
    assert set(prefixes) == set(OPERATOR_PREFIXES["xl"])  # AXIS 831-833, 838 included


def test_synthetic_records_are_deterministic_per_seed() -> None:
    def first(seed: int) -> list[tuple[bytes | None, bytes]]:
        return list(synthetic_recipients(2_000, MIX, seed, duplicates=0.1, invalid=0.1))

    assert first(42) == first(42)
    assert first(42) != first(43)


def test_duplicates_and_invalid_records_come_in_exact_numbers() -> None:
    seen = check_counts(synthetic_recipients(50_000, MIX, seed=9, duplicates=0.1, invalid=0.04))
    assert sum(seen["reasons"].values()) == 2_000
    assert set(seen["reasons"]) == {"not_json", "no_msisdn", "invalid_msisdn"}
    assert seen["valid"] == 48_000
    assert seen["distinct"] == 43_000  # 5,000 repeats of earlier numbers


def test_duplicates_are_spelled_differently_from_the_original() -> None:
    spellings: dict[bytes, set[str]] = {}
    for key, value in synthetic_recipients(5_000, MIX, seed=1, duplicates=0.2):
        assert key is not None
        spellings.setdefault(key, set()).add(json.loads(value)["msisdn"])
    repeated = [s for s in spellings.values() if len(s) > 1]
    assert len(repeated) > 500


def test_generator_memory_does_not_grow_with_the_count() -> None:
    """What the generator holds after 90,000 recipients is what it held after 10,000.

    Counted by allocation site (the generator's own module), not by the process-wide
    peak: threads left by other tests allocate too, and must not make this flaky.
    """
    site = [tracemalloc.Filter(True, "*smsblast/segments/synthetic.py")]

    def held() -> int:
        stats = tracemalloc.take_snapshot().filter_traces(site).statistics("filename")
        return sum(stat.size for stat in stats)

    tracemalloc.start()
    try:
        gen = synthetic_recipients(100_000, MIX, seed=2, duplicates=0.05, invalid=0.01)
        for _ in itertools.islice(gen, 10_000):
            pass
        early = held()
        for _ in itertools.islice(gen, 80_000):
            pass
        late = held()
    finally:
        tracemalloc.stop()
    assert late < early + 20_000, (early, late)


@pytest.mark.parametrize(
    ("count", "dup", "inv", "message"),
    [
        (-1, 0, 0, "negative"),
        (10, 1.5, 0, "between"),
        (10, 0.6, 0.6, "exceed"),
        (10, 1.0, 0, "fresh"),
    ],
)
def test_impossible_plans_are_refused(count: int, dup: float, inv: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan(count, dup, inv)


def test_mix_parsing_normalises_and_refuses_nonsense() -> None:
    assert parse_mix("telkomsel=2, xl=1,smartfren=1") == {
        "telkomsel": 0.5,
        "xl": 0.25,
        "smartfren": 0.25,
    }
    for bad, message in [
        ("tri=1", "unknown operator"),
        ("xl", "OPERATOR=WEIGHT"),
        ("xl=abc", "not a number"),
        ("xl=-1", "non-negative"),
        ("xl=0", "no positive"),
        ("xl=1,xl=2", "twice"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_mix(bad)


# The command line, against the broker ----------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="smsblast")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    args = parse_args(argv)
    code: int = await asyncio.wait_for(asyncio.to_thread(args.func, args), 30)
    out, err = capsys.readouterr()
    return code, out, err


async def consume_all(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of the topic, read up to its end offsets without a consumer group."""
    partitions = await topic_partitions(bootstrap, topic)
    assert partitions is not None
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        async with asyncio.timeout(20):
            while any([await consumer.position(tp) < end[tp] for tp in tps]):
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_load_csv_produces_valid_rows_and_reports_bad_ones(
    kafka_bootstrap: str,
    kafka_topic: TopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = await kafka_topic(partitions=3)
    path = tmp_path / "segment.csv"
    rows = ["msisdn,name,points"]
    expected: dict[bytes, dict[str, str]] = {}
    for i in range(500):
        raw = f"0812-{i:04d}-{i:04d}"
        rows.append(f"{raw},Budi {i},{i}")
        expected[normalize_msisdn(raw).encode()] = {
            "msisdn": raw,
            "name": f"Budi {i}",
            "points": str(i),
        }
    rows.insert(10, "021-5550123,Landline,0")  # line 11
    rows.insert(100, "0812,Short,0")  # line 101
    rows.insert(300, "081299999999,Too,many,columns")  # line 301
    path.write_text("\n".join(rows) + "\n")

    code, out, err = await run_cli(
        ["segments", "load", str(path), "--topic", topic, "--bootstrap", kafka_bootstrap], capsys
    )
    assert code == 1
    assert f"{path}:11: rejected: invalid_msisdn" in err
    assert f"{path}:101: rejected: invalid_msisdn" in err
    assert f"{path}:301: rejected: bad_field" in err
    assert "produced 500 " in out and "rejected 3 (invalid_msisdn 2, bad_field 1)" in out
    assert "records/s" in out

    records = await consume_all(kafka_bootstrap, topic)
    assert len(records) == 500
    assert {r.key: json.loads(r.value) for r in records} == expected
    partitioner = DefaultPartitioner()
    assert all(r.partition == partitioner(r.key, [0, 1, 2], [0, 1, 2]) for r in records)


async def test_load_ndjson_with_only_valid_lines_exits_0(
    kafka_bootstrap: str,
    kafka_topic: TopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = await kafka_topic(partitions=2)
    path = tmp_path / "segment.data"  # extension says nothing: --format decides
    values = [v for _, v in synthetic_recipients(3_000, MIX, seed=4)]
    path.write_bytes(b"\n".join(values) + b"\n\n")

    code, out, err = await run_cli(
        [
            *("segments", "load", str(path), "--topic", topic, "--format", "ndjson"),
            *("--bootstrap", kafka_bootstrap),
        ],
        capsys,
    )
    assert (code, err) == (0, "")
    assert "produced 3,000 " in out and "rejected 0," in out
    records = await consume_all(kafka_bootstrap, topic)
    assert sorted(r.value for r in records) == sorted(values)


async def test_load_prints_the_first_20_rejections_then_a_summary(
    kafka_bootstrap: str,
    kafka_topic: TopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = await kafka_topic(partitions=1)
    path = tmp_path / "bad.ndjson"
    path.write_text('{"msisdn": "081234567890"}\n' + "garbage\n" * 35)
    code, out, err = await run_cli(
        ["segments", "load", str(path), "--topic", topic, "--bootstrap", kafka_bootstrap], capsys
    )
    assert code == 1
    assert err.count("rejected: not_json") == 20
    assert f"{path}:21: rejected" in err and f"{path}:22: rejected" not in err
    assert "15 more rejected lines not shown" in err
    assert "produced 1 " in out and "rejected 35 (not_json 35)" in out
    assert len(await consume_all(kafka_bootstrap, topic)) == 1


async def test_load_usage_and_io_errors_exit_2(
    kafka_bootstrap: str,
    kafka_topic: TopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = await kafka_topic(partitions=1)
    good = tmp_path / "ok.csv"
    good.write_text("msisdn\n081234567890\n")
    no_column = tmp_path / "phones.csv"
    no_column.write_text("phone\n081234567890\n")
    unknown = tmp_path / "list.txt"
    unknown.write_text("081234567890\n")
    missing_topic = f"{topic}-missing"
    cases = [
        ([str(tmp_path / "missing.csv"), "--topic", topic], "cannot read"),
        ([str(unknown), "--topic", topic], "--format"),
        ([str(no_column), "--topic", topic], "no 'msisdn' column"),
        ([str(good), "--topic", "bad topic!"], "not a valid Kafka topic name"),
        ([str(good), "--topic", missing_topic], "does not exist"),
    ]
    for argv, message in cases:
        code, out, err = await run_cli(
            ["segments", "load", *argv, "--bootstrap", kafka_bootstrap], capsys
        )
        assert code == 2, argv
        assert message in err, (argv, err)
        assert out == ""
    # Checking for the topic did not create it.
    assert await topic_partitions(kafka_bootstrap, missing_topic) is None
    assert len(await consume_all(kafka_bootstrap, topic)) == 0


async def test_load_can_create_the_topic(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = f"created-{uuid.uuid4().hex[:10]}"
    path = tmp_path / "ok.csv"
    path.write_text("msisdn\n081234567890\n081234567891\n")
    code, _, _ = await run_cli(
        [
            *("segments", "load", str(path), "--topic", topic, "--create-partitions", "4"),
            *("--bootstrap", kafka_bootstrap),
        ],
        capsys,
    )
    assert code == 0
    assert await topic_partitions(kafka_bootstrap, topic) == [0, 1, 2, 3]
    assert len(await consume_all(kafka_bootstrap, topic)) == 2


async def test_generate_fills_a_topic_with_the_mix_duplicates_and_invalid_records(
    kafka_bootstrap: str, kafka_topic: TopicFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = await kafka_topic(partitions=3)
    code, out, err = await run_cli(
        [
            *("segments", "generate", "--count", "40000", "--topic", topic, "--seed", "7"),
            *("--mix", "telkomsel=0.5,indosat=0.25,xl=0.2,smartfren=0.05"),
            *("--duplicates", "0.05", "--invalid", "0.02", "--bootstrap", kafka_bootstrap),
        ],
        capsys,
    )
    assert (code, err) == (0, "")
    assert "produced 40,000 " in out
    assert "fresh 37,200, duplicates 2,000, invalid 800; seed 7" in out

    records = await consume_all(kafka_bootstrap, topic)
    assert len(records) == 40_000
    seen = check_counts((r.key, r.value) for r in records)
    assert sum(seen["reasons"].values()) == 800
    assert seen["valid"] == 39_200 and seen["distinct"] == 37_200
    for op, share in MIX.items():
        assert seen["share"][op] == pytest.approx(share, abs=0.015)
    # Same seed, same records: the topic holds exactly what the pure generator yields.
    expected = synthetic_recipients(40_000, MIX, 7, duplicates=0.05, invalid=0.02)
    assert sorted(r.value for r in records) == sorted(v for _, v in expected)


async def test_generate_to_a_file_then_load_it(
    kafka_bootstrap: str,
    kafka_topic: TopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = await kafka_topic(partitions=2)
    path = tmp_path / "synthetic.ndjson.gz"
    code, out, _ = await run_cli(
        [
            *("segments", "generate", "--count", "5000", "--output", str(path), "--seed", "1"),
            *("--invalid", "0.01"),
        ],
        capsys,
    )
    assert code == 0 and "produced 5,000 " in out
    code, out, _ = await run_cli(
        ["segments", "load", str(path), "--topic", topic, "--bootstrap", kafka_bootstrap], capsys
    )
    assert code == 1
    assert "produced 4,950 " in out and "rejected 50 " in out
    assert len(await consume_all(kafka_bootstrap, topic)) == 4_950


async def test_generate_to_stdout_keeps_stdout_pure_ndjson(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = await run_cli(
        ["segments", "generate", "--count", "300", "--output", "-", "--seed", "5"], capsys
    )
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 300
    assert [parse_record(line.encode()).msisdn for line in lines[:3]] == [
        k.decode() for k, _ in islice(synthetic_recipients(300, MIX, 5), 3) if k
    ]
    assert "produced 300 to -" in err


async def test_unreachable_broker_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ok.csv"
    path.write_text("msisdn\n081234567890\n")
    nowhere = "127.0.0.1:1"
    for argv in (
        ["load", str(path), "--topic", "t", "--bootstrap", nowhere],
        ["generate", "--count", "10", "--topic", "t", "--bootstrap", nowhere],
    ):
        code, out, err = await run_cli(["segments", *argv], capsys)
        assert code == 2, argv
        assert "Kafka at 127.0.0.1:1" in err and out == ""


def test_generate_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--count", "10", "--topic", "t", "--mix", "tri=1"],
        ["--count", "10", "--topic", "t", "--invalid", "2"],
        ["--count", "10"],  # neither --topic nor --output
        ["--count", "10", "--topic", "t", "--output", "f"],
    ):
        with pytest.raises(SystemExit) as caught:
            parse_args(["segments", "generate", *argv])
        assert caught.value.code == 2
    args = parse_args(
        ["segments", "generate", "--count", "10", "--topic", "t", "--duplicates", "1"]
    )
    assert args.func(args) == 2
    assert "fresh record" in capsys.readouterr().err


async def test_produce_returns_the_acknowledged_count_and_partitions_like_kafka(
    kafka_bootstrap: str, kafka_topic: TopicFactory
) -> None:
    topic = await kafka_topic(partitions=5)
    keyed = list(synthetic_recipients(20_000, MIX, seed=8))
    unkeyed: list[tuple[bytes | None, bytes]] = [(None, b'{"n": %d}' % i) for i in range(1_000)]
    acked: list[int] = []
    n = await produce(
        kafka_bootstrap, topic, iter(keyed + unkeyed), max_batch_size=16_384, on_ack=acked.append
    )
    assert n == sum(acked) == 21_000
    assert len(acked) > 5  # many batches, acknowledged as they complete
    records = await consume_all(kafka_bootstrap, topic)
    assert len(records) == 21_000
    partitioner = DefaultPartitioner()
    parts = [0, 1, 2, 3, 4]
    assert all(r.partition == partitioner(r.key, parts, parts) for r in records if r.key)
    assert len({r.partition for r in records if r.key is None}) > 1  # spread, batch by batch
    assert sorted(r.value for r in records) == sorted(v for _, v in keyed + unkeyed)


async def test_produce_keeps_a_bounded_number_of_records_in_flight(
    kafka_bootstrap: str, kafka_topic: TopicFactory
) -> None:
    topic = await kafka_topic(partitions=1)
    pulled = acked = 0
    widest_gap = 0

    def records() -> Iterable[tuple[bytes | None, bytes]]:
        nonlocal pulled
        # A count far beyond what is taken: the generator must stay lazy too.
        for record in islice(synthetic_recipients(10**9, MIX, seed=1), 30_000):
            pulled += 1
            yield record

    def on_ack(n: int) -> None:
        nonlocal acked, widest_gap
        widest_gap = max(widest_gap, pulled - acked)
        acked += n

    # ~16 KiB batches hold ~250 of these records; 2 in flight + 1 being filled is ~750.
    n = await produce(
        kafka_bootstrap, topic, records(), max_in_flight=2, max_batch_size=16_384, on_ack=on_ack
    )
    assert n == acked == pulled == 30_000
    assert 0 < widest_gap < 1_500
