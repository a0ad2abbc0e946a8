# rapid as a container entrypoint, the way AWS base images use the Runtime Interface Emulator.
#
#   docker build -t rapid .
#   docker run -p 9000:8080 -v "$PWD/examples/shell-echo:/var/task:ro" rapid
#   curl -d '{}' http://localhost:9000/2015-03-31/functions/function/invocations
#
# As a base image: put the function in /var/task (an executable /var/task/bootstrap, or
# /opt/bootstrap) or give the bootstrap command as CMD, e.g.
#   FROM rapid
#   COPY app.py /var/task/
#   RUN pip install awslambdaric
#   CMD ["python", "-m", "awslambdaric", "app.handler"]
#
# BASE is any Debian-like image with Python >= 3.11 (python3 and its venv module). The
# public default suits Docker; CI builds on a local Debian image (`--build-arg BASE=...`).
ARG BASE=python:3.12-slim

# -- build: the wheel of rapid and of each dependency (the only stage that needs PyPI) ----
FROM ${BASE} AS build
WORKDIR /src
RUN python3 -m venv /opt/build
COPY pyproject.toml README.md ./
COPY rapid ./rapid
COPY bootstraps ./bootstraps
RUN /opt/build/bin/pip wheel --no-cache-dir --wheel-dir /wheels .

# -- final: the base, curl (the bundled shell runtime needs it) and rapid from the wheels --
FROM ${BASE}
RUN command -v curl >/dev/null || { apt-get update \
      && apt-get install -y --no-install-recommends curl \
      && rm -rf /var/lib/apt/lists/*; }
# The wheels are mounted, not copied, so no layer keeps them.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python3 -m venv /opt/rapid \
 && /opt/rapid/bin/pip install --no-cache-dir --no-index --find-links /wheels rapid \
 && /opt/rapid/bin/pip uninstall -q -y setuptools \
 && mkdir -p /var/task /var/runtime /opt/extensions

# The venv first on PATH: `pip install` in a derived image and `python` in its CMD are the
# venv's, whatever the base calls its interpreter.
ENV PATH=/opt/rapid/bin:$PATH \
    LAMBDA_TASK_ROOT=/var/task \
    LAMBDA_RUNTIME_DIR=/var/runtime \
    RAPID_HOST=0.0.0.0 \
    RAPID_PORT=8080 \
    RAPID_SHUTDOWN_TIMEOUT=5
WORKDIR /var/task
EXPOSE 8080
# `docker stop` sends SIGTERM and SIGKILL 10 s later: rapid lets in-flight invokes finish for
# up to RAPID_SHUTDOWN_TIMEOUT (5 s), gives runtimes 2 s after their SIGTERM, then exits 0.
STOPSIGNAL SIGTERM

# Drop-in mode: `--` and then CMD. With no CMD, rapid looks for /var/task/bootstrap,
# /opt/bootstrap and /var/runtime/bootstrap, as Lambda does; or, given RAPID_FUNCTIONS or
# RAPID_CONFIG (and RAPID_DATA_DIR on a volume), it serves those functions instead.
ENTRYPOINT ["rapid", "serve", "--"]
CMD []
