"""Downstream subscribers, end to end (real Kafka, real PostgreSQL, the worker as its own
process): a new subscriber bootstrapped from the snapshot topic plus the change stream
matches the database; `events republish` repeats the original events."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from stockworker.adapters.kafka.topic_reader import TopicReader
from stockworker.adapters.postgres.unit_of_work import all_positions
from stockworker.contract.events import PositionSnapshot
from stockworker.domain.position import Position
from stockworker.service.snapshots import snapshot_key
from stockworker.service.topics import Topics
from tests.support.builders import command
from tests.support.kafka_io import EventCollector, Received, apply_commands
from tests.support.operator_cli import OperatorCli, operator_environment
from tests.support.services import Services
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.e2e

SKUS = ("SKU-A", "SKU-B", "SKU-C")
LOCATIONS = ("WH1", "WH2")


def stream(round_: int) -> list[dict[str, Any]]:
    """Commands touching every position: settings, receipts, reservations, picks,
    adjustments and transfers (some crossing the low-stock threshold)."""
    bodies: list[dict[str, Any]] = [
        command("ConfigureLocation", code=code, name=code) for code in LOCATIONS if not round_
    ]
    for sku in SKUS:
        for location in LOCATIONS:
            ref = f"{sku}-{location}-{round_}"
            bodies += [
                command(
                    "ConfigureStockItem",
                    sku,
                    location,
                    low_stock_threshold=5 + round_,
                    max_quantity=100,
                    bin=f"B-{round_}",
                ),
                command("ReceivePOItem", sku, location, po_number=f"PO-{ref}", quantity=12),
                command("ReserveStock", sku, location, reservation_id=f"R-{ref}", order_ref=ref),
                command("PickStock", sku, location, order_ref=f"O-{ref}", quantity=2),
                command("AdjustInventory", sku, location, delta=-3, reason="DAMAGE"),
            ]
        bodies.append(
            command("TransferStock", sku, from_location="WH1", to_location="WH2", quantity=1)
        )
    return bodies


class Subscriber:
    """A new service following stock, as docs/operations.md tells it to: note the change
    stream's end offsets, read the snapshot topic to its end, then follow the change
    stream from the noted offsets, keeping per position the state of highest version."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.state: dict[tuple[str, str], dict[str, Any]] = {}
        self.follow_from: dict[int, int] = {}
        self.snapshots_read = 0

    def _take(self, document: dict[str, Any]) -> bool:
        key = (document["sku"], document["location"])
        held = self.state.get(key)
        if held is not None and document["version"] <= held["version"]:
            return False
        self.state[key] = {
            name: document[name] for name in ("version", "quantities", "valuation", "settings")
        }
        return True

    async def note_change_stream_end(self) -> None:
        """1. Where the change stream ends now: followed from here afterwards."""
        async with TopicReader(self.bootstrap) as reader:
            held = await reader.bounds(self.topics.changed)
            self.follow_from = {p: b.end for p, b in held.items()}

    async def read_snapshots(self) -> None:
        """2. The snapshot topic, from its beginning to its end as of now."""
        async with TopicReader(self.bootstrap) as reader:
            held = await reader.bounds(self.topics.snapshot)
            ranges = {p: (b.beginning, b.end) for p, b in held.items()}
            async for records in reader.read(self.topics.snapshot, ranges):
                for record in records:
                    assert record.value is not None
                    snapshot = PositionSnapshot.model_validate_json(record.value)
                    assert record.value == snapshot.model_dump_json().encode()
                    assert record.key == snapshot_key(snapshot.sku, snapshot.location)
                    self._take(orjson.loads(record.value))
                    self.snapshots_read += 1

    async def follow(self) -> tuple[int, int]:
        """3. The change stream from the noted offsets to its current end: how many
        changes were taken, how many the snapshots had already."""
        taken = skipped = 0
        async with TopicReader(self.bootstrap) as reader:
            ends = await reader.bounds(self.topics.changed)
            ranges = {p: (start, ends[p].end) for p, start in self.follow_from.items()}
            async for records in reader.read(self.topics.changed, ranges):
                for record in records:
                    assert record.value is not None
                    if self._take(orjson.loads(record.value)):
                        taken += 1
                    else:
                        skipped += 1
        return taken, skipped


def database_view(positions: list[Position]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (p.sku, p.location): {
            "version": p.version,
            "quantities": {
                "on_hand": p.on_hand,
                "reserved": p.reserved,
                "picked": p.picked,
                "on_order": p.on_order,
                "back_ordered": p.back_ordered,
                "available": p.available,
            },
            "valuation": {"unit_cost": str(p.unit_cost), "stock_value": str(p.stock_value)},
            "settings": {
                "min_quantity": p.min_quantity,
                "max_quantity": p.max_quantity,
                "low_stock_threshold": p.low_stock_threshold,
                "reorder_quantity": p.reorder_quantity,
                "bin": p.bin,
                "preferred_supplier": p.preferred_supplier,
            },
        }
        for p in positions
    }


