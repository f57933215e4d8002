"""`smsblast ctl`: control a running engine through its admin API.

  smsblast ctl status                 every campaign, as a table (--json for scripts)
  smsblast ctl status NAME            one campaign in detail
  smsblast ctl pause NAME             stop sending (in-flight messages settle normally)
  smsblast ctl resume NAME            send again
  smsblast ctl cancel NAME            stop for good (a cancelled campaign cannot resume)
  smsblast ctl health                 readiness (/readyz), e.g. for a container HEALTHCHECK

The API address is --url, else admin.listen of the engine config (--config or
$SMSBLAST_CONFIG), else http://127.0.0.1:8081. The token is read from --token-file, else
$SMSBLAST_ADMIN_TOKEN, else the config's admin.token_env / admin.token_file.

Exit codes: 0 done; 1 the request failed (unreachable, unauthorized, no such campaign,
not allowed, not ready); 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from smsblast.config import (
    CONFIG_ENV,
    ConfigError,
    EngineConfig,
    load_engine_config,
    read_secret_file,
)

__all__ = [
    "DEFAULT_URL",
    "TOKEN_ENV",
    "CtlError",
    "Reply",
    "Target",
    "add_parser",
    "base_url",
    "call",
    "format_campaign",
    "format_table",
    "resolve_target",
    "run_from_args",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_URL: Final = "http://127.0.0.1:8081"
TOKEN_ENV: Final = "SMSBLAST_ADMIN_TOKEN"
_ACTIONS: Final = ("pause", "resume", "cancel")
_COMMANDS: Final = (*_ACTIONS, "status", "health")


class CtlError(Exception):
    """A failure to report on stderr and exit with ``code`` (1 request, 2 usage/config)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Target:
    """Where the admin API is (``url``, no trailing slash) and the bearer ``token``."""

    url: str
    token: str


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: its status and its JSON body (``None`` when not JSON)."""

    status: int
    data: Any


def base_url(host: str, port: int) -> str:
    """The URL a client on this machine uses for a server listening on ``host:port``: a
    wildcard address becomes loopback, an IPv6 address gets brackets."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _config(path: str | None, environ: Mapping[str, str]) -> EngineConfig | None:
    if path is None and not environ.get(CONFIG_ENV):
        return None
    try:
        return load_engine_config(path)
    except ConfigError as exc:
        raise CtlError(f"configuration error:\n{exc}", EXIT_USAGE) from None


def resolve_target(
    url: str | None, config_path: str | None, token_file: str | None, environ: Mapping[str, str]
) -> Target:
    """The admin API address and token from the options, the environment and the config
    (see the module docstring for the order).

    Raises:
        CtlError: (code 2) the config or token file is unreadable or invalid, or no token
            is found anywhere.
    """
    config = _config(config_path, environ)
    admin = None if config is None else config.admin
    address = None if admin is None else admin.listen_address()
    if url is None:
        url = DEFAULT_URL if address is None else base_url(*address)
    try:
        if token_file is not None:
            token = read_secret_file(token_file, "--token-file", "admin API token")
        elif environ.get(TOKEN_ENV):
            token = environ[TOKEN_ENV]
        elif admin is not None and (admin.token_env or admin.token_file):
            token = admin.token()
        else:
            raise CtlError(
                f"no admin token: use --token-file, set {TOKEN_ENV}, or give --config with "
                "admin.token_env or admin.token_file",
                EXIT_USAGE,
            )
    except ConfigError as exc:
        raise CtlError(str(exc), EXIT_USAGE) from None
    return Target(url.rstrip("/"), token)


_OPENER: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxies


