"""Isolation of instances: private /tmp, own uid, read-only code, Runtime API identity,
memory limits, rlimits. Tests of what needs root skip elsewhere."""

import os
import sys
import threading
import time

import pytest

from tests.daemon import BEHAVE_SYSTEM, SYSTEM_PYTHON, make_function, run_cli, run_server

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount namespaces, uids, cgroups)")
needs_system_python = pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason="no /usr/bin/python3")


def concurrently(d, calls):
    out = [None] * len(calls)

    def run(i, name, payload):
        out[i] = d.invoke(name, payload)

    threads = [threading.Thread(target=run, args=(i, n, p)) for i, (n, p) in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@pytest.fixture
def sys_fn(tmp_path):
    return make_function(tmp_path / "sysfn", BEHAVE_SYSTEM)


@root_only
def test_private_tmp_survives_warm_invokes_and_is_private(behave_fn):
    with run_server(["--function", f"fn={behave_fn}", "--timeout", "2"]) as d:
        assert any("private tmpfs per instance" in line for line in d.stderr)
        assert d.invoke("fn", {"write": "/tmp/mine", "data": "secret"}).json() is True
        assert d.invoke("fn", {"read": "/tmp/mine"}).json() == "secret"  # warm: still there
        assert not os.path.exists("/tmp/mine")  # not the host's /tmp
        # A second instance (started while the first is busy) has its own /tmp.
        busy, other = concurrently(d, [("fn", {"sleep": 0.5}), ("fn", {"read": "/tmp/mine"})])
        assert busy.json() == "slept" or other.json() == "FileNotFoundError"
        # When the instance ends, its /tmp goes with it.
        d.invoke("fn", {"sleep": 5})  # times out: that instance is killed
        reads = {d.invoke("fn", {"read": "/tmp/mine"}).json() for _ in range(3)}
        assert "secret" not in reads or len(d.runtime_pids()) > 1


@root_only
def test_tmp_is_capped_at_the_ephemeral_storage(behave_fn, tmp_path):
    toml = tmp_path / "rapid.toml"
    toml.write_text(f'[functions.fn]\npath = "{behave_fn}"\ntimeout = 30\nephemeral_storage = 512\nmemory = 2048\n')
    with run_server(["--config", str(toml)]) as d:
        assert d.invoke("fn", {"fill": 100}).json() == 100
        assert d.invoke("fn", {"fill": 600}).json() == "OSError"  # ENOSPC at 512 MB


@root_only
@needs_system_python
def test_instances_run_as_their_own_unprivileged_users(sys_fn):
    with run_server(["--function", f"fn={sys_fn}"]) as d:
        assert any("runtimes run as uids" in line for line in d.stderr)
        a, b = concurrently(d, [("fn", {"sleep": 0.5}), ("fn", {"sleep": 0.5})])
        assert a.json() == b.json() == "slept"
        ids = {tuple(d.invoke("fn", {"id": True}).json()) for _ in range(6)}
        for uid, gid in ids:
            assert uid >= 990000 and gid == uid
        pids = d.runtime_pids()
        assert len(pids) == 2
        owners = {os.stat(f"/proc/{p}").st_uid for p in pids}
        assert len(owners) == 2 and 0 not in owners  # one uid per instance
        # One instance cannot signal the other's process.
        results = {d.invoke("fn", {"signal": p}).json() for p in pids for _ in range(2)}
        assert "PermissionError" in results
        # The code is read-only to it.
        assert d.invoke("fn", {"write": str(sys_fn / "x"), "data": "y"}).json() in ("OSError", "PermissionError")


@root_only
def test_a_runtime_others_cannot_execute_keeps_root_with_a_warning(behave_fn):
    # The test venv's Python may live under /root (0700): then the function runs as root.
    with run_server(["--function", f"fn={behave_fn}"]) as d:
        uid = d.invoke("fn", {"id": True}).json()[0]
        warned = any("runs as root" in line for line in d.stderr)
        assert (uid == 0) == warned


def test_runtime_api_refuses_other_instances(behave_fn, tmp_path):
    toml = tmp_path / "rapid.toml"
    toml.write_text(f'[functions.a]\npath = "{behave_fn}"\n[functions.b]\npath = "{behave_fn}"\n')
    with run_server(["--config", str(toml)]) as d:
        b_api = d.invoke("b", {"env": "AWS_LAMBDA_RUNTIME_API"}).json()
        a_api = d.invoke("a", {"env": "AWS_LAMBDA_RUNTIME_API"}).json()
        assert a_api != b_api
        # a's runtime reaching for b's invocations: refused, and b still works.
        r = d.invoke("a", {"fetch": f"http://{b_api}/2018-06-01/runtime/invocation/next"})
        assert r.json() == 403
        assert d.invoke("b", {"echo": "b"}).json() == "b"
        # Nor may any other local process (this test) use an instance's Runtime API.
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://{a_api}/2018-06-01/runtime/invocation/next", timeout=5)
        assert info.value.code == 403


@root_only
def test_memory_limit_kills_the_instance(behave_fn, tmp_path):
    toml = tmp_path / "rapid.toml"
    toml.write_text(f'[functions.fn]\npath = "{behave_fn}"\nmemory = 128\ntimeout = 20\n')
    with run_server(["--config", str(toml)]) as d:
        if not any("memory cgroup limit" in line or "RSS watchdog" in line for line in d.stderr):
            pytest.skip("no memory enforcement here")
        r = d.invoke("fn", {"alloc": 300})
        rid = r.headers["x-amzn-requestid"]
        assert r.function_error == "Unhandled"
        assert r.json() == {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"RequestId: {rid} Error: Runtime exited with error: signal: killed",
        }
        report = d.wait_for_line(f"REPORT RequestId: {rid}")
        used = int(report.split("Max Memory Used: ")[1].split(" ")[0])
        assert 100 <= used <= 140
        assert d.invoke("fn", {"echo": "back"}).json() == "back"


def test_memory_watchdog_without_cgroups(behave_fn, tmp_path):
    toml = tmp_path / "rapid.toml"
    toml.write_text(f'memory_limit = "watchdog"\n[functions.fn]\npath = "{behave_fn}"\nmemory = 128\ntimeout = 20\n')
    with run_server(["--config", str(toml)]) as d:
        assert any("memory RSS watchdog" in line for line in d.stderr)
        # The watchdog samples every 250 ms: the allocation may finish before it looks, and
        # the instance is killed then (answering the invoke if it is still running).
        r = d.invoke("fn", {"alloc": 400})
        if r.function_error is None:
            d.wait_for_line("Error: Runtime exited with error: signal: killed")
        else:
            assert r.json()["errorMessage"].endswith("Runtime exited with error: signal: killed")
        assert d.invoke("fn", {"echo": "back"}).json() == "back"


def test_private_tmpdir_mode(behave_fn):
    with run_server(["--function", f"fn={behave_fn}"], env={"RAPID_PRIVATE_TMP": "directory"}) as d:
        assert any("private TMPDIR per instance" in line for line in d.stderr)
        tmpdir = d.invoke("fn", {"env": "TMPDIR"}).json()
        assert tmpdir != "/tmp" and os.path.isdir(tmpdir)
        assert d.invoke("fn", {"write": tmpdir + "/x", "data": "kept"}).json() is True
        assert d.invoke("fn", {"read": tmpdir + "/x"}).json() == "kept"
    assert not os.path.exists(tmpdir)


def test_lambda_rlimits(behave_fn):
    with run_server(["--function", f"fn={behave_fn}"]) as d:
        assert d.invoke("fn", {"rlimits": True}).json() == [1024, 1024]


def test_environment_over_4kb_is_refused_at_start(tmp_path):
    folder = make_function(tmp_path / "f", "#!/bin/sh\n")
    r = run_cli(["serve", "--function", f"f={folder}", "--env", "BIG=" + "x" * 4200])
    assert r.returncode == 2 and "4096" in r.stderr


def test_a_runtime_that_dies_while_idle_is_replaced(behave_fn):
    import signal

    # A frozen instance cannot die (a task in a frozen cgroup holds even SIGKILL until it is
    # thawed), so this crash needs an instance that runs while idle.
    with run_server(["--function", f"fn={behave_fn}"], env={"RAPID_FREEZE": "false"}) as d:
        pid = d.invoke("fn", {"pid": True}).json()
        os.kill(pid, signal.SIGKILL)
        d.wait_for_line("Error: Runtime exited with error: signal: killed")
        assert d.invoke("fn", {"pid": True}).json() != pid


HOLD_TWICE = """#!{python}
# Holds a /next, then asks for another on a second connection: that one must be refused.
import http.client, json, os, threading
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
first = http.client.HTTPConnection(host, int(port))
first.request("GET", "/2018-06-01/runtime/invocation/next")
second = http.client.HTTPConnection(host, int(port))
import time; time.sleep(0.3)
second.request("GET", "/2018-06-01/runtime/invocation/next")
r2 = second.getresponse()
status = [r2.status, json.loads(r2.read())["errorType"]]
r = first.getresponse(); r.read()
rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
first.request("POST", "/2018-06-01/runtime/invocation/" + rid + "/response", json.dumps(status))
first.getresponse().read()
time.sleep(60)
"""


def test_a_runtime_holding_next_twice_is_refused_the_second(tmp_path):
    folder = make_function(tmp_path / "f", HOLD_TWICE.replace("{python}", sys.executable))
    with run_server(["--function", f"f={folder}", "--timeout", "5"], env={"RAPID_FREEZE": "false"}) as d:
        time.sleep(0.1)
        assert d.invoke("f", {}).json() == [403, "InvalidStateTransition"]