async def stored_positions(database_url: str) -> list[Position]:
    conn = await asyncpg.connect(database_url)
    try:
        return await all_positions(conn)
    finally:
        await conn.close()


async def topic_config(bootstrap: str, topic: str, name: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {name: None})]
        )
    finally:
        await admin.close()
    [resource] = response.resources
    [entry] = [e for e in resource[4] if e[0] == name]
    return str(entry[1])


async def test_a_new_subscriber_bootstrapped_from_the_snapshot_topic_matches_positions(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
) -> None:
    bootstrap = services.kafka_bootstrap_servers
    assert await topic_config(bootstrap, topics.snapshot, "cleanup.policy") == "compact"
    await apply_commands(bootstrap, topics, events, stream(0))

    # Changes arrive between each step of the new subscriber's bootstrap, and while it
    # reads the snapshot topic.
    subscriber = Subscriber(bootstrap, topics)
    await subscriber.note_change_stream_end()
    await apply_commands(bootstrap, topics, events, stream(1))  # after the noted offsets
    sending = asyncio.create_task(apply_commands(bootstrap, topics, events, stream(2)))
    await subscriber.read_snapshots()
    await sending
    await apply_commands(bootstrap, topics, events, stream(3))
    taken, skipped = await subscriber.follow()

    expected = database_view(await stored_positions(database_url))
    assert len(expected) == len(SKUS) * len(LOCATIONS)
    assert subscriber.state == expected
    # Round 1's changes were in the snapshots already; round 3's were not.
    assert skipped >= len(stream(1)) and taken >= len(stream(3)) - len(SKUS)
    # Every position's snapshot is on the topic: one alone would do.
    async with TopicReader(bootstrap) as reader:
        held = await reader.bounds(topics.snapshot)
        latest: dict[bytes | None, int] = {}
        async for records in reader.read(
            topics.snapshot, {p: (b.beginning, b.end) for p, b in held.items()}
        ):
            for r in records:
                assert r.value is not None
                latest[r.key] = max(latest.get(r.key, 0), orjson.loads(r.value)["version"])
    assert latest == {snapshot_key(s, loc): v["version"] for (s, loc), v in expected.items()}


# --- events republish --------------------------------------------------------------


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    services: Services,
    database_url: str,
    topics: Topics,
) -> OperatorCli:
    operator_environment(monkeypatch, services, database_url, topics)
    return OperatorCli(capsys)


def by_event_id(records: list[Received]) -> dict[bytes, Received]:
    found = {r.header("event_id"): r for r in records}
    assert len(found) == len(records)
    return found


def split(records: list[Received]) -> tuple[list[Received], list[Received]]:
    """(originals, republished)"""
    return (
        [r for r in records if "republished" not in r.headers],
        [r for r in records if "republished" in r.headers],
    )


async def read_all(events: EventCollector, expected: Mapping[str, int]) -> None:
    await events.until(
        lambda c: all(len(c.on(topic)) >= n for topic, n in expected.items()), within=60
    )
    await events.settle(1.0)


