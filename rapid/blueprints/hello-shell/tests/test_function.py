"""Run with: python -m pytest tests (the handler, in bash, on the sample event)."""

import json
import os
import subprocess

SRC = os.path.join(os.path.dirname(__file__), "..", "src")
EVENTS = os.path.join(os.path.dirname(__file__), "..", "events")


def test_handler():
    with open(os.path.join(EVENTS, "event.json")) as f:
        event = f.read()
    out = subprocess.run(["bash", "-c", "source ./function.sh && handler"], cwd=SRC, input=event,
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"message": "Hello, rapid!"}
    assert "greeting rapid" in out.stderr
