"""Isolation of instances: private /tmp, own uid, read-only code, Runtime API identity,
memory limits, rlimits.

What a test needs from the machine is probed by ``tests.capabilities`` (not read from the
daemon's own start-up line): missing, the test skips on a developer machine and fails in CI.
Every privacy check is deterministic: a second instance is made to exist by holding the
first one busy (``{"wait_for": path}``) until the check is done."""

import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.capabilities import cgroup_of, exercised, need
from tests.daemon import BEHAVE_SYSTEM, SYSTEM_PYTHON, make_function, run_cli, run_server, wait_until


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


class Held:
    """An invoke that keeps its instance busy until ``release()``: while it runs, the next
    invoke of the function must start (or use) another instance."""

    def __init__(self, d, name, folder):
        self.flag = folder / f"release-{time.monotonic_ns()}"
        self.reply = None
        self._thread = threading.Thread(target=self._run, args=(d, name))
        self._thread.start()
        # The daemon's own view, not its log: a START line read late from the pipe may be the
        # previous invoke's, and the next invoke would then find the first instance idle.
        wait_until(lambda: _busy(d, name), 20, "the held invoke to start")

    def _run(self, d, name):
        self.reply = d.invoke(name, {"wait_for": str(self.flag)}, timeout=90)

    def release(self):
        self.flag.touch()
        self._thread.join()
        assert self.reply is not None and self.reply.json() == "released"


def _busy(d, name):
    """Whether an instance of ``name`` is running an invocation (the dashboard's host view)."""
    view = d.request("GET", "/_rapid/api/host").json()
    return any(inst["state"] == "busy" for fn in view["functions"] if fn["name"] == name
               for inst in fn["instances"])


def isolation_line(d):
    return next(line for line in d.stderr if "isolation:" in line)


@pytest.fixture
def sys_fn(tmp_path):
    return make_function(tmp_path / "sysfn", BEHAVE_SYSTEM)


@pytest.fixture
def public_sys_fn(public_dir):
    """The system-Python runtime in a folder any uid can reach, without a mount namespace."""
    return make_function(public_dir / "sysfn", BEHAVE_SYSTEM)


# -- private /tmp: a mount namespace --------------------------------------------------------


def test_namespace_tmp_survives_warm_invokes_and_is_private(behave_fn):
    need("root", "mount_namespace")
    with run_server(["--function", f"fn={behave_fn}", "--timeout", "60"], env={"RAPID_PRIVATE_TMP": "namespace"}) as d:
        assert "private tmpfs per instance" in isolation_line(d)
        assert d.invoke("fn", {"env": "TMPDIR"}).json() == "/tmp"
        assert d.invoke("fn", {"write": "/tmp/mine", "data": "secret"}).json() is True
        assert d.invoke("fn", {"read": "/tmp/mine"}).json() == "secret"  # warm: still there
        assert not os.path.exists("/tmp/mine")  # not the host's /tmp
        # The writer is held busy: the read runs on a second instance, with its own /tmp.
        held = Held(d, "fn", behave_fn)
        assert d.invoke("fn", {"read": "/tmp/mine"}).json() == "FileNotFoundError"
        held.release()
    exercised("namespace /tmp")


def test_namespace_tmp_goes_with_the_instance(behave_fn):
    need("root", "mount_namespace")
    # One instance at most: the read after the timeout runs on its replacement.
    args = ["--function", f"fn={behave_fn}", "--timeout", "1", "--concurrency", "1"]
    with run_server(args, env={"RAPID_PRIVATE_TMP": "namespace"}) as d:
        first = d.invoke("fn", {"pid": True}).json()
        assert d.invoke("fn", {"write": "/tmp/mine", "data": "secret"}).json() is True
        assert d.invoke("fn", {"sleep": 5}).json()["errorType"] == "Sandbox.Timedout"  # killed
        assert d.invoke("fn", {"read": "/tmp/mine"}).json() == "FileNotFoundError"
        assert d.invoke("fn", {"pid": True}).json() != first


