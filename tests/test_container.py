"""rapid's container image, built with podman and used the three ways users use it.

1. As a base image: a derived image ``FROM rapid`` with a Python function on the official
   runtime client (awslambdaric) and one with a bash ``bootstrap`` in /var/task; each is
   invoked from the host, its REPORT read from ``podman logs``, timed out, and stopped
   with ``podman stop`` (SIGTERM: a clean exit 0 within the grace period).
2. As a service: functions and state on a volume at /data, served again after a restart.
3. Isolation inside a container: what rapid detects in a default (unprivileged) container
   and a ``--privileged`` one, and that the Runtime API identity check works in both.

The base image and rapid's image are built once per session (the base cached under
``.cache/containers/``, see ``tests/containers.py``). Every container runs on the host's
network on a free loopback port, and is removed however its test ends.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest

from tests import containers
from tests.control import ROLE, make_zip
from tests.containers import IMAGE_TAG, REPO, invoke, podman, running

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(1200)]

BASH_BOOTSTRAP = r"""#!/bin/bash
# A custom runtime in bash and curl. The event (JSON) picks what to do:
#   {"sleep": N}   sleep N seconds first
#   {"orphan": 1}  leave a grandchild behind (a double fork), which exits soon after
# and the answer is {"echo": EVENT, "api": AWS_LAMBDA_RUNTIME_API}.
set -euo pipefail
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
HEADERS="$(mktemp)"
while true; do
  EVENT="$(curl -sSf -D "$HEADERS" "$API/invocation/next")"
  ID="$(grep -i '^lambda-runtime-aws-request-id:' "$HEADERS" | cut -d: -f2 | tr -d ' \r')"
  echo "bash-fn got: $EVENT"
  if [[ "$EVENT" =~ \"sleep\":\ *([0-9]+) ]]; then sleep "${BASH_REMATCH[1]}"; fi
  if [[ "$EVENT" == *orphan* ]]; then ( setsid sleep 0.5 & ); fi
  curl -sSf -X POST "$API/invocation/$ID/response" \
    -d "{\"echo\": $EVENT, \"api\": \"$AWS_LAMBDA_RUNTIME_API\"}" >/dev/null
done
"""

PYTHON_APP = """\
import os
import time


def handler(event, context):
    print("python-fn got:", event)
    time.sleep(event.get("sleep", 0))
    return {"echo": event, "api": os.environ["AWS_LAMBDA_RUNTIME_API"],
            "request_id": context.aws_request_id}
"""


@pytest.fixture(scope="module", autouse=True)
def nothing_left_behind():  # type: ignore[no-untyped-def]
    yield
    if shutil.which("podman"):
        assert containers.leftovers() == []


@pytest.fixture(scope="session")
def rapid_image() -> str:
    """rapid's own image, built from the Dockerfile on the local Debian base."""
    containers.podman_or_skip()
    base, base_s = containers.base_image()
    image_s = containers.build(REPO, IMAGE_TAG, args=["--build-arg", f"BASE={base}"])
    size = containers.image_size(IMAGE_TAG) / 1e6
    print(f"\ncontainer: base {base} ready in {base_s:.1f} s; {IMAGE_TAG} built in {image_s:.1f} s, {size:.0f} MB")
    return IMAGE_TAG


def _derived(tmp: Path, tag: str, dockerfile: str, files: dict[str, str]) -> str:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (tmp / name).write_text(text)
        (tmp / name).chmod(0o755)
    containers.build(tmp, tag)
    return tag


@pytest.fixture(scope="session")
def python_image(rapid_image: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    tag = f"localhost/rapid-test-python:{containers.CHECKOUT}"
    return _derived(tmp_path_factory.mktemp("python-fn"), tag, textwrap.dedent(f"""\
        FROM {rapid_image}
        RUN pip install --no-cache-dir awslambdaric
        COPY app.py /var/task/
        CMD ["python", "-m", "awslambdaric", "app.handler"]
        """), {"app.py": PYTHON_APP})


@pytest.fixture(scope="session")
def bash_image(rapid_image: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    tag = f"localhost/rapid-test-bash:{containers.CHECKOUT}"
    return _derived(tmp_path_factory.mktemp("bash-fn"), tag, textwrap.dedent(f"""\
        FROM {rapid_image}
        COPY bootstrap /var/task/bootstrap
        """), {"bootstrap": BASH_BOOTSTRAP})


@pytest.fixture
def bash_fn(tmp_path: Path) -> Path:
    folder = tmp_path / "bash-fn"
    folder.mkdir()
    (folder / "bootstrap").write_text(BASH_BOOTSTRAP)
    (folder / "bootstrap").chmod(0o755)
    folder.chmod(0o755)
    tmp_path.chmod(0o755)
    return folder


def _report_for(container: containers.Container, request_id: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out, _ = container.logs()
        lines = [l for l in out.splitlines() if l.startswith(f"REPORT RequestId: {request_id}")]
        if lines or time.monotonic() > deadline:
            assert lines, f"no REPORT for {request_id} in:\n{out}"
            return lines[0]
        time.sleep(0.1)


def _stop_cleanly(container: containers.Container, grace: int = 10) -> None:
    """``podman stop``: SIGTERM, and SIGKILL only if the grace period runs out, which would
    show as exit status 137. rapid must end every runtime and exit 0 before that."""
    podman("stop", "-t", str(grace), container.name, timeout=grace + 60)
    state = container.state()
    out, err = container.logs()
    assert state["Running"] is False
    assert state["ExitCode"] == 0, f"exit {state['ExitCode']}\n{out}\n{err}"
    assert "rapid: shutting down" in err


# -- 1. as a base image ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["python", "bash"])
def test_derived_image_serves_reports_times_out_and_stops(kind: str, request: pytest.FixtureRequest) -> None:
    image = request.getfixturevalue(f"{kind}_image")
    with running(image, env={"AWS_LAMBDA_FUNCTION_TIMEOUT": "3"}) as c:
        status, headers, body = invoke(c.url, b'{"name": "container"}')
        assert status == 200, body
        answer = json.loads(body)
        assert answer["echo"] == {"name": "container"}
        assert answer["api"].startswith("127.0.0.1:")  # the instance's own Runtime API
        assert "x-amz-function-error" not in headers
        request_id = headers["x-amzn-requestid"]
        report = _report_for(c, request_id)
        assert "Duration: " in report and "Memory Size: 3008 MB" in report and "Init Duration: " in report
        out, err = c.logs()
        assert f"{kind}-fn got:" in out
        assert "isolation: " in err

        # A timeout: Lambda's error shape, and the next invoke gets a fresh instance.
        status, headers, body = invoke(c.url, b'{"sleep": 30}')
        assert status == 200
        assert headers["x-amz-function-error"] == "Unhandled"
        error = json.loads(body)
        assert error["errorType"] == "Sandbox.Timedout"
        assert "Task timed out after 3.00 seconds" in error["errorMessage"]
        assert "Status: timeout" in _report_for(c, headers["x-amzn-requestid"])
        assert json.loads(invoke(c.url, b'{"again": 1}')[2])["echo"] == {"again": 1}

        # `podman stop` while an invoke is in flight: rapid answers it, ends the runtime, exits 0.
        answers: list[tuple[int, dict[str, str], bytes] | BaseException] = []

        def call() -> None:
            try:
                answers.append(invoke(c.url, b'{"sleep": 2}'))
            except BaseException as exc:  # noqa: BLE001 (reported by the assertion below)
                answers.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        # (the function logs each event it gets: wait for the one after {"again": 1})
        _wait_for(lambda: f"{kind}-fn got: " in c.logs()[0].split("again")[-1], "the last invoke to start")
        _stop_cleanly(c)
        caller.join(30)
        assert answers and not isinstance(answers[0], BaseException), answers
        assert json.loads(answers[0][2])["echo"] == {"sleep": 2}  # it finished within the shutdown timeout


def _wait_for(condition, what: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_pid1_reaps_orphans_of_a_double_forking_runtime(bash_image: str) -> None:
    with running(bash_image) as c:
        for _ in range(3):
            assert json.loads(invoke(c.url, b'{"orphan": 1}')[2])["echo"] == {"orphan": 1}
        # Each invoke left a `sleep 0.5` re-parented to PID 1. Once they are done, none may
        # linger as a zombie.
        _wait_for(lambda: not [p for p in c.processes() if p[2] == "sleep" and p[1] != "Z"], "the orphans to exit")
        procs = c.processes()
        assert not [p for p in procs if p[1] == "Z"], procs
        pid1 = [p for p in procs if p[0] == 1]
        assert pid1 and pid1[0][2].startswith("python"), procs
        _stop_cleanly(c)


# -- 2. as a service ---------------------------------------------------------------------


def test_service_keeps_its_functions_on_a_volume_across_restarts(rapid_image: str, bash_fn: Path) -> None:
    """The image as a Lambda service: RAPID_DATA_DIR on a volume and no function declared,
    a function created through the control plane with boto3, the container restarted."""
    volume = f"rapid-test-{uuid.uuid4().hex[:10]}"
    podman("volume", "create", volume)
    try:
        mountpoint = Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip())
        with running(rapid_image, "-v", f"{volume}:/data", env={"RAPID_DATA_DIR": "/data"}) as c:
            lam = boto3.client("lambda", endpoint_url=c.url, region_name="us-east-1", aws_access_key_id="x",
                               aws_secret_access_key="x")
            bootstrap = (bash_fn / "bootstrap").read_text()
            lam.create_function(FunctionName="hello", Runtime="provided.al2023", Handler="unused", Role=ROLE,
                                Code={"ZipFile": make_zip({"bootstrap": bootstrap}, {"bootstrap": 0o755})})
            lam.get_waiter("function_active_v2").wait(FunctionName="hello", WaiterConfig={"Delay": 1})
            url = c.url + "/2015-03-31/functions/hello/invocations"
            assert json.loads(_post(url, b'{"n": 1}'))["echo"] == {"n": 1}
            stored = sorted(p.name for p in mountpoint.iterdir())
            assert "registry.db" in stored and "code" in stored, stored
            podman("restart", "-t", "10", c.name, timeout=120)
            c.wait_ready()
            assert json.loads(_post(url, b'{"n": 2}'))["echo"] == {"n": 2}
            assert [f["FunctionName"] for f in lam.list_functions()["Functions"]] == ["hello"]
            out, err = c.logs()
            assert err.count("listening on") == 2 and err.count("shutting down") == 1
    finally:
        podman("volume", "rm", "-f", volume, check=False)


def _post(url: str, body: bytes) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=60) as r:
        assert r.status == 200
        return r.read()


# -- 3. isolation inside a container -----------------------------------------------------


@pytest.mark.parametrize("privileged", [False, True], ids=["default", "privileged"])
def test_isolation_is_detected_and_the_runtime_api_stays_private(
    rapid_image: str, bash_fn: Path, privileged: bool
) -> None:
    # Two functions: the bash one above, and the example on the bundled shell runtime (the
    # one an unprivileged container used to refuse its own Runtime API).
    flags = ["-v", f"{bash_fn}:/fns/probe:ro", "-v", f"{REPO / 'examples' / 'shell-echo'}:/fns/echo:ro"]
    flags += ["--privileged"] if privileged else []
    with running(rapid_image, *flags, env={"RAPID_FUNCTIONS": "probe=/fns/probe echo=/fns/echo"}) as c:
        _, err = c.logs()
        mode = [line for line in err.splitlines() if line.startswith("rapid: isolation: ")]
        assert len(mode) == 1, err
        if privileged:
            assert "private tmpfs per instance (mount namespace)" in mode[0]
        else:  # no CAP_SYS_ADMIN: no mount namespace; no writable cgroups
            assert "private TMPDIR per instance" in mode[0]
            assert "memory RSS watchdog" in mode[0]
        assert "runtimes run as uids" in mode[0]  # root in the container: each instance its own uid

        # The runtimes, under their own uids, pass the Runtime API identity check...
        status, headers, body = invoke(c.url, b'{"shell": "echo"}', function="echo")
        assert (status, "x-amz-function-error" in headers, json.loads(body)) == (200, False, {"shell": "echo"})
        answer = json.loads(invoke(c.url, b'{"who": "runtime"}', function="probe")[2])
        assert answer["echo"] == {"who": "runtime"}
        # ...which still refuses any other process in the container, root or the instance's uid.
        for user in ("0", "990000", "990001"):
            probe = c.exec("curl", "-s", "-m", "10", f"http://{answer['api']}/2018-06-01/runtime/invocation/next",
                           user=user)
            assert "Only the runtime of this instance may use its Runtime API" in probe.stdout, (user, probe)
        assert json.loads(invoke(c.url, b'{"who": "again"}', function="probe")[2])["echo"] == {"who": "again"}
        _stop_cleanly(c)


def test_a_refused_peer_cannot_take_an_invocation(rapid_image: str, bash_fn: Path) -> None:
    """The check is not merely answering 403 to strangers: while a stranger polls, the
    runtime still gets every invocation (nothing is handed to the wrong process)."""
    with running(rapid_image, "-v", f"{bash_fn}:/var/task:ro") as c:
        api = json.loads(invoke(c.url, b"{}")[2])["api"]
        for i in range(3):
            probe = c.exec("curl", "-s", "-m", "5", f"http://{api}/2018-06-01/runtime/invocation/next")
            assert "AccessDenied" in probe.stdout
            assert json.loads(invoke(c.url, json.dumps({"i": i}).encode())[2])["echo"] == {"i": i}

