"""Engine configuration (``config/smsblast.yaml``) and campaigns (``campaigns.yaml``).

Theory of operation
-------------------
Both files are YAML validated by frozen pydantic models that forbid unknown keys. The two
loaders, :func:`load_engine_config` and :func:`load_campaigns`, are the only functions here
that read files on their own; every problem they find becomes one :class:`ConfigError` whose
text has one line per problem::

    config/smsblast.yaml: routes.telkomsel.smscs.0.port: Input should be ... (got 70000)
    campaigns.yaml: campaigns.0.template: position 5: attribute access in placeholder ...
    campaigns.yaml: line 7, column 3: invalid YAML: could not find expected ':'

so the engine can refuse to start before it has touched Kafka or an SMSC.

Secrets never live in these files: an SMSC names an environment variable (``password_env``) or
a file (``password_file``), Kafka SASL names an environment variable (``sasl_password_env``),
the admin API an environment variable or a file for its token (``token_env``, ``token_file``),
and they are read when asked for (:meth:`SmscConfig.password`, :meth:`AdminConfig.token`,
:meth:`KafkaConfig.aiokafka_kwargs`, :meth:`EngineConfig.check_secrets`), never at load time.
Relative paths (password files, CA files, the ledger) are relative to the working directory.

YAML pitfalls handled here: a key written twice in one mapping is an error (PyYAML would
silently keep the last one, losing, say, a whole route), and prefixes or numeric senders
written as unquoted numbers are refused with a hint to quote them (YAML reads ``0811`` as the
octal number 521).
"""

from __future__ import annotations

import difflib
import os
import re
import ssl
from collections.abc import Hashable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from smsblast.client.config import BindConfig, BindMode
from smsblast.msisdn import InvalidMsisdn, normalize_msisdn
from smsblast.render import OnMissing, Template, compile_template
from smsblast.schedule import (
    DEFAULT_TIMEZONE,
    MAX_WAVES,
    Pace,
    QuietHours,
    load_timezone,
    parse_quiet_range,
)
from smsblast.smpp.receipt import IdFormat
from smsblast.smpp.text import ConcatMode, EncodingPolicy, TextEncodingError, count_parts

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CAMPAIGNS_PATH",
    "DEFAULT_CONFIG_PATH",
    "AdminConfig",
    "Campaign",
    "CampaignsFile",
    "ConfigError",
    "EngineConfig",
    "KafkaConfig",
    "LedgerConfig",
    "MetricsConfig",
    "OptOutConfig",
    "Repeat",
    "RouteConfig",
    "SmscConfig",
    "check_campaign_routes",
    "format_duration",
    "load_campaigns",
    "load_engine_config",
    "parse_duration",
    "read_secret_file",
    "sender_ton_npi",
]

CONFIG_ENV: Final = "SMSBLAST_CONFIG"
DEFAULT_CONFIG_PATH: Final = "config/smsblast.yaml"
DEFAULT_CAMPAIGNS_PATH: Final = "campaigns.yaml"


# --- errors --------------------------------------------------------------------------------


class ConfigError(Exception):
    """Invalid configuration: ``problems`` is a tuple of ``(location, problem)``.

    ``location`` is a dotted key path (``routes.telkomsel.smscs.0.port``), a YAML position
    (``line 3, column 7``) or ``""`` for the file as a whole. ``str()`` gives one line per
    problem, ``"<file>: <location>: <problem>"`` (parts that are empty are left out).

    ``ConfigError("some message")`` (no ``problems``) is a ready-made one-line message:
    ``file`` is then ``None`` and ``problems`` is ``(("", "some message"),)``.
    """

    def __init__(
        self,
        file: str | os.PathLike[str] | None,
        problems: Iterable[tuple[str, str]] | None = None,
    ) -> None:
        if problems is None:
            message = "" if file is None else os.fspath(file)
            self.file: str | None = None
            self.problems: tuple[tuple[str, str], ...] = (("", message),)
        else:
            self.file = None if file is None else os.fspath(file)
            self.problems = tuple(problems)
        super().__init__(
            "\n".join(
                ": ".join(part for part in (self.file, location, problem) if part)
                for location, problem in self.problems
            )
        )


# --- reusable field types ------------------------------------------------------------------

_DURATION = re.compile(r"(?:([0-9]{1,6})d)?(?:([0-9]{1,7})h)?(?:([0-9]{1,9})m)?(?:([0-9]{1,9})s)?")
_UNITS: Final = (86_400, 3_600, 60, 1)


