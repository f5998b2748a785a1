"""Process-wide settings for a webhook worker serving traffic (not for tests or CLI commands)."""

from __future__ import annotations

import gc

# A push allocates a few thousand short-lived objects (the request, SQLAlchemy statements, redis-py and
# urllib3 calls, the reply). Python's default collects the youngest generation every 700 allocations
# and, every 10 of those, scans older objects — the loaded modules, the app, SQLAlchemy's metadata — that
# never become garbage.
YOUNG_THRESHOLD = 20_000


def tune_garbage_collector() -> None:
    """Freeze what the worker has loaded so far out of the collector's scans, and collect young objects
    less often (measured in benchmarks/gateway/REPORT.md). Cycles are still found, a little later."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, max(middle, 20), max(old, 50))
