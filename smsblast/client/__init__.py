"""asyncio ESME bind client: connection, window, supervised reconnecting bind."""

from smsblast.client.bind import Bind, backoff_delay
from smsblast.client.config import BindConfig, BindMode
from smsblast.client.connection import BindError, ConnectionClosed, EsmeConnection
from smsblast.client.outcome import OutcomeKind, SubmitOutcome, classify_status
from smsblast.client.window import Window

__all__ = [
    "Bind",
    "BindConfig",
    "BindError",
    "BindMode",
    "ConnectionClosed",
    "EsmeConnection",
    "OutcomeKind",
    "SubmitOutcome",
    "Window",
    "backoff_delay",
    "classify_status",
]
