"""What the supervisor guarantees, seen from the invoker and the log stream: timeouts,
crashes, init failures and suppressed init, reuse, environment, memory, shutdown."""

import os
import signal
import time

from tests.capabilities import has, need
from tests.daemon import run_server, wait_until


def fn_args(folder, *extra):
    return ["--function", f"fn={folder}", *extra]


def test_same_process_serves_warm_invokes(behave_fn):
    with run_server(fn_args(behave_fn)) as d:
        pids = {d.invoke("fn", {"pid": True}).json() for _ in range(5)}
        assert len(pids) == 1


def test_timeout_kills_instance_then_recovers(behave_fn):
    with run_server(fn_args(behave_fn, "--timeout", "1")) as d:
        first_pid = d.invoke("fn", {"pid": True}).json()
        r = d.invoke("fn", {"sleep": 30})
        rid = r.headers["x-amzn-requestid"]
        assert r.status == 200
        assert r.function_error == "Unhandled"
        assert r.json() == {
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"RequestId: {rid} Error: Task timed out after 1.00 seconds",
        }
        report = d.wait_for_line(f"REPORT RequestId: {rid}")
        assert "\tStatus: timeout\t" in report
        # The timed-out process is gone and never reused.
        wait_until(lambda: first_pid not in d.runtime_pids(), 10, "the timed-out runtime to go")
        r2 = d.invoke("fn", {"pid": True})
        assert r2.status == 200 and r2.function_error is None
        assert r2.json() != first_pid
        # The replacement's init ran inside the invoke (suppressed): no Init Duration.
        rid2 = r2.headers["x-amzn-requestid"]
        assert "Init Duration" not in d.wait_for_line(f"REPORT RequestId: {rid2}")


def test_timer_is_per_invocation_not_per_function(behave_fn):
    with run_server(fn_args(behave_fn, "--timeout", "2")) as d:
        # Two back-to-back invokes of 1.2 s each: 2.4 s in all, each within its own 2 s.
        for _ in range(2):
            r = d.invoke("fn", {"sleep": 1.2})
            assert r.function_error is None and r.json() == "slept"


def test_exit_during_invoke_is_runtime_exit_error_then_recovers(behave_fn):
    with run_server(fn_args(behave_fn)) as d:
        r = d.invoke("fn", {"exit": 3})
        rid = r.headers["x-amzn-requestid"]
        assert r.function_error == "Unhandled"
        assert r.json() == {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"RequestId: {rid} Error: Runtime exited with error: exit status 3",
        }
        assert "\tStatus: error\tError Type: Runtime.ExitError\t" in d.wait_for_line(f"REPORT RequestId: {rid}")
        r = d.invoke("fn", {"exit": 0})
        assert r.json()["errorMessage"].endswith("Error: Runtime exited without providing a reason")
        r = d.invoke("fn", {"kill": True})
        assert r.json()["errorMessage"].endswith("Error: Runtime exited with error: signal: killed")
        assert d.invoke("fn", {"echo": "back"}).json() == "back"


def test_function_error_passes_the_runtime_body(behave_fn):
    with run_server(fn_args(behave_fn)) as d:
        r = d.invoke("fn", {"error": "MyError"})
        assert r.status == 200
        assert r.function_error == "Unhandled"
        assert r.json() == {"errorMessage": "boom", "errorType": "MyError"}
        # The instance stays warm after a handled error.
        assert d.invoke("fn", {"echo": 1}).json() == 1


def test_init_error_answers_body_and_retries_inside_next_invoke(behave_fn):
    with run_server(fn_args(behave_fn, "--env", "INIT_FAIL=1")) as d:
        r = d.invoke("fn", {"echo": 1})
        assert r.status == 200
        assert r.function_error == "Unhandled"
        assert r.json() == {"errorMessage": "bad init", "errorType": "Runtime.ImportModuleError"}
        rid = r.headers["x-amzn-requestid"]
        d.wait_for_line(f"REPORT RequestId: {rid}")
        inits = [line for line in d.lines if "INIT_REPORT" in line]
        # As on Lambda: the init phase failed, then init was retried inside the invoke.
        assert "Phase: init\tStatus: error\tError Type: Runtime.ImportModuleError" in inits[0]
        assert "Phase: invoke\tStatus: error\tError Type: Runtime.ImportModuleError" in inits[1]
        assert len(inits) == 2
        # No restart loop: nothing starts again until the next invoke (checked without a
        # clock in tests/unit/test_instance_lifecycle.py).
        wait_until(lambda: d.runtime_pids() == [], 10, "the failed runtime to go")
        r = d.invoke("fn", {"echo": 1})
        assert r.json()["errorType"] == "Runtime.ImportModuleError"
        d.wait_for_line(f"REPORT RequestId: {r.headers['x-amzn-requestid']}")
        inits = [line for line in d.lines if "INIT_REPORT" in line]
        assert len(inits) == 3 and "Phase: invoke" in inits[2]