def parse_duration(value: object) -> timedelta:
    """Parse ``"24h"``, ``"90m"``, ``"2d"``, ``"3600s"`` or a combination in that order
    (``"1h30m"``, ``"1d12h"``) into a ``timedelta``; a ``timedelta`` passes through.

    Raises:
        ValueError: anything else, bare numbers included (a unit is always required).
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match is not None and any(match.groups()):
            seconds = sum(
                int(amount) * unit
                for amount, unit in zip(match.groups(), _UNITS, strict=True)
                if amount
            )
            return timedelta(seconds=seconds)
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value!r} has no unit: write a duration like 90s, 10m, 24h or 2d")
    raise ValueError(f"{value!r} is not a duration like 90s, 10m, 24h, 2d or 1h30m")


def format_duration(value: timedelta) -> str:
    """The shortest spelling :func:`parse_duration` reads back (``timedelta(hours=24)`` ->
    ``"1d"``, ``timedelta(seconds=90)`` -> ``"1m30s"``, zero -> ``"0s"``)."""
    remaining = int(value.total_seconds())
    text = ""
    for suffix, unit in zip("dhms", _UNITS, strict=True):
        amount, remaining = divmod(remaining, unit)
        if amount:
            text += f"{amount}{suffix}"
    return text or "0s"


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a name: 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _check_slug(name: str) -> str:
    if not _SLUG.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a campaign name: 1-64 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


Name = Annotated[str, AfterValidator(_check_name)]
"""Route and SMSC names: used in metric labels and logs."""

_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


def _check_topic(topic: str) -> str:
    if not _TOPIC.fullmatch(topic) or topic in (".", ".."):
        raise ValueError(
            f"{topic!r} is not a Kafka topic name (1-249 of letters, digits, '.', '_', '-')"
        )
    return topic


Topic = Annotated[str, AfterValidator(_check_topic)]


def _quoted_digits(what: str) -> Any:
    """A before-validator refusing YAML numbers where a digit string is meant."""

    def check(value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(
                f'write {what} as a quoted string ("{value}"): YAML drops leading zeros '
                "of unquoted numbers and reads 0811 as the octal number 521"
            )
        return value

    return BeforeValidator(check)


def _number_as_text(value: object) -> object:
    """A before-validator: a YAML integer where text is meant (``62``, ``8081``) as text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- engine configuration ------------------------------------------------------------------

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def _read_env_secret(variable: str, location: str, what: str) -> str:
    value = os.environ.get(variable, "")
    if not value:
        raise ConfigError(
            None, [(location, f"environment variable {variable} ({what}) is not set or empty")]
        )
    return value


