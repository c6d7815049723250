"""Chatbot gRPC server. Health, reflection and metrics are live; the Assistant RPCs answer
UNIMPLEMENTED until the customer-service assistant is built (issue #4)."""

from __future__ import annotations

from functools import partial

from protos import chatbot_pb2 as pb
from protos import chatbot_pb2_grpc as pb_grpc
from services.common.grpc_server import build_with_base_servicer, run
from services.common.settings import load_settings

build = partial(build_with_base_servicer, "chatbot", pb, pb_grpc, "Assistant")


def main() -> None:
    run(build(load_settings()))
