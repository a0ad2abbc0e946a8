#!/usr/bin/env bash
# The cluster tests (tests/test_cluster_*.py) run real rapid nodes on a real nats-server
# with JetStream: Debian's nats-server package (2.9 or later). nats-py and
# kubernetes-validate come with `./dev test` (the test extra). deploy/kubernetes/'s KEDA
# ScaledObject is checked against KEDA's CRD schema with @kubernetes-models/keda from npm,
# installed once into .cache/k8s-models/ (ignored by git). Idempotent; fails loudly.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || \
  bash .ci/apt-install "the cluster tests" nats-server
bin=$(command -v nats-server || echo /usr/sbin/nats-server)
"$bin" --version >&2
if [ ! -f .cache/k8s-models/node_modules/@kubernetes-models/keda/package.json ]; then
  command -v npm >/dev/null || { echo "70-nats: npm is missing (10-base.sh installs it)" >&2; exit 1; }
  mkdir -p .cache/k8s-models
  npm install --silent --no-audit --no-fund --prefix .cache/k8s-models @kubernetes-models/keda@2 >/dev/null
fi
test -f .cache/k8s-models/node_modules/@kubernetes-models/keda/package.json
