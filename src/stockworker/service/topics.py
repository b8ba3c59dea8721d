"""Topic names of the v1 contract. A prefix isolates environments and tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = ""

    @property
    def commands(self) -> str:
        return f"{self.prefix}stock.commands.v1"

    @property
    def changed(self) -> str:
        return f"{self.prefix}stock.changed.v1"

    @property
    def low_stock(self) -> str:
        return f"{self.prefix}stock.low-stock.v1"

    @property
    def purchase_orders(self) -> str:
        return f"{self.prefix}stock.purchase-orders.v1"

    @property
    def results(self) -> str:
        return f"{self.prefix}stock.command-results.v1"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}stock.commands.dlq.v1"

    def all(self) -> tuple[str, ...]:
        return (
            self.commands,
            self.changed,
            self.low_stock,
            self.purchase_orders,
            self.results,
            self.dead_letters,
        )
