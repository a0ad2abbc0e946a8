#!/usr/bin/env bash
# The cluster tests (tests/test_cluster_*.py) run real rapid nodes on a real nats-server
# with JetStream: Debian's nats-server package (2.9 or later). nats-py comes with
# `./dev test` (the test extra). Idempotent; fails loudly if it cannot install.
set -euo pipefail
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || \
  bash "$(dirname "$0")/../apt-install" "the cluster tests" nats-server
bin=$(command -v nats-server || echo /usr/sbin/nats-server)
"$bin" --version >&2
