"""`stockworker offsets show|reset` on real Kafka and PostgreSQL, with the real worker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from stockworker.adapters.kafka import consumer_groups
from stockworker.adapters.kafka.consumer_groups import ConsumerGroups, GroupActive
from stockworker.adapters.postgres.ops_audit import OpsAudit, RecordedOperation
from stockworker.adapters.postgres.unit_of_work import all_positions
from stockworker.domain.position import Position
from stockworker.service.topics import Topics
from tests.support.builders import command
from tests.support.kafka_io import EventCollector, command_message, publish
from tests.support.operator_cli import OperatorCli, operator_environment
from tests.support.services import Services
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.e2e

SKUS = ("SKU-1", "SKU-2", "SKU-3", "SKU-4")


class Cli(OperatorCli):
    """The operator CLI, and a wait for what `offsets show` reports."""

    async def show_until(
        self, done: Callable[[dict[str, Any]], bool], within: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            code, shown = await self.json("offsets", "show")
            assert code == 0
            if done(shown):
                return shown
            assert time.monotonic() < deadline, f"gave up waiting; last: {shown}"
            await asyncio.sleep(0.3)


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    services: Services,
    database_url: str,
    topics: Topics,
) -> Cli:
    operator_environment(monkeypatch, services, database_url, topics)
    return Cli(capsys)


def committed(shown: dict[str, Any]) -> dict[int, int | None]:
    return {row["partition"]: row["committed"] for row in shown["partitions"]}


def caught_up(shown: dict[str, Any]) -> bool:
    """Every record read and committed (a partition without records needs no commit)."""
    return all(
        row["lag"] == 0 and (row["committed"] is not None or row["end"] == 0)
        for row in shown["partitions"]
    )


def result_counts(events: EventCollector, topics: Topics, ids: list[str]) -> dict[str, int]:
    """How many results each command got on the results topic."""
    counts = dict.fromkeys(ids, 0)
    for r in events.on(topics.results):
        command_id = r.json()["command_id"]
        if command_id in counts:
            counts[command_id] += 1
    return counts


async def positions(database_url: str) -> dict[str, Position]:
    conn = await asyncpg.connect(database_url)
    try:
        return {p.sku: p for p in await all_positions(conn)}
    finally:
        await conn.close()


async def audit_rows(database_url: str) -> list[RecordedOperation]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await OpsAudit(conn).recent(50)
    finally:
        await conn.close()
    return [r for r in reversed(rows) if r.entry.operation == "offsets reset"]


async def test_reset_waits_for_the_workers_then_rereads_as_duplicates(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STOCKWORKER_GROUP_ID", worker.env["STOCKWORKER_GROUP_ID"])
    bootstrap = services.kafka_bootstrap_servers
    first = [command("ConfigureStockItem", sku=s) for s in SKUS] + [
        command("AdjustInventory", sku=s, delta=n + 1, reason="FOUND")
        for n, s in enumerate(SKUS)
        for _ in range(2)
    ]
    await publish(bootstrap, topics.commands, [command_message(b) for b in first])
    await events.until(lambda c: {b["command_id"] for b in first} <= set(c.results()))

    # The worker has read and committed everything: lag 0, it owns the partitions.
    shown = await cli.show_until(lambda s: caught_up(s) and len(s["members"]) == 1)
    assert shown["state"] == "Stable"
    assert shown["totals"]["lag"] == 0
    assert shown["totals"]["committed"] == shown["totals"]["end"] == len(first)
    member = shown["members"][0]
    assert sorted(member["partitions"]) == [row["partition"] for row in shown["partitions"]]
    assert {row["owner"] for row in shown["partitions"]} == {
        f"{member['client_id']}@{member['host']} ({member['member_id']})"
    }
    before = committed(shown)

    # Refused while the worker is a member; nothing moves.
    code, out, err = await cli("offsets", "reset", "--to-earliest", "--execute")
    assert code == 1, (out, err)
    assert "stop the workers first" in err and member["member_id"] in err
    assert "re-read" in out  # the plan is printed all the same
    assert committed((await cli.json("offsets", "show"))[1]) == before

    assert worker.stop() == 0
    later = [command("AdjustInventory", sku="SKU-1", delta=5, reason="FOUND") for _ in range(2)]
    await publish(bootstrap, topics.commands, [command_message(b) for b in later])
    shown = await cli.show_until(lambda s: s["totals"]["lag"] == len(later))
    assert shown["state"] == "Empty" and shown["members"] == []
    assert {row["owner"] for row in shown["partitions"]} == {None}
    assert committed(shown) == before

    # The dry run prints the plan and changes nothing.
    code, plan = await cli.json("offsets", "reset", "--to-earliest")
    assert code == 0 and plan["executed"] is False and plan["refused"] is None
    assert plan["totals"]["reread"] == len(first)
    assert plan["totals"]["skip"] == 0
    assert plan["note"] is not None and "inbox" in plan["note"]
    assert {p["partition"]: p["new"] for p in plan["partitions"]} == dict.fromkeys(before, 0)
    code, text, _ = await cli("offsets", "reset", "--to-earliest")
    assert code == 0 and "dry run: nothing changed" in text and "duplicates" in text
    assert committed((await cli.json("offsets", "show"))[1]) == before

    # --execute commits the plan.
    stock_before = await positions(database_url)
    code, done = await cli.json("offsets", "reset", "--to-earliest", "--execute")
    assert code == 0 and done["executed"] is True
    assert done["fingerprint"] == plan["fingerprint"]
    shown = (await cli.json("offsets", "show"))[1]
    assert committed(shown) == dict.fromkeys(before, 0)  # those without a commit too
    assert shown["totals"]["lag"] == len(first) + len(later)

    # The restarted worker reads everything again: the first commands are duplicates,
    # answered with their stored results (each result seen twice, the same bytes).
    worker.start()
    ids = [b["command_id"] for b in first]
    await events.until(lambda c: {b["command_id"] for b in later} <= set(c.results()))
    await events.until(lambda c: all(n == 2 for n in result_counts(c, topics, ids).values()))
    await cli.show_until(caught_up)
    await events.settle()
    assert set(result_counts(events, topics, ids).values()) == {2}
    for command_id in ids:
        sent = [r.value for r in events.on(topics.results) if r.json()["command_id"] == command_id]
        assert sent[0] == sent[1]
    stock_after = await positions(database_url)
    for sku in SKUS[1:]:
        assert stock_after[sku] == stock_before[sku]  # applied once, not twice
    sku1_before, sku1_after = stock_before["SKU-1"], stock_after["SKU-1"]
    assert sku1_after.version == sku1_before.version + len(later)
    assert sku1_after.on_hand == sku1_before.on_hand + 5 * len(later)

    rows = await audit_rows(database_url)
    assert [(r.entry.executed, r.entry.result) for r in rows] == [
        (True, "refused"),
        (False, "ok"),
        (False, "ok"),
        (True, "ok"),
    ]
    assert {r.entry.operator for r in rows} == {"test-operator"}
    assert rows[-1].entry.plan_fingerprint == plan["fingerprint"]
    assert rows[-1].entry.counts["committed"] == len(before)
    assert rows[1].entry.counts["reread"] == len(first)


async def test_committing_does_not_join_and_the_broker_refuses_an_active_group(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
) -> None:
    bootstrap = services.kafka_bootstrap_servers
    idle = f"test-idle-{uuid.uuid4().hex[:8]}"
    async with ConsumerGroups(bootstrap) as groups:
        async with groups.committer(idle, topics.commands) as commit:
            await commit({0: 0, 3: 0})
            # Still open: had it joined, it would be a member now.
            described = await groups.describe(idle)
            assert described.members == () and not described.active
        assert (await groups.committed(idle, topics.commands)) == {
            0: 0,
            1: None,
            2: None,
            3: 0,
            4: None,
            5: None,
        }

        # The running worker's group: the broker itself refuses a commit from outside.
        first = command("ConfigureStockItem")
        await publish(bootstrap, topics.commands, [command_message(first)])
        await events.until(lambda c: first["command_id"] in c.results())
        group = worker.env["STOCKWORKER_GROUP_ID"]
        deadline = time.monotonic() + 60
        while True:
            active = await groups.describe(group)
            held = await groups.committed(group, topics.commands)
            if active.state == "Stable" and any(o is not None for o in held.values()):
                break
            assert time.monotonic() < deadline, f"the worker never settled: {active}, {held}"
            await asyncio.sleep(0.2)
        assert active.active and len(active.members) == 1
        with pytest.raises(GroupActive):
            await groups.commit(group, topics.commands, {p: 0 for p in range(6)})
        assert await groups.committed(group, topics.commands) == held


async def test_bad_input_and_a_time_after_every_record(
    services: Services, topics: Topics, database_url: str, cli: Cli
) -> None:
    group = f"test-{uuid.uuid4().hex[:8]}"
    bodies = [command("ConfigureStockItem", sku=s) for s in SKUS]
    await publish(
        services.kafka_bootstrap_servers, topics.commands, [command_message(b) for b in bodies]
    )

    code, out, err = await cli(
        "offsets", "reset", "--to-earliest", "--partition", "7", "--group", group
    )
    assert code == 2 and "no partition 7 (the topic has 6: 0 to 5)" in err, (out, err)
    code, _, err = await cli(
        "offsets", "reset", "--to-datetime", "2026-11-23T10:00", "--group", group
    )
    assert code == 2 and "has no offset" in err
    code, _, err = await cli("offsets", "reset", "--to-offset", "x=1", "--group", group)
    assert code == 2 and "is not N or P=N" in err

    # A time after every record: each partition maps to its end, and says so.
    code, plan = await cli.json(
        "offsets", "reset", "--to-datetime", "2999-01-01T00:00:00+00:00", "--group", group
    )
    assert code == 0
    ends = {p["partition"]: p["end"] for p in plan["partitions"]}
    assert sum(ends.values()) == len(bodies)
    assert {p["partition"]: p["new"] for p in plan["partitions"]} == ends
    assert all(
        "no record at or after that time: the end offset" in p["notes"] for p in plan["partitions"]
    )
    assert plan["totals"]["skip"] == len(bodies) and plan["totals"]["reread"] == 0
    # Skipping is said loudly, and committing it needs --allow-skip.
    assert plan["warning"].startswith(f"warning: {len(bodies)} command(s) will never be applied")
    assert "add --allow-skip" in plan["refused"]
    future = ("offsets", "reset", "--to-datetime", "2999-01-01T00:00:00+00:00", "--group", group)
    code, out, _ = await cli(*future)
    assert code == 0 and f"warning: {len(bodies)} command(s) will never be applied" in out
    code, out, err = await cli(*future, "--execute")
    assert code == 1 and "add --allow-skip" in err, (out, err)
    assert "will never be applied" in out  # the plan is printed all the same
    code, shown = await cli.json("offsets", "show", "--group", group)
    assert set(committed(shown).values()) == {None}

    # A time before every record: the beginning; --execute on an unknown group commits it.
    code, done = await cli.json(
        "offsets",
        "reset",
        "--to-datetime",
        "2000-01-01T00:00:00+00:00",
        "--partition",
        "0",
        "--partition",
        "1",
        "--group",
        group,
        "--execute",
    )
    assert code == 0 and done["executed"] is True
    code, shown = await cli.json("offsets", "show", "--group", group)
    assert committed(shown) == {0: 0, 1: 0, 2: None, 3: None, 4: None, 5: None}
    assert shown["state"] in ("Empty", "Dead")

    # With --allow-skip the skip is committed.
    code, done = await cli.json(
        "offsets",
        "reset",
        "--to-latest",
        "--partition",
        "2",
        "--group",
        group,
        "--execute",
        "--allow-skip",
    )
    assert code == 0 and done["executed"] is True and done["warning"] is not None
    code, shown = await cli.json("offsets", "show", "--group", group)
    assert committed(shown)[2] == ends[2]

    rows = await audit_rows(database_url)
    assert [(r.entry.executed, r.entry.result) for r in rows] == [
        (False, "failed"),  # the unknown partition (the other two failed before planning)
        (False, "ok"),
        (False, "ok"),
        (True, "refused"),  # skips without --allow-skip
        (True, "ok"),
        (True, "ok"),
    ]


async def test_a_commit_that_is_never_acknowledged_ends_with_one_line(
    topics: Topics, database_url: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiokafka retries a commit for ever while no coordinator answers; the reset gives
    up after COMMIT_TIMEOUT. A timeout too short for any answer stands in for that."""
    monkeypatch.setattr(consumer_groups, "COMMIT_TIMEOUT", 1e-9)
    group = f"test-{uuid.uuid4().hex[:8]}"
    code, out, err = await cli("offsets", "reset", "--to-earliest", "--group", group, "--execute")
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"the commit for group '{group}' was not acknowledged within 1e-09 s" in err
    assert "check with `stockworker offsets show`" in err
    [row] = [r for r in await audit_rows(database_url) if r.entry.arguments.get("group") == group]
    assert (row.entry.executed, row.entry.result) == (True, "failed")
