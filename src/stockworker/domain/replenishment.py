"""How much to reorder for a position that ran low (published in LowStock)."""

from __future__ import annotations

from stockworker.domain.position import Position


def suggested_order_quantity(position: Position) -> int:
    """Enough to cover back orders and bring available + on_order up to max_quantity,
    and at least reorder_quantity."""
    shortfall = (
        position.max_quantity + position.back_ordered - position.available - position.on_order
    )
    return max(position.reorder_quantity, shortfall, 0)
