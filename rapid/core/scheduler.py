"""Placing invocations on instances: a pure decision, carried out by the caller.

Theory of operation
-------------------
A function owns a FIFO queue of invocations and a pool of instances. An instance is

- *starting*  (spawned, its init not finished),
- *idle*      (its runtime holds a ``/next`` and nothing is assigned to it), or
- *finishing* (it just answered and is expected back at ``/next`` within a short grace),
- *busy*      (running an invocation, or past that grace without a ``/next``).

An instance takes up to ``per_instance`` invocations at once (1 on Lambda; more on Lambda
Managed Instances), so ``idle`` lists an instance once per ``/next`` it holds.

``plan`` looks at that state and returns the actions that move work forward, and nothing
else:

1. dispatch the oldest invocations to idle slots, most recently used first (so the least
   recently used instances age out);
2. start as many instances as the rest of the queue needs, counting the capacity of those
   already starting or finishing, within ``limit`` instances (a sequential caller whose
   next invoke beats the runtime's ``/next`` by a few microseconds should get the warm
   instance, not a cold start);
3. throttle what still has no place, newest first: that is Lambda's 429, not a queue.
   (A host may choose ``overflow = "queue"`` instead: the rest then waits its turn.)

An instance that starts after its predecessor died mid-invoke or failed init is a *reset*:
Lambda re-runs init inside the next invoke (a "suppressed init"), so that start carries the
oldest queued invocation with it and its init runs on that invocation's clock.

This is httpcore's connection pool rule: the pool decides in one pure method, the async
layer performs the I/O. It is tested without processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PoolView:
    idle: Sequence[int]  # instance ids, one per held /next, least recently used first
    starting: int  # instances whose init has not finished and that carry no invocation
    busy: int  # every other live instance but the finishing ones
    queued: int
    limit: int  # the most instances this pool may run at once
    resets: int = 0  # died instances whose next start must be a suppressed init
    per_instance: int = 1  # invocations one instance takes at once
    throttle: bool = True  # False: what has no place waits in the queue instead (not AWS)
    finishing: int = 0  # answered just now; expected back at /next any moment


@dataclass(frozen=True, slots=True)
class Dispatch:
    instance: int


@dataclass(frozen=True, slots=True)
class Start:
    suppressed: bool = False  # init runs inside the oldest queued invocation


@dataclass(frozen=True, slots=True)
class Throttle:
    count: int  # the newest ``count`` queued invocations are answered 429


Action = Dispatch | Start | Throttle


def plan(view: PoolView) -> list[Action]:
    actions: list[Action] = []
    idle = list(view.idle)
    queued = view.queued
    while queued and idle:
        actions.append(Dispatch(idle.pop()))  # most recently used first
        queued -= 1
    instances = len(set(view.idle)) + view.starting + view.busy + view.finishing
    room = max(0, view.limit - instances)
    k = max(1, view.per_instance)
    # Starting and finishing instances will take the queue head when they reach /next.
    waiting = max(0, queued - (view.starting + view.finishing) * k)
    resets = view.resets
    while waiting > 0 and room > 0:
        if resets > 0:  # a suppressed start takes one invocation with it
            actions.append(Start(suppressed=True))
            resets -= 1
            waiting -= 1
            waiting = max(0, waiting - (k - 1))  # its instance's other slots
        else:
            actions.append(Start())
            waiting = max(0, waiting - k)
        room -= 1
    if waiting > 0 and view.throttle:
        actions.append(Throttle(waiting))
    return actions
