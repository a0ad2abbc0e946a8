#!/usr/bin/env bash
# The built-in SQS and Kinesis are tested with the AWS SDK for JavaScript v3 too (it checks
# the MD5s SQS answers with): install @aws-sdk/client-sqs and @aws-sdk/client-kinesis into
# .cache/js-sdk/ (ignored by git), once.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -f .cache/js-sdk/node_modules/@aws-sdk/client-sqs/package.json ] \
   && [ -f .cache/js-sdk/node_modules/@aws-sdk/client-kinesis/package.json ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "45-js-sqs: npm is missing (10-base.sh installs it)" >&2; exit 1; }
mkdir -p .cache/js-sdk
npm install --silent --no-audit --no-fund --prefix .cache/js-sdk @aws-sdk/client-sqs@3 @aws-sdk/client-kinesis@3 >/dev/null
test -f .cache/js-sdk/node_modules/@aws-sdk/client-sqs/package.json
test -f .cache/js-sdk/node_modules/@aws-sdk/client-kinesis/package.json
