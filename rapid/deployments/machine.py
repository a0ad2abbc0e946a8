"""A gradual deployment's life, as a transition table. Pure: no clock, no I/O.

====================  ===========  ====================  =====================================
from                  event        to                    what the driver does on arrival
====================  ===========  ====================  =====================================
Created               START        PreTraffic            invoke the PreTraffic hook (if any)
PreTraffic            HOOK_OK      Shifting              the first step's weight
PreTraffic            HOOK_FAILED  Failed                nothing moved: the alias is untouched
Shifting              STEP_DONE    Shifting              the next step's weight
Shifting              SHIFTED      PostTraffic           invoke the PostTraffic hook (if any)
Shifting              ALARM        Failed                roll the alias back at once
PostTraffic           HOOK_OK      Succeeded             --
PostTraffic           HOOK_FAILED  Failed                roll back
PostTraffic           ALARM        Failed                roll back
(any but the ends)    STOP         Stopped               roll back (superseded, or rapid stops)
====================  ===========  ====================  =====================================

Any other pair raises ``IllegalTransition``. ``Succeeded``, ``Failed`` and ``Stopped`` are
the ends. ``moved(phase)`` says whether traffic may have left the old version (a rollback
is needed).
"""

from __future__ import annotations

from enum import Enum


class Phase(str, Enum):
    CREATED = "Created"
    PRE_TRAFFIC = "PreTraffic"
    SHIFTING = "Shifting"
    POST_TRAFFIC = "PostTraffic"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPED = "Stopped"


class Event(str, Enum):
    START = "START"
    HOOK_OK = "HOOK_OK"
    HOOK_FAILED = "HOOK_FAILED"
    STEP_DONE = "STEP_DONE"
    SHIFTED = "SHIFTED"
    ALARM = "ALARM"
    STOP = "STOP"


class IllegalTransition(Exception):
    def __init__(self, phase: Phase, event: Event) -> None:
        super().__init__(f"a deployment in {phase.value} cannot take {event.value}")


P, E = Phase, Event
TABLE: dict[tuple[Phase, Event], Phase] = {
    (P.CREATED, E.START): P.PRE_TRAFFIC,
    (P.PRE_TRAFFIC, E.HOOK_OK): P.SHIFTING,
    (P.PRE_TRAFFIC, E.HOOK_FAILED): P.FAILED,
    (P.SHIFTING, E.STEP_DONE): P.SHIFTING,
    (P.SHIFTING, E.SHIFTED): P.POST_TRAFFIC,
    (P.SHIFTING, E.ALARM): P.FAILED,
    (P.POST_TRAFFIC, E.HOOK_OK): P.SUCCEEDED,
    (P.POST_TRAFFIC, E.HOOK_FAILED): P.FAILED,
    (P.POST_TRAFFIC, E.ALARM): P.FAILED,
}
for _phase in (P.CREATED, P.PRE_TRAFFIC, P.SHIFTING, P.POST_TRAFFIC):
    TABLE[(_phase, E.STOP)] = P.STOPPED
ENDS = frozenset({P.SUCCEEDED, P.FAILED, P.STOPPED})


def advance(phase: Phase, event: Event) -> Phase:
    to = TABLE.get((phase, event))
    if to is None:
        raise IllegalTransition(phase, event)
    return to


def moved(phase: Phase) -> bool:
    """Whether the alias may carry traffic to the new version in ``phase``."""
    return phase in (P.SHIFTING, P.POST_TRAFFIC)


def status(phase: Phase) -> str:
    """CodeDeploy's deployment status for a phase."""
    if phase is P.CREATED:
        return "Created"
    if phase in ENDS:
        return str(phase.value)
    return "InProgress"