def test_tmp_is_capped_at_the_ephemeral_storage(behave_fn, tmp_path):
    need("root", "mount_namespace")
    toml = tmp_path / "rapid.toml"
    toml.write_text(f'[functions.fn]\npath = "{behave_fn}"\ntimeout = 30\nephemeral_storage = 512\nmemory = 2048\n')
    with run_server(["--config", str(toml)]) as d:
        assert d.invoke("fn", {"fill": 100}).json() == 100
        assert d.invoke("fn", {"fill": 600}).json() == "OSError"  # ENOSPC at 512 MB


def test_instances_run_as_their_own_unprivileged_users(sys_fn):
    need("root", "mount_namespace", "system_python")
    with run_server(["--function", f"fn={sys_fn}", "--timeout", "60"]) as d:
        assert "runtimes run as uids" in isolation_line(d)
        a_uid, a_gid = d.invoke("fn", {"id": True}).json()
        a_pid = d.invoke("fn", {"pid": True}).json()
        held = Held(d, "fn", sys_fn)  # instance A busy: what follows runs on instance B
        b_uid, b_gid = d.invoke("fn", {"id": True}).json()
        b_pid = d.invoke("fn", {"pid": True}).json()
        assert a_pid != b_pid
        for uid, gid in ((a_uid, a_gid), (b_uid, b_gid)):
            assert uid >= 990000 and gid == uid
        assert a_uid != b_uid  # one uid per instance
        assert os.stat(f"/proc/{a_pid}").st_uid == a_uid and os.stat(f"/proc/{b_pid}").st_uid == b_uid
        # One instance cannot signal the other's process.
        assert d.invoke("fn", {"signal": a_pid}).json() == "PermissionError"
        # The code is read-only to it.
        assert d.invoke("fn", {"write": str(sys_fn / "x"), "data": "y"}).json() in ("OSError", "PermissionError")
        held.release()
    assert not (sys_fn / "x").exists()
    exercised("uid drop")


def test_a_runtime_others_cannot_reach_keeps_root_with_a_warning(public_dir):
    need("root")
    folder = make_function(public_dir / "closed", BEHAVE_SYSTEM.replace("/usr/bin/python3", sys.executable, 1))
    folder.chmod(0o700)  # no other uid may enter the task root
    with run_server(["--function", f"fn={folder}"]) as d:
        assert any(f"function 'fn' runs as root: {folder}" in line for line in d.stderr), d.stderr
        assert d.invoke("fn", {"id": True}).json() == [0, 0]


# Root without CAP_SYS_ADMIN (a container's root, say): no mount namespace.
NO_SYS_ADMIN = ("setpriv", "--bounding-set", "-sys_admin", "--inh-caps", "-sys_admin", "--")


def test_without_cap_sys_admin_tmp_is_a_directory_and_namespace_mode_refuses_to_start(behave_fn):
    need("root", "setpriv")
    with run_server(["--function", f"fn={behave_fn}"], wrapper=NO_SYS_ADMIN) as d:
        assert "private TMPDIR per instance" in isolation_line(d)  # auto: the fallback
        tmpdir = d.invoke("fn", {"env": "TMPDIR"}).json()
        assert tmpdir != "/tmp" and os.path.isdir(tmpdir)
    r = run_cli(["serve", "--function", f"fn={behave_fn}"], env={"RAPID_PRIVATE_TMP": "namespace"}, wrap=NO_SYS_ADMIN)
    assert r.returncode == 2
    assert "private_tmp = 'namespace' needs CAP_SYS_ADMIN" in r.stderr


def test_an_interpreter_others_cannot_execute_keeps_root_with_a_warning(public_dir, closed_python):
    # The bootstrap is readable by all, but its interpreter (named with an argument, as
    # `#!/path/python3 -u`) lives in a folder only root may enter.
    folder = make_function(public_dir / "fn", BEHAVE_SYSTEM.replace(SYSTEM_PYTHON, f"{closed_python} -u", 1))
    with run_server(["--function", f"fn={folder}"]) as d:
        assert any(f"function 'fn' runs as root: {closed_python.parent} is not reachable" in line
                   for line in d.stderr), d.stderr
        assert d.invoke("fn", {"id": True}).json() == [0, 0]


