"""Logs: the daemon's stream on stdout (``sink.LogSink``) and the logs kept per function,
version and log stream in the data dir (``store``), read back by ``rapid logs`` and the
CloudWatch Logs API subset (``rapid.api.logs``)."""

from rapid.logs.sink import LogSink

__all__ = ["LogSink"]
