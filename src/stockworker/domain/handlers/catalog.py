"""Handlers of the catalogue: locations and items."""

from __future__ import annotations

from stockworker.contract.commands import ConfigureItem, ConfigureLocation
from stockworker.domain.catalog import Item, Location
from stockworker.domain.outcome import Decision, Outcome
from stockworker.domain.policy import Policy
from stockworker.domain.state import StockView


def configure_location(view: StockView, cmd: ConfigureLocation, policy: Policy) -> Decision:
    before = view.location(cmd.code)
    return Outcome(
        location=Location(
            code=cmd.code,
            name=cmd.name,
            active=cmd.active,
            version=before.version + 1 if before else 1,
        )
    )


def configure_item(view: StockView, cmd: ConfigureItem, policy: Policy) -> Decision:
    before = view.item(cmd.sku)
    return Outcome(
        item=Item(
            sku=cmd.sku,
            name=cmd.name,
            base_unit=cmd.base_unit,
            active=cmd.active,
            version=before.version + 1 if before else 1,
        )
    )
