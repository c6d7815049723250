# The one ShopAI image template: the gateway and the four services are built from this file, from the
# repository root, with the build argument SERVICE naming the image (docker-compose.yml passes it):
#
#     docker build --build-arg SERVICE=recommender -t shopai/recommender .
#     docker build --build-arg SERVICE=gateway -t shopai/gateway .
#
# SERVICE is recommender, chatbot, vision, forecasting or gateway. It picks the pyproject extra that is
# installed (only that image's own dependencies) and, through the last line of this file, which of the
# five final stages is built: each stage adds only what differs between the images (EXPOSE,
# HEALTHCHECK, CMD), which Dockerfile instructions cannot choose by a condition.
# `--target <service>` builds the same stage. Everything in the base stage above `ARG SERVICE` is
# identical for the five images, so they share those layers.
# tests/unit/test_deploy_consistency.py checks the stages against services/common/settings.py.
ARG SERVICE

FROM python:3.11-slim-bookworm AS base

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    SHOPAI_DATA_DIR=/data \
    SHOPAI_LOG_JSON=true

# Fashion-MNIST from Debian (/usr/share/datasets/fashion-mnist): the demo shop's
# product images (shopai/demo/fashion_mnist.py). Nothing is downloaded at run time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends dataset-fashion-mnist \
 && rm -rf /var/lib/apt/lists/*

# An unprivileged user owning nothing but the data directory.
RUN groupadd --system --gid 10001 shopai \
 && useradd --system --uid 10001 --gid shopai --no-create-home --home-dir /app \
        --shell /usr/sbin/nologin shopai \
 && mkdir -p /app /data \
 && chown shopai:shopai /data
WORKDIR /app

# The image to build; also the pyproject extra holding its own dependencies (only those are installed).
ARG SERVICE
# Optional extra package index, e.g. a CPU-only PyTorch wheel index for the vision and chatbot images.
ARG EXTRA_INDEX_URL=

# Dependencies in a layer of their own, built from pyproject.toml alone (the packages
# are empty placeholders here), so that editing the source does not reinstall them.
COPY pyproject.toml README.md ./
RUN case "$SERVICE" in recommender|chatbot|vision|forecasting|gateway) ;; \
      *) echo "build with --build-arg SERVICE=<recommender|chatbot|vision|forecasting|gateway>, not '$SERVICE'" >&2; \
         exit 1 ;; \
    esac \
 && for pkg in services gateway protos shopai; do mkdir -p "$pkg" && touch "$pkg/__init__.py"; done \
 && if [ -n "$EXTRA_INDEX_URL" ]; then export PIP_EXTRA_INDEX_URL="$EXTRA_INDEX_URL"; fi \
 && pip install --no-cache-dir ".[${SERVICE}]" \
 && rm -rf services gateway protos shopai build ./*.egg-info

# The project itself (the same source in every image; .dockerignore keeps the rest out).
COPY services ./services
COPY gateway ./gateway
COPY protos ./protos
COPY shopai ./shopai
RUN pip install --no-cache-dir --no-deps --force-reinstall . \
 && rm -rf build ./*.egg-info

USER shopai
VOLUME ["/data"]

FROM base AS recommender
# gRPC, then Prometheus metrics (SHOPAI_RECOMMENDER__GRPC_PORT / __METRICS_PORT).
EXPOSE 50051 9101
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD python -m services.common.healthcheck "${SHOPAI_RECOMMENDER__GRPC_PORT:-50051}"
# gRPC server, metrics exporter and Kafka consumer in one process.
CMD ["python", "-m", "services.recommender"]

FROM base AS chatbot
# gRPC, then Prometheus metrics (SHOPAI_CHATBOT__GRPC_PORT / __METRICS_PORT).
EXPOSE 50052 9102
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD python -m services.common.healthcheck "${SHOPAI_CHATBOT__GRPC_PORT:-50052}"
# gRPC server, metrics exporter and Kafka consumer in one process.
CMD ["python", "-m", "services.chatbot"]

FROM base AS vision
# gRPC, then Prometheus metrics (SHOPAI_VISION__GRPC_PORT / __METRICS_PORT).
EXPOSE 50053 9103
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD python -m services.common.healthcheck "${SHOPAI_VISION__GRPC_PORT:-50053}"
# gRPC server, metrics exporter and Kafka consumer in one process.
CMD ["python", "-m", "services.vision"]

FROM base AS forecasting
# gRPC, then Prometheus metrics (SHOPAI_FORECASTING__GRPC_PORT / __METRICS_PORT).
EXPOSE 50054 9104
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD python -m services.common.healthcheck "${SHOPAI_FORECASTING__GRPC_PORT:-50054}"
# gRPC server, metrics exporter and Kafka consumer in one process.
CMD ["python", "-m", "services.forecasting"]

FROM base AS gateway
# REST API, /healthz, /readyz and /metrics, all on SHOPAI_GATEWAY_PORT.
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SHOPAI_GATEWAY_PORT', '8080'), timeout=4)"
# gunicorn_conf.py binds SHOPAI_GATEWAY_HOST:SHOPAI_GATEWAY_PORT (0.0.0.0:8080); the path is relative to WORKDIR /app.
CMD ["gunicorn", "--config", "gateway/gunicorn_conf.py", "gateway.app:create_app()"]

# The image: the stage named by SERVICE (the default stage of `docker build`).
FROM ${SERVICE}
