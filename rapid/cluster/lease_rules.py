"""Reserved concurrency across nodes, as leases: the pure rules (no I/O, no clock read).

A function with reserved concurrency N has N lease keys, ``NAME.0`` .. ``NAME.N-1``, in a
KV bucket whose entries expire ``TTL`` seconds after their last write (JetStream's
``max_age``, measured by the server from when it stored the write). A node runs an
instance of the function only while it holds a lease for it; so at most N instances run
in the whole cluster. Why it cannot over-admit:

1. A lease is taken with a KV *create*, which JetStream refuses while the key holds a
   live value: a key has at most one holder at a time.
2. A holder renews with a KV *update* conditioned on the revision it wrote last; if it
   fails (the key expired and was taken), the holder has lost it.
3. A holder counts its lease valid only until ``sent + TTL - MARGIN``, where ``sent`` is
   its own clock when it *sent* the last successful write. The server stored that write
   after it was sent, so the key cannot expire, and be taken by another node, before
   ``sent + TTL``: the holder's own deadline comes first, by ``MARGIN``. A holder that
   cannot renew in time (NATS away, the node stalled) gives the lease up at its deadline:
   it stops the function's instances beyond the leases it still holds (``excess``).
4. A node that dies renews nothing; its runtimes die with it (the guardian kills them);
   its leases expire ``TTL`` after their last renewal and other nodes may take them.

So the instances counted against N are bounded by the live keys, which are bounded by N.
The price: after a node dies, its share of N is unusable for up to ``TTL`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

TTL = 6.0  # seconds a lease lives without renewal (the bucket's max_age)
RENEW = 1.0  # how often a holder renews
MARGIN = 2.0  # a holder's own deadline comes this much before the server's expiry


@dataclass
class Lease:
    slot: int
    revision: int  # of the holder's last successful write
    sent: float  # the holder's monotonic clock when it sent that write

    @property
    def deadline(self) -> float:
        return self.sent + TTL - MARGIN


def free_slots(reserved: int, held: set[int]) -> list[int]:
    """The slots worth trying to take, in order (the ones this node holds are skipped)."""
    return [slot for slot in range(reserved) if slot not in held]


def lapsed(leases: list[Lease], now: float) -> list[Lease]:
    """Leases past the holder's own deadline: given up, whatever NATS says later."""
    return [lease for lease in leases if now >= lease.deadline]


def spare(leases: int, instances: int, acquiring: int, reserved: int | None) -> int:
    """Leases to give back: more held than instances run (or are being started), or the
    reservation shrank or was removed. Never negative."""
    if reserved is None:
        return leases  # no reservation any more: nothing to hold
    keep = min(leases, reserved, instances + acquiring)
    return leases - keep


def excess(instances: int, leases: int) -> int:
    """Instances to stop because the leases that covered them are gone."""
    return max(0, instances - leases)
