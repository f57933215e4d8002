"""Campaign segments: the Kafka topics holding a campaign's recipients, one record each.

Record format (the contract with whoever fills the topics)
===========================================================

value
    One UTF-8 JSON object per recipient, at most 64 KiB (:data:`MAX_RECORD_BYTES`)::

        {"msisdn": "0812-3456-7890", "name": "Budi", "city": "Bandung", "points": 120}

    * ``msisdn`` (required): a string, the number in any accepted spelling (``0812...``,
      ``812...``, ``62812...``, ``+62812...``, ``0062812...``, with spaces, dashes, dots or
      parentheses); it must be an Indonesian mobile number (see :mod:`smsblast.msisdn`).
    * every other member is a template field (e.g. ``name``); values must be strings,
      numbers, booleans or null and reach the template as strings (null -> ``""``,
      ``true``/``false``, numbers in their JSON spelling). Objects and arrays are rejected.
    * ``NaN``/``Infinity`` are not JSON and are rejected.

key
    The normalised number as ASCII digits, e.g. ``b"6281234567890"``, so that one number
    always lands on one partition (Kafka's default murmur2 partitioner). The engine does
    not trust the key: the number it sends to is always the one in the value.

A record that breaks the rules makes :func:`parse_record` raise :class:`BadRecord` whose
``reason`` is one of ``empty``, ``not_json``, ``not_object``, ``no_msisdn``,
``invalid_msisdn``, ``bad_field``, ``too_large`` (dead-letter it with that reason).

Modules
=======

* :mod:`~smsblast.segments.record`: :func:`parse_record`, :class:`Recipient`,
  :class:`BadRecord` (the engine's hot path).
* :mod:`~smsblast.segments.files`: stream CSV/NDJSON files into records.
* :mod:`~smsblast.segments.synthetic`: :func:`synthetic_recipients`, seeded test data.
* :mod:`~smsblast.segments.kafka`: :func:`produce` (fast, bounded) and :func:`ensure_topic`.
* :mod:`~smsblast.segments.cli`: ``smsblast segments load|generate`` (:func:`add_parser`).
"""

from __future__ import annotations

from smsblast.segments.cli import add_parser, resolve_bootstrap
from smsblast.segments.files import FileSource, FileUsageError, detect_format
from smsblast.segments.kafka import ProduceError, TopicNotFound, ensure_topic, produce
from smsblast.segments.record import (
    MAX_RECORD_BYTES,
    REASONS,
    BadRecord,
    Reason,
    Recipient,
    encode_record,
    parse_record,
    parse_record_fields,
    recipient_from_object,
)
from smsblast.segments.synthetic import (
    DEFAULT_MIX,
    OPERATOR_PREFIXES,
    parse_mix,
    prefix_operator,
    synthetic_recipients,
)

__all__ = [
    "DEFAULT_MIX",
    "MAX_RECORD_BYTES",
    "OPERATOR_PREFIXES",
    "REASONS",
    "BadRecord",
    "FileSource",
    "FileUsageError",
    "ProduceError",
    "Reason",
    "Recipient",
    "TopicNotFound",
    "add_parser",
    "detect_format",
    "encode_record",
    "ensure_topic",
    "parse_mix",
    "parse_record",
    "parse_record_fields",
    "prefix_operator",
    "produce",
    "recipient_from_object",
    "resolve_bootstrap",
    "synthetic_recipients",
]
