"""Run with: python -m pytest tests"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import app  # noqa: E402

EVENTS = os.path.join(os.path.dirname(__file__), "..", "events")


def test_hello():
    with open(os.path.join(EVENTS, "hello.json")) as f:
        event = json.load(f)
    answer = app.handler(event, None)
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"]) == {"message": "Hello, rapid!"}
