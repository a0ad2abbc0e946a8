"""rapid: a fast, faithful host for AWS Lambda functions.

Layout, read as the architecture:

- ``core/``        the rules, with no I/O: state machines, scheduling, AWS error and log shapes.
- ``http/``        a small HTTP/1.1 server protocol on httptools, shared by both APIs.
- ``api/``         the thin edges: the Runtime API (one server per instance) and the Invoke API.
- ``supervisor/``  everything about processes: spawn, environment, output, memory, kill.
- ``host/``        the glue that carries out what the core decides: functions, instances.
- ``lab/``        a runtime under test: rapid's host in-process with its Runtime API tapped,
                   for ``rapid check`` (the contract) and ``rapid bench`` (the cost).
- ``cli/``         the command line, one module per subcommand.
- ``config.py``, ``logs.py``, ``daemon.py``: configuration, log stream, and the wiring of it all.
"""

__version__ = "0.1.0"
