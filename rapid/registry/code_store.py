"""Deployment packages, content-addressed: ``DATA_DIR/code/objects/<sha256>.zip`` and the
tree it unpacks to, ``DATA_DIR/code/trees/<sha256>/``, unpacked once and left read-only.

Unpacking goes through ``rapid.host.archive.extract`` (nothing escapes the tree, no setuid
bits, bounded size) into a ``.partial`` folder renamed into place, so a tree that exists is
whole. ``put`` is blocking and thread-safe: the API runs it on a worker thread, so a large
upload never stalls the event loop (and the runtimes it serves). Layer stacks are merged into ``DATA_DIR/code/opt/<digest of the stack>/``: each
layer's tree in order, a later layer's file replacing an earlier one's (hard links, so a
merge costs no copy).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Sequence
from pathlib import Path

from rapid.core.errors import invalid_parameter
from rapid.host.archive import MAX_UNZIPPED, ArchiveError, extract
from rapid.registry.model import CodeRef


class CodeStore:
    def __init__(self, data_dir: str) -> None:
        self.root = Path(data_dir) / "code"
        self.objects = self.root / "objects"
        self.trees = self.root / "trees"
        self.opt = self.root / "opt"
        for folder in (self.root, self.objects, self.trees, self.opt):
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o755)  # instances under their own uid read the code

    def put(self, data: bytes, max_unzipped: int = MAX_UNZIPPED) -> CodeRef:
        """Store and unpack a ZIP; InvalidParameterValueException if it is not a safe one."""
        digest = hashlib.sha256(data).hexdigest()
        tree = self.trees / digest
        zip_path = self.objects / f"{digest}.zip"
        if not zip_path.exists():
            partial = zip_path.with_suffix(f".{uuid.uuid4().hex}.partial")  # two uploads may race
            partial.write_bytes(data)
            os.replace(partial, zip_path)
        if not tree.is_dir():
            work = self.trees / f"{digest}.{uuid.uuid4().hex}.partial"
            try:
                extract(str(zip_path), work, max_unzipped)
            except ArchiveError as exc:
                zip_path.unlink(missing_ok=True)
                text = str(exc)
                if text.startswith("unzipped size"):
                    raise invalid_parameter(f"Unzipped size must be smaller than {max_unzipped} bytes") from None
                raise invalid_parameter(f"Could not unzip uploaded file. Please check your file, then try to "
                                        f"upload again. ({text})") from None
            _read_only(work)
            try:
                os.rename(work, tree)
            except OSError:  # the same ZIP, unpacked meanwhile by another upload
                if not tree.is_dir():
                    raise
                shutil.rmtree(work, ignore_errors=True)
        return CodeRef(sha256=digest, size=len(data), unzipped=_tree_size(tree))

    def tree(self, ref: CodeRef) -> str:
        return str(self.trees / ref.sha256)

    def zip_path(self, ref: CodeRef) -> str:
        return str(self.objects / f"{ref.sha256}.zip")

    def has(self, ref: CodeRef) -> bool:
        return (self.trees / ref.sha256).is_dir()

    def merged(self, layers: Sequence[CodeRef]) -> str:
        """One folder holding the layers' trees merged in order (later wins): what /opt shows."""
        key = hashlib.sha256("\n".join(r.sha256 for r in layers).encode()).hexdigest()[:32]
        target = self.opt / key
        if target.is_dir():
            return str(target)
        work = self.opt / f"{key}.{uuid.uuid4().hex}.partial"
        work.mkdir(mode=0o755)
        for ref in layers:
            _overlay(self.trees / ref.sha256, work)
        try:
            os.rename(work, target)
        except OSError:
            if not target.is_dir():
                raise
            shutil.rmtree(work, ignore_errors=True)
        return str(target)

    def clean(self) -> None:
        """Remove what an interrupted upload left (``*.partial``); at start, before any upload."""
        for folder in (self.objects, self.trees, self.opt):
            for entry in folder.iterdir():
                if entry.name.endswith(".partial"):
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"<CodeStore {self.root}>"


def _read_only(root: Path) -> None:
    for folder, dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                os.chmod(path, stat.S_IMODE(mode) & ~0o222)


def _tree_size(root: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


def _overlay(src: Path, dst: Path) -> None:
    for folder, dirs, files in os.walk(src):
        rel = os.path.relpath(folder, src)
        out = dst if rel == "." else dst / rel
        for name in dirs:
            path = out / name
            source = os.path.join(folder, name)
            if os.path.islink(source):
                _replace(path)
                os.symlink(os.readlink(source), path)
            elif path.is_symlink() or (path.exists() and not path.is_dir()):
                _replace(path)
                path.mkdir(mode=0o755)
            elif not path.exists():
                path.mkdir(mode=0o755)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        for name in files:
            source = os.path.join(folder, name)
            path = out / name
            _replace(path)
            if os.path.islink(source):
                os.symlink(os.readlink(source), path)
            else:
                os.link(source, path)


def _replace(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
