"""Each function's async settings: its event-invoke-configs (set through the API or in
``rapid.toml``, see ``rapid.events``), its dead-letter target, the targets they name, and
what they make of an event that finishes: the ``Finish`` the store carries out.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from rapid.core.naming import LATEST, function_arn
from rapid.events import destinations as dest
from rapid.events import policy
from rapid.events.destinations import Response, Target, TargetError
from rapid.events.say import say
from rapid.events.store import Entry, EventStore, Finish

if TYPE_CHECKING:
    from rapid.host.host import Host


class Settings:
    """The event-invoke-configs by (function, qualifier), the dead-letter targets by function."""

    def __init__(
        self, host: Host, store: EventStore, configs: dict[tuple[str, str], dict[str, Any]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.host = host
        self.store = store
        cfg = host.config
        self.scale = float(cfg.async_time_scale)
        self.region, self.account = host.region, cfg.account_id
        self.configs = configs
        self.dead_letters: dict[str, Target] = {}
        self._loop = loop
        self._targets: dict[str, Target] = {}

    def load(self) -> None:
        """Take the settings in ``rapid.toml`` (at start)."""
        for name, fc in self.host.config.functions.items():
            body = toml_config(fc)
            if body is not None:  # the TOML file's settings win at start (see rapid.events)
                self.configs[(name, LATEST)] = body
                self.store.put_config(name, LATEST, body, _ignore)
            if fc.dead_letter:
                self.dead_letters[name] = self._parse(fc.dead_letter)

    def config_for(self, function: str, qualifier: str) -> dict[str, Any]:
        return self.configs.get((function, qualifier or LATEST)) or {}

    def limits(self, entry: Entry) -> policy.Limits:
        cfg = self.config_for(entry.function, entry.qualifier)
        return policy.Limits(
            cfg.get("MaximumRetryAttempts", policy.DEFAULT_MAX_RETRY_ATTEMPTS),
            cfg.get("MaximumEventAgeInSeconds", policy.DEFAULT_MAX_EVENT_AGE),
            self.scale,
        )

    def put_config(self, function: str, qualifier: str, body: dict[str, Any] | None) -> asyncio.Future[None]:
        """Set (or with None delete) an event-invoke-config; the future resolves once durable."""
        fut: asyncio.Future[None] = self._loop.create_future()

        def done(_: object, error: BaseException | None) -> None:
            if error is None:  # in force once it is on disk
                if body is None:
                    self.configs.pop((function, qualifier), None)
                else:
                    self.configs[(function, qualifier)] = body
            if not fut.done():
                fut.set_exception(error) if error is not None else fut.set_result(None)

        self.store.put_config(function, qualifier, body, done)
        return fut

    def plan(self, entry: Entry, condition: str, response: Response | None, payload: bytes | None) -> Finish:
        """What finishing ``entry`` takes: the target of its record, its dead letter, its ARN."""
        cfg = self.config_for(entry.function, entry.qualifier)
        failed = condition != policy.SUCCESS
        destination = None
        dest_config = cfg.get("DestinationConfig") or {}
        value = (dest_config.get("OnFailure" if failed else "OnSuccess") or {}).get("Destination")
        if value:
            destination = self._target(value, entry)
        dead_letter = self.dead_letters.get(entry.function) if failed else None
        fn = self.host.functions.get(entry.function)
        if failed and dead_letter is None and fn is not None and fn.config.dead_letter:
            dead_letter = self._target(fn.config.dead_letter, entry)  # an API function's DeadLetterConfig
        version = fn.version if fn is not None else LATEST
        limits = self.limits(entry)
        plan = Finish(
            entry=entry, condition=condition, response=response, payload=payload,
            function_arn=function_arn(self.region, self.account, entry.function, entry.qualifier or version),
            version=version, destination=destination, dead_letter=dead_letter,
            delivery_window=limits.max_event_age * self.scale, now=time.time(),
        )
        return plan

    def _target(self, value: str, entry: Entry) -> Target | None:
        try:
            return self._parse(value)
        except TargetError as exc:
            say(f"destination of {entry.function} is invalid now, record dropped: {exc}")
            return None

    def _parse(self, value: str) -> Target:
        target = self._targets.get(value)
        if target is None:
            target = self._targets[value] = dest.parse_target(
                value, region=self.region, account=self.account, functions=self.host.functions
            )
        return target


def toml_config(fc: Any) -> dict[str, Any] | None:
    """A function's async settings from ``rapid.toml`` as an event-invoke-config, or None."""
    if fc.maximum_retry_attempts is None and fc.maximum_event_age is None and not (fc.on_success or fc.on_failure):
        return None
    body: dict[str, Any] = {"LastModified": time.time()}
    if fc.maximum_retry_attempts is not None:
        body["MaximumRetryAttempts"] = fc.maximum_retry_attempts
    if fc.maximum_event_age is not None:
        body["MaximumEventAgeInSeconds"] = fc.maximum_event_age
    body["DestinationConfig"] = {
        "OnSuccess": {"Destination": fc.on_success} if fc.on_success else {},
        "OnFailure": {"Destination": fc.on_failure} if fc.on_failure else {},
    }
    return body


def _ignore(_: object, error: BaseException | None) -> None:
    if error is not None:
        say(f"could not store a configuration: {error}")