def read_secret_file(path: str, location: str, what: str) -> str:
    """The secret in file ``path``, its trailing newline dropped (other whitespace is kept).

    Raises:
        ConfigError: at ``location``: the file is unreadable or empty; the message names the
            file and ``what`` it holds.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            secret = handle.read().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(None, [(location, f"cannot read {path} ({what}): {reason}")]) from None
    if not secret:
        raise ConfigError(None, [(location, f"{path} is empty ({what})")])
    return secret


class KafkaConfig(_Model):
    """Kafka connection settings, passed to aiokafka via :meth:`aiokafka_kwargs`."""

    bootstrap_servers: list[str] = Field(min_length=1)
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password_env: Annotated[str, Field(pattern=_ENV_NAME)] | None = None
    ssl_cafile: str | None = None
    client_id: str = Field(default="smsblast", min_length=1)
    #: How long the campaign's consumer group waits for a silent engine before it hands its
    #: partitions to another (heartbeats every third of it). 6 s is the least a broker accepts
    #: by default (group.min.session.timeout.ms), against aiokafka's 10 s: a crashed engine's
    #: partitions move sooner, and on Tansu, which holds a new group's first JoinGroup for half
    #: the session timeout, a blast starts 2 s sooner (3 s from subscribe to the first record,
    #: against 5 s; Apache Kafka holds it group.initial.rebalance.delay.ms, 3 s by default).
    #: A broker refuses a value outside its group.min/max.session.timeout.ms (Apache Kafka:
    #: 6 s and 30 min by default): the campaign then fails at its start, naming the error.
    #: Less than 6 s is for brokers set up for it (the tests' Tansu runs at 3 s).
    session_timeout_ms: int = Field(default=6000, ge=1000, le=1_800_000)

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split_servers(cls, value: object) -> object:
        if isinstance(value, str):
            return [server.strip() for server in value.split(",") if server.strip()]
        return value

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_servers(cls, servers: list[str]) -> list[str]:
        for server in servers:
            if not server or any(char.isspace() for char in server):
                raise ValueError(f"{server!r} is not a host:port address")
        return servers

    @model_validator(mode="after")
    def _check_security(self) -> KafkaConfig:
        sasl = self.security_protocol.startswith("SASL_")
        sasl_keys = {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_username": self.sasl_username,
            "sasl_password_env": self.sasl_password_env,
        }
        if sasl:
            missing = [key for key, value in sasl_keys.items() if value is None]
            if missing:
                raise ValueError(
                    f"security_protocol {self.security_protocol} needs {', '.join(missing)}"
                )
        else:
            given = [key for key, value in sasl_keys.items() if value is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)} given but security_protocol is "
                    f"{self.security_protocol}; use SASL_PLAINTEXT or SASL_SSL"
                )
        if self.ssl_cafile is not None and not self.security_protocol.endswith("SSL"):
            raise ValueError(
                f"ssl_cafile given but security_protocol is {self.security_protocol}; "
                "use SSL or SASL_SSL"
            )
        return self

    def sasl_password(self) -> str | None:
        """The SASL password from ``sasl_password_env`` (``None`` without SASL).

        Raises:
            ConfigError: the environment variable is unset or empty.
        """
        if self.sasl_password_env is None:
            return None
        return _read_env_secret(
            self.sasl_password_env, "kafka.sasl_password_env", "Kafka SASL password"
        )

    def group_kwargs(self) -> dict[str, Any]:
        """Consumer-group keyword arguments for ``AIOKafkaConsumer`` (with a ``group_id``)."""
        return {
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": max(100, self.session_timeout_ms // 3),
        }

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Connection keyword arguments for ``AIOKafkaConsumer``, ``AIOKafkaProducer`` and
        ``AIOKafkaAdminClient``, to combine with ``bootstrap_servers=self.bootstrap_servers``.

        ``bootstrap_servers`` itself is NOT included (callers pass it explicitly, next to their
        own settings). ``client_id`` and ``security_protocol`` always; with SASL also
        ``sasl_mechanism``, ``sasl_plain_username`` and ``sasl_plain_password`` (aiokafka uses
        the ``plain`` names for SCRAM too), the password read from its environment variable now;
        with SSL or SASL_SSL an ``ssl_context`` from ``aiokafka.helpers.create_ssl_context``
        (system CAs, or ``ssl_cafile``).

        Raises:
            ConfigError: the SASL password variable is unset or empty.
        """
        kwargs: dict[str, Any] = {
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism is not None:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password()
        if self.security_protocol.endswith("SSL"):
            from aiokafka.helpers import create_ssl_context

            kwargs["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        return kwargs


class LedgerConfig(_Model):
    """``worker``: where the ledger's SQLite work runs. ``process`` (default): a child
    process, so it uses the second core instead of sharing the event loop's GIL (measured:
    see ``smsblast/ledger_process.py``); ``thread``: a thread of the engine's process."""

    path: str = Field(default="smsblast-ledger.sqlite", min_length=1)
    worker: Literal["process", "thread"] = "process"


class MetricsConfig(_Model):
    """``listen``: ``"host:port"`` (``"[::1]:9464"`` for IPv6) for the metrics endpoint, or
    ``None`` for no endpoint."""

    listen: str | None = None

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, listen: str | None) -> str | None:
        if listen is not None:
            _split_host_port(listen)
        return listen

    def listen_address(self) -> tuple[str, int] | None:
        """``(host, port)`` of ``listen`` (IPv6 brackets removed), or ``None``."""
        return None if self.listen is None else _split_host_port(self.listen)


def _admin_address(text: str) -> tuple[str, int]:
    port = text.removeprefix(":")
    if port.isascii() and port.isdigit():
        text = f"127.0.0.1:{port}"
    return _split_host_port(text)


def _admin_listen(listen: str) -> str:
    _admin_address(listen)
    return listen


class AdminConfig(_Model):
    """The admin HTTP API (live control, health): off unless ``listen`` is set.

    ``listen`` is ``"host:port"``, or a bare port (``8081`` or ``":8081"``) for 127.0.0.1.
    Every request needs a bearer token, read from the environment variable ``token_env`` or
    the file ``token_file`` (exactly one when ``listen`` is set); an inline token is refused.
    """

    listen: (
        Annotated[str, BeforeValidator(_number_as_text), AfterValidator(_admin_listen)] | None
    ) = None
    token_env: Annotated[str, Field(pattern=_ENV_NAME)] | None = None
    token_file: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _check_token(self) -> AdminConfig:
        if self.listen is not None and (self.token_env is None) == (self.token_file is None):
            raise ValueError(
                "listen is set: exactly one of token_env (an environment variable) or "
                "token_file (a file holding the token) is required"
            )
        return self

    def listen_address(self) -> tuple[str, int] | None:
        """``(host, port)`` of ``listen`` (host 127.0.0.1 for a bare port), or ``None``."""
        return None if self.listen is None else _admin_address(self.listen)

    def token(self) -> str:
        """The bearer token, read now from ``token_env`` or ``token_file`` (a file's trailing
        newline is dropped).

        Raises:
            ConfigError: no token source is configured, the variable is unset or empty, or
                the file is unreadable or empty; the location is ``admin.token_env`` or
                ``admin.token_file``.
        """
        if self.token_env is not None:
            return _read_env_secret(self.token_env, "admin.token_env", "admin API token")
        if self.token_file is not None:
            return read_secret_file(self.token_file, "admin.token_file", "admin API token")
        raise ConfigError(None, [("admin", "no token_env or token_file is configured")])


def _split_host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not host:port with a port in 1..65535")
    return host, int(port)


class OptOutConfig(_Model):
    """Where refusals (opt-outs) come from: a file of numbers and/or a Kafka topic."""

    file: str | None = None
    topic: Topic | None = None


BindModeName = Literal["transceiver", "transmitter+receiver", "transmitter"]


def sender_ton_npi(sender: str) -> tuple[int, int]:
    """``(source_addr_ton, source_addr_npi)`` for a sender: all digits -> ``(1, 1)``
    (international, ISDN), anything else (alphanumeric) -> ``(5, 0)``."""
    return (1, 1) if sender.isascii() and sender.isdigit() else (5, 0)


class SmscConfig(_Model):
    """One SMSC account of a route.

    ``binds`` sessions are opened to it, each paced at ``tps_per_bind`` submits per second
    with up to ``window`` unanswered submits. The password comes from ``password_env`` or
    ``password_file`` (exactly one); an inline ``password`` key is refused.
    """

    name: Name | None = None
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    tls: bool = False
    tls_ca_file: str | None = None
    system_id: str = Field(min_length=1, max_length=15)
    password_env: Annotated[str, Field(pattern=_ENV_NAME)] | None = None
    password_file: str | None = Field(default=None, min_length=1)
    system_type: str = Field(default="", max_length=12)
    bind_mode: BindModeName = "transceiver"
    binds: int = Field(default=1, ge=1)
    tps_per_bind: float = Field(gt=0)
    window: int = Field(default=10, ge=1, le=1000)
    msg_id_format: IdFormat = IdFormat.HEX
    receipt_id_format: IdFormat | None = None
    source_ton: int | None = Field(default=None, ge=0, le=6)
    source_npi: int | None = Field(default=None, ge=0, le=18)
    dest_ton: int = Field(default=1, ge=0, le=6)
    dest_npi: int = Field(default=1, ge=0, le=18)
    enquire_link_interval: float = Field(default=30.0, gt=0)
    response_timeout: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> SmscConfig:
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError(
                "exactly one of password_env (an environment variable) or password_file "
                "(a file holding the password) is required"
            )
        if self.tls_ca_file is not None and not self.tls:
            raise ValueError("tls_ca_file given but tls is false")
        return self

    @property
    def label(self) -> str:
        return self.name or f"{self.system_id}@{self.host}:{self.port}"

    @property
    def receipt_format(self) -> IdFormat:
        """How receipts write message ids: ``receipt_id_format``, else ``msg_id_format``."""
        return self.receipt_id_format or self.msg_id_format

    def source_ton_npi(self, sender: str) -> tuple[int, int]:
        """``(ton, npi)`` for ``sender``: the configured values, else :func:`sender_ton_npi`."""
        ton, npi = sender_ton_npi(sender)
        return (
            ton if self.source_ton is None else self.source_ton,
            npi if self.source_npi is None else self.source_npi,
        )

    def password(self) -> str:
        """The bind password, read now from ``password_env`` or ``password_file``.

        A password file's trailing newline is dropped (other whitespace is kept).

        Raises:
            ConfigError: the variable is unset or empty, or the file is unreadable or empty;
                the message names the variable or file and the SMSC.
        """
        if self.password_env is not None:
            return _read_env_secret(
                self.password_env, "password_env", f"password of SMSC {self.label}"
            )
        assert self.password_file is not None  # guaranteed by validation
        return read_secret_file(
            self.password_file, "password_file", f"password of SMSC {self.label}"
        )

    def tls_context(self) -> ssl.SSLContext | None:
        """A client TLS context (``tls_ca_file`` or the system CAs), or ``None`` without TLS."""
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=self.tls_ca_file)

    def bind_configs(self, route: str) -> list[BindConfig]:
        """The sessions to open to this SMSC, as :class:`BindConfig` values.

        * ``transceiver``: ``binds`` TRANSCEIVER sessions.
        * ``transmitter``: ``binds`` TRANSMITTER sessions (no receipts arrive on them).
        * ``transmitter+receiver``: ``binds`` TRANSMITTER sessions plus ONE RECEIVER
          session for the whole SMSC (receipts need one receiver, not one per transmitter);
          the receiver comes last.

        Names are ``<name>#<n>`` (``n`` from 1) and ``<name>#rx`` for the receiver, where
        ``<name>`` is the SMSC's name (``route`` when it has none). The password is read
        once, now, and one TLS context is shared by all the sessions.

        Raises:
            ConfigError: the password cannot be read (see :meth:`password`).
        """
        base = self.name or route
        password = self.password()
        tls = self.tls_context()
        mode = BindMode.TRANSCEIVER if self.bind_mode == "transceiver" else BindMode.TRANSMITTER

        def make(mode: BindMode, name: str) -> BindConfig:
            return BindConfig(
                host=self.host,
                port=self.port,
                system_id=self.system_id,
                password=password,
                mode=mode,
                system_type=self.system_type,
                window=self.window,
                response_timeout=self.response_timeout,
                enquire_link_interval=self.enquire_link_interval,
                tls=tls,
                msg_id_format=self.msg_id_format,
                name=name,
            )

        configs = [make(mode, f"{base}#{number}") for number in range(1, self.binds + 1)]
        if self.bind_mode == "transmitter+receiver":
            configs.append(make(BindMode.RECEIVER, f"{base}#rx"))
        return configs


