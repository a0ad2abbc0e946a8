"""The application blueprint with a pipeline, delivered by git pushes to a local bare
repository whose post-receive hook (examples/pipeline/post-receive) runs ``rapid pipeline
run``: build (install, unit tests) then ``rapid deploy`` (a canary guarded by a PreTraffic
hook and an alarm), against a time-scaled daemon."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.daemon import ROOT, Daemon, run_cli, run_server

BLUEPRINT = ROOT / "rapid" / "blueprints" / "app-pipeline-python"


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main",
                           *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=300)


def _alias(d: Daemon) -> dict:  # type: ignore[type-arg]
    r = d.request("GET", "/2015-03-31/functions/app-pipeline/aliases/live")
    return r.json() if r.status == 200 else {}  # type: ignore[return-value]


def test_pushes_build_test_and_deploy_by_canary(tmp_path: Path) -> None:
    app, bare = tmp_path / "app", tmp_path / "app.git"
    made = run_cli(["init", "app-pipeline-python", str(app)])
    assert made.returncode == 0, made.stderr
    assert (app / "pipeline.yaml").exists() and not (app / "blueprint.toml").exists()
    assert _git(tmp_path, "init", "--bare", str(bare)).returncode == 0
    hook = bare / "hooks" / "post-receive"
    shutil.copy(ROOT / "examples" / "pipeline" / "post-receive", hook)
    hook.chmod(0o755)
    _git(app, "init")
    _git(app, "remote", "add", "origin", str(bare))
    with run_server(["--data-dir", str(tmp_path / "state")], env={"RAPID_SCALING_TIME_SCALE": "0.01"}) as d:
        env = {"RAPID_URL": d.url, "RAPID": f"{sys.executable} -m rapid"}

        def push(message: str) -> subprocess.CompletedProcess[str]:
            _git(app, "add", "-A")
            assert _git(app, "commit", "-qm", message).returncode == 0
            return _git(app, "push", "-q", "origin", "HEAD:main", env=env)

        first = push("first")
        assert first.returncode == 0 and "refs/heads/main deployed" in first.stderr, first.stderr
        assert _alias(d)["FunctionVersion"] == "1"
        assert d.invoke("app-pipeline:live", {"name": "you"}).json() == {"message": "Hello, you!"}

        source = app / "src" / "app.py"
        source.write_text(source.read_text() + "\n\n# the second version\n")
        second = push("second")
        assert second.returncode == 0 and "refs/heads/main deployed" in second.stderr, second.stderr
        assert "[test] python3 -m unittest" in second.stderr and "1 gradual deployment succeeded" in second.stderr
        assert _alias(d)["FunctionVersion"] == "2"
        (done,) = json.loads(run_cli(["deployments", "--url", d.url, "--json"]).stdout)
        assert done["status"] == "Succeeded" and done["pre_traffic"] == "app-pipeline-pre-traffic"
        steps = [(e["event"], e["status"]) for e in done["events"]]
        assert ("BeforeAllowTraffic", "Succeeded") in steps
        assert [e["weight"] for e in done["events"] if e["event"] == "AllowTraffic"] == [0.1, 1.0]

        source.write_text(source.read_text().replace("Hello", "Bye"))
        third = push("a broken greeting")
        assert "[test] failed" in third.stderr and "FAILED" in third.stderr, third.stderr
        assert _alias(d)["FunctionVersion"] == "2"  # nothing deployed: the unit tests stopped it
        versions = d.request("GET", "/2015-03-31/functions/app-pipeline/versions").json()
        assert [v["Version"] for v in versions["Versions"]] == ["$LATEST", "1", "2"]  # type: ignore[index]


def test_rapid_deploy_fails_when_the_pre_traffic_hook_rejects_the_new_code(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(BLUEPRINT, app)
    with run_server(["--data-dir", str(tmp_path / "state")], env={"RAPID_SCALING_TIME_SCALE": "0.01"}) as d:
        first = run_cli(["deploy", "--url", d.url], cwd=str(app), timeout=120)
        assert first.returncode == 0, first.stderr
        assert "no gradual deployment started" in first.stderr and _alias(d)["FunctionVersion"] == "1"
        source = app / "src" / "app.py"
        source.write_text(source.read_text().replace("Hello", "Bye"))  # the hook's check fails on it
        second = run_cli(["deploy", "--url", d.url], cwd=str(app), timeout=120)
        assert second.returncode == 1, second.stderr
        assert "BeforeAllowTraffic  Failed  reported Failed" in second.stdout
        assert "PreTraffic hook app-pipeline-pre-traffic failed" in second.stderr
        assert _alias(d)["FunctionVersion"] == "1"
        assert d.invoke("app-pipeline:live", {"name": "x"}).json() == {"message": "Hello, x!"}
        bad = run_cli(["deploy", "--url", d.url, "--template", "missing.yaml"], cwd=str(app))
        assert bad.returncode == 2 and "missing.yaml" in bad.stderr


def test_the_blueprint_serves_with_its_template_and_the_pipeline_updates_it(tmp_path: Path) -> None:
    app = tmp_path / "myapp"
    assert run_cli(["init", "app-pipeline-python", str(app)]).returncode == 0
    with run_server(["--template", "template.yaml", "--data-dir", str(tmp_path / "state"), "--api-port", "0"],
                    cwd=app, env={"RAPID_SCALING_TIME_SCALE": "0.01"}) as d:
        assert d.invoke("app-pipeline:live", {"name": "rapid"}).json() == {"message": "Hello, rapid!"}
        source = app / "src" / "app.py"
        source.write_text(source.read_text() + "\n# v2\n")
        out = run_cli(["pipeline", "run", "--url", d.url], cwd=str(app), timeout=120)
        assert out.returncode == 0, out.stderr
        assert _alias(d)["FunctionVersion"] == "2"  # the same stack (myapp) as rapid serve --template applied
