"""Engine configuration and campaigns files: schema, error messages, secrets, helpers."""

from __future__ import annotations

import copy
import sqlite3
import ssl
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from smsblast.cli import main
from smsblast.client.config import BindMode
from smsblast.config import (
    CONFIG_ENV,
    Campaign,
    CampaignsFile,
    ConfigError,
    EngineConfig,
    SmscConfig,
    format_duration,
    load_campaigns,
    load_engine_config,
    parse_duration,
    sender_ton_npi,
)
from smsblast.engine.cli import ledger_path_problem
from smsblast.smpp.receipt import IdFormat

REPO = Path(__file__).resolve().parent.parent

SMSC: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 2775,
    "system_id": "kominfo",
    "password_env": "TEST_TSEL_PASSWORD",
    "tps_per_bind": 100,
}
ENGINE: dict[str, Any] = {
    "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
    "routes": {
        "telkomsel": {"prefixes": ["811", "812"], "smscs": [SMSC]},
        "indosat": {"prefixes": ["856"], "smscs": [{**SMSC, "password_env": "TEST_ISAT"}]},
    },
}
CAMPAIGN: dict[str, Any] = {
    "name": "jaga-persatuan",
    "sender": "KOMINFO",
    "segments": ["smsblast.segment.nasional"],
    "template": "Jaga Persatuan Indonesia, datang ke TPS dan gunakan hak pilih",
}

Writer = Callable[[Any], Path]


@pytest.fixture
def engine_data() -> dict[str, Any]:
    return copy.deepcopy(ENGINE)


@pytest.fixture
def campaign_data() -> dict[str, Any]:
    return copy.deepcopy(CAMPAIGN)


@pytest.fixture
def write(tmp_path: Path) -> Writer:
    """``write(data)`` -> a YAML file holding ``data`` (a str is written verbatim)."""
    counter = iter(range(1_000_000))

    def _write(data: Any) -> Path:
        path = tmp_path / f"file{next(counter)}.yaml"
        text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return _write


def engine_errors(write: Writer, data: Any) -> ConfigError:
    path = write(data)
    with pytest.raises(ConfigError) as caught:
        load_engine_config(path)
    assert caught.value.file == str(path)
    for line in str(caught.value).splitlines():
        assert line.startswith(f"{path}: ")
    return caught.value


def campaign_errors(write: Writer, campaigns: list[Any]) -> ConfigError:
    path = write({"campaigns": campaigns})
    with pytest.raises(ConfigError) as caught:
        load_campaigns(path)
    assert caught.value.file == str(path)
    return caught.value


def problem_at(error: ConfigError, location: str) -> str:
    """The problem reported at ``location`` (fails when there is none)."""
    found = [problem for where, problem in error.problems if where == location]
    assert found, f"no problem at {location!r}: {error.problems}"
    return found[0]


# --- shipped files -------------------------------------------------------------------------


def test_shipped_engine_config_loads() -> None:
    config = load_engine_config(REPO / "config" / "smsblast.yaml")
    assert set(config.routes) == {"telkomsel", "indosat", "xl", "smartfren"}
    assert config.country_code == "62"
    assert config.kafka.bootstrap_servers == ["127.0.0.1:9092"]
    for route, smsc in config.smscs():
        assert smsc.name == f"{route}-0"
        assert smsc.password_env is not None


def test_shipped_campaigns_keep_the_seed_campaign() -> None:
    campaigns = load_campaigns(REPO / "campaigns.yaml")
    seed = campaigns.get("jaga-persatuan")
    assert seed.sender == "KOMINFO"
    assert seed.template == "Jaga Persatuan Indonesia, datang ke TPS dan gunakan hak pilih"
    assert seed.compiled.is_static
    assert seed.validity_period() == "000001000000000R"


def test_default_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.chdir(REPO)
    assert load_engine_config().routes
    assert load_campaigns().names() == ["jaga-persatuan"]


# --- engine config errors ------------------------------------------------------------------


def test_inline_password_is_rejected_without_echoing_it(
    write: Writer, engine_data: dict[str, Any]
) -> None:
    engine_data["routes"]["telkomsel"]["smscs"][0]["password"] = "hunter2"
    error = engine_errors(write, engine_data)
    problem = problem_at(error, "routes.telkomsel.smscs.0.password")
    assert "password_env" in problem and "password_file" in problem
    assert "hunter2" not in str(error)


