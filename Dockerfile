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
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/*

COPY . /usr/src/rapid
RUN pip install --no-cache-dir /usr/src/rapid \
 && mkdir -p /var/task /opt /var/runtime

ENV LAMBDA_TASK_ROOT=/var/task \
    LAMBDA_RUNTIME_DIR=/var/runtime
WORKDIR /var/task
EXPOSE 8080

# Drop-in mode: `--` and then CMD. With no CMD, rapid looks for /var/task/bootstrap,
# /opt/bootstrap and /var/runtime/bootstrap, as Lambda does.
ENTRYPOINT ["rapid", "serve", "--host", "0.0.0.0", "--port", "8080", "--"]
CMD []
