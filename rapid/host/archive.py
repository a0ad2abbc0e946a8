"""Unpacking a deployment package (a function's or a layer's ZIP) safely.

A ZIP comes from whoever deploys the function, so it is hostile until proven otherwise.
What ``extract`` guarantees, whatever the archive says:

- **Nothing outside the target.** An entry named with ``..``, an absolute path or a drive,
  or a symbolic link whose target resolves outside the tree, is refused (``ArchiveError``)
  and nothing is left behind.
- **No privilege in a mode.** A file keeps at most its ``0o777`` bits (a ``bootstrap`` stays
  executable); setuid, setgid and sticky bits are dropped. Only regular files, folders and
  symbolic links inside the tree are created: an entry that claims to be a device, a FIFO or
  a socket is refused.
- **Bounded size.** The bytes actually written (not the sizes the archive declares) are
  counted; past ``max_bytes`` the unpacking stops with ``ArchiveError``, so a ZIP bomb
  costs at most that much disk.

Folders are created ``0o755`` and files without a mode in the archive (archives made on
Windows) ``0o644``, as Lambda unpacks them.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO

# Lambda's quota for a function and all its layers, unzipped.
MAX_UNZIPPED = 262_144_000
_CHUNK = 1 << 20


class ArchiveError(Exception):
    """The archive is not a usable deployment package; the message says why."""


def extract(archive: str | IO[bytes], target: Path, max_bytes: int = MAX_UNZIPPED) -> int:
    """Unpack ``archive`` into the new folder ``target`` (it must not exist); return the
    bytes written. On any error ``target`` is removed and ``ArchiveError`` raised."""
    target.mkdir(mode=0o755, parents=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            return _extract_all(zf, target.resolve(), max_bytes)
    except zipfile.BadZipFile as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise ArchiveError(f"not a valid zip file ({exc})") from None
    except ArchiveError:
        shutil.rmtree(target, ignore_errors=True)
        raise
    except (OSError, RuntimeError, NotImplementedError, EOFError) as exc:
        # RuntimeError/NotImplementedError: encrypted entries, unknown compression.
        shutil.rmtree(target, ignore_errors=True)
        raise ArchiveError(f"cannot unpack: {exc}") from None


def _extract_all(zf: zipfile.ZipFile, root: Path, max_bytes: int) -> int:
    written = 0
    links: list[tuple[Path, str]] = []
    for info in zf.infolist():
        rel = _safe_name(info.filename)
        if rel is None:
            continue  # the root folder itself ("./")
        dest = root / rel
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if info.is_dir() or kind == stat.S_IFDIR:
            dest.mkdir(mode=0o755, parents=True, exist_ok=True)
            continue
        if kind == stat.S_IFLNK:
            if info.file_size > 4096:
                raise ArchiveError(f"{info.filename}: symbolic link target too long")
            links.append((dest, zf.read(info).decode("utf-8", "surrogateescape")))
            continue
        if kind not in (0, stat.S_IFREG):
            raise ArchiveError(f"{info.filename}: not a regular file, folder or symbolic link")
        _make_parent(dest, root)
        perms = stat.S_IMODE(mode) & 0o777 if mode else 0o644
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out, zf.open(info) as src:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > max_bytes:
                    raise ArchiveError(f"unzipped size must be smaller than {max_bytes} bytes")
                out.write(chunk)
            os.fchmod(out.fileno(), perms)
    # Links last, so that no later entry can be written through one.
    for dest, link_target in links:
        _check_link(dest, link_target, root)
        _make_parent(dest, root)
        os.symlink(link_target, dest)
    # Each link was checked alone; a chain of them (a link through another) is checked as
    # the kernel will follow it.
    for dest, _ in links:
        if not _inside(Path(os.path.realpath(dest)), root):
            raise ArchiveError(f"{dest.relative_to(root)}: symbolic link points outside the package")
    return written


def _safe_name(name: str) -> PurePosixPath | None:
    """The entry's path relative to the root, or ``ArchiveError`` if it would escape it."""
    clean = name.replace("\\", "/")
    path = PurePosixPath(clean)
    if clean.startswith("/") or (path.parts and ":" in path.parts[0]) or ".." in path.parts or "\x00" in clean:
        raise ArchiveError(f"{name}: entry escapes the package root")
    parts = [p for p in path.parts if p not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


def _make_parent(dest: Path, root: Path) -> None:
    parent = dest.parent
    parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    # A folder of the path may not be a link placed by an earlier entry (links come last,
    # so this holds by construction; checked anyway, it costs one resolve per file).
    if not _inside(parent.resolve(), root):
        raise ArchiveError(f"{dest.relative_to(root)}: entry escapes the package root")


def _check_link(dest: Path, link_target: str, root: Path) -> None:
    if os.path.isabs(link_target):
        raise ArchiveError(f"{dest.relative_to(root)}: symbolic link points outside the package")
    resolved = Path(os.path.normpath(dest.parent / link_target))
    if not _inside(resolved, root):
        raise ArchiveError(f"{dest.relative_to(root)}: symbolic link points outside the package")


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
