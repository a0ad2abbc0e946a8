#!/usr/bin/env bash
# The dashboard is tested in a real browser: Debian's headless Chromium.
set -euo pipefail
command -v chromium >/dev/null || bash "$(dirname "$0")/../apt-install" "the dashboard tests" --no-install-recommends chromium
