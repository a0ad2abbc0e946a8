"""The bridge from the registry to the host: each API function's version specs become pools.

Theory of operation
-------------------
The ``Deployment`` listens to the registry. A new or changed ``$LATEST`` becomes a fresh
``Function`` pool through ``Host.replace`` (the old pool retires: what runs finishes there,
what waits moves over), then the registry marks the function Active / Successful. A
published version gets its own pool the first time it is invoked, and keeps it warm. An
invocation's target resolves here: ``name``, ``name:version``, ``name:alias`` (the alias's
weighted choice is drawn per invocation from ``random.random``, a pure rule of
``rapid.core.routing``).

A version spec turns into the same ``FunctionConfig`` and ``Code`` a declared function has:
the task root is the code store's unpacked tree, the runtime command is the bundled
runtime's (Python on the interpreter the runtime names when it is on PATH) or the ZIP's
``bootstrap``, and the layers are merged into one folder for ``/opt``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable

from rapid.config import FunctionConfig
from rapid.core import rules
from rapid.core.errors import ServiceError, function_not_found, resource_conflict
from rapid.core.naming import Target
from rapid.core.routing import LATEST, UnknownQualifier, resolve
from rapid.host.code import Code, bundled, custom
from rapid.host.function import Function
from rapid.host.host import Host
from rapid.registry.model import VersionSpec
from rapid.registry.registry import Registry


class Deployment:
    def __init__(self, host: Host, registry: Registry, say: Callable[[str], None]) -> None:
        self.host = host
        self.registry = registry
        self.say = say
        self.draw: Callable[[], float] = random.random
        self._warned: set[str] = set()
        self._pythons: dict[str, str] = {}
        self._hooks: list[Callable[[str, str, str | None], None]] = []  # after a pool change
        # This node's part of a provisioned concurrency setting: all of it, except in a
        # cluster, where the setting is spread over the nodes (rapid.cluster.provisioned).
        self.share: Callable[[str, str, int], int] = lambda _name, _qualifier, count: count
        # In a cluster: (Allocated, Available, Status, StatusReason) of a version's setting
        # across the nodes (rapid.cluster.provisioned); None: this node's pool is the whole.
        self.provisioned_view: Callable[[str, str, int], tuple[int, int, str, str | None]] | None = None
        registry.listeners.append(self._changed)
        host.catalog = self

    def on_change(self, hook: Callable[[str, str, str | None], None]) -> None:
        """Call ``hook(event, name, version)`` after each change is carried out."""
        self._hooks.append(hook)

    def start(self) -> None:
        """Pools for every stored function, as they were before the restart."""
        for name, spec in sorted(self.registry.latest.items()):
            if name in self.host.functions:
                self.say(f"warning: function {name!r} is both declared and stored; the declared one is served")
                self.registry.declared.add(name)
                continue
            self._install(spec)

    def started(self) -> None:
        """Once the host runs: the provisioned concurrency stored for versions and aliases."""
        for name, fs in sorted(self.registry.settings.items()):
            if self.knows(name):
                for qualifier in sorted(fs.provisioned):
                    try:
                        self._changed("provisioned", name, qualifier)
                    except Exception as exc:  # noqa: BLE001 - a stale setting must not stop start-up
                        self.say(f"warning: provisioned concurrency of {name}:{qualifier}: {exc}")

    # -- Catalog (what the host asks) -----------------------------------------------------

    def knows(self, name: str) -> bool:
        return name in self.registry.latest and name not in self.registry.declared

    def pool(self, target: Target) -> Function:
        name = target.name
        if target.qualifier is None or target.qualifier == LATEST:
            return self._latest(name)
        reg = self.registry
        try:
            version, _alias = resolve(target.qualifier, reg.versions.get(name, {}), reg.routes(name), self.draw())
        except UnknownQualifier:
            raise function_not_found(reg.arn(name, target.qualifier)) from None
        if version == LATEST:
            return self._latest(name)
        fn = self.host.pools.get((name, version))
        if fn is None:
            spec = reg.versions[name][version]
            config, code = self.build(spec)
            fn = self.host.add_version(name, config, code)
        return fn

    def _latest(self, name: str) -> Function:
        fn = self.host.functions.get(name)
        if fn is None:  # its set-up failed (State Failed)
            state = self.registry.latest[name].state
            raise resource_conflict("The operation cannot be performed at this time. "
                               f"The function is currently in the following state: {state}")
        return fn

    # -- from specs to pools --------------------------------------------------------------

    def build(self, spec: VersionSpec) -> tuple[FunctionConfig, Code]:
        reg = self.registry
        s = spec.settings
        tree = reg.code.tree(spec.code)
        family = rules.runtime_family(s.runtime)
        fs = reg.settings.get(spec.name)
        config = FunctionConfig(
            path=tree, runtime=family, handler=s.handler or "", timeout=s.timeout, memory=s.memory,
            reserved_concurrency=fs.reserved if fs else None,
            provisioned_concurrency=self.share(spec.name, spec.version, fs.provisioned.get(spec.version, 0) if fs else 0),
            ephemeral_storage=s.ephemeral_storage, environment=dict(s.environment), version=spec.version,
            dead_letter=s.dead_letter,
            # SnapStart applies to published versions, as on AWS ($LATEST starts plainly).
            snap_start=s.snap_start == "PublishedVersions" and spec.version != LATEST and family == "python",
        )
        if family == "provided":
            code = custom(tree, (os.path.join(tree, "bootstrap"),))
        elif family == "python":
            code = bundled("python", tree, python=self._python(s.runtime))
        else:
            code = bundled("node", tree)
        if s.layers:
            refs = []
            for arn in s.layers:
                layer_name, number = rules.layer_of(arn)
                layer = reg.layers.get(layer_name, {}).get(number)
                if layer is not None:  # a deleted layer version stays usable by its functions on AWS
                    refs.append(layer.code)
            code = dataclasses.replace(code, opt=reg.code.merged(refs))
            # As on Lambda, external extensions come with layers: their extensions/ folder.
            code = dataclasses.replace(code, extensions=os.path.join(code.opt, "extensions"))
        return config, code

    def _python(self, runtime: str) -> str:
        """The interpreter ``runtime`` names, if one on PATH really is it (a pyenv shim may
        not be); else the daemon's own, said once."""
        if runtime in self._pythons:
            return self._pythons[runtime]
        found = shutil.which(runtime)
        if found and _is_python(found, runtime.removeprefix("python")):
            self._pythons[runtime] = found
            return found
        self._pythons[runtime] = sys.executable
        if runtime not in self._warned:
            self._warned.add(runtime)
            self.say(f"warning: {runtime} is not on PATH; functions of runtime {runtime} run on "
                     f"{sys.executable} (Python {sys.version_info.major}.{sys.version_info.minor})")
        return sys.executable

    def _install(self, spec: VersionSpec) -> None:
        try:
            config, code = self.build(spec)
        except OSError as exc:
            self.registry.settle(spec.name, False, f"rapid could not set up the function: {exc}")
            return
        if code.entrypoint_error is not None:
            self.say(f"warning: function {spec.name!r}: {code.entrypoint_error.message}")
        warning = self.host.sandbox.check_function(spec.name, code)
        if warning:
            self.say(f"warning: {warning}")
        fn = self.host.replace(spec.name, config, code)
        if self.host.started:  # the host is running: start provisioned instances now
            fn.start_provisioned()
        if spec.state != "Active" or spec.last_update_status != "Successful":
            # Answered Pending / InProgress first; Active / Successful from the next read on.
            asyncio.get_running_loop().call_soon(self.registry.settle, spec.name, True)

    def _changed(self, event: str, name: str, version: str | None) -> None:
        host = self.host
        if event in ("create", "update"):
            self._install(self.registry.latest[name])
        elif event == "delete":
            host.remove(name)
        elif event == "delete-version" and version is not None:
            host.remove(name, version)
        elif event == "concurrency":
            fs = self.registry.settings.get(name)
            host.set_reserved(name, fs.reserved if fs else None)
        elif event == "provisioned" and version is not None:
            fs = self.registry.settings.get(name)
            count = self.share(name, version, fs.provisioned.get(version, 0) if fs else 0)
            number = self.registry.version(name, version).version  # an alias: its primary version
            self.pool(Target(name, number)).set_provisioned(count)
        elif event == "alias" and version is not None:
            self._follow_alias(name, version)
        for hook in self._hooks:
            hook(event, name, version)

    def _follow_alias(self, name: str, alias: str) -> None:
        """An alias with provisioned concurrency moved to another primary version: the
        provisioned instances move with it (started on the new version's pool, stopped on
        the old one unless another qualifier still provisions it)."""
        fs = self.registry.settings.get(name)
        if fs is None or alias not in fs.provisioned:
            return
        want: dict[str, int] = {}
        for qualifier, count in fs.provisioned.items():
            try:
                number = self.registry.version(name, qualifier).version
            except ServiceError:
                continue
            want[number] = max(want.get(number, 0), count)
        for pool in self.host.pools_of(name):
            if pool.version not in want and pool.provisioned:
                pool.set_provisioned(0)
        for number, count in want.items():
            if number != LATEST:
                pool = self.pool(Target(name, number))
                if pool.provisioned != count:
                    pool.set_provisioned(count)

    def __repr__(self) -> str:
        return f"<Deployment {self.registry!r}>"


def _is_python(path: str, version: str) -> bool:
    try:
        out = subprocess.run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == version
