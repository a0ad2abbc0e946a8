"""A runtime under test: rapid's own host, in this process, with its Runtime API tapped.

``rapid check`` grades a runtime against Lambda's runtime contract and ``rapid bench``
measures what it costs; both run the runtime exactly as ``rapid serve`` would (the same
``Host``, ``Function`` and ``Instance``, the same sandbox and environment), but in-process,
so they can see every request the runtime makes and every line it writes, and can
drive invocations without an HTTP client in between.

- ``tap``      what the runtime sent: one ``Exchange`` per Runtime API request.
- ``rig``      the host, its functions, invocations driven and awaited, log lines kept.
- ``verdict``  the pure part of a check: verdicts and the report (no I/O).
- ``checks``   the behaviours, each an async function of the rig.
- ``measure``  the benchmark: cold starts, warm invokes, CPU and memory per runtime.
- ``machine``, ``progress``, ``stats``: /proc readings, the progress bar, percentiles
  (shared with ``benchmarks/``).
- ``handlers/`` the test handler, for Python, Node and shell (the protocol: README).
"""
