"""``rapid pipeline run``: an application's delivery pipeline, run on the current tree.

    rapid pipeline run [--file pipeline.yaml] [--url http://127.0.0.1:8080] [--skip-deploy]

The pipeline definition (``pipeline.yaml`` beside the template, written by ``rapid init``'s
application blueprints) has two stages, as the CodePipeline template of a SAM application
has Build (CodeBuild: install, test) and Deploy (CloudFormation with the deployment
preference)::

    build:
      install:                       # shell commands, run in the pipeline file's folder
        - python -m pip install -r requirements.txt
      test:
        - python -m pytest -q tests
    deploy:
      template: template.yaml        # applied with rapid deploy
      parameter-overrides: {Stage: prod}
      stack-name: my-app             # optional
      url: http://127.0.0.1:8080     # optional; else --url, RAPID_URL, the default

Each command runs with ``sh -c`` (its output streamed, ``RAPID_PIPELINE_STAGE`` set); the
first that fails stops the pipeline with its exit status. The deploy stage is ``rapid
deploy`` and waits for the gradual deployments it starts: a rollback fails the pipeline.
A git post-receive hook that runs it on every push is ``examples/pipeline/post-receive``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from typing import Any

import yaml

from rapid.cli import deploy as deploy_cli

STAGES = ("install", "test")


class PipelineError(ValueError):
    pass


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("pipeline", help="run an application's delivery pipeline (build, test, deploy)",
                       description="Run the application's pipeline definition on the current tree.")
    verbs = p.add_subparsers(dest="pipeline_command", required=True)
    r = verbs.add_parser("run", help="build (install, test) and deploy the current tree")
    r.add_argument("--file", default="pipeline.yaml", help="the pipeline definition (default pipeline.yaml)")
    r.add_argument("--url", default=None, help="the daemon to deploy to [RAPID_URL]")
    r.add_argument("--skip-deploy", dest="skip_deploy", action="store_true", help="build and test only")


def load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except OSError as exc:
        raise PipelineError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or set(data) - {"build", "deploy", "version"}:
        raise PipelineError(f"{path}: a pipeline has the keys build and deploy (found: {', '.join(map(str, data))})")
    build = data.get("build") or {}
    if not isinstance(build, dict) or set(build) - set(STAGES):
        raise PipelineError(f"{path}: build takes {' and '.join(STAGES)}, each a list of commands")
    for stage in STAGES:
        commands = build.get(stage) or []
        if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
            raise PipelineError(f"{path}: build.{stage} must be a list of shell commands")
    target = data.get("deploy")
    if target is not None and (not isinstance(target, dict) or not isinstance(target.get("template"), str)):
        raise PipelineError(f"{path}: deploy needs template: the SAM template to deploy")
    return data


def _say(text: str) -> None:
    print(f"rapid pipeline: {text}", file=sys.stderr, flush=True)


def run(ns: argparse.Namespace) -> int:
    path = os.path.abspath(ns.file)
    try:
        data = load(path)
    except PipelineError as exc:
        print(f"rapid: error: {exc}", file=sys.stderr)
        return 2
    root = os.path.dirname(path)
    build = data.get("build") or {}
    for stage in STAGES:
        for command in build.get(stage) or []:
            _say(f"[{stage}] {command}")
            env = {**os.environ, "RAPID_PIPELINE_STAGE": stage}
            code = subprocess.call(["sh", "-c", command], cwd=root, env=env)
            if code != 0:
                _say(f"[{stage}] failed (exit status {code}): the pipeline stops")
                return code
    target = data.get("deploy")
    if target is None or ns.skip_deploy:
        _say("build passed; nothing deployed")
        return 0
    url = (ns.url or target.get("url") or deploy_cli.default_url()).rstrip("/")
    overrides = {str(k): str(v) for k, v in (target.get("parameter-overrides") or {}).items()}
    template = os.path.join(root, target["template"])
    _say(f"[deploy] {target['template']} to {url}")
    from rapid.template.control import ControlError
    from rapid.template.loader import TemplateError

    try:
        ids = asyncio.run(deploy_cli.deploy(template, url, overrides, target.get("stack-name")))
    except TemplateError as exc:
        print(f"rapid: error: {exc}", file=sys.stderr)
        return 2
    except (ControlError, RuntimeError, OSError) as exc:
        print(f"rapid: error: {url}: {exc}", file=sys.stderr)
        return 1
    results = deploy_cli.follow(url, ids) if ids else []
    failed = [d for d in results if d["status"] != "Succeeded"]
    for d in failed:
        _say(f"[deploy] {d['function']}:{d['alias']} {d['status']}: {d.get('reason')}")
    if failed:
        return 1
    _say("deployed" + (f" ({len(ids)} gradual deployment{'s' if len(ids) != 1 else ''} succeeded)" if ids else ""))
    return 0
