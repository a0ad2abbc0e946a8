"""One node at a time runs the autoscaler and the gradual-deployment machine of a cluster.

Theory of operation
-------------------
The right to run them is the KV key ``control`` in the bucket ``rapid-owner`` (beside the
queues' key, ``queue_owner``), a lease one node at a time holds (``sole_lease``): two
nodes never both count it valid, and a node that dies (``kill -9``) loses it within
``lease_rules.TTL`` seconds, when another node's next round takes it.

- Every node runs the autoscaler's loop, but ``Autoscaler.active`` is ``valid``: only the
  holder measures, decides and writes (activities, provisioned concurrency). It measures
  the whole cluster: a version's in-flight invocations and ready capacity are the sums
  of every node's part (``provisioned.Spread.figures``, from the membership statuses).
- Gradual deployments run as tasks on the holder. CreateDeployment, StopDeployment and
  PutLifecycleEventHookExecutionStatus arriving on another node are sent over NATS
  request/reply (subject ``rapid.control.owner``) to the holder, which runs them through
  its own CodeDeploy API and answers unchanged; GetDeployment and ListDeployments are
  answered where they arrive, from the records every node follows (``control_sync``),
  but for a GetDeployment of an id not heard of there yet, which the holder answers.
  While no node holds the lease (a takeover) a forwarded call waits up to
  ``WAIT_FOR_OWNER`` seconds, then gets 503 ``ServiceUnavailableException``.
- Taking the lease over, a node fails the deployments recorded as running that no task of
  its own runs (their node died): rolled back if traffic had moved, Failed, as a single
  node does at start-up for a deployment it was killed during. Giving it up (stopping,
  or the lease lapsed), its running deployments roll back and stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import Struct

from rapid.api import awsjson
from rapid.cluster.link import Link
from rapid.cluster.sole_lease import BUCKET as BUCKET, SoleLease  # (BUCKET: for readers of the key)
from rapid.http.message import Request, Response

if TYPE_CHECKING:
    from rapid.autoscaling.runner import Autoscaler
    from rapid.deployments.service import Deployments

KEY = "control"
SUBJECT = "rapid.control.owner"
FORWARDED = "x-rapid-control-forwarded"
TARGET = "CodeDeploy_20141006"
RUN_BY_OWNER = frozenset({"CreateDeployment", "StopDeployment", "PutLifecycleEventHookExecutionStatus"})
WAIT_FOR_OWNER = 20.0
CALL_TIMEOUT = 30.0
_CONTENT_TYPE = "application/x-amz-json-1.1"
_HOP_BY_HOP = frozenset({"content-length", "connection", "transfer-encoding", "keep-alive", "expect"})


class Call(Struct, array_like=True):
    rid: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


class Answer(Struct, array_like=True):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _unavailable(rid: str, why: str) -> Response:
    return Response.json(503, {"__type": "ServiceUnavailableException",
                               "message": f"The deployments are moving to another node: {why}; try again."},
                         [("x-amzn-RequestId", rid), ("Content-Type", _CONTENT_TYPE)])


class ControlOwner(SoleLease):
    key, label, what = KEY, "cluster control", "the control lease"
    right = "the autoscaler and the gradual deployments"

    def __init__(self, link: Link, node_id: str, autoscaler: Autoscaler, deployments: Deployments,
                 say: Callable[[str], None]) -> None:
        super().__init__(link, node_id, say)
        self.autoscaler = autoscaler
        self.deployments = deployments
        self.owner = False  # running the autoscaler and the deployments now
        self.forwarded = 0
        self.served = 0
        self._inner: Callable[[Request, str], Any] | None = None  # the CodeDeploy API of this node
        self._sub: Any = None
        self._serving: set[asyncio.Task[None]] = set()  # answers being made (the link's loop)

    def __repr__(self) -> str:
        role = "owner" if self.owner else "follower"
        return f"<ControlOwner {role} takeovers={self.takeovers} forwarded={self.forwarded} served={self.served}>"

    async def start(self, app: Any) -> None:
        """Route this node's CodeDeploy calls through ``handle``, then take part in the lease."""
        self._inner = inner = app.targets[TARGET]
        app.targets[TARGET] = lambda req, rid: self.handle(req, rid, inner)
        self.autoscaler.active = self.valid
        await self._open()

    # -- the lease (rapid.cluster.sole_lease) ---------------------------------------------

    def valid(self) -> bool:
        """The lease is this node's by its own clock, and it runs them."""
        return self.owner and super().valid()

    async def _gained(self) -> None:
        self.owner = True
        self.takeovers += 1
        try:
            ended = self.deployments.abandon("the node running the deployment stopped")
        except Exception as exc:  # noqa: BLE001 - the records stay as they are; said once
            self.say(f"warning: cluster: deployments left by another node: {exc}")
            ended = []
        self._sub = await self.link.run(self.link.nc.subscribe(SUBJECT, cb=self._serve))
        self.say("cluster: this node runs the autoscaler and the gradual deployments"
                 + (f" (failed {len(ended)} left running by a node gone: {', '.join(ended)})" if ended else ""))

    def _running(self) -> bool:
        return self.owner

    async def _wind_down(self) -> None:
        self.owner = False
        if self._sub is not None:
            sub, self._sub = self._sub, None
            with contextlib.suppress(Exception):
                await self.link.run(sub.unsubscribe())
        with contextlib.suppress(Exception):  # their records may not be writable now (NATS away)
            await self.deployments.stop("this node no longer runs the gradual deployments")

    # -- CodeDeploy calls -----------------------------------------------------------------

    def handle(self, req: Request, rid: str,
               inner: Callable[[Request, str], Any]) -> Response | asyncio.Future[Response]:
        op = req.headers.get("x-amz-target", "").partition(".")[2]
        if self.valid() or (op not in RUN_BY_OWNER and not (op == "GetDeployment" and self._unknown(req))):
            return inner(req, rid)  # type: ignore[no-any-return]
        if FORWARDED in req.headers:
            return _unavailable(rid, "this node no longer runs them")
        return asyncio.ensure_future(self._forward(req, rid))

    def _unknown(self, req: Request) -> bool:
        """A GetDeployment of an id this node has not heard of yet (just created through
        another node): the holder is asked, so a fresh id is never "not found"."""
        try:
            did = msgspec.json.decode(req.body).get("deploymentId")
        except (msgspec.DecodeError, AttributeError):
            return False
        return isinstance(did, str) and did.startswith("d-") and did not in self.deployments.records

    async def _forward(self, req: Request, rid: str) -> Response:
        from nats.errors import NoRespondersError, TimeoutError as NatsTimeout

        headers = [(k, v) for k, v in req.headers.items() if k not in _HOP_BY_HOP]
        headers.append((FORWARDED, self.node_id))
        data = msgspec.msgpack.encode(Call(rid, req.target, headers, bytes(req.body)))
        give_up = time.monotonic() + WAIT_FOR_OWNER
        while True:
            if self.valid():  # this node took over meanwhile
                assert self._inner is not None
                result = self._inner(req, rid)
                return await result if isinstance(result, asyncio.Future) else result  # type: ignore[no-any-return]
            try:
                msg = await self.link.run(self.link.nc.request(SUBJECT, data, timeout=CALL_TIMEOUT))
            except NoRespondersError:
                if time.monotonic() >= give_up:
                    return _unavailable(rid, "no node runs them now")
                await asyncio.sleep(0.25)
                continue
            except NatsTimeout:
                return _unavailable(rid, "the node running them did not answer")
            except Exception as exc:  # noqa: BLE001 - NATS away
                if time.monotonic() >= give_up:
                    return _unavailable(rid, f"NATS: {exc or type(exc).__name__}")
                await asyncio.sleep(0.25)
                continue
            answer = msgspec.msgpack.decode(msg.data, type=Answer)
            if answer.status == 503 and time.monotonic() < give_up and b"moving to another node" in answer.body:
                await asyncio.sleep(0.25)
                continue
            self.forwarded += 1
            return Response(answer.status, answer.body, [(k, v) for k, v in answer.headers])

    async def _serve(self, msg: Any) -> None:
        """On the link's loop: each call on a task of its own (a CreateDeployment waits for
        its start; nats-py hands a subscription its next message only after the callback)."""
        task = asyncio.get_running_loop().create_task(self._respond(msg))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _respond(self, msg: Any) -> None:
        """On the link's loop: the call runs on the daemon's loop, through the CodeDeploy API."""
        assert self._loop is not None
        try:
            data = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._run(msg.data), self._loop))
        except Exception as exc:  # noqa: BLE001 - the caller must get an answer
            failed = awsjson.refusal("InternalFailure", str(exc), "", _CONTENT_TYPE)
            data = msgspec.msgpack.encode(Answer(failed.status, list(failed.headers), bytes(failed.body)))
        with contextlib.suppress(Exception):
            await msg.respond(data)

    async def _run(self, data: bytes) -> bytes:
        call = msgspec.msgpack.decode(data, type=Call)
        req = Request("POST", call.target)
        req.headers = dict(call.headers)
        req.body = call.body
        rid = call.rid
        self.served += 1
        if not self.valid():
            response: Response = _unavailable(rid, "this node no longer runs them")
        else:
            assert self._inner is not None
            result = self._inner(req, rid)
            response = await result if isinstance(result, asyncio.Future) else result
        return msgspec.msgpack.encode(Answer(response.status, list(response.headers), bytes(response.body)))
