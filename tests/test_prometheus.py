"""The Grafana dashboard and the alert rules, evaluated by a real Prometheus.

A real engine runs a short blast (Tansu broker, two SMSC simulators with throttling,
transient and permanent errors, dropped binds and receipts that race their responses)
while a real ``prometheus`` (the Debian package) scrapes the engine's registry every
second. Then every PromQL expression of ``config/grafana/smsblast.json`` goes through
``/api/v1/query`` (each must parse and return data) and every rule of
``config/prometheus/alerts.yml`` must parse and evaluate without error. ``promtool``
checks both configuration files.

Without the ``prometheus`` binary the tests skip, except under ``CI`` where they fail:
``.ci/run`` installs the package.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import yaml
from prometheus_client import make_wsgi_app

from smsblast.metrics import REGISTRY
from smsblast.optout import OptOutList
from smsblast.procs import stop_process
from smsblast.simulator import Simulator
from tests.conftest import TopicFactory
from tests.engine_stack import (
    RouteSpec,
    campaign,
    engine_config,
    fill,
    make_engine,
    simulator_profile,
)

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "config" / "grafana" / "smsblast.json"
ALERTS = ROOT / "config" / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = ROOT / "config" / "prometheus" / "prometheus.yml"

#: Metrics the engine defines but does not set yet (the schedule and projection work wires
#: them). Dashboard expressions reading one of them must parse but may return nothing.
#: Delete this set once they are wired: the test fails as soon as one of them is scraped.
NOT_YET_EMITTED: set[str] = set()  # every metric the dashboard reads is emitted now

CAMPAIGN = "grafana"
#: telkomsel runs clean on two binds; indosat's SMSC allows fewer submits per second than the
#: engine is configured for (throttling, retries); xl's SMSC drops every bind after 250 PDUs
#: (reconnects) and never answers one of its destinations (an unknown outcome).
ROUTES = [
    RouteSpec("telkomsel", ("811", "812", "813"), tps=200, binds=2),
    RouteSpec("indosat", ("814", "815", "816"), tps=300),
    RouteSpec("xl", ("817", "818", "819"), tps=150),
]
SMSC_TPS = {"telkomsel": 200, "indosat": 150, "xl": 150}
#: Grafana's substitutions: a multi-value selection becomes a regex alternation; the blast
#: takes a few seconds, so one minute of rate() covers all of it.
VARIABLES = {
    "$campaign": CAMPAIGN,
    "$route": "(" + "|".join(r.name for r in ROUTES) + ")",
    "$__rate_interval": "1m",
}


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        reason = f"`{name}` not found: install the Debian package prometheus (.ci/run does)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def engine_metrics_port() -> Iterator[int]:
    """``smsblast.metrics.REGISTRY`` over HTTP on a free loopback port, as `smsblast run`
    serves it."""
    server: WSGIServer = make_server(
        "127.0.0.1", 0, make_wsgi_app(REGISTRY), handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Prometheus:
    url: str

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as resp:
            return json.load(resp)

    def query(self, expr: str) -> dict[str, Any]:
        """``/api/v1/query``: the JSON answer (status error comes back as HTTP 400)."""
        try:
            answer: dict[str, Any] = self.get("/api/v1/query", query=expr)
        except urllib.error.HTTPError as exc:
            answer = json.load(exc)
        return answer

    def value(self, expr: str) -> float | None:
        result = self.query(expr)["data"]["result"]
        return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="session")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, engine_metrics_port: int
) -> Iterator[Prometheus]:
    """A real Prometheus on a free loopback port: the example config with the engine target
    on ``engine_metrics_port``, a 1 s scrape and evaluation interval, and the alert rules."""
    binary = _binary("prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(ALERTS)]
    config["scrape_configs"] = [
        {
            "job_name": "smsblast",
            "static_configs": [{"targets": [f"127.0.0.1:{engine_metrics_port}"]}],
        }
    ]
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    log = (work / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prometheus exited {proc.returncode}: {_tail(work)}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as resp,
            ):
                if resp.status == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus not ready after 30 s: {_tail(work)}")
            time.sleep(0.1)
        yield server
    finally:
        stop_process(proc, 10)
        log.close()


def _tail(work: Path) -> str:
    return (work / "prometheus.log").read_text(errors="replace")[-2000:]


# ------------------------------------------------------------------ the files
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panel_targets() -> list[tuple[str, str]]:
    """("<panel title> <refId>", expr) for every query of every panel, rows included."""
    found: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                found.append((f"{panel['title']} {target['refId']}", target["expr"]))
            walk(panel.get("panels", []))

    walk(dashboard()["panels"])
    return found


def substitute(expr: str) -> str:
    for name, value in sorted(VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown template variable in {expr}"
    return expr


def scheduled(name: str, topics: list[str]) -> Any:
    """The test campaign with a start and a deadline, so the schedule panels have data."""
    now = datetime.now(UTC)
    return campaign(
        name,
        topics,
        start_at=now.isoformat(),
        deadline=(now + timedelta(minutes=10)).isoformat(),
    )


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def reads_unwired_metric(expr: str) -> bool:
    return any(re.search(rf"\b{name}\b", expr) for name in NOT_YET_EMITTED)


# ------------------------------------------------------------------ static checks
def test_dashboard_uses_its_variables_and_rate_interval() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("campaign", "route"):
        assert variables[name]["multi"] and variables[name]["includeAll"]
        assert variables[name]["definition"].startswith("label_values(")
    targets = panel_targets()
    assert len(targets) >= 30
    for title, expr in targets:
        assert "[$__rate_interval]" in expr or not re.search(r"\[\d+[smhd]\]", expr), (
            f"{title}: hard-coded range in {expr}"
        )
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: dict[tuple[int, int], str] = {}  # (x, y) grid cell -> the panel covering it
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, f"{panel['title']} is wider than the dashboard"
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[x, y]}"
                cells[x, y] = panel["title"]
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel[
                "title"
            ]


def test_every_alert_says_what_to_do() -> None:
    rules = alert_rules()
    names = {rule["alert"] for rule in rules}
    assert {
        "SmsblastCampaignProjectedLate",
        "SmsblastRouteNoBind",
        "SmsblastThrottleRatioHigh",
        "SmsblastReceiptSuccessLow",
        "SmsblastReceiptCorrelationMisses",
        "SmsblastConsumerStalled",
        "SmsblastCampaignFailed",
        "SmsblastKafkaUnreachable",
        "SmsblastLedgerDiskLow",
    } <= names
    docs = (ROOT / "docs" / "operations.md").read_text()
    for rule in rules:
        assert rule.get("for"), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 100
        assert rule["alert"] in docs, f"docs/operations.md does not explain {rule['alert']}"


def test_promtool_accepts_the_rules_and_the_example_config() -> None:
    promtool = _binary("promtool")
    for args in (["check", "rules", str(ALERTS)], ["check", "config", str(PROMETHEUS_CONFIG)]):
        done = subprocess.run(
            [promtool, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SUCCESS" in done.stdout


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    labels = {"job": "smsblast", "instance": "engine:9464", **labels}
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


#: Scenarios for ``promtool test rules``, one minute per step: (input series, expectations
#: as {eval time: {alert: [labels of each firing alert, severity excluded]}}).
ALERT_SCENARIOS: list[tuple[list[dict[str, str]], dict[str, dict[str, list[dict[str, str]]]]]] = [
    (  # the engine stops answering scrapes
        [_series("up", "1 0x10")],
        {
            "1m": {"SmsblastEngineDown": []},  # pending for 1 minute first
            "3m": {"SmsblastEngineDown": [{"job": "smsblast", "instance": "engine:9464"}]},
        },
    ),
    (  # xl's only transmitter drops at 2m; its receiver stays bound and must not hide it
        [
            _series("smsblast_bind_up", "1 1 0x10", route="xl", bind="xl#1"),
            _series("smsblast_tps_configured", "300x12", route="xl", bind="xl#1"),
            _series("smsblast_bind_up", "1x12", route="xl", bind="xl#rx"),
            _series("smsblast_tps_configured", "0x12", route="xl", bind="xl#rx"),
            _series("smsblast_bind_up", "1x12", route="telkomsel", bind="telkomsel#1"),
            _series("smsblast_tps_configured", "500x12", route="telkomsel", bind="telkomsel#1"),
        ],
        {
            "2m": {"SmsblastRouteNoBind": []},
            "3m": {"SmsblastRouteNoBind": [{"route": "xl"}]},
        },
    ),
    (  # one bind has 10% of its submits throttled, the other 1%
        [
            _series("smsblast_bind_submits_total", "0+6000x30", route="xl", bind="xl#1"),
            _series("smsblast_bind_throttled_total", "0+600x30", route="xl", bind="xl#1"),
            _series("smsblast_bind_submits_total", "0+6000x30", route="xl", bind="xl#2"),
            _series("smsblast_bind_throttled_total", "0+60x30", route="xl", bind="xl#2"),
        ],
        {
            "5m": {"SmsblastThrottleRatioHigh": []},
            "20m": {"SmsblastThrottleRatioHigh": [{"route": "xl", "bind": "xl#1"}]},
        },
    ),
    (  # 60% of the receipts say delivered, then a healthy 95% after 40m
        [
            _series("smsblast_receipts_total", "0+600x40 24000+950x40", state="delivered"),
            _series("smsblast_receipts_total", "0+400x40 16000+50x40", state="failed"),
        ],
        {
            "10m": {"SmsblastReceiptSuccessLow": []},
            "35m": {"SmsblastReceiptSuccessLow": [{}]},
            "75m": {"SmsblastReceiptSuccessLow": []},
        },
    ),
    (  # 5% of the receipts match nothing
        [
            _series("smsblast_receipts_total", "0+1000x40", state="delivered"),
            _series("smsblast_receipts_unmatched_total", "0+50x40"),
        ],
        {"25m": {"SmsblastReceiptCorrelationMisses": [{}]}},
    ),
    (  # a stalls; b reads; c has nothing to read; d is in quiet hours
        [
            _series("smsblast_consumer_lag", "500x30", campaign="a"),
            _series("smsblast_records_read_total", "100x30", campaign="a"),
            _series("smsblast_consumer_lag", "500x30", campaign="b"),
            _series("smsblast_records_read_total", "0+50x30", campaign="b"),
            _series("smsblast_consumer_lag", "0x30", campaign="c"),
            _series("smsblast_records_read_total", "100x30", campaign="c"),
            _series("smsblast_consumer_lag", "500x30", campaign="d"),
            _series("smsblast_records_read_total", "100x30", campaign="d"),
            _series("smsblast_campaign_state", "1x30", campaign="d", state="quiet"),
            _series("smsblast_campaign_state", "0x30", campaign="d", state="running"),
        ],
        {"20m": {"SmsblastConsumerStalled": [{"campaign": "a"}]}},
    ),
    (  # a's slow route finishes after its deadline; b is on time; c is late but done
        [
            _series(
                "smsblast_campaign_projected_finish_timestamp_seconds",
                "2000x20",
                campaign="a",
                route="telkomsel",
            ),
            _series(
                "smsblast_campaign_projected_finish_timestamp_seconds",
                "5000x20",
                campaign="a",
                route="xl",
            ),
            _series("smsblast_campaign_deadline_timestamp_seconds", "4000x20", campaign="a"),
            _series(
                "smsblast_campaign_projected_finish_timestamp_seconds",
                "3000x20",
                campaign="b",
                route="xl",
            ),
            _series("smsblast_campaign_deadline_timestamp_seconds", "4000x20", campaign="b"),
            _series(
                "smsblast_campaign_projected_finish_timestamp_seconds",
                " ".join(["+Inf"] * 21),  # nothing can be sent
                campaign="c",
                route="xl",
            ),
            _series("smsblast_campaign_deadline_timestamp_seconds", "4000x20", campaign="c"),
            _series("smsblast_campaign_state", "1x20", campaign="c", state="done"),
        ],
        {
            "5m": {"SmsblastCampaignProjectedLate": []},
            "15m": {"SmsblastCampaignProjectedLate": [{"campaign": "a"}]},
        },
    ),
    (  # a's segment topic is missing: it fails at 2m; b runs
        [
            _series("smsblast_campaign_state", "0 0 1x10", campaign="a", state="failed"),
            _series("smsblast_campaign_state", "1 1 0x10", campaign="a", state="waiting"),
            _series("smsblast_campaign_state", "1x12", campaign="b", state="running"),
            _series("smsblast_campaign_state", "0x12", campaign="b", state="failed"),
        ],
        {
            "2m": {"SmsblastCampaignFailed": []},
            "4m": {"SmsblastCampaignFailed": [{"campaign": "a"}]},
        },
    ),
    (  # a: 100 GB free, steady; b: 20 GB falling 0.5 GB a minute (a wave writing to a
        # small disk: full in 40 minutes); c: 3 GB free, steady
        [
            _series("smsblast_ledger_disk_free_bytes", "1e11x30", instance="a"),
            _series("smsblast_ledger_disk_free_bytes", "2e10-5e8x30", instance="b"),
            _series("smsblast_ledger_disk_free_bytes", "3e9x30", instance="c"),
        ],
        {
            "5m": {"SmsblastLedgerDiskLow": []},
            "15m": {
                "SmsblastLedgerDiskLow": [
                    {"job": "smsblast", "instance": "b"},
                    {"job": "smsblast", "instance": "c"},
                ]
            },
        },
    ),
    (  # Kafka refuses for 10 minutes (retries every 30 s), then a's start goes through
        [_series("smsblast_kafka_unreachable_total", "0+2x10 20x20", step="a")],
        {
            "1m": {"SmsblastKafkaUnreachable": []},
            "5m": {"SmsblastKafkaUnreachable": [{"step": "a"}]},
            "25m": {"SmsblastKafkaUnreachable": []},
        },
    ),
]


def test_alert_rules_fire_when_they_should(tmp_path: Path) -> None:
    promtool = _binary("promtool")
    rules = yaml.safe_load(ALERTS.read_text())
    severity: dict[str, str] = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            severity[rule["alert"]] = rule["labels"]["severity"]
            # promtool compares rendered annotations too: these tests are about when alerts
            # fire and with which labels
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    tests = []
    for series, expectations in ALERT_SCENARIOS:
        checks = [
            {
                "eval_time": at,
                "alertname": name,
                "exp_alerts": [
                    {"exp_labels": {**labels, "severity": severity[name]}} for labels in firing
                ],
            }
            for at, by_name in expectations.items()
            for name, firing in by_name.items()
        ]
        tests.append({"interval": "1m", "input_series": series, "alert_rule_test": checks})
    (tmp_path / "alerts_test.yml").write_text(
        yaml.safe_dump({"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": tests})
    )
    done = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "alerts_test.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tested = {name for _, exp in ALERT_SCENARIOS for by_name in exp.values() for name in by_name}
    assert tested == set(severity), "every alert needs a scenario"


# ------------------------------------------------------------------ against a real blast
async def test_every_dashboard_query_and_alert_rule_on_a_real_blast(
    kafka_bootstrap: str, kafka_topic: TopicFactory, tmp_path: Path, prometheus: Prometheus
) -> None:
    topic = await kafka_topic(partitions=3)
    numbers = [f"62812{i:08d}" for i in range(1200)]
    numbers += [f"62815{i:08d}" for i in range(900)]
    numbers += [f"62818{i:08d}" for i in range(600)]
    duplicates = numbers[:40]
    opted_out = numbers[100:130]
    await fill(
        kafka_bootstrap,
        topic,
        numbers + duplicates,
        extra=[b"not json", b'{"msisdn": "021555"}', b'{"msisdn": "62899"}'],
    )
    common: dict[str, Any] = {
        "latency": {"dist": "uniform", "min_ms": 2, "max_ms": 20},
        "receipts": {
            # counted from the submit: a receipt often beats its submit_sm_resp
            "receipt_before_resp": True,
            "delay": {"dist": "uniform", "min_ms": 1, "max_ms": 30},
            "outcomes": {"DELIVRD": 85, "UNDELIV": 10, "EXPIRED": 3, "REJECTD": 2},
        },
    }
    main_profile = simulator_profile(
        [r for r in ROUTES if r.name != "xl"],
        faults={"error_rates": {"ESME_RSYSERR": 0.02, "ESME_RINVDSTADR": 0.01}},
        **common,
    )
    main_profile = main_profile.model_copy(
        update={
            "accounts": [
                a.model_copy(update={"tps_per_bind": SMSC_TPS[a.system_id]})
                for a in main_profile.accounts
            ]
        }
    )
    flaky_profile = simulator_profile(
        [r for r in ROUTES if r.name == "xl"],
        faults={"drop_after_pdus": 250, "magic_destinations": {"6281800000007": "no_answer"}},
        **common,
    )
    async with Simulator(main_profile) as smsc, Simulator(flaky_profile) as flaky:
        routes = [
            RouteSpec(
                r.name, r.prefixes, r.tps, r.binds, port=flaky.port if r.name == "xl" else None
            )
            for r in ROUTES
        ]
        config = engine_config(kafka_bootstrap, smsc.port, routes, str(tmp_path / "l.sqlite"))
        # xl's binds come back within a second of each drop: the route is never given up
        engine, ledger = make_engine(
            config, [scheduled(CAMPAIGN, [topic])], OptOutList(opted_out), route_down_grace=30
        )
        # Like `smsblast run` without --until-done: the engine keeps its binds after the
        # campaign completes, so the bind panels show the binds up.
        running = asyncio.create_task(engine.run(until_done=False))
        try:
            await asyncio.wait_for(engine.runs[0].finished.wait(), 60)
            assert engine.runs[0].completed
            await asyncio.to_thread(check_dashboard_and_rules, prometheus)
        finally:
            engine.stop()
            await asyncio.wait_for(running, 30)
            await ledger.close()


def check_dashboard_and_rules(prom: Prometheus) -> None:
    # Prometheus has scraped the final state: every record accounted for.
    done = f'smsblast_campaign_records_done{{campaign="{CAMPAIGN}"}}'
    total = REGISTRY.get_sample_value("smsblast_campaign_records", {"campaign": CAMPAIGN})
    assert total == 2700 + 40 + 3
    wait_for(lambda: prom.value(done) == total, f"{done} == {total}")

    # Template variables: Grafana's label_values(metric, label) is the series API.
    for variable, label, expected in (
        ("smsblast_campaign_records", "campaign", {CAMPAIGN}),
        ("smsblast_bind_up", "route", {r.name for r in ROUTES}),
    ):
        values = prom.get(f"/api/v1/label/{label}/values", **{"match[]": variable})["data"]
        assert expected <= set(values)

    scraped = set(prom.get("/api/v1/label/__name__/values")["data"])
    still_unwired = NOT_YET_EMITTED & scraped
    assert not still_unwired, f"now emitted: remove {still_unwired} from NOT_YET_EMITTED"

    empty: list[str] = []
    shown: dict[str, list[dict[str, str]]] = {}  # "<title> <refId>" -> label sets of series
    for title, raw in panel_targets():
        expr = substitute(raw)
        answer = prom.query(expr)
        assert answer["status"] == "success", f"{title}: {expr}: {answer.get('error')}"
        result = answer["data"]["result"]
        if not result and not reads_unwired_metric(raw):
            empty.append(f"{title}: {expr}")
        shown[title] = [series["metric"] for series in result]
    assert not empty, "panels without data:\n" + "\n".join(empty)

    for rule in alert_rules():
        answer = prom.query(rule["expr"])
        assert answer["status"] == "success", f"{rule['alert']}: {answer.get('error')}"

    # Prometheus loaded every rule and evaluates it without error.
    def rules_evaluated() -> bool:
        groups = prom.get("/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
        for r in rules:
            assert r["health"] != "err", f"{r['name']}: {r.get('lastError')}"
        return all(r["health"] == "ok" for r in rules)

    wait_for(rules_evaluated, "every alert rule evaluated")

    # The panels show what happened in the blast.
    assert prom.value(substitute(progress_expr())) == 1.0
    assert prom.value('sum(smsblast_bind_up{route="telkomsel"})') == 2
    assert (prom.value('sum(smsblast_bind_reconnects_total{route="xl"})') or 0) >= 1
    assert "xl" in {s["route"] for s in shown["Bind reconnects A"]}
    assert {"route": "indosat", "status": "ESME_RINVDSTADR"} in shown["command_status breakdown B"]
    retried = shown["command_status breakdown C"]
    assert {"route": "indosat", "reason": "ESME_RTHROTTLED"} in retried
    assert {"route": "telkomsel", "reason": "ESME_RSYSERR"} in retried
    assert shown["command_status breakdown D"] == [{"route": "xl"}]  # never answered
    assert {s["state"] for s in shown["Receipts by state A"]} == {"delivered", "failed", "expired"}
    intake = "Rejected, suppressed and duplicate records (since engine start)"
    assert {s["reason"] for s in shown[f"{intake} A"]} == {"not_json", "invalid_msisdn"}
    assert prom.value(f'sum(smsblast_recipients_suppressed_total{{campaign="{CAMPAIGN}"}})') == 30
    assert prom.value(f'sum(smsblast_recipients_duplicate_total{{campaign="{CAMPAIGN}"}})') == 40
    # receipts that beat their submit_sm_resp are first misses, matched late
    assert (prom.value("sum(smsblast_receipts_unmatched_total)") or 0) > 0


def progress_expr() -> str:
    return next(expr for title, expr in panel_targets() if title.startswith("Progress"))


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)
