"""``python -m benchmarks``: see ``benchmarks/harness.py`` (or ``--help``)."""

from benchmarks.harness import main

raise SystemExit(main())
