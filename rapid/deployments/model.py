"""A deployment as it is kept (registry store kind ``deployment``, key: its id) and shown.

Times are epoch seconds on the deployments' clock (``rapid.core.scaled_clock``). ``events``
is the deployment's story, oldest first: its lifecycle events as CodeDeploy names them
(``Start``, ``BeforeAllowTraffic``, ``AllowTraffic`` with the weight it set,
``AfterAllowTraffic``, ``Rollback``, ``End``), each with its status and a detail.
"""

from __future__ import annotations

import msgspec
from msgspec import Struct


class DeploymentError(Exception):
    """A refusal in CodeDeploy's terms (``code``: DeploymentDoesNotExistException, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Step(Struct, kw_only=True):
    at: float
    event: str
    status: str = "Succeeded"  # Succeeded | Failed | InProgress | Skipped
    weight: float | None = None  # AllowTraffic: the new version's share after this step
    detail: str = ""


class Deployment(Struct, kw_only=True):
    id: str  # d-XXXXXXXXX, as CodeDeploy's
    function: str
    alias: str
    from_version: str | None
    to_version: str
    type: str  # the preference's Type (Canary10Percent5Minutes, ...)
    phase: str = "Created"  # rapid.deployments.machine.Phase
    status: str = "Created"  # CodeDeploy's: Created | InProgress | Succeeded | Failed | Stopped
    created: float
    completed: float | None = None
    reason: str | None = None  # why it failed or stopped
    error_code: str | None = None  # CodeDeploy's: ALARM_ACTIVE, HOOK_EXECUTION_FAILURE, MANUAL_STOP, ...
    weight: float = 0.0  # the new version's share of the alias's traffic now
    pre_traffic: str | None = None
    post_traffic: str | None = None
    alarms: tuple[str, ...] = ()
    events: list[Step] = []

    def view(self) -> dict[str, object]:
        """The JSON the dashboard and ``rapid deployments`` show."""
        view: dict[str, object] = msgspec.to_builtins(self)
        return view


encode = msgspec.json.Encoder().encode
decode = msgspec.json.Decoder(Deployment).decode
