"""What deciding a command yields: an Outcome (changes to apply) or a Rejection (a reason)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from stockworker.domain.catalog import Item, Location
from stockworker.domain.position import Position
from stockworker.domain.purchasing import PoLine


class RejectionCode(StrEnum):
    INVALID_COMMAND = "INVALID_COMMAND"
    VERSION_CONFLICT = "VERSION_CONFLICT"
    UNKNOWN_POSITION = "UNKNOWN_POSITION"
    UNKNOWN_LOCATION = "UNKNOWN_LOCATION"
    LOCATION_INACTIVE = "LOCATION_INACTIVE"
    ITEM_INACTIVE = "ITEM_INACTIVE"
    SAME_LOCATION = "SAME_LOCATION"
    INSUFFICIENT_AVAILABLE = "INSUFFICIENT_AVAILABLE"
    INSUFFICIENT_PICKED = "INSUFFICIENT_PICKED"
    INSUFFICIENT_ON_HAND = "INSUFFICIENT_ON_HAND"
    MAX_BELOW_MIN = "MAX_BELOW_MIN"
    QUANTITY_LIMIT = "QUANTITY_LIMIT"
    RESERVATION_EXISTS = "RESERVATION_EXISTS"
    RESERVATION_NOT_FOUND = "RESERVATION_NOT_FOUND"
    RESERVATION_NOT_EXPIRED = "RESERVATION_NOT_EXPIRED"
    RESERVATION_ORDER_MISMATCH = "RESERVATION_ORDER_MISMATCH"
    RELEASE_EXCEEDS_RESERVATION = "RELEASE_EXCEEDS_RESERVATION"
    EXPIRES_IN_PAST = "EXPIRES_IN_PAST"
    PO_LINE_EXISTS = "PO_LINE_EXISTS"
    PO_LINE_NOT_FOUND = "PO_LINE_NOT_FOUND"
    PO_LINE_MISMATCH = "PO_LINE_MISMATCH"
    PO_LINE_CANCELLED = "PO_LINE_CANCELLED"
    PO_LINE_CLOSED = "PO_LINE_CLOSED"
    OVER_RECEIPT = "OVER_RECEIPT"
    UNRECEIVE_EXCEEDS_RECEIVED = "UNRECEIVE_EXCEEDS_RECEIVED"
    VALUE_LIMIT = "VALUE_LIMIT"
    COMMAND_ID_REUSED = "COMMAND_ID_REUSED"


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str
    code: str


@dataclass(frozen=True, slots=True)
class Rejection:
    code: RejectionCode
    message: str
    field_errors: tuple[FieldError, ...] = ()
    # The version of the position the rejection is about, when there is one.
    current_version: int | None = None


@dataclass(frozen=True, slots=True)
class PositionChange:
    """An accepted command's effect on one position; `reason` is recorded as its cause."""

    before: Position
    after: Position
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class PoLineChange:
    before: PoLine | None
    after: PoLine


@dataclass(frozen=True, slots=True)
class Outcome:
    """Everything an accepted command changes, applied together or not at all."""

    positions: tuple[PositionChange, ...] = ()
    po_line: PoLineChange | None = None
    location: Location | None = None
    item: Item | None = None


Decision = Outcome | Rejection
