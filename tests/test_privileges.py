"""No runtime ever gains a privilege: setuid files from ZIPs, the host's setuid binaries,
capabilities, and the mounts of its code (issue 8, part 1).

These need a root daemon (only then do instances run under their own uids). Off CI they
skip without one; in CI (CI=true, always root) they run.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

import pytest

from tests.daemon import SYSTEM_PYTHON, run_server

pytestmark = pytest.mark.skipif(
    (os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK)) and not os.environ.get("CI"),
    reason="needs root and /usr/bin/python3 (instances under their own uids)",
)

# A custom runtime on the system's Python. The event is {"run": [argv...]} (answers the
# command's stdout and exit status), {"status": true} (its /proc/self/status as a dict),
# or {"mounts": true} (/proc/self/mountinfo lines).
PROBE = """#!/usr/bin/python3
import http.client, json, os, subprocess
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    event = json.loads(r.read())
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    if "run" in event:
        p = subprocess.run(event["run"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        out = {"stdout": p.stdout.strip(), "stderr": p.stderr.strip(), "rc": p.returncode}
    elif "status" in event:
        out = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
        out = {k: v.strip() for k, v in out.items()}
    elif "mounts" in event:
        out = open("/proc/self/mountinfo").read().splitlines()
    else:
        out = {"uid": os.getuid(), "euid": os.geteuid()}
    conn.request("POST", "/2018-06-01/runtime/invocation/" + rid + "/response", json.dumps(out))
    conn.getresponse().read()
"""


def _zip_with_setuid_id(path: Path) -> Path:
    """bootstrap + a copy of /usr/bin/id stored with mode 04755 (setuid root once unpacked
    by root, were the bit kept)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in (
            ("bootstrap", PROBE.encode(), 0o755),
            ("id", Path("/usr/bin/id").read_bytes(), 0o4755),
        ):
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.create_system = 3
            zf.writestr(info, data)
    return path


@pytest.fixture
def setuid_id_on_host():
    """A setuid-root copy of `id` on a filesystem mounted without nosuid (/var/tmp), as a
    host binary like su or passwd is."""
    folder = tempfile.mkdtemp(prefix="rapid-setuid-", dir="/var/tmp")
    os.chmod(folder, 0o755)
    copy = os.path.join(folder, "id")
    shutil.copy("/usr/bin/id", copy)
    os.chown(copy, 0, 0)
    os.chmod(copy, 0o4755)
    try:
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _instance_uid(d) -> int:
    ids = d.invoke("fn", {}).json()
    assert ids["uid"] >= 990000, f"the instance did not run under its own uid: {ids}"
    return ids["uid"]


def test_a_setuid_binary_from_a_zip_runs_as_the_instance_uid(tmp_path):
    archive = _zip_with_setuid_id(tmp_path / "fn.zip")
    with run_server(["--function", f"fn={archive}", "--data-dir", str(tmp_path / "data")]) as d:
        uid = _instance_uid(d)
        out = d.invoke("fn", {"run": ["./id", "-u"]}).json()
        assert out == {"stdout": str(uid), "stderr": "", "rc": 0}
        # On disk the bit is gone, whatever the archive said.
        unpacked = next((tmp_path / "data" / "code").glob("*/id"))
        assert stat.S_IMODE(unpacked.stat().st_mode) == 0o755


def test_a_setuid_binary_of_the_host_gains_nothing(tmp_path, setuid_id_on_host):
    fn = tmp_path / "fn"
    fn.mkdir()
    (fn / "bootstrap").write_text(PROBE)
    (fn / "bootstrap").chmod(0o755)
    with run_server(["--function", f"fn={fn}"]) as d:
        uid = _instance_uid(d)
        out = d.invoke("fn", {"run": [setuid_id_on_host, "-u"]}).json()
        assert out["stdout"] == str(uid), out  # without no_new_privs this says 0
        # The host's own su cannot switch to root either (no password prompt reached as root).
        su = d.invoke("fn", {"run": ["/usr/bin/su", "-c", "id -u", "root"]}).json()
        assert su["stdout"] != "0" and su["rc"] != 0, su


def test_runtimes_have_no_new_privs_and_no_capabilities(tmp_path):
    fn = tmp_path / "fn"
    fn.mkdir()
    (fn / "bootstrap").write_text(PROBE)
    (fn / "bootstrap").chmod(0o755)
    with run_server(["--function", f"fn={fn}"]) as d:
        _instance_uid(d)
        status = d.invoke("fn", {"status": True}).json()
        assert status["NoNewPrivs"] == "1"
        for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(status[field], 16) == 0, (field, status[field])
        # A child it starts inherits all of that.
        child = d.invoke("fn", {"run": ["/usr/bin/grep", "-E", "^(NoNewPrivs|CapBnd)", "/proc/self/status"]}).json()
        assert child["stdout"].split() == ["CapBnd:", "0000000000000000", "NoNewPrivs:", "1"]


def test_code_is_mounted_read_only_nosuid_nodev(tmp_path):
    archive = _zip_with_setuid_id(tmp_path / "fn.zip")
    with run_server(["--function", f"fn={archive}", "--data-dir", str(tmp_path / "data")]) as d:
        status = d.invoke("fn", {"run": ["/usr/bin/pwd"]}).json()
        task_root = status["stdout"]
        mounts = d.invoke("fn", {"mounts": True}).json()
        if not any("private tmpfs per instance" in line for line in d.stderr):
            pytest.skip("no mount namespace on this host: the code folder is not remounted")
        # mountinfo: id parent major:minor root mountpoint options ...
        options = [line.split()[5].split(",") for line in mounts if line.split()[4] == task_root]
        assert options, f"no mount at {task_root}"
        assert {"ro", "nosuid", "nodev"} <= set(options[-1])


def test_a_runtime_installed_by_npm_under_tmp_has_its_node_modules_read_only(tmp_path):
    """A runtime outside the function's folder, under the host's /tmp, as npm installs one
    (node_modules/.bin/x -> ../pkg/bin/x, importing the rest of its package): the private
    /tmp would hide all but its entry script's folder. Its node_modules is bound in,
    read-only; so is a node_modules that the task root links to."""
    install = Path(tempfile.mkdtemp(prefix="rapid-test-install-", dir="/tmp"))
    try:
        install.chmod(0o755)
        modules = install / "node_modules"
        for folder in (modules, modules / ".bin", modules / "pkg", modules / "pkg" / "bin", modules / "pkg" / "lib"):
            folder.mkdir(mode=0o755)
        (modules / "pkg" / "lib" / "probe_impl.py").write_text(PROBE.split("\n", 1)[1])
        entry = modules / "pkg" / "bin" / "runtime"
        entry.write_text(
            "#!/usr/bin/python3\nimport os, sys\n"
            "sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), '..', 'lib'))\n"
            "import probe_impl\n"
        )
        entry.chmod(0o755)
        (modules / ".bin" / "runtime").symlink_to("../pkg/bin/runtime")
        task = tmp_path / "task"
        task.mkdir()
        (task / "node_modules").symlink_to(modules)  # as the npx-style tests link it
        with run_server(["--", str(modules / ".bin" / "runtime")], cwd=task) as d:
            ids = d.invoke("function", {}).json()
            assert "uid" in ids, ids
            if not any("private tmpfs per instance" in line for line in d.stderr):
                return  # no mount namespace here: nothing was hidden
            out = d.invoke("function", {"run": ["/usr/bin/touch", str(modules / "pkg" / "lib" / "x")]}).json()
            assert out["rc"] != 0 and "Read-only file system" in out["stderr"], out
            seen = d.invoke("function", {"run": ["/usr/bin/ls", "node_modules/pkg"]}).json()
            assert seen["stdout"].split() == ["bin", "lib"], seen  # through the task root's link
    finally:
        shutil.rmtree(install, ignore_errors=True)


def test_an_exhausted_uid_range_fails_the_invoke_in_awss_shape(tmp_path):
    """One uid in the range, taken by a busy instance: a second concurrent invoke needs a
    second instance, which cannot get a uid. It is answered (Sandbox.Failure), not hung."""
    import threading

    from tests.daemon import BEHAVE_SYSTEM, make_function, wait_until

    fn = make_function(tmp_path / "fn", BEHAVE_SYSTEM)
    with run_server(["--function", f"fn={fn}", "--timeout", "20"], env={"RAPID_USER_RANGE": "990000-990000"}) as d:
        busy: list[object] = []
        t = threading.Thread(target=lambda: busy.append(d.invoke("fn", {"sleep": 3})))
        t.start()
        wait_until(lambda: any("START RequestId" in line for line in d.lines), 10, "the first invoke running")
        second = d.invoke("fn", {"echo": 1}, timeout=15)
        t.join()
        assert second.status == 200 and second.function_error == "Unhandled", second.body
        assert second.json()["errorType"] == "Sandbox.Failure"
        assert "user_range 990000-990000" in second.json()["errorMessage"]
        assert busy[0].json() == "slept"  # type: ignore[attr-defined]
        assert d.invoke("fn", {"echo": 2}).json() == 2  # the uid is free again: served
