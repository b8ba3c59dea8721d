"""Policy: the settings of the deployment that the rules depend on."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Policy:
    """Settings of the deployment that rules depend on."""

    # How far a receipt may exceed a line's ordered quantity, in percent of it.
    over_receipt_tolerance_percent: Decimal = Decimal(0)
    # How many days before its expiry date a lot with stock is reported (LotExpiring).
    lot_expiring_days: int = 30
