"""Transport settings -> client arguments (services/common/transport.py), the settings' checks, and secrets
read from files (``SHOPAI_<NAME>_FILE``). No server is contacted: clients are built, not used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis
from pydantic import ValidationError

from gateway.ratelimit import FixedWindowLimiter
from services.common import cache
from services.common.bus import RECONNECT, kafka_config
from services.common.settings import Settings
from services.common.transport import (
    TransportConfigError,
    grpc_channel_options,
    grpc_server_credentials,
    kafka_options,
    open_channel,
    redis_options,
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("SHOPAI_"):
            monkeypatch.delenv(key)


# --------------------------------------------------------------------------- Redis


def test_plain_redis_gets_no_tls_and_no_credentials() -> None:
    assert redis_options(Settings()) == {}


def test_redis_password_and_tls_files_map_to_redis_py_arguments(tmp_path: Path) -> None:
    settings = Settings(redis_url="rediss://cache.internal:6380/0", redis_username="shopai",
                        redis_password="s3cret", redis_tls_ca_file=tmp_path / "ca.pem",
                        redis_tls_cert_file=tmp_path / "c.pem", redis_tls_key_file=tmp_path / "k.pem")
    assert redis_options(settings) == {
        "username": "shopai", "password": "s3cret", "ssl_cert_reqs": "required",
        "ssl_ca_certs": str(tmp_path / "ca.pem"), "ssl_certfile": str(tmp_path / "c.pem"),
        "ssl_keyfile": str(tmp_path / "k.pem"),
    }


def test_connect_with_settings_builds_a_tls_client_with_the_password(tmp_path: Path) -> None:
    settings = Settings(redis_url="rediss://cache.internal:6380/2", redis_password="s3cret",
                        redis_tls_ca_file=tmp_path / "ca.pem")
    client = cache.connect(settings)
    pool = client.connection_pool
    assert pool.connection_class is redis.SSLConnection
    assert pool.connection_kwargs["password"] == "s3cret"
    assert pool.connection_kwargs["ssl_ca_certs"] == str(tmp_path / "ca.pem")
    assert pool.connection_kwargs["db"] == 2 and pool.connection_kwargs["decode_responses"] is True


def test_a_password_in_the_url_is_kept() -> None:
    client = cache.connect(Settings(redis_url="redis://:from-url@cache:6379/0"))
    assert client.connection_pool.connection_kwargs["password"] == "from-url"
    assert client.connection_pool.connection_class is redis.Connection


def test_the_rate_limiter_connects_through_the_same_place() -> None:
    limiter = FixedWindowLimiter(Settings(redis_url="rediss://cache:6380/0", redis_password="pw"), "test:rl")
    kwargs = limiter.redis.connection_pool.connection_kwargs
    assert limiter.redis.connection_pool.connection_class is redis.SSLConnection
    assert kwargs["password"] == "pw" and kwargs["socket_timeout"] == 0.5 and not kwargs["decode_responses"]


def test_redis_tls_files_without_rediss_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="SHOPAI_REDIS_TLS_CA_FILE is set but SHOPAI_REDIS_URL is not rediss"):
        Settings(redis_url="redis://cache:6379/0", redis_tls_ca_file=tmp_path / "ca.pem")


# --------------------------------------------------------------------------- Kafka


def test_plaintext_kafka_carries_only_the_brokers() -> None:
    assert kafka_options(Settings(kafka_bootstrap_servers="k1:9092,k2:9092")) == {
        "bootstrap_servers": "k1:9092,k2:9092", "security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_maps_to_kafka_python_arguments(mechanism: str, tmp_path: Path) -> None:
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism=mechanism,
                        kafka_sasl_username="shopai", kafka_sasl_password="pw", kafka_tls_ca_file=tmp_path / "ca")
    assert kafka_options(settings) == {
        "bootstrap_servers": "127.0.0.1:9092", "security_protocol": "SASL_SSL", "sasl_mechanism": mechanism,
        "sasl_plain_username": "shopai", "sasl_plain_password": "pw", "ssl_check_hostname": True,
        "ssl_cafile": str(tmp_path / "ca"),
    }


def test_ssl_with_a_client_certificate_has_no_sasl(tmp_path: Path) -> None:
    options = kafka_options(Settings(kafka_security_protocol="SSL", kafka_tls_cert_file=tmp_path / "c",
                                     kafka_tls_key_file=tmp_path / "k"))
    assert options["ssl_certfile"] == str(tmp_path / "c") and options["ssl_keyfile"] == str(tmp_path / "k")
    assert not any(k.startswith("sasl") for k in options)


def test_sasl_plaintext_has_no_tls_arguments() -> None:
    options = kafka_options(Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
                                     kafka_sasl_username="u", kafka_sasl_password="p"))
    assert options["sasl_mechanism"] == "PLAIN" and not any(k.startswith("ssl") for k in options)


def test_every_kafka_client_gets_the_transport_and_quick_reconnects() -> None:
    config = kafka_config(Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="u",
                                   kafka_sasl_password="p"))
    assert config["security_protocol"] == "SASL_SSL" and config["sasl_plain_password"] == "p"
    assert RECONNECT.items() <= config.items()


@pytest.mark.parametrize("overrides, message", [
    ({"kafka_security_protocol": "SASL_SSL"}, "needs SHOPAI_KAFKA_SASL_USERNAME"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "u"}, "needs SHOPAI_KAFKA_SASL_USERNAME"),
    ({"kafka_tls_ca_file": "/ca.pem"}, "KAFKA_SECURITY_PROTOCOL=PLAINTEXT has no TLS"),
    ({"kafka_security_protocol": "SSL", "kafka_tls_cert_file": "/c.pem"}, "KAFKA_TLS_KEY_FILE go together"),
    ({"kafka_security_protocol": "KERBEROS"}, "kafka_security_protocol"),
    ({"kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism"),
])
def test_kafka_settings_that_cannot_work_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**overrides)


# --------------------------------------------------------------------------- gRPC


def test_grpc_is_plaintext_by_default() -> None:
    settings = Settings()
    assert grpc_server_credentials(settings) is None and grpc_channel_options(settings) == []
    channel = open_channel("127.0.0.1:1", settings)
    channel.close()


def test_a_service_with_tls_on_and_no_certificate_stops_with_the_reason() -> None:
    with pytest.raises(TransportConfigError, match="SHOPAI_GRPC_TLS_CERT_FILE and SHOPAI_GRPC_TLS_KEY_FILE"):
        grpc_server_credentials(Settings(grpc_tls=True))


def test_the_server_name_override_applies_only_with_tls() -> None:
    assert grpc_channel_options(Settings(grpc_tls_server_name="shopai-services")) == []
    assert grpc_channel_options(Settings(grpc_tls=True, grpc_tls_server_name="shopai-services")) == [
        ("grpc.ssl_target_name_override", "shopai-services")]


def test_a_grpc_client_certificate_needs_its_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="GRPC_TLS_CLIENT_KEY_FILE go together"):
        Settings(grpc_tls=True, grpc_tls_client_cert_file=tmp_path / "c.pem")


# --------------------------------------------------------------------------- secrets from files


def test_a_secret_is_read_from_its_file_without_the_final_line_break(tmp_path, monkeypatch) -> None:
    (tmp_path / "password").write_text("p@ss word\n")
    monkeypatch.setenv("SHOPAI_REDIS_PASSWORD_FILE", str(tmp_path / "password"))
    monkeypatch.setenv("SHOPAI_KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "password"))
    settings = Settings()
    assert settings.redis_password.get_secret_value() == "p@ss word"
    assert settings.kafka_sasl_password.get_secret_value() == "p@ss word"


def test_an_empty_secret_file_is_no_value(tmp_path, monkeypatch) -> None:
    (tmp_path / "empty").write_text("")
    monkeypatch.setenv("SHOPAI_ANALYTICS_SECRET_FILE", str(tmp_path / "empty"))
    assert Settings().analytics_secret is None


def test_a_missing_secret_file_names_the_variable(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SHOPAI_ANALYTICS_SECRET_FILE", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="SHOPAI_ANALYTICS_SECRET_FILE: cannot read"):
        Settings()


def test_a_value_and_a_file_for_the_same_setting_are_refused(tmp_path, monkeypatch) -> None:
    (tmp_path / "secret").write_text("from-file")
    monkeypatch.setenv("SHOPAI_ANALYTICS_SECRET_FILE", str(tmp_path / "secret"))
    monkeypatch.setenv("SHOPAI_ANALYTICS_SECRET", "from-env")
    with pytest.raises(ValueError, match="both SHOPAI_ANALYTICS_SECRET and SHOPAI_ANALYTICS_SECRET_FILE"):
        Settings()


def test_settings_with_a_file_field_of_their_own_keep_it(tmp_path, monkeypatch) -> None:
    (tmp_path / "keys").write_text("a-long-test-key-0123456789:admin\n")
    monkeypatch.setenv("SHOPAI_GATEWAY_API_KEYS_FILE", str(tmp_path / "keys"))
    settings = Settings()
    assert settings.gateway_api_keys_file == tmp_path / "keys" and settings.gateway_api_keys is None


def test_explicit_arguments_win_over_files(tmp_path, monkeypatch) -> None:
    (tmp_path / "secret").write_text("from-file")
    monkeypatch.setenv("SHOPAI_ANALYTICS_SECRET_FILE", str(tmp_path / "secret"))
    assert Settings(analytics_secret="given").analytics_secret.get_secret_value() == "given"