def test_exit_before_first_next_is_an_init_failure(tmp_path):
    from tests.daemon import make_function

    folder = make_function(tmp_path / "f", "#!/bin/sh\necho dying\nexit 7\n")
    with run_server(fn_args(folder)) as d:
        r = d.invoke("fn", {})
        rid = r.headers["x-amzn-requestid"]
        assert r.function_error == "Unhandled"
        assert r.json() == {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"RequestId: {rid} Error: Runtime exited with error: exit status 7",
        }


def test_init_timeout_then_suppressed_init_on_the_invoke(behave_fn):
    # The init limit is 10 s as on Lambda; a test may shorten it.
    with run_server(fn_args(behave_fn, "--env", "INIT_HANG=1", "--timeout", "1"),
                    env={"RAPID_INIT_TIMEOUT": "1"}) as d:
        r = d.invoke("fn", {"echo": 1})
        assert r.function_error == "Unhandled"
        assert r.json()["errorType"] == "Sandbox.Timedout"
        assert "\tStatus: timeout" in d.wait_for_line(f"REPORT RequestId: {r.headers['x-amzn-requestid']}")
        inits = [line for line in d.lines if "INIT_REPORT" in line]
        assert "Phase: init\tStatus: timeout" in inits[0]
        assert "Phase: invoke\tStatus: timeout" in inits[1]


