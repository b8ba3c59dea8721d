from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from stockworker.adapters.postgres.migrations import available_migrations, migrate
from tests.support.databases import create_database, drop_database
from tests.support.services import Services

pytestmark = pytest.mark.integration


async def test_migrations_apply_cleanly_to_an_empty_database_and_only_once(
    services: Services,
) -> None:
    """What they build is compared whole in test_schema_snapshot.py."""
    name = f"stockworker_test_migrations_{uuid.uuid4().hex[:8]}"
    url = await create_database(services.database_url, name)
    try:
        applied = await migrate(url)
        assert applied == [m.version for m in available_migrations()]
        assert await migrate(url) == []
    finally:
        await drop_database(services.database_url, name)


@pytest.mark.parametrize(
    ("columns", "constraint"),
    [
        ({"on_order": -1}, "quantities_not_negative"),
        ({"on_hand": 5, "reserved": 3, "picked": 3}, "on_hand_covers_reserved_and_picked"),
        ({"min_quantity": 5, "max_quantity": 4}, "min_max_valid"),
        ({"low_stock_threshold": -1}, "thresholds_not_negative"),
        ({"bin": "b" * 51}, "bin_length"),
        ({"back_ordered": -1}, "back_ordered_not_negative"),
        ({"on_hand": 5, "back_ordered": 2}, "back_orders_wait_for_stock"),
        ({"on_hand": 0, "stock_value": 1}, "stock_value_valid"),
        ({"on_hand": 2, "stock_value": -1}, "stock_value_valid"),
    ],
)
async def test_the_database_refuses_positions_that_break_the_invariants(
    pool: asyncpg.Pool, columns: dict[str, object], constraint: str
) -> None:
    names = ", ".join(columns)
    params = ", ".join(f"${i + 3}" for i in range(len(columns)))
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await pool.execute(
            f"INSERT INTO stock_position (sku, location, version, {names}) "
            f"VALUES ($1, $2, 1, {params})",
            "SKU",
            "WH",
            *columns.values(),
        )
    assert caught.value.constraint_name == constraint


async def test_outbox_rows_can_be_parked_only_unpublished_and_with_a_reason(
    pool: asyncpg.Pool,
) -> None:
    insert = (
        "INSERT INTO outbox (event_id, topic, value, published_at, parked_at, parked_reason) "
        "VALUES (gen_random_uuid(), 't', '', $1, $2, $3)"
    )
    await pool.execute(insert, None, datetime.now(UTC), "MessageSizeTooLargeError")
    for published, parked, reason, constraint in [
        (None, datetime.now(UTC), None, "outbox_parked_with_reason"),
        (None, None, "a reason", "outbox_parked_with_reason"),
        (datetime.now(UTC), datetime.now(UTC), "a reason", "outbox_parked_unpublished"),
    ]:
        with pytest.raises(asyncpg.CheckViolationError) as caught:
            await pool.execute(insert, published, parked, reason)
        assert caught.value.constraint_name == constraint


async def test_one_position_per_sku_and_location(pool: asyncpg.Pool) -> None:
    insert = "INSERT INTO stock_position (sku, location, version) VALUES ('S', 'L', 1)"
    await pool.execute(insert)
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute(insert)


async def test_a_reservation_must_hold_something_and_belong_to_a_position(
    pool: asyncpg.Pool,
) -> None:
    insert = (
        "INSERT INTO stock_reservation (reservation_id, sku, location, order_ref, quantity, "
        "back_ordered, sequence) VALUES ('R', 'S', 'L', 'O', $1, $2, 1)"
    )
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute(insert, 1, 0)
    await pool.execute("INSERT INTO stock_position (sku, location, version) VALUES ('S', 'L', 1)")
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await pool.execute(insert, 0, 0)
    assert caught.value.constraint_name == "reservation_holds_something"
