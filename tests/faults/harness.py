"""What every fault test shares: profiles, driving a stream through faults, and the verdict.

A run publishes a seeded stream of mixed commands, lets the test inject its faults,
waits for every command's result and then checks, against the reference model and the
database: commands lost, commands applied twice, StockChanged lost, events repeated
with a *different* id or payload, and dead letters by reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from stockworker.adapters.postgres.ledger import check_ledger
from stockworker.adapters.postgres.unit_of_work import all_positions
from stockworker.service.topics import Topics
from tests.support.kafka_io import EventCollector, apply_commands, command_message, publish
from tests.support.reference import ReferenceModel, observed
from tests.support.services import ROOT


@dataclass(frozen=True)
class Profile:
    name: str
    kill_commands: int
    kills: int
    skus: int
    outage_commands: int
    postgres_outage_seconds: float
    kafka_outage_seconds: float
    rebalance_commands: int
    rebalance_seconds: float  # a worker joins or leaves this often
    sigterm_commands: int
    hot_commands: int
    hot_workers: int


PROFILES = {
    # In CI on every run: every fault, smaller numbers.
    "short": Profile("short", 8_000, 5, 200, 6_000, 10, 15, 10_000, 3, 6_000, 1_500, 3),
    # The numbers: STOCKWORKER_FAULTS_PROFILE=full scripts/test.sh tests/faults
    "full": Profile("full", 50_000, 20, 400, 30_000, 30, 60, 100_000, 4, 30_000, 6_000, 3),
}


def profile() -> Profile:
    return PROFILES[os.environ.get("STOCKWORKER_FAULTS_PROFILE", "short")]


def services_script(action: str) -> None:
    """Stop or start one local service (scripts/services.sh); a stop must really stop it."""
    subprocess.run([str(ROOT / "scripts" / "services.sh"), action], check=True)
    ports = {"stop-postgres": 5432, "stop-kafka": 9092}
    if action in ports:
        with socket.socket() as s:
            s.settimeout(1)
            assert s.connect_ex(("127.0.0.1", ports[action])) != 0, f"{action} left it running"


@dataclass
class Summary:
    scenario: str
    commands: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    commands_lost: int = 0
    applied_twice: int = 0
    wrong_verdicts: int = 0
    positions_differing: int = 0
    stock_changed_lost: int = 0
    duplicated_beyond_id: int = 0
    repeats_same_id: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    ledger_differences: int = 0
    # Outbox rows the relay set aside as unpublishable: an event nobody will receive.
    parked: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        faults = ", ".join(f"{k} x{v}" for k, v in self.faults.items()) or "none"
        dead = ", ".join(f"{k} {v}" for k, v in self.dead_letters.items()) or "none"
        return (
            f"[{self.scenario}] {self.commands} commands in {self.seconds:.0f}s; faults: {faults}; "
            f"lost {self.commands_lost}, applied twice {self.applied_twice}, wrong verdicts "
            f"{self.wrong_verdicts}, positions differing {self.positions_differing}; "
            f"StockChanged lost {self.stock_changed_lost}, duplicated beyond their id "
            f"{self.duplicated_beyond_id} (re-published with the same id: "
            f"{self.repeats_same_id}); dead letters: {dead}; ledger differences "
            f"{self.ledger_differences}; parked {self.parked}"
        )

    def assert_clean(self) -> None:
        assert (
            self.commands_lost,
            self.applied_twice,
            self.wrong_verdicts,
            self.positions_differing,
            self.stock_changed_lost,
            self.duplicated_beyond_id,
            self.ledger_differences,
            self.parked,
        ) == (0, 0, 0, 0, 0, 0, 0, 0), self.line()


REPORT: list[Summary] = []


def record(summary: Summary) -> None:
    """Keep it for the session's report (printed at the end, written if asked)."""
    REPORT.append(summary)
    print(summary.line())
    target = os.environ.get("STOCKWORKER_FAULTS_REPORT")
    if target:
        Path(target).write_text(json.dumps([asdict(s) for s in REPORT], indent=2) + "\n")


