"""The pure part of ``rapid check``: one verdict per behaviour, and the report.

A ``Verdict`` says what was seen, what Lambda expects and where AWS documents it. PASS:
the runtime does what Lambda's contract asks; WARN: it works, but differs from what Lambda
or its own clients do in a way an author should know; FAIL: it breaks the contract (the
command exits non-zero); SKIP: the behaviour could not be observed (the reason is given).
No I/O here: ``render`` returns text.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_DG = "https://docs.aws.amazon.com/lambda/latest/dg/"
RUNTIME_API = _DG + "runtimes-api.html"
CUSTOM = _DG + "runtimes-custom.html"
STREAMING = _DG + "runtimes-custom.html#runtimes-custom-response-streaming"
ENVIRONMENT = _DG + "configuration-envvars.html"
LIFECYCLE = _DG + "lambda-runtime-environment.html"
SHUTDOWN = _DG + "lambda-runtime-environment.html#runtimes-lifecycle-shutdown"
LIMITS = _DG + "gettingstarted-limits.html"
LAYERS = _DG + "packaging-layers.html#packaging-layers-paths"
LOGS = _DG + "monitoring-cloudwatchlogs.html"


class Status(enum.Enum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str
    status: Status
    seen: str
    expected: str
    source: str

    def line(self, width: int) -> str:
        head = f"{self.status.value}  {self.name:<{width}}  {self.seen}"
        if self.expected == "-":
            return head
        return f"{head}. Lambda: {self.expected}. {self.source}"


def passed(name: str, seen: str, expected: str, source: str) -> Verdict:
    return Verdict(name, Status.PASS, seen, expected, source)


def warned(name: str, seen: str, expected: str, source: str) -> Verdict:
    return Verdict(name, Status.WARN, seen, expected, source)


def failed(name: str, seen: str, expected: str, source: str) -> Verdict:
    return Verdict(name, Status.FAIL, seen, expected, source)


def skipped(name: str, why: str, expected: str, source: str) -> Verdict:
    return Verdict(name, Status.SKIP, why, expected, source)


def judge(name: str, ok: bool, seen: str, expected: str, source: str) -> Verdict:
    return Verdict(name, Status.PASS if ok else Status.FAIL, seen, expected, source)


def counts(verdicts: Iterable[Verdict]) -> dict[Status, int]:
    out = {s: 0 for s in Status}
    for v in verdicts:
        out[v.status] += 1
    return out


def exit_code(verdicts: Iterable[Verdict]) -> int:
    """1 when any behaviour failed, else 0 (warnings and skips do not fail a check)."""
    return 1 if any(v.status is Status.FAIL for v in verdicts) else 0


def render(runtime: str, verdicts: Sequence[Verdict], notes: Sequence[str] = ()) -> str:
    width = max((len(v.name) for v in verdicts), default=8)
    lines = [f"rapid check: {runtime}"]
    lines += [f"  {note}" for note in notes]
    lines += [v.line(width) for v in verdicts]
    c = counts(verdicts)
    summary = ", ".join(f"{c[s]} {s.value}" for s in Status if c[s])
    verdict = "FAIL" if c[Status.FAIL] else "PASS"
    lines.append(f"{verdict}: {summary}")
    return "\n".join(lines)
