"""Every bundled blueprint, end to end, as a user meets it: ``rapid init NAME DIR``, the
blueprint's own tests (pytest or ``node --test``), ``rapid serve --template template.yaml``
in DIR, then the very commands ``rapid init`` printed (curl, the AWS CLI, ``rapid logs``,
``rapid event``), with the ports of this test's daemon put in, and what the manifest's
``[check]`` says must come back. Blueprints are found by folder, so a new one is tested
without editing this file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rapid.blueprints import Blueprint, discover
from tests.daemon import Daemon, run_cli, run_server

BLUEPRINTS = discover()
BIN = os.path.dirname(sys.executable)  # the venv's: rapid, aws (the test extra's AWS CLI)
IN_CI = os.environ.get("CI") == "true"


def _need(bp: Blueprint) -> None:
    missing = [cmd for cmd in bp.needs if shutil.which(cmd) is None]
    if missing:
        if IN_CI:
            pytest.fail(f"{bp.name} needs {missing} on PATH (CI installs them: .ci/steps/10-base.sh)")
        pytest.skip(f"{bp.name} needs {missing}")


def _api_port(daemon: Daemon) -> int | None:
    for line in daemon.stderr:
        m = re.search(r"template: .* on http://127\.0\.0\.1:(\d+)", line)
        if m:
            return int(m.group(1))
    return None


def _shell(command: str, daemon: Daemon, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = command.replace("127.0.0.1:8080", f"127.0.0.1:{daemon.port}")
    port = _api_port(daemon)
    if port is not None:
        command = command.replace("127.0.0.1:3000", f"127.0.0.1:{port}")
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "RAPID_PORT": str(daemon.port),
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_PAGER": ""}
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BLUEPRINTS))
def test_blueprint_works_the_moment_it_is_created(name: str, tmp_path: Path) -> None:
    bp = BLUEPRINTS[name]
    _need(bp)
    target = tmp_path / name
    out = run_cli(["init", name, str(target)])
    assert out.returncode == 0, out.stderr
    assert f"cd {target} && {bp.serve}" in out.stdout
    for line in bp.tries:
        assert line in out.stdout
    assert (target / "template.yaml").is_file() and (target / "rapid.toml").is_file()
    assert any((target / "events").iterdir())
    assert not (target / "blueprint.toml").exists()

    # its own tests, as the user would run them
    if bp.test.startswith("python -m pytest"):
        own = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                              *bp.test.split()[3:]], cwd=target, capture_output=True, text=True, timeout=120)
    else:
        own = subprocess.run(bp.test.split(), cwd=target, capture_output=True, text=True, timeout=120)
    assert own.returncode == 0, own.stdout + own.stderr
    assert re.search(r"\b[1-9]\d* passed|# pass [1-9]", own.stdout), own.stdout

    check = bp.check
    assert bp.serve.startswith("rapid serve ")
    args = bp.serve.split()[2:] + ["--api-port", "0"]
    with run_server(args, cwd=target, env={"RAPID_SCHEDULE_TIME_SCALE": "0.01"}) as daemon:
        for command in bp.tries:
            if "--follow" in command:
                continue  # tested with the logs (tests/test_logs.py)
            if command.startswith("rapid logs"):
                daemon.wait_for_line(re.escape(check.get("expect_log", check["expect"])), timeout=30)
            result = _shell(command, daemon, target)
            assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
            if command.startswith("rapid logs"):
                assert check.get("expect_log", check["expect"]) in result.stdout, result.stdout
            elif check["kind"] in ("invoke", "http", "stream") and command.startswith("curl") and \
                    command == bp.tries[0]:
                assert check["expect"] in result.stdout, result.stdout
        if check["kind"] in ("sqs", "kinesis", "schedule"):
            daemon.wait_for_line(re.escape(check["expect"]), timeout=60)
        if check["kind"] == "invoke":
            reply = daemon.invoke(check["function"], check["payload"].encode())
            assert reply.status == 200 and check["expect"] in reply.body.decode()
        if check.get("expect_log"):
            daemon.wait_for_line(re.escape(check["expect_log"]), timeout=30)

    # the equivalent rapid.toml serves the same function
    with run_server(["--config", "rapid.toml"], cwd=target) as daemon:
        if check.get("function"):
            reply = daemon.invoke(check["function"], (check.get("payload") or "{}").encode())
            assert reply.status == 200, reply.body
            if check["kind"] == "invoke":
                assert check["expect"] in reply.body.decode()
        else:
            assert daemon.request("GET", "/healthz").status == 200
        if check.get("expect_log"):
            daemon.wait_for_line(re.escape(check["expect_log"]), timeout=30)
