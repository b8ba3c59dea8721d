"""Serial- and lot-tracked stock end to end: real Kafka, real PostgreSQL, the worker as
its own process. Which serials or lots each change moves (StockChanged `movements`),
the rows of `stock_holding`, the tracking rejections, `events republish` of tracked
changes and `stockworker project` over them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from stockworker.service.topics import Topics
from tests.support.builders import command
from tests.support.kafka_io import EventCollector, Received, apply_commands
from tests.support.operator_cli import OperatorCli, operator_environment
from tests.support.services import Services
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.e2e

# (location, id) -> (kind, on_hand, picks per order, expires_on)
Holdings = dict[tuple[str, str], tuple[str, int, dict[str, int], str | None]]


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    services: Services,
    database_url: str,
    topics: Topics,
) -> OperatorCli:
    operator_environment(monkeypatch, services, database_url, topics)
    return OperatorCli(capsys)


async def apply(
    services: Services, topics: Topics, events: EventCollector, *bodies: dict[str, Any]
) -> list[dict[str, Any]]:
    """Send commands (keyed by SKU) and wait for their results, in the commands' order."""
    return await apply_commands(services.kafka_bootstrap_servers, topics, events, bodies)


def outcomes(results: list[dict[str, Any]]) -> list[str]:
    return [r.get("reason_code") or r["type"] for r in results]


def changes_of(
    events: EventCollector, topics: Topics, body: dict[str, Any]
) -> list[dict[str, Any]]:
    """The StockChanged events a command caused, in the order they were read."""
    return [
        r.json()
        for r in events.on(topics.changed)
        if r.json()["cause"]["command_id"] == body["command_id"]
    ]


async def change_of(events: EventCollector, topics: Topics, body: dict[str, Any]) -> dict[str, Any]:
    """The one StockChanged an accepted command caused (waiting for it: results and
    events are on different topics, read in no particular order)."""
    await events.until(lambda _: bool(changes_of(events, topics, body)), within=30)
    [change] = changes_of(events, topics, body)
    return change


def serial(sid: str, on_hand: int, picked: int) -> dict[str, Any]:
    return {"serial": sid, "lot": None, "expires_on": None, "on_hand": on_hand, "picked": picked}


def lot(lid: str, expires_on: str | None, on_hand: int, picked: int) -> dict[str, Any]:
    return {
        "serial": None,
        "lot": lid,
        "expires_on": expires_on,
        "on_hand": on_hand,
        "picked": picked,
    }


async def holdings(database_url: str, sku: str) -> Holdings:
    """The rows of stock_holding of one SKU."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT location, id, kind, on_hand, picks::text AS picks, expires_on"
            " FROM stock_holding WHERE sku = $1",
            sku,
        )
    finally:
        await conn.close()
    return {
        (r["location"], r["id"]): (
            r["kind"],
            r["on_hand"],
            json.loads(r["picks"]),
            r["expires_on"].isoformat() if r["expires_on"] else None,
        )
        for r in rows
    }


async def positions(database_url: str, sku: str) -> dict[str, tuple[int, int]]:
    """location -> (on_hand, picked) of one SKU's positions."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT location, on_hand, picked FROM stock_position WHERE sku = $1", sku
        )
    finally:
        await conn.close()
    return {r["location"]: (r["on_hand"], r["picked"]) for r in rows}


async def ledger_holdings(database_url: str, sku: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(location, id) -> (on_hand, picked) folded here from the ledger's stored movements."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT location, movements::text AS movements FROM stock_ledger"
            " WHERE sku = $1 ORDER BY location, version",
            sku,
        )
    finally:
        await conn.close()
    held: dict[tuple[str, str], tuple[int, int]] = {}
    for r in rows:
        for _kind, hid, _expires, on_hand, picked in json.loads(r["movements"] or "[]"):
            before = held.get((r["location"], hid), (0, 0))
            after = (before[0] + on_hand, before[1] + picked)
            if after[0]:
                held[r["location"], hid] = after
            else:
                held.pop((r["location"], hid), None)
    return held


