"""The operators' audit trail and dead-letter resolutions on a real PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from stockworker.adapters.postgres.ops_audit import AuditEntry, OpsAudit
from stockworker.config import ConfigurationError
from stockworker.entrypoints.cli import main
from stockworker.entrypoints.ops.common import Refused, audited
from tests.support.databases import create_database, drop_database
from tests.support.services import Services, worker_dsn

pytestmark = pytest.mark.integration


async def test_an_operation_is_recorded_however_it_ends(database_url: str) -> None:
    args = argparse.Namespace(execute=True, operator="alice", partition=3, json=True)
    async with audited(database_url, "dlq redrive", args) as run:
        run.counts["sent"] = 2
        run.plan_fingerprint = "abc"
    with pytest.raises(Refused):
        async with audited(database_url, "dlq redrive", args):
            raise Refused("already redriven")
    with pytest.raises(ZeroDivisionError):
        async with audited(database_url, "replay", argparse.Namespace(operator="bob")):
            _ = 1 / 0
    conn = await asyncpg.connect(database_url)
    try:
        recent = await OpsAudit(conn).recent()
    finally:
        await conn.close()
    assert [(r.entry.operation, r.entry.operator, r.entry.result) for r in recent] == [
        ("replay", "bob", "failed"),
        ("dlq redrive", "alice", "refused"),
        ("dlq redrive", "alice", "ok"),
    ]
    ok = recent[2].entry
    assert ok.executed is True
    assert ok.counts == {"sent": 2}
    assert ok.plan_fingerprint == "abc"
    assert ok.arguments == {"execute": True, "operator": "alice", "partition": 3}
    assert recent[0].entry.executed is False  # no --execute: a dry run


async def test_the_worker_role_only_appends_to_the_audit_trail(
    services: Services, database_url: str
) -> None:
    assert services.app_role, "no worker role (scripts/services.sh creates one)"
    conn = await asyncpg.connect(worker_dsn(database_url))
    try:
        audit = OpsAudit(conn)
        await audit.record(AuditEntry("carol", "offsets reset", {}, False, "ok", datetime.now(UTC)))
        for change in ("UPDATE ops_audit SET operator = 'mallory'", "DELETE FROM ops_audit"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(change)
        assert [r.entry.operator for r in await audit.recent()] == ["carol"]
    finally:
        await conn.close()


async def test_a_dead_letter_resolution_is_found_by_its_place(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        audit = OpsAudit(conn)
        first = await audit.record(
            AuditEntry("dan", "dlq redrive", {}, True, "ok", datetime.now(UTC))
        )
        command = uuid.uuid4()
        await audit.resolve("t.dlq", 2, 40, "redriven", first, command)
        await audit.resolve("t.dlq", 2, 41, "discarded", first)
        found = await audit.resolutions("t.dlq", [(2, 40), (2, 41), (2, 42), (3, 40)])
        assert sorted(found) == [(2, 40), (2, 41)]
        assert found[(2, 40)].command_id == command
        assert found[(2, 41)].resolution == "discarded"
        assert await audit.resolutions("other.dlq", [(2, 40)]) == {}
        # Forced again: the newer resolution replaces the older one.
        second = await audit.record(
            AuditEntry("dan", "dlq redrive", {}, True, "ok", datetime.now(UTC))
        )
        await audit.resolve("t.dlq", 2, 40, "redriven-edited", second)
        again = (await audit.resolutions("t.dlq", [(2, 40)]))[(2, 40)]
        assert (again.resolution, again.audit_id, again.command_id) == (
            "redriven-edited",
            second,
            None,
        )
        with pytest.raises(ValueError, match="resolution"):
            await audit.resolve("t.dlq", 2, 43, "lost", second)
    finally:
        await conn.close()


async def test_an_operation_that_could_not_be_recorded_does_not_start(
    services: Services, database_url: str
) -> None:
    bare = await create_database(services.database_url, f"bare_{uuid.uuid4().hex[:10]}")
    ran = []
    try:
        with pytest.raises(ConfigurationError, match="stockworker migrate"):
            async with audited(bare, "offsets reset", argparse.Namespace()):
                ran.append("bare")
    finally:
        await drop_database(services.database_url, bare.rsplit("/", 1)[-1])
    assert services.app_role
    owner = await asyncpg.connect(database_url)
    try:
        await owner.execute(f'REVOKE INSERT ON ops_audit FROM "{services.app_role}"')
    finally:
        await owner.close()
    with pytest.raises(ConfigurationError, match="may not add rows"):
        async with audited(worker_dsn(database_url), "offsets reset", argparse.Namespace()):
            ran.append("no privilege")
    assert ran == []


async def test_a_database_that_refuses_is_one_line_and_exit_2(
    services: Services, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", services.kafka_bootstrap_servers)
    server = services.database_url.rsplit("/", 1)[0]
    bare = await create_database(services.database_url, f"bare_{uuid.uuid4().hex[:10]}")
    try:
        for url, expected in (
            (f"{server}/no_such_database_here", "the database refused: InvalidCatalogNameError"),
            (bare, "run `stockworker migrate` first"),
        ):
            monkeypatch.setenv("DATABASE_URL", url)
            capsys.readouterr()
            assert await asyncio.to_thread(main, ["audit", "--json"]) == 2
            out, err = capsys.readouterr()
            [line] = err.strip().splitlines()
            assert line.startswith("stockworker audit: ") and expected in line
            assert json.loads(out) == {
                "error": line.removeprefix("stockworker audit: "),
                "exit_code": 2,
            }
    finally:
        await drop_database(services.database_url, bare.rsplit("/", 1)[-1])
