from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from stockworker.adapters.postgres.ledger import check_ledger
from stockworker.service.topics import Topics
from tests.support.kafka_io import EventCollector
from tests.support.services import Services
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
async def ledger_matches_positions(database_url: str) -> AsyncIterator[None]:
    """After every end-to-end test: the positions are exactly the ledger's projection."""
    yield
    conn = await asyncpg.connect(database_url)
    try:
        report = await check_ledger(conn)
    finally:
        await conn.close()
    assert report.differences == {}, report.differences


@pytest.fixture
def worker(
    services: Services, database_url: str, topics: Topics, tmp_path: Path
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(database_url, services.kafka_bootstrap_servers, topics, tmp_path)
    process.start()
    yield process
    if process.alive():
        process.stop()
    print(process.logs()[-3000:])  # shown by pytest only when the test failed


@pytest.fixture
async def events(services: Services, topics: Topics) -> AsyncIterator[EventCollector]:
    async with EventCollector(services.kafka_bootstrap_servers, topics) as collector:
        yield collector
