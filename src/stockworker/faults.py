"""Crash points, for the fault tests and for drills.

`STOCKWORKER_CRASH_AT=after-db-commit:3` makes the process exit at once (os._exit, as
abrupt as SIGKILL: no cleanup, no flush) the 3rd time it reaches that point. Points:
- `after-db-commit`: a batch's transaction committed, its offsets not yet committed;
- `relay-after-publish`: the broker acknowledged a relay batch, the rows not yet marked.
Unset (production), a crash point costs one dictionary lookup.
"""

from __future__ import annotations

import logging
import os
from collections import Counter

log = logging.getLogger(__name__)


def _parse(spec: str) -> dict[str, int]:
    points = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, count = item.partition(":")
        points[name] = int(count or 1)
    return points


_ARMED = _parse(os.environ.get("STOCKWORKER_CRASH_AT", ""))
_reached: Counter[str] = Counter()


def crash_point(name: str) -> None:
    if name not in _ARMED:
        return
    _reached[name] += 1
    if _reached[name] == _ARMED[name]:
        log.critical("crash point %s reached (%d): exiting now", name, _reached[name])
        logging.shutdown()
        os._exit(70)
