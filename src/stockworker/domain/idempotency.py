"""What makes two commands with one command_id the same command.

The inbox keeps a fingerprint of each applied command's canonical payload, as the
idempotency keys of payment APIs do: a redelivery has the same fingerprint and gets the
stored result again; a command_id reused for a different payload does not, and is
refused (COMMAND_ID_REUSED) instead of being answered with another command's result.

Canonical means equal values give equal fingerprints whatever their spelling: key
order, `5` or `"5.00"` for money, the offset an instant is written with, a default
sent or left out. `occurred_at` is left out: it says when the publisher built the
message, not what it asks for, and a publisher retrying may build it again.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from stockworker.domain.commands import AnyCommand

FINGERPRINT_BYTES = 16


# Exact types: an enum member (a str subclass) is written as its value, not its repr.
_PLAIN = frozenset({str, int, bool, type(None)})
_LEFT_OUT = frozenset({"occurred_at", "command_id"})


def _canonical(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, (date, UUID)):
        return str(value)
    raise TypeError(f"no canonical form for {type(value).__name__}")


def command_fingerprint(command: AnyCommand) -> bytes:
    # The values in field order (fixed per command type, whose name is the `type`
    # field), every field present: what the command means, not how it was spelled.
    # command_id is left out too: fingerprints are only compared under one id.
    values = [_canonical(v) for k, v in command.__dict__.items() if k not in _LEFT_OUT]
    return hashlib.blake2b(repr(values).encode(), digest_size=FINGERPRINT_BYTES).digest()


def raw_fingerprint(value: bytes) -> bytes:
    """The fingerprint of bytes that are not a valid command (nothing to canonicalise)."""
    return hashlib.blake2b(value, digest_size=FINGERPRINT_BYTES).digest()
