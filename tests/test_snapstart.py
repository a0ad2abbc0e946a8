"""SnapStart on the bundled Python runtime: init once in a template, instances forked from it,
each running the Runtime API's restore phase, with a real daemon."""

import json
import os
import re
import threading

from tests.daemon import run_server, wait_until

APP = '''
import os, time
from snapshot_restore_py import register_after_restore, register_before_snapshot

INIT_PID = os.getpid()
print("module code ran in", INIT_PID)
STATE = {"before": 0, "after": 0}

@register_before_snapshot
def before():
    STATE["before"] += 1

@register_after_restore
def after():
    STATE["after"] += 1
    print("after-restore hook ran in", os.getpid())
    if os.environ.get("FAIL_RESTORE"):
        raise ValueError("no restore today")

def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    tmp = os.environ.get("TMPDIR") or "/tmp"
    open(os.path.join(tmp, f"mark-{os.getpid()}"), "w").close()
    return {"tmp": sorted(os.listdir(tmp)), "init_pid": INIT_PID, "pid": os.getpid(), "state": STATE,
            "type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"), "tmpdir": os.environ.get("TMPDIR"),
            "api": os.environ.get("AWS_LAMBDA_RUNTIME_API"), "uid": os.getuid(),
            "stream": os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")}
'''


def snap_function(tmp_path, fail_restore=False):
    folder = tmp_path / "snap"
    folder.mkdir()
    (folder / "app.py").write_text(APP)
    env = 'FAIL_RESTORE = "1"' if fail_restore else ""
    toml = tmp_path / "rapid.toml"
    toml.write_text(
        f'[functions.snap]\npath = "{folder}"\nruntime = "python"\nhandler = "app.handler"\n'
        f"snap_start = true\ntimeout = 10\nenvironment = {{ {env} }}\n"
    )
    return toml


def test_instances_are_forked_from_one_init_and_restored_each(public_dir):
    with run_server(["--config", str(snap_function(public_dir))]) as d:
        # Two concurrent invokes need two instances: both forked from the same template.
        results = []

        def call():
            results.append(d.invoke("snap", {"sleep": 0.5}))

        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        bodies = [r.json() for r in results]
        assert all(r.status == 200 and r.function_error is None for r in results), bodies
        assert len({b["pid"] for b in bodies}) >= 2  # several instances
        assert {b["init_pid"] for b in bodies} == {bodies[0]["init_pid"]}  # one init, the template's
        assert all(b["pid"] != b["init_pid"] for b in bodies)
        assert len([line for line in d.lines if "module code ran in" in line]) == 1  # once, in the template
        assert len([line for line in d.lines if "after-restore hook ran in" in line]) == len({b["pid"] for b in bodies})
        for b in bodies:
            assert b["state"] == {"before": 1, "after": 1}  # restore hook per instance, after the snapshot hook
            assert b["type"] == "snap-start"
            assert b["stream"] is None  # as on Lambda: no log stream variable with SnapStart
        assert len({b["api"] for b in bodies}) == len({b["pid"] for b in bodies})  # own Runtime API each
        for b in bodies:  # a private /tmp each: only its own mark
            assert [n for n in b["tmp"] if n.startswith("mark-")] == [f"mark-{b['pid']}"], b
        # As root, each instance runs as its own uid (unless its interpreter is out of reach
        # of other users, as under /root: then the daemon warns and keeps root, as for any).
        if os.geteuid() == 0 and not any("runs as root" in line for line in d.stderr):
            assert len({b["uid"] for b in bodies}) == len({b["pid"] for b in bodies})
            assert 0 not in {b["uid"] for b in bodies}
        # REPORT follows each answer: wait for all of them.
        wait_until(lambda: len([line for line in d.lines if "Restore Duration:" in line]) == len({b["pid"] for b in bodies}),
                   10, "a REPORT with Restore Duration per new instance")
        reports = [line for line in d.lines if "\tDuration: " in line]
        restored = [line for line in reports if "Restore Duration:" in line]
        assert len(restored) == len({b["pid"] for b in bodies})
        assert all("Init Duration" not in line for line in reports)
        assert re.search(r"\tRestore Duration: \d+\.\d\d ms\tBilled Restore Duration: \d+ ms", restored[0])
        assert len([line for line in d.lines if "INIT_REPORT" in line]) == 1
        # A warm invoke: no restore again.
        again = d.invoke("snap", {})
        assert again.json()["state"]["after"] == 1
        assert "Restore Duration" not in d.wait_for_line(r"REPORT RequestId: " + again.headers["x-amzn-requestid"])


def test_forked_instance_times_out_and_is_replaced(tmp_path):
    toml = snap_function(tmp_path)
    toml.write_text(toml.read_text().replace("timeout = 10", "timeout = 1"))
    with run_server(["--config", str(toml)]) as d:
        first = d.invoke("snap", {}).json()
        slow = d.invoke("snap", {"sleep": 5})
        assert slow.function_error == "Unhandled" and slow.json()["errorType"] == "Sandbox.Timedout"
        after = d.invoke("snap", {}).json()
        assert after["pid"] != first["pid"] and after["init_pid"] == first["init_pid"]  # forked again
        assert after["state"]["after"] == 1
        assert re.search(r"Max Memory Used: [1-9]\d* MB", d.wait_for_line(r"Restore Duration"))


