"""SnapStart instances are isolated exactly like ordinary ones (issue 10, item 3): the
template's init runs unprivileged, and every fork sees the same sandbox an ordinary
instance sees. The checks are those of ``test_privileges`` and ``test_isolation``, run
from the template's init code and from forked instances, with a real root daemon and the
system's Python (reachable by every uid, so nothing keeps root)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from tests.capabilities import need
from tests.daemon import SYSTEM_PYTHON, run_server, wait_until

# The bundled runtime's handler module. At import (the init, in the template) it records
# what the init code could do; the handler answers the same probes from the instance.
APP = '''
import json, os, subprocess, time
from snapshot_restore_py import register_after_restore

def probe():
    status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
    root = os.environ["LAMBDA_TASK_ROOT"]
    try:
        open(os.path.join(root, "written"), "w").close()
        wrote = "written"
    except OSError as e:
        wrote = type(e).__name__ + ": " + (e.strerror or "")
    tmp = os.environ.get("TMPDIR") or "/tmp"
    open(os.path.join(tmp, f"mark-{os.getpid()}"), "w").close()
    marks = sorted(n for n in os.listdir(tmp) if n.startswith("mark-"))
    mounts = {}
    for line in open("/proc/self/mountinfo").read().splitlines():
        fields = line.split()
        mounts.setdefault(fields[4], []).append(fields[5].split(","))
    out = {"uid": os.getuid(), "gid": os.getgid(), "pid": os.getpid(), "wrote": wrote, "marks": marks,
           "caps": {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")},
           "code_mount": mounts.get(root, [[]])[-1], "tmp_mount": mounts.get("/tmp", [[]])[-1],
           "opt_mount": mounts.get("/opt", [[]])[-1], "opt": sorted(os.listdir("/opt"))}
    for name, argv in (("setuid_host", [os.environ["SETUID_ID"], "-u"]), ("setuid_zip", [os.path.join(root, "id"), "-u"]),
                       ("su", ["/usr/bin/su", "-c", "id -u", "root"])):
        p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        out[name] = [p.stdout.strip(), p.returncode]
    return out

INIT = probe()

@register_after_restore
def after():
    if os.path.exists(os.environ.get("HANG_FLAG", "/nonexistent")):
        time.sleep(3600)  # an after-restore hook that never returns

def _signal(pid):
    try:
        os.kill(pid, 0)
        return "signalled"
    except OSError as e:
        return type(e).__name__

def handler(event, context):
    if event.get("hold"):  # stay busy (so the next invoke needs another instance) until released
        print("holding", os.getpid(), flush=True)
        deadline = time.monotonic() + 30
        while not os.path.exists(event["hold"]) and time.monotonic() < deadline:
            time.sleep(0.02)
    signals = {str(pid): _signal(pid) for pid in [*event.get("signal", []), INIT["pid"]]}
    return {"init": INIT, "now": probe(), "signals": signals}
'''


# An extension (from a layer, so the function also has /opt): on each INVOKE it records its
# uid and which /tmp marks it sees, in the shared flags folder.
AGENT = """#!/usr/bin/python3
import http.client, json, os, time
conn = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
conn.request("POST", "/2020-01-01/extension/register", json.dumps({"events": ["INVOKE"]}),
             {"Lambda-Extension-Name": "agent"})
r = conn.getresponse()
r.read()
ident = r.getheader("Lambda-Extension-Identifier")
while True:
    conn.request("GET", "/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": ident})
    event = json.loads(conn.getresponse().read())
    deadline = time.monotonic() + 20  # the handler marks /tmp a moment after INVOKE
    while True:
        marks = sorted(n for n in os.listdir(os.environ.get("TMPDIR") or "/tmp") if n.startswith("mark-"))
        if marks or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    with open(os.path.join(os.environ["HANG_FLAG"] + "-" + event["requestId"]), "w") as f:
        json.dump({"uid": os.getuid(), "marks": marks}, f)
