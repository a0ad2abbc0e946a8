"""Pure parts of templates, logs and blueprints: API Gateway's route matching, events and
answers; filter patterns; the log store and reader; sample events; blueprint discovery;
the Globals merge; deterministic packaging."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from rapid.blueprints import create, discover, sample_events
from rapid.logs import filter_pattern
from rapid.logs.store import LogReader, LogStore
from rapid.template import api_events
from rapid.template.api_events import Route, Table
from rapid.template.packaging import zip_folder


def route(method: str, path: str, fn: str = "f", payload: str = "2.0", rest: bool = False) -> Route:
    return Route(method, path, fn, None, payload, "Api", "Prod" if rest else "$default", rest)


def test_route_priority() -> None:
    table = Table([route("ANY", "/{proxy+}", "greedy"), route("GET", "/items/{id}", "param"),
                   route("GET", "/items/new", "literal"), route("ANY", "/items/{id}", "any"),
                   route("ANY", "$default", "default")])
    assert table.match("GET", "/items/new")[0].function == "literal"
    found = table.match("GET", "/items/42")
    assert found[0].function == "param" and found[1] == {"id": "42"}
    assert table.match("DELETE", "/items/42")[0].function == "any"
    found = table.match("GET", "/a/b/c")
    assert found[0].function == "greedy" and found[1] == {"proxy": "a/b/c"}
    assert Table([route("GET", "/x")]).match("POST", "/x") is None
    assert Table([route("GET", "/x"), route("ANY", "$default", "d")]).match("POST", "/y")[0].function == "d"
    assert Table([route("GET", "/")]).match("GET", "/") is not None


def test_payload_1() -> None:
    r = route("POST", "/items/{id}", payload="1.0", rest=True)
    ev = api_events.event_v1(r, {"id": "7"}, "POST", "/items/7", "a=1&a=2&b=x",
                             {"content-type": "application/json", "host": "h"}, b'{"k": 1}',
                             request_id="rid", source_ip="127.0.0.1", now=1767225600.0, account="000000000000",
                             api_id="api")
    assert ev["resource"] == "/items/{id}" and ev["path"] == "/items/7" and ev["httpMethod"] == "POST"
    assert ev["pathParameters"] == {"id": "7"}
    assert ev["queryStringParameters"] == {"a": "2", "b": "x"}
    assert ev["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x"]}
    assert ev["body"] == '{"k": 1}' and ev["isBase64Encoded"] is False
    assert ev["requestContext"]["stage"] == "Prod" and ev["requestContext"]["path"] == "/Prod/items/7"
    assert ev["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"
    binary = api_events.event_v1(r, {}, "POST", "/x", "", {}, b"\x00\xff", request_id="r", source_ip="i",
                                 now=0.0, account="a", api_id="api")
    assert binary["isBase64Encoded"] is True and base64.b64decode(binary["body"]) == b"\x00\xff"


def test_payload_2() -> None:
    r = route("GET", "/hello/{name}")
    ev = api_events.event_v2(r, {"name": "bob"}, "GET", "/hello/bob", "x=1", {"cookie": "a=1; b=2"}, b"",
                             request_id="rid", source_ip="127.0.0.1", now=1767225600.0, account="000000000000",
                             api_id="api")
    assert ev["version"] == "2.0" and ev["routeKey"] == "GET /hello/{name}"
    assert ev["requestContext"]["routeKey"] == "GET /hello/{name}" and ev["requestContext"]["stage"] == "$default"
    assert ev["pathParameters"] == {"name": "bob"} and ev["cookies"] == ["a=1", "b=2"]
    assert ev["queryStringParameters"] == {"x": "1"} and ev["rawPath"] == "/hello/bob"


def test_answers() -> None:
    ok = json.dumps({"statusCode": 201, "headers": {"x-a": "1"}, "body": "made"}).encode()
    assert api_events.answer_v1(ok)[0] == 201 and api_events.answer_v1(ok)[2] == b"made"
    assert ("x-a", "1") in api_events.answer_v1(ok)[1]
    b64 = json.dumps({"statusCode": 200, "body": base64.b64encode(b"\x01").decode(), "isBase64Encoded": True})
    assert api_events.answer_v1(b64.encode())[2] == b"\x01"
    # payload 1.0 needs statusCode; 2.0 takes any JSON as a 200
    assert api_events.answer_v1(b'{"message": "hi"}') == api_events.INTERNAL_ERROR
    assert api_events.answer_v1(b"not json") == api_events.INTERNAL_ERROR
    assert api_events.answer_v2(b'{"message": "hi"}')[:1] == (200,)
    assert api_events.answer_v2(b'"text"')[2] == b"text"
    assert api_events.answer_v2(b"not json") == api_events.INTERNAL_ERROR
    assert api_events.not_found(True)[0] == 403 and api_events.not_found(False)[0] == 404


@pytest.mark.parametrize("pattern, text, want", [
    ("", "anything", True),
    ("ERROR", "an ERROR here", True),
    ("ERROR", "an error here", False),
    ("ERROR timeout", "ERROR: a timeout", True),
    ("ERROR timeout", "ERROR: slow", False),
    ('"two words"', "these two words", True),
    ('"two words"', "two other words", False),
    ("?ERROR ?WARN", "WARN: disk", True),
    ("?ERROR ?WARN", "INFO: ok", False),
    ("REPORT -Init", "REPORT RequestId: 1 Duration: 1 ms", True),
    ("REPORT -Init", "REPORT RequestId: 1 Init Duration: 1 ms", False),
])
def test_filter_patterns(pattern: str, text: str, want: bool) -> None:
    assert filter_pattern.parse(pattern).matches(text) is want


def test_log_store_streams_events_and_escapes(tmp_path: Path) -> None:
    store = LogStore(str(tmp_path), flush_interval=60)
    store.line("fn", "2026/12/01/[$LATEST]aaa", "START RequestId: 1 Version: $LATEST")
    store.line("fn", "2026/12/01/[$LATEST]aaa", "a line\nwith a newline and a \\ backslash")
    store.line("fn", "2026/12/01/[1]bbb", "another stream")
    store.flush()
    reader = LogReader(str(tmp_path))
    assert reader.functions() == ["fn"]
    streams = {s.name: s for s in reader.streams("fn")}
    assert set(streams) == {"2026/12/01/[$LATEST]aaa", "2026/12/01/[1]bbb"}
    events = reader.events("fn", [streams["2026/12/01/[$LATEST]aaa"]])
    assert [e.message for e in events] == ["START RequestId: 1 Version: $LATEST",
                                           "a line\nwith a newline and a \\ backslash"]
    every = reader.events("fn")
    assert len({e.event_id for e in every}) == 3
    newest = max(e.timestamp for e in every)
    assert reader.events("fn", start=newest + 1) == []
    assert reader.events("fn", start=newest) == [e for e in every if e.timestamp == newest]
    assert reader.events("fn", end=min(e.timestamp for e in every)) == []


def test_log_store_caps_a_function(tmp_path: Path) -> None:
    store = LogStore(str(tmp_path), max_bytes=64 * 1024, flush_interval=60)
    line = "x" * 100
    for stream in range(20):  # 20 streams of ~10 KB: the oldest go
        for _ in range(100):
            store.line("fn", f"s{stream:02d}", line)
        store.flush()
        os.utime(tmp_path / "fn" / f"s{stream:02d}.log", ns=(stream * 10**9, stream * 10**9))
    sizes = [os.path.getsize(tmp_path / "fn" / f) for f in os.listdir(tmp_path / "fn")]
    assert sum(sizes) <= 64 * 1024
    names = sorted(s.name for s in LogReader(str(tmp_path)).streams("fn"))
    assert names[-1] == "s19" and "s00" not in names
    for _ in range(2000):  # one stream alone past the cap: its older half goes
        store.line("fn", "s19", line)
    store.flush()
    assert sum(os.path.getsize(tmp_path / "fn" / f) for f in os.listdir(tmp_path / "fn")) <= 64 * 1024
    events = LogReader(str(tmp_path)).events("fn")
    assert events and all(e.message == line for e in events)


@pytest.mark.parametrize("kind", list(sample_events.BUILDERS))
def test_sample_events_have_aws_shapes(kind: str) -> None:
    ev = sample_events.build(kind, None, "eu-west-1", "111122223333", now=1767225600.0)
    text = json.dumps(ev)
    assert "eu-west-1" in text and ("111122223333" in text or kind == "s3")  # S3 names no account
    if kind == "sqs":
        rec = ev["Records"][0]
        assert rec["eventSource"] == "aws:sqs" and rec["md5OfBody"] == hashlib.md5(rec["body"].encode()).hexdigest()
    if kind == "kinesis":
        rec = ev["Records"][0]
        assert base64.b64decode(rec["kinesis"]["data"]) == b"Hello, this is a test."
        assert rec["eventSourceARN"] == "arn:aws:kinesis:eu-west-1:111122223333:stream/MyStream"
    if kind == "schedule":
        assert ev["detail-type"] == "Scheduled Event" and ev["source"] == "aws.events"
        assert ev["time"] == "2026-01-01T00:00:00Z"
    if kind == "apigateway-v2":
        assert ev["version"] == "2.0" and ev["requestContext"]["http"]["method"] == "POST"
    if kind == "s3":
        assert ev["Records"][0]["s3"]["object"]["key"] == "test/key"
    if kind == "sns":
        assert ev["Records"][0]["Sns"]["Type"] == "Notification"
    if kind == "dynamodb":
        assert ev["Records"][0]["eventName"] == "INSERT"


def test_blueprints_are_found_by_folder(tmp_path: Path) -> None:
    found = discover()
    assert {"hello-python", "hello-node", "hello-shell", "api-python", "sqs-consumer-python",
            "kinesis-processor-python", "scheduled-python", "streaming-node", "extension-python"} <= set(found)
    for bp in found.values():
        assert bp.description and bp.check.get("kind") and bp.tries
    extra = tmp_path / "bps" / "mine"
    extra.mkdir(parents=True)
    (extra / "blueprint.toml").write_text('description = "mine"\n[check]\nkind = "invoke"\n')
    (extra / "bootstrap").write_text("#!/bin/sh\n")
    (tmp_path / "bps" / "not-a-blueprint").mkdir()
    mine = discover(str(tmp_path / "bps"))
    assert list(mine) == ["mine"] and mine["mine"].description == "mine"
    written = create(mine["mine"], str(tmp_path / "out"))
    assert written == ["bootstrap"] and os.access(tmp_path / "out" / "bootstrap", os.X_OK)


def test_zip_folder_is_deterministic_and_keeps_modes(tmp_path: Path) -> None:
    (tmp_path / "fn" / "sub").mkdir(parents=True)
    (tmp_path / "fn" / "bootstrap").write_text("#!/bin/sh\n")
    (tmp_path / "fn" / "bootstrap").chmod(0o755)
    (tmp_path / "fn" / "sub" / "a.txt").write_text("a")
    (tmp_path / "fn" / "__pycache__").mkdir()
    (tmp_path / "fn" / "__pycache__" / "x.pyc").write_text("x")
    first = zip_folder(str(tmp_path / "fn"))
    os.utime(tmp_path / "fn" / "sub" / "a.txt", (1, 1))
    assert zip_folder(str(tmp_path / "fn")) == first
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as _:
        pass
    import io

    z = zipfile.ZipFile(io.BytesIO(first))
    assert z.namelist() == ["bootstrap", "sub/a.txt"]
    assert (z.getinfo("bootstrap").external_attr >> 16) & 0o777 == 0o755


async def test_the_scheduler_fires_replaces_and_closes() -> None:
    import asyncio

    from rapid.template.scheduler import Job, Scheduler, scheduled_event

    fired: list[tuple[str, str | None, dict]] = []  # type: ignore[type-arg]

    async def invoke(function: str, qualifier: str | None, payload: bytes) -> None:
        fired.append((function, qualifier, json.loads(payload)))

    s = Scheduler(invoke, print, "us-east-1", "000000000000", time_scale=0.001)  # a minute in 60 ms
    tick = Job(rule="tick", function="f", qualifier="live", expression="rate(1 minute)")
    once = Job(rule="once", function="g", qualifier=None, expression="cron(* * * * ? *)", input='{"k": 1}')
    s.replace([tick, once])
    deadline = asyncio.get_running_loop().time() + 20
    while sum(f[0] == "f" for f in fired) < 3 or not any(f[0] == "g" for f in fired):
        assert asyncio.get_running_loop().time() < deadline, fired
        await asyncio.sleep(0.01)
    first = next(f for f in fired if f[0] == "f")
    assert first[1] == "live" and first[2]["resources"] == ["arn:aws:events:us-east-1:000000000000:rule/tick"]
    assert next(f for f in fired if f[0] == "g")[2] == {"k": 1}
    task = s._tasks[tick]
    s.replace([tick])  # unchanged: the same task; removed: cancelled
    assert s._tasks[tick] is task and once not in s._tasks
    await s.close()
    assert task.cancelled() or task.done()
    v2 = scheduled_event(Job("r", "f", None, "rate(1 day)", scheduler=True), __import__("datetime").datetime.now(),
                         "us-east-1", "0")
    assert v2 == b"{}"


def test_template_settings_from_toml_env_and_flags(tmp_path: Path) -> None:
    from rapid.config import ConfigError, load

    (tmp_path / "rapid.toml").write_text('template = "t.yaml"\nparameter_overrides = {Stage = "prod"}\n'
                                         'watch = true\napi_port = 0\n')
    c = load({"config": str(tmp_path / "rapid.toml")}, environ={}, cwd="/")
    assert (c.template, c.parameter_overrides, c.watch, c.api_port) == (str(tmp_path / "t.yaml"), {"Stage": "prod"},
                                                                         True, 0)
    assert c.functions == {} and not c.dropin  # a template alone is a service, not a drop-in
    c = load({"template": "x.yaml", "parameter_overrides": ["A=1", "ParameterKey=B,ParameterValue=2=3"]},
             environ={}, cwd="/")
    assert c.parameter_overrides == {"A": "1", "B": "2=3"}
    c = load({"template": "x.yaml"}, environ={"RAPID_PARAMETER_OVERRIDES": "A=1 B=2", "RAPID_WATCH": "1",
                                              "RAPID_API_PORT": "3001"}, cwd="/")
    assert (c.parameter_overrides, c.watch, c.api_port) == ({"A": "1", "B": "2"}, True, 3001)
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load({"template": "x.yaml", "parameter_overrides": ["nothing"]}, environ={}, cwd="/")
