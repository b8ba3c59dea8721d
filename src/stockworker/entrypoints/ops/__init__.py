"""The operators' commands (`stockworker dlq|replay|rebuild|events|offsets|audit ...`).

Each module here adds its sub-commands with `register(subparsers)` and sets `handler`
on its parsers; `entrypoints/cli.py` calls every registrar in REGISTRARS. Conventions
(dry run unless --execute, --json, the audit row, exit codes) are in `common`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stockworker.entrypoints.ops import audit_log, dlq, events, offsets, replay

Registrar = Callable[[Any], None]

# In the order `stockworker --help` lists them.
REGISTRARS: tuple[Registrar, ...] = (
    dlq.register,
    replay.register,
    events.register,
    offsets.register,
    audit_log.register,
)
