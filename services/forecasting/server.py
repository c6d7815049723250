"""Forecasting gRPC server. Health, reflection and metrics are live; the Forecasting RPCs answer
UNIMPLEMENTED until the forecasting service is built (issue #6)."""

from __future__ import annotations

from functools import partial

from protos import forecasting_pb2 as pb
from protos import forecasting_pb2_grpc as pb_grpc
from services.common.grpc_server import build_with_base_servicer, run
from services.common.settings import load_settings

build = partial(build_with_base_servicer, "forecasting", pb, pb_grpc, "Forecasting")


def main() -> None:
    run(build(load_settings()))