def _check_prefix(prefix: str) -> str:
    if not (prefix.isascii() and prefix.isdigit()):
        raise ValueError(f"prefix {prefix!r} must be digits only")
    if prefix.startswith("0"):
        raise ValueError(
            f"prefix {prefix!r} starts with the trunk 0: write national digits ({prefix[1:]!r})"
        )
    return prefix


Prefix = Annotated[str, _quoted_digits("prefixes"), AfterValidator(_check_prefix)]


class RouteConfig(_Model):
    """An operator route: national-number prefixes (``"812"``) and the SMSCs serving them."""

    prefixes: list[Prefix] = Field(min_length=1)
    smscs: list[SmscConfig] = Field(min_length=1)

    @field_validator("prefixes")
    @classmethod
    def _unique(cls, prefixes: list[str]) -> list[str]:
        seen: set[str] = set()
        for prefix in prefixes:
            if prefix in seen:
                raise ValueError(f"prefix {prefix!r} is listed twice")
            seen.add(prefix)
        return prefixes


class EngineConfig(_Model):
    """``config/smsblast.yaml``: see :func:`load_engine_config`."""

    kafka: KafkaConfig
    ledger: LedgerConfig = LedgerConfig()
    metrics: MetricsConfig = MetricsConfig()
    admin: AdminConfig = AdminConfig()
    country_code: str = "62"
    optout: OptOutConfig = OptOutConfig()
    routes: dict[Name, RouteConfig] = Field(min_length=1)

    _source: str | None = PrivateAttr(default=None)

    @field_validator("country_code", mode="before")
    @classmethod
    def _country_code_text(cls, value: object) -> object:
        return _number_as_text(value)

    @field_validator("country_code")
    @classmethod
    def _known_country(cls, country_code: str) -> str:
        try:
            normalize_msisdn("", country_code)
        except InvalidMsisdn:
            pass  # the plan exists; the empty number was refused as expected
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return country_code

    @field_validator("routes")
    @classmethod
    def _routes(cls, routes: dict[str, RouteConfig]) -> dict[str, RouteConfig]:
        owners: dict[str, str] = {}
        problems: list[str] = []
        for name, route in routes.items():
            for prefix in route.prefixes:
                owner = owners.setdefault(prefix, name)
                if owner != name:
                    problems.append(f"prefix {prefix!r} is in both routes {owner} and {name}")
        if problems:
            raise ValueError("; ".join(problems))

        named: dict[str, RouteConfig] = {}
        smsc_routes: dict[str, str] = {}
        for name, route in routes.items():
            smscs: list[SmscConfig] = []
            for index, smsc in enumerate(route.smscs):
                smsc_name = smsc.name or f"{name}-{index}"
                if smsc_name in smsc_routes:
                    raise ValueError(
                        f"SMSC name {smsc_name!r} is used twice "
                        f"(routes {smsc_routes[smsc_name]} and {name})"
                    )
                smsc_routes[smsc_name] = name
                smscs.append(smsc if smsc.name else smsc.model_copy(update={"name": smsc_name}))
            named[name] = route.model_copy(update={"smscs": smscs})
        return named

    @model_validator(mode="after")
    def _remember_source(self, info: ValidationInfo) -> EngineConfig:
        if isinstance(info.context, dict):
            source = info.context.get("source")
            self._source = None if source is None else str(source)
        return self

    def smscs(self) -> Iterator[tuple[str, SmscConfig]]:
        """``(route, smsc)`` for every SMSC, in file order."""
        for name, route in self.routes.items():
            for smsc in route.smscs:
                yield name, smsc

    def check_secrets(self) -> None:
        """Check now that every secret can be read (SMSC passwords, Kafka SASL, the admin
        token when the admin API is on), so a missing secret stops the engine at start-up
        instead of at the first bind.

        Raises:
            ConfigError: one line per unreadable secret, with its key path.
        """
        problems: list[tuple[str, str]] = []
        try:
            self.kafka.sasl_password()
        except ConfigError as exc:
            problems.extend(exc.problems)
        if self.admin.listen is not None:
            try:
                self.admin.token()
            except ConfigError as exc:
                problems.extend(exc.problems)
        for name, route in self.routes.items():
            for index, smsc in enumerate(route.smscs):
                try:
                    smsc.password()
                except ConfigError as exc:
                    problems.extend(
                        (f"routes.{name}.smscs.{index}.{location}", problem)
                        for location, problem in exc.problems
                    )
        if problems:
            raise ConfigError(self._source, problems)