@pytest.fixture
def closed_python():
    """A copy of the system Python in a folder only root may enter, outside /tmp."""
    need("root", "system_python")
    closed = Path(tempfile.mkdtemp(prefix="rapid-test-closed-", dir="/var/tmp"))
    closed.chmod(0o700)
    shutil.copy2(os.path.realpath(SYSTEM_PYTHON), closed / "python3")
    yield closed / "python3"
    shutil.rmtree(closed, ignore_errors=True)


def test_an_interpreter_found_through_env_is_checked_too(public_dir, closed_python):
    # `#!/usr/bin/env python3`: the interpreter is whichever python3 PATH finds first.
    folder = make_function(public_dir / "fn", BEHAVE_SYSTEM.replace(SYSTEM_PYTHON, "/usr/bin/env python3", 1))
    path = f"{closed_python.parent}:{os.environ['PATH']}"
    with run_server(["--function", f"fn={folder}"], env={"PATH": path}) as d:
        assert any(f"function 'fn' runs as root: {closed_python.parent} is not reachable" in line
                   for line in d.stderr), d.stderr
        assert d.invoke("fn", {"id": True}).json() == [0, 0]


def test_a_task_root_others_cannot_list_keeps_root(public_dir):
    # Others may enter it (x) but not read it (r): a runtime must list its task root.
    need("root", "system_python")
    folder = make_function(public_dir / "fn", BEHAVE_SYSTEM)
    folder.chmod(0o711)
    with run_server(["--function", f"fn={folder}"]) as d:
        assert any(f"function 'fn' runs as root: {folder} is not reachable" in line for line in d.stderr), d.stderr
        assert d.invoke("fn", {"id": True}).json() == [0, 0]


def test_the_task_root_is_read_only_in_the_namespace_wherever_it_lives(behave_fn):
    # Outside /tmp too (pytest's tmp_path is under /tmp, bound in by another path).
    need("root", "mount_namespace")
    folder = Path(tempfile.mkdtemp(prefix="rapid-test-task-", dir="/var/tmp"))
    try:
        folder.chmod(0o755)
        make_function(folder, (behave_fn / "bootstrap").read_text())
        with run_server(["--function", f"fn={folder}"], env={"RAPID_PRIVATE_TMP": "namespace"}) as d:
            assert d.invoke("fn", {"id": True}).json()[0] == 0  # root: only the mount stops it
            assert d.invoke("fn", {"write": str(folder / "x"), "data": "y"}).json() == "OSError"
            assert d.invoke("fn", {"read": str(folder / "bootstrap")}).json().startswith("#!")
        assert not (folder / "x").exists()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_rapid_nests_its_cgroups_under_its_own(behave_fn):
    # So the limits of whatever runs the daemon (a container, a systemd unit) still apply.
    need("root", "memory_cgroup")
    with run_server(["--function", f"fn={behave_fn}"]) as d:
        pid = d.invoke("fn", {"pid": True}).json()
        folder = wait_until(lambda: rapid_cgroup(pid, "memory"), 10, "the runtime to join its memory cgroup")
        daemon_own = cgroup_of(d.proc.pid, "memory")
        assert os.path.dirname(folder) == os.path.join(daemon_own, f"rapid-{d.proc.pid}")


def test_a_script_named_on_the_command_line_must_be_readable_by_others(closed_python):
    # Drop-in mode, `-- /usr/bin/python3 /closed/boot.py`: the interpreter is fine, the
    # script it must read is not.
    script = closed_python.parent / "boot.py"
    script.write_text(BEHAVE_SYSTEM)
    script.chmod(0o644)
    with run_server(["--", SYSTEM_PYTHON, str(script)]) as d:
        assert any(f"function 'function' runs as root: {closed_python.parent} is not reachable" in line
                   for line in d.stderr), d.stderr
        assert d.invoke("function", {"id": True}).json() == [0, 0]


