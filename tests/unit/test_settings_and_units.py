"""Partial settings, catalogue versions and units of measure (issue 13): each accepted
path and each rejection, in the pure domain."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stockworker.contract.codes import RejectionCode
from stockworker.contract.events import CommandAccepted, StockChanged
from stockworker.domain.decoding import InvalidCommand, Undecodable, decode_command
from stockworker.domain.footprint import footprint
from stockworker.domain.idempotency import command_fingerprint
from stockworker.domain.ledger import ledger_entry, references_of
from stockworker.domain.state import StockState
from stockworker.service.batch_state import MAX_LOCKS_PER_COMMAND, lock_names
from tests.support.builders import command
from tests.support.domain import KEY, cmd, outcome, rejected, run
from tests.support.events import event_models

FULL_SETTINGS: dict[str, Any] = {
    "min_quantity": 2,
    "max_quantity": 50,
    "low_stock_threshold": 5,
    "reorder_quantity": 12,
    "bin": "A-01",
    "preferred_supplier": "ACME",
}


def settings_of(state: StockState) -> dict[str, Any]:
    p = state.positions[KEY]
    return {name: getattr(p, name) for name in FULL_SETTINGS}


def configured_fully() -> StockState:
    return run(StockState(), cmd("ConfigureStockItem", **FULL_SETTINGS))


def partial(**fields: Any) -> Any:
    """A ConfigureStockItem carrying only `fields` (the builder's defaults left out)."""
    left_out = {"min_quantity": ..., "max_quantity": ..., "low_stock_threshold": ...}
    return cmd("ConfigureStockItem", **{**left_out, **fields})


# -- partial ConfigureStockItem -------------------------------------------------------


def test_a_configure_stock_item_changes_only_the_settings_it_carries() -> None:
    state = run(configured_fully(), partial(low_stock_threshold=8))
    assert settings_of(state) == {**FULL_SETTINGS, "low_stock_threshold": 8}
    assert state.positions[KEY].version == 2


def test_an_explicit_null_resets_a_setting_and_only_that_one() -> None:
    state = run(configured_fully(), partial(bin=None, reorder_quantity=None))
    assert settings_of(state) == {**FULL_SETTINGS, "bin": None, "reorder_quantity": 0}


def test_a_new_position_takes_zero_for_the_settings_left_out() -> None:
    state = run(StockState(), partial(bin="B-7"))
    assert settings_of(state) == {
        "min_quantity": 0,
        "max_quantity": 0,
        "low_stock_threshold": 0,
        "reorder_quantity": 0,
        "bin": "B-7",
        "preferred_supplier": None,
    }


def test_max_below_min_is_judged_on_the_settings_after_the_change() -> None:
    state = configured_fully()  # min 2, max 50
    refused = rejected(state, partial(min_quantity=60))
    assert refused.code is RejectionCode.MAX_BELOW_MIN
    assert "max_quantity 50 would be below min_quantity 60" in refused.message
    assert refused.current_version == 1
    assert settings_of(run(state, partial(min_quantity=60, max_quantity=70)))["max_quantity"] == 70


def test_the_event_of_a_partial_change_carries_every_setting() -> None:
    state = configured_fully()
    command_ = partial(preferred_supplier="OTHER")
    _, events = event_models(command_, outcome(state, command_))
    (changed,) = [e for e in events if isinstance(e, StockChanged)]
    assert changed.settings.model_dump() == {**FULL_SETTINGS, "preferred_supplier": "OTHER"}


# -- catalogue: partial, versions, names ----------------------------------------------


def test_a_configure_item_changes_only_what_it_carries() -> None:
    state = run(
        StockState(),
        cmd("ConfigureItem", name="Widget", base_unit="PC", units={"BOX": 10}, active=False),
        cmd("ConfigureItem", name=..., active=True),
    )
    item = state.items["SKU-1"]
    assert (item.name, item.base_unit, dict(item.units), item.active, item.version) == (
        "Widget",
        "PC",
        {"BOX": 10},
        True,
        2,
    )
    run(state, cmd("ConfigureItem", name=..., units=None))
    assert dict(state.items["SKU-1"].units) == {}


def test_a_configure_location_changes_only_what_it_carries() -> None:
    state = run(
        StockState(),
        cmd("ConfigureLocation", code="WH1", name="Main", active=False),
        cmd("ConfigureLocation", code="WH1", name="Main hall"),
    )
    location = state.locations["WH1"]
    assert (location.name, location.active, location.version) == ("Main hall", False, 2)


@pytest.mark.parametrize(
    ("type_", "fields"), [("ConfigureItem", {}), ("ConfigureLocation", {"code": "NEW"})]
)
def test_a_new_catalogue_entry_needs_a_name(type_: str, fields: dict[str, Any]) -> None:
    refused = rejected(StockState(), cmd(type_, name=..., **fields))
    assert refused.code is RejectionCode.NAME_REQUIRED
    assert [e.field for e in refused.field_errors] == ["name"]


@pytest.mark.parametrize("field", ["name", "active", "base_unit"])
def test_a_catalogue_field_that_cannot_be_cleared_may_not_be_null(field: str) -> None:
    refused = decode_command(json.dumps({**command("ConfigureItem"), field: None}).encode())
    assert isinstance(refused, InvalidCommand)
    assert [(e.field, e.message) for e in refused.field_errors] == [
        (field, "may be left out (to keep it) but not null")
    ]


def test_catalogue_commands_take_expected_version() -> None:
    state = run(StockState(), cmd("ConfigureItem", name="Widget", expected_version=0))
    conflict = rejected(state, cmd("ConfigureItem", name=..., active=False, expected_version=0))
    assert (conflict.code, conflict.current_version) == (RejectionCode.VERSION_CONFLICT, 1)
    assert "item 'SKU-1' is at version 1, not the expected 0" in conflict.message
    run(state, cmd("ConfigureItem", name=..., active=False, expected_version=1))
    assert state.items["SKU-1"].version == 2
    refused = rejected(state, cmd("ConfigureLocation", code="WH9", name="X", expected_version=3))
    assert (refused.code, refused.current_version) == (RejectionCode.VERSION_CONFLICT, 0)


def test_command_accepted_carries_the_catalogue_entry_version() -> None:
    state = run(StockState(), cmd("ConfigureLocation", code="WH1", name="Main"))
    command_ = cmd("ConfigureLocation", code="WH1", name=..., active=False)
    result, events = event_models(command_, outcome(state, command_))
    assert isinstance(result, CommandAccepted)
    assert (result.sku, result.location, result.version, events) == (None, "WH1", 2, [])
    item_command = cmd("ConfigureItem", name="Widget")
    result, _ = event_models(item_command, outcome(state, item_command))
    assert isinstance(result, CommandAccepted)
    assert (result.sku, result.version) == ("SKU-1", 1)


def test_catalogue_commands_lock_their_entry_and_stock_commands_do_not() -> None:
    assert lock_names(footprint(cmd("ConfigureItem"))) == ["item\x00SKU-1"]
    assert lock_names(footprint(cmd("ConfigureLocation", code="WH7"))) == ["location\x00WH7"]
    stock_locks = lock_names(footprint(cmd("ReceivePOItem")))
    assert not [name for name in stock_locks if name.startswith(("item", "location"))]
    assert len(stock_locks) <= MAX_LOCKS_PER_COMMAND


# -- units of measure -----------------------------------------------------------------


def with_units(**units: int) -> StockState:
    return run(StockState(), cmd("ConfigureItem", name="Widget", units=units))


def test_a_quantity_in_a_named_unit_is_converted_to_base_units() -> None:
    state = with_units(BOX=12)
    receipt = cmd("ReceivePOItem", po_number="P1", quantity=2, unit="BOX", unit_cost="1.5")
    run(state, receipt)
    p = state.positions[KEY]
    assert (p.on_hand, str(p.stock_value)) == (24, "36.000000")  # unit_cost is per base unit
    run(
        state, cmd("PickStock", quantity=1, unit="BOX"), cmd("AdjustInventory", delta=-1, unit="EA")
    )
    assert (state.positions[KEY].on_hand, state.positions[KEY].picked) == (23, 12)


def test_counted_quantities_and_deltas_convert_too() -> None:
    state = with_units(CASE=6)
    run(state, cmd("AdjustInventory", counted_quantity=3, delta=..., unit="CASE", reason="COUNT"))
    assert state.positions[KEY].on_hand == 18
    run(state, cmd("AdjustInventory", delta=-2, unit="CASE", reason="DAMAGE"))
    assert state.positions[KEY].on_hand == 6


def test_events_report_base_units_and_echo_the_unit_given() -> None:
    state = with_units(BOX=12)
    receipt = cmd("ReceivePOItem", po_number="P1", quantity=2, unit="BOX", unit_cost="1")
    decision = outcome(state, receipt)
    _, events = event_models(receipt, decision)
    changed = next(e for e in events if isinstance(e, StockChanged))
    assert (changed.deltas.on_hand, changed.quantities.on_hand, changed.cause.unit) == (
        24,
        24,
        "BOX",
    )
    entry = ledger_entry(
        decision.positions[0],
        receipt.command_id,
        receipt.type,
        receipt.occurred_at,
        references_of(receipt),
    )
    assert entry.references.unit == "BOX"  # the ledger keeps it for a republish


def test_a_unit_the_item_does_not_have_is_refused() -> None:
    state = with_units(BOX=12)
    refused = rejected(state, cmd("ReceivePOItem", quantity=1, unit="PALLET"))
    assert refused.code is RejectionCode.UNKNOWN_UNIT
    assert refused.message == "item 'SKU-1' has no unit 'PALLET' (its units: EA, BOX)"
    # An item never configured has its base unit "EA" only.
    assert outcome(StockState(), cmd("ReceivePOItem", quantity=1, unit="EA")).positions
    unconfigured = rejected(StockState(), cmd("ReceivePOItem", quantity=1, unit="BOX"))
    assert unconfigured.code is RejectionCode.UNKNOWN_UNIT


def test_a_converted_quantity_past_the_limit_is_refused() -> None:
    state = with_units(PALLET=1_000_000)
    refused = rejected(state, cmd("ReceivePOItem", quantity=2_000_000, unit="PALLET"))
    assert refused.code is RejectionCode.QUANTITY_LIMIT
    assert "is 2000000000000 EA, above the limit of 1000000000000" in refused.message


def test_the_base_unit_cannot_also_be_a_named_unit() -> None:
    refused = rejected(StockState(), cmd("ConfigureItem", name="W", units={"EA": 1}))
    assert refused.code is RejectionCode.BASE_UNIT_IN_UNITS
    state = with_units(BOX=12)
    renamed = rejected(state, cmd("ConfigureItem", name=..., base_unit="BOX"))
    assert renamed.code is RejectionCode.BASE_UNIT_IN_UNITS


# -- idempotency ----------------------------------------------------------------------


def test_a_null_sent_is_not_the_same_command_as_a_field_left_out() -> None:
    body = command("ConfigureStockItem", min_quantity=..., max_quantity=..., low_stock_threshold=1)
    omitted = fingerprint(body)
    cleared = fingerprint({**body, "bin": None})
    assert len({omitted, cleared, fingerprint({**body, "reorder_quantity": 0})}) == 3
    assert fingerprint(dict(reversed(list({**body, "bin": None}.items())))) == cleared
    units = command("ConfigureItem", units={"BOX": 12, "CASE": 6})
    assert fingerprint(units) == fingerprint({**units, "units": {"CASE": 6, "BOX": 12}})
    assert fingerprint(units) != fingerprint({**units, "units": {"CASE": 6, "BOX": 10}})


def fingerprint(body: dict[str, Any]) -> bytes:
    decoded = decode_command(json.dumps(body).encode())
    assert not isinstance(decoded, InvalidCommand | Undecodable), decoded
    return command_fingerprint(decoded)


def test_commands_naming_serials_have_a_fingerprint_whatever_their_order() -> None:
    body = command("ReceivePOItem", quantity=2, serials=["S2", "S1"])
    assert fingerprint(body) == fingerprint({**body, "serials": ["S1", "S2"]})
    assert fingerprint(body) != fingerprint({**body, "serials": ["S1", "S3"]})
