# syntax=docker/dockerfile:1
# The modelrollout operator image.
#
#   docker build -t modelrollout-operator:0.1.0 .
#
# Both stages use the same base so the virtual environment built in the first one runs unchanged in the
# second. The tag below moves with Debian and Python patch releases; in production pin the base by digest
# (python:3.11-slim-bookworm@sha256:<digest>, e.g. from `docker buildx imagetools inspect`) and let a bot
# such as Renovate propose digest bumps, so every rebuild of a release is byte-for-byte the same input.
# Any base with python (3.11+), pip and venv on PATH and groupadd/useradd works: `make image` here passes
# `--build-arg PYTHON_IMAGE=` a Debian bookworm base bootstrapped locally (no registry is reachable).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: wheels for the operator and its pinned dependencies, installed into /opt/venv ---------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The dependencies first, in their own layer: it is rebuilt only when the pins change, not with every edit.
# constraints.txt pins every dependency the lock resolved; the operator installs without its dev/sandbox extras.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
      > requirements.txt \
 && python -m venv --without-pip /opt/venv \
 && pip --python /opt/venv/bin/python install --constraint constraints.txt --requirement requirements.txt
COPY README.md ./
COPY operator/ operator/
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip --python /opt/venv/bin/python install --no-deps --no-index /wheels/modelrollout-*.whl \
 && /opt/venv/bin/python -c "import modelrollout.controller.main" \
 && /opt/venv/bin/modelrollout operator --help > /dev/null

# --- runtime: the interpreter, the virtual environment, a fixed non-root user; no compilers, no pip use ----
FROM ${PYTHON_IMAGE} AS runtime
# The base image's own pip, setuptools and wheel are never used at runtime: removed, with their CVEs.
RUN python -m pip uninstall --yes --quiet pip setuptools wheel \
 && groupadd --system --gid 10001 modelrollout \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin modelrollout
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numeric, so the kubelet can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000 8080
ENTRYPOINT ["modelrollout", "operator"]
