"""The instance lifecycle table: every (state, event) pair, and the paths an instance lives."""

from __future__ import annotations

import itertools

import pytest

from rapid.core.instance_state import IllegalInstanceTransition, InstanceMachine
from rapid.core.instance_state import InstanceEvent as E
from rapid.core.instance_state import InstanceState as S

# Written out by hand from the module's theory of operation, not read back from TRANSITIONS.
EXPECTED = {
    (S.STARTING, E.SPAWN): S.INITIALIZING,
    (S.STARTING, E.RETIRE): S.DRAINING,
    (S.STARTING, E.DIE): S.DEAD,
    (S.INITIALIZING, E.INIT_DONE): S.IDLE,
    (S.INITIALIZING, E.RETIRE): S.DRAINING,
    (S.INITIALIZING, E.DIE): S.DEAD,
    (S.IDLE, E.DISPATCH): S.BUSY,
    (S.IDLE, E.DIE): S.DEAD,
    (S.BUSY, E.DISPATCH): S.BUSY,
    (S.BUSY, E.SETTLE): S.IDLE,
    (S.BUSY, E.RETIRE): S.DRAINING,
    (S.BUSY, E.DIE): S.DEAD,
    (S.DRAINING, E.SPAWN): S.DRAINING,
    (S.DRAINING, E.INIT_DONE): S.DRAINING,
    (S.DRAINING, E.DISPATCH): S.DRAINING,
    (S.DRAINING, E.SETTLE): S.DRAINING,
    (S.DRAINING, E.RETIRE): S.DRAINING,
    (S.DRAINING, E.DIE): S.DEAD,
}


def _machine_in(state: S) -> InstanceMachine:
    m = InstanceMachine()
    m.state = state
    return m


@pytest.mark.parametrize(("state", "event"), list(itertools.product(S, E)))
def test_every_pair_moves_as_the_table_says_or_is_refused(state, event):
    m = _machine_in(state)
    want = EXPECTED.get((state, event))
    assert m.can(event) is (want is not None)
    if want is None:
        with pytest.raises(IllegalInstanceTransition, match=f"{state.value} --{event.value}-->"):
            m.advance(event)
        assert m.state is state  # a refused move changes nothing
    else:
        assert m.advance(event) is want and m.state is want


def test_a_plain_life_start_init_work_rest_die():
    m = InstanceMachine()
    assert (m.state, m.starting, m.initialized, m.dead) == (S.STARTING, True, False, False)
    m.advance(E.SPAWN)
    assert m.starting and not m.initialized
    m.advance(E.INIT_DONE)
    assert (m.state, m.starting, m.initialized) == (S.IDLE, False, True)
    for _ in range(3):
        assert m.advance(E.DISPATCH) is S.BUSY
        assert m.advance(E.SETTLE) is S.IDLE
    m.advance(E.DIE)
    assert (m.dead, m.starting, m.retiring) == (True, False, False)


def test_dead_is_final_and_dies_only_once():
    m = InstanceMachine()
    m.advance(E.DIE)
    for event in E:
        assert not m.can(event)
    with pytest.raises(IllegalInstanceTransition):
        m.advance(E.DIE)


def test_a_draining_instance_finishes_the_init_and_invocation_it_carries():
    # A suppressed start (it carries the queued invocation) whose function is replaced
    # before its init is done: it still initialises and runs that invocation, then dies.
    m = InstanceMachine()
    m.advance(E.SPAWN)
    m.advance(E.RETIRE)
    assert m.retiring and m.starting
    m.advance(E.INIT_DONE)
    assert m.initialized and m.retiring and not m.starting
    m.advance(E.DISPATCH)
    m.advance(E.SETTLE)
    assert m.state is S.DRAINING  # settling does not bring a draining instance back to work
    m.advance(E.DIE)
    assert m.dead


def test_an_idle_instance_is_not_retired_it_is_stopped():
    # Nothing to finish: the pool ends it at once (die), there is no Draining for it.
    m = _machine_in(S.IDLE)
    assert not m.can(E.RETIRE)
    assert m.advance(E.DIE) is S.DEAD


def test_repr_names_the_state():
    m = InstanceMachine()
    m.advance(E.SPAWN)
    m.advance(E.INIT_DONE)
    assert repr(m) == "<InstanceMachine Idle initialized>"
