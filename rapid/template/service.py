"""``rapid serve --template``: the template loaded, applied, watched, and its events served.

The daemon calls ``check`` before it listens (a bad template stops start-up with one line
naming the file, line and resource, exit status 2), then ``start`` once its port is bound:
the template is loaded again with the real endpoint (queue URLs name it), applied, and its
schedules and local HTTP API start. With ``watch``, every change of the template or of the
code folders it names is applied again; a template that has gone bad is reported and the
last good one keeps serving.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from rapid.template.applier import Applier
from rapid.template.control import Control, path_of
from rapid.template.http_api import LocalApi
from rapid.template.loader import Template, TemplateError, load_template
from rapid.template.plan import FunctionPlan, check
from rapid.template.scheduler import Scheduler
from rapid.template.watch import Watcher


class TemplateService:
    def __init__(self, config: Any, app: Any, host: Any, say: Callable[[str], None]) -> None:
        self.config = config
        self.path = os.path.abspath(config.template)
        self.overrides = dict(config.parameter_overrides)
        self.app = app
        self.host = host
        self.say = say
        self.endpoint = f"http://{config.host}:{config.port}"
        self.ready = False
        self.template: Template | None = None
        self.plans: list[FunctionPlan] = []
        self.control = Control(app)
        self.scheduler = Scheduler(self._invoke_async, say, config.region, config.account_id,
                                   config.schedule_time_scale)
        self.api = LocalApi(self.control, config.account_id)
        self.applier = Applier(self.control, host, say, scheduler=self.scheduler, api=self.api)
        self.watcher: Watcher | None = None
        self.api_port: int | None = None
        host.templates = self  # for gradual deployments: .template.alarms, the resolved alarms

    def load(self) -> Template:
        return load_template(self.path, self.overrides, region=self.config.region,
                             account=self.config.account_id, endpoint=self.endpoint)

    def check(self) -> None:
        """Load and check the template before anything listens; TemplateError if bad."""
        check(self.load())

    async def start(self, port: int) -> None:
        self.endpoint = f"http://{self.config.host}:{port}"
        self.control.host_header = f"{self.config.host}:{port}"
        template = self.load()
        self.plans = await self.applier.apply(template)
        self.template = template
        if self.api.table.routes:
            self.api_port = await self.api.start(self.config.host, self.config.api_port)
            for r in self.api.table.routes:
                self.say(f"template: {r.key} -> {r.function}{':' + r.qualifier if r.qualifier else ''} "
                         f"(payload {r.payload}) on http://{self.config.host}:{self.api_port}"
                         f"{r.path if r.path != '$default' else '/'}")
        if self.config.watch:
            self.watcher = Watcher(self._watched, self._reapply)
            self.watcher.start()
        self.ready = True

    def _watched(self) -> list[str]:
        paths = [self.path]
        for plan in self.plans:
            if plan.code_path:
                paths.append(plan.code_path)
        if self.template is not None:
            for r in self.template.of_type("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"):
                content = r.properties.get("ContentUri") or r.properties.get("Content")
                if isinstance(content, str):
                    paths.append(os.path.join(self.template.root, content))
        return paths

    async def _reapply(self) -> None:
        try:
            template = self.load()
            self.plans = await self.applier.apply(template)
            self.template = template
            if self.api.listener is None and self.api.table.routes:  # the first Api event came now
                self.api_port = await self.api.start(self.config.host, self.config.api_port)
                self.say(f"template: the local HTTP API is on http://{self.config.host}:{self.api_port}")
        except TemplateError as exc:
            self.say(f"template: not applied, the last good one still serves: {exc}")
        except Exception as exc:  # noqa: BLE001 - a watch must survive whatever a change brings
            self.say(f"template: not applied: {type(exc).__name__}: {exc}")

    async def _invoke_async(self, function: str, qualifier: str | None, payload: bytes) -> None:
        resp = await self.control.raw("POST", f"/2015-03-31/functions/{path_of(function)}/invocations", payload,
                                      {"Qualifier": qualifier} if qualifier else None,
                                      headers={"x-amz-invocation-type": "Event"})
        if resp.status != 202:
            raise RuntimeError(f"status {resp.status}: {bytes(resp.body)[:200].decode('utf-8', 'replace')}")

    async def close(self) -> None:
        if self.watcher is not None:
            await self.watcher.close()
        await self.scheduler.close()
        self.api.close()

    def __repr__(self) -> str:
        return f"<TemplateService {self.path} ready={self.ready} {self.scheduler!r} {self.api!r}>"