def test_duplicate_prefix_across_routes_names_both(
    write: Writer, engine_data: dict[str, Any]
) -> None:
    engine_data["routes"]["indosat"]["prefixes"].append("812")
    error = engine_errors(write, engine_data)
    problem = problem_at(error, "routes")
    assert "'812'" in problem and "telkomsel" in problem and "indosat" in problem


def test_duplicate_prefix_within_a_route(write: Writer, engine_data: dict[str, Any]) -> None:
    engine_data["routes"]["indosat"]["prefixes"] = ["856", "856"]
    assert "twice" in problem_at(engine_errors(write, engine_data), "routes.indosat.prefixes")


def test_bad_port(write: Writer, engine_data: dict[str, Any]) -> None:
    engine_data["routes"]["telkomsel"]["smscs"][0]["port"] = 70000
    error = engine_errors(write, engine_data)
    assert "65535" in problem_at(error, "routes.telkomsel.smscs.0.port")
    assert f"{error.file}: routes.telkomsel.smscs.0.port: " in str(error)


@pytest.mark.parametrize(
    ("prefix", "words"),
    [(813, "quoted string"), ("0813", "trunk 0"), ("81a", "digits only"), ("", "digits only")],
)
def test_bad_prefixes(
    write: Writer, engine_data: dict[str, Any], prefix: object, words: str
) -> None:
    engine_data["routes"]["telkomsel"]["prefixes"].append(prefix)
    assert words in problem_at(engine_errors(write, engine_data), "routes.telkomsel.prefixes.2")


def test_password_source_must_be_exactly_one(write: Writer, engine_data: dict[str, Any]) -> None:
    smscs = engine_data["routes"]["telkomsel"]["smscs"]
    smscs.append({**SMSC, "password_file": "/run/secrets/x"})
    del smscs[0]["password_env"]
    error = engine_errors(write, engine_data)
    assert "exactly one of password_env" in problem_at(error, "routes.telkomsel.smscs.0")
    assert "exactly one of password_env" in problem_at(error, "routes.telkomsel.smscs.1")


def test_unknown_key_suggests_the_close_one(write: Writer, engine_data: dict[str, Any]) -> None:
    engine_data["routes"]["telkomsel"]["smscs"][0]["tps_per_bnd"] = 5
    problem = problem_at(engine_errors(write, engine_data), "routes.telkomsel.smscs.0.tps_per_bnd")
    assert problem == "unknown key (did you mean 'tps_per_bind'?)"


def test_missing_required_key(write: Writer, engine_data: dict[str, Any]) -> None:
    del engine_data["routes"]["telkomsel"]["smscs"][0]["host"]
    del engine_data["kafka"]
    error = engine_errors(write, engine_data)
    assert problem_at(error, "routes.telkomsel.smscs.0.host") == "required key is missing"
    assert problem_at(error, "kafka") == "required key is missing"


def test_every_problem_is_reported_one_per_line(write: Writer, engine_data: dict[str, Any]) -> None:
    smsc = engine_data["routes"]["telkomsel"]["smscs"][0]
    smsc.update(port=0, window=0, system_id="x" * 16, bind_mode="trx", tps_per_bind=0)
    error = engine_errors(write, engine_data)
    assert len(error.problems) == 5
    assert len(str(error).splitlines()) == 5
    for key in ("port", "window", "system_id", "bind_mode", "tps_per_bind"):
        problem_at(error, f"routes.telkomsel.smscs.0.{key}")
    assert "'trx'" in problem_at(error, "routes.telkomsel.smscs.0.bind_mode")


def test_routes_must_not_be_empty(write: Writer, engine_data: dict[str, Any]) -> None:
    engine_data["routes"] = {}
    problem_at(engine_errors(write, engine_data), "routes")


def test_route_without_smscs(write: Writer, engine_data: dict[str, Any]) -> None:
    engine_data["routes"]["indosat"]["smscs"] = []
    problem_at(engine_errors(write, engine_data), "routes.indosat.smscs")


def test_smsc_names_default_and_must_be_unique(write: Writer, engine_data: dict[str, Any]) -> None:
    engine_data["routes"]["telkomsel"]["smscs"].append({**SMSC, "name": "primary"})
    config = load_engine_config(write(engine_data))
    names = [smsc.name for _, smsc in config.smscs()]
    assert names == ["telkomsel-0", "primary", "indosat-0"]

    engine_data["routes"]["indosat"]["smscs"][0]["name"] = "telkomsel-0"
    problem = problem_at(engine_errors(write, engine_data), "routes")
    assert "'telkomsel-0'" in problem and "used twice" in problem


