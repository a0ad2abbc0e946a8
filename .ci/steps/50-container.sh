#!/usr/bin/env bash
# The container tests (tests/test_container.py) build and run rapid's image for real: they
# need podman with the runc runtime (crun refuses hybrid cgroup hosts) and mmdebstrap to
# make a local Debian base image, since no image registry is reachable from CI.
# The base image itself is made by the tests (cached in .cache/containers/).
set -euo pipefail
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
bash "$(dirname "$0")/../apt-install" "CI" "${need[@]}"
podman --runtime runc info --format '{{.Host.OCIRuntime.Name}} {{.Version.Version}}' >&2
