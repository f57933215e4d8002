"""The simulator profile: a pydantic-validated description of one simulated SMSC.

A profile is plain data (YAML on disk, a dict in tests). Every knob has a default, so
``Profile()`` is a working SMSC with one account (``smsblast`` / ``secret``), no limits,
no latency and DELIVRD receipts. See ``config/simulator.yaml`` and ``docs/simulator.md``.

Conventions used throughout:

* durations ending in ``_ms`` are milliseconds, ``_s`` seconds;
* a limit of ``0`` means unlimited; on an account, ``None`` means "inherit ``limits``";
* a command_status can be written as an integer (``88``), hex (``"0x58"``) or a name
  (``"ESME_RTHROTTLED"`` or ``"RTHROTTLED"``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from smsblast.smpp.constants import Status
from smsblast.smpp.receipt import ReceiptState, stat_text

__all__ = [
    "NO_ANSWER",
    "Account",
    "Delay",
    "Faults",
    "HttpSettings",
    "Ids",
    "Limits",
    "Profile",
    "Receipts",
    "SlowReader",
    "load_profile",
    "parse_hostport",
    "parse_receipt_state",
    "parse_status",
]

#: A magic destination mapped to this value is never answered (no resp, no receipt).
NO_ANSWER = -1

BindType = Literal["transmitter", "receiver", "transceiver"]
ALL_BIND_TYPES: frozenset[BindType] = frozenset({"transmitter", "receiver", "transceiver"})


def parse_status(value: object) -> int:
    """A command_status from an int, ``"0x58"``, ``"88"``, ``"ESME_RTHROTTLED"``, ``"RTHROTTLED"``.

    Raises:
        ValueError: not a status this parser understands, or outside 0..0xFFFFFFFF.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a command_status: {value!r}")
    if isinstance(value, int):
        code = value
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("empty command_status")
        if text[0].isdigit():
            code = int(text, 0)
        else:
            name = text.upper().removeprefix("ESME_")
            try:
                code = int(Status[name])
            except KeyError:
                raise ValueError(f"unknown command_status name {value!r}") from None
    else:
        raise ValueError(f"not a command_status: {value!r}")
    if not 0 <= code <= 0xFFFFFFFF:
        raise ValueError(f"command_status {code} outside 0..0xFFFFFFFF")
    return code


def _parse_magic(value: object) -> int:
    if isinstance(value, str) and value.strip().lower() in ("no_answer", "none", "drop"):
        return NO_ANSWER
    if value is None:
        return NO_ANSWER
    return parse_status(value)


def parse_receipt_state(value: str) -> ReceiptState:
    """``DELIVRD``/``DELIVERED`` style text (any case) to a :class:`ReceiptState`.

    Raises:
        ValueError: not one of the eight SMPP message states.
    """
    key = value.strip().upper()
    for state in ReceiptState:
        if key in (state.name, stat_text(state)):
            return state
    raise ValueError(f"unknown receipt state {value!r} (use DELIVRD, UNDELIV, EXPIRED, ...)")


