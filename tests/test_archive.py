"""Deployment packages are hostile until unpacked safely (rapid.host.archive)."""

from __future__ import annotations

import io
import os
import stat
import zipfile
import pytest

from rapid.host.archive import ArchiveError, extract


def _zip(*entries: tuple[str, bytes, int]) -> io.BytesIO:
    """A ZIP of (name, data, unix mode with file type) entries, as `zip` on Linux makes them."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            # No unix mode: what a Windows zip writes (the MS-DOS "archive" attribute only).
            info.external_attr = mode << 16 if mode else 0x20
            info.create_system = 3 if mode else 0
            zf.writestr(info, data)
    buf.seek(0)
    return buf


def test_modes_are_kept_but_setuid_setgid_and_sticky_are_dropped(tmp_path):
    archive = _zip(
        ("bootstrap", b"#!/bin/sh\n", stat.S_IFREG | 0o755),
        ("id", b"\x7fELF", stat.S_IFREG | 0o4755),
        ("grp", b"x", stat.S_IFREG | 0o2750),
        ("sticky", b"x", stat.S_IFREG | 0o1777),
        ("plain.txt", b"x", 0),  # no unix mode (a Windows archive)
    )
    extract(archive, tmp_path / "out")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "out").iterdir()}
    assert modes == {"bootstrap": 0o755, "id": 0o755, "grp": 0o750, "sticky": 0o777, "plain.txt": 0o644}


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "/etc/evil", "C:/evil", "..\\evil"])
def test_an_entry_escaping_the_root_is_refused_and_nothing_is_written(tmp_path, name):
    archive = _zip(("ok", b"x", stat.S_IFREG | 0o644), (name, b"owned", stat.S_IFREG | 0o644))
    with pytest.raises(ArchiveError, match="escapes the package root"):
        extract(archive, tmp_path / "pkg" / "out")
    assert not (tmp_path / "pkg" / "out").exists()
    assert not (tmp_path / "pkg" / "evil").exists() and not (tmp_path / "evil").exists()


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "sub/../../outside"])
def test_a_symbolic_link_pointing_out_is_refused(tmp_path, target):
    archive = _zip(("link", target.encode(), stat.S_IFLNK | 0o777))
    with pytest.raises(ArchiveError, match="symbolic link points outside"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_chain_of_links_that_escapes_only_when_followed_is_refused(tmp_path):
    # d1/d2/l -> ".." is root/d1, inside; m -> "d1/d2/l/../../.." looks like root lexically,
    # but the kernel follows l first and lands above the root.
    archive = _zip(
        ("d1/d2/", b"", stat.S_IFDIR | 0o755),
        ("d1/d2/l", b"..", stat.S_IFLNK | 0o777),
        ("m", b"d1/d2/l/../../..", stat.S_IFLNK | 0o777),
    )
    with pytest.raises(ArchiveError, match="symbolic link points outside"):
        extract(archive, tmp_path / "out")


def test_links_inside_the_package_are_kept(tmp_path):
    archive = _zip(
        ("lib/libx.so.1", b"elf", stat.S_IFREG | 0o755),
        ("lib/libx.so", b"libx.so.1", stat.S_IFLNK | 0o777),
    )
    extract(archive, tmp_path / "out")
    link = tmp_path / "out" / "lib" / "libx.so"
    assert link.is_symlink() and os.readlink(link) == "libx.so.1" and link.read_bytes() == b"elf"


@pytest.mark.parametrize("kind", [stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK])
def test_devices_fifos_and_sockets_are_never_created(tmp_path, kind):
    archive = _zip(("dev", b"", kind | 0o666))
    with pytest.raises(ArchiveError, match="not a regular file"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_zip_bomb_stops_at_the_limit_counting_bytes_written(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros", b"\0" * (8 << 20))  # 8 MB that compress to a few KB
    buf.seek(0)
    with pytest.raises(ArchiveError, match="unzipped size must be smaller than 1048576 bytes"):
        extract(buf, tmp_path / "out", max_bytes=1 << 20)
    assert not (tmp_path / "out").exists()


def test_not_a_zip(tmp_path):
    with pytest.raises(ArchiveError, match="not a valid zip file"):
        extract(io.BytesIO(b"PK\x03\x04 nonsense"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_returns_the_bytes_written(tmp_path):
    archive = _zip(("a", b"12345", stat.S_IFREG | 0o644), ("d/b", b"678", stat.S_IFREG | 0o644))
    assert extract(archive, tmp_path / "out") == 8
    assert (tmp_path / "out" / "d" / "b").read_bytes() == b"678"
