"""The CodeDeploy calls a gradual deployment needs (JSON 1.1, ``X-Amz-Target:
CodeDeploy_20141006.<Op>``): PutLifecycleEventHookExecutionStatus, which SAM's PreTraffic
and PostTraffic hook functions call to report their verdict; CreateDeployment with a
Lambda AppSpec (``rapid.deployments.appspec``) to start one as CodeDeploy users do; and
GetDeployment, ListDeployments and StopDeployment to follow and stop one.

Deployments belong to the application ``rapid`` and a deployment group named
``FUNCTION-ALIAS``; errors are HTTP 400 ``{"__type", "message"}`` with CodeDeploy's codes.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Coroutine
from typing import Any


from rapid.api import awsjson
from rapid.deployments.appspec import AppSpecError, lambda_deployment
from rapid.deployments.model import Deployment
from rapid.deployments.preferences import Preference
from rapid.deployments.model import DeploymentError
from rapid.deployments.service import Deployments
from rapid.http.message import Request, Response

CONTENT_TYPE = "application/x-amz-json-1.1"
APPLICATION = "rapid"


def info(d: Deployment) -> dict[str, Any]:
    """A deployment as CodeDeploy's DeploymentInfo."""
    out: dict[str, Any] = {
        "applicationName": APPLICATION, "deploymentGroupName": f"{d.function}-{d.alias}",
        "deploymentConfigName": Preference(type=d.type).config_name, "deploymentId": d.id, "status": d.status,
        "createTime": d.created, "startTime": d.created, "computePlatform": "Lambda", "creator": "user",
        "description": f"{d.function}:{d.alias} from version {d.from_version} to {d.to_version}",
        "deploymentStatusMessages": [f"{s.event} {s.status}: {s.detail}".rstrip(": ") for s in d.events],
    }
    if d.completed is not None:
        out["completeTime"] = d.completed
    if d.reason:
        out["errorInformation"] = {"code": d.error_code or "INTERNAL_ERROR", "message": d.reason}
    if any(s.event == "Rollback" for s in d.events):
        out["rollbackInfo"] = {"rollbackMessage": d.reason or "rolled back"}
    return out


class CodeDeployAPI:
    def __init__(self, deployments: Deployments) -> None:
        self.deployments = deployments
        self._ops: dict[str, Callable[[dict[str, Any]], Any]] = {
            "PutLifecycleEventHookExecutionStatus": self.put_hook_status, "GetDeployment": self.get_deployment,
            "ListDeployments": self.list_deployments, "StopDeployment": self.stop_deployment,
            "CreateDeployment": self.create_deployment,
        }

    def __call__(self, req: Request, rid: str) -> Response | asyncio.Future[Response]:
        try:
            _, handler, body = awsjson.read(req, self._ops, DeploymentError)
            result = handler(body)
        except DeploymentError as exc:
            return _error(exc, rid)
        if isinstance(result, dict):
            return _ok(result, rid)
        return asyncio.ensure_future(_later(result, rid))

    def _deployment(self, body: dict[str, Any]) -> Deployment:
        did = body.get("deploymentId")
        if not isinstance(did, str) or not did:
            raise DeploymentError("DeploymentIdRequiredException", "At least one deployment ID must be specified.")
        found = self.deployments.records.get(did)
        if found is None:
            raise DeploymentError("DeploymentDoesNotExistException", f"The deployment {did} could not be found.")
        return found

    def put_hook_status(self, body: dict[str, Any]) -> dict[str, Any]:
        d = self._deployment(body)
        hook = body.get("lifecycleEventHookExecutionId")
        if not isinstance(hook, str) or not hook:
            raise DeploymentError("InvalidLifecycleEventHookExecutionIdException",
                                  "A lifecycle event hook execution id is required.")
        self.deployments.hook_status(d.id, hook, str(body.get("status")))
        return {"lifecycleEventHookExecutionId": hook}

    def get_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"deploymentInfo": info(self._deployment(body))}

    def list_deployments(self, body: dict[str, Any]) -> dict[str, Any]:
        statuses = body.get("includeOnlyStatuses")
        group = body.get("deploymentGroupName")
        ids = [d.id for d in self.deployments.listed()
               if (not statuses or d.status in statuses) and (not group or f"{d.function}-{d.alias}" == group)]
        start = 0
        token = body.get("nextToken")
        if token:
            try:
                start = int(base64.b64decode(token, validate=True).decode())
            except ValueError:
                raise DeploymentError("InvalidNextTokenException", "The next token was specified in an invalid "
                                      "format.") from None
        out: dict[str, Any] = {"deployments": ids[start:start + 100]}
        if start + 100 < len(ids):
            out["nextToken"] = base64.b64encode(str(start + 100).encode()).decode()
        return out

    def create_deployment(self, body: dict[str, Any]) -> Coroutine[Any, Any, dict[str, Any]]:
        revision = body.get("revision") or {}
        content = (revision.get("appSpecContent") or {}).get("content") if isinstance(revision, dict) else None
        if revision.get("revisionType") != "AppSpecContent" or not isinstance(content, str):
            raise DeploymentError("InvalidRevisionException", "A Lambda deployment's revision is of revisionType "
                                  "AppSpecContent with appSpecContent.content (rapid reads no S3 or GitHub revision)")
        config = body.get("deploymentConfigName")
        try:
            target, preference = lambda_deployment(content, config if isinstance(config, str) else None)
        except AppSpecError as exc:
            code = "DeploymentConfigDoesNotExistException" if "Type" in str(exc) else "InvalidRevisionException"
            raise DeploymentError(code, str(exc)) from None
        start = self.deployments.start(function_name=target.function, alias=target.alias,
                                       from_version=target.current, to_version=target.target, preference=preference,
                                       again=True)

        async def started() -> dict[str, Any]:
            return {"deploymentId": await start}

        return started()

    def stop_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        d = self._deployment(body)
        if d.status not in ("Created", "InProgress"):
            raise DeploymentError("DeploymentAlreadyCompletedException", f"The deployment {d.id} has already "
                                  "completed.")
        self.deployments.stop_one(d.id, "stopped by StopDeployment")
        return {"status": "Pending", "statusMessage": "Stopping the deployment; traffic goes back to version "
                                                      f"{d.from_version}"}

    def __repr__(self) -> str:
        return f"<CodeDeployAPI {self.deployments!r}>"


def _ok(result: dict[str, Any], rid: str) -> Response:
    return awsjson.answer(result, rid, CONTENT_TYPE)


def _error(exc: DeploymentError, rid: str) -> Response:
    return awsjson.refusal(exc.code, exc.message, rid, CONTENT_TYPE)


async def _later(work: Coroutine[Any, Any, dict[str, Any]], rid: str) -> Response:
    try:
        return _ok(await work, rid)
    except DeploymentError as exc:
        return _error(exc, rid)
