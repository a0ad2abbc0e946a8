"""The sans-I/O core: no asyncio, no sockets, no processes, no clock of its own.

Everything here is a pure function of its inputs or a small state machine written as a
transition table. The async layer (``rapid.host``) feeds events in and carries out what
comes back.
"""
