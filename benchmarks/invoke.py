"""The sequential scenario alone (kept for the command it used to be):

    python -m benchmarks.invoke [-n 3000] [--rounds R] [--against 'CMD'] [--json PATH]

is ``python -m benchmarks --only sequential,floor`` with the same options. See
``benchmarks/harness.py`` for the whole harness.
"""

from __future__ import annotations

from benchmarks.harness import main as harness_main


def main(argv: list[str] | None = None) -> int:
    import sys

    return harness_main(["--only", "sequential,floor", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
