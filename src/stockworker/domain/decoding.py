"""Turning the bytes of a Kafka record into a command, or saying precisely why not.

Three outcomes:
- a valid command;
- `InvalidCommand`: an identifiable command (a UUID command_id and a known type) whose
  fields break the contract; it gets a CommandRejected the publisher can correlate;
- `Undecodable`: nothing a publisher could correlate (not UTF-8, not JSON, not an
  object, no usable command_id, unknown type, too large or too deep); it goes to the
  dead-letter topic with its original bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import TypeAdapter, ValidationError

from stockworker.contract.codes import DeadLetterCode
from stockworker.contract.commands import COMMAND_TYPE_NAMES, AnyCommand, Command
from stockworker.domain.outcome import FieldError

_COMMAND_ADAPTER: TypeAdapter[AnyCommand] = TypeAdapter(Command)
_DATETIME_ADAPTER: TypeAdapter[datetime] = TypeAdapter(datetime)

DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
# Deeper JSON than this is never a valid command (the deepest valid one is 1 level).
MAX_JSON_DEPTH = 32
# A rejection lists at most this many field errors (and says how many it left out).
MAX_FIELD_ERRORS = 50


@dataclass(frozen=True, slots=True)
class Undecodable:
    code: DeadLetterCode
    message: str


@dataclass(frozen=True, slots=True)
class InvalidCommand:
    command_id: UUID
    command_type: str
    field_errors: tuple[FieldError, ...]
    occurred_at: datetime | None
    sku: str | None
    location: str | None


Decoded = AnyCommand | InvalidCommand | Undecodable


def decode_command(raw: bytes | None, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Decoded:
    if not raw:
        return Undecodable(DeadLetterCode.EMPTY_MESSAGE, "the record has no value")
    if len(raw) > max_bytes:
        return Undecodable(
            DeadLetterCode.MESSAGE_TOO_LARGE,
            f"the record is {len(raw)} bytes, above the limit of {max_bytes}",
        )
    try:
        return _COMMAND_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        return _diagnose(raw, exc)


def _depth_exceeds(raw: bytes, limit: int) -> bool:
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def _diagnose(raw: bytes, exc: ValidationError) -> Decoded:
    """The slow path, only for invalid input: find the most specific reason."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return Undecodable(DeadLetterCode.NOT_UTF8, f"not valid UTF-8 at byte {err.start}")
    if _depth_exceeds(raw, MAX_JSON_DEPTH):
        return Undecodable(DeadLetterCode.TOO_DEEP, f"JSON nested deeper than {MAX_JSON_DEPTH}")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:
        return Undecodable(DeadLetterCode.NOT_JSON, f"not JSON: {err}"[:300])
    if not isinstance(data, dict):
        return Undecodable(
            DeadLetterCode.NOT_AN_OBJECT, f"expected a JSON object, got {type(data).__name__}"
        )
    if "command_id" not in data:
        return Undecodable(DeadLetterCode.MISSING_COMMAND_ID, "the command has no command_id")
    try:
        command_id = UUID(str(data["command_id"])) if isinstance(data["command_id"], str) else None
    except ValueError:
        command_id = None
    if command_id is None:
        return Undecodable(DeadLetterCode.INVALID_COMMAND_ID, "command_id is not a UUID string")
    command_type = data.get("type")
    if command_type is None:
        return Undecodable(DeadLetterCode.MISSING_TYPE, "the command has no type")
    if not isinstance(command_type, str) or command_type not in COMMAND_TYPE_NAMES:
        shown = repr(command_type)[:80]
        return Undecodable(
            DeadLetterCode.UNKNOWN_TYPE,
            f"unknown command type {shown}; known: {', '.join(sorted(COMMAND_TYPE_NAMES))}",
        )
    return InvalidCommand(
        command_id=command_id,
        command_type=command_type,
        field_errors=_field_errors(exc),
        occurred_at=_optional_datetime(data.get("occurred_at")),
        sku=_optional_str(data.get("sku")),
        location=_optional_str(
            data.get("location") or data.get("from_location") or data.get("code")
        ),
    )


def _field_errors(exc: ValidationError) -> tuple[FieldError, ...]:
    """The field errors, bounded: the rejection carrying them must stay publishable
    whatever the command held (60,000 unknown fields, a field name of a megabyte)."""
    found = exc.errors(include_url=False, include_input=False)
    errors = []
    for err in found[:MAX_FIELD_ERRORS]:
        # The first element of a discriminated union's location is the tag: drop it.
        loc = err["loc"][1:] if err["loc"] and err["loc"][0] in COMMAND_TYPE_NAMES else err["loc"]
        field = ".".join(str(part) for part in loc) or "(command)"
        message = err["msg"].removeprefix("Value error, ")
        errors.append(
            FieldError(field=_cut(field), message=_cut(message, 300), code=_cut(err["type"]))
        )
    if len(found) > MAX_FIELD_ERRORS:
        errors.append(
            FieldError(
                field="(command)",
                message=f"{len(found) - MAX_FIELD_ERRORS} more errors not listed",
                code="too_many_errors",
            )
        )
    return tuple(errors)


def _cut(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _optional_str(value: Any) -> str | None:
    return value[:64] if isinstance(value, str) and value else None


def _optional_datetime(value: Any) -> datetime | None:
    try:
        parsed = _DATETIME_ADAPTER.validate_python(value)
    except ValidationError:
        return None
    return parsed if parsed.tzinfo is not None else None
