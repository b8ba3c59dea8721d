"""The worker's database role reads and writes data and cannot change the schema."""

from __future__ import annotations

import asyncpg
import pytest

from tests.support.services import Services, worker_dsn

pytestmark = pytest.mark.integration


async def test_the_worker_role_has_data_privileges_only(
    services: Services, database_url: str
) -> None:
    assert services.app_role, (
        "no worker role: scripts/services.sh creates one; with your own services set "
        "STOCKWORKER_APP_DATABASE_URL to a role that `stockworker migrate --grant-to` names"
    )
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