async def test_republish_repeats_the_original_events(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
    cli: OperatorCli,
) -> None:
    bootstrap = services.kafka_bootstrap_servers
    plus_two = datetime.now(UTC).astimezone(UTC) + timedelta(hours=2)
    bodies = [
        *stream(0),
        # A time given with an offset is republished with it; a rejection too.
        command(
            "AdjustInventory",
            "SKU-A",
            "WH1",
            delta=1,
            reason="FOUND",
            occurred_at=plus_two.replace(tzinfo=None).isoformat() + "+02:00",
        ),
        command("PickStock", "SKU-B", "WH1", order_ref="NOPE", quantity=999),
    ]
    results = await apply_commands(bootstrap, topics, events, bodies)
    assert {r["type"] for r in results} == {"CommandAccepted", "CommandRejected"}
    await events.settle(1.0)
    originals = {t: list(events.on(t)) for t in (topics.changed, topics.low_stock, topics.results)}
    assert originals[topics.low_stock], "the stream crosses the low-stock threshold"

    # The plan: everything selected, nothing sent.
    code, plan = await cli.json("events", "republish")
    assert code == 0 and not plan["executed"]
    assert plan["counts"] == {
        "changed": len(originals[topics.changed]),
        "low-stock": len(originals[topics.low_stock]),
        "results": len(originals[topics.results]),
    }
    await events.settle(1.0)
    assert all(len(events.on(t)) == len(originals[t]) for t in originals)

    code, done = await cli.json("events", "republish", "--execute")
    assert code == 0 and done["executed"] and done["published"] == plan["selected"]
    assert done["event_ids_digest"] == plan["event_ids_digest"]
    await read_all(events, {t: 2 * len(originals[t]) for t in originals})
    for topic, first in originals.items():
        old, again = split(events.on(topic))
        assert len(old) == len(first) and len(again) == len(first), topic
        # The same records: event ids, keys, headers, and the same bytes.
        sent, resent = by_event_id(old), by_event_id(again)
        assert sent.keys() == resent.keys(), topic
        for event_id, record in sent.items():
            copy = resent[event_id]
            assert (copy.key, copy.value, copy.header("type")) == (
                record.key,
                record.value,
                record.header("type"),
            ), orjson.loads(record.value)
            assert copy.header("republished") == b"true"
    # A position's events go out again in version order, on its SKU's partition.
    for sku in SKUS:
        for location in LOCATIONS:
            versions = [
                r.json()["version"]
                for r in split(events.on(topics.changed))[1]
                if (r.json()["sku"], r.json()["location"]) == (sku, location)
            ]
            assert versions == sorted(versions) and versions

    # A selection: one SKU at one location, one kind, a time range.
    code, one = await cli.json(
        "events",
        "republish",
        "--sku",
        "SKU-C",
        "--location",
        "WH2",
        "--kind",
        "changed",
        "--since",
        "2026-01-01T00:00:00+00:00",
    )
    assert code == 0
    assert one["counts"] == {
        "changed": sum(
            (r.json()["sku"], r.json()["location"]) == ("SKU-C", "WH2")
            for r in originals[topics.changed]
        ),
        "low-stock": 0,  # every kind is counted, those not selected or not found as 0
        "results": 0,
    }

    # A range that starts after a position's first entries: the entry before is read for
    # the crossing check. Only the command given with +02:00 occurred then.
    code, recent = await cli.json(
        "events", "republish", "--since", (plus_two - timedelta(hours=3)).isoformat()
    )
    assert code == 0 and recent["counts"] == {"changed": 1, "low-stock": 0, "results": 1}

    # Bad input: nothing in the range, an inverted range, a time without offset.
    code, out, err = await cli("events", "republish", "--until", "2000-01-01T00:00:00+00:00")
    assert code == 2 and "nothing to republish" in err
    code, out, err = await cli(
        "events",
        "republish",
        "--since",
        "2026-02-01T00:00:00+00:00",
        "--until",
        "2026-01-01T00:00:00+00:00",
    )
    assert code == 2 and "--since must be before --until" in err
    code, out, err = await cli("events", "republish", "--since", "2026-01-01T00:00:00")
    assert code == 2 and "offset" in err

    # Each run is in the audit trail.
    code, out, err = await cli("audit", "--json")
    audit = orjson.loads(out)
    republishes = [a for a in audit if a["operation"] == "events republish"]
    assert [(a["executed"], a["result"]) for a in republishes][-2:] == [
        (True, "ok"),
        (False, "ok"),
    ]
    executed = next(a for a in republishes if a["executed"])
    assert executed["counts"]["published"] == plan["selected"]
    assert executed["operator"] == "test-operator"


# --- events snapshot (seeding the snapshot topic) ------------------------------------


async def snapshot_records(bootstrap: str, topics: Topics) -> dict[bytes | None, list[bytes]]:
    """The snapshot topic's records, by key, in order."""
    out: dict[bytes | None, list[bytes]] = {}
    async with TopicReader(bootstrap) as reader:
        held = await reader.bounds(topics.snapshot)
        async for records in reader.read(
            topics.snapshot, {p: (b.beginning, b.end) for p, b in held.items()}
        ):
            for r in records:
                out.setdefault(r.key, []).append(r.value or b"")
    return out


async def test_seeding_writes_each_positions_current_snapshot_through_the_relay(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
    cli: OperatorCli,
) -> None:
    bootstrap = services.kafka_bootstrap_servers
    await apply_commands(bootstrap, topics, events, stream(0))
    await events.settle(1.0)
    derived = await snapshot_records(bootstrap, topics)
    assert len(derived) == len(SKUS) * len(LOCATIONS)

    code, plan = await cli.json("events", "snapshot")
    assert code == 0 and plan["counts"] == {"snapshots": len(derived)}
    code, one = await cli.json("events", "snapshot", "--sku", "SKU-B", "--location", "WH2")
    assert code == 0 and one["counts"] == {"snapshots": 1}
    code, _, err = await cli("events", "snapshot", "--sku", "NO-SUCH-SKU")
    assert code == 2 and "no position" in err
    assert await snapshot_records(bootstrap, topics) == derived  # dry runs wrote nothing

    code, done = await cli.json("events", "snapshot", "--execute")
    assert code == 0 and done["counts"] == {"snapshots": len(derived)}
    deadline = asyncio.get_running_loop().time() + 30
    while sum(map(len, (seeded := await snapshot_records(bootstrap, topics)).values())) < sum(
        len(v) + 1 for v in derived.values()
    ):
        assert asyncio.get_running_loop().time() < deadline, "the relay did not publish them"
        await asyncio.sleep(0.2)
    # Each position once more: the very record the relay derived from its last change.
    assert seeded == {key: [*values, values[-1]] for key, values in derived.items()}
    expected = database_view(await stored_positions(database_url))
    assert {
        (doc["sku"], doc["location"]): doc["version"]
        for doc in (orjson.loads(v[-1]) for v in seeded.values())
    } == {k: v["version"] for k, v in expected.items()}
