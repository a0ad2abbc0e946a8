#!/usr/bin/env bash
# `aws logs tail` exists only in the AWS CLI v2 (the test extra's awscli from PyPI is v1):
# Debian's awscli package is v2, at /usr/bin/aws. tests/test_logs_api.py runs it against
# rapid's CloudWatch Logs API.
set -euo pipefail
need=()
/usr/bin/aws --version 2>&1 | grep -q '^aws-cli/2' || need+=(awscli)
bash "$(dirname "$0")/../apt-install" "the logs tests (AWS CLI v2)" "${need[@]}"
/usr/bin/aws --version 2>&1 | grep -q '^aws-cli/2' || { echo "/usr/bin/aws is not the AWS CLI v2" >&2; exit 1; }
