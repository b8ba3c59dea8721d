"""The schema the migrations build, checked whole against a committed snapshot.

An empty database gets every migration and `--grant-to` the worker's role; its schema,
described by tests/support/schema.py (tables, columns with types, nullability and
defaults, constraints and indexes with their definitions, sequences, privileges, the
applied migrations), must equal tests/integration/schema_snapshot.txt. A migration that
changes the schema, or a change to an applied migration, fails here with a diff.

When the change is intended, refresh the snapshot and review it with `git diff`:

    eval "$(scripts/services.sh env)"
    STOCKWORKER_UPDATE_SCHEMA_SNAPSHOT=1 .venv/bin/python -m pytest \
        tests/integration/test_schema_snapshot.py
"""

from __future__ import annotations

import difflib
import os
import uuid
from pathlib import Path

import asyncpg
import pytest

from stockworker.adapters.postgres.migrations import migrate
from tests.support.databases import create_database, drop_database
from tests.support.schema import describe_schema
from tests.support.services import Services

pytestmark = pytest.mark.integration

SNAPSHOT = Path(__file__).with_name("schema_snapshot.txt")
UPDATE = "STOCKWORKER_UPDATE_SCHEMA_SNAPSHOT"
HEADER = (
    "# The schema after every migration, with `migrate --grant-to` the worker's role (app).\n"
    "# Checked by tests/integration/test_schema_snapshot.py; refresh as its docstring says.\n\n"
)


async def migrated_schema(services: Services) -> str:
    name = f"stockworker_test_schema_{uuid.uuid4().hex[:8]}"
    url = await create_database(services.database_url, name)
    try:
        await migrate(url, grant_to=services.app_role)
        conn = await asyncpg.connect(url)
        try:
            return HEADER + await describe_schema(conn, app_role=services.app_role)
        finally:
            await conn.close()
    finally:
        await drop_database(services.database_url, name)


async def test_the_migrated_schema_matches_the_snapshot(services: Services) -> None:
    assert services.app_role, (
        "no worker role: its privileges are part of the snapshot; scripts/services.sh "
        "creates one, with your own services set STOCKWORKER_APP_DATABASE_URL"
    )
    actual = await migrated_schema(services)
    if os.environ.get(UPDATE):
        SNAPSHOT.write_text(actual, encoding="utf-8")
        return
    expected = SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else ""
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"{SNAPSHOT.name} (committed)",
                tofile="the schema the migrations build now",
            )
        )
        pytest.fail(
            f"The migrated schema differs from {SNAPSHOT.name}. If that is intended, refresh "
            f"it with {UPDATE}=1 (see this test's docstring) and commit it.\n\n{diff}",
            pytrace=False,
        )
