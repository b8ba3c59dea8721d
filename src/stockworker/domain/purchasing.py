"""Purchase-order lines: what was ordered for a position, received, and is still open."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from stockworker.contract.codes import PoLineStatus
from stockworker.domain.valuation import ZERO


class PoLineKey(NamedTuple):
    po_number: str
    po_line: int


@dataclass(frozen=True, slots=True)
class PoLine:
    """One purchase-order line. `planned` is False for a receipt no order announced.

    `received_value` is what the received quantity cost, so an un-receipt takes out
    exactly what its receipts put in.
    """

    po_number: str
    po_line: int
    sku: str
    location: str
    ordered_quantity: int
    unit_cost: Decimal
    received_quantity: int = 0
    received_value: Decimal = ZERO
    cancelled: bool = False
    planned: bool = True
    supplier: str | None = None
    expected_date: date | None = None
    version: int = 1

    @property
    def key(self) -> PoLineKey:
        return PoLineKey(self.po_number, self.po_line)

    @property
    def open_quantity(self) -> int:
        """Still expected: counted in the position's on_order."""
        if self.cancelled:
            return 0
        return max(self.ordered_quantity - self.received_quantity, 0)

    @property
    def status(self) -> PoLineStatus:
        if self.cancelled:
            return PoLineStatus.CANCELLED
        if self.received_quantity == 0:
            return PoLineStatus.NEW
        if self.received_quantity < self.ordered_quantity:
            return PoLineStatus.RECEIVED_PARTIAL
        return PoLineStatus.RECEIVED_FULL
