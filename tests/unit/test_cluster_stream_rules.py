"""The pure rules of forwarded streams and of the cluster-wide provisioned figures."""

from __future__ import annotations

import pytest

from rapid.cluster.provisioned import combined
from rapid.cluster.status import ProvisionedPart
from rapid.cluster.stream_frames import ACK_EVERY, WINDOW, Broken, Frame, Kind, Receiver, Window


def test_frames_are_taken_in_order_until_the_end() -> None:
    recv = Receiver()
    assert recv.take(Frame(Kind.DATA, 1, b"ab")) == b"ab"
    assert recv.take(Frame(Kind.BEAT, 0)) == b""  # a beat carries nothing and is not counted
    assert recv.take(Frame(Kind.DATA, 2, b"c")) == b"c"
    assert recv.delivered == 3
    assert recv.take(Frame(Kind.END, 3)) is None
    assert recv.ended and recv.take(Frame(Kind.DATA, 4, b"late")) is None


@pytest.mark.parametrize("seq", [0, 3, 1])
def test_a_missing_or_repeated_frame_breaks_the_stream(seq: int) -> None:
    recv = Receiver()
    recv.take(Frame(Kind.DATA, 1, b"x"))
    with pytest.raises(Broken):
        recv.take(Frame(Kind.DATA, seq, b"y"))


def test_acknowledgements_are_due_every_quarter_window_and_never_while_paused() -> None:
    recv = Receiver()
    recv.take(Frame(Kind.DATA, 1, b"z" * (ACK_EVERY - 1)))
    assert not recv.ack_due(False)
    recv.take(Frame(Kind.DATA, 2, b"z"))
    assert recv.ack_due(False) and not recv.ack_due(True)
    assert recv.acking() == ACK_EVERY and not recv.ack_due(False)


def test_the_runner_holds_the_runtime_past_the_window_and_lets_go_at_half() -> None:
    w = Window()
    assert w.send(WINDOW) == (1, False)  # exactly the window: not past it
    seq, hold = w.send(1)
    assert (seq, hold) == (2, True) and w.held
    assert w.send(10) == (3, False)  # held once, not again
    assert not w.ack(10)  # still more than half the window out
    assert w.ack(WINDOW // 2 + 11) and not w.held
    assert not w.ack(0)  # an old acknowledgement changes nothing
    assert w.end() == 4


def _p(part: int, ready: int, failed: str | None = None) -> ProvisionedPart:
    return ProvisionedPart(part, ready, ready, 0, failed)


@pytest.mark.parametrize(("parts", "expected"), [
    ([_p(2, 2), _p(2, 2), _p(1, 1)], (5, "READY", None)),
    ([_p(2, 2), _p(2, 1), _p(1, 1)], (4, "IN_PROGRESS", None)),  # one part still starting
    ([_p(2, 2), _p(2, 2)], (4, "IN_PROGRESS", None)),  # the shares do not add up yet (a node left)
    ([_p(3, 3), _p(2, 2), _p(1, 1)], (5, "IN_PROGRESS", None)),  # too many for a moment: never over 5
    ([_p(2, 2), _p(2, 0, "FUNCTION_ERROR_INIT_FAILURE: x"), _p(1, 1)],
     (3, "FAILED", "FUNCTION_ERROR_INIT_FAILURE: x")),
    ([_p(2, 2, "old failure"), _p(3, 3)], (5, "READY", None)),  # a part that recovered is not failed
])
def test_the_whole_settings_figures(parts: list[ProvisionedPart], expected: tuple[int, str, str | None]) -> None:
    assert combined(5, parts) == expected