def test_tls_ca_file_needs_tls(write: Writer, engine_data: dict[str, Any]) -> None:
    engine_data["routes"]["telkomsel"]["smscs"][0]["tls_ca_file"] = "/etc/ca.pem"
    assert "tls is false" in problem_at(
        engine_errors(write, engine_data), "routes.telkomsel.smscs.0"
    )


def test_kafka_sasl_needs_its_keys_and_refuses_them_without_sasl(
    write: Writer, engine_data: dict[str, Any]
) -> None:
    engine_data["kafka"]["security_protocol"] = "SASL_SSL"
    problem = problem_at(engine_errors(write, engine_data), "kafka")
    assert "sasl_mechanism" in problem and "sasl_password_env" in problem

    engine_data["kafka"] = {"bootstrap_servers": "a:1", "sasl_username": "u"}
    assert "SASL_PLAINTEXT" in problem_at(engine_errors(write, engine_data), "kafka")


def test_kafka_inline_sasl_password_is_rejected(write: Writer, engine_data: dict[str, Any]) -> None:
    engine_data["kafka"]["sasl_password"] = "s3cret"
    error = engine_errors(write, engine_data)
    assert "sasl_password_env" in problem_at(error, "kafka.sasl_password")
    assert "s3cret" not in str(error)


def test_unknown_country_code(write: Writer, engine_data: dict[str, Any]) -> None:
    engine_data["country_code"] = "65"
    assert "65" in problem_at(engine_errors(write, engine_data), "country_code")


def test_metrics_listen_is_host_port(write: Writer, engine_data: dict[str, Any]) -> None:
    engine_data["metrics"] = {"listen": "[::1]:9464"}
    assert load_engine_config(write(engine_data)).metrics.listen_address() == ("::1", 9464)
    engine_data["metrics"] = {"listen": "localhost"}
    problem_at(engine_errors(write, engine_data), "metrics.listen")


def test_defaults(write: Writer, engine_data: dict[str, Any]) -> None:
    config = load_engine_config(write(engine_data))
    assert config.ledger.path == "smsblast-ledger.sqlite"
    assert config.metrics.listen is None and config.metrics.listen_address() is None
    assert config.optout.file is None and config.optout.topic is None
    assert config.kafka.client_id == "smsblast"
    smsc = config.routes["telkomsel"].smscs[0]
    assert (smsc.bind_mode, smsc.binds, smsc.tls, smsc.system_type) == ("transceiver", 1, False, "")
    assert smsc.msg_id_format is IdFormat.HEX and smsc.receipt_format is IdFormat.HEX
    assert (smsc.dest_ton, smsc.dest_npi, smsc.source_ton, smsc.source_npi) == (1, 1, None, None)
    assert (smsc.enquire_link_interval, smsc.response_timeout) == (30.0, 30.0)


def test_models_are_frozen(write: Writer, engine_data: dict[str, Any]) -> None:
    config = load_engine_config(write(engine_data))
    with pytest.raises(ValueError, match="frozen"):
        config.routes["telkomsel"].smscs[0].port = 1


# --- YAML level ----------------------------------------------------------------------------


def test_yaml_syntax_error_names_file_and_line(write: Writer) -> None:
    error = engine_errors(write, "kafka:\n  bootstrap_servers: [a\nroutes: {}\n")
    [(location, problem)] = error.problems
    assert location.startswith("line 3, column ")
    assert problem.startswith("invalid YAML: ")


def test_yaml_key_written_twice_is_an_error(write: Writer) -> None:
    text = (
        "kafka: {bootstrap_servers: 'a:1'}\n"
        "routes:\n"
        "  telkomsel: {prefixes: ['811'], smscs: []}\n"
        "  telkomsel: {prefixes: ['812'], smscs: []}\n"
    )
    [(location, problem)] = engine_errors(write, text).problems
    assert location == "line 4, column 3"
    assert "'telkomsel' is written twice (first at line 3)" in problem


