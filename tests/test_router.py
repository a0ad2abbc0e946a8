"""The router: templates, decoded parameters, methods, order."""

from __future__ import annotations

from rapid.http.router import Router


def _router() -> Router:
    r = Router()
    r.add("POST", "/2015-03-31/functions/{name}/invocations", "invoke", management=False)
    r.add("GET", "/2015-03-31/functions/{name}", "get")
    r.add("DELETE", "/2015-03-31/functions/{name}", "delete")
    r.add("GET", "/2015-03-31/functions", "list")
    r.add("*", "/2019-09-25/functions/{name}/event-invoke-config", "events")
    return r


def test_parameters_are_decoded_and_the_route_says_if_it_is_management() -> None:
    found = _router().match("POST", "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A0%3Afunction%3Af/invocations")
    assert isinstance(found, tuple)
    route, params = found
    assert route.handler == "invoke" and not route.management
    assert params == {"name": "arn:aws:lambda:us-east-1:0:function:f"}


def test_a_trailing_slash_matches_and_segments_do_not_cross_slashes() -> None:
    r = _router()
    found = r.match("GET", "/2015-03-31/functions/")
    assert isinstance(found, tuple) and found[0].handler == "list"
    assert r.match("GET", "/2015-03-31/functions/a/b") is None


def test_other_methods_are_reported_and_star_takes_any() -> None:
    r = _router()
    assert r.match("PUT", "/2015-03-31/functions/f") == ["GET", "DELETE"]
    assert r.match("PATCH", "/2015-03-31/functions/f/invocations") == ["POST"]
    found = r.match("PUT", "/2019-09-25/functions/f/event-invoke-config")
    assert isinstance(found, tuple) and found[0].handler == "events"
    assert r.match("GET", "/nowhere") is None
