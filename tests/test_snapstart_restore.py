"""SnapStart's limits and telemetry, as on Lambda: a restore past its limit is
``SnapStartTimeoutException``; the template's init runs under the function's memory limit;
Telemetry API subscribers get ``platform.restore*`` records in place of the init ones."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from tests.capabilities import need
from tests.daemon import run_server, wait_until
from tests.test_isolation import rapid_cgroup, read_first
from tests.test_telemetry import SUBSCRIBER, Sink

APP = '''
import os, time
from snapshot_restore_py import register_after_restore

print("module code ran in", os.getpid())
if os.environ.get("ALLOC_MB"):  # an init that needs more than the function's memory
    blob = b"x" * (int(os.environ["ALLOC_MB"]) << 20)

@register_after_restore
def after():
    if os.path.exists(os.environ["HANG_FLAG"]):
        print("restore hook hangs in", os.getpid(), flush=True)
        time.sleep(3600)  # never returns

def handler(event, context):
    if event.get("hold"):
        deadline = time.monotonic() + 30
        while not os.path.exists(event["hold"]) and time.monotonic() < deadline:
            time.sleep(0.02)
    return {"pid": os.getpid(), "ppid": os.getppid()}
'''


@pytest.fixture
def flags():
    folder = Path(tempfile.mkdtemp(prefix="rapid-test-flags-", dir="/var/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _function(tmp_path: Path, flags: Path, memory: int = 256, alloc_mb: int = 0, extension: str = "",
              sink_port: int = 0) -> Path:
    folder = tmp_path / "snap"
    folder.mkdir()
    (folder / "app.py").write_text(APP)
    if extension:
        (folder / "extensions").mkdir()
        agent = folder / "extensions" / "tel-agent"
        agent.write_text(extension)
        agent.chmod(0o755)
    env = f'HANG_FLAG = "{flags / "hang"}", OUT = "{flags}", SINK_PORT = "{sink_port}"'
    if alloc_mb:
        env += f', ALLOC_MB = "{alloc_mb}"'
    toml = tmp_path / "rapid.toml"
    toml.write_text(
        f'[functions.snap]\npath = "{folder}"\nruntime = "python"\nhandler = "app.handler"\nsnap_start = true\n'
        f"timeout = 30\nmemory = {memory}\nenvironment = {{ {env} }}\n"
    )
    return toml


def _starts(d) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for line in list(d.lines) if "START RequestId" in line)


def _busy(d, flag: Path) -> threading.Thread:  # type: ignore[no-untyped-def]
    """An invoke that holds its instance until ``flag`` exists (the next needs a new fork)."""
    starts = _starts(d)
    t = threading.Thread(target=lambda: d.invoke("snap", {"hold": str(flag)}))
    t.start()
    wait_until(lambda: _starts(d) > starts, 30, "the held invoke to start")
    return t


def test_a_hanging_restore_is_a_snapstart_timeout(tmp_path, flags):
    (flags / "hang").touch()
    with run_server(["--config", str(_function(tmp_path, flags))], env={"RAPID_RESTORE_TIMEOUT": "1"}) as d:
        reply = d.invoke("snap", {})
        assert reply.status == 408, reply.body
        assert reply.headers["x-amzn-errortype"].startswith("SnapStartTimeoutException")
        assert "couldn't restore the snapshot within the timeout limit" in reply.json()["message"]
        d.wait_for_line(r"restore hook hangs in \d+")
        d.wait_for_line(r"RESTORE_REPORT Restore Duration: \d+\.\d\d ms\tStatus: timeout$")
        # The hook's process went with its instance; the template stays and forks again.
        os.unlink(flags / "hang")
        again = d.invoke("snap", {})
        assert again.status == 200 and again.function_error is None, again.body
        assert len([line for line in d.lines if "module code ran in" in line]) == 1
        assert not any("INIT_REPORT" in line and "timeout" in line for line in d.lines)


def test_a_hanging_restore_through_boto3_raises_snapstart_timeout(tmp_path, flags):
    import boto3
    from botocore.config import Config

    (flags / "hang").touch()
    with run_server(["--config", str(_function(tmp_path, flags))], env={"RAPID_RESTORE_TIMEOUT": "1"}) as d:
        lam = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{d.port}", region_name="us-east-1",
                           aws_access_key_id="test", aws_secret_access_key="test",
                           config=Config(retries={"max_attempts": 0}))
        with pytest.raises(lam.exceptions.SnapStartTimeoutException) as caught:
            lam.invoke(FunctionName="snap", Payload=b"{}")
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 408


def test_the_template_runs_init_under_the_function_memory_limit(tmp_path, flags):
    need("root", "memory_cgroup")
    with run_server(["--config", str(_function(tmp_path, flags, memory=128))]) as d:
        body = d.invoke("snap", {}).json()
        template = body["ppid"]  # the fork's parent: the template
        folder = rapid_cgroup(template, "memory")
        assert folder is not None, "the template is in no memory cgroup of rapid's"
        assert read_first(folder, "memory.max", "memory.limit_in_bytes") == str(128 * 1024 * 1024)
        # The fork: a cgroup of its own (joined off the loop, beside its restore).
        wait_until(lambda: rapid_cgroup(body["pid"], "memory") not in (None, folder), 10, "the fork's own cgroup")


def test_a_template_over_its_memory_is_an_init_error_as_a_bare_one(tmp_path, flags):
    need("root", "memory_cgroup")
    with run_server(["--config", str(_function(tmp_path, flags, memory=128, alloc_mb=300))]) as d:
        reply = d.invoke("snap", {})
        rid = reply.headers["x-amzn-requestid"]
        assert reply.status == 200 and reply.function_error == "Unhandled", reply.body
        assert reply.json() == {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"RequestId: {rid} Error: Runtime exited with error: signal: killed",
        }
        d.wait_for_line(r"INIT_REPORT Init Duration: \d+\.\d\d ms\tPhase: init\tStatus: error\t"
                        r"Error Type: Runtime.ExitError")
        # Tried again with the next instance, as a failed init is.
        assert d.invoke("snap", {}).function_error == "Unhandled"
        assert len([line for line in d.lines if "module code ran in" in line]) == 2


def test_telemetry_has_restore_records_in_place_of_init(tmp_path, flags):
    sink = Sink()
    try:
        toml = _function(tmp_path, flags, extension=SUBSCRIBER, sink_port=sink.port)
        with run_server(["--config", str(toml)], env={"RAPID_RESTORE_TIMEOUT": "3"}) as d:
            first = d.invoke("snap", {})
            rid = first.headers["x-amzn-requestid"]
            events = sink.wait(lambda ev: any(e["type"] == "platform.report" and e["record"]["requestId"] == rid
                                              for e in ev))
            kinds = [e["type"] for e in events]
            assert not {"platform.initStart", "platform.initRuntimeDone", "platform.initReport"} & set(kinds), kinds
            order = ["platform.restoreStart", "platform.extension", "platform.telemetrySubscription",
                     "platform.restoreRuntimeDone", "platform.restoreReport", "platform.start",
                     "platform.runtimeDone", "platform.report"]
            seen = [(e["type"], e["record"]) for e in events if e["type"] in order]
            assert [k for k, _ in seen][:len(order)] == order, seen
            record = {e["type"]: e["record"] for e in events}
            start = record["platform.restoreStart"]
            assert start["functionName"] == "snap" and start["functionVersion"] == "$LATEST"
            assert start["instanceMaxMemory"] == 256 and start["instanceId"]
            assert {"runtimeVersion", "runtimeVersionArn"} <= set(start)
            assert record["platform.restoreRuntimeDone"] == {"status": "success"}
            restore = record["platform.restoreReport"]
            assert restore["status"] == "success" and restore["metrics"]["durationMs"] > 0
            metrics = record["platform.report"]["metrics"]
            assert metrics["restoreDurationMs"] == restore["metrics"]["durationMs"]
            assert "initDurationMs" not in metrics
            # A second instance (the first held busy) whose restore hangs: its subscriber
            # hears of the timeout.
            release = flags / "release"
            held = _busy(d, release)
            (flags / "hang").touch()
            late = d.invoke("snap", {})
            assert late.status == 408
            release.touch()
            held.join()
            events = sink.wait(lambda ev: any(e["type"] == "platform.restoreReport"
                                              and e["record"]["status"] == "timeout" for e in ev))
            failed = [e["record"] for e in events if e["type"] in ("platform.restoreRuntimeDone",
                                                                   "platform.restoreReport")
                      and e["record"]["status"] == "timeout"]
            assert failed[0] == {"status": "timeout"}
            assert failed[1]["status"] == "timeout"
            assert failed[1]["metrics"]["durationMs"] > 2900  # the limit (to a clock tick)
    finally:
        sink.close()