# --- campaigns -----------------------------------------------------------------------------

_ALPHANUMERIC_SENDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._&-]{0,9}[A-Za-z0-9._&-]|[A-Za-z]")
_NUMERIC_SENDER = re.compile(r"[0-9]{1,20}")
_MAX_VALIDITY: Final = timedelta(days=31)


def _check_sender(sender: str) -> str:
    if _NUMERIC_SENDER.fullmatch(sender):
        return sender
    if _ALPHANUMERIC_SENDER.fullmatch(sender) and any(char.isalpha() for char in sender):
        return sender
    raise ValueError(
        f"sender {sender!r} is neither alphanumeric (1-11 letters, digits, spaces or . _ & -, "
        "with a letter, no leading or trailing space) nor numeric (1-20 digits, no '+')"
    )


Sender = Annotated[str, _quoted_digits("a numeric sender"), AfterValidator(_check_sender)]


def _check_quiet_range(text: str) -> str:
    parse_quiet_range(text)
    return text


QuietRange = Annotated[str, AfterValidator(_check_quiet_range)]
"""A daily quiet range of local times, ``"21:00-07:00"`` (may wrap past midnight)."""


def _check_share(value: object) -> object:
    """``max_share``: a fraction in (0, 1], or a mapping of route name to such a fraction."""

    def fraction(share: object, where: str) -> float:
        if isinstance(share, bool) or not isinstance(share, int | float):
            raise ValueError(f"{where}{share!r} is not a number in (0, 1]")
        if not 0 < share <= 1:
            raise ValueError(f"{where}{share!r} is not in (0, 1] (a fraction of the route's TPS)")
        return float(share)

    if isinstance(value, dict):
        if not value:
            raise ValueError("an empty mapping: give a fraction or route: fraction pairs")
        return {str(route): fraction(share, f"route {route}: ") for route, share in value.items()}
    return fraction(value, "")


