"""Run with: python -m pytest tests"""

import copy
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import app  # noqa: E402

EVENTS = os.path.join(os.path.dirname(__file__), "..", "events")


def event():
    with open(os.path.join(EVENTS, "sqs.json")) as f:
        return json.load(f)


def test_a_good_message_is_processed():
    assert app.handler(event(), None) == {"batchItemFailures": []}


def test_a_failing_message_is_reported():
    ev = event()
    bad = copy.deepcopy(ev["Records"][0])
    bad["messageId"], bad["body"] = "m-2", "please fail"
    ev["Records"].append(bad)
    assert app.handler(ev, None) == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
