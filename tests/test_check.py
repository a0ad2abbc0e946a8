"""``rapid check`` as a runtime author runs it: against the bundled runtimes, the official
clients from PyPI and npm, and bootstraps that each break one behaviour of the contract."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from tests.daemon import BOOTSTRAPS, ROOT, assert_no_leaks
from tests.node_ric import require_node_ric

pytestmark = pytest.mark.slow
FLAWED = Path(__file__).resolve().parent / "flawed_runtime.py"
BEHAVIOURS = ["address", "start", "echo-1mb", "echo-6mb", "function-error", "init-error", "deadline", "trace-id",
              "client-context", "cognito-identity", "function-arn", "environment", "handler-path", "logs", "reuse",
              "late-write", "paths", "keep-alive", "streaming", "sigterm"]
TIMED = {"sigterm"}  # graded on a clock: a loaded machine may make a pass a warning
LINE = re.compile(r"^(PASS|WARN|FAIL|SKIP)  (\S+)\s+(.*)$")


def check(args: list[str], cwd: str | None = None, timeout: float = 240) -> tuple[int, dict[str, str], str]:
    """Run ``rapid check ARGS``; (exit status, {behaviour: status}, stdout). Every process
    it started must be gone afterwards (they carry its unique HOME)."""
    home = tempfile.mkdtemp(prefix="rapid-test-home-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAPID_", "AWS_LAMBDA_"))}
    env["HOME"] = home
    proc = subprocess.run([sys.executable, "-m", "rapid", "check", *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    statuses = {}
    for line in proc.stdout.splitlines():
        m = LINE.match(line)
        if m:
            statuses[m.group(2)] = m.group(1)
    assert_no_leaks(home, within=10.0)
    shutil.rmtree(home, ignore_errors=True)
    return proc.returncode, statuses, proc.stdout + proc.stderr


def assert_all_pass(code: int, statuses: dict[str, str], out: str, skips: tuple[str, ...] = ()) -> None:
    assert list(statuses) == BEHAVIOURS, out
    bad = {k: v for k, v in statuses.items()
           if v != "PASS" and not (k in TIMED and v == "WARN") and not (k in skips and v == "SKIP")}
    assert not bad, out
    assert code == 0, out


@pytest.mark.parametrize("runtime", ["python", "node", "shell"])
def test_the_bundled_runtimes_pass_every_behaviour(runtime):
    if runtime == "node" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    code, statuses, out = check(["--runtime", runtime])
    assert_all_pass(code, statuses, out)
    assert f"rapid check: the bundled {runtime} runtime" in out
    assert "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html" in out


def test_awslambdaric_from_pypi_passes():
    code, statuses, out = check(["--", sys.executable, "-m", "awslambdaric", "rapid_check.handler"])
    assert_all_pass(code, statuses, out)


def test_the_node_ric_from_npm_passes():
    ric = require_node_ric()
    code, statuses, out = check(["--", ric, "rapid_check.handler"])
    assert_all_pass(code, statuses, out)
    # It streams (streamifyResponse): the streaming line grades what it really sent.
    line = next(ln for ln in out.splitlines() if ln.startswith("PASS  streaming "))
    assert "streamed responses, chunked, trailers declared" in line
    assert "failure mid-stream arrived as 'Error' (in its trailers)" in line


@pytest.mark.parametrize(("flaw", "behaviour", "says"), [
    ("no-init-error", "init-error", "no /init/error"),
    ("swallow-errors", "function-error", "posted to /response as a success"),
    ("drop-trace", "trace-id", "_X_AMZN_TRACE_ID was unset"),
    ("late-write", "late-write", "after the timeout"),
    ("ignore-sigterm", "sigterm", "still running"),
    ("truncate-6mb", "echo-6mb", "4,194,304 of"),
    ("buffered-logs", "logs", "never reached the log"),
    ("leaky", "reuse", "at the last"),
    ("bad-mode", "streaming", "InvalidFunctionResponseMode"),
])
def test_a_flawed_runtime_fails_exactly_the_behaviour_it_breaks(flaw, behaviour, says):
    code, statuses, out = check(["--env", f"RAPID_FLAW={flaw}", "--", sys.executable, str(FLAWED),
                                 "rapid_check.handler"])
    assert code == 1, out
    assert statuses[behaviour] == "FAIL", out
    assert [k for k, v in statuses.items() if v == "FAIL"] == [behaviour], out
    line = next(ln for ln in out.splitlines() if ln.startswith(f"FAIL  {behaviour} "))
    assert says in line, line


def test_a_shell_bootstrap_with_a_hard_coded_address_fails_address(tmp_path):
    source = (BOOTSTRAPS / "shell" / "bootstrap").read_text()
    fixed = source.replace('API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"',
                           'API="http://127.0.0.1:9001/2018-06-01/runtime"')
    assert fixed != source
    bootstrap = tmp_path / "bootstrap"
    bootstrap.write_text(fixed)
    bootstrap.chmod(0o755)
    os.chmod(tmp_path, 0o755)
    # A relative command is found from where rapid check runs, not from the task root.
    code, statuses, out = check(["--", "./bootstrap", "rapid_check.handler"], cwd=str(tmp_path))
    assert code == 1, out
    assert statuses["address"] == "FAIL" and statuses["start"] == "FAIL", out
    # 127.0.0.1:9001 may be taken on this machine: then the runtime merely never starts.
    if "127.0.0.1:9001 is in use" not in out:
        assert "it called 127.0.0.1:9001" in out
    assert {v for k, v in statuses.items() if k not in ("address", "start")} == {"SKIP"}, out


def test_a_function_zip_with_its_own_bootstrap(tmp_path):
    archive = tmp_path / "fn.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        zf.writestr(info, (BOOTSTRAPS / "shell" / "bootstrap").read_text())
        zf.write(ROOT / "rapid" / "lab" / "handlers" / "rapid_check.sh", "rapid_check.sh")
    os.chmod(tmp_path, 0o755)
    code, statuses, out = check(["--function", str(archive)])
    # The archive is the task root: rapid check cannot add the nested folder to it.
    assert_all_pass(code, statuses, out, skips=("handler-path",))
    assert statuses["handler-path"] == "SKIP"


def test_print_handler_and_usage_errors():
    proc = subprocess.run([sys.executable, "-m", "rapid", "check", "--print-handler", "python"],
                          capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert proc.returncode == 0 and "def handler(event, context):" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "rapid", "check"], capture_output=True, text=True, cwd=ROOT,
                          timeout=30)
    assert proc.returncode == 2 and "nothing to check" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "rapid", "check", "--function", "/nonexistent/fn"],
                          capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert proc.returncode == 2 and "/nonexistent/fn" in proc.stderr