async def assert_consistent(database_url: str, sku: str) -> None:
    """stock_holding agrees with the positions (sums) and with the ledger's movements."""
    held = await holdings(database_url, sku)
    sums: dict[str, tuple[int, int]] = {}
    for (location, _), (_, on_hand, picks, _) in held.items():
        total = sums.get(location, (0, 0))
        sums[location] = (total[0] + on_hand, total[1] + sum(picks.values()))
    stocked = {loc: q for loc, q in (await positions(database_url, sku)).items() if q[0]}
    assert sums == stocked
    assert await ledger_holdings(database_url, sku) == {
        key: (on_hand, sum(picks.values())) for key, (_, on_hand, picks, _) in held.items()
    }


async def assert_project_finds_no_difference(cli: OperatorCli) -> None:
    code, out, err = await cli("project")
    assert code == 0, out + err
    assert out.rstrip().endswith("0 with differences"), out


async def assert_republished_byte_for_byte(
    cli: OperatorCli, events: EventCollector, topics: Topics, sku: str
) -> None:
    """`events republish --kind changed --sku SKU --execute` rebuilds every StockChanged
    of the SKU from the ledger: the same records (key, value bytes, headers)."""
    await events.settle(1.0)

    def of_sku(records: list[Received]) -> list[Received]:
        return [r for r in records if r.key == sku.encode()]

    originals = [r for r in of_sku(events.on(topics.changed)) if "republished" not in r.headers]
    assert any(r.json()["movements"] for r in originals)
    code, done = await cli.json(
        "events", "republish", "--kind", "changed", "--sku", sku, "--execute"
    )
    assert code == 0 and done["executed"], done
    assert done["counts"]["changed"] == len(originals), done

    def copies() -> list[Received]:
        return [r for r in of_sku(events.on(topics.changed)) if "republished" in r.headers]

    await events.until(lambda _: len(copies()) >= len(originals), within=60)
    await events.settle(1.0)
    sent = {r.header("event_id"): r for r in originals}
    resent = {r.header("event_id"): r for r in copies()}
    assert len(sent) == len(originals) and resent.keys() == sent.keys()
    for event_id, record in sent.items():
        copy = resent[event_id]
        assert (copy.key, copy.header("type"), copy.value) == (
            record.key,
            record.header("type"),
            record.value,
        ), record.json()


