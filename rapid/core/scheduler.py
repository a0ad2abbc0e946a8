"""Placing invocations on instances: a pure decision, carried out by the caller.

Theory of operation
-------------------
A function owns a FIFO queue of invocations and a pool of instances. An instance is

- *starting*  (spawned, its init not finished),
- *idle*      (its runtime holds a ``/next`` and nothing is assigned to it), or
- *busy*      (running an invocation, or answered and not yet back at ``/next``).

``plan`` looks at that state and returns the actions that move work forward, and nothing
else: dispatch the oldest invocations to idle instances (most recently used first, so the
least recently used age out), then start as many instances as the queue still needs,
counting the ones already starting, within the pool's limit. An instance that starts after
its predecessor died mid-invoke or failed init is a *reset*: Lambda re-runs init inside the
next invoke (a "suppressed init"), so that start carries the oldest queued invocation with
it and its init runs on that invocation's clock.

This is httpcore's connection pool rule: the pool decides in one pure method, the async
layer performs the I/O. It is tested without processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PoolView:
    idle: Sequence[int]  # instance ids, least recently used first
    starting: int
    busy: int
    queued: int
    limit: int  # the most instances this pool may run at once
    resets: int = 0  # died instances whose next start must be a suppressed init


@dataclass(frozen=True, slots=True)
class Dispatch:
    instance: int


@dataclass(frozen=True, slots=True)
class Start:
    suppressed: bool = False  # init runs inside the oldest queued invocation


Action = Dispatch | Start


def plan(view: PoolView) -> list[Action]:
    actions: list[Action] = []
    idle = list(view.idle)
    queued = view.queued
    while queued and idle:
        actions.append(Dispatch(idle.pop()))  # most recently used first
        queued -= 1
    running = len(view.idle) + view.starting + view.busy
    room = view.limit - running
    # Suppressed starts take an invocation with them; plain starts wait for the queue head.
    need = queued - view.starting
    resets = view.resets
    while need > 0 and room > 0:
        if resets > 0:
            actions.append(Start(suppressed=True))
            resets -= 1
        else:
            actions.append(Start())
        need -= 1
        room -= 1
    return actions
