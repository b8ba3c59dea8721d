"""STOCKWORKER_LOG_FORMAT=json: every line the worker and its relay write is one JSON
object, and a command dead-lettered for the database's refusal is logged with its
place and command id."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from stockworker.service.topics import Topics
from tests.support.builders import command
from tests.support.kafka_io import EventCollector, apply_commands
from tests.support.services import Services
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.e2e


async def test_every_line_is_a_json_object(
    services: Services, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    worker = WorkerProcess(
        database_url,
        services.kafka_bootstrap_servers,
        topics,
        tmp_path,
        log_format="json",
        log_level="DEBUG",
    )
    worker.start()
    try:
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            await apply_commands(
                services.kafka_bootstrap_servers,
                topics,
                events,
                [command("AdjustInventory", delta=3, reason="FOUND")],
            )
    finally:
        assert worker.stop() == 0
    lines = [line for line in worker.logs().splitlines() if line.strip()]
    assert len(lines) > 5
    parsed = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= set(p) for p in parsed)
    assert {p["logger"].split(".")[0] for p in parsed} >= {"stockworker"}
    assert time.strftime("%Y") in parsed[0]["time"]
