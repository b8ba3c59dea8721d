"""`stockworker replay` and `stockworker rebuild` against a running worker, on real
Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest

from stockworker.adapters.postgres.unit_of_work import all_positions
from stockworker.domain.position import Position
from stockworker.entrypoints.cli import main
from stockworker.service.topics import Topics
from tests.support.builders import command
from tests.support.databases import create_database, drop_database
from tests.support.kafka_io import EventCollector, Received, apply_commands
from tests.support.operator_cli import operator_environment
from tests.support.services import TEMPLATE_DB, Services
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.e2e

SINCE = "2000-01-01T00:00:00+00:00"


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, services: Services, database_url: str, topics: Topics
) -> None:
    operator_environment(monkeypatch, services, database_url, topics)


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    """Run `stockworker ARGV --json` in-process (in a thread: it runs its own loop)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, [*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


async def positions(database_url: str) -> list[Position]:
    conn = await asyncpg.connect(database_url)
    try:
        return await all_positions(conn)
    finally:
        await conn.close()


async def fetch(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


def results_of(events: EventCollector, topics: Topics, command_id: str) -> list[Received]:
    return [r for r in events.on(topics.results) if r.json()["command_id"] == command_id]


def flow(sku: str) -> list[dict[str, Any]]:
    return [
        command("ConfigureStockItem", sku=sku, max_quantity=500),
        command("ReceivePOItem", sku=sku, po_number=f"PO-{sku}", quantity=20),
        command("PickStock", sku=sku, quantity=3, order_ref="SO-1"),
        command("AdjustInventory", sku=sku, delta=2, reason="FOUND"),
        command("AdjustInventory", sku=sku, delta=-100, reason="DAMAGE"),  # rejected
        command("AdjustInventory", sku=sku, delta=5, reason="FOUND"),
    ]


@pytest.mark.usefixtures("cli_env")
async def test_replay_of_an_applied_range_changes_nothing_and_republishes_identical_results(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bodies = flow("SKU-R1") + flow("SKU-R2")
    results = await apply_commands(services.kafka_bootstrap_servers, topics, events, bodies)
    assert [r["type"] for r in results].count("CommandRejected") == 2
    before = await positions(database_url)
    first = {b["command_id"]: results_of(events, topics, b["command_id"]) for b in bodies}

    capsys.readouterr()
    assert await asyncio.to_thread(main, ["replay", "--since", SINCE]) == 0
    text = capsys.readouterr().out
    assert "      12  in the inbox (would only re-publish their stored result)" in text
    assert "dry run: nothing done" in text

    code, plan = await cli(capsys, "replay", "--since", SINCE)
    assert code == 0
    assert plan["counts"] == {
        "in_inbox": 12,
        "to_apply": 0,
        "repeated": 0,
        "invalid": 0,
        "undecodable": 0,
        "filtered_out": 0,
    }

    code, done = await cli(capsys, "replay", "--since", SINCE, "--execute")
    assert code == 0, done
    assert done["report"] == {"applied": 0, "rejected": 0, "duplicates": 12, "dead_lettered": 0}
    assert done["position_changes"] == []
    assert done["ledger_differences"] == {}
    assert done["relay_running"] is True

    ids = [b["command_id"] for b in bodies]
    await events.until(lambda c: all(len(results_of(c, topics, i)) == 2 for i in ids))
    for command_id in ids:
        original, again = results_of(events, topics, command_id)
        assert again.value == original.value
        assert again.key == original.key
        assert again.json()["event_id"] == first[command_id][0].json()["event_id"]
    assert await positions(database_url) == before

    # Filters: one SKU's commands, one type.
    code, only = await cli(capsys, "replay", "--since", SINCE, "--sku", "SKU-R1")
    assert code == 0
    assert only["counts"]["in_inbox"] == 6
    assert only["counts"]["filtered_out"] == 6
    code, typed = await cli(capsys, "replay", "--since", SINCE, "--type", "PickStock")
    assert typed["counts"]["in_inbox"] == 2

    audit = await fetch(
        database_url,
        "SELECT operation, executed, result, counts FROM ops_audit ORDER BY id",
    )
    assert [(a["operation"], a["executed"], a["result"]) for a in audit][:3] == [
        ("replay", False, "ok"),
        ("replay", False, "ok"),
        ("replay", True, "ok"),
    ]
    assert json.loads(audit[2]["counts"])["done_duplicates"] == 12


@pytest.mark.usefixtures("cli_env", "worker")
async def test_replay_after_inbox_retention_what_if_then_allow_reapply(
    services: Services,
    topics: Topics,
    events: EventCollector,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bodies = flow("SKU-T1")
    await apply_commands(services.kafka_bootstrap_servers, topics, events, bodies)
    # Inbox retention removed the last two commands' entries.
    missing = [uuid.UUID(b["command_id"]) for b in bodies[-2:]]
    await fetch(database_url, "DELETE FROM processed_command WHERE command_id = ANY($1)", missing)
    before = await positions(database_url)
    (position,) = before
    ledger_before = await fetch(database_url, "SELECT count(*) AS n FROM stock_ledger")

    code, refused = await cli(capsys, "replay", "--since", SINCE, "--execute")
    assert code == 1
    assert refused["counts"]["to_apply"] == 2
    assert refused["counts"]["in_inbox"] == 4
    assert "--allow-reapply" in refused["refused"]
    assert await positions(database_url) == before
    assert await fetch(database_url, "SELECT count(*) AS n FROM stock_ledger") == ledger_before

    code, what_if = await cli(capsys, "replay", "--since", SINCE, "--what-if")
    assert code == 0
    assert what_if["report"]["applied"] == 1  # the +5 again; the -100 is rejected again
    assert what_if["report"]["rejected"] == 1
    (change,) = what_if["position_changes"]
    assert change["before"]["on_hand"] == position.on_hand
    assert change["after"]["on_hand"] == position.on_hand + 5
    assert change["after"]["version"] == position.version + 1
    kinds = sorted(e["type"] for e in what_if["events"])
    assert kinds.count("StockChanged") == 1
    assert kinds.count("CommandRejected") == 1
    assert kinds.count("CommandAccepted") == 5  # 4 stored results re-published, 1 new
    assert await positions(database_url) == before
    assert len(await fetch(database_url, "SELECT 1 FROM processed_command")) == 4
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["replay", "--since", SINCE, "--what-if"]) == 0
    text = capsys.readouterr().out
    v, on_hand = position.version, position.on_hand
    assert f"SKU-T1@WH1: version {v} -> {v + 1}, on_hand {on_hand} -> {on_hand + 5}" in text
    assert "not in the inbox (would be applied)" in text

    code, done = await cli(capsys, "replay", "--since", SINCE, "--execute", "--allow-reapply")
    assert code == 0, done
    assert done["report"] == {"applied": 1, "rejected": 1, "duplicates": 4, "dead_lettered": 0}
    assert done["position_changes"] == what_if["position_changes"]
    assert [e["event_id"] for e in done["events"]] == [e["event_id"] for e in what_if["events"]]
    audit = await fetch(database_url, "SELECT executed, result FROM ops_audit ORDER BY id")
    assert [(a["executed"], a["result"]) for a in audit] == [
        (True, "refused"),
        (False, "ok"),
        (False, "ok"),
        (True, "ok"),
    ]
    (after,) = await positions(database_url)
    assert after.on_hand == position.on_hand + 5
    reapplied = await fetch(
        database_url,
        "SELECT command_id FROM stock_ledger WHERE command_id = ANY($1)",
        missing,
    )
    assert [r["command_id"] for r in reapplied] == [missing[1], missing[1]]
    held = await fetch(
        database_url, "SELECT command_id FROM processed_command WHERE command_id = ANY($1)", missing
    )
    assert {r["command_id"] for r in held} == set(missing)


@pytest.mark.usefixtures("cli_env", "worker")
async def test_what_if_is_refused_when_its_locks_exceed_one_transactions_budget(
    services: Services,
    topics: Topics,
    events: EventCollector,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bodies = [command("AdjustInventory", sku=f"SKU-L{i}", delta=1) for i in range(11)]
    await apply_commands(services.kafka_bootstrap_servers, topics, events, bodies)
    code, fits = await cli(capsys, "replay", "--since", SINCE, "--what-if")
    assert code == 0
    assert fits["report"]["duplicates"] == 11

    # Eleven positions: eleven locks held at once, one more than the budget.
    monkeypatch.setenv("STOCKWORKER_MAX_LOCKS_PER_TRANSACTION", "10")
    code, refused = await cli(capsys, "replay", "--since", SINCE, "--what-if")
    assert code == 1
    assert "would hold more than 10 locks" in refused["refused"]
    assert "narrow the range" in refused["refused"]
    assert "report" not in refused
    code, narrowed = await cli(
        capsys, "replay", "--since", SINCE, "--what-if", "--sku", "SKU-L0", "--sku", "SKU-L1"
    )
    assert code == 0
    assert narrowed["report"]["duplicates"] == 2
    audit = await fetch(database_url, "SELECT result FROM ops_audit ORDER BY id")
    assert [a["result"] for a in audit] == ["ok", "refused", "ok"]


@pytest.mark.usefixtures("cli_env")
async def test_bad_input_is_one_line_and_exit_2(
    topics: Topics, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await asyncio.to_thread(
        main, ["replay", "--partition", "9", "--from-offset", "0", "--to-offset", "5"]
    )
    assert code == 2
    assert "no partition 9" in capsys.readouterr().err
    code = await asyncio.to_thread(
        main, ["replay", "--partition", "0", "--from-offset", "0", "--to-offset", "5"]
    )
    assert code == 2
    assert "no records at offsets 0..5" in capsys.readouterr().err
    code = await asyncio.to_thread(
        main, ["replay", "--since", SINCE, "--until", "2001-01-01T00:00:00+00:00"]
    )
    assert code == 2
    assert "no records between" in capsys.readouterr().err
    code = await asyncio.to_thread(main, ["replay", "--since", "2026-11-23T10:00:00"])
    assert code == 2
    assert "with its offset" in capsys.readouterr().err
    # A target nobody answers at: said at once, not waited for as the worker would.
    code = await asyncio.to_thread(
        main, ["rebuild", "--into", "postgresql://nobody@127.0.0.1:9/nothing", "--execute"]
    )
    assert code == 2
    assert "--into: cannot connect" in capsys.readouterr().err


@pytest.mark.usefixtures("cli_env", "worker")
async def test_rebuild_into_an_empty_database_reproduces_every_position(
    services: Services,
    topics: Topics,
    events: EventCollector,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    expired = command(
        "ReserveStock",
        sku="SKU-B1",
        reservation_id="R-EXP",
        quantity=4,
        order_ref="SO-9",
        expires_at="2026-11-23T10:30:00+00:00",  # long past: the sweeper expires it
    )
    first = [
        command("ConfigureLocation", code="WH1", name="Main"),
        *flow("SKU-B1"),
        *flow("SKU-B2"),
        expired,
        command("ReserveStock", sku="SKU-B2", reservation_id="R-KEEP", quantity=2),
    ]
    await apply_commands(services.kafka_bootstrap_servers, topics, events, first)
    for _ in range(200):
        swept = await fetch(
            database_url, "SELECT 1 FROM stock_ledger WHERE command_type = 'ExpireReservation'"
        )
        if swept:
            break
        await asyncio.sleep(0.1)
    assert swept, "the worker's sweeper did not expire the reservation"
    # After the expiry: more on the same position.
    later = [command("AdjustInventory", sku="SKU-B1", delta=1, reason="FOUND")]
    await apply_commands(services.kafka_bootstrap_servers, topics, events, later)

    name = f"stockworker_test_{uuid.uuid4().hex[:12]}"
    target = await create_database(services.database_url, name, template=TEMPLATE_DB)
    try:
        code, plan = await cli(capsys, "rebuild", "--into", target)
        assert code == 0
        assert plan["records"] == len(first) + len(later)
        assert plan["sweeper_expiries"] == 1
        assert await positions(target) == []

        code, done = await cli(capsys, "rebuild", "--into", target, "--execute")
        assert code == 0, done
        assert done["differences"] == []
        assert done["expiries_applied"] == 1
        assert done["expiries_not_reproduced"] == []
        live = await positions(database_url)
        assert len(live) == 2
        assert await positions(target) == live
        assert await fetch(target, "SELECT 1 FROM outbox") == []

        # A target that is not empty is refused.
        code, again = await cli(capsys, "rebuild", "--into", target, "--execute")
        assert code == 1
        assert again["exit_code"] == 1 and again["error"].startswith("--into is not empty")
        audit = await fetch(database_url, "SELECT result, arguments FROM ops_audit ORDER BY id")
        assert [a["result"] for a in audit] == ["ok", "ok", "refused"]
        recorded = json.loads(audit[1]["arguments"])["into"]
        assert recorded.endswith(f"/{name}")
        assert ":***@" in recorded
    finally:
        await drop_database(services.database_url, name)
