"""Topic names of the v1 contract. A prefix isolates environments and tests."""

from __future__ import annotations

from dataclasses import dataclass

CHANGED = "stock.changed.v1"
SNAPSHOT = "stock.positions.v1"


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = ""

    @property
    def commands(self) -> str:
        return f"{self.prefix}stock.commands.v1"

    @property
    def changed(self) -> str:
        return f"{self.prefix}{CHANGED}"

    @property
    def low_stock(self) -> str:
        return f"{self.prefix}stock.low-stock.v1"

    @property
    def lots(self) -> str:
        """LotExpiring and LotExpired, keyed by SKU."""
        return f"{self.prefix}stock.lots.v1"

    @property
    def purchase_orders(self) -> str:
        return f"{self.prefix}stock.purchase-orders.v1"

    @property
    def results(self) -> str:
        return f"{self.prefix}stock.command-results.v1"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}stock.commands.dlq.v1"

    @property
    def snapshot(self) -> str:
        """Compacted: every position's latest state (PositionSnapshot), kept by the relay."""
        return f"{self.prefix}{SNAPSHOT}"

    @classmethod
    def of_changed(cls, topic: str) -> Topics | None:
        """The topics whose `changed` is `topic` (the relay knows a row's topic, not the
        prefix it was written under); None when `topic` is not a changed topic."""
        if not topic.endswith(CHANGED):
            return None
        return cls(topic[: -len(CHANGED)])

    def all(self) -> tuple[str, ...]:
        return (
            self.commands,
            self.changed,
            self.low_stock,
            self.purchase_orders,
            self.results,
            self.dead_letters,
            self.snapshot,
            self.lots,
        )
