"""``rapid init [--list | BLUEPRINT DIR]``: a ready function from a bundled blueprint."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("init", help="write a ready function from a bundled blueprint",
                       usage="rapid init --list | rapid init BLUEPRINT DIR",
                       description="Write a blueprint's code, template.yaml, rapid.toml, sample events and test "
                       "into DIR, then print how to serve and invoke it.")
    s.add_argument("--list", action="store_true", help="list the blueprints")
    s.add_argument("blueprint", nargs="?", help="a blueprint's name (rapid init --list)")
    s.add_argument("dir", nargs="?", help="the folder to create (empty or new)")


def run(ns: argparse.Namespace) -> int:
    from rapid.blueprints import BlueprintError, create, discover

    found = discover()
    if ns.list or not ns.blueprint:
        width = max(len(n) for n in found)
        for name, bp in found.items():
            print(f"{name.ljust(width)}  {bp.description}")
        return 0 if ns.list else 2
    chosen = found.get(ns.blueprint)
    if chosen is None:
        print(f"rapid: error: no blueprint {ns.blueprint!r}; rapid init --list shows them: {', '.join(found)}",
              file=sys.stderr)
        return 2
    bp = chosen
    if not ns.dir:
        print("rapid: error: rapid init BLUEPRINT DIR: give the folder to create", file=sys.stderr)
        return 2
    try:
        create(bp, ns.dir)
    except (BlueprintError, OSError) as exc:
        print(f"rapid: error: {exc}", file=sys.stderr)
        return 2
    missing = [cmd for cmd in bp.needs if shutil.which(cmd) is None]
    print(f"Created {bp.name} in {ns.dir}: {bp.description}")
    if missing:
        print(f"(it needs {', '.join(missing)} on PATH)")
    print("\nServe it:\n")
    print(f"  cd {shlex.quote(ns.dir)} && {bp.serve}")
    if bp.tries:
        print("\nThen, from another terminal:\n")
        for line in bp.tries:
            print(f"  {line}")
    if bp.test:
        print(f"\nIts tests: cd {shlex.quote(ns.dir)} && {bp.test}")
    return 0
