from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from stockworker.service.topics import Topics
from tests.support.kafka_io import EventCollector
from tests.support.services import Services
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.e2e


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