Share = Annotated[float | dict[str, float], BeforeValidator(_check_share)]


def _aware(value: datetime, info: ValidationInfo) -> datetime:
    """A naive datetime read in the campaign's ``timezone`` (UTC when that key is bad: it
    has its own error)."""
    if value.tzinfo is not None:
        return value
    name = info.data.get("timezone")
    return value.replace(tzinfo=load_timezone(name) if name else UTC)


class Repeat(_Model):
    """``repeat: {every: 7d, until: 2024-02-10T09:00}``: a wave every ``every`` from
    ``start_at`` while the wave starts no later than ``until`` (see
    :func:`smsblast.schedule.waves`)."""

    every: Duration
    until: datetime

    @field_validator("every")
    @classmethod
    def _positive(cls, every: timedelta) -> timedelta:
        if every <= timedelta(0):
            raise ValueError("every must be more than 0s")
        return every


class Campaign(_Model):
    """One campaign of ``campaigns.yaml``.

    ``template`` is checked when the file is loaded: it must compile
    (:func:`smsblast.render.compile_template`), its literal text must be encodable with
    ``encoding``, and its literal text alone (every field empty) must fit in ``max_parts``
    parts. :attr:`compiled` holds the compiled template.
    """

    name: Annotated[str, AfterValidator(_check_slug)]
    sender: Sender
    segments: list[Topic] = Field(min_length=1)
    encoding: EncodingPolicy = "auto"
    concat: ConcatMode = "udh8"
    max_parts: int = Field(default=3, ge=1, le=255)
    template: str
    registered_delivery: bool = True
    validity: Duration | None = None
    priority: int = Field(default=0, ge=0, le=3)
    on_unknown: Literal["skip", "resubmit"] = "skip"
    on_missing_field: OnMissing = "reject"
    receipt_wait: Duration = timedelta(minutes=10)
    # schedule (docs/scheduling.md); the order matters: validators read the earlier keys
    timezone: str = DEFAULT_TIMEZONE
    start_at: datetime | None = None
    deadline: datetime | None = None
    quiet_hours: list[QuietRange] = Field(default_factory=list)
    pace: Pace = "asap"
    max_share: Share = 1.0
    repeat: Repeat | None = None

    _compiled: Template = PrivateAttr()

    @field_validator("segments")
    @classmethod
    def _unique_segments(cls, segments: list[str]) -> list[str]:
        if len(set(segments)) != len(segments):
            twice = sorted({topic for topic in segments if segments.count(topic) > 1})
            raise ValueError(f"segment {twice[0]!r} is listed twice (it would be sent twice)")
        return segments

    @field_validator("template")
    @classmethod
    def _check_template(cls, text: str, info: ValidationInfo) -> str:
        template = compile_template(text)  # TemplateError is a ValueError: reported here
        if template.is_static and not text.strip():
            raise ValueError("the template is blank: every recipient would get an empty SMS")
        encoding = info.data.get("encoding")
        concat = info.data.get("concat")
        max_parts = info.data.get("max_parts")
        if encoding is None or concat is None or max_parts is None:
            return text  # those keys have errors of their own
        fixed_text = template.render({}, "empty")
        try:
            parts = count_parts(fixed_text, encoding, concat)
        except TextEncodingError as exc:
            raise ValueError(
                f"character {exc.char!r} cannot be sent with encoding {encoding}; "
                "use encoding auto or ucs2"
            ) from None
        if parts > max_parts:
            what = "the text" if template.is_static else "the text without its fields"
            raise ValueError(
                f"{what} needs {parts} parts (encoding {encoding}, concat {concat}) "
                f"but max_parts is {max_parts}"
            )
        return text

    @field_validator("validity")
    @classmethod
    def _check_validity(cls, validity: timedelta | None) -> timedelta | None:
        if validity is not None and not timedelta(0) < validity <= _MAX_VALIDITY:
            raise ValueError(f"validity must be more than 0s and at most {_MAX_VALIDITY.days}d")
        return validity

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, name: str) -> str:
        load_timezone(name)
        return name

    @field_validator("start_at")
    @classmethod
    def _check_start_at(cls, start_at: datetime | None, info: ValidationInfo) -> datetime | None:
        return None if start_at is None else _aware(start_at, info)

    @field_validator("deadline")
    @classmethod
    def _check_deadline(cls, deadline: datetime | None, info: ValidationInfo) -> datetime | None:
        if deadline is None:
            return None
        deadline = _aware(deadline, info)
        start_at = info.data.get("start_at")
        if start_at is not None and deadline <= start_at:
            raise ValueError(
                f"deadline {deadline.isoformat()} is not after start_at {start_at.isoformat()}"
            )
        return deadline

    @field_validator("quiet_hours")
    @classmethod
    def _check_quiet_hours(cls, ranges: list[str]) -> list[str]:
        QuietHours(ranges)  # refuses ranges that cover the whole day
        return ranges

    @field_validator("pace")
    @classmethod
    def _check_pace(cls, pace: str, info: ValidationInfo) -> str:
        if pace == "even" and "deadline" in info.data and info.data["deadline"] is None:
            raise ValueError("pace even spreads the sending up to the deadline: set a deadline")
        return pace

    @field_validator("repeat")
    @classmethod
    def _check_repeat(cls, repeat: Repeat | None, info: ValidationInfo) -> Repeat | None:
        if repeat is None:
            return None
        if "start_at" not in info.data or "deadline" not in info.data:
            return repeat  # those keys have errors of their own
        start_at: datetime | None = info.data["start_at"]
        deadline: datetime | None = info.data["deadline"]
        if start_at is None:
            raise ValueError("repeat needs start_at (the first wave's start)")
        until = _aware(repeat.until, info)
        if until < start_at:
            raise ValueError(f"until {until.isoformat()} is before start_at {start_at.isoformat()}")
        if deadline is not None and deadline - start_at > repeat.every:
            raise ValueError(
                f"each wave lasts {format_duration(deadline - start_at)} (start_at to deadline) "
                f"but a new one starts every {format_duration(repeat.every)}: waves would overlap"
            )
        if (until - start_at) // repeat.every >= MAX_WAVES:
            raise ValueError(
                f"every {format_duration(repeat.every)} until {until.isoformat()} makes more "
                f"than {MAX_WAVES} waves"
            )
        return repeat.model_copy(update={"until": until})

    @model_validator(mode="after")
    def _compile(self) -> Campaign:
        self._compiled = compile_template(self.template)
        return self

    def receipt_wait_seconds(self) -> float:
        """:attr:`receipt_wait` in seconds."""
        return self.receipt_wait.total_seconds()

    def validity_seconds(self) -> float | None:
        """:attr:`validity` in seconds, or ``None`` when unset."""
        return None if self.validity is None else self.validity.total_seconds()

    @property
    def compiled(self) -> Template:
        """The compiled :attr:`template`."""
        return self._compiled

    def quiet(self) -> QuietHours:
        """:attr:`quiet_hours` in :attr:`timezone`, as a :class:`~smsblast.schedule.QuietHours`."""
        return QuietHours(self.quiet_hours, self.timezone)

    def share_for(self, route: str) -> float:
        """The fraction of ``route``'s TPS this campaign may use (``max_share``; a route
        missing from a ``max_share`` mapping gets 1.0)."""
        if isinstance(self.max_share, dict):
            return self.max_share.get(route, 1.0)
        return self.max_share

    def validity_period(self) -> str:
        """``validity`` in the SMPP relative time format ``YYMMDDhhmmss000R``, or ``""``
        (the SMSC's default) when unset. ``24h`` -> ``"000001000000000R"``, ``90m`` ->
        ``"000000013000000R"``. Years and months are always 00: days carry the count (a
        validity is at most 31 days)."""
        if self.validity is None:
            return ""
        minutes, seconds = divmod(int(self.validity.total_seconds()), 60)
        hours, minutes = divmod(minutes, 60)
        days, hours = divmod(hours, 24)
        return f"0000{days:02d}{hours:02d}{minutes:02d}{seconds:02d}000R"


