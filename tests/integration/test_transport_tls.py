"""gRPC between the gateway and a service over (mutual) TLS, with a CA made for the test.

The recommender runs as its own process with SHOPAI_GRPC_TLS on, its certificate signed by a CA made here
(shopai.secrets, as for compose), and a client CA: callers must show a certificate that CA signed. The
gateway's Backends (and a gateway app) reach it with the CA and a client certificate; a plaintext channel,
a channel that trusts another CA and a channel without a client certificate are all refused."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.app import close_app, create_app
from gateway.backends import Backends
from protos import recommender_pb2 as pb
from services.common.healthcheck import check
from services.common.settings import Settings
from shopai.secrets import CertificateAuthority

pytestmark = pytest.mark.integration


@pytest.fixture
def pki(tmp_path: Path) -> dict:
    ca = CertificateAuthority(tmp_path, "shopai-test-ca", days=1)
    return {
        "ca": ca.cert_file,
        "server": ca.issue("recommender", client=False, hosts=("localhost", "127.0.0.1")),
        "client": ca.issue("gateway", client=True),
        "rogue_ca": CertificateAuthority(tmp_path, "rogue-ca", days=1).cert_file,
    }


@pytest.fixture
def tls_recommender(start_service, pki):
    """The recommender serving mutual TLS; returns (process, client settings with the CA and a client cert)."""
    proc = start_service(
        "recommender", wait=False, SHOPAI_GRPC_TLS="true",
        SHOPAI_GRPC_TLS_CERT_FILE=str(pki["server"].cert), SHOPAI_GRPC_TLS_KEY_FILE=str(pki["server"].key),
        SHOPAI_GRPC_TLS_CLIENT_CA_FILE=str(pki["ca"]),
    )
    return proc, client_settings(proc, pki)


def client_settings(proc, pki, **overrides) -> Settings:
    values = {"grpc_tls": True, "grpc_tls_ca_file": pki["ca"], "grpc_tls_client_cert_file": pki["client"].cert,
              "grpc_tls_client_key_file": pki["client"].key, "grpc_deadline_seconds": 5.0, **overrides}
    base = proc_settings(proc)
    return base.model_copy(update=values)


def proc_settings(proc) -> Settings:
    return Settings(recommender={"host": "127.0.0.1", "grpc_port": proc.grpc_port, "metrics_port": proc.metrics_port})


def backend_health(settings: Settings) -> str:
    backends = Backends(settings)
    try:
        return backends.health("recommender", timeout=3)
    finally:
        backends.close()


def serving(channel: grpc.Channel) -> bool:
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=3)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc  # refused at the handshake, not by the service
        return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def test_the_gateway_backends_call_the_service_over_mutual_tls(tls_recommender) -> None:
    proc, settings = tls_recommender
    proc.wait_serving(90, settings=settings)
    assert check(proc.target, settings=settings), "the health-check CLI's check() dials over TLS"

    backends = Backends(settings)
    try:
        assert backends.health("recommender") == "SERVING"
        reply = backends.stub("recommender").Recommend(pb.RecommendRequest(user_id="", k=3), timeout=5)
        assert reply.strategy, reply
    finally:
        backends.close()


def test_a_gateway_app_with_the_ca_gets_the_service_s_answer(tls_recommender, settings) -> None:
    proc, client = tls_recommender
    proc.wait_serving(90, settings=client)
    app = create_app(client.model_copy(update={"redis_url": settings.redis_url,
                                               "kafka_bootstrap_servers": settings.kafka_bootstrap_servers}))
    try:
        # No fallback on this route: 503 if the gateway could not reach the recommender, its own 404 if it did.
        reply = app.test_client().get("/v1/products/p-unknown/similar?k=3")
        assert reply.status_code == 404, reply.get_data(as_text=True)
        assert "p-unknown" in reply.json["detail"], reply.json
    finally:
        close_app(app)


def test_plaintext_foreign_ca_and_certless_clients_are_refused(tls_recommender, pki) -> None:
    proc, settings = tls_recommender
    proc.wait_serving(90, settings=settings)

    with grpc.insecure_channel(proc.target) as plaintext:
        assert not serving(plaintext), "a plaintext channel must not reach a TLS port"
    assert not check(proc.target), "the plaintext health check must fail against a TLS port"

    foreign = client_settings(proc, pki, grpc_tls_ca_file=pki["rogue_ca"])
    assert backend_health(foreign) == "UNAVAILABLE", "a client trusting another CA must fail"

    certless = client_settings(proc, pki, grpc_tls_client_cert_file=None, grpc_tls_client_key_file=None)
    assert backend_health(certless) == "UNAVAILABLE", "mutual TLS refuses a client without a cert"

    # The same client with the right CA and its certificate still gets in (the refusals were not an outage).
    assert backend_health(settings) == "SERVING"
