"""The constrained field types of commands (sizes, patterns, bounds)."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from pydantic import AfterValidator, Field

# Quantities are integers in the item's base unit. The upper bound keeps every sum
# of quantities inside PostgreSQL's BIGINT and rejects absurd input early.
MAX_QUANTITY = 1_000_000_000_000

# Text never holds control characters (PostgreSQL refuses NUL, logs and UIs choke on
# the rest); codes also have no surrounding spaces.
_TEXT = r"^[^\x00-\x1f\x7f]*$"
_CODE = r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$"
Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=_CODE)]
LocationCode = Annotated[str, Field(min_length=1, max_length=64, pattern=_CODE)]
Reference = Annotated[str, Field(min_length=1, max_length=100, pattern=_TEXT)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=_TEXT)]
Bin = Annotated[str, Field(max_length=50, pattern=_TEXT)]
BaseUnit = Annotated[str, Field(min_length=1, max_length=20, pattern=_CODE)]
# A unit of measure of an item (its base unit or one of its named units).
UnitName = BaseUnit
# How many base units one named unit holds (BOX = 12 EA).
UnitFactor = Annotated[int, Field(strict=True, ge=1, le=1_000_000)]
MAX_UNITS = 20
# Tracked stock: a serial number names one unit of an item; a lot names a batch of them.
SerialNumber = Annotated[str, Field(min_length=1, max_length=100, pattern=_CODE)]
LotCode = Annotated[str, Field(min_length=1, max_length=100, pattern=_CODE)]
# The most serial numbers one command names (a larger receipt is sent in parts).
MAX_SERIALS = 1000
PositiveQuantity = Annotated[int, Field(strict=True, ge=1, le=MAX_QUANTITY)]
NonNegativeQuantity = Annotated[int, Field(strict=True, ge=0, le=MAX_QUANTITY)]
QuantityDelta = Annotated[int, Field(strict=True, ge=-MAX_QUANTITY, le=MAX_QUANTITY)]
Version = Annotated[int, Field(strict=True, ge=0)]
# The number of a line within a purchase order (not the line itself: domain PoLine).
PoLineNumber = Annotated[int, Field(strict=True, ge=1, le=1_000_000)]


def _distinct(serials: tuple[str, ...]) -> tuple[str, ...]:
    repeated = sorted(s for s, n in Counter(serials).items() if n > 1)
    if repeated:
        raise ValueError(f"serial numbers repeat: {', '.join(repeated[:5])}")
    return serials


# The serial numbers of the units a command moves, each once.
Serials = Annotated[
    tuple[SerialNumber, ...],
    Field(min_length=1, max_length=MAX_SERIALS, json_schema_extra={"uniqueItems": True}),
    AfterValidator(_distinct),
]
