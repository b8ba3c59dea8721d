"""`stockworker top --once` against a running worker's /metrics and /health/ready."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from stockworker.service.topics import Topics
from tests.support.builders import command
from tests.support.kafka_io import EventCollector, command_message, publish
from tests.support.services import Services
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.e2e


def top_once(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockworker", "top", "--url", url, "--once", "--interval", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_top_once_shows_the_worker_figures(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
) -> None:
    worker.wait_ready()
    bodies = [
        command("AdjustInventory", sku="SKU-1", delta=3),
        command("AdjustInventory", sku="SKU-2", delta=3),
        command("PickStock", sku="SKU-1", quantity=50),
    ]
    await publish(
        services.kafka_bootstrap_servers, topics.commands, [command_message(b) for b in bodies]
    )
    await publish(services.kafka_bootstrap_servers, topics.commands, [(b"k", b"{")])
    ids = {b["command_id"] for b in bodies}
    await events.until(lambda c: ids <= set(c.results()))

    expected = (
        "commands      accepted 2  rejected 1  duplicate 0  dead_lettered 1",
        "lag           total 0",
        "  partitions  p0 0  p1 0  p2 0  p3 0  p4 0  p5 0",
        "readiness     ready",
        "INSUFFICIENT_AVAILABLE 1",
        "NOT_JSON 1",
    )
    deadline = time.monotonic() + 60
    out = ""
    while time.monotonic() < deadline:
        done = await asyncio.to_thread(top_once, f"{worker.http_url}/metrics")
        assert done.returncode == 0, done.stderr
        out = done.stdout
        if all(line in out for line in expected):
            break
        await asyncio.sleep(0.5)  # the counts and lag settle within a second or two
    print(out)  # shown by pytest when the test fails
    for line in expected:
        assert line in out, out
    assert "\x1b[" not in out


def test_top_says_in_one_line_when_the_worker_is_gone(
    worker: WorkerProcess,
) -> None:
    worker.wait_ready()
    url = f"{worker.http_url}/metrics"
    assert top_once(url).returncode == 0
    worker.stop()
    done = top_once(url)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(f"stockworker top: cannot read {url}:")
    assert done.stderr.count("\n") == 1
