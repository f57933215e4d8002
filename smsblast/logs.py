"""Logging set-up for every command: text or JSON lines, and nothing private in either.

* ``--log-format text`` (default): ``time level logger: message``.
* ``--log-format json``: one JSON object per line with ``ts`` (ISO 8601, UTC), ``level``,
  ``logger``, ``msg``, every ``extra=`` field the call passed, and ``exc`` for tracebacks.

Whatever the format, :class:`PrivacyFilter` rewrites each record before any handler sees
it: MSISDNs (8-15 digits, optional ``+``) keep their first 4 and last 3 digits
(:func:`mask_msisdn`), ``password=...``-style pairs lose their value, and every secret
registered with :func:`register_secret` (the SMSC and SASL passwords read from the
environment) is replaced wherever it appears; a short one (under 6 characters) only where
it stands alone, so that the password ``x`` does not turn the route ``xl-0`` into
``***l-0`` in every line.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import sys
from typing import Any, Final, TextIO

__all__ = [
    "MSISDN_RE",
    "JsonFormatter",
    "PrivacyFilter",
    "configure",
    "mask_msisdn",
    "mask_text",
    "register_secret",
]

#: A phone number inside free text: 8-15 digits, optional leading ``+``, not part of a longer
#: word (so hex message ids such as ``0400000008ABCD`` and longer digit runs stay as they are).
MSISDN_RE: Final = re.compile(r"(?<![\w+])\+?\d{8,15}(?!\w)")
_SECRET_PAIR: Final = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token)(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\S+)"
)
_KEEP_HEAD: Final = 4
_KEEP_TAIL: Final = 3
_REDACTED: Final = "***"
_SECRETS: set[str] = set()
#: Secrets this short are masked only as whole tokens (not inside a longer run of letters
#: and digits): inside other words they would mangle every line, and reveal nothing there.
_SHORT_SECRET: Final = 6
_SHORT_SECRETS: dict[str, re.Pattern[str]] = {}

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD: Final = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))
) | {"message", "asctime", "taskName"}


def mask_msisdn(number: str) -> str:
    """``"6281234567890"`` -> ``"6281******890"``: the first 4 and last 3 digits stay (a
    leading ``+`` too), the rest become ``*``. Numbers too short to hide anything are fully
    masked."""
    plus = "+" if number.startswith("+") else ""
    digits = number[len(plus) :]
    hidden = len(digits) - _KEEP_HEAD - _KEEP_TAIL
    if hidden <= 0:
        return plus + "*" * len(digits)
    return plus + digits[:_KEEP_HEAD] + "*" * hidden + digits[-_KEEP_TAIL:]


def register_secret(value: str | None) -> None:
    """Never let ``value`` (a password) reach a log line. Empty values are ignored."""
    if not value:
        return
    if len(value) < _SHORT_SECRET:
        _SHORT_SECRETS[value] = re.compile(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])")
    else:
        _SECRETS.add(value)


def mask_text(text: str) -> str:
    """``text`` with registered secrets, ``password=...`` values and MSISDNs masked."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    for secret, alone in _SHORT_SECRETS.items():
        if secret in text:
            text = alone.sub(_REDACTED, text)
    text = _SECRET_PAIR.sub(lambda m: m.group(1) + m.group(2) + _REDACTED, text)
    return MSISDN_RE.sub(lambda m: mask_msisdn(m.group(0)), text)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10_000_000:
        return mask_text(str(value))  # a number logged as an int is still a number
    return value


class PrivacyFilter(logging.Filter):
    """Masks the message (arguments merged in) and string ``extra`` fields of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: keep what we have
            message = str(record.msg)
        record.msg = mask_text(message)
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD:
                setattr(record, key, _mask_value(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in data:
                data[key] = value
        if record.exc_info:
            data["exc"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False, default=str)


class _MaskingTextFormatter(logging.Formatter):
    def formatException(self, ei: Any) -> str:
        return mask_text(super().formatException(ei))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record (as logging's own
    last-resort handler does), so a replaced or captured stderr never goes stale."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def configure(level: str = "WARNING", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Install one handler (on ``stream``, default stderr) on the root logger with the format
    and the privacy filter, replacing the one a previous call installed."""
    handler: logging.StreamHandler[TextIO] = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            _MaskingTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    handler.addFilter(PrivacyFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_smsblast", False):
            root.removeHandler(old)
    handler._smsblast = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
