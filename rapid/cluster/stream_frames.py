"""What a forwarded stream is made of, and the rules both ends follow: plain values and
pure state (no I/O), used by ``rapid.cluster.stream_forwarding``.

A stream's bytes go from the node running the invocation (the *runner*) to the node the
invoker is connected to (the *origin*) as ``Frame`` messages on the origin's inbox:

============  =====================================================  =====================
kind          what it carries                                        seq
============  =====================================================  =====================
``DATA``      the next bytes, exactly as the runner's response got   1, 2, 3, ... in order
``END``       the stream ended normally                              the next one
``BEAT``      nothing: the runner is alive (once a second)           0 (not counted)
============  =====================================================  =====================

``Receiver.take`` (the origin) turns each frame into what to do: write the bytes, end, or
give the stream up as broken when a frame is missing or out of order (NATS dropped it),
and ``Receiver.silent`` when no frame, not even a beat, came for ``BROKEN_AFTER`` seconds
(the runner died). ``Window`` (the runner) is the flow control: the origin acknowledges
the bytes it has handed to its invoker (``Ack``), and the runner stops reading the
runtime's stream while more than ``WINDOW`` bytes are unacknowledged, and reads again
once they are down to half. So a slow invoker slows the function's stream down across
nodes as it does on one, and neither node buffers more than the window.
"""

from __future__ import annotations

from enum import IntEnum

from msgspec import Struct

WINDOW = 1 << 20  # bytes the runner may have sent and not had acknowledged
ACK_EVERY = WINDOW // 4  # the origin acknowledges once this much more was delivered (and at the end)
BEAT = 1.0  # seconds between the runner's beats
BROKEN_AFTER = 8.0  # seconds of silence after which the origin gives the stream up


class Kind(IntEnum):
    DATA = 0
    END = 1
    BEAT = 2


class Frame(Struct, array_like=True):
    kind: int
    seq: int
    data: bytes = b""


class Ack(Struct, array_like=True):
    delivered: int  # bytes the origin has handed to its invoker so far
    closed: bool = False  # the invoker went away: stop sending


class StreamCall(Struct, array_like=True):
    """A streamed request for another node: InvokeWithResponseStream or a function URL."""

    mode: str  # "invoke" | "url"
    method: str
    target: str  # path and query
    headers: list[tuple[str, str]]
    body: bytes
    rid: str
    origin: str  # the origin node's id
    inbox: str  # where the frames go
    peer_ip: str = ""  # a URL's caller address and the port it used (what the event names)
    port: int = 0


class Head(Struct, array_like=True):
    """The runner's first answer: a whole response, or the head of a stream whose frames
    follow on the inbox and whose acknowledgements go to ``acks``."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    streaming: bool = False
    acks: str = ""


class Broken(Exception):
    """The stream cannot go on: a frame missing, or the runner silent."""


class Receiver:
    """The origin's state: frames in order, bytes delivered, acknowledgements due."""

    def __init__(self) -> None:
        self.next_seq = 1
        self.delivered = 0
        self.acked = 0
        self.ended = False

    def take(self, frame: Frame) -> bytes | None:
        """The bytes to write for ``frame`` (b"" for none); None once it ended. Raises
        ``Broken`` on a frame out of order."""
        if self.ended:
            return None
        if frame.kind == Kind.BEAT:
            return b""
        if frame.seq != self.next_seq:
            raise Broken(f"frame {frame.seq} arrived where {self.next_seq} was due")
        self.next_seq += 1
        if frame.kind == Kind.END:
            self.ended = True
            return None
        self.delivered += len(frame.data)
        return frame.data

    def ack_due(self, paused: bool) -> bool:
        """Whether to acknowledge now (never while the invoker's socket is full)."""
        return not paused and self.delivered - self.acked >= ACK_EVERY

    def acking(self) -> int:
        self.acked = self.delivered
        return self.delivered

    def __repr__(self) -> str:
        return f"<Receiver next={self.next_seq} delivered={self.delivered} acked={self.acked} ended={self.ended}>"


class Window:
    """The runner's state: bytes sent and acknowledged, and whether to hold the runtime."""

    def __init__(self, size: int = WINDOW) -> None:
        self.size = size
        self.sent = 0
        self.acked = 0
        self.seq = 0
        self.held = False

    def send(self, n: int) -> tuple[int, bool]:
        """(seq of the frame, whether the runtime must now be held)."""
        self.seq += 1
        self.sent += n
        hold = not self.held and self.sent - self.acked > self.size
        if hold:
            self.held = True
        return self.seq, hold

    def end(self) -> int:
        self.seq += 1
        return self.seq

    def ack(self, delivered: int) -> bool:
        """Record an acknowledgement; True when a held runtime may be read again."""
        self.acked = max(self.acked, delivered)
        release = self.held and self.sent - self.acked <= self.size // 2
        if release:
            self.held = False
        return release

    def __repr__(self) -> str:
        return f"<Window sent={self.sent} acked={self.acked} held={self.held}>"
