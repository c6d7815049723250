"""Vision gRPC server. Health, reflection and metrics are live; the Vision RPCs answer
UNIMPLEMENTED until the vision service is built (issue #5)."""

from __future__ import annotations

from functools import partial

from protos import vision_pb2 as pb
from protos import vision_pb2_grpc as pb_grpc
from services.common.grpc_server import build_with_base_servicer, run
from services.common.settings import load_settings

build = partial(build_with_base_servicer, "vision", pb, pb_grpc, "Vision")


def main() -> None:
    run(build(load_settings()))
