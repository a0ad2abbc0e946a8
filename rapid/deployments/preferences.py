"""SAM's DeploymentPreference: how traffic moves to a new version, and what guards it. Pure.

``Type`` is one of CodeDeploy's predefined Lambda configurations, named as SAM names them
(or with CodeDeploy's ``CodeDeployDefault.Lambda`` prefix):

===============================  ==============================================================
Type                             traffic on the new version
===============================  ==============================================================
Canary10Percent5Minutes          10 %, then 100 % after 5 minutes (also 10, 15, 30 minutes)
Linear10PercentEvery1Minute      10 % more every minute until 100 % (also every 2, 3, 10 minutes)
AllAtOnce                        100 % at once
===============================  ==============================================================

``steps(type)`` turns a Type into the weights the alias takes, each with how long it holds
before the next (the last, 100 %, holds 0). ``Alarms`` name CloudWatch alarms (or give
their properties), ``Hooks`` name the PreTraffic and PostTraffic functions, ``Enabled``
false turns the gradual deployment off (the alias moves at once, as with no preference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# name -> (kind, percent, minutes)
TYPES: dict[str, tuple[str, int, int]] = {
    "Canary10Percent5Minutes": ("canary", 10, 5),
    "Canary10Percent10Minutes": ("canary", 10, 10),
    "Canary10Percent15Minutes": ("canary", 10, 15),
    "Canary10Percent30Minutes": ("canary", 10, 30),
    "Linear10PercentEvery1Minute": ("linear", 10, 1),
    "Linear10PercentEvery2Minutes": ("linear", 10, 2),
    "Linear10PercentEvery3Minutes": ("linear", 10, 3),
    "Linear10PercentEvery10Minutes": ("linear", 10, 10),
    "AllAtOnce": ("all", 100, 0),
}
_PREFIX = "CodeDeployDefault.Lambda"


class PreferenceError(ValueError):
    """A DeploymentPreference SAM would refuse; the message says which property."""


@dataclass(frozen=True, slots=True)
class Step:
    weight: float  # the new version's share of the alias's traffic, 0 < weight <= 1
    hold: float  # seconds before the next step


@dataclass(frozen=True, slots=True)
class Preference:
    type: str
    alarms: tuple[str | dict[str, Any], ...] = ()
    pre_traffic: str | None = None
    post_traffic: str | None = None
    enabled: bool = True

    @property
    def config_name(self) -> str:
        """CodeDeploy's name for the Type (``CodeDeployDefault.LambdaCanary10Percent5Minutes``)."""
        return _PREFIX + self.type


def canonical(type_name: str) -> str:
    name = type_name.removeprefix(_PREFIX)
    if name not in TYPES:
        raise PreferenceError(f"DeploymentPreference Type {type_name!r} is not one of: {', '.join(TYPES)}")
    return name


def steps(type_name: str) -> tuple[Step, ...]:
    kind, percent, minutes = TYPES[canonical(type_name)]
    if kind == "all":
        return (Step(1.0, 0.0),)
    if kind == "canary":
        return (Step(percent / 100, minutes * 60.0), Step(1.0, 0.0))
    count = 100 // percent
    return tuple(Step(round(i * percent / 100, 4), minutes * 60.0 if i < count else 0.0) for i in range(1, count + 1))


def preference_of(data: dict[str, Any]) -> Preference:
    """A Preference from the template's (resolved) DeploymentPreference mapping."""
    if not isinstance(data, dict):
        raise PreferenceError("DeploymentPreference must be a mapping")
    enabled = data.get("Enabled", True)
    if isinstance(enabled, str):
        enabled = enabled.lower() != "false"
    type_name = data.get("Type")
    if not isinstance(type_name, str):
        if enabled:
            raise PreferenceError("DeploymentPreference needs a Type")
        type_name = "AllAtOnce"
    alarms = data.get("Alarms") or []
    if not isinstance(alarms, list) or not all(isinstance(a, (str, dict)) for a in alarms):
        raise PreferenceError("DeploymentPreference Alarms must be a list of alarm names")
    hooks = data.get("Hooks") or {}
    if not isinstance(hooks, dict) or set(hooks) - {"PreTraffic", "PostTraffic"}:
        raise PreferenceError("DeploymentPreference Hooks takes PreTraffic and PostTraffic")
    for which, value in hooks.items():
        if not isinstance(value, str) or not value:
            raise PreferenceError(f"DeploymentPreference Hooks {which} must name a function")
    return Preference(type=canonical(type_name), alarms=tuple(alarms), pre_traffic=hooks.get("PreTraffic"),
                      post_traffic=hooks.get("PostTraffic"), enabled=bool(enabled))
