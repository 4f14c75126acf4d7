"""The garbage collector's pace for a gateway that reads.

Every record fetched is a few container objects (the librdkafka message and flasfka's
Record), a million a second on a busy stream, and most live a little while in a read-ahead
buffer. At CPython's default thresholds (a young collection every 700 new containers, an
older one every 10 of those) the collector then runs thousands of times a second and walks
the buffered records again and again: a third of an NDJSON stream's time was spent there.
Collecting every 100,000 new containers keeps cyclic garbage (rare here: Deferred chains)
bounded and the collector under a few percent.
"""

from __future__ import annotations

import gc

#: (young, middle, old) thresholds: see gc.set_threshold.
THRESHOLDS = (100_000, 50, 100)


def pace_collector() -> None:
    """Set the collector's thresholds for this process (idempotent)."""
    gc.set_threshold(*THRESHOLDS)
