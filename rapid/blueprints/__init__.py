"""Bundled blueprints: ready functions to start from (``rapid init``).

Each blueprint is one folder here with a ``blueprint.toml`` manifest; the folders are found
by listing, so a new blueprint is a new folder and nothing else. The manifest says:

- ``description``: one line for ``rapid init --list``;
- ``needs``: commands it needs on PATH (``node``, ``bash``);
- ``serve``: how to serve it (default ``rapid serve --template template.yaml``);
- ``try``: the commands to try it, printed by ``rapid init``;
- ``test``: how to run its own tests (``python -m pytest tests``, ``node --test``);
- ``[check]``: what rapid's own test suite does to see it work (``kind`` invoke, http,
  sqs, kinesis, schedule or stream, and what the answer or the logs must hold).

Everything else in the folder is the function: code, ``template.yaml``, ``rapid.toml``,
``events/`` and a test, copied as it is by ``create``.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.abspath(__file__))
MANIFEST = "blueprint.toml"


@dataclass(frozen=True)
class Blueprint:
    name: str
    folder: str
    description: str
    needs: tuple[str, ...] = ()
    serve: str = "rapid serve --template template.yaml"
    tries: tuple[str, ...] = ()
    test: str = ""
    check: dict[str, Any] = field(default_factory=dict)


class BlueprintError(Exception):
    pass


def discover(root: str = ROOT) -> dict[str, Blueprint]:
    out = {}
    for name in sorted(os.listdir(root)):
        manifest = os.path.join(root, name, MANIFEST)
        if not os.path.isfile(manifest):
            continue
        with open(manifest, "rb") as f:
            data = tomllib.load(f)
        out[name] = Blueprint(
            name=name, folder=os.path.join(root, name), description=str(data.get("description", "")),
            needs=tuple(data.get("needs", ())), serve=str(data.get("serve", Blueprint.serve)),
            tries=tuple(data.get("try", ())), test=str(data.get("test", "")), check=dict(data.get("check", {})),
        )
    return out


def create(blueprint: Blueprint, target: str) -> list[str]:
    """Copy the blueprint's files (all but the manifest) into ``target``; the files written."""
    if os.path.exists(target) and os.listdir(target):
        raise BlueprintError(f"{target} exists and is not empty")
    written = []
    for folder, dirs, files in os.walk(blueprint.folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel = os.path.relpath(folder, blueprint.folder)
        dest = os.path.normpath(os.path.join(target, rel))
        os.makedirs(dest, exist_ok=True)
        for name in sorted(files):
            if rel == "." and name == MANIFEST:
                continue
            src = os.path.join(folder, name)
            shutil.copy2(src, os.path.join(dest, name))
            if name == "bootstrap" or os.path.basename(folder) == "extensions":
                os.chmod(os.path.join(dest, name), 0o755)  # whatever the install did to the modes
            written.append(os.path.relpath(os.path.join(dest, name), target))
    return written
