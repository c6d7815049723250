"""How every process reaches Redis, Kafka and the gRPC services: Settings -> client arguments.

The transport settings (docs/deploy.md, "Secrets and transport security") are mapped here, once, to
the keyword arguments of redis-py and kafka-python and to gRPC credentials, so that every client is
built alike: ``cache.connect`` for Redis, ``bus.kafka_config`` for Kafka, ``open_channel`` and
``ServiceRunner`` for gRPC. The Kafka and Redis mappings are pure; the gRPC ones read the PEM files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc

from services.common.settings import Settings

ChannelOptions = Sequence[tuple[str, Any]]


class TransportConfigError(ValueError):
    """The transport settings cannot work together (a process stops at start with the reason)."""


def redis_options(settings: Settings, url: str | None = None) -> dict[str, Any]:
    """redis-py keyword arguments for the cache (``url`` None: SHOPAI_REDIS_URL, with the password kept apart
    from the URL) or for another Redis of the deployment (the vault's ``url``: only the credentials in it);
    with ``rediss://``, TLS with the Redis TLS files, for either."""
    options: dict[str, Any] = {}
    if url is None:
        url = settings.redis_url
        if settings.redis_username:
            options["username"] = settings.redis_username
        if settings.redis_password is not None:
            options["password"] = settings.redis_password.get_secret_value()
    if urlsplit(url).scheme == "rediss":
        options["ssl_cert_reqs"] = "required"
        for option, path in (("ssl_ca_certs", settings.redis_tls_ca_file),
                             ("ssl_certfile", settings.redis_tls_cert_file),
                             ("ssl_keyfile", settings.redis_tls_key_file)):
            if path is not None:
                options[option] = str(path)
    return options


def kafka_options(settings: Settings) -> dict[str, Any]:
    """kafka-python keyword arguments (the same for KafkaProducer, KafkaConsumer and KafkaAdminClient)
    for the brokers' address, SASL and TLS."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap_servers, "security_protocol": protocol}
    if protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None  # Settings refuse SASL without credentials
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                       sasl_plain_username=settings.kafka_sasl_username,
                       sasl_plain_password=settings.kafka_sasl_password.get_secret_value())
    if protocol.endswith("SSL"):
        options["ssl_check_hostname"] = True
        for option, path in (("ssl_cafile", settings.kafka_tls_ca_file),
                             ("ssl_certfile", settings.kafka_tls_cert_file),
                             ("ssl_keyfile", settings.kafka_tls_key_file)):
            if path is not None:
                options[option] = str(path)
    return options


def _read(path: Path | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


def grpc_server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials for a service's gRPC port (None: plaintext); with a client CA, mutual TLS: a client
    without a certificate that CA signed is refused during the handshake."""
    if not settings.grpc_tls:
        return None
    if settings.grpc_tls_cert_file is None or settings.grpc_tls_key_file is None:
        raise TransportConfigError("SHOPAI_GRPC_TLS is on but the service has no certificate: set "
                                   "SHOPAI_GRPC_TLS_CERT_FILE and SHOPAI_GRPC_TLS_KEY_FILE")
    client_ca = _read(settings.grpc_tls_client_ca_file)
    return grpc.ssl_server_credentials(
        [(_read(settings.grpc_tls_key_file), _read(settings.grpc_tls_cert_file))],
        root_certificates=client_ca, require_client_auth=client_ca is not None,
    )


def grpc_channel_credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    """TLS credentials for calling a service (None: plaintext): trust the CA file (default: the system's
    roots) and present the client certificate when one is configured (mutual TLS)."""
    if not settings.grpc_tls:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(settings.grpc_tls_ca_file),
        private_key=_read(settings.grpc_tls_client_key_file),
        certificate_chain=_read(settings.grpc_tls_client_cert_file),
    )


def grpc_channel_options(settings: Settings) -> list[tuple[str, Any]]:
    """Channel options of the transport: the name the server's certificate must carry, when it is not the
    host dialled (e.g. one certificate for every service, or an address without a DNS name)."""
    if settings.grpc_tls and settings.grpc_tls_server_name:
        return [("grpc.ssl_target_name_override", settings.grpc_tls_server_name)]
    return []


def open_channel(target: str, settings: Settings, options: ChannelOptions = ()) -> grpc.Channel:
    """A channel to a ShopAI service: over TLS when ``grpc_tls`` is on, plaintext otherwise."""
    credentials = grpc_channel_credentials(settings)
    if credentials is None:
        return grpc.insecure_channel(target, options=list(options))
    return grpc.secure_channel(target, credentials, options=[*options, *grpc_channel_options(settings)])
