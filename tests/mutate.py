"""Mutation testing: does the suite fail when the product is changed a little?

    ./dev mutate              rapid/core against its unit tests (about a minute)
    ./dev mutate isolation    sandbox.py and cgroups.py against the isolation tests (hours)
    python -m tests.mutate [core|isolation] [--jobs N]

mutmut (``pip install -e '.[mutate]'``) makes one-token changes ("mutants") to the code
under test (``<`` for ``<=``, a string changed, an argument dropped, ...) and runs the
chosen tests against each. A mutant the tests do not notice *survived*: a behaviour nothing
checks. This script copies the checkout into ``.mutants/<target>/`` (mutmut rewrites the
code it mutates, and keeps its results there between runs, so a second run only redoes
what changed), runs mutmut there, and prints the survivors with their diffs and the
survival rate. It exits 1 if any mutant survived.

A mutant that cannot change behaviour (an *equivalent* mutant, such as ``< 0`` for
``<= 0`` right after zero was handled) is marked ``# pragma: no mutate`` in the code, with
the reason beside it.
"""

from __future__ import annotations

import argparse
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
    mutmut = shutil.which("mutmut", path=os.path.dirname(sys.executable)) or shutil.which("mutmut")
    if mutmut is None:
        print("mutmut is not installed: pip install -e '.[mutate]' (./dev mutate does it)", file=sys.stderr)
        return 2
    work = prepare(args.target)
    subprocess.run([mutmut, "run", "--max-children", str(args.jobs)], cwd=work, check=False,
                   stdout=subprocess.DEVNULL)
    by_status = results(work, mutmut)
    survivors = by_status.get("survived", []) + by_status.get("no tests", [])
    for name in survivors:
        diff = subprocess.run([mutmut, "show", name], cwd=work, capture_output=True, text=True).stdout
        changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
        print(f"survived: {name}\n    " + "\n    ".join(changed))
    total = sum(len(v) for v in by_status.values())
    counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(by_status.items()))
    rate = 100.0 * len(survivors) / total if total else 0.0
    print(f"mutate {args.target}: {total} mutants ({counts}); survival rate {rate:.1f}%")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
