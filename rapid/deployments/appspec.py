"""CodeDeploy's AppSpec for a Lambda deployment, read into what ``Deployments.start`` takes. Pure.

The AppSpec (``CreateDeployment``'s ``revision.appSpecContent.content``, JSON or YAML)::

    version: 0.0
    Resources:
      - myFunction:
          Type: AWS::Lambda::Function
          Properties: {Name: my-function, Alias: live, CurrentVersion: "1", TargetVersion: "2"}
    Hooks:
      - BeforeAllowTraffic: my-pre-traffic-hook
      - AfterAllowTraffic: my-post-traffic-hook

The deployment configuration name (``CodeDeployDefault.LambdaCanary10Percent5Minutes``, ...)
gives the Type; without one, ``CodeDeployDefault.LambdaAllAtOnce``, CodeDeploy's default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from rapid.deployments.preferences import Preference, PreferenceError, canonical


class AppSpecError(ValueError):
    pass


@dataclass(frozen=True)
class LambdaTarget:
    function: str
    alias: str
    current: str
    target: str


def read(content: str) -> dict[str, Any]:
    try:
        data = msgspec.json.decode(content)
    except msgspec.DecodeError:
        try:
            import yaml  # PyYAML, when installed; JSON always works
        except ImportError:
            raise AppSpecError("The AppSpec content is not valid JSON (YAML needs PyYAML installed)") from None
        try:
            data = yaml.safe_load(content)
        except yaml.YAMLError as exc:
            raise AppSpecError(f"The AppSpec content is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise AppSpecError("The AppSpec content must be a mapping")
    return data


def lambda_deployment(content: str, config_name: str | None) -> tuple[LambdaTarget, Preference]:
    data = read(content)
    resources = data.get("Resources")
    if not isinstance(resources, list) or len(resources) != 1 or not isinstance(resources[0], dict) \
            or len(resources[0]) != 1:
        raise AppSpecError("The AppSpec file must name exactly one resource under Resources")
    ((_, resource),) = resources[0].items()
    props = resource.get("Properties") if isinstance(resource, dict) else None
    if not isinstance(resource, dict) or resource.get("Type") != "AWS::Lambda::Function" or not isinstance(props, dict):
        raise AppSpecError("The AppSpec resource must be of Type AWS::Lambda::Function with Properties")
    missing = [k for k in ("Name", "Alias", "CurrentVersion", "TargetVersion") if props.get(k) in (None, "")]
    if missing:
        raise AppSpecError(f"The AppSpec resource's Properties lack {', '.join(missing)}")
    hooks: dict[str, str] = {}
    for entry in data.get("Hooks") or []:
        if not isinstance(entry, dict):
            raise AppSpecError("Each AppSpec hook is a mapping of BeforeAllowTraffic or AfterAllowTraffic to a function")
        for event, fn in entry.items():
            if event not in ("BeforeAllowTraffic", "AfterAllowTraffic") or not isinstance(fn, str):
                raise AppSpecError(f"Unknown AppSpec hook {event!r}: a Lambda deployment has BeforeAllowTraffic and "
                                   "AfterAllowTraffic")
            hooks[event] = fn
    try:
        kind = canonical(config_name or "CodeDeployDefault.LambdaAllAtOnce")
    except PreferenceError as exc:
        raise AppSpecError(str(exc)) from None
    target = LambdaTarget(str(props["Name"]), str(props["Alias"]), str(props["CurrentVersion"]),
                          str(props["TargetVersion"]))
    return target, Preference(type=kind, pre_traffic=hooks.get("BeforeAllowTraffic"),
                              post_traffic=hooks.get("AfterAllowTraffic"))
