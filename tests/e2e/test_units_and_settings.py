"""Units of measure, partial settings and catalogue versions end to end: real Kafka, real
PostgreSQL, the worker as its own process."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from stockworker.adapters.postgres.unit_of_work import all_positions
from stockworker.domain.position import Position
from stockworker.service.topics import Topics
from tests.support.builders import command
from tests.support.kafka_io import EventCollector, apply_commands
from tests.support.services import Services
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.e2e

SETTINGS = (
    "min_quantity",
    "max_quantity",
    "low_stock_threshold",
    "reorder_quantity",
    "bin",
    "preferred_supplier",
)


async def apply(
    services: Services, topics: Topics, events: EventCollector, *bodies: dict[str, Any]
) -> list[dict[str, Any]]:
    """Send commands and wait for their results; return the results in order."""
    return await apply_commands(services.kafka_bootstrap_servers, topics, events, bodies)


async def position(database_url: str, sku: str, location: str = "WH1") -> Position:
    conn = await asyncpg.connect(database_url)
    try:
        [found] = [p for p in await all_positions(conn) if (p.sku, p.location) == (sku, location)]
        return found
    finally:
        await conn.close()


async def row(database_url: str, query: str, *args: object) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        found = await conn.fetchrow(query, *args)
    finally:
        await conn.close()
    assert found is not None, (query, args)
    return dict(found.items())


def change_of(events: EventCollector, topics: Topics, body: dict[str, Any]) -> dict[str, Any]:
    """The one StockChanged the command caused."""
    [change] = [
        r.json()
        for r in events.on(topics.changed)
        if r.json()["cause"]["command_id"] == body["command_id"]
    ]
    return change


def types(results: list[dict[str, Any]]) -> list[str]:
    return [r.get("reason_code") or r["type"] for r in results]


async def test_quantities_given_in_an_items_unit_are_converted_to_base_units(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
) -> None:
    sku = "UOM-1"
    configure = command("ConfigureItem", sku=sku, name="Screws", units={"BOX": 12})
    order = command("OrderPOItem", sku=sku, po_number="PO-U", quantity=3, unit="BOX")
    receipt = command(
        "ReceivePOItem", sku=sku, po_number="PO-U", quantity=2, unit="BOX", unit_cost="0.5"
    )
    pick = command("PickStock", sku=sku, quantity=1, unit="BOX", order_ref="SO-1")
    in_base = command("PickStock", sku=sku, quantity=5, order_ref="SO-2")
    pallet = command("PickStock", sku=sku, quantity=1, unit="PALLET", order_ref="SO-3")
    results = await apply(
        services, topics, events, configure, order, receipt, pick, in_base, pallet
    )
    assert types(results) == ["CommandAccepted"] * 5 + ["UNKNOWN_UNIT"]
    assert "PALLET" in results[5]["message"]

    received = change_of(events, topics, receipt)
    assert received["cause"]["unit"] == "BOX"
    assert received["deltas"]["on_hand"] == 24
    assert received["deltas"]["on_order"] == -24
    assert Decimal(received["deltas"]["stock_value"]) == Decimal(12)  # 24 at 0.5 per base unit
    assert (received["quantities"]["on_hand"], received["quantities"]["on_order"]) == (24, 12)
    picked = change_of(events, topics, pick)
    assert (picked["cause"]["unit"], picked["deltas"]["picked"]) == ("BOX", 12)
    plain = change_of(events, topics, in_base)
    assert (plain["cause"]["unit"], plain["deltas"]["picked"]) == (None, 5)
    assert plain["quantities"]["available"] == 24 - 12 - 5

    await events.until(lambda c: len(c.on(topics.purchase_orders)) >= 2)
    lines = {
        e["cause"]["command_id"]: e for e in (r.json() for r in events.on(topics.purchase_orders))
    }
    ordered, after_receipt = lines[order["command_id"]], lines[receipt["command_id"]]
    assert (ordered["ordered_quantity"], ordered["cause"]["unit"]) == (36, "BOX")
    assert (
        after_receipt["status"],
        after_receipt["received_quantity"],
        after_receipt["open_quantity"],
        after_receipt["cause"]["unit"],
    ) == ("ReceivedPartial", 24, 12, "BOX")

    stored = await position(database_url, sku)
    assert (stored.on_hand, stored.on_order, stored.picked, stored.available) == (24, 12, 17, 7)
    assert stored.stock_value == Decimal(12)  # 24 base units at 0.5 each

    # A ConfigureItem that does not carry `units` keeps them; `"units": null` removes them.
    rename = command("ConfigureItem", sku=sku, name="Screws M4")
    found = command("AdjustInventory", sku=sku, delta=1, unit="BOX", reason="FOUND")
    no_units = command("ConfigureItem", sku=sku, units=None, name=...)
    too_late = command("AdjustInventory", sku=sku, delta=1, unit="BOX", reason="FOUND")
    results = await apply(services, topics, events, rename, found, no_units, too_late)
    assert types(results) == ["CommandAccepted"] * 3 + ["UNKNOWN_UNIT"]
    assert [results[0]["version"], results[2]["version"]] == [2, 3]
    assert change_of(events, topics, found)["deltas"]["on_hand"] == 12
    stored = await position(database_url, sku)
    assert (stored.on_hand, stored.available) == (36, 19)


async def test_a_partial_configure_stock_item_keeps_the_settings_it_does_not_carry(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
) -> None:
    sku = "SET-1"
    full = command(
        "ConfigureStockItem",
        sku=sku,
        min_quantity=5,
        max_quantity=50,
        low_stock_threshold=10,
        reorder_quantity=20,
        bin="A-01",
        preferred_supplier="ACME",
    )
    # The builder's defaults for the three quantities are left out (`...`).
    only_threshold = command(
        "ConfigureStockItem", sku=sku, min_quantity=..., max_quantity=..., low_stock_threshold=15
    )
    min_above_max = command(
        "ConfigureStockItem", sku=sku, min_quantity=60, max_quantity=..., low_stock_threshold=...
    )
    clear_bin = command(
        "ConfigureStockItem",
        sku=sku,
        min_quantity=...,
        max_quantity=...,
        low_stock_threshold=...,
        bin=None,
    )
    assert set(only_threshold) & set(SETTINGS) == {"low_stock_threshold"}
    assert set(clear_bin) & set(SETTINGS) == {"bin"}
    results = await apply(services, topics, events, full, only_threshold, min_above_max, clear_bin)
    accepted = "CommandAccepted"
    assert types(results) == [accepted, accepted, "MAX_BELOW_MIN", accepted]
    assert [results[i]["version"] for i in (0, 1, 3)] == [1, 2, 3]

    configured = {name: full[name] for name in SETTINGS}
    assert change_of(events, topics, full)["settings"] == configured
    assert change_of(events, topics, only_threshold)["settings"] == {
        **configured,
        "low_stock_threshold": 15,
    }
    cleared = change_of(events, topics, clear_bin)
    assert cleared["settings"] == {**configured, "low_stock_threshold": 15, "bin": None}
    assert all(delta == 0 for name, delta in cleared["deltas"].items() if name != "stock_value")

    stored = await position(database_url, sku)
    assert {name: getattr(stored, name) for name in SETTINGS} == cleared["settings"]
    assert stored.version == 3


async def test_catalogue_commands_take_an_expected_version_and_a_new_entry_needs_a_name(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
) -> None:
    sku = "VER-1"
    create = command("ConfigureItem", sku=sku, name="Bolt", expected_version=0)
    stale = command("ConfigureItem", sku=sku, name="Nut", expected_version=0)
    deactivate = command("ConfigureItem", sku=sku, name=..., active=False, expected_version=1)
    nameless = command("ConfigureItem", sku="VER-NEW", name=...)
    # A name may be left out, but not sent as null.
    null_name = command("ConfigureItem", sku=sku, name=None)
    item_results = await apply(
        services, topics, events, create, stale, deactivate, nameless, null_name
    )
    assert types(item_results) == [
        "CommandAccepted",
        "VERSION_CONFLICT",
        "CommandAccepted",
        "NAME_REQUIRED",
        "INVALID_COMMAND",
    ]
    assert [e["field"] for e in item_results[4]["field_errors"]] == ["name"]
    assert (item_results[0]["sku"], item_results[0]["version"]) == (sku, 1)
    assert item_results[1]["current_version"] == 1
    assert (item_results[2]["sku"], item_results[2]["version"]) == (sku, 2)
    assert [e["field"] for e in item_results[3]["field_errors"]] == ["name"]
    item = await row(
        database_url, "SELECT name, active, version FROM stock_item WHERE sku = $1", sku
    )
    # The name was kept when left out; the stale command changed nothing.
    assert item == {"name": "Bolt", "active": False, "version": 2}
    missing = await row(database_url, "SELECT count(*) AS n FROM stock_item WHERE sku = 'VER-NEW'")
    assert missing == {"n": 0}

    code = "LOC-V"
    located = command("ConfigureLocation", code=code, name="Dock", expected_version=0)
    renamed = command("ConfigureLocation", code=code, name="Dock 2", expected_version=1)
    stale_location = command(
        "ConfigureLocation", code=code, active=False, name=..., expected_version=1
    )
    unnamed = command("ConfigureLocation", code="LOC-NEW", name=...)
    location_results = await apply(
        services, topics, events, located, renamed, stale_location, unnamed
    )
    assert types(location_results) == [
        "CommandAccepted",
        "CommandAccepted",
        "VERSION_CONFLICT",
        "NAME_REQUIRED",
    ]
    assert [(r["location"], r["version"]) for r in location_results[:2]] == [(code, 1), (code, 2)]
    assert location_results[2]["current_version"] == 2
    location = await row(
        database_url, "SELECT name, active, version FROM stock_location WHERE code = $1", code
    )
    assert location == {"name": "Dock 2", "active": True, "version": 2}
