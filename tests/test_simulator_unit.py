"""Simulator building blocks without a network: profile, delays, ids, PDU bytes, windows."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from smsblast.simulator.dedup import fingerprint, fingerprint_set
from smsblast.simulator.profile import (
    NO_ANSWER,
    Delay,
    Profile,
    load_profile,
    parse_hostport,
    parse_status,
)
from smsblast.simulator.render import (
    MinuteClock,
    ReceiptFactory,
    deliver_sm_body,
    format_id,
    id_format_spec,
    message_key,
    receipt_text,
    receipt_text_sample,
    submit_sm_resp,
)
from smsblast.simulator.wheel import Wheel
from smsblast.simulator.window import SlidingWindow
from smsblast.smpp.codec import Frame, decode_pdu, encode
from smsblast.smpp.constants import CommandId, Status
from smsblast.smpp.pdu import DeliverSm, SubmitSmResp, Tlvs
from smsblast.smpp.receipt import (
    IdFormat,
    ReceiptState,
    normalize_message_id,
    parse_receipt_text,
    receipt_from_deliver,
)

# ------------------------------------------------------------------------------ profile


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (88, 0x58),
        ("0x58", 0x58),
        ("88", 88),
        ("ESME_RTHROTTLED", 0x58),
        ("rthrottled", 0x58),
        ("0x400", 0x400),
    ],
)
def test_parse_status_accepts_ints_hex_and_names(raw: object, code: int) -> None:
    assert parse_status(raw) == code


@pytest.mark.parametrize("raw", ["", "ESME_NOPE", -1, 1 << 32, True, 1.5])
def test_parse_status_rejects_garbage(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_status(raw)


def test_parse_hostport_forms() -> None:
    assert parse_hostport("127.0.0.1:2775") == ("127.0.0.1", 2775)
    assert parse_hostport(":0") == ("127.0.0.1", 0)
    assert parse_hostport("8080") == ("127.0.0.1", 8080)
    assert parse_hostport("[::1]:2775") == ("::1", 2775)
    with pytest.raises(ValueError):
        parse_hostport("host:99999")


def test_default_profile_is_a_working_smsc() -> None:
    p = Profile()
    assert (p.host, p.port) == ("127.0.0.1", 2775)
    assert p.accounts[0].system_id == "smsblast"
    assert p.receipts.enabled and p.receipts.outcomes == {"DELIVRD": 1.0}


def test_profile_from_yaml_file_validates_every_section(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "sim.yaml"
    path.write_text(
        """
listen: 127.0.0.1:0
seed: 7
accounts:
  - {system_id: a, password: pw, bind_types: [tx, trx], max_binds: 2, tps_per_bind: 50}
limits: {tps_per_bind: 100, tps_per_account: 150, max_outstanding: 10}
latency: {dist: lognormal, median_ms: 5, sigma: 0.4, max_ms: 50}
receipts:
  delay: {dist: uniform, min_ms: 10, max_ms: 20}
  outcomes: {DELIVRD: 90, undeliverable: 5, EXPIRED: 3, REJECTD: 2}
  err_codes: {UNDELIV: "1"}
ids: {resp_format: hex, receipt_format: dec}
faults:
  error_rates: {ESME_RSYSERR: 0.01, "0x45": 0.02}
  magic_destinations: {"628000000001": RINVDSTADR, "628000000002": no_answer}
  slow_reader: {pause_ms: 100, every_s: 5}