def test_missing_bootstrap_is_invalid_entrypoint(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with run_server(fn_args(folder)) as d:
        r = d.invoke("fn", {})
        assert r.status == 200 and r.function_error == "Unhandled"
        body = r.json()
        assert body["errorType"] == "Runtime.InvalidEntrypoint"
        assert f"Couldn't find valid bootstrap(s): [{folder}/bootstrap]" in body["errorMessage"]
        # The daemon keeps serving.
        assert d.invoke("fn", {}).json()["errorType"] == "Runtime.InvalidEntrypoint"


def test_non_executable_bootstrap_is_invalid_entrypoint(tmp_path):
    from tests.daemon import ECHO, make_function

    folder = make_function(tmp_path / "f", ECHO)
    (folder / "bootstrap").chmod(0o644)
    with run_server(fn_args(folder)) as d:
        assert d.invoke("fn", {}).json()["errorType"] == "Runtime.InvalidEntrypoint"


def test_environment_of_the_contract(behave_fn, tmp_path):
    with run_server(fn_args(behave_fn, "--env", "WITH_EQUALS=a=b=c", "--env", "PLAIN=x", "--memory", "256")) as d:
        def env(name):
            return d.invoke("fn", {"env": name}).json()

        assert env("WITH_EQUALS") == "a=b=c"
        assert env("PLAIN") == "x"
        assert env("TZ") == ":UTC"
        assert env("LANG") == "en_US.UTF-8"
        assert env("_HANDLER") == ""
        assert env("LAMBDA_TASK_ROOT") == str(behave_fn)
        assert env("AWS_LAMBDA_FUNCTION_NAME") == "fn"
        assert env("AWS_LAMBDA_FUNCTION_VERSION") == "$LATEST"
        assert env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") == "256"
        assert env("AWS_LAMBDA_LOG_GROUP_NAME") == "/aws/lambda/fn"
        assert "/[$LATEST]" in env("AWS_LAMBDA_LOG_STREAM_NAME")
        assert env("AWS_LAMBDA_INITIALIZATION_TYPE") == "on-demand"
        assert env("AWS_REGION") == "us-east-1" and env("AWS_DEFAULT_REGION") == "us-east-1"
        assert "/opt/bin" in env("PATH")
        assert "/opt/lib" in env("LD_LIBRARY_PATH")
        api = env("AWS_LAMBDA_RUNTIME_API")
        assert api.startswith("127.0.0.1:") and api != f"127.0.0.1:{d.port}"
        tmpdir = env("TMPDIR")
        # Which one is the machine's (probed, not read from the daemon): both are private;
        # tests/test_isolation.py checks each mode's privacy and removal.
        if has("mount_namespace"):
            assert tmpdir == "/tmp"  # its own tmpfs, in its own mount namespace
        else:
            assert os.path.isdir(tmpdir) and tmpdir != "/tmp"
        assert d.invoke("fn", {"env": "RAPID_NOT_SET_ANYWHERE"}).json() is None


def test_working_directory_is_the_task_root(tmp_path):
    from tests.daemon import make_function

    need("curl")
    folder = make_function(tmp_path / "f", BOOT_PWD)
    with run_server(fn_args(folder)) as d:
        assert d.invoke("fn", {}).json() == str(folder)


BOOT_PWD = """#!/bin/bash
while true; do
  HEADERS=$(mktemp)
  curl -sS -D "$HEADERS" -o /dev/null "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/next"
  ID=$(grep -i Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  curl -sS -o /dev/null -X POST "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/$ID/response" -d "\\"$(pwd)\\""
done
"""


def test_remaining_time_deadline_header(behave_fn):
    with run_server(fn_args(behave_fn, "--timeout", "7")) as d:
        before = time.time() * 1000
        headers = d.invoke("fn", {"headers": True}).json()
        deadline = int(headers["Lambda-Runtime-Deadline-Ms"])
        assert before + 6000 < deadline <= time.time() * 1000 + 7000
        assert headers["Lambda-Runtime-Trace-Id"].startswith("Root=1-")
        assert headers["Lambda-Runtime-Invoked-Function-Arn"] == "arn:aws:lambda:us-east-1:000000000000:function:fn"
        assert headers["Content-Type"] == "application/json"


def test_report_shows_measured_memory_not_the_configured_size(behave_fn):
    with run_server(fn_args(behave_fn, "--memory", "512")) as d:
        # A Python runtime's own footprint counts too (what it touched before it joined its
        # memory cgroup included): a few MB would be a measurement that missed it.
        first = d.invoke("fn", {"echo": 1}).headers["x-amzn-requestid"]
        line = d.wait_for_line(f"REPORT RequestId: {first}")
        assert int(line.split("Max Memory Used: ")[1].split()[0]) >= 8
        r = d.invoke("fn", {"alloc": 64})
        rid = r.headers["x-amzn-requestid"]
        report = d.wait_for_line(f"REPORT RequestId: {rid}")
        fields = dict(f.split(": ", 1) for f in report.split("\t") if ": " in f)
        used = int(fields["Max Memory Used"].split()[0])
        assert fields["Memory Size"] == "512 MB"
        assert 64 < used < 512


def test_output_lines_come_between_start_and_end(behave_fn):
    with run_server(fn_args(behave_fn)) as d:
        r = d.invoke("fn", {"print": "hello from the handler"})
        rid = r.headers["x-amzn-requestid"]
        d.wait_for_line(f"REPORT RequestId: {rid}")
        lines = [line.removeprefix("[fn] ") for line in d.lines]
        start = lines.index(f"START RequestId: {rid} Version: $LATEST")
        end = lines.index(f"END RequestId: {rid}")
        assert "hello from the handler" in lines[start:end]


def test_log_tail(behave_fn):
    with run_server(fn_args(behave_fn)) as d:
        r = d.invoke("fn", {"print": "tail me"}, headers={"X-Amz-Log-Type": "Tail"})
        rid = r.headers["x-amzn-requestid"]
        tail = r.log_tail
        assert f"START RequestId: {rid} Version: $LATEST" in tail
        assert "tail me" in tail
        assert f"END RequestId: {rid}" in tail
        assert f"REPORT RequestId: {rid}\tDuration: " in tail
        big = d.invoke("fn", {"print": "y" * 10000}, headers={"X-Amz-Log-Type": "Tail"})
        import base64

        assert len(base64.b64decode(big.headers["x-amz-log-result"])) == 4096
        assert "x-amz-log-result" not in d.invoke("fn", {"echo": 1}).headers


def test_sigterm_stops_cleanly_and_leaves_no_process(behave_fn):
    with run_server(fn_args(behave_fn)) as d:
        pid = d.invoke("fn", {"pid": True}).json()
        assert pid in d.runtime_pids()
        assert d.stop(signal.SIGTERM) == 0
    # run_server asserted that no process with this daemon's HOME survived.


def test_sigint_too(behave_fn):
    with run_server(fn_args(behave_fn)) as d:
        d.invoke("fn", {"pid": True})
        assert d.stop(signal.SIGINT) == 0


def test_sigkill_of_the_daemon_takes_the_runtimes_with_it(behave_fn):
    from tests.daemon import assert_no_leaks

    with run_server(fn_args(behave_fn), check_leaks=False, expect_exit=None) as d:
        pid = d.invoke("fn", {"pid": True}).json()
        d.proc.kill()
        d.proc.wait()
        assert_no_leaks(d.home)  # the runtime (pid) is gone: the guardian killed its group
        assert pid not in d.runtime_pids()


def test_children_forked_by_the_runtime_die_with_it(tmp_path):
    from tests.daemon import BEHAVE, make_function

    # The bootstrap forks a long-lived child before serving; a timeout kills the group.
    boot = BEHAVE.replace("keep = []", "keep = []\nimport subprocess\nsubprocess.Popen(['sleep', '1000'])")
    folder = make_function(tmp_path / "f", boot)
    with run_server(fn_args(folder, "--timeout", "1")) as d:
        d.invoke("fn", {"echo": 1})
        assert len(d.runtime_pids()) == 2
        d.invoke("fn", {"sleep": 5})
        wait_until(lambda: d.runtime_pids() == [], 10, "the runtime and its child to go")


def test_concurrent_invokes_each_get_their_own_answer(behave_fn):
    import threading

    with run_server(fn_args(behave_fn)) as d:
        d.invoke("fn", {"echo": 0})
        results = {}

        def call(i):
            results[i] = d.invoke("fn", {"echo": i}).json()

        threads = [threading.Thread(target=call, args=(i,)) for i in range(1, 21)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == {i: i for i in range(1, 21)}
        # The log stream is read on its own thread: it may trail the answers a little.
        wait_until(lambda: len([line for line in d.lines if "REPORT RequestId" in line]) == 21, 10, "21 REPORTs")
        starts = [line for line in d.lines if " START RequestId" in line]
        assert len(starts) == 21
        # The pool grew to meet the burst, never past one instance per concurrent invoke.
        assert 1 <= len(d.runtime_pids()) <= 20


TRAILER_BOOT = """#!{python}
# Answers like the Go client whose io.Reader failed: a chunked /response with error trailers.
import base64, http.client, json, os, socket
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse(); r.read()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    err = base64.b64encode(json.dumps({"errorType": "ReaderError", "errorMessage": "read failed"}).encode())
    s = socket.create_connection((host, int(port)))
    s.sendall(("POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\\r\\nHost: x\\r\\n"
               "Transfer-Encoding: chunked\\r\\n"
               "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\\r\\n\\r\\n"
               "5\\r\\npartl\\r\\n0\\r\\nLambda-Runtime-Function-Error-Type: Function.ReaderError\\r\\n"
               "Lambda-Runtime-Function-Error-Body: %s\\r\\n\\r\\n" % (rid, err.decode())).encode())
    s.recv(1000)
    s.close()
"""


def test_error_trailers_make_a_function_error(tmp_path):
    import sys

    from tests.daemon import make_function

    folder = make_function(tmp_path / "f", TRAILER_BOOT.replace("{python}", sys.executable))
    with run_server(fn_args(folder)) as d:
        r = d.invoke("fn", {})
        assert r.status == 200 and r.function_error == "Unhandled"
        assert r.json() == {"errorType": "ReaderError", "errorMessage": "read failed"}
        rid = r.headers["x-amzn-requestid"]
        assert "Error Type: Function.ReaderError" in d.wait_for_line(f"REPORT RequestId: {rid}")


def test_the_daemon_writes_nothing_into_its_working_directory(behave_fn, tmp_path):
    import signal as sig

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    with run_server(fn_args(behave_fn), cwd=cwd, check_leaks=False, expect_exit=None) as d:
        d.invoke("fn", {"echo": 1})
        children = _children(d.proc.pid)  # the guardian among them
        d.proc.send_signal(sig.SIGKILL)  # the guardian cleans up after a killed daemon too
        d.proc.wait()
        from tests.daemon import assert_no_leaks

        assert_no_leaks(d.home)
    wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in children), 10, "the guardian to finish")
    assert list(cwd.iterdir()) == []


def _children(pid):
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            out += [int(x) for x in f.read().split()]
    return out
