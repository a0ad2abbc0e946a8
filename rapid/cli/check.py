"""``rapid check``: grade a runtime against Lambda's runtime contract.

    rapid check [options] -- CMD [ARGS...]          a bootstrap command (as rapid serve -- CMD)
    rapid check --function DIR|ZIP [--runtime R]     a function folder or ZIP
    rapid check --runtime python|node|shell          a bundled runtime, on the shipped test handler

The runtime runs under rapid's real host, in this process (``rapid.lab``); with ``-- CMD``
its task root is a scratch folder holding the shipped test handlers (``rapid_check.py``,
``.js``, ``.sh``), unless ``--task-root`` names one. One line per behaviour; exit status 1
when any behaviour fails, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys

from rapid.lab.rig import HANDLERS, Spec, task_root_with_handlers

DEFAULT_HANDLER = "rapid_check.handler"
_LANGS = {"python": "rapid_check.py", "node": "rapid_check.js", "shell": "rapid_check.sh"}


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    c = sub.add_parser(
        "check",
        help="grade a runtime against Lambda's runtime contract",
        usage="rapid check [options] [-- CMD [ARGS...]]",
        description="Run a runtime under rapid and drive it through Lambda's runtime contract: one line per "
        "behaviour (PASS / WARN / FAIL / SKIP), with what was seen, what Lambda expects and the AWS page it comes "
        "from. Exit status 1 if any behaviour fails.",
    )
    add_runtime_options(c)
    c.add_argument("--show-logs", action="store_true", help="also print the runtime's log lines (to stderr)")
    c.add_argument("--print-handler", choices=sorted(_LANGS), metavar="LANG",
                   help="print the shipped test handler for python, node or shell, and exit")


def add_runtime_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--function", metavar="DIR|ZIP", help="a function folder or .zip (its bootstrap, or a handler "
                   "for --runtime)")
    p.add_argument("--runtime", choices=["provided", "python", "node", "shell"],
                   help="a bundled runtime (default provided: the command, or the folder's bootstrap)")
    p.add_argument("--handler", help=f"the handler string the runtime is given (default {DEFAULT_HANDLER}, the "
                   "shipped test handler)")
    p.add_argument("--task-root", metavar="DIR", help="with -- CMD: the task root (default: a scratch folder "
                   "with the shipped test handlers)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="a variable for the runtime")
    p.add_argument("--memory", type=int, default=1024, help="memory size in MB (default 1024)")


def spec_from(ns: argparse.Namespace, command: list[str] | None, scratch: str) -> tuple[Spec, str]:
    """(spec, task root) from the options; raises SystemExit(2) with a message on bad ones."""
    env = {}
    for item in ns.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _usage(f"--env {item!r}: expected KEY=VALUE")
        env[key] = value
    handler = ns.handler or DEFAULT_HANDLER
    runtime = ns.runtime or "provided"
    if command:
        if ns.function:
            _usage("give either -- CMD or --function, not both")
        command = absolute_command(command)
        root = os.path.abspath(ns.task_root) if ns.task_root else scratch
        if not os.path.isdir(root):
            _usage(f"--task-root: no such folder: {root}")
        return Spec(command=command, handler=handler, environment=env, memory=ns.memory), root
    if ns.function:
        path = os.path.abspath(ns.function)
        if not os.path.exists(path):
            _usage(f"--function: no such file or folder: {path}")
        if not (os.path.isdir(path) or path.endswith(".zip")):
            _usage(f"--function: expected a folder or a .zip: {path}")
        return Spec(path=path, runtime=runtime, handler=handler, environment=env, memory=ns.memory), path
    if runtime == "provided":
        _usage("nothing to check: give -- CMD, --function DIR or --runtime python|node|shell")
    return (Spec(path=scratch, runtime=runtime, handler=handler, environment=env, memory=ns.memory,
                 label=f"the bundled {runtime} runtime, handler {handler}"), scratch)


def absolute_command(argv: list[str]) -> list[str]:
    """A command whose program is a relative path (``./bootstrap``) is taken from where
    rapid was started, not from the task root the runtime will run in."""
    if argv and "/" in argv[0] and not os.path.isabs(argv[0]):
        return [os.path.abspath(argv[0]), *argv[1:]]
    return argv


def _usage(message: str) -> None:
    print(f"rapid check: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def run(ns: argparse.Namespace, command: list[str] | None) -> int:
    if ns.print_handler:
        sys.stdout.write((HANDLERS / _LANGS[ns.print_handler]).read_text())
        return 0
    from rapid.lab import session
    from rapid.lab.progress import Progress
    from rapid.lab.verdict import exit_code, render

    scratch = task_root_with_handlers()
    try:
        spec, root = spec_from(ns, command, scratch)
        progress = Progress(len(session.RUNNING) + 3, lines_off_tty=False)

        def step(label: str) -> None:
            if progress.done or progress.label:
                progress.finish_step()
            progress.step(label)

        echo = (lambda line: print(f"  | {line}", file=sys.stderr)) if ns.show_logs else None
        import uvloop

        try:
            verdicts, notes = uvloop.run(session.run(spec, root, step, echo))
        except KeyboardInterrupt:
            progress.clear()
            print("rapid check: interrupted", file=sys.stderr)
            return 130
        progress.clear()
        print(render(spec.describe(), verdicts, notes))
        return exit_code(verdicts)
    finally:
        session.cleanup_task_root(scratch)