class CampaignsFile(_Model):
    """``campaigns.yaml``: at least one campaign, names unique."""

    campaigns: list[Campaign] = Field(min_length=1)

    _source: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _remember_source(self, info: ValidationInfo) -> CampaignsFile:
        if isinstance(info.context, dict):
            source = info.context.get("source")
            self._source = None if source is None else str(source)
        return self

    @field_validator("campaigns")
    @classmethod
    def _unique_names(cls, campaigns: list[Campaign]) -> list[Campaign]:
        seen: dict[str, int] = {}
        for index, campaign in enumerate(campaigns):
            first = seen.setdefault(campaign.name, index)
            if first != index:
                raise ValueError(
                    f"campaign name {campaign.name!r} is used by campaigns {first} and {index}"
                )
        return campaigns

    def get(self, name: str) -> Campaign:
        """The campaign called ``name``.

        Raises:
            KeyError: no such campaign (the message lists the names there are).
        """
        for campaign in self.campaigns:
            if campaign.name == name:
                return campaign
        names = ", ".join(campaign.name for campaign in self.campaigns)
        raise KeyError(f"no campaign {name!r} (campaigns: {names})")

    def names(self) -> list[str]:
        return [campaign.name for campaign in self.campaigns]


def check_campaign_routes(config: EngineConfig, campaigns: CampaignsFile) -> None:
    """Check the campaigns against the engine's routes: every route named in a
    ``max_share`` mapping must exist.

    Raises:
        ConfigError: one line per unknown route, at ``campaigns.<i>.max_share.<route>`` of
            the campaigns file.
    """
    problems: list[tuple[str, str]] = []
    known = list(config.routes)
    for index, campaign in enumerate(campaigns.campaigns):
        if not isinstance(campaign.max_share, dict):
            continue
        for route in campaign.max_share:
            if route not in config.routes:
                close = difflib.get_close_matches(route, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(
                    (
                        f"campaigns.{index}.max_share.{route}",
                        f"no route {route!r} in the engine config (routes: "
                        f"{', '.join(known)}){hint}",
                    )
                )
    if problems:
        raise ConfigError(campaigns._source, problems)


# --- loading -------------------------------------------------------------------------------

_MODELS: Final[tuple[type[BaseModel], ...]] = (
    AdminConfig,
    EngineConfig,
    KafkaConfig,
    LedgerConfig,
    MetricsConfig,
    OptOutConfig,
    RouteConfig,
    SmscConfig,
    CampaignsFile,
    Campaign,
    Repeat,
)
_KNOWN_KEYS: Final = sorted({key for model in _MODELS for key in model.model_fields})
_KEY_HINTS: Final = {
    "password": (
        "inline passwords are not allowed: name an environment variable with password_env "
        "or a file with password_file"
    ),
    "sasl_password": (
        "inline passwords are not allowed: name an environment variable with sasl_password_env"
    ),
    "token": (
        "inline tokens are not allowed: name an environment variable with token_env "
        "or a file with token_file"
    ),
}
_PREFIXES_TO_STRIP: Final = ("Value error, ", "Assertion failed, ")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[object, yaml.Mark] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is written twice (first at line {seen[key].line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


def _read_yaml(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(path, [("", f"cannot read the file: {reason}")]) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        location = "" if mark is None else f"line {mark.line + 1}, column {mark.column + 1}"
        problem = exc.problem or "syntax error"
        if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
            problem += f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise ConfigError(path, [(location, f"invalid YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, [("", f"invalid YAML: {exc}")]) from None


def _problem(error: Any) -> tuple[str, str]:
    """``(dotted key path, message)`` for one pydantic error dict."""
    location = ".".join(str(part) for part in error["loc"])
    kind: str = error["type"]
    message: str = error["msg"]
    if kind == "missing":
        return location, "required key is missing"
    if kind == "extra_forbidden":
        key = str(error["loc"][-1]) if error["loc"] else ""
        if key in _KEY_HINTS:
            return location, _KEY_HINTS[key]
        close = difflib.get_close_matches(key, _KNOWN_KEYS, n=1)
        return location, "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    for prefix in _PREFIXES_TO_STRIP:
        if message.startswith(prefix):
            return location, message[len(prefix) :]
    value = error.get("input")
    if isinstance(value, str | int | float | bool) and kind not in ("value_error",):
        shown = repr(value)
        message += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return location, message


_ModelT = TypeVar("_ModelT", bound=BaseModel)


def _load(model: type[_ModelT], path: Path, what: str) -> _ModelT:
    data = _read_yaml(path)
    if data is None:
        raise ConfigError(path, [("", f"the file is empty; expected {what}")])
    if not isinstance(data, dict):
        raise ConfigError(path, [("", f"expected {what} at the top level")])
    try:
        return model.model_validate(data, context={"source": str(path)})
    except ValidationError as exc:
        raise ConfigError(path, [_problem(error) for error in exc.errors()]) from None


def load_engine_config(path: str | os.PathLike[str] | None = None) -> EngineConfig:
    """Read and validate the engine configuration.

    The path is ``path``, else the ``SMSBLAST_CONFIG`` environment variable (when set and
    non-empty), else ``config/smsblast.yaml``. Secrets are not read (see
    :meth:`EngineConfig.check_secrets`).

    Raises:
        ConfigError: unreadable file, YAML syntax error (with line and column), or any
            schema problem (one line per problem, with its dotted key path).
    """
    chosen = path if path is not None else os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH
    return _load(EngineConfig, Path(chosen), "a mapping with kafka and routes")


def load_campaigns(path: str | os.PathLike[str] = DEFAULT_CAMPAIGNS_PATH) -> CampaignsFile:
    """Read and validate a campaigns file.

    Raises:
        ConfigError: as :func:`load_engine_config`.
    """
    return _load(CampaignsFile, Path(path), "a mapping with a campaigns list")
