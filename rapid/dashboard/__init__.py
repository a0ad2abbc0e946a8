"""The dashboard: what the host holds and what it just did, for a person in a browser.

``feed`` keeps the recent past in bounded rings (invocations, log lines, per-minute
counts) and batches live events for subscribers; ``views`` turns the host's objects into
JSON-ready dicts on demand; ``static/`` is the page itself (plain HTML, JS and CSS, no build
step). The HTTP edge is ``rapid.api.dashboard``.
"""
