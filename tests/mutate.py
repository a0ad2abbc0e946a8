"""Mutation testing: does the suite fail when the product is changed a little?

    ./dev mutate              rapid/core against its unit tests (about a minute)
    ./dev mutate isolation    sandbox.py and cgroups.py against the isolation tests (hours)
    python -m tests.mutate [core|isolation] [--jobs N]

A mutation tool (``pip install -e '.[mutate]'``) makes one-token changes ("mutants") to the
code under test (``<`` for ``<=``, a string changed, an argument dropped, ...) and runs the
chosen tests against each. A mutant the tests do not notice *survived*: a behaviour nothing
checks. This script copies the checkout into ``.mutants/<target>/`` (the tool rewrites the
code it mutates, and keeps its results there between runs, so a second run only redoes
what is left), runs the tool there, and prints the survivors with their diffs and the
survival rate. It exits 1 if any mutant survived.

- ``core``: mutmut, which learns in-process which tests reach which function and runs only
  those for each mutant: the whole of ``rapid/core`` in about a minute.
- ``isolation``: cosmic-ray, which runs a test command per mutant. The isolation code runs
  inside the daemon, a subprocess of the tests, where mutmut's in-process bookkeeping sees
  no test reach it ("no test covers any mutant"); cosmic-ray needs no such map. Each mutant
  costs a run of the isolation tests (10-25 s), some 650 mutants in all; it can be stopped
  and resumed (``exec`` carries on with the mutants not yet tried).

A mutant that cannot change behaviour (an *equivalent* mutant, such as ``< 0`` for
``<= 0`` right after zero was handled) is marked ``# pragma: no mutate`` in the code, with
the reason beside it.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("rapid", "tests", "bootstraps", "examples", "pyproject.toml", "README.md")

TARGETS = {
    "core": {
        "only_mutate": ["rapid/core/*"],
        "tests": ["tests/test_core_errors_naming.py", "tests/test_core_invocation.py", "tests/test_core_report.py",
                  "tests/test_core_runtime_state.py", "tests/test_core_scheduler.py"],
    },
    "isolation": {
        "only_mutate": ["rapid/supervisor/sandbox.py", "rapid/supervisor/cgroups.py"],
        "tests": ["tests/test_isolation.py", "tests/test_pools.py::test_an_idle_instance_is_frozen_by_its_freezer_cgroup",
                  "tests/test_pools.py::test_an_idle_instance_is_stopped_by_sigstop"],
    },
}


def _config(target: str) -> str:
    spec = TARGETS[target]
    quote = lambda items: "[" + ", ".join(f'"{i}"' for i in items) + "]"  # noqa: E731
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["rapid/"]\n'
        f"only_mutate = {quote(spec['only_mutate'])}\n"
        'pytest_add_cli_args = ["-p", "no:randomly", "-q", "-x"]\n'
        f"pytest_add_cli_args_test_selection = {quote(spec['tests'])}\n"
    )


def prepare(target: str) -> Path:
    work = ROOT / ".mutants" / target
    work.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src, dst = ROOT / name, work / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dst)
    pyproject = work / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + _config(target))
    return work


COSMIC_RAY = """[cosmic-ray]
module-path = {modules}
timeout = 300.0
excluded-modules = []
test-command = "{python} -m pytest -x -q -p no:randomly -p no:cacheprovider {tests}"

[cosmic-ray.distributor]
name = "local"
"""


def annotation_spans(path: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where ``path``'s type annotations are. Under ``from __future__ import annotations``
    they are never evaluated, so a mutant inside one (``str | None`` to ``str & None``)
    cannot change behaviour."""
    spans = []
    for node in ast.walk(ast.parse(path.read_text())):
        found: list[ast.expr | None] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            found.append(node.returns)
            found += [x.annotation for x in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg) if x]
        elif isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
        for ann in found:
            if ann is not None and ann.end_lineno is not None and ann.end_col_offset is not None:
                spans.append(((ann.lineno, ann.col_offset), (ann.end_lineno, ann.end_col_offset)))
    return spans