async def test_lots_are_picked_first_expiry_first_out(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
    cli: OperatorCli,
) -> None:
    sku = "LOT-1"
    setup = [
        command("ConfigureLocation", code="WH1", name="Main"),
        command("ConfigureLocation", code="WH2", name="Annex"),
        command("ConfigureItem", sku=sku, name="Yoghurt", tracking="lot"),
    ]
    # LATE arrives first: first-expiry-first-out must still take SOON first.
    late = command(
        "ReceivePOItem",
        sku=sku,
        po_number="PO-L1",
        quantity=5,
        lot="LATE",
        expires_on="2027-06-01",
    )
    soon = command(
        "ReceivePOItem",
        sku=sku,
        po_number="PO-L2",
        quantity=4,
        lot="SOON",
        expires_on="2027-01-15",
    )
    no_lot = command("ReceivePOItem", sku=sku, po_number="PO-L3", quantity=1)
    other_date = command(
        "ReceivePOItem",
        sku=sku,
        po_number="PO-L3",
        quantity=1,
        lot="SOON",
        expires_on="2027-02-01",
    )
    results = await apply(services, topics, events, *setup, late, soon, no_lot, other_date)
    assert outcomes(results) == [*["CommandAccepted"] * 5, "LOT_REQUIRED", "LOT_EXPIRY_MISMATCH"]
    assert (await change_of(events, topics, late))["movements"] == [lot("LATE", "2027-06-01", 5, 0)]
    assert (await change_of(events, topics, soon))["movements"] == [lot("SOON", "2027-01-15", 4, 0)]
    assert await holdings(database_url, sku) == {
        ("WH1", "LATE"): ("lot", 5, {}, "2027-06-01"),
        ("WH1", "SOON"): ("lot", 4, {}, "2027-01-15"),
    }

    # Picks without a lot: SOON first, then LATE once SOON has nothing free.
    first = command("PickStock", sku=sku, quantity=3, order_ref="SO-1")
    spill = command("PickStock", sku=sku, quantity=4, order_ref="SO-2")
    soon_again = command("PickStock", sku=sku, quantity=1, order_ref="SO-3", lot="SOON")
    unknown = command("PickStock", sku=sku, quantity=1, order_ref="SO-3", lot="NOPE")
    ship = command("ShipStock", sku=sku, quantity=4, order_ref="SO-2")
    results = await apply(services, topics, events, first, spill, soon_again, unknown, ship)
    assert outcomes(results) == [
        "CommandAccepted",
        "CommandAccepted",
        "LOT_INSUFFICIENT",
        "LOT_NOT_FOUND",
        "CommandAccepted",
    ]
    assert (await change_of(events, topics, first))["movements"] == [
        lot("SOON", "2027-01-15", 0, 3)
    ]
    spilled = await change_of(events, topics, spill)
    assert spilled["movements"] == [
        lot("LATE", "2027-06-01", 0, 3),
        lot("SOON", "2027-01-15", 0, 1),
    ]
    assert (spilled["quantities"]["picked"], spilled["quantities"]["available"]) == (7, 2)
    # The shipment takes what SO-2 picked, from each lot.
    shipped = await change_of(events, topics, ship)
    assert shipped["movements"] == [
        lot("LATE", "2027-06-01", -3, -3),
        lot("SOON", "2027-01-15", -1, -1),
    ]
    assert (shipped["quantities"]["on_hand"], shipped["quantities"]["picked"]) == (5, 3)
    assert await holdings(database_url, sku) == {
        ("WH1", "LATE"): ("lot", 2, {}, "2027-06-01"),
        ("WH1", "SOON"): ("lot", 3, {"SO-1": 3}, "2027-01-15"),
    }

    # Shipping the rest of SOON removes its row; a transfer without a lot moves LATE
    # (the only one free), which arrives at WH2 with its date.
    ship_rest = command("ShipStock", sku=sku, quantity=3, order_ref="SO-1")
    move = command("TransferStock", sku=sku, quantity=1)
    results = await apply(services, topics, events, ship_rest, move)
    assert outcomes(results) == ["CommandAccepted"] * 2
    assert (await change_of(events, topics, ship_rest))["movements"] == [
        lot("SOON", "2027-01-15", -3, -3)
    ]
    await events.until(lambda _: len(changes_of(events, topics, move)) == 2, within=30)
    moved = {c["location"]: c["movements"] for c in changes_of(events, topics, move)}
    assert moved == {
        "WH1": [lot("LATE", "2027-06-01", -1, 0)],
        "WH2": [lot("LATE", "2027-06-01", 1, 0)],
    }

    # Equal dates go by arrival (not by name); lots without a date come last.
    nodate = command(
        "ReceivePOItem", sku=sku, location="WH2", po_number="PO-L4", quantity=5, lot="A-NODATE"
    )
    z_first = command(
        "ReceivePOItem",
        sku=sku,
        location="WH2",
        po_number="PO-L5",
        quantity=2,
        lot="Z-FIRST",
        expires_on="2027-03-01",
    )
    b_second = command(
        "ReceivePOItem",
        sku=sku,
        location="WH2",
        po_number="PO-L6",
        quantity=2,
        lot="B-SECOND",
        expires_on="2027-03-01",
    )
    results = await apply(services, topics, events, nodate, z_first, b_second)
    assert outcomes(results) == ["CommandAccepted"] * 3
    # (LATE, 2027-06-01, is at WH2 too: after the March lots, before the undated one.)
    pick_three = command("PickStock", sku=sku, location="WH2", quantity=3, order_ref="SO-4")
    pick_three_more = command("PickStock", sku=sku, location="WH2", quantity=3, order_ref="SO-5")
    results = await apply(services, topics, events, pick_three, pick_three_more)
    assert outcomes(results) == ["CommandAccepted"] * 2
    assert (await change_of(events, topics, pick_three))["movements"] == [
        lot("B-SECOND", "2027-03-01", 0, 1),
        lot("Z-FIRST", "2027-03-01", 0, 2),
    ]
    assert (await change_of(events, topics, pick_three_more))["movements"] == [
        lot("A-NODATE", None, 0, 1),
        lot("B-SECOND", "2027-03-01", 0, 1),
        lot("LATE", "2027-06-01", 0, 1),
    ]
    assert await holdings(database_url, sku) == {
        ("WH1", "LATE"): ("lot", 1, {}, "2027-06-01"),
        ("WH2", "LATE"): ("lot", 1, {"SO-5": 1}, "2027-06-01"),
        ("WH2", "A-NODATE"): ("lot", 5, {"SO-5": 1}, None),
        ("WH2", "Z-FIRST"): ("lot", 2, {"SO-4": 2}, "2027-03-01"),
        ("WH2", "B-SECOND"): ("lot", 2, {"SO-4": 1, "SO-5": 1}, "2027-03-01"),
    }
    assert await positions(database_url, sku) == {"WH1": (1, 0), "WH2": (10, 6)}

    # Tracking stays while the item holds stock.
    [refused] = await apply(
        services, topics, events, command("ConfigureItem", sku=sku, name=..., tracking="none")
    )
    assert refused["reason_code"] == "TRACKING_CHANGE_WITH_STOCK"

    await assert_consistent(database_url, sku)
    await assert_project_finds_no_difference(cli)
    await assert_republished_byte_for_byte(cli, events, topics, sku)