def parse_hostport(value: str, *, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``"host:port"``, ``":port"`` or ``"port"`` (IPv6 as ``[::1]:2775``).

    Raises:
        ValueError: no valid port.
    """
    text = value.strip()
    host = default_host
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or not text[end + 1 :].startswith(":"):
            raise ValueError(f"bad address {value!r}; expected [host]:port")
        host, port_text = text[1:end], text[end + 2 :]
    elif ":" in text:
        host_part, _, port_text = text.rpartition(":")
        host = host_part or default_host
    else:
        port_text = text
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"bad port in {value!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} outside 0..65535")
    return host, port


StatusCode = Annotated[int, BeforeValidator(parse_status)]
MagicAction = Annotated[int, BeforeValidator(_parse_magic)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Delay(_Model):
    """A random delay in milliseconds.

    ``fixed``: always ``ms``. ``uniform``: between ``min_ms`` and ``max_ms``.
    ``lognormal``: median ``median_ms`` and shape ``sigma`` (of the underlying normal),
    capped at ``max_ms`` when given. A bare number is shorthand for ``fixed``.
    """

    dist: Literal["fixed", "uniform", "lognormal"] = "fixed"
    ms: float = Field(default=0.0, ge=0)
    min_ms: float = Field(default=0.0, ge=0)
    max_ms: float | None = Field(default=None, ge=0)
    median_ms: float = Field(default=0.0, ge=0)
    sigma: float = Field(default=0.5, ge=0, le=10)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, int | float) and not isinstance(data, bool):
            return {"dist": "fixed", "ms": data}
        return data

    @model_validator(mode="after")
    def _check(self) -> Delay:
        if self.dist == "uniform" and (self.max_ms is None or self.max_ms < self.min_ms):
            raise ValueError("uniform delay needs max_ms >= min_ms")
        if self.dist == "lognormal" and self.median_ms <= 0:
            raise ValueError("lognormal delay needs median_ms > 0")
        return self

    @property
    def fixed_s(self) -> float | None:
        """The delay in seconds if it never varies, else None."""
        if self.dist == "fixed":
            return self.ms / 1000.0
        if self.dist == "uniform" and self.max_ms == self.min_ms:
            return self.min_ms / 1000.0
        return None

    def sample_s(self, rng: random.Random) -> float:
        """One delay in seconds (draws from ``rng`` unless the delay is fixed)."""
        if self.dist == "fixed":
            return self.ms / 1000.0
        if self.dist == "uniform":
            assert self.max_ms is not None
            return rng.uniform(self.min_ms, self.max_ms) / 1000.0
        value = rng.lognormvariate(math.log(self.median_ms), self.sigma)
        if self.max_ms is not None and value > self.max_ms:
            value = self.max_ms
        return value / 1000.0


class Limits(_Model):
    """Defaults for every account; ``0`` means unlimited."""

    tps_per_bind: int = Field(default=0, ge=0)
    tps_per_account: int = Field(default=0, ge=0)
    max_outstanding: int = Field(default=0, ge=0)


class Account(_Model):
    system_id: str = Field(min_length=1, max_length=15)
    password: str = Field(default="", max_length=8)
    bind_types: frozenset[BindType] = ALL_BIND_TYPES
    max_binds: int = Field(default=8, ge=1)
    #: None = inherit from ``limits``; 0 = unlimited.
    tps_per_bind: int | None = Field(default=None, ge=0)
    tps_per_account: int | None = Field(default=None, ge=0)
    max_outstanding: int | None = Field(default=None, ge=0)

    @field_validator("bind_types", mode="before")
    @classmethod
    def _short_names(cls, value: Any) -> Any:
        short = {"tx": "transmitter", "rx": "receiver", "trx": "transceiver"}
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple | set | frozenset):
            return frozenset(short.get(str(v).lower(), str(v).lower()) for v in value)
        return value

    def effective(self, limits: Limits) -> Limits:
        """This account's limits, with ``None`` filled in from ``limits``."""
        return Limits(
            tps_per_bind=limits.tps_per_bind if self.tps_per_bind is None else self.tps_per_bind,
            tps_per_account=(
                limits.tps_per_account if self.tps_per_account is None else self.tps_per_account
            ),
            max_outstanding=(
                limits.max_outstanding if self.max_outstanding is None else self.max_outstanding
            ),
        )


class Receipts(_Model):
    enabled: bool = True
    #: From the moment the submit_sm_resp is sent (or, with ``receipt_before_resp``,
    #: from the moment the submit_sm arrived).
    delay: Delay = Delay()
    #: Weights, any scale; keys are stat codes (DELIVRD, UNDELIV, EXPIRED, REJECTD, ...).
    outcomes: dict[str, float] = Field(default_factory=lambda: {"DELIVRD": 1.0})
    #: ``err:`` field per stat code; default ``000``.
    err_codes: dict[str, str] = Field(default_factory=dict)
    #: Add the receipted_message_id (0x001E) and message_state (0x0427) TLVs.
    tlvs: bool = True
    #: Count the receipt delay from the submit_sm's arrival instead of from its resp:
    #: with a delay shorter than the resp latency, the receipt goes out first.
    receipt_before_resp: bool = False
    #: Max unacknowledged deliver_sm per receiver bind; the rest wait in the account queue.
    window: int = Field(default=1000, ge=1)
    #: Max receipts waiting for a receiver per account; beyond it new receipts are dropped.
    queue_limit: int = Field(default=1_000_000, ge=0)

    @field_validator("outcomes")
    @classmethod
    def _check_outcomes(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("outcomes must name at least one state")
        out: dict[str, float] = {}
        for key, weight in value.items():
            if weight < 0 or not math.isfinite(weight):
                raise ValueError(f"weight of {key} must be a finite number >= 0")
            out[stat_text(parse_receipt_state(key))] = float(weight)
        if sum(out.values()) <= 0:
            raise ValueError("outcome weights must not all be zero")
        return out

    @field_validator("err_codes")
    @classmethod
    def _check_err(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, err in value.items():
            err = str(err)
            if not err.isascii() or not err.isalnum() or len(err) > 3:
                raise ValueError(f"err code {err!r} must be 1-3 ASCII letters or digits")
            out[stat_text(parse_receipt_state(key))] = err.zfill(3)
        return out


class Ids(_Model):
    """Message ids: a counter starting at ``start``, written in hex or decimal."""

    resp_format: Literal["hex", "dec"] = "hex"
    #: None = same as resp_format.
    receipt_format: Literal["hex", "dec"] | None = None
    hex_width: int = Field(default=16, ge=1, le=64)
    #: Zero-padded width of decimal ids; 0 = no padding.
    dec_width: int = Field(default=0, ge=0, le=64)
    start: int = Field(default=1, ge=0)


class SlowReader(_Model):
    """Stop reading a bind's socket for ``pause_ms``: every ``every_s`` seconds of the bind's
    life and/or every ``after_pdus`` PDUs received on it."""

    pause_ms: float = Field(gt=0)
    every_s: float | None = Field(default=None, gt=0)
    after_pdus: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _trigger(self) -> SlowReader:
        if self.every_s is None and self.after_pdus is None:
            raise ValueError("slow_reader needs every_s or after_pdus")
        return self


class Faults(_Model):
    #: command_status -> probability per submit_sm (the rest are processed normally).
    error_rates: dict[StatusCode, float] = Field(default_factory=dict)
    #: destination_addr -> command_status to answer, or "no_answer".
    magic_destinations: dict[str, MagicAction] = Field(default_factory=dict)
    #: Close every bind this many seconds after it was bound.
    drop_every_s: float | None = Field(default=None, gt=0)
    #: Close a bind after it has received this many PDUs (counted after the bind).
    drop_after_pdus: int | None = Field(default=None, ge=1)
    slow_reader: SlowReader | None = None

    @field_validator("error_rates")
    @classmethod
    def _check_rates(cls, value: dict[int, float]) -> dict[int, float]:
        for status, rate in value.items():
            if status == 0:
                raise ValueError("error_rates cannot name ESME_ROK")
            if not 0 <= rate <= 1:
                raise ValueError(f"rate of 0x{status:X} must be within 0..1")
        if sum(value.values()) > 1 + 1e-9:
            raise ValueError("error rates add up to more than 1")
        return value


class HttpSettings(_Model):
    """Stats/metrics HTTP endpoint; ``port`` None disables it, 0 picks a free port."""

    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=0, le=65535)


class Profile(_Model):
    listen: str = "127.0.0.1:2775"
    #: system_id the simulator puts in its bind responses.
    system_id: str = Field(default="smsblast-sim", max_length=15)
    #: Seed of every random choice; None = fresh entropy each run.
    seed: int | None = None
    accounts: list[Account] = Field(
        default_factory=lambda: [Account(system_id="smsblast", password="secret")],
        min_length=1,
    )
    limits: Limits = Limits()
    #: submit_sm_resp latency.
    latency: Delay = Delay()
    receipts: Receipts = Receipts()
    ids: Ids = Ids()
    faults: Faults = Faults()
    http: HttpSettings = HttpSettings()
    #: JSON stats written here when the simulator stops.
    stats_file: str | None = None
    #: Track unique destinations and duplicates (about 20 bytes per accepted message).
    dedup: bool = True
    #: Resolution of delayed responses and receipts.
    tick_ms: float = Field(default=1.0, ge=0.5, le=100)
    max_pdu_length: int = Field(default=65536, ge=1024, le=1 << 24)
    #: Answer to a request with a malformed body: generic_nack, or the request's own
    #: response type (e.g. submit_sm_resp), both carrying the error status.
    malformed_reply: Literal["generic_nack", "response"] = "generic_nack"
    #: Closed binds kept in detail in the stats; older ones are folded into their account.
    bind_history: int = Field(default=256, ge=0)

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_hostport(value)
        return value

    @field_validator("accounts")
    @classmethod
    def _unique_accounts(cls, value: list[Account]) -> list[Account]:
        seen: set[str] = set()
        for account in value:
            if account.system_id in seen:
                raise ValueError(f"duplicate account system_id {account.system_id!r}")
            seen.add(account.system_id)
        return value

    @property
    def host(self) -> str:
        return parse_hostport(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_hostport(self.listen)[1]


def load_profile(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Profile:
    """Read a YAML profile (or start from defaults) and apply ``overrides``.

    ``overrides`` maps dotted paths to values, e.g. ``{"limits.tps_per_bind": 100}``;
    they are applied to the raw data before validation.

    Raises:
        OSError: the file cannot be read.
        ValueError: the YAML is not a mapping, or (pydantic.ValidationError) the profile
            is invalid.
    """
    data: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a simulator profile must be a YAML mapping")
        data = loaded
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[leaf] = value
    return Profile.model_validate(data)
