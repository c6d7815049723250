"""``python -m services.common.healthcheck PORT [SERVICE]``: exit 0 if the gRPC health check says SERVING.

Used by container healthchecks and the dev launcher (no grpc_health_probe binary needed). It dials as
the gateway does, with the SHOPAI_GRPC_TLS_* settings of its environment.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.settings import Settings, load_settings
from services.common.transport import open_channel


def check(target: str, service: str = "", timeout: float = 2.0, settings: Settings | None = None) -> bool:
    """SERVING or not, over the transport of ``settings`` (default: plaintext)."""
    with open_channel(target, settings) if settings else grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m services.common.healthcheck PORT_OR_HOST:PORT [SERVICE]", file=sys.stderr)
        return 2
    target = args[0] if ":" in args[0] else f"127.0.0.1:{args[0]}"
    ok = check(target, args[1] if len(args) > 1 else "", settings=load_settings())
    print("SERVING" if ok else "NOT_SERVING")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