async def test_serial_numbers_received_picked_shipped_and_transferred(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
    cli: OperatorCli,
) -> None:
    sku = "SER-1"
    setup = [
        command("ConfigureLocation", code="WH1", name="Main"),
        command("ConfigureLocation", code="WH2", name="Annex"),
        command("ConfigureItem", sku=sku, name="Scanner", tracking="serial"),
    ]
    # Received out of order: the worker's choice is by serial number, not arrival.
    receipt = command(
        "ReceivePOItem", sku=sku, po_number="PO-S1", quantity=3, serials=["S-030", "S-010", "S-020"]
    )
    # Published with the receipt (so most likely decided in its batch): S-020 is in stock.
    twin = command(
        "ReceivePOItem", sku=sku, location="WH2", po_number="PO-S2", quantity=1, serials=["S-020"]
    )
    unnamed = command("ReceivePOItem", sku=sku, po_number="PO-S3", quantity=1)
    miscounted = command("ReceivePOItem", sku=sku, po_number="PO-S3", quantity=2, serials=["S-040"])
    by_lot = command("ReceivePOItem", sku=sku, po_number="PO-S3", quantity=1, lot="L-1")
    try:
        results = await apply_commands(
            services.kafka_bootstrap_servers,
            topics,
            events,
            [*setup, receipt, twin, unnamed, miscounted, by_lot],
            within=30,
        )
    except TimeoutError:
        failures = [line for line in worker.logs().splitlines() if "transient failure" in line]
        pytest.fail(
            "commands naming serials got no result in 30 s; the worker keeps retrying: "
            + (failures[-1] if failures else "(no retry logged)")
        )
    assert outcomes(results) == [
        *["CommandAccepted"] * 4,
        "SERIAL_IN_STOCK",
        "SERIALS_REQUIRED",
        "SERIAL_COUNT_MISMATCH",
        "NOT_TRACKED",
    ]
    received = await change_of(events, topics, receipt)
    assert received["movements"] == [serial(s, 1, 0) for s in ("S-010", "S-020", "S-030")]
    assert (received["deltas"]["on_hand"], received["quantities"]["on_hand"]) == (3, 3)
    three: Holdings = {("WH1", s): ("serial", 1, {}, None) for s in ("S-010", "S-020", "S-030")}
    assert await holdings(database_url, sku) == three

    # A later receipt of a serial in stock, at another location: refused, nothing changes.
    again = command(
        "ReceivePOItem", sku=sku, location="WH2", po_number="PO-S4", quantity=1, serials=["S-010"]
    )
    [refused] = await apply(services, topics, events, again)
    assert refused["reason_code"] == "SERIAL_IN_STOCK"
    assert "S-010" in refused["message"] and "WH1" in refused["message"]
    assert await holdings(database_url, sku) == three
    assert await positions(database_url, sku) == {"WH1": (3, 0)}

    # Picks name a serial or leave the choice (the lowest free one); shipping names the
    # serials picked for that order.
    pick_named = command("PickStock", sku=sku, quantity=1, order_ref="SO-1", serials=["S-020"])
    pick_any = command("PickStock", sku=sku, quantity=1, order_ref="SO-2")
    ship_unpicked = command("ShipStock", sku=sku, quantity=1, order_ref="SO-1", serials=["S-030"])
    ship_unnamed = command("ShipStock", sku=sku, quantity=1, order_ref="SO-1")
    ship = command("ShipStock", sku=sku, quantity=1, order_ref="SO-1", serials=["S-020"])
    move_picked = command("TransferStock", sku=sku, quantity=1, serials=["S-010"])
    move = command("TransferStock", sku=sku, quantity=1, serials=["S-030"])
    results = await apply(
        services,
        topics,
        events,
        pick_named,
        pick_any,
        ship_unpicked,
        ship_unnamed,
        ship,
        move_picked,
        move,
    )
    assert outcomes(results) == [
        "CommandAccepted",
        "CommandAccepted",
        "SERIAL_NOT_PICKED",
        "SERIALS_REQUIRED",
        "CommandAccepted",
        "SERIAL_NOT_AVAILABLE",
        "CommandAccepted",
    ]
    picked = await change_of(events, topics, pick_named)
    assert picked["movements"] == [serial("S-020", 0, 1)]
    assert (picked["quantities"]["on_hand"], picked["quantities"]["picked"]) == (3, 1)
    assert (await change_of(events, topics, pick_any))["movements"] == [serial("S-010", 0, 1)]
    shipped = await change_of(events, topics, ship)
    assert shipped["movements"] == [serial("S-020", -1, -1)]
    assert (shipped["quantities"]["on_hand"], shipped["quantities"]["picked"]) == (2, 1)
    await events.until(lambda _: len(changes_of(events, topics, move)) == 2, within=30)
    moved = {c["location"]: c["movements"] for c in changes_of(events, topics, move)}
    assert moved == {"WH1": [serial("S-030", -1, 0)], "WH2": [serial("S-030", 1, 0)]}
    assert await holdings(database_url, sku) == {
        ("WH1", "S-010"): ("serial", 1, {"SO-2": 1}, None),
        ("WH2", "S-030"): ("serial", 1, {}, None),
    }
    assert await positions(database_url, sku) == {"WH1": (1, 1), "WH2": (1, 0)}

    # Tracking stays while stock is held (here from earlier batches; PLAIN-1's from this
    # publish); repeating the same tracking is no change. An item with no stock may
    # change it. A shipped serial may come back; one transferred is in stock elsewhere.
    retrack = command("ConfigureItem", sku=sku, name=..., tracking="lot")
    same = command("ConfigureItem", sku=sku, name="Scanner 2", tracking="serial")
    returned = command(
        "ReceivePOItem", sku=sku, location="WH2", po_number="PO-S5", quantity=1, serials=["S-020"]
    )
    transferred = command(
        "ReceivePOItem", sku=sku, po_number="PO-S6", quantity=1, serials=["S-030"]
    )
    plain = "PLAIN-1"
    plain_receipt = command("ReceivePOItem", sku=plain, po_number="PO-P1", quantity=2)
    plain_retrack = command("ConfigureItem", sku=plain, name="Cable", tracking="serial")
    plain_serials = command(
        "ReceivePOItem", sku=plain, po_number="PO-P2", quantity=1, serials=["X-1"]
    )
    plain_lot = command("PickStock", sku=plain, quantity=1, order_ref="SO-9", lot="L-1")
    empty = "EMPTY-1"
    empty_serial = command("ConfigureItem", sku=empty, name="Nothing", tracking="serial")
    empty_lot = command("ConfigureItem", sku=empty, name=..., tracking="lot")
    results = await apply(
        services,
        topics,
        events,
        retrack,
        same,
        returned,
        transferred,
        plain_receipt,
        plain_retrack,
        plain_serials,
        plain_lot,
        empty_serial,
        empty_lot,
    )
    assert outcomes(results) == [
        "TRACKING_CHANGE_WITH_STOCK",
        "CommandAccepted",
        "CommandAccepted",
        "SERIAL_IN_STOCK",
        "CommandAccepted",
        "TRACKING_CHANGE_WITH_STOCK",
        "NOT_TRACKED",
        "NOT_TRACKED",
        "CommandAccepted",
        "CommandAccepted",
    ]
    assert "WH2" in results[3]["message"]
    assert (await change_of(events, topics, returned))["movements"] == [serial("S-020", 1, 0)]
    assert (await change_of(events, topics, plain_receipt))["movements"] == []
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT sku, tracking FROM stock_item")
        tracking = {r["sku"]: r["tracking"] for r in rows}
    finally:
        await conn.close()
    # (PLAIN-1 was never configured: its ConfigureItem was refused.)
    assert tracking == {sku: "serial", empty: "lot"}
    assert await holdings(database_url, sku) == {
        ("WH1", "S-010"): ("serial", 1, {"SO-2": 1}, None),
        ("WH2", "S-020"): ("serial", 1, {}, None),
        ("WH2", "S-030"): ("serial", 1, {}, None),
    }
    assert await holdings(database_url, plain) == {}
    await assert_consistent(database_url, sku)
    await assert_project_finds_no_difference(cli)
    await assert_republished_byte_for_byte(cli, events, topics, sku)