def skip_annotation_mutants(work: Path, session: Path) -> int:
    """Mark the not yet tried mutants that fall inside an annotation as skipped."""
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    spans: dict[str, list[tuple[tuple[int, int], tuple[int, int]]]] = {}
    skipped = 0
    with use_db(str(session)) as db:
        for item in list(db.pending_work_items):
            for m in item.mutations:
                path = str(m.module_path)
                if path not in spans:
                    spans[path] = annotation_spans(work / path)
                start, end = tuple(m.start_pos), tuple(m.end_pos)
                if any(a <= start and end <= b for a, b in spans[path]):
                    db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
                    skipped += 1
                    break
    return skipped


def run_cosmic_ray(target: str, work: Path) -> int:
    spec = TARGETS[target]
    bindir = os.path.dirname(sys.executable)
    cosmic = shutil.which("cosmic-ray", path=bindir) or shutil.which("cosmic-ray")
    if cosmic is None:
        print("cosmic-ray is not installed: pip install -e '.[mutate]' (./dev mutate does it)", file=sys.stderr)
        return 2
    config, session = work / "cr.toml", work / "session.sqlite"
    modules = "[" + ", ".join(f'"{m}"' for m in spec["only_mutate"]) + "]"
    config.write_text(COSMIC_RAY.format(modules=modules, python=sys.executable, tests=" ".join(spec["tests"])))
    if not session.exists():
        subprocess.run([cosmic, "init", str(config), str(session)], cwd=work, check=True)
        pragma = shutil.which("cr-filter-pragma", path=bindir)
        if pragma:
            subprocess.run([pragma, str(session)], cwd=work, check=True)
        print(f"skipped {skip_annotation_mutants(work, session)} mutants inside type annotations")
    subprocess.run([cosmic, "exec", str(config), str(session)], cwd=work, check=False)
    dump = subprocess.run([cosmic, "dump", str(session)], cwd=work, capture_output=True, text=True, check=True)
    by_status: dict[str, list[str]] = {}
    diffs = {}
    for line in dump.stdout.splitlines():
        job, result = json.loads(line)
        m = job["mutations"][0]
        name = f"{m['module_path']}:{m['start_pos'][0]} {m['operator_name']} #{m['occurrence']}"
        status = "not checked" if result is None else result.get("test_outcome") or result.get("worker_outcome")
        by_status.setdefault(status, []).append(name)
        if result is not None:
            diffs[name] = result.get("diff") or ""
    survivors = by_status.get("survived", [])
    for name in survivors:
        changed = [x for x in diffs[name].splitlines() if x[:1] in "+-" and x[:3] not in ("+++", "---")]
        print(f"survived: {name}\n    " + "\n    ".join(changed))
    return summary(target, by_status, survivors)


def summary(target: str, by_status: dict[str, list[str]], survivors: list[str]) -> int:
    tried = sum(len(v) for k, v in by_status.items() if k != "not checked")
    counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(by_status.items()))
    rate = 100.0 * len(survivors) / tried if tried else 0.0
    print(f"mutate {target}: {sum(len(v) for v in by_status.values())} mutants ({counts}); "
          f"survival rate {rate:.1f}% of the {tried} tried")
    return 1 if survivors or not tried else 0


def results(work: Path, mutmut: str) -> dict[str, list[str]]:
    out = subprocess.run([mutmut, "results", "--all", "true"], cwd=work, capture_output=True, text=True, check=True)
    by_status: dict[str, list[str]] = {}
    for line in out.stdout.splitlines():
        name, sep, status = line.strip().partition(": ")
        if sep:
            by_status.setdefault(status, []).append(name)
    return by_status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutate", description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", default="core", choices=sorted(TARGETS))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    work = prepare(args.target)
    if args.target == "isolation":
        return run_cosmic_ray(args.target, work)
    mutmut = shutil.which("mutmut", path=os.path.dirname(sys.executable)) or shutil.which("mutmut")
    if mutmut is None:
        print("mutmut is not installed: pip install -e '.[mutate]' (./dev mutate does it)", file=sys.stderr)
        return 2
    subprocess.run([mutmut, "run", "--max-children", str(args.jobs)], cwd=work, check=False,
                   stdout=subprocess.DEVNULL)
    by_status = results(work, mutmut)
    survivors = by_status.get("survived", []) + by_status.get("no tests", [])
    for name in survivors:
        diff = subprocess.run([mutmut, "show", name], cwd=work, capture_output=True, text=True).stdout
        changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
        print(f"survived: {name}\n    " + "\n    ".join(changed))
    return summary(args.target, by_status, survivors)


if __name__ == "__main__":
    sys.exit(main())
