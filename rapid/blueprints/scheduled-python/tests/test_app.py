"""Run with: python -m pytest tests"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import app  # noqa: E402

EVENTS = os.path.join(os.path.dirname(__file__), "..", "events")


def test_tick(capsys):
    with open(os.path.join(EVENTS, "schedule.json")) as f:
        event = json.load(f)
    assert app.handler(event, None) == {"ran": event["time"]}
    assert capsys.readouterr().out.startswith("tick at ")