def test_drop_privileges_and_memory_limit_can_be_turned_off(public_sys_fn, tmp_path):
    need("root", "system_python")
    toml = tmp_path / "rapid.toml"
    toml.write_text(f'drop_privileges = "off"\nmemory_limit = "off"\n'
                    f'[functions.fn]\npath = "{public_sys_fn}"\nmemory = 128\ntimeout = 20\n')
    with run_server(["--config", str(toml)]) as d:
        line = isolation_line(d)
        assert "runtimes run as the daemon's user" in line and "memory off" in line
        assert d.invoke("fn", {"id": True}).json() == [0, 0]
        assert d.invoke("fn", {"alloc": 300}).json() == "allocated"  # over its 128 MB, and kept


# -- private TMPDIR: a directory per instance -------------------------------------------------


def test_directory_tmpdir_is_its_own_per_instance(behave_fn):
    with run_server(["--function", f"fn={behave_fn}", "--timeout", "60"], env={"RAPID_PRIVATE_TMP": "directory"}) as d:
        assert "private TMPDIR per instance" in isolation_line(d)
        a = d.invoke("fn", {"env": "TMPDIR"}).json()
        assert a != "/tmp" and os.path.isdir(a)
        assert os.stat(a).st_mode & 0o777 == 0o700
        assert d.invoke("fn", {"write": "$TMPDIR/mine", "data": "secret"}).json() is True
        assert d.invoke("fn", {"read": "$TMPDIR/mine"}).json() == "secret"  # warm: still there
        held = Held(d, "fn", behave_fn)  # A busy: the next invokes run on instance B
        b = d.invoke("fn", {"env": "TMPDIR"}).json()
        assert b != a and os.path.isdir(b)
        assert d.invoke("fn", {"read": "$TMPDIR/mine"}).json() == "FileNotFoundError"
        held.release()
    exercised("directory TMPDIR")


def test_directory_tmpdir_is_private_when_the_daemon_is_root(public_sys_fn):
    # Without a mount namespace a TMPDIR is a host folder: only its owner's uid keeps the
    # other instances out, so each instance has its folder and its uid.
    need("root", "system_python")
    args = ["--function", f"fn={public_sys_fn}", "--timeout", "60"]
    with run_server(args, env={"RAPID_PRIVATE_TMP": "directory"}) as d:
        line = isolation_line(d)
        assert "private TMPDIR per instance" in line and "runtimes run as uids" in line
        assert not any("runs as root" in text for text in d.stderr), d.stderr
        a_tmp = d.invoke("fn", {"env": "TMPDIR"}).json()
        a_uid = d.invoke("fn", {"id": True}).json()[0]
        assert d.invoke("fn", {"write": "$TMPDIR/mine", "data": "secret"}).json() is True
        info = os.stat(a_tmp)
        assert (info.st_uid, info.st_mode & 0o777) == (a_uid, 0o700)
        held = Held(d, "fn", public_sys_fn)
        b_tmp = d.invoke("fn", {"env": "TMPDIR"}).json()
        b_uid = d.invoke("fn", {"id": True}).json()[0]
        assert b_tmp != a_tmp and b_uid != a_uid and b_uid != 0
        assert d.invoke("fn", {"read": a_tmp + "/mine"}).json() == "PermissionError"
        assert d.invoke("fn", {"write": a_tmp + "/theirs", "data": "x"}).json() == "PermissionError"
        held.release()
    exercised("directory TMPDIR")
    exercised("uid drop")


@pytest.mark.parametrize("how", ["crash", "timeout", "idle timeout"])
def test_directory_tmpdir_is_removed_when_its_instance_goes(behave_fn, how):
    # Looked at while the daemon still runs (at exit the whole parent folder goes anyway).
    env = {"RAPID_PRIVATE_TMP": "directory"}
    if how == "idle timeout":
        env["RAPID_IDLE_TIMEOUT"] = "0.5"
    with run_server(["--function", f"fn={behave_fn}", "--timeout", "1"], env=env) as d:
        tmpdir = d.invoke("fn", {"env": "TMPDIR"}).json()
        assert d.invoke("fn", {"write": "$TMPDIR/mine", "data": "x"}).json() is True
        assert os.path.isfile(os.path.join(tmpdir, "mine"))
        if how == "crash":
            assert d.invoke("fn", {"exit": 1}).json()["errorType"] == "Runtime.ExitError"
        elif how == "timeout":
            assert d.invoke("fn", {"sleep": 5}).json()["errorType"] == "Sandbox.Timedout"
        wait_until(lambda: not os.path.exists(tmpdir), 10, f"{tmpdir} to be removed")
        assert d.proc.poll() is None  # the daemon is still running
        fresh = d.invoke("fn", {"env": "TMPDIR"}).json()
        assert fresh != tmpdir and os.path.isdir(fresh)
    exercised("directory TMPDIR")


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