def test_yaml_merge_keys_still_work(write: Writer) -> None:
    # An explicit key next to a merge (`<<`) overrides the merged value: not a duplicate.
    text = (
        "kafka: {bootstrap_servers: 'a:1'}\n"
        "x-smsc: &smsc {host: h, port: 1, system_id: s, password_env: P, tps_per_bind: 1}\n"
        "routes:\n"
        "  r:\n"
        "    prefixes: ['812']\n"
        "    smscs:\n"
        "      - <<: *smsc\n"
        "        port: 2\n"
    )
    # The only complaint is the anchor's home, which is not a key of the schema.
    [(location, problem)] = engine_errors(write, text).problems
    assert location == "x-smsc" and problem.startswith("unknown key")


@pytest.mark.parametrize(
    ("text", "words"), [("", "empty"), ("- a\n- b\n", "mapping"), ("just text", "mapping")]
)
def test_yaml_that_is_not_a_mapping(write: Writer, text: str, words: str) -> None:
    [(location, problem)] = engine_errors(write, text).problems
    assert location == "" and words in problem


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_engine_config(tmp_path / "nope.yaml")
    assert str(caught.value).startswith(f"{tmp_path / 'nope.yaml'}: cannot read the file")


# --- path selection ------------------------------------------------------------------------


