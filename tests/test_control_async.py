"""Asynchronous invocation of API functions: per version and alias (weights per attempt),
and what becomes of the queued events of a deleted function."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.control import ROLE, behave_zip, client, wait_active, wait_updated
from tests.daemon import run_server


def _records(path: Path, count: int, timeout: float = 30) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
            if len(lines) >= count:
                return lines
        time.sleep(0.05)
    raise AssertionError(f"{path}: fewer than {count} records")


def test_events_run_on_their_version_and_aliases_split_per_attempt(tmp_path: Path) -> None:
    done = tmp_path / "done.ndjson"
    with run_server(["--data-dir", str(tmp_path / "state")]) as daemon:
        lam = client(daemon)
        lam.create_function(FunctionName="ev", Runtime="provided.al2023", Role=ROLE, Code={"ZipFile": behave_zip()},
                            Environment={"Variables": {"K": "v1"}})
        wait_active(lam, "ev")
        lam.publish_version(FunctionName="ev")
        lam.update_function_configuration(FunctionName="ev", Environment={"Variables": {"K": "v2"}})
        wait_updated(lam, "ev")
        lam.publish_version(FunctionName="ev")
        lam.update_function_configuration(FunctionName="ev", Environment={"Variables": {"K": "latest"}})
        wait_updated(lam, "ev")
        lam.create_alias(FunctionName="ev", Name="live", FunctionVersion="1",
                         RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
        for qualifier in ("1", "live"):
            lam.put_function_event_invoke_config(
                FunctionName="ev", Qualifier=qualifier,
                DestinationConfig={"OnSuccess": {"Destination": f"file://{done}"}})
        lam.invoke(FunctionName="ev", Qualifier="1", InvocationType="Event", Payload=b'{"env": "K"}')
        first = _records(done, 1)
        assert first[0]["responsePayload"] == "v1"
        for _ in range(40):
            lam.invoke(FunctionName="ev:live", InvocationType="Event", Payload=b'{"env": "K"}')
        seen = {r["responsePayload"] for r in _records(done, 41)[1:]}
        assert seen == {"v1", "v2"}


def test_queued_events_of_a_deleted_function_go_to_its_on_failure_destination(tmp_path: Path) -> None:
    failed = tmp_path / "failed.ndjson"
    with run_server(["--data-dir", str(tmp_path / "state")]) as daemon:
        lam = client(daemon)
        lam.create_function(FunctionName="doomed", Runtime="provided.al2023", Role=ROLE, Timeout=30,
                            Code={"ZipFile": behave_zip()})
        wait_active(lam, "doomed")
        lam.put_function_concurrency(FunctionName="doomed", ReservedConcurrentExecutions=1)
        lam.put_function_event_invoke_config(
            FunctionName="doomed", DestinationConfig={"OnFailure": {"Destination": f"file://{failed}"}})
        lam.invoke(FunctionName="doomed", InvocationType="Event", Payload=b'{"sleep": 1.5}')
        daemon.wait_for_line(r"\[doomed\] START RequestId")
        ids = [lam.invoke(FunctionName="doomed", InvocationType="Event", Payload=json.dumps({"echo": i}))[
            "ResponseMetadata"]["RequestId"] for i in range(3)]
        lam.delete_function(FunctionName="doomed")
        records = _records(failed, 3)
        assert sorted(r["requestContext"]["requestId"] for r in records) == sorted(ids)
        assert {r["requestContext"]["condition"] for r in records} == {"RetriesExhausted"}
        metrics = daemon.request("GET", "/metrics").body.decode()
        assert 'rapid_async_failed_total{function="doomed",condition="RetriesExhausted"} 3' in metrics
