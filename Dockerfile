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

# -- build: rapid's wheel, installed with its dependencies into a venv (the only stage that
#    needs PyPI). Same base as the final stage, so the venv runs there unchanged.
FROM ${BASE} AS build
WORKDIR /src
RUN python3 -m venv /opt/rapid
COPY pyproject.toml README.md ./
COPY rapid ./rapid
COPY bootstraps ./bootstraps
RUN /opt/rapid/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && /opt/rapid/bin/pip install --no-cache-dir "$(ls /wheels/rapid-*.whl)[cluster]" \
 && /opt/rapid/bin/pip uninstall -q -y setuptools

# -- final: the base, curl (the bundled shell runtime needs it) and the venv: what the
#    wheel installed, no source and no build tools. (A copy rather than `RUN --mount` of the
#    wheels: buildah's layer cache does not see a change in a mounted stage.)
FROM ${BASE}
RUN command -v curl >/dev/null || { apt-get update \
      && apt-get install -y --no-install-recommends curl \
      && rm -rf /var/lib/apt/lists/*; }
COPY --from=build /opt/rapid /opt/rapid
RUN mkdir -p /var/task /var/runtime /opt/extensions

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