def test_smsblast_config_env_is_used_and_argument_wins(
    write: Writer, engine_data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = write(engine_data)
    monkeypatch.setenv(CONFIG_ENV, str(from_env))
    assert set(load_engine_config().routes) == {"telkomsel", "indosat"}

    engine_data["routes"] = {"only": engine_data["routes"]["telkomsel"]}
    assert set(load_engine_config(write(engine_data)).routes) == {"only"}

    monkeypatch.setenv(CONFIG_ENV, str(from_env.with_name("missing.yaml")))
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read"):
        load_engine_config()


# --- secrets -------------------------------------------------------------------------------


def smsc(**overrides: Any) -> SmscConfig:
    return SmscConfig.model_validate({**SMSC, "name": "tsel-a", **overrides})


def test_password_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TSEL_PASSWORD", "s3cret")
    assert smsc().password() == "s3cret"


@pytest.mark.parametrize("value", [None, ""])
def test_password_env_unset_or_empty_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("TEST_TSEL_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("TEST_TSEL_PASSWORD", value)
    with pytest.raises(ConfigError, match=r"TEST_TSEL_PASSWORD.*tsel-a"):
        smsc().password()


def test_password_from_file_drops_the_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "tsel.pw"
    secret.write_text(" pass word \n", encoding="utf-8")
    config = smsc(password_env=None, password_file=str(secret))
    assert config.password() == " pass word "


def test_password_file_missing_or_empty_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pw"
    with pytest.raises(ConfigError, match=r"missing\.pw"):
        smsc(password_env=None, password_file=str(missing)).password()
    empty = tmp_path / "empty.pw"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"empty\.pw is empty"):
        smsc(password_env=None, password_file=str(empty)).password()


def test_check_secrets_lists_every_missing_secret_with_its_path(
    write: Writer, engine_data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_TSEL_PASSWORD", "ok")
    monkeypatch.delenv("TEST_ISAT", raising=False)
    monkeypatch.delenv("TEST_KAFKA_PW", raising=False)
    engine_data["kafka"].update(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="smsblast",
        sasl_password_env="TEST_KAFKA_PW",
    )
    path = write(engine_data)
    config = load_engine_config(path)
    with pytest.raises(ConfigError) as caught:
        config.check_secrets()
    assert [location for location, _ in caught.value.problems] == [
        "kafka.sasl_password_env",
        "routes.indosat.smscs.0.password_env",
    ]
    assert str(caught.value).startswith(f"{path}: kafka.sasl_password_env: ")
    monkeypatch.setenv("TEST_ISAT", "ok")
    monkeypatch.setenv("TEST_KAFKA_PW", "ok")
    config.check_secrets()


# --- kafka kwargs --------------------------------------------------------------------------


def test_kafka_plaintext_kwargs(write: Writer, engine_data: dict[str, Any]) -> None:
    engine_data["kafka"]["bootstrap_servers"] = "a:9092, b:9092,"
    kafka = load_engine_config(write(engine_data)).kafka
    assert kafka.bootstrap_servers == ["a:9092", "b:9092"]
    assert kafka.aiokafka_kwargs() == {"client_id": "smsblast", "security_protocol": "PLAINTEXT"}


def test_kafka_group_session_timeout(write: Writer, engine_data: dict[str, Any]) -> None:
    kafka = load_engine_config(write(engine_data)).kafka
    assert kafka.group_kwargs() == {"session_timeout_ms": 6000, "heartbeat_interval_ms": 2000}
    engine_data["kafka"]["session_timeout_ms"] = 45000
    kafka = load_engine_config(write(engine_data)).kafka
    assert kafka.group_kwargs() == {"session_timeout_ms": 45000, "heartbeat_interval_ms": 15000}
    for wrong, why in ((999, "greater than or equal to 1000"), (1_800_001, "less than")):
        engine_data["kafka"]["session_timeout_ms"] = wrong
        assert why in problem_at(engine_errors(write, engine_data), "kafka.session_timeout_ms")


def test_kafka_sasl_ssl_kwargs_read_the_password_at_call_time(
    write: Writer, engine_data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine_data["kafka"].update(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="smsblast",
        sasl_password_env="TEST_KAFKA_PW",
    )
    kafka = load_engine_config(write(engine_data)).kafka
    monkeypatch.delenv("TEST_KAFKA_PW", raising=False)
    with pytest.raises(ConfigError, match="TEST_KAFKA_PW"):
        kafka.aiokafka_kwargs()
    monkeypatch.setenv("TEST_KAFKA_PW", "pw1")
    kwargs = kafka.aiokafka_kwargs()
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-256"
    assert kwargs["sasl_plain_username"] == "smsblast"
    assert kwargs["sasl_plain_password"] == "pw1"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert "bootstrap_servers" not in kwargs


async def test_kafka_kwargs_are_accepted_by_aiokafka(
    write: Writer, engine_data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

    engine_data["kafka"].update(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password_env="TEST_KAFKA_PW",
    )
    monkeypatch.setenv("TEST_KAFKA_PW", "pw")
    kafka = load_engine_config(write(engine_data)).kafka
    # Constructed only (never started): the point is that every keyword is accepted.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id="g",
        **kafka.group_kwargs(),
        **kafka.aiokafka_kwargs(),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers, **kafka.aiokafka_kwargs()
    )
    admin = AIOKafkaAdminClient(
        bootstrap_servers=kafka.bootstrap_servers, **kafka.aiokafka_kwargs()
    )
    await consumer.stop()
    await producer.stop()
    await admin.close()


# --- SMSC helpers --------------------------------------------------------------------------


def test_bind_configs_transceiver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TSEL_PASSWORD", "pw")
    binds = smsc(binds=3, window=42, msg_id_format="dec", system_type="vma").bind_configs("r")
    assert [bind.name for bind in binds] == ["tsel-a#1", "tsel-a#2", "tsel-a#3"]
    for bind in binds:
        assert bind.mode is BindMode.TRANSCEIVER
        assert (bind.host, bind.port, bind.system_id, bind.password) == (
            "127.0.0.1",
            2775,
            "kominfo",
            "pw",
        )
        assert (bind.window, bind.msg_id_format, bind.system_type) == (42, IdFormat.DEC, "vma")
        assert bind.tls is None


def test_bind_configs_transmitter_plus_one_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TSEL_PASSWORD", "pw")
    binds = smsc(binds=2, bind_mode="transmitter+receiver").bind_configs("r")
    assert [(bind.name, bind.mode) for bind in binds] == [
        ("tsel-a#1", BindMode.TRANSMITTER),
        ("tsel-a#2", BindMode.TRANSMITTER),
        ("tsel-a#rx", BindMode.RECEIVER),
    ]
    only_tx = smsc(binds=2, bind_mode="transmitter").bind_configs("r")
    assert [bind.mode for bind in only_tx] == [BindMode.TRANSMITTER] * 2


def test_bind_configs_use_the_route_when_unnamed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TSEL_PASSWORD", "pw")
    [bind] = SmscConfig.model_validate(SMSC).bind_configs("telkomsel")
    assert bind.name == "telkomsel#1"


def test_bind_configs_share_one_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TSEL_PASSWORD", "pw")
    binds = smsc(binds=2, tls=True).bind_configs("r")
    assert isinstance(binds[0].tls, ssl.SSLContext)
    assert binds[0].tls is binds[1].tls
    assert binds[0].tls.verify_mode is ssl.CERT_REQUIRED


def test_bind_configs_tls_ca_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TEST_TSEL_PASSWORD", "pw")
    missing = tmp_path / "ca.pem"
    with pytest.raises(FileNotFoundError):
        smsc(tls=True, tls_ca_file=str(missing)).bind_configs("r")


def test_bind_configs_need_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_TSEL_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="TEST_TSEL_PASSWORD"):
        smsc().bind_configs("r")


def test_source_ton_npi_derived_from_sender_or_configured() -> None:
    assert sender_ton_npi("KOMINFO") == (5, 0)
    assert sender_ton_npi("628123456789") == (1, 1)
    assert smsc().source_ton_npi("KOMINFO") == (5, 0)
    assert smsc(source_ton=3).source_ton_npi("1234") == (3, 1)
    assert smsc(source_ton=0, source_npi=0).source_ton_npi("KOMINFO") == (0, 0)


def test_receipt_format_defaults_to_msg_id_format() -> None:
    assert smsc(msg_id_format="dec").receipt_format is IdFormat.DEC
    assert smsc(msg_id_format="hex", receipt_id_format="dec").receipt_format is IdFormat.DEC


# --- campaigns -----------------------------------------------------------------------------


def test_campaign_defaults(write: Writer, campaign_data: dict[str, Any]) -> None:
    [campaign] = load_campaigns(write({"campaigns": [campaign_data]})).campaigns
    assert (campaign.encoding, campaign.concat, campaign.max_parts) == ("auto", "udh8", 3)
    assert campaign.registered_delivery is True
    assert campaign.validity is None and campaign.validity_period() == ""
    assert (campaign.priority, campaign.on_unknown, campaign.on_missing_field) == (
        0,
        "skip",
        "reject",
    )
    assert campaign.receipt_wait == timedelta(minutes=10)
    assert campaign.receipt_wait_seconds() == 600.0


def test_bad_template_is_reported_at_its_key(write: Writer, campaign_data: dict[str, Any]) -> None:
    campaign_data["template"] = "Halo {nama.__class__}"
    error = campaign_errors(write, [campaign_data])
    problem = problem_at(error, "campaigns.0.template")
    assert "position 5" in problem and "attribute access" in problem
    assert str(error) == f"{error.file}: campaigns.0.template: {problem}"


@pytest.mark.parametrize(
    "sender",
    ["KOMINFO-INDONESIA", "", " KOMINFO", "KOMINFO ", "+628123", "1" * 21, "KOM/INFO", "Kömínfo"],
)
def test_bad_senders(write: Writer, campaign_data: dict[str, Any], sender: str) -> None:
    campaign_data["sender"] = sender
    assert "sender" in problem_at(campaign_errors(write, [campaign_data]), "campaigns.0.sender")


@pytest.mark.parametrize("sender", ["KOMINFO", "KPU RI", "Info-2024", "A", "1" * 20, "628123"])
def test_good_senders(write: Writer, campaign_data: dict[str, Any], sender: str) -> None:
    campaign_data["sender"] = sender
    assert load_campaigns(write({"campaigns": [campaign_data]})).campaigns[0].sender == sender


def test_unquoted_numeric_sender_gets_a_hint(write: Writer, campaign_data: dict[str, Any]) -> None:
    campaign_data["sender"] = 628123
    error = campaign_errors(write, [campaign_data])
    assert "quoted" in problem_at(error, "campaigns.0.sender")


@pytest.mark.parametrize("validity", ["24", 24, "1w", "h", "-5m", "24 hours", "0s", "32d"])
def test_bad_durations(write: Writer, campaign_data: dict[str, Any], validity: object) -> None:
    campaign_data["validity"] = validity
    problem_at(campaign_errors(write, [campaign_data]), "campaigns.0.validity")


def test_bad_receipt_wait(write: Writer, campaign_data: dict[str, Any]) -> None:
    campaign_data["receipt_wait"] = "ten minutes"
    problem = problem_at(campaign_errors(write, [campaign_data]), "campaigns.0.receipt_wait")
    assert "duration" in problem


@pytest.mark.parametrize(
    ("validity", "period"),
    [
        ("24h", "000001000000000R"),
        ("90m", "000000013000000R"),
        ("2d", "000002000000000R"),
        ("3600s", "000000010000000R"),
        ("1h30m", "000000013000000R"),
        ("45s", "000000000045000R"),
        ("1d2h3m4s", "000001020304000R"),
        ("31d", "000031000000000R"),
    ],
)
def test_validity_period_relative_format(
    campaign_data: dict[str, Any], validity: str, period: str
) -> None:
    campaign = Campaign.model_validate({**campaign_data, "validity": validity})
    assert campaign.validity_period() == period
    assert len(period) == 16


@pytest.mark.parametrize("blank", ["", "   ", "\n\t "])
def test_a_blank_template_is_refused(
    write: Writer, campaign_data: dict[str, Any], blank: str
) -> None:
    campaign_data["template"] = blank
    problem = problem_at(campaign_errors(write, [campaign_data]), "campaigns.0.template")
    assert "the template is blank: every recipient would get an empty SMS" in problem


def test_static_template_longer_than_max_parts(campaign_data: dict[str, Any]) -> None:
    campaign_data.update(template="x" * 161, max_parts=1)
    with pytest.raises(ValueError, match="needs 2 parts"):
        Campaign.model_validate(campaign_data)
    campaign_data["max_parts"] = 2
    assert Campaign.model_validate(campaign_data).max_parts == 2
    campaign_data["concat"] = "payload"  # one PDU whatever the length
    campaign_data["max_parts"] = 1
    Campaign.model_validate(campaign_data)


def test_template_whose_fixed_text_alone_is_too_long(
    write: Writer, campaign_data: dict[str, Any]
) -> None:
    campaign_data.update(template="{nama} " + "x" * 160, max_parts=1)
    problem = problem_at(campaign_errors(write, [campaign_data]), "campaigns.0.template")
    assert "without its fields needs 2 parts" in problem
    campaign_data["template"] = "{nama} " + "x" * 100  # fields may still push it over
    assert Campaign.model_validate(campaign_data).compiled.fields == {"nama"}


def test_gsm7_encoding_refuses_other_characters(campaign_data: dict[str, Any]) -> None:
    campaign_data.update(template="Halo {nama}, selamat ő", encoding="gsm7")
    with pytest.raises(ValueError, match="'ő' cannot be sent with encoding gsm7"):
        Campaign.model_validate(campaign_data)
    campaign_data["encoding"] = "ucs2"
    Campaign.model_validate(campaign_data)


def test_campaign_names_unique_and_slugs(write: Writer, campaign_data: dict[str, Any]) -> None:
    error = campaign_errors(write, [campaign_data, dict(campaign_data)])
    assert "used by campaigns 0 and 1" in problem_at(error, "campaigns")
    error = campaign_errors(write, [{**campaign_data, "name": "Jaga Persatuan"}])
    problem_at(error, "campaigns.0.name")


def test_segments(write: Writer, campaign_data: dict[str, Any]) -> None:
    cases = [
        ([], "campaigns.0.segments", "at least 1"),
        (["a", "a"], "campaigns.0.segments", "listed twice"),
        (["ok", "bad topic"], "campaigns.0.segments.1", "not a Kafka topic"),
        (["ok", ".."], "campaigns.0.segments.1", "not a Kafka topic"),
    ]
    for segments, location, words in cases:
        error = campaign_errors(write, [{**campaign_data, "segments": segments}])
        assert words in problem_at(error, location)


def test_campaign_enums_and_ranges(write: Writer, campaign_data: dict[str, Any]) -> None:
    bad = {
        "encoding": "latin1",
        "concat": "udh7",
        "max_parts": 0,
        "priority": 4,
        "on_unknown": "retry",
        "on_missing_field": "skip",
        "schedule": {"at": "08:00"},
    }
    error = campaign_errors(write, [{**campaign_data, **bad}])
    for key in bad:
        problem_at(error, f"campaigns.0.{key}")


def test_campaigns_file_needs_a_list(write: Writer) -> None:
    problem_at(campaign_errors(write, []), "campaigns")
    path = write({"campaign": []})
    with pytest.raises(ConfigError) as caught:
        load_campaigns(path)
    assert problem_at(caught.value, "campaign") == "unknown key (did you mean 'campaigns'?)"


def test_campaigns_file_get(campaign_data: dict[str, Any]) -> None:
    campaigns = CampaignsFile.model_validate(
        {"campaigns": [campaign_data, {**campaign_data, "name": "kedua"}]}
    )
    assert campaigns.get("kedua").name == "kedua"
    assert campaigns.names() == ["jaga-persatuan", "kedua"]
    with pytest.raises(KeyError, match="jaga-persatuan, kedua"):
        campaigns.get("ketiga")


# --- durations and misc --------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=10**8))
def test_format_duration_round_trips(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


def test_config_error_plain_message_and_lines() -> None:
    assert str(ConfigError("campaigns.yaml: campaigns: no such campaign")) == (
        "campaigns.yaml: campaigns: no such campaign"
    )
    error = ConfigError("f.yaml", [("a.b", "bad"), ("", "worse")])
    assert str(error) == "f.yaml: a.b: bad\nf.yaml: worse"
    assert error.problems == (("a.b", "bad"), ("", "worse"))


def test_engine_config_model_validate_without_loader(engine_data: dict[str, Any]) -> None:
    config = EngineConfig.model_validate(engine_data)
    assert config.routes["indosat"].smscs[0].name == "indosat-0"


# --- the ledger's path, checked before anything starts -------------------------------------


def test_ledger_path_problems_name_the_path(tmp_path: Path) -> None:
    assert ledger_path_problem(str(tmp_path / "new.sqlite"), create=True) is None
    assert ledger_path_problem(":memory:", create=False) is None
    missing = tmp_path / "no" / "such" / "ledger.sqlite"
    assert ledger_path_problem(str(missing), create=True) == (
        f"{missing}: the directory {missing.parent} does not exist (create it for the engine)"
    )
    assert ledger_path_problem(str(tmp_path / "x.sqlite"), create=False) == (
        f"no ledger at {tmp_path / 'x.sqlite'} (no campaign has run with this configuration)"
    )
    assert ledger_path_problem(str(tmp_path), create=True) == (
        f"{tmp_path} is a directory, not a ledger file"
    )


LedgerCommands = Callable[[Path], tuple[list[str], list[str]]]


@pytest.fixture
def ledger_commands(
    write: Writer,
    engine_data: dict[str, Any],
    campaign_data: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> LedgerCommands:
    """``commands(ledger)``: the ``smsblast run`` and ``smsblast report`` arguments of a
    configuration whose ledger.path is ``ledger`` (its SMSC passwords set)."""
    monkeypatch.setenv("TEST_TSEL_PASSWORD", "pw")
    monkeypatch.setenv("TEST_ISAT", "pw")

    def commands(ledger: Path) -> tuple[list[str], list[str]]:
        config = write({**engine_data, "ledger": {"path": str(ledger)}})
        campaigns = write({"campaigns": [campaign_data]})
        run = ["run", "--config", str(config), "--campaigns", str(campaigns)]
        return run, ["report", "jaga-persatuan", "--config", str(config)]

    return commands


def test_run_and_report_refuse_a_ledger_they_cannot_open(
    ledger_commands: LedgerCommands, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 with the path and the reason, before any broker or SMSC is contacted (the
    engine said only "the ledger failed to open" with exit 3, and report showed SQLite's
    traceback)."""
    ledger = tmp_path / "missing" / "ledger.sqlite"
    run, report = ledger_commands(ledger)
    assert main(run) == 2
    err = capsys.readouterr().err
    assert f"ledger.path: {ledger}: the directory {ledger.parent} does not exist" in err
    assert main(report) == 2
    assert f"smsblast report: ledger.path: no ledger at {ledger}" in capsys.readouterr().err
    assert not ledger.parent.exists()  # nothing was created


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("garbage", "is not an smsblast ledger (SQLite: file is not a database)"),
        ("foreign", "is an SQLite database, but not an smsblast ledger (no schema version)"),
        ("newer", "ledger schema version 99 is newer than this smsblast's"),
    ],
)
def test_run_and_report_refuse_a_file_that_is_not_their_ledger(
    ledger_commands: LedgerCommands,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    why: str,
) -> None:
    """A ledger.path pointing at a corrupt file, another program's SQLite database or a
    ledger of a newer smsblast: exit 2 naming the file and the reason, and the file is left
    as it was (run said "the ledger failed to open" with exit 3 and the advice to free disk
    space; report showed SQLite's traceback; a foreign database got the ledger's tables)."""
    ledger = tmp_path / "ledger.sqlite"
    if content == "garbage":
        ledger.write_bytes(bytes(range(256)) * 20)
    else:
        db = sqlite3.connect(ledger)
        if content == "foreign":
            db.execute("CREATE TABLE dashboards (id INTEGER PRIMARY KEY, title TEXT)")
        else:
            db.execute("PRAGMA user_version = 99")
        db.commit()
        db.close()
    before = ledger.read_bytes()
    run, report = ledger_commands(ledger)
    assert main(run) == 2
    assert f"ledger.path: {ledger}" in (err := capsys.readouterr().err) and why in err
    assert main(report) == 2
    assert f"ledger.path: {ledger}" in (err := capsys.readouterr().err) and why in err
    assert ledger.read_bytes() == before
