"""Structured logs: JSON lines, and no MSISDN or password in any log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from smsblast import cli, logs
from smsblast.logs import mask_msisdn, mask_text, register_secret


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        if handler not in before[0]:
            root.removeHandler(handler)
    root.setLevel(before[1])


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("628123456789", "6281*****789"),
        ("+6281234567890", "+6281******890"),
        ("08123456", "0812*456"),
        ("6281234", "*******"),  # too short to show anything safely
    ],
)
def test_mask_msisdn_keeps_first_four_and_last_three_digits(number: str, masked: str) -> None:
    assert mask_msisdn(number) == masked


def test_mask_text_masks_numbers_of_8_to_15_digits_only() -> None:
    text = (
        "to 6281234567890 and +628561234567, batch 1234567, id 0400000008ABCD, n=1234567890123456"
    )
    assert mask_text(text) == (
        "to 6281******890 and +6285*****567, batch 1234567, id 0400000008ABCD, n=1234567890123456"
    )


def test_passwords_never_reach_a_log_line(captured: io.StringIO) -> None:
    register_secret("s3cr3t-Pw")
    logs.configure("INFO", "text", captured)
    log = logging.getLogger("smsblast.test")
    log.warning("bind refused for kominfo with %s", "s3cr3t-Pw")
    log.warning("config password=hunter2 system_id=kominfo")
    out = captured.getvalue()
    assert "s3cr3t-Pw" not in out and "hunter2" not in out
    assert "bind refused for kominfo with ***" in out
    assert "password=***" in out


def test_a_short_password_is_masked_where_it_stands_alone_only() -> None:
    register_secret("Qz7")  # such a password would be weak, but its logs must stay readable
    assert mask_text("bind Qz7 refused; password Qz7.") == "bind *** refused; password ***."
    assert mask_text("route Qz7l-0 and xQz7 up") == "route Qz7l-0 and xQz7 up"
    assert mask_text("id=Qz7, (Qz7)") == "id=***, (***)"


def test_json_lines_carry_ts_level_logger_msg_and_extra_fields(captured: io.StringIO) -> None:
    logs.configure("INFO", "json", captured)
    log = logging.getLogger("smsblast.engine")
    log.info(
        "submit to %s refused", "6281234567890", extra={"route": "xl", "msisdn": "6281234567890"}
    )
    try:
        raise ValueError("boom for 6281234567890")
    except ValueError:
        log.exception("failed")
    lines = captured.getvalue().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "INFO" and first["logger"] == "smsblast.engine"
    assert first["msg"] == "submit to 6281******890 refused"
    assert first["route"] == "xl" and first["msisdn"] == "6281******890"
    assert first["ts"].endswith("+00:00")
    assert second["level"] == "ERROR" and "ValueError" in second["exc"]
    assert "6281234567890" not in captured.getvalue()


def test_the_top_level_parser_takes_log_format() -> None:
    args = cli.build_parser().parse_args(["--log-format", "json", "report", "x"])
    assert args.log_format == "json"
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--log-format", "xml", "report", "x"])
