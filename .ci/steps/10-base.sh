#!/usr/bin/env bash
# The bundled Node and shell runtimes are tested for real: they need node, bash and curl.
set -euo pipefail
need=()
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v curl >/dev/null || need+=(curl)
bash "$(dirname "$0")/../apt-install" "CI" "${need[@]}"
