"""Where the Node runtime interface client from npm (``aws-lambda-ric``) is installed for
the tests: ``.cache/node-ric/`` in the work tree, by ``.ci/steps/30-node-ric.sh``.

``node_ric()`` gives the path of its ``aws-lambda-ric`` command, or None. ``needs_node_ric``
skips a test without it, except in CI (``CI=true``), where its absence fails the test:
CI must never skip what it is meant to have.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / ".cache" / "node-ric"
COMMAND = FOLDER / "node_modules" / ".bin" / "aws-lambda-ric"


def node_ric() -> str | None:
    """The ``aws-lambda-ric`` command, if it and node are installed."""
    if shutil.which("node") is None or not os.access(COMMAND, os.X_OK):
        return None
    return str(COMMAND)


def require_node_ric() -> str:
    """The command, or skip (outside CI) / fail (in CI) with how to install it."""
    found = node_ric()
    if found is not None:
        return found
    why = f"aws-lambda-ric is not installed in {FOLDER} (run: bash .ci/steps/30-node-ric.sh)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why)
    pytest.skip(why)
