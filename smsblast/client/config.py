"""Settings of one ESME bind, as the bind client needs them."""

from __future__ import annotations

import enum
import ssl
from dataclasses import dataclass

from smsblast.smpp.receipt import IdFormat


class BindMode(enum.Enum):
    TRANSCEIVER = "transceiver"
    TRANSMITTER = "transmitter"
    RECEIVER = "receiver"


@dataclass(frozen=True, slots=True, kw_only=True)
class BindConfig:
    host: str
    port: int
    system_id: str
    password: str
    mode: BindMode = BindMode.TRANSCEIVER
    system_type: str = ""
    window: int = 100
    response_timeout: float = 30.0
    enquire_link_interval: float = 30.0
    connect_timeout: float = 10.0
    bind_timeout: float = 15.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    #: floor of the wait after a bind error (wrong password, ...), never a tight loop.
    bind_error_backoff: float = 30.0
    tls: ssl.SSLContext | None = None
    tls_server_hostname: str | None = None
    msg_id_format: IdFormat = IdFormat.HEX
    max_pdu_length: int = 64 * 1024
    name: str = ""

    def label(self) -> str:
        return self.name or f"{self.system_id}@{self.host}:{self.port}"