def test_memory_limit_is_on_by_default_and_kills_the_instance(behave_fn, tmp_path):
    need("root", "memory_cgroup")
    toml = tmp_path / "rapid.toml"  # no memory_limit key: the default applies
    toml.write_text(f'[functions.fn]\npath = "{behave_fn}"\nmemory = 128\ntimeout = 20\n')
    with run_server(["--config", str(toml)]) as d:
        assert "memory cgroup limit" in isolation_line(d)
        pid = d.invoke("fn", {"pid": True}).json()
        # The kernel holds the limit: read it from the runtime's own cgroup.
        folder = wait_until(lambda: rapid_cgroup(pid, "memory"), 10, "the runtime to join its memory cgroup")
        assert read_first(folder, "memory.max", "memory.limit_in_bytes") == str(128 * 1024 * 1024)
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
    exercised("cgroup memory")


def test_an_instances_cgroups_are_removed_when_it_goes(behave_fn):
    need("root", "memory_cgroup", "freezer_cgroup")
    env = {"RAPID_FREEZE_WITH": "cgroup"}
    with run_server(["--function", f"fn={behave_fn}"], env=env) as d:
        pid = d.invoke("fn", {"pid": True}).json()
        folders = {c: wait_until(lambda c=c: rapid_cgroup(pid, c), 10, f"the runtime to join its {c} cgroup")
                   for c in ("memory", "freezer")}
        assert d.invoke("fn", {"exit": 1}).json()["errorType"] == "Runtime.ExitError"
        for controller, folder in folders.items():
            wait_until(lambda f=folder: not os.path.exists(f), 10, f"its {controller} cgroup to be removed")
        assert d.proc.poll() is None  # while the daemon still runs
        fresh = d.invoke("fn", {"pid": True}).json()
        joined = wait_until(lambda: rapid_cgroup(fresh, "memory"), 10, "the new runtime to join its memory cgroup")
        assert joined != folders["memory"]


def rapid_cgroup(pid, controller):
    """The folder of ``pid``'s cgroup for ``controller`` if it is one of rapid's, else None."""
    folder = cgroup_of(pid, controller)
    return folder if folder and "/rapid-" in folder else None


def read_first(folder, *names):
    for name in names:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            with open(path) as f:
                return f.read().strip()
    raise AssertionError(f"none of {names} in {folder}")


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
    exercised("RSS watchdog")


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
# Asks for /next on two connections at once: one gets the event, the other must be refused
# (whichever the daemon read first). It answers the event with what the other was told.
import http.client, json, os
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conns = [http.client.HTTPConnection(host, int(port)) for _ in range(2)]
for c in conns:
    c.request("GET", "/2018-06-01/runtime/invocation/next")
replies = []
for c in conns:
    r = c.getresponse()
    replies.append((c, r, r.read()))
(c, r, _), = [x for x in replies if x[1].status == 200]
refused = [[x[1].status, json.loads(x[2])["errorType"]] for x in replies if x[1].status != 200]
rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
c.request("POST", "/2018-06-01/runtime/invocation/" + rid + "/response", json.dumps(refused))
c.getresponse().read()
import time; time.sleep(60)
"""


def test_a_runtime_holding_next_twice_is_refused_the_second(tmp_path):
    folder = make_function(tmp_path / "f", HOLD_TWICE.replace("{python}", sys.executable))
    with run_server(["--function", f"f={folder}", "--timeout", "5"], env={"RAPID_FREEZE": "false"}) as d:
        assert d.invoke("f", {}).json() == [[403, "InvalidStateTransition"]]
