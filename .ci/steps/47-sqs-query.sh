#!/usr/bin/env bash
# The built-in SQS also speaks the older query protocol (Action=..., XML answers). It is
# tested with real clients that send it: boto3 1.26 / botocore 1.29 and the AWS CLI v1 of
# the same release, from before botocore moved SQS to JSON. They go into a venv of their
# own, .cache/boto3-query/ (ignored by git), once. PyYAML 5.4 (the CLI's) builds only with
# Cython < 3.
set -euo pipefail
cd "$(dirname "$0")/../.."
V=.cache/boto3-query
want='import boto3, botocore, awscli; assert (botocore.__version__, awscli.__version__) == ("1.29.100", "1.27.100")'
if [ -x "$V/bin/python" ] && "$V/bin/python" -c "$want" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$V"
cython=$(mktemp)
echo "cython<3" > "$cython"
PIP_CONSTRAINT="$cython" "$V/bin/pip" install -q "boto3==1.26.100" "botocore==1.29.100" "awscli==1.27.100"
rm -f "$cython"
"$V/bin/python" -c "$want"
