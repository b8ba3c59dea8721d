"""/metrics of a real worker: counts equal what was sent, by outcome; the relay's events
(in its child process, and inline); consumer lag while the worker is stopped and after."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stockworker.adapters.metrics.collectors import ConsumerLagCollector
from stockworker.service.topics import Topics
from tests.support.builders import command
from tests.support.kafka_io import EventCollector, command_message, publish
from tests.support.services import Services
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(worker: WorkerProcess) -> Samples:
    status, body, content_type = worker.get("/metrics")
    assert status == 200, body
    assert content_type.startswith("text/plain")
    return parse(body.decode())


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def scrape_until(
    worker: WorkerProcess, done: Callable[[Samples], bool], within: float = 60
) -> Samples:
    """Scrapes until `done` holds (the worker may not listen yet at first)."""
    deadline = time.monotonic() + within
    samples: Samples = {}
    while time.monotonic() < deadline:
        assert worker.alive(), worker.logs()[-3000:]
        try:
            samples = scrape(worker)
        except OSError:
            samples = {}
        if samples and done(samples):
            return samples
        time.sleep(0.2)
    raise AssertionError(f"/metrics never got there; last: {sorted(samples.items())[:80]}")


def outcome_counts(samples: Samples) -> dict[tuple[str, str, str], float]:
    return {
        (dict(labels)["type"], dict(labels)["outcome"], dict(labels)["code"]): v
        for labels, v in series(samples, "stockworker_commands_total").items()
        if v
    }


@pytest.fixture
def make_worker(
    services: Services, database_url: str, topics: Topics, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    made: list[WorkerProcess] = []

    def make(**settings: str) -> WorkerProcess:
        logs = tmp_path / f"w{len(made)}"
        logs.mkdir()
        worker = WorkerProcess(
            database_url, services.kafka_bootstrap_servers, topics, logs, **settings
        )
        made.append(worker)
        return worker

    yield make
    for worker in made:
        if worker.alive():
            worker.stop()
        print(worker.logs()[-3000:])  # shown by pytest only when the test failed


@pytest.mark.parametrize("relay", ["child process", "inline"])
async def test_metrics_count_what_was_sent_by_outcome_and_the_relays_events(
    relay: str,
    services: Services,
    topics: Topics,
    make_worker: Callable[..., WorkerProcess],
) -> None:
    worker = make_worker(**({"relay_inline": "true"} if relay == "inline" else {}))
    worker.start()
    accepted = [command("AdjustInventory", sku=f"SKU-{n}", delta=5) for n in "ABC"]
    rejected = command("ShipStock", sku="SKU-D", quantity=1, order_ref="O-1")
    invalid = command("AdjustInventory", sku="SKU-E", delta=0)  # delta must not be 0
    sent = [command_message(b) for b in [*accepted, rejected, accepted[0], invalid]]
    sent.append((b"SKU-F", b"not json"))
    await publish(services.kafka_bootstrap_servers, topics.commands, sent)

    async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
        await events.until(
            lambda c: len(c.on(topics.results)) == 6 and len(c.on(topics.dead_letters)) == 1
        )
        await events.until(lambda c: len(c.on(topics.changed)) == 3)
        await events.settle(1.0)

    samples = await asyncio.to_thread(
        scrape_until, worker, lambda s: sum(outcome_counts(s).values()) == 7
    )
    assert outcome_counts(samples) == {
        ("AdjustInventory", "accepted", ""): 3,
        ("ShipStock", "rejected", "UNKNOWN_POSITION"): 1,
        ("AdjustInventory", "duplicate", ""): 1,
        ("AdjustInventory", "rejected", "INVALID_COMMAND"): 1,
        ("unknown", "dead_lettered", "NOT_JSON"): 1,
    }
    assert value(samples, "stockworker_batch_size_sum") == 7
    assert (value(samples, "stockworker_batch_seconds_count") or 0) >= 1
    # FastStream's middleware: records, not batches, and their real bytes.
    faststream = {"app_name": "stockworker", "broker": "kafka", "handler": topics.commands}
    assert value(samples, "faststream_received_messages_total", **faststream) == 7
    assert value(samples, "faststream_received_messages_size_bytes_sum", **faststream) == sum(
        len(v) for _, v in sent
    )
    # One series, not one per process (multiprocess mode), and nothing in hand now.
    assert value(samples, "faststream_received_messages_in_process", **faststream) == 0

    # Every message the relay published, by topic, once it has published them all.
    expected = {
        topics.results: len(events.on(topics.results)),
        topics.dead_letters: len(events.on(topics.dead_letters)),
        topics.changed: len(events.on(topics.changed)),
        topics.snapshot: 3,  # one per position changed
    }
    published = dict.fromkeys(expected, 0.0)

    def all_published(s: Samples) -> bool:
        for topic in expected:
            published[topic] = value(s, "stockworker_events_published_total", topic=topic) or 0
        return published == expected

    samples = await asyncio.to_thread(scrape_until, worker, all_published)
    assert set(series(samples, "stockworker_events_published_total")) == {
        frozenset({("topic", t)}) for t in expected
    }
    assert value(samples, "stockworker_relay_leader") == 1
    assert (value(samples, "stockworker_db_pool_size") or 0) >= 1
    samples = await asyncio.to_thread(
        scrape_until, worker, lambda s: value(s, "stockworker_outbox_backlog") == 0
    )
    assert value(samples, "stockworker_outbox_oldest_age_seconds") == 0
    assert value(samples, "stockworker_outbox_parked") == 0


async def test_lag_rises_while_the_worker_is_stopped_and_falls_to_zero_after(
    services: Services, topics: Topics, make_worker: Callable[..., WorkerProcess]
) -> None:
    group = f"test-lag-{time.monotonic_ns()}"
    worker = make_worker(group_id=group)
    first = [command("AdjustInventory", sku=f"SKU-{n}", delta=1) for n in range(4)]
    worker.start()
    async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
        await publish(
            services.kafka_bootstrap_servers, topics.commands, [command_message(b) for b in first]
        )
        await events.until(lambda c: len(c.on(topics.results)) == len(first))
        assert worker.stop() == 0  # commits what it applied

        later = [command("AdjustInventory", sku=f"SKU-{n}", delta=1) for n in range(10, 30)]
        await publish(
            services.kafka_bootstrap_servers, topics.commands, [command_message(b) for b in later]
        )
        # The collector /metrics renders, read while no worker runs.
        lag = ConsumerLagCollector(services.kafka_bootstrap_servers, group, topics.commands)
        try:
            deadline = time.monotonic() + 30
            shown: Samples = {}
            while time.monotonic() < deadline:
                await lag.refresh()
                registry = CollectorRegistry()
                registry.register(lag)
                shown = parse(generate_latest(registry).decode())
                if sum(series(shown, "stockworker_consumer_lag").values()) == len(later):
                    break
                await asyncio.sleep(0.2)
        finally:
            await lag.close()
        by_partition = {
            dict(labels)["partition"]: v
            for labels, v in series(shown, "stockworker_consumer_lag").items()
            if dict(labels)["topic"] == topics.commands
        }
        assert sorted(by_partition) == [str(p) for p in range(6)]  # every partition
        assert sum(by_partition.values()) == len(later)

        worker.start()
        await events.until(lambda c: len(c.on(topics.results)) == len(first) + len(later))

    def caught_up(s: Samples) -> bool:
        lags = series(s, "stockworker_consumer_lag")
        return len(lags) == 6 and all(v == 0 for v in lags.values())

    samples = await asyncio.to_thread(scrape_until, worker, caught_up)
    assert {
        dict(labels)["partition"] for labels in series(samples, "stockworker_consumer_lag")
    } == {str(p) for p in range(6)}
