"""Run with: python -m pytest tests"""

import json
import os
import sys
import types

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import app  # noqa: E402

EVENTS = os.path.join(os.path.dirname(__file__), "..", "events")


def test_hello():
    with open(os.path.join(EVENTS, "event.json")) as f:
        event = json.load(f)
    context = types.SimpleNamespace(aws_request_id="test")
    assert app.handler(event, context) == {"message": "Hello, rapid!"}