async def feed(
    bootstrap: str, topics: Topics, bodies: list[dict[str, Any]], chunk: int = 500,
    pause: float = 0.05,
) -> None:  # fmt: skip
    """Publish in chunks, with small pauses, so faults land while commands still arrive."""
    for start in range(0, len(bodies), chunk):
        await publish(
            bootstrap, topics.commands, [command_message(b) for b in bodies[start : start + chunk]]
        )
        await asyncio.sleep(pause)


async def apply_setup(
    bootstrap: str, topics: Topics, events: EventCollector, setup: list[dict[str, Any]]
) -> None:
    """Configure the locations before the stream: transfers on every partition need them."""
    await apply_commands(bootstrap, topics, events, setup, within=120)


async def unpublished(database_url: str) -> int:
    """Outbox rows committed but not yet published."""
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL AND parked_at IS NULL"
        )
        return count
    finally:
        await conn.close()


async def wait_for_results(
    events: EventCollector, bodies: list[dict[str, Any]], within: float
) -> None:
    wanted = {b["command_id"] for b in bodies}
    await events.until(lambda c: wanted <= set(c.results()), within)
    await events.settle(2.0)


async def verify(
    scenario: str,
    topics: Topics,
    events: EventCollector,
    database_url: str,
    bodies: list[dict[str, Any]],
    reference: ReferenceModel | None,
    faults: Counter[str],
    started: float,
) -> Summary:
    """Compare what the worker did with what it should have done."""
    summary = Summary(scenario, commands=len(bodies), faults=dict(faults))
    results: dict[str, set[tuple[bytes, bytes]]] = defaultdict(set)
    for r in events.on(topics.results):
        results[r.json()["command_id"]].add((r.header("event_id"), r.value))
    summary.commands_lost = sum(1 for b in bodies if b["command_id"] not in results)
    summary.duplicated_beyond_id += sum(1 for copies in results.values() if len(copies) > 1)
    summary.repeats_same_id += len(events.on(topics.results)) - len(results)

    by_version: dict[tuple[str, str, int], set[tuple[bytes, bytes]]] = defaultdict(set)
    for r in events.on(topics.changed):
        e = r.json()
        by_version[(e["sku"], e["location"], e["version"])].add((r.header("event_id"), r.value))
    summary.duplicated_beyond_id += sum(1 for copies in by_version.values() if len(copies) > 1)
    summary.repeats_same_id += len(events.on(topics.changed)) - len(by_version)

    conn = await asyncpg.connect(database_url)
    try:
        summary.applied_twice = await conn.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM stock_ledger GROUP BY command_id, sku, location "
            "HAVING count(*) > 1) AS twice"
        )
        stored = await all_positions(conn)
        summary.ledger_differences = len((await check_ledger(conn)).differences)
        summary.parked = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL"
        )
    finally:
        await conn.close()

    if reference is not None:
        verdicts = {
            cid: json.loads(next(iter(copies))[1])["type"] == "CommandAccepted"
            for cid, copies in results.items()
        }
        summary.wrong_verdicts = sum(
            1
            for cid, accepted in reference.outcomes.items()
            if verdicts.get(cid, accepted) != accepted
        )
        expected = reference.snapshot()
        actual = observed(stored)
        summary.positions_differing = sum(
            1 for k in expected.keys() | actual.keys() if expected.get(k) != actual.get(k)
        )
        wanted_versions = {
            (sku, loc, v)
            for (sku, loc), p in reference.positions.items()
            for v in range(1, p.version + 1)
        }
    else:
        wanted_versions = {(p.sku, p.location, v) for p in stored for v in range(1, p.version + 1)}
    summary.stock_changed_lost = len(wanted_versions - set(by_version))
    summary.dead_letters = dict(
        Counter(r.header("dlq.error.code").decode() for r in events.on(topics.dead_letters))
    )
    summary.seconds = time.monotonic() - started
    record(summary)
    return summary
