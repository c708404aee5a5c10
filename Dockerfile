# syntax=docker/dockerfile:1
# Ramparts image: `ramparts serve` with the policy mounted at /etc/ramparts/policy/policy.yaml
# (a ConfigMap), data (budget SQLite, audit logs) under the volume /var/lib/ramparts.
# Runs as uid 10001 with a read-only root filesystem: the only writable paths are the
# data volume and /tmp (the Helm chart mounts an emptyDir there).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/ramparts
# Only what the wheel build reads: pyproject (metadata, package-data), the README it names, the package.
COPY pyproject.toml README.md ./
COPY proxy ./proxy
# Binary wheels only for dependencies (no compiler in either stage); the project itself is pure Python.
# Bytecode is compiled here because a read-only root filesystem cannot take .pyc files later;
# pip itself and the packages' own test suites are not needed at run time.
RUN /opt/ramparts/bin/pip install --no-compile --only-binary=:all: --no-binary=ramparts . \
 && /opt/ramparts/bin/pip uninstall -y pip setuptools wheel \
 && find /opt/ramparts -depth -type d -name tests -path '*/site-packages/*/*' -prune -exec rm -rf {} + \
 && /opt/ramparts/bin/python -m compileall -q -j 0 /opt/ramparts/lib

# -------------------------------------------------------------- runtime stage
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="ramparts" \
      org.opencontainers.image.description="Streaming security proxy for LLM traffic" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 ramparts \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin ramparts \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/ramparts \
 && install -d -m 0755 /etc/ramparts/policy
COPY --from=build /opt/ramparts /opt/ramparts
ENV PATH=/opt/ramparts/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    RAMPARTS_POLICY=/etc/ramparts/policy/policy.yaml
VOLUME ["/var/lib/ramparts"]
USER 10001:10001
WORKDIR /var/lib/ramparts
# 8080: the proxy (policy server.listen); 9090: ops (/healthz, /readyz, /metrics).
EXPOSE 8080 9090
# Liveness on the ops port; stdlib only, no curl in the image. Start period: every stage loaded
# takes ~11 s (bench/deploy_startup.py), more on a busy node.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:9090/healthz', timeout=2).status == 200 else 1)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["ramparts", "serve"]
CMD ["--policy", "/etc/ramparts/policy/policy.yaml", "--data-dir", "/var/lib/ramparts"]