"""


def _zip() -> bytes:
    """app.py + a copy of /usr/bin/id stored setuid root (04755), as test_privileges ships it."""
    from tests.control import make_zip

    return make_zip({"app.py": APP, "id": Path("/usr/bin/id").read_bytes()}, {"id": 0o4755})


@pytest.fixture
def setuid_id_on_host():
    """A setuid-root `id` on a filesystem mounted without nosuid, as su or passwd are."""
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


# The system's Python on PATH: a published version of runtime pythonX.Y runs on it (every
# uid can execute it, unlike a pyenv under /root, so nothing keeps root).
_SYSTEM_PATH = {"PATH": "/usr/bin:/bin"}


def _system_runtime() -> str:
    out = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print('python%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _deploy(d, env: dict[str, str], memory: int = 256):  # type: ignore[no-untyped-def]
    """A SnapStart function through the control plane: (boto3 client, invoke(payload) -> body)."""
    from tests.control import ROLE, client, make_zip, wait_active

    lam = client(d)
    layer = lam.publish_layer_version(LayerName="agents", Content={"ZipFile": make_zip(
        {"extensions/agent": AGENT}, {"extensions/agent": 0o755})})
    lam.create_function(FunctionName="snap", Runtime=_system_runtime(), Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": _zip()}, SnapStart={"ApplyOn": "PublishedVersions"}, Timeout=30,
                        MemorySize=memory, Environment={"Variables": env}, Layers=[layer["LayerVersionArn"]])
    wait_active(lam, "snap")
    version = lam.publish_version(FunctionName="snap")["Version"]

    def invoke(payload: dict) -> dict:
        reply = lam.invoke(FunctionName="snap", Qualifier=version, Payload=json.dumps(payload).encode())
        return {"status": reply["StatusCode"], "error": reply.get("FunctionError"),
                "body": json.loads(reply["Payload"].read()), "id": reply["ResponseMetadata"]["RequestId"]}

    return lam, version, invoke


def _check_unprivileged(seen: dict, own_uid: int, mounts: bool = True) -> None:
    """What test_privileges and test_isolation require of any instance, for one probe
    (``mounts``: in a mount namespace, where the code and /opt are remounted)."""
    assert seen["uid"] == own_uid and seen["gid"] == own_uid and own_uid >= 990000, seen
    caps = seen["caps"]
    assert caps["NoNewPrivs"] == "1", caps
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(caps[field], 16) == 0, (field, caps)
    assert seen["wrote"] in ("OSError: Read-only file system", "PermissionError: Permission denied"), seen
    if mounts:
        assert {"ro", "nosuid", "nodev"} <= set(seen["code_mount"]), seen["code_mount"]
        assert {"nosuid", "nodev"} <= set(seen["tmp_mount"]), seen["tmp_mount"]
        assert {"ro", "nosuid", "nodev"} <= set(seen["opt_mount"]) and seen["opt"] == ["extensions"], seen
    # Setuid binaries gain nothing: the ZIP's lost its bit on unpacking, the host's is
    # stopped by no_new_privs; su cannot become root either.
    assert seen["setuid_zip"] == [str(own_uid), 0], seen
    assert seen["setuid_host"] == [str(own_uid), 0], seen
    assert seen["su"][0] != "0" and seen["su"][1] != 0, seen


def _read(path: Path) -> str | None:
    try:
        return path.read_text() or None
    except OSError:
        return None


@pytest.fixture
def flags():
    """A folder every uid sees and may write (outside /tmp, which each instance has privately)."""
    folder = Path(tempfile.mkdtemp(prefix="rapid-test-flags-", dir="/var/tmp"))
    folder.chmod(0o1777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("private_tmp", ["namespace", "directory"])
def test_template_init_and_forks_are_isolated_like_ordinary_instances(private_tmp, tmp_path, public_dir,
                                                                      setuid_id_on_host, flags):
    need("root", "system_python", "user_namespace", *(["mount_namespace"] if private_tmp == "namespace" else []))
    mounts = private_tmp == "namespace"
    release = flags / "release"
    # Without a mount namespace the code must be reachable by every uid: a public data folder.
    data = (tmp_path if mounts else public_dir) / "data"
    with run_server(["--data-dir", str(data)], env={**_SYSTEM_PATH, "RAPID_PRIVATE_TMP": private_tmp}) as d:
        _, _, invoke = _deploy(d, {"SETUID_ID": setuid_id_on_host, "HANG_FLAG": str(flags / "hang")})
        held: list[dict] = []
        first = threading.Thread(target=lambda: held.append(invoke({"hold": str(release)})))
        first.start()  # instance A stays busy until released: the next invoke forks instance B
        line = d.wait_for_line(r"holding \d+", timeout=30)
        a_pid = int(line.split("holding ")[1].split()[0])
        b_reply = invoke({"signal": [a_pid]})
        b = b_reply["body"]
        release.touch()
        first.join()
        a_reply = held[0]
        a = a_reply["body"]
        assert not any("runs as root" in line or "daemon's privileges" in line for line in d.stderr), d.stderr
        init = a["init"]
        assert init == b["init"]  # one init, in the template
        assert a["now"]["pid"] == a_pid != b["now"]["pid"]
        # The template ran the init under its own unprivileged uid, with nothing to gain.
        _check_unprivileged(init, init["uid"], mounts)
        # Each fork: a uid of its own (neither root nor the template's), the same sandbox.
        uids = {init["uid"], a["now"]["uid"], b["now"]["uid"]}
        assert len(uids) == 3 and 0 not in uids, uids
        for fork in (a, b):
            _check_unprivileged(fork["now"], fork["now"]["uid"], mounts)
            assert fork["signals"][str(init["pid"])] == "PermissionError"  # not the template
            assert fork["now"]["marks"] == [f"mark-{fork['now']['pid']}"]  # a /tmp of its own
        assert b["signals"][str(a_pid)] == "PermissionError"  # nor each other
        assert os.stat(f"/proc/{a_pid}").st_uid == a["now"]["uid"]  # as the host sees it too
        # Each fork's extension runs in its sandbox: its uid, its /tmp.
        for reply in (a_reply, b_reply):
            seen = json.loads(wait_until(lambda r=reply: _read(flags / f"hang-{r['id']}"), 20, "the agent's record"))
            assert seen == {"uid": reply["body"]["now"]["uid"], "marks": reply["body"]["now"]["marks"]}, seen
    assert not list(data.rglob("written"))
