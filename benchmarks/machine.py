"""What the figures were measured on, and what a process costs: moved into the rapid
package (``rapid.lab.machine``, which ``rapid bench`` shares); re-exported here."""

from rapid.lab.machine import (  # noqa: F401
    children,
    cpu_model,
    cpu_seconds,
    descendants,
    describe,
    is_runtime,
    machine_info,
    rapid_version,
    rss_kb,
    runtimes,
    sockets,
    start_time,
    tree_cpu,
)
