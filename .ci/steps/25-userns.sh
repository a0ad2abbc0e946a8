#!/usr/bin/env bash
# SnapStart's forks (rapid.supervisor.userns) each take a user namespace as an unprivileged
# process, which the daemon then maps onto the instance's uid; tests/test_snapstart_isolation.py
# needs that for real. Debian kernels gate it behind kernel.unprivileged_userns_clone (on by
# default since Debian 11): turned on here if a machine has it off. Then the whole move is
# probed, and this step fails loudly if the kernel still refuses it.
set -euo pipefail
if [ -e /proc/sys/kernel/unprivileged_userns_clone ] && [ "$(cat /proc/sys/kernel/unprivileged_userns_clone)" = 0 ]; then
  echo 1 > /proc/sys/kernel/unprivileged_userns_clone
fi
if [ "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 0)" = 0 ]; then
  echo "user.max_user_namespaces is 0: SnapStart forks cannot take a user namespace" >&2
  exit 1
fi
if ! /usr/bin/python3 rapid/supervisor/userns_probe.py; then
  echo "CI's machine refuses an unprivileged process a user namespace mapped by root (SnapStart forks need it)" >&2
  exit 1
fi
