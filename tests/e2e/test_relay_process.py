"""The worker's relay as its child process (the default): started with the worker, and the
two end together however either ends."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from stockworker.service.topics import Topics
from tests.e2e.test_worker_flows import has_results, send
from tests.support.builders import command
from tests.support.kafka_io import EventCollector
from tests.support.services import Services
from tests.support.worker_process import WorkerProcess, wait_for

pytestmark = pytest.mark.e2e


def relays_of(parent: int) -> list[int]:
    """The `stockworker relay` processes whose parent is `parent`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"relay" in cmdline:
            found.append(int(stat.parent.name))
    return found


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie awaiting its parent's wait() is gone too.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


async def relay_after_one_command(
    services: Services, topics: Topics, worker: WorkerProcess, events: EventCollector
) -> int:
    """Once a command's result is out: the pid of the worker's one relay child."""
    assert worker.process is not None
    receive = command("ReceivePOItem", quantity=3)
    await send(services, topics, receive)
    await events.until(has_results(receive))
    [relay] = relays_of(worker.process.pid)
    return relay


async def test_the_relay_runs_apart_and_lives_and_dies_with_its_worker(
    services: Services, topics: Topics, worker: WorkerProcess, events: EventCollector
) -> None:
    relay = await relay_after_one_command(services, topics, worker, events)
    assert worker.process is not None

    # The relay dies: the worker stops too (non-zero, for its supervisor), cleanly.
    os.kill(relay, signal.SIGKILL)
    assert wait_for(lambda: not worker.alive(), 30)
    assert worker.process.returncode == 1
    assert "the outbox relay process exited with -9: the worker stops too" in worker.logs()

    # Started again (as a supervisor would), both run, and events flow again.
    worker.start()
    second = command("ReceivePOItem", quantity=4, po_line=2)
    await send(services, topics, second)
    await events.until(has_results(second))

    # The worker is killed: no shutdown code runs, yet its relay does not outlive it.
    [relay] = relays_of(worker.process.pid)
    worker.kill()
    assert wait_for(lambda: gone(relay), 15), "the relay outlived its worker"


async def test_sigterm_stops_the_worker_and_its_relay_cleanly(
    services: Services, topics: Topics, worker: WorkerProcess, events: EventCollector
) -> None:
    relay = await relay_after_one_command(services, topics, worker, events)
    started = time.monotonic()
    assert worker.stop() == 0
    assert gone(relay)
    assert time.monotonic() - started < 30
