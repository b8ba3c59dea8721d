"""The worker's database role reads and writes data and cannot change the schema; it only
appends to the ledger."""

from __future__ import annotations

import asyncpg
import pytest

from stockworker.adapters.postgres.migrations import migrate
from tests.support.services import Services, worker_dsn

pytestmark = pytest.mark.integration

_NO_ROLE = (
    "no worker role: scripts/services.sh creates one; with your own services set "
    "STOCKWORKER_APP_DATABASE_URL to a role that `stockworker migrate --grant-to` names"
)


async def test_the_worker_role_has_data_privileges_only(
    services: Services, database_url: str
) -> None:
    assert services.app_role, _NO_ROLE
    dsn = worker_dsn(database_url)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT current_user") == services.app_role
        await conn.execute(
            "INSERT INTO stock_position (sku, location, version) VALUES ('S', 'L', 1)"
        )
        await conn.execute("UPDATE stock_position SET on_hand = 1 WHERE sku = 'S'")
        await conn.execute(
            "INSERT INTO outbox (event_id, topic, value) VALUES (gen_random_uuid(), 't', 'v')"
        )
        await conn.execute("DELETE FROM outbox")
        for ddl in (
            "CREATE TABLE intruder (id int)",
            "ALTER TABLE stock_position ADD COLUMN intruder int",
            "DROP TABLE stock_ledger",
            "CREATE INDEX intruder ON stock_position (bin)",
            "TRUNCATE stock_ledger",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(ddl)
    finally:
        await conn.close()


_LEDGER_ROW = """
INSERT INTO stock_ledger (sku, location, version, command_id, command_type, occurred_at,
    delta_on_hand, delta_reserved, delta_picked, delta_on_order, delta_back_ordered,
    delta_stock_value, on_hand, reserved, picked, on_order, back_ordered, stock_value)
VALUES ('S', 'L', 1, gen_random_uuid(), 'AdjustInventory', now(),
    5, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0)
"""


async def test_the_worker_role_only_appends_to_the_ledger(
    services: Services, database_url: str
) -> None:
    assert services.app_role, _NO_ROLE
    conn = await asyncpg.connect(worker_dsn(database_url))
    try:
        await conn.execute(_LEDGER_ROW)
        assert await conn.fetchval("SELECT count(*) FROM stock_ledger") == 1
        for change in (
            "UPDATE stock_ledger SET on_hand = 6",
            "DELETE FROM stock_ledger",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(change)
        assert await conn.fetchval("SELECT on_hand FROM stock_ledger") == 5
    finally:
        await conn.close()


async def test_granting_again_narrows_what_an_earlier_grant_gave_on_the_ledger(
    services: Services, database_url: str
) -> None:
    role = services.app_role
    assert role, _NO_ROLE
    owner = await asyncpg.connect(database_url)

    async def may(privilege: str, table: str = "stock_ledger") -> bool:
        return bool(
            await owner.fetchval("SELECT has_table_privilege($1, $2, $3)", role, table, privilege)
        )

    try:
        # What `migrate --grant-to` gave before the ledger was append-only.
        await owner.execute(f'GRANT UPDATE, DELETE ON stock_ledger TO "{role}"')
        assert await may("UPDATE")
        assert await migrate(database_url, grant_to=role) == []
        assert [p for p in ("UPDATE", "DELETE", "TRUNCATE") if await may(p)] == []
        assert await may("SELECT")
        assert await may("INSERT")
        assert await may("UPDATE", "stock_position")
        assert await may("DELETE", "outbox")
    finally:
        await owner.close()
