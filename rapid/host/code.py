"""Where a function's code lives and what command starts its runtime.

A function is a folder (or a ``.zip`` of one) holding either an executable ``bootstrap``
(a custom runtime, ``provided``) or a handler for one of the bundled runtimes, which are
small custom runtimes shipped with rapid (``bootstraps/``). Drop-in mode gives the command
directly, as the RIE does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from rapid.config import ConfigError, FunctionConfig
from rapid.host.archive import ArchiveError, extract
from rapid.core.errors import FunctionError, invalid_entrypoint


def bootstraps_dir() -> Path:
    """The bundled runtimes: inside the installed package, or beside it in a checkout."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_bootstraps", here.parent / "bootstraps"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("rapid's bundled bootstraps are missing from this installation")


@dataclass(frozen=True, slots=True)
class Code:
    task_root: str
    runtime_dir: str
    argv: tuple[str, ...] | None  # None: no valid entrypoint; see ``entrypoint_error``
    entrypoint_error: FunctionError | None = None
    opt: str = ""  # the merged layers, shown at /opt (a folder of the code store), or none


def bundled(runtime: str, task_root: str, python: str | None = None) -> Code:
    folder = bootstraps_dir() / runtime
    script = str(folder / "bootstrap")
    if runtime == "python":
        argv: tuple[str, ...] = (python or sys.executable, script)
    elif runtime == "node":
        node = shutil.which("node")
        if node is None:  # as on Lambda, a missing runtime fails the invoke, not the host
            return Code(task_root, str(folder), None, invalid_entrypoint("runtime 'node' needs `node` on PATH"))
        argv = (node, script)
    elif runtime == "shell":
        argv = (shutil.which("bash") or "/bin/bash", script)
    else:
        raise ConfigError(f"unknown runtime {runtime!r}")
    return Code(task_root, str(folder), argv)


def custom(task_root: str, search: tuple[str, ...]) -> Code:
    """A ``provided`` runtime: the first executable bootstrap in ``search``."""
    for candidate in search:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return Code(task_root, task_root, (candidate,))
    listed = " ".join(search)
    return Code(task_root, task_root, None, invalid_entrypoint(f"Couldn't find valid bootstrap(s): [{listed}]"))


def command(task_root: str, argv: list[str]) -> Code:
    """Drop-in mode: the command is the bootstrap, found on PATH or relative to the task root."""
    exe = argv[0]
    if "/" not in exe:
        found = shutil.which(exe)
        if found is not None:
            return Code(task_root, task_root, (found, *argv[1:]))
    path = exe if os.path.isabs(exe) else os.path.join(task_root, exe)
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return Code(task_root, task_root, (path, *argv[1:]))
    return Code(task_root, task_root, None, invalid_entrypoint(f"Couldn't find valid bootstrap(s): [{exe}]"))


def unpack_zip(archive: str, into: Path) -> str:
    """Extract a function's ``.zip`` once, into a folder named after the archive's content
    hash, safely (``rapid.host.archive``: nothing outside the folder, no setuid bits)."""
    digest = hashlib.sha256(Path(archive).read_bytes()).hexdigest()[:16]
    target = into / digest
    if target.is_dir():
        return str(target)
    partial = into / (digest + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        extract(archive, partial)
    except ArchiveError as exc:
        raise ConfigError(f"{archive}: {exc}") from None
    partial.rename(target)
    return str(target)


# Where Lambda looks for a custom runtime's bootstrap (and the RIE, /var/runtime too).
DROPIN_SEARCH = ("/var/task/bootstrap", "/opt/bootstrap", "/var/runtime/bootstrap")


def code_for(fc: FunctionConfig, *, dropin: bool, data_dir: Path) -> Code:
    """Resolve a function's configuration to its task root and runtime command."""
    assert fc.path is not None
    if fc.command:
        return command(os.path.abspath(fc.path), fc.command)
    path = fc.path
    if path.endswith(".zip"):
        path = unpack_zip(path, data_dir / "code")
    task_root = os.path.abspath(path)
    if fc.runtime != "provided":
        return bundled(fc.runtime, task_root)
    search = (os.path.join(task_root, "bootstrap"),)
    if dropin:
        search += tuple(p for p in DROPIN_SEARCH if p not in search)
    return custom(task_root, search)
