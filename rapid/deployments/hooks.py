"""A deployment's lifecycle hooks (PreTraffic, PostTraffic) as CodeDeploy runs them.

``Hooks.run`` invokes the hook function (a name, ``name:qualifier`` or an ARN) with
CodeDeploy's event, ``{"DeploymentId", "LifecycleEventHookExecutionId"}``, and waits for
its verdict: the status it reports through PutLifecycleEventHookExecutionStatus
(``report``, from ``rapid.api.codedeploy``), while it runs or within ``HOOK_GRACE`` after
it returned. A hook that cannot be invoked or ends in a function error fails; one that
returns without reporting is taken as Succeeded (CodeDeploy would wait an hour for it).
"""

from __future__ import annotations

import asyncio
import random
import string

import msgspec

from rapid.core.naming import parse_function_name
from rapid.deployments.model import DeploymentError
from rapid.host.host import Host
from rapid.sources.invoker import Invoker

HOOK_GRACE = 2.0  # real seconds a hook that returned may still take to report its status


class Hooks:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.invoke = Invoker(host)
        self.pending: dict[str, tuple[str, asyncio.Future[str]]] = {}  # execution id -> (deployment, verdict)

    async def run(self, deployment_id: str, function: str) -> tuple[bool, str]:
        """(passed, what happened) for one hook execution."""
        hook_id = "".join(random.choices(string.ascii_letters + string.digits, k=40))
        verdict: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.pending[hook_id] = (deployment_id, verdict)
        try:
            target = parse_function_name(function, None, self.host.region, self.host.config.account_id)
            payload = msgspec.json.encode({"DeploymentId": deployment_id, "LifecycleEventHookExecutionId": hook_id})
            result = await self.invoke(target.name, target.qualifier, payload)
            if not verdict.done():
                if result.service_error is not None:
                    return False, f"{result.service_error.code}: {result.service_error.message}"
                if result.function_error:
                    return False, f"the hook function failed: {(result.body or b'')[:300].decode('utf-8', 'replace')}"
                try:
                    await asyncio.wait_for(asyncio.shield(verdict), HOOK_GRACE)
                except asyncio.TimeoutError:
                    return True, "returned without reporting a status (taken as Succeeded)"
            status = verdict.result()
            return status == "Succeeded", f"reported {status}"
        finally:
            self.pending.pop(hook_id, None)

    def report(self, deployment_id: str, hook_id: str, status: str) -> None:
        """A hook's PutLifecycleEventHookExecutionStatus; ``DeploymentError`` if refused."""
        entry = self.pending.get(hook_id)
        if entry is None or entry[0] != deployment_id:
            raise DeploymentError("InvalidLifecycleEventHookExecutionIdException",
                                  f"The lifecycle event hook execution id {hook_id} is not valid for this deployment.")
        if status not in ("Succeeded", "Failed"):
            raise DeploymentError("InvalidLifecycleEventHookExecutionStatusException",
                                  f"The status {status} is not valid: a hook reports Succeeded or Failed.")
        if entry[1].done():
            raise DeploymentError("LifecycleEventAlreadyCompletedException",
                                  "The lifecycle event hook has already reported its status.")
        entry[1].set_result(status)

    def __repr__(self) -> str:
        return f"<Hooks pending={len(self.pending)}>"
