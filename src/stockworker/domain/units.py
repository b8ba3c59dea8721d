"""Units of measure: a command's quantities given in one of its item's units, in base units.

Positions, purchase-order lines and events hold base units only. A command that names
a `unit` is converted before its handler sees it; the events keep the unit given in
their cause. An item that was never configured has the base unit "EA" and no others.
"""

from __future__ import annotations

from stockworker.contract.codes import RejectionCode
from stockworker.contract.commands import AnyCommand
from stockworker.contract.fields import MAX_QUANTITY
from stockworker.domain.catalog import Item
from stockworker.domain.outcome import Rejection
from stockworker.domain.state import StockView

UNCONFIGURED = Item(sku="", name="")

# The fields holding quantities, in the commands that have them.
_QUANTITY_FIELDS = ("quantity", "delta", "counted_quantity")


def in_base_units(view: StockView, command: AnyCommand) -> AnyCommand | Rejection:
    """The command with its quantities in base units (itself when it names no unit)."""
    # __dict__, not getattr: most command types have no `unit`, and a missing attribute
    # costs a pydantic __getattr__ and an AttributeError on the hot path.
    unit = command.__dict__.get("unit")
    if unit is None:
        return command
    sku: str = command.__dict__["sku"]
    item = view.item(sku) or UNCONFIGURED
    factor = item.factor(unit)
    if factor is None:
        known = ", ".join([item.base_unit, *sorted(item.units)])
        return Rejection(
            RejectionCode.UNKNOWN_UNIT,
            f"item {sku!r} has no unit {unit!r} (its units: {known})",
        )
    if factor == 1:
        return command
    converted: dict[str, int] = {}
    for name in _QUANTITY_FIELDS:
        given = command.__dict__.get(name)
        if given is None:
            continue
        if abs(given) * factor > MAX_QUANTITY:
            return Rejection(
                RejectionCode.QUANTITY_LIMIT,
                f"{name} {given} {unit} is {given * factor} {item.base_unit}, "
                f"above the limit of {MAX_QUANTITY}",
            )
        converted[name] = given * factor
    return command.model_copy(update=converted)
