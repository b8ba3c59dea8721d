"""What makes two commands with one command_id the same command.

The inbox keeps a fingerprint of each applied command's canonical payload, as the
idempotency keys of payment APIs do: a redelivery has the same fingerprint and gets the
stored result again; a command_id reused for a different payload does not, and is
refused (COMMAND_ID_REUSED) instead of being answered with another command's result.

Canonical means equal values give equal fingerprints whatever their spelling: key
order, `5` or `"5.00"` for money, the offset an instant is written with, a default
sent or left out. `occurred_at` is left out: it says when the publisher built the
message, not what it asks for, and a publisher retrying may build it again.

Fingerprints are kept in the inbox across releases, so they must not change with the
code: fields at their default are left out (a new optional field changes nothing), and
the first byte is a version of the algorithm; fingerprints of different versions are
taken as the same command rather than refused.

ConfigureStockItem and ConfigureItem change only the fields they carry, and an explicit
null clears a setting or the units: for those fields a null sent is not the same as one
left out, so when given they are always written, under version 2 (`units` null as {},
which means the same). A stored version-1 fingerprint is taken as the same command.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from stockworker.contract.commands import (
    STOCK_ITEM_SETTINGS,
    AnyCommand,
    ConfigureItem,
    ConfigureStockItem,
)

FINGERPRINT_BYTES = 16
FINGERPRINT_VERSION = b"\x01"
# The version of fingerprints of commands whose given fields count (see above).
GIVEN_FIELDS_VERSION = b"\x02"
_GIVEN_FIELDS_COUNT: dict[type[AnyCommand], frozenset[str]] = {
    ConfigureStockItem: STOCK_ITEM_SETTINGS,
    ConfigureItem: frozenset({"units"}),
}


# Exact types: an enum member (a str subclass) is written as its value, not its repr.
_PLAIN = frozenset({str, int, bool})
_LEFT_OUT = frozenset({"occurred_at", "command_id", "type"})


def _canonical(value: Any) -> str:
    if type(value) in _PLAIN:
        return str(value)
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, (date, UUID)):
        return str(value)
    if isinstance(value, dict):  # ConfigureItem.units: names and integer factors
        return "\x1d".join(f"{k}\x1c{v}" for k, v in sorted(value.items()))
    if isinstance(value, tuple):  # serial numbers: their order changes nothing
        return "\x1d".join(sorted(value))
    raise TypeError(f"no canonical form for {type(value).__name__}")


_REQUIRED = object()


def _defaults(kind: type[AnyCommand]) -> dict[str, Any]:
    """Each field's default, `_REQUIRED` for those without one."""
    found = _DEFAULTS.get(kind)
    if found is None:
        found = {
            name: _REQUIRED if f.is_required() else f.default
            for name, f in kind.model_fields.items()
        }
        _DEFAULTS[kind] = found
    return found


_DEFAULTS: dict[type[AnyCommand], dict[str, Any]] = {}


def command_fingerprint(command: AnyCommand) -> bytes:
    # The type, then every field not at its default, as name and canonical value in
    # field order. command_id is left out too: fingerprints are only compared under
    # one id. The separators are control characters, which no text field may hold.
    # (Written out rather than with helpers: it runs for every command.)
    defaults = _defaults(type(command))
    given: frozenset[str] = frozenset()
    version = FINGERPRINT_VERSION
    counted = _GIVEN_FIELDS_COUNT.get(type(command))
    if counted is not None:
        given, version = counted & command.model_fields_set, GIVEN_FIELDS_VERSION
    text: str = command.type
    for name, value in command.__dict__.items():
        if name in _LEFT_OUT:
            continue
        default = defaults[name]
        if (
            default is not _REQUIRED
            and name not in given
            and (value is default or value == default)
        ):
            continue
        kind = type(value)
        if value is None:
            # A given null: no text field can hold a control character. Units null
            # and {} both remove the units.
            shown = "" if name == "units" else "\x00"
        else:
            shown = value if kind is str else str(value) if kind in _PLAIN else _canonical(value)
        text += f"\x1e{name}\x1f{shown}"
    digest = hashlib.blake2b(text.encode(), digest_size=FINGERPRINT_BYTES).digest()
    return version + digest


def same_command(stored: bytes | None, current: bytes) -> bool:
    """Whether a stored fingerprint is the same command's (unknown ones are taken to be)."""
    return stored is None or stored[:1] != current[:1] or stored == current


def raw_fingerprint(value: bytes) -> bytes:
    """The fingerprint of bytes that are not a valid command (nothing to canonicalise)."""
    return hashlib.blake2b(value, digest_size=FINGERPRINT_BYTES).digest()