def test_after_restore_hook_error_is_a_snapstart_exception(tmp_path):
    with run_server(["--config", str(snap_function(tmp_path, fail_restore=True))]) as d:
        reply = d.invoke("snap", {})
        assert reply.status == 400
        assert reply.headers["x-amzn-errortype"].startswith("SnapStartException")
        assert "afterRestore()" in reply.json()["message"]
        d.wait_for_line(r"RESTORE_REPORT Restore Duration: \d+\.\d\d ms\tStatus: error\tError Type: \S+")
        d.wait_for_line(r"\[ERROR\] ValueError: no restore today")
        # The template is intact: the next invoke forks again (and fails the same way).
        assert d.invoke("snap", {}).status == 400
        assert len([line for line in d.lines if "module code ran in" in line]) == 1


def test_template_init_error_fails_the_invoke_and_is_retried(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "app.py").write_text("raise RuntimeError('broken at import')\n")
    toml = tmp_path / "rapid.toml"
    toml.write_text(f'[functions.bad]\npath = "{folder}"\nruntime = "python"\nhandler = "app.handler"\nsnap_start = true\n')
    with run_server(["--config", str(toml)]) as d:
        for _ in range(2):
            reply = d.invoke("bad", {})
            assert reply.status == 200 and reply.function_error == "Unhandled"
            assert reply.json()["errorType"] == "RuntimeError"
        wait_until(lambda: len([line for line in d.lines if "INIT_REPORT" in line and "Status: error" in line]) == 2,
                   10, "an INIT_REPORT per failed init")


def test_control_plane_snapstart_on_published_versions(tmp_path):
    import boto3  # noqa: F401 - the real client, through tests.control
    from botocore.exceptions import ClientError

    from tests.control import ROLE, client, python_zip, wait_active, wait_updated

    code = python_zip(
        "import os\nINIT_PID = os.getpid()\n"
        "import time\n"
        "def handler(event, context):\n"
        "    time.sleep(event.get('sleep', 0))\n"
        "    return {'type': os.environ['AWS_LAMBDA_INITIALIZATION_TYPE'], 'init': INIT_PID, 'pid': os.getpid(), 'uid': os.getuid()}\n"
    )
    path = "/usr/bin:/bin" if os.path.exists("/usr/bin/python3.11") else os.environ["PATH"]
    with run_server(["--data-dir", str(tmp_path / "state")], env={"PATH": path}) as d:
        lam = client(d)
        lam.create_function(FunctionName="snappy", Runtime="python3.11", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": code}, SnapStart={"ApplyOn": "PublishedVersions"})
        wait_active(lam, "snappy")
        latest = lam.get_function_configuration(FunctionName="snappy")
        assert latest["SnapStart"] == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "Off"}
        version = lam.publish_version(FunctionName="snappy")["Version"]
        published = lam.get_function_configuration(FunctionName="snappy", Qualifier=version)
        assert published["SnapStart"] == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "On"}
        # $LATEST starts on demand; the version is forked from its template.
        body = json.loads(lam.invoke(FunctionName="snappy")["Payload"].read())
        assert body["type"] == "on-demand" and body["init"] == body["pid"]
        reply = lam.invoke(FunctionName="snappy", Qualifier=version, LogType="Tail")
        body = json.loads(reply["Payload"].read())
        assert body["type"] == "snap-start" and body["init"] != body["pid"]
        # Forks of the template, two at once: each under its own uid when the daemon is root
        # (the system's python3.11 is reachable by every user, unlike a pyenv under /root).
        pair = []
        threads = [threading.Thread(target=lambda: pair.append(json.loads(
            lam.invoke(FunctionName="snappy", Qualifier=version, Payload=b'{"sleep": 0.5}')["Payload"].read())))
            for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        forks = [body, *pair]
        assert {b["init"] for b in forks} == {body["init"]}
        if os.geteuid() == 0 and not any("runs as root" in line for line in d.stderr):
            assert 0 not in {b["uid"] for b in forks}
            assert len({b["uid"] for b in forks}) == len({b["pid"] for b in forks}) >= 2
        import base64
        assert "Restore Duration:" in base64.b64decode(reply["LogResult"]).decode()
        # Turned off, and a bad value refused as AWS refuses it.
        lam.update_function_configuration(FunctionName="snappy", SnapStart={"ApplyOn": "None"})
        wait_updated(lam, "snappy")
        assert lam.get_function_configuration(FunctionName="snappy")["SnapStart"] == {
            "ApplyOn": "None", "OptimizationStatus": "Off"}
        try:
            lam.update_function_configuration(FunctionName="snappy", SnapStart={"ApplyOn": "Always"})
        except ClientError as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            assert exc.response["Error"]["Code"] == "ValidationException"
        else:
            raise AssertionError("ApplyOn=Always was accepted")
