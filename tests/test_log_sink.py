"""rapid.logs.sink.LogSink: lines reach the stream in order, in batches, and all of them."""

from __future__ import annotations

import asyncio
import os
import time

from rapid.logs.sink import EAGER, LogSink


def _read_all(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


async def _until_lines(fd: int, want: int, got: bytearray, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while got.count(b"\n") < want:
        assert time.monotonic() < deadline, f"only {bytes(got)!r} arrived"
        got += _read_all(fd)
        await asyncio.sleep(0.001)


async def test_lines_arrive_in_order_without_a_flush_call() -> None:
    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        sink = LogSink(fd=w)
        for i in range(5):
            sink.line(f"line {i}")
        got = bytearray()
        await _until_lines(r, 5, got)
        assert bytes(got).decode().splitlines() == [f"line {i}" for i in range(5)]
        sink.line("later")  # a lone line after a quiet spell still goes out (the timer)
        got.clear()
        await _until_lines(r, 1, got)
        assert bytes(got) == b"later\n"
    finally:
        os.close(r)
        os.close(w)


async def test_many_lines_and_flush_write_everything() -> None:
    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        sink = LogSink(fd=w)
        n = EAGER * 2 + 3
        for i in range(n):
            sink.line(f"{i}")
        sink.flush()  # as the host does when it closes
        got = bytearray(_read_all(r))
        assert bytes(got).decode().splitlines() == [str(i) for i in range(n)]
        await asyncio.sleep(0.01)  # nothing is written twice afterwards
        assert _read_all(r) == b""
    finally:
        os.close(r)
        os.close(w)


def test_outside_a_loop_a_line_is_written_at_once() -> None:
    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        LogSink(fd=w).line("no loop")
        assert _read_all(r) == b"no loop\n"
    finally:
        os.close(r)
        os.close(w)


async def test_one_timer_serves_lines_flushed_and_refilled() -> None:
    """The lazy timer: a flush leaves it armed; lines that came after it are still written
    within their wait when it fires (re-armed for the rest), and it stops once empty."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        sink = LogSink(fd=w)
        sink.line("first")
        timer = sink._timer
        assert timer is not None
        sink.flush()  # an invocation settles: written now, the timer left as it is
        assert _read_all(r) == b"first\n" and sink._timer is timer
        sink.line("second")  # into the empty buffer again: no second timer
        assert sink._timer is timer
        got = bytearray()
        await _until_lines(r, 1, got)
        assert bytes(got) == b"second\n"
        await asyncio.sleep(0.02)
        assert sink._timer is None  # nothing left to write: no timer keeps running
    finally:
        os.close(r)
        os.close(w)