async def test_lots_coming_close_to_expiry_and_expiring_are_reported_once(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
) -> None:
    """The worker's sweeper (every 0.5 s here) reports a lot within 30 days of its date
    once (LotExpiring) and expires one past it (LotExpired): its stock stops being
    available, which here crosses the low-stock threshold."""
    sku = "LOT-EXP"
    today = datetime.now(UTC).date()
    near, far, old = (
        today + timedelta(days=10),
        today + timedelta(days=100),
        today - timedelta(days=1),
    )
    bodies = [
        command("ConfigureItem", sku=sku, name="Milk", tracking="lot"),
        command("ConfigureStockItem", sku=sku, low_stock_threshold=10),
        *(
            command(
                "ReceivePOItem",
                sku=sku,
                po_number=f"PO-{name}",
                quantity=quantity,
                lot=name,
                expires_on=when.isoformat(),
            )
            for name, quantity, when in (("NEAR", 3, near), ("FAR", 4, far), ("OLD", 5, old))
        ),
    ]
    results = await apply(services, topics, events, *bodies)
    assert outcomes(results) == ["CommandAccepted"] * 5

    def lot_events() -> list[dict[str, Any]]:
        return [r.json() for r in events.on(topics.lots)]

    await events.until(lambda _: len(lot_events()) >= 2, within=30)
    await events.until(
        lambda _: any(
            r.json()["cause"]["command_type"] == "ExpireLot" for r in events.on(topics.low_stock)
        ),
        within=30,
    )
    # Several more sweeps: nothing is reported twice.
    await events.settle(quiet_seconds=2.0)
    got = sorted((e["type"], e["lot"], e["expires_on"], e["on_hand"]) for e in lot_events())
    assert got == [
        ("LotExpired", "OLD", old.isoformat(), 5),
        ("LotExpiring", "NEAR", near.isoformat(), 3),
    ]
    low = [r.json() for r in events.on(topics.low_stock)]
    crossing = [e for e in low if e["cause"]["command_type"] == "ExpireLot"]
    assert [(e["type"], e["available"], e["threshold"]) for e in crossing] == [("LowStock", 7, 10)]
    conn = await asyncpg.connect(database_url)
    try:
        flags = {
            r["id"]: (r["warned"], r["expired"])
            for r in await conn.fetch(
                "SELECT id, warned, expired FROM stock_holding WHERE sku = $1", sku
            )
        }
        on_hand = await conn.fetchval("SELECT on_hand FROM stock_position WHERE sku = $1", sku)
    finally:
        await conn.close()
    assert flags == {"NEAR": (True, False), "FAR": (False, False), "OLD": (True, True)}
    assert on_hand == 12  # the expired lot stays on hand until adjusted out
