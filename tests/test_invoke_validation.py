"""The Invoke API checks its input as AWS does (issue 8, part 4): enums, the qualifier's
pattern, the function name's pattern, UTF-8 JSON; and DryRun says which version it would
run. Checked with raw requests and with boto3, as a user sees them."""

from __future__ import annotations

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from tests.daemon import run_server

PREFIX = "1 validation error detected: "


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    from tests.daemon import ECHO, make_function

    fn = make_function(tmp_path_factory.mktemp("echo"), ECHO)
    with run_server(["--function", f"fn={fn}"]) as d:
        yield d


def _error(reply):
    return reply.status, reply.headers["x-amzn-errortype"], reply.json()["message"]


@pytest.mark.parametrize("value", ["tail", "All", "Full"])
def test_log_type_outside_the_enum(daemon, value):
    reply = daemon.request("POST", "/2015-03-31/functions/fn/invocations", b"{}", {"X-Amz-Log-Type": value})
    assert _error(reply) == (
        400, "ValidationException",
        PREFIX + f"Value '{value}' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: "
        "[None, Tail]",
    )


def test_log_type_none_and_tail(daemon):
    plain = daemon.request("POST", "/2015-03-31/functions/fn/invocations", b"{}", {"X-Amz-Log-Type": "None"})
    assert plain.status == 200 and "x-amz-log-result" not in plain.headers
    tail = daemon.request("POST", "/2015-03-31/functions/fn/invocations", b"{}", {"X-Amz-Log-Type": "Tail"})
    assert "END RequestId" in tail.log_tail


@pytest.mark.parametrize("qualifier", ["bad!", "a.b", "v%201", "x" * 129])
def test_invalid_qualifier_is_a_validation_error_not_a_404(daemon, qualifier):
    reply = daemon.request("POST", f"/2015-03-31/functions/fn/invocations?Qualifier={qualifier}", b"{}")
    status, code, message = _error(reply)
    assert (status, code) == (400, "ValidationException")
    assert message.startswith(PREFIX + "Value '") and "at 'qualifier' failed to satisfy constraint" in message


def test_a_valid_but_unknown_qualifier_is_404(daemon):
    reply = daemon.request("POST", "/2015-03-31/functions/fn/invocations?Qualifier=prod", b"{}")
    assert _error(reply)[:2] == (404, "ResourceNotFoundException")


def test_boto3_sees_validation_errors_with_their_codes(daemon):
    lam = boto3.client(
        "lambda", endpoint_url=daemon.url, region_name="us-east-1", aws_access_key_id="x",
        aws_secret_access_key="x", config=botocore.config.Config(retries={"max_attempts": 0}),
    )
    for kwargs, member in (({"Qualifier": "bad!"}, "qualifier"), ({"FunctionName": "no such fn"}, "functionName")):
        with pytest.raises(ClientError) as info:
            lam.invoke(**{"FunctionName": "fn", "Payload": b"{}", **kwargs})
        err = info.value.response
        assert err["Error"]["Code"] == "ValidationException"
        assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert f"at '{member}' failed to satisfy constraint" in err["Error"]["Message"]


def test_invalid_utf8_is_refused_and_an_escaped_lone_surrogate_is_not(daemon):
    bad = daemon.invoke("fn", b'{"s": "\xff"}')
    assert _error(bad)[:2] == (400, "InvalidRequestContentException")
    good = daemon.invoke("fn", b'{"s": "\\ud800"}')
    assert good.status == 200 and good.body == b'{"s": "\\ud800"}'  # passed through untouched


def test_dry_run_says_which_version_would_run(daemon):
    reply = daemon.request("POST", "/2015-03-31/functions/fn/invocations", b"{}", {"X-Amz-Invocation-Type": "DryRun"})
    assert reply.status == 204
    assert reply.headers["x-amz-executed-version"] == "$LATEST" and reply.headers["x-amzn-requestid"]