""",
        encoding="utf-8",
    )
    p = load_profile(path, {"limits.tps_per_bind": 120})
    account = p.accounts[0]
    assert account.bind_types == {"transmitter", "transceiver"}
    limits = account.effective(p.limits)
    assert (limits.tps_per_bind, limits.tps_per_account, limits.max_outstanding) == (50, 150, 10)
    assert p.limits.tps_per_bind == 120
    assert p.receipts.outcomes == {"DELIVRD": 90, "UNDELIV": 5, "EXPIRED": 3, "REJECTD": 2}
    assert p.receipts.err_codes == {"UNDELIV": "001"}
    assert p.faults.error_rates == {0x08: 0.01, 0x45: 0.02}
    assert p.faults.magic_destinations == {"628000000001": 0x0B, "628000000002": NO_ANSWER}


@pytest.mark.parametrize(
    "data",
    [
        {"accounts": []},
        {"accounts": [{"system_id": "a"}, {"system_id": "a"}]},
        {"accounts": [{"system_id": "a", "password": "way-too-long"}]},
        {"receipts": {"outcomes": {"DELIVRD": 0}}},
        {"receipts": {"outcomes": {"NOPE": 1}}},
        {"faults": {"error_rates": {"RSYSERR": 0.7, "RSUBMITFAIL": 0.5}}},
        {"faults": {"error_rates": {"ROK": 0.1}}},
        {"faults": {"slow_reader": {"pause_ms": 10}}},
        {"latency": {"dist": "uniform", "min_ms": 5}},
        {"latency": {"dist": "lognormal"}},
        {"listen": "nowhere"},
        {"unknown_knob": 1},
    ],
)
def test_invalid_profiles_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Profile.model_validate(data)


def test_delay_shorthand_and_distributions_are_seeded() -> None:
    assert Delay.model_validate(5).fixed_s == 0.005
    uniform = Delay(dist="uniform", min_ms=10, max_ms=20)
    lognormal = Delay(dist="lognormal", median_ms=5, sigma=1.0, max_ms=40)
    a = [uniform.sample_s(random.Random(1)) for _ in range(3)]
    b = [uniform.sample_s(random.Random(1)) for _ in range(3)]
    assert a == b
    rng = random.Random(2)
    samples = [uniform.sample_s(rng) for _ in range(1000)]
    assert all(0.010 <= s <= 0.020 for s in samples)
    samples = sorted(lognormal.sample_s(rng) for _ in range(2001))
    assert max(samples) <= 0.040
    assert 0.004 < samples[1000] < 0.006  # the median


# ------------------------------------------------------------------------------ ids & PDUs


def test_message_ids_hex_and_decimal_forms_of_the_test_vector() -> None:
    counter = 0x04000000086ECD50
    hex_id = format_id(counter, id_format_spec("hex", 16, 0))
    dec_id = format_id(counter, id_format_spec("dec", 16, 0))
    assert (hex_id, dec_id) == ("04000000086ECD50", "288230376293190992")
    assert normalize_message_id(hex_id, IdFormat.HEX) == normalize_message_id(dec_id, IdFormat.DEC)
    assert format_id(221067780, id_format_spec("dec", 16, 10)) == "0221067780"
    assert format_id(1, id_format_spec("hex", 8, 0)) == "00000001"


def test_submit_sm_resp_bytes_match_the_generic_codec() -> None:
    ok = submit_sm_resp(7, 0, b"00000000000000AB")
    assert ok == encode(SubmitSmResp(sequence_number=7, message_id="00000000000000AB"))
    err = submit_sm_resp(8, Status.RTHROTTLED, b"")
    assert err == encode(SubmitSmResp(sequence_number=8, command_status=Status.RTHROTTLED))
    assert len(err) == 16


def test_receipt_deliver_sm_matches_codec_and_parses_back() -> None:
    text = receipt_text(
        "04000000086ECD50", "DELIVRD", "000", "2401151230", "2401151231", b"Promo akhir tahun"
    )
    body = deliver_sm_body("628123456789", "SMSBLAST", text, "04000000086ECD50", 2)
    wire = struct.pack(">IIII", 16 + len(body), CommandId.DELIVER_SM, 0, 9) + body
    expected = DeliverSm(
        sequence_number=9,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="628123456789",
        dest_addr_ton=5,
        dest_addr_npi=0,
        destination_addr="SMSBLAST",
        esm_class=0x04,
        short_message=text,
        tlvs=Tlvs(receipted_message_id="04000000086ECD50", message_state=2),
    )
    assert wire == encode(expected)
    pdu = decode_pdu(Frame(CommandId.DELIVER_SM, 0, 9, body))
    assert pdu == expected
    receipt = parse_receipt_text(text.decode())
    assert receipt.message_id == "04000000086ECD50"
    assert receipt.state is ReceiptState.DELIVERED
    assert (receipt.submitted, receipt.delivered, receipt.error) == (1, 1, "000")
    assert receipt.text == "Promo akhir tahun"
    assert receipt_from_deliver(text, "04000000086ECD50", 2).state is ReceiptState.DELIVERED


@pytest.mark.parametrize("tlvs", [True, False])
@pytest.mark.parametrize(
    ("handset", "sender", "stat", "state"),
    [
        ("628123456789", "SMSBLAST", "DELIVRD", 2),
        ("+628123456789", "62811", "UNDELIV", 5),
        ("", "", "REJECTD", 8),
    ],
)
def test_receipt_factory_makes_the_same_bytes_as_the_reference_builders(
    tlvs: bool, handset: str, sender: str, stat: str, state: int
) -> None:
    factory = ReceiptFactory(tlvs)
    for _ in range(2):  # second time from the sender cache
        fast = factory.body(
            handset, sender, b"00AB", stat.encode(), b"001", b"2401151230", b"2401151231",
            b"hello", state,
        )  # fmt: skip
        text = receipt_text("00AB", stat, "001", "2401151230", "2401151231", b"hello")
        slow = deliver_sm_body(
            handset, sender, text, "00AB" if tlvs else None, state if tlvs else None
        )
        assert fast == slow


def test_receipt_text_reports_dlvrd_zero_for_failures() -> None:
    text = receipt_text("1", "UNDELIV", "001", "2401151230", "2401151231", b"x").decode()
    assert "dlvrd:000" in text and "stat:UNDELIV err:001" in text


def test_receipt_text_sample_is_twenty_printable_chars() -> None:
    assert receipt_text_sample(b"a" * 30, 0, 0) == b"a" * 20
    assert receipt_text_sample(b"caf\xe9\x00\n", 0, 3) == b"caf???"
    ucs2 = "Halo dunia, apa kabar semuanya".encode("utf-16-be")
    assert receipt_text_sample(ucs2, 0, 8) == b"Halo dunia, apa kaba"
    udh = bytes.fromhex("050003AA0201") + b"segment one"
    assert receipt_text_sample(udh, 0x40, 0) == b"segment one"


def test_message_key_ignores_concatenation_reference_but_not_segment_position() -> None:
    seg1_ref_a = bytes.fromhex("050003AA0201") + b"part"
    seg1_ref_b = bytes.fromhex("050003BB0201") + b"part"
    seg2_ref_a = bytes.fromhex("050003AA0202") + b"part"
    key = message_key(b"628", seg1_ref_a, 0x40)
    assert key == message_key(b"628", seg1_ref_b, 0x40)
    assert key != message_key(b"628", seg2_ref_a, 0x40)
    assert message_key(b"628", b"", 0, payload=b"long") == message_key(b"628", b"long", 0)
    assert message_key(b"628", b"x", 0, segment=(1, 2)) != message_key(b"628", b"x", 0)


def test_minute_clock_formats_local_time() -> None:
    import time

    clock = MinuteClock()
    wall = 1_700_000_000.0
    assert clock(wall) == time.strftime("%y%m%d%H%M", time.localtime(wall)).encode()
    assert clock(wall + 1) == clock(wall)


# ------------------------------------------------------------------------------ structures


def test_fingerprint_set_counts_unique_values_and_is_stable() -> None:
    s = fingerprint_set()
    assert s.add(5) and not s.add(5)
    assert s.add((1 << 64) - 1) and s.add(0)
    assert len(s) == 3 and 5 in s and 6 not in s and -1 not in s
    assert fingerprint(b"628\x00hello") == fingerprint(bytes(bytearray(b"628\x00hello")))
    assert fingerprint(b"628\x00hello") != fingerprint(b"628\x00hellp")


def test_fingerprints_are_64_bit_and_do_not_collide_on_similar_numbers() -> None:
    """The simulator's duplicate count is only as good as its fingerprints: 200k numbers
    that differ in one digit, or only in the text after them, must all stay apart."""
    keys = [b"62812%08d" % i for i in range(100_000)]
    keys += [k + b"\x00Jaga Persatuan" for k in keys]
    prints = [fingerprint(k) for k in keys]
    assert all(0 <= p < 1 << 64 for p in prints)
    assert len(set(prints)) == len(keys)
    s = fingerprint_set()
    assert sum(s.add(p) for p in prints) == len(keys) and not s.add(prints[0])


def test_wheel_releases_buckets_in_order_responses_before_receipts() -> None:
    wheel: Wheel[str, str] = Wheel(0.001)
    wheel.add_receipt(1.0025, "r1")
    wheel.add_response(1.0025, "a1")
    wheel.add_response(1.0101, "a2")
    assert len(wheel) == 3
    assert wheel.next_due() == pytest.approx(1.003)
    assert list(wheel.pop_due(1.000)) == []  # due in 3 ms: not yet
    assert list(wheel.pop_due(1.002)) == [(["a1"], ["r1"])]  # within one tick
    assert list(wheel.pop_due(1.020)) == [(["a2"], [])]
    assert len(wheel) == 0 and wheel.next_due() is None


def _admit(times: list[float], limit: int) -> tuple[list[float], SlidingWindow]:
    """Run the limiter over events (one batch per distinct time); return admitted times."""
    w = SlidingWindow(1.0)
    admitted: list[float] = []
    i = 0
    while i < len(times):
        now = times[i]
        w.expire(now)
        while i < len(times) and times[i] == now:
            if w.total < limit:
                w.admit()
                admitted.append(now)
            i += 1
        w.commit(now)
    return admitted, w


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=400),
    st.integers(min_value=1, max_value=40),
)
def test_sliding_window_never_exceeds_the_limit_and_peak_is_exact(
    ms: list[int], limit: int
) -> None:
    times = sorted(m / 1000.0 for m in ms)
    admitted, w = _admit(times, limit)
    # brute force: the most admissions in any half-open 1 s window (t - 1, t]
    best = max(sum(1 for u in admitted if t - 1.0 < u <= t) for t in admitted)
    assert best <= limit
    assert w.peak == best
    # and nothing was refused while the window had room
    for t in times:
        if t not in admitted:
            in_window = sum(1 for u in admitted if t - 1.0 < u <= t)
            assert in_window == limit


def test_sliding_window_at_twice_the_rate_admits_half() -> None:
    times = [i / 200 for i in range(600)]  # 200/s for 3 s against a limit of 100/s
    admitted, w = _admit(times, 100)
    assert len(admitted) == 300
    assert w.peak == 100


def test_shipped_config_is_a_valid_profile() -> None:
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "config" / "simulator.yaml"
    p = load_profile(path)
    assert p == Profile(accounts=p.accounts)  # every other value is the default
