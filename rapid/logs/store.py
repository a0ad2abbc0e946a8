"""Function logs kept on disk, per function, version and log stream, with a size cap.

Theory of operation
-------------------
Every line a function's instance writes (and every platform line: START, END, REPORT,
INIT_REPORT) goes to ``LogStore.line(function, stream, text)`` as well as to stdout. The
stream is the instance's ``AWS_LAMBDA_LOG_STREAM_NAME`` (``2026/12/01/[$LATEST]<id>``,
so the version is in it, as on Lambda). Lines are buffered and written every
``flush_interval`` seconds, one ``write`` per stream, so the invoke path pays an append.

On disk: ``DATA_DIR/logs/<function>/<stream, quoted>.log``, one event a line,
``<epoch ms>\\t<text>`` with backslashes and newlines escaped. Past ``max_bytes`` for one
function, its oldest streams are deleted, and when its newest stream alone passes the cap,
that stream's older half is; a function holds at most ``max_bytes`` (plus one flush).

``LogReader`` reads the same files (in the daemon for the CloudWatch Logs API, or in
``rapid logs --data-dir``): groups, streams, and the events of a time range, merged across
streams in time order. An event's id is its stream's and its byte offset's, stable while
the file is not cut.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from rapid.core.naming import log_stream_name

SUFFIX = ".log"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append("\n" if text[i + 1] == "n" else text[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def stream_file(stream: str) -> str:
    return quote(stream, safe="[]$") + SUFFIX


class LogStore:
    def __init__(self, root: str, max_bytes: int = 16 * 1024 * 1024, flush_interval: float = 0.2) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.flush_interval = flush_interval
        self._pending: dict[tuple[str, str], list[str]] = {}
        self._sizes: dict[str, int] = {}  # bytes on disk per function
        self._timer: asyncio.TimerHandle | None = None
        self._instance_streams: dict[str, str] = {}  # instance hex -> its stream
        self._request_streams: dict[str, str] = {}  # request id -> the stream of the instance running it
        self.written = 0
        os.makedirs(root, exist_ok=True)
        for function in os.listdir(root):
            folder = os.path.join(root, function)
            if os.path.isdir(folder):
                self._sizes[function] = sum(
                    os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith(SUFFIX))

    def function_line(self, fn: Any, text: str, request_id: str | None, instance: Any,
                      now: float | None = None) -> None:
        """A line of ``fn`` (a ``rapid.host.function.Function``): its stream is the
        instance's, or that of the instance running ``request_id`` (learnt at START and
        kept until REPORT), or else the version's ``platform`` stream. ``now``: the epoch
        time it was written, if the caller read it."""
        self.lines(fn.name, self._stream_of(fn, text, request_id, instance), (text,), now)

    def function_lines(self, fn: Any, texts: tuple[str, ...], request_id: str | None, instance: Any,
                       now: float) -> None:
        """``function_line`` for several lines of one invocation, written at ``now`` (END
        and REPORT: the stream is found once, for the last of them)."""
        stream = self._instance_streams.get(instance.hex) if instance is not None else None
        if stream is None:
            stream = self._stream_of(fn, texts[-1], request_id, instance)
        self.lines(fn.name, stream, texts, now)

    def _stream_of(self, fn: Any, text: str, request_id: str | None, instance: Any) -> str:
        if instance is not None:
            stream = self._instance_streams.get(instance.hex)
            if stream is None:
                if len(self._instance_streams) > 10000:
                    self._instance_streams.clear()
                stream = self._instance_streams[instance.hex] = log_stream_name(instance.hex, fn.version)
        elif request_id is not None:
            stream = self._request_streams.get(request_id)
            if stream is None:
                stream = log_stream_name("platform", fn.version)
                for inst in fn.instances.values():
                    if request_id in inst.running:
                        stream = self._instance_streams.get(inst.hex) or log_stream_name(inst.hex, fn.version)
                        break
                if not text.startswith("REPORT "):  # (a REPORT is the request's last line)
                    if len(self._request_streams) > 4096:
                        self._request_streams.clear()
                    self._request_streams[request_id] = stream
            elif text.startswith("REPORT "):
                del self._request_streams[request_id]
        else:
            stream = log_stream_name("platform", fn.version)
        return stream

    def line(self, function: str, stream: str, text: str) -> None:
        self.lines(function, stream, (text,))

    def lines(self, function: str, stream: str, texts: tuple[str, ...], now: float | None = None) -> None:
        """Lines of one stream, written at ``now`` (epoch seconds; None: the clock now)."""
        key = (function, stream)
        stamp = f"{int((time.time() if now is None else now) * 1000)}\t"
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = []
        for text in texts:
            if "\\" in text or "\n" in text:
                text = _escape(text)
            pending.append(f"{stamp}{text}\n")
        if self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self.flush_interval, self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        self._timer = None
        pending, self._pending = self._pending, {}
        over = set()
        for (function, stream), entries in pending.items():
            folder = os.path.join(self.root, function)
            data = "".join(entries).encode("utf-8", "replace")
            try:
                os.makedirs(folder, exist_ok=True)
                fd = os.open(os.path.join(folder, stream_file(stream)), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
            except OSError:
                continue  # a full disk loses log lines, never an invocation
            self.written += len(entries)
            self._sizes[function] = self._sizes.get(function, 0) + len(data)
            if self._sizes[function] > self.max_bytes:
                over.add(function)
        for function in over:
            self._trim(function)

    def _trim(self, function: str) -> None:
        folder = os.path.join(self.root, function)
        files = []
        for name in os.listdir(folder):
            if name.endswith(SUFFIX):
                path = os.path.join(folder, name)
                st = os.stat(path)
                files.append((st.st_mtime_ns, st.st_size, path))
        files.sort()
        total = sum(size for _, size, _ in files)
        target = self.max_bytes * 3 // 4
        while total > target and len(files) > 1:
            _, size, path = files.pop(0)
            os.unlink(path)
            total -= size
        if total > target and files:  # one stream alone is too big: keep its newer half
            _, size, path = files[0]
            with open(path, "rb") as f:
                f.seek(size - target // 2)
                f.readline()
                rest = f.read()
            tmp = path + ".cut"
            with open(tmp, "wb") as f:
                f.write(rest)
            os.replace(tmp, path)
            total = total - size + len(rest)
        self._sizes[function] = total

    def forget(self, function: str) -> None:
        """A deleted function's logs stay, as CloudWatch keeps a deleted function's group."""

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.flush()

    def __repr__(self) -> str:
        return f"<LogStore {self.root} functions={len(self._sizes)} written={self.written}>"


@dataclass(frozen=True)
class StreamInfo:
    function: str
    name: str
    path: str
    first: int  # epoch ms of the first event, 0 when empty
    last: int
    size: int


@dataclass(frozen=True)
class Event:
    timestamp: int
    message: str
    stream: str
    event_id: str


class LogReader:
    def __init__(self, root: str) -> None:
        self.root = root

    def functions(self) -> list[str]:
        try:
            return sorted(d for d in os.listdir(self.root) if os.path.isdir(os.path.join(self.root, d)))
        except OSError:
            return []

    def streams(self, function: str) -> list[StreamInfo]:
        folder = os.path.join(self.root, function)
        out = []
        try:
            names = os.listdir(folder)
        except OSError:
            return []
        for name in names:
            if not name.endswith(SUFFIX):
                continue
            path = os.path.join(folder, name)
            first = last = 0
            try:
                with open(path, "rb") as f:
                    head = f.readline()
                    size = os.fstat(f.fileno()).st_size
                    f.seek(max(0, size - 65536))
                    tail = f.read().splitlines()
            except OSError:
                continue
            if head:
                first = _ts(head)
                last = _ts(tail[-1]) if tail else first
            out.append(StreamInfo(function, unquote(name[: -len(SUFFIX)]), path, first, last, size))
        return out

    def events(self, function: str, streams: Iterable[StreamInfo] | None = None, start: int | None = None,
               end: int | None = None) -> list[Event]:
        """Every event of the streams (all of the function's) in [start, end), in time order."""
        chosen = list(self.streams(function) if streams is None else streams)
        out: list[Event] = []
        for info in chosen:
            if start is not None and info.last and info.last < start:
                continue
            if end is not None and info.first and info.first >= end:
                continue
            out.extend(self._read(info, start, end))
        out.sort(key=lambda e: (e.timestamp, e.stream, e.event_id))
        return out

    def _read(self, info: StreamInfo, start: int | None, end: int | None) -> Iterator[Event]:
        tag = hashlib.sha1(info.name.encode()).hexdigest()[:8]
        try:
            with open(info.path, "rb") as f:
                data = f.read()
        except OSError:
            return
        offset = 0
        for raw in data.split(b"\n"):
            here = offset
            offset += len(raw) + 1
            if not raw:
                continue
            ts_text, _, text = raw.partition(b"\t")
            try:
                ts = int(ts_text)
            except ValueError:
                continue
            if (start is not None and ts < start) or (end is not None and ts >= end):
                continue
            yield Event(ts, _unescape(text.decode("utf-8", "replace")), info.name, f"{ts:013d}{tag}{here:012d}")

    def __repr__(self) -> str:
        return f"<LogReader {self.root}>"


def _ts(line: bytes) -> int:
    try:
        return int(line.split(b"\t", 1)[0])
    except ValueError:
        return 0
