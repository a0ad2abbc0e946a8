"""The paths a function's runtime needs that a tmpfs on ``/tmp`` would hide (bound back
into its mount namespace, read-only), and who may reach them.

Finding them reads the file system (the executable's real path, its ``#!`` line, the
links at the top of the task root): some 0.1-0.3 ms, on the event loop, on every cold
start. So the answer is kept per code, and found again only when what it was read from
has changed: the times of the executable, of its folder and of the task root (a link
replaced, a file rewritten or moved in, changes one of them).
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rapid.host.code import Code

_KEPT = 64  # codes remembered (a function's versions, and every function of a host)
_known: dict[tuple[object, ...], list[str]] = {}


def needed_paths(code: Code) -> list[str]:
    """The folders and files the runtime of ``code`` needs (see ``_scan``), outermost only."""
    key = _key(code)
    found = _known.get(key) if key is not None else None
    if found is None:
        found = _scan(code)
        if key is not None:
            if len(_known) >= _KEPT:
                _known.pop(next(iter(_known)))
            _known[key] = found
    return list(found)


def _key(code: Code) -> tuple[object, ...] | None:
    stamps: list[int] = []
    try:
        for path in (code.task_root, *((code.argv[0], os.path.dirname(code.argv[0])) if code.argv else ())):
            st = os.stat(path)
            stamps += (st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    except (OSError, IndexError):
        return None
    return (code.task_root, code.runtime_dir, code.argv, code.extensions, code.opt, *stamps)


def under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _scan(code: Code) -> list[str]:
    """The code's folders, the interpreter's, the executable's and its interpreter's, the
    scripts named on its command line, and what the task root's top-level links point to."""
    paths = [code.task_root, code.runtime_dir, sys.prefix, sys.base_prefix, *([code.opt] if code.opt else []),
             *([code.extensions] if code.extensions else [])]  # a declared function's extensions folder
    if code.argv:
        exe = os.path.realpath(code.argv[0])
        paths += [os.path.dirname(code.argv[0]), os.path.dirname(exe)]
        interpreter = shebang(exe)
        if interpreter:
            paths.append(os.path.dirname(os.path.realpath(interpreter)))
        paths += [a for a in code.argv[1:] if os.path.isabs(a) and os.path.exists(a)]
        # A runtime installed by npm under /tmp outside the function's own folders needs its
        # package and their dependencies, not only its entry script's folder: the whole
        # node_modules folder it lives in is bound in (read-only, like every bind here).
        own = (code.task_root, code.runtime_dir)
        for entry in [exe, *(os.path.realpath(a) for a in code.argv[1:] if os.path.isabs(a))]:
            at = entry.find("/node_modules/")
            if at >= 0 and under(entry, "/tmp") and not any(under(entry, o) for o in own):
                paths.append(entry[: at + len("/node_modules")])
    # Links at the top of the task root (`node_modules -> ...`, a shared folder) that point
    # under /tmp elsewhere: their targets too.
    try:
        with os.scandir(code.task_root) as entries:
            for item in entries:
                if item.is_symlink():
                    target = os.path.realpath(item.path)
                    if under(target, "/tmp") and os.path.exists(target):
                        paths.append(target)
    except OSError:
        pass
    out: list[str] = []
    for p in paths:
        p = os.path.abspath(p)
        if p not in out and not any(under(p, q) for q in out):
            out = [q for q in out if not under(q, p)] + [p]
    return out


def shebang(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.readline(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    parts = head[2:].decode(errors="replace").split()
    if not parts:
        return None
    if os.path.basename(parts[0]) == "env" and len(parts) > 1:
        return shutil.which(parts[1])
    return parts[0]