def call(target: Target, method: str, path: str, timeout: float = 10.0) -> Reply:
    """Send one request to the admin API and return its answer, whatever the status.

    Raises:
        CtlError: (code 1) the API cannot be reached or did not answer in time.
    """
    request = urllib.request.Request(
        target.url + path, method=method, headers={"Authorization": f"Bearer {target.token}"}
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status, body = int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        status, body = int(exc.code), bytes(exc.read())
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        message = f"cannot reach the admin API at {target.url}: {reason}"
        raise CtlError(message, EXIT_FAILED) from None
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    return Reply(status, data)


def _failure(reply: Reply, name: str | None) -> CtlError:
    if reply.status == 401:
        return CtlError("unauthorized: check the admin token", EXIT_FAILED)
    if reply.status == 404 and name is not None:
        return CtlError(f"no campaign {name}", EXIT_FAILED)
    error = reply.data.get("error") if isinstance(reply.data, dict) else None
    return CtlError(f"HTTP {reply.status}: {error or 'request failed'}", EXIT_FAILED)


def _engine_state(entry: Mapping[str, Any]) -> str:
    """The ENGINE column: the run's state (waiting, running, paused, ...) when this engine
    runs the campaign, else ``-``."""
    engine = entry.get("engine")
    if not isinstance(engine, Mapping):
        return "-"
    return str(engine.get("state", "?"))


def format_table(campaigns: list[dict[str, Any]]) -> str:
    """Campaigns as an aligned table: name, control, the state of this engine's run (``-``
    when it does not run it), creation time (``-`` until the campaign opens)."""
    if not campaigns:
        return "no campaigns"
    rows = [("NAME", "CONTROL", "ENGINE", "CREATED")]
    rows += [
        (
            str(entry.get("name", "")),
            str(entry.get("control", "")),
            _engine_state(entry),
            str(entry.get("created_at") or "-"),
        )
        for entry in campaigns
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[3]])
        for row in rows
    )


def format_campaign(entry: Mapping[str, Any], indent: str = "") -> str:
    """One campaign as ``key: value`` lines; a mapping value is nested below its key."""
    lines: list[str] = []
    for key, value in entry.items():
        if isinstance(value, Mapping) and value:
            lines.append(f"{indent}{key}:")
            lines.append(format_campaign(value, indent + "  "))
        else:
            shown = "-" if value is None or value == {} else value
            lines.append(f"{indent}{key}: {shown}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    command: str = args.command_ctl
    name: str | None = args.name
    if command in _ACTIONS and name is None:
        raise CtlError(f"ctl {command} needs a campaign NAME", EXIT_USAGE)
    if command == "health" and name is not None:
        raise CtlError("ctl health takes no campaign name", EXIT_USAGE)
    target = resolve_target(args.url, args.config, args.token_file, os.environ)
    if command == "health":
        reply = call(target, "GET", "/readyz", args.timeout)
        if reply.status in (200, 503):
            print("ready" if reply.status == 200 else "not ready")
            return EXIT_OK if reply.status == 200 else EXIT_FAILED
        raise _failure(reply, None)
    if command == "status":
        path = "/campaigns" if name is None else f"/campaigns/{quote(name, safe='')}"
        reply = call(target, "GET", path, args.timeout)
    else:
        path = f"/campaigns/{quote(name or '', safe='')}/{command}"
        reply = call(target, "POST", path, args.timeout)
    if reply.status != 200 or not isinstance(reply.data, dict):
        raise _failure(reply, name)
    if args.json:
        print(json.dumps(reply.data, indent=2, sort_keys=True))
    elif command in _ACTIONS:
        print(f"campaign {reply.data.get('campaign')}: {reply.data.get('control')}")
    elif name is None:
        print(format_table(list(reply.data.get("campaigns", []))))
    else:
        print(format_campaign(reply.data))
    return EXIT_OK


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``smsblast ctl``; returns the exit code (see the module docstring)."""
    try:
        return _run(args)
    except CtlError as exc:
        print(f"smsblast ctl: {exc}", file=sys.stderr)
        return exc.code


def add_parser(sub: Any) -> None:
    """Register ``ctl`` on the ``smsblast`` subcommand parser."""
    p = sub.add_parser(
        "ctl",
        help="pause, resume, cancel or inspect campaigns of a running engine",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("command_ctl", choices=_COMMANDS, metavar="ACTION", help=" | ".join(_COMMANDS))
    p.add_argument("name", nargs="?", metavar="NAME", help="campaign name (waves: name@wave)")
    p.add_argument("--url", help=f"admin API base URL (default: admin.listen, else {DEFAULT_URL})")
    p.add_argument(
        "--config", help="engine config for admin.listen and the token (default $SMSBLAST_CONFIG)"
    )
    p.add_argument("--token-file", help=f"file holding the admin token (default ${TOKEN_ENV})")
    p.add_argument("--json", action="store_true", help="print the API's JSON answer")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for an answer")
    p.set_defaults(func=run_from_args)
