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

The calls travel as every call between nodes does (``request_reply``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import Struct

from rapid.api import awsjson
from rapid.cluster.link import Link
from rapid.cluster.request_reply import HOP_BY_HOP, MOVING, Responder, answer, passed_on, settled, to_owner
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


class Call(Struct, array_like=True):
    rid: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


def _unavailable(rid: str, why: str) -> Response:
    return Response.json(503, {"__type": "ServiceUnavailableException",
                               "message": f"The deployments are {MOVING}: {why}; try again."},
                         [("x-amzn-RequestId", rid), ("Content-Type", _CONTENT_TYPE)])


def _failed(exc: Exception) -> bytes:
    return answer(awsjson.refusal("InternalFailure", str(exc), "", _CONTENT_TYPE))


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
        self.calls = Responder(link, SUBJECT, self._run, _failed,
                               lambda: answer(_unavailable("", "the node running them is stopping")))

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
        await self.calls.start()
        self.say("cluster: this node runs the autoscaler and the gradual deployments"
                 + (f" (failed {len(ended)} left running by a node gone: {', '.join(ended)})" if ended else ""))

    def _running(self) -> bool:
        return self.owner

    async def _wind_down(self) -> None:
        self.owner = False
        await self.calls.stop()  # no more calls; those under way end before the deployments stop
        await self.calls.drain()
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
        headers = passed_on(req.headers, HOP_BY_HOP)
        headers.append((FORWARDED, self.node_id))
        data = msgspec.msgpack.encode(Call(rid, req.target, headers, bytes(req.body)))

        def here() -> Any:
            if not self.valid():
                return None
            assert self._inner is not None  # this node took over meanwhile
            return settled(self._inner(req, rid))

        got, forwarded = await to_owner(self.link, SUBJECT, data, timeout=CALL_TIMEOUT, wait=WAIT_FOR_OWNER, here=here,
                                        unavailable=lambda why: _unavailable(rid, why),
                                        nobody="no node runs them now", silent="the node running them did not answer")
        self.forwarded += forwarded
        return got

    async def _run(self, data: bytes) -> bytes:
        """On the daemon's loop: another node's call, through this node's CodeDeploy API."""
        call = msgspec.msgpack.decode(data, type=Call)
        req = Request("POST", call.target)
        req.headers = dict(call.headers)
        req.body = call.body
        rid = call.rid
        self.served += 1
        if not self.valid():
            return answer(_unavailable(rid, "this node no longer runs them"))
        assert self._inner is not None
        return answer(await settled(self._inner(req, rid)))
