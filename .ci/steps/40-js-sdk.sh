#!/usr/bin/env bash
# The control-plane tests drive rapid with the AWS SDK for JavaScript v3 too: install
# @aws-sdk/client-lambda into .cache/js-sdk/ (ignored by git), once.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -f .cache/js-sdk/node_modules/@aws-sdk/client-lambda/package.json ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "40-js-sdk: npm is missing (10-base.sh installs it)" >&2; exit 1; }
mkdir -p .cache/js-sdk
npm install --silent --no-audit --no-fund --prefix .cache/js-sdk @aws-sdk/client-lambda@3 >/dev/null
test -f .cache/js-sdk/node_modules/@aws-sdk/client-lambda/package.json
