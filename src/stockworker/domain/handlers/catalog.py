"""Handlers of the catalogue: locations and items.

Only the fields a command carries change; a new entry takes the defaults for the rest
and must be given a name.
"""

from __future__ import annotations

from types import MappingProxyType

from stockworker.contract.codes import RejectionCode
from stockworker.contract.commands import ConfigureItem, ConfigureLocation
from stockworker.domain.catalog import NO_UNITS, Item, Location
from stockworker.domain.outcome import Decision, FieldError, Outcome, Rejection
from stockworker.domain.policy import Policy
from stockworker.domain.state import StockView


def _version_conflict(
    what: str, before: Item | Location | None, expected: int | None
) -> Rejection | None:
    current = before.version if before else 0
    if expected is None or expected == current:
        return None
    return Rejection(
        RejectionCode.VERSION_CONFLICT,
        f"{what} is at version {current}, not the expected {expected}",
        current_version=current,
    )


def _name_required(what: str) -> Rejection:
    return Rejection(
        RejectionCode.NAME_REQUIRED,
        f"{what} does not exist yet: give it a name",
        (FieldError("name", "required for a new entry", "name_required"),),
        current_version=0,
    )


def configure_location(view: StockView, cmd: ConfigureLocation, policy: Policy) -> Decision:
    before = view.location(cmd.code)
    what = f"location {cmd.code!r}"
    refused = _version_conflict(what, before, cmd.expected_version)
    if refused is not None:
        return refused
    if before is None:
        if cmd.name is None:
            return _name_required(what)
        before = Location(code=cmd.code, name=cmd.name, version=0)
    return Outcome(
        location=Location(
            code=cmd.code,
            name=before.name if cmd.name is None else cmd.name,
            active=before.active if cmd.active is None else cmd.active,
            version=before.version + 1,
        )
    )


def configure_item(view: StockView, cmd: ConfigureItem, policy: Policy) -> Decision:
    before = view.item(cmd.sku)
    what = f"item {cmd.sku!r}"
    refused = _version_conflict(what, before, cmd.expected_version)
    if refused is not None:
        return refused
    if before is None:
        if cmd.name is None:
            return _name_required(what)
        before = Item(sku=cmd.sku, name=cmd.name, version=0)
    base_unit = before.base_unit if cmd.base_unit is None else cmd.base_unit
    units = before.units
    if "units" in cmd.model_fields_set:
        units = MappingProxyType(dict(cmd.units)) if cmd.units else NO_UNITS
    if base_unit in units:
        return Rejection(
            RejectionCode.BASE_UNIT_IN_UNITS,
            f"{base_unit!r} is the base unit of {what}; it cannot also be one of its units",
            (FieldError("units", "must not name the base unit", "base_unit_in_units"),),
            current_version=before.version,
        )
    tracking = before.tracking if cmd.tracking is None else cmd.tracking.value
    if tracking != before.tracking and view.has_stock(cmd.sku):
        return Rejection(
            RejectionCode.TRACKING_CHANGE_WITH_STOCK,
            f"{what} holds stock: its tracking stays {before.tracking!r} until none is held",
            current_version=before.version,
        )
    return Outcome(
        item=Item(
            sku=cmd.sku,
            name=before.name if cmd.name is None else cmd.name,
            base_unit=base_unit,
            units=units,
            active=before.active if cmd.active is None else cmd.active,
            tracking=tracking,
            version=before.version + 1,
        )
    )
