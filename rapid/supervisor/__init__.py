"""Processes: spawn, environment, output, memory, signals, and the guarantee that nothing
a daemon starts outlives it."""
