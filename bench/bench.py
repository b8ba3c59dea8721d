"""End-to-end benchmark: Kafka -> worker -> PostgreSQL -> outbox relay -> Kafka.

    .venv/bin/python bench/bench.py --commands 50000            # flood: throughput
    .venv/bin/python bench/bench.py --commands 20000 --rate 2000  # paced: latency
    .venv/bin/python bench/bench.py --commands 60000 --ceiling    # and the machine's ceiling
    .venv/bin/python bench/bench.py --commands 1000000 --rss-every 30 --timeout 900  # memory

Uses DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS (scripts/services.sh env), a fresh database
and fresh topics per run. Commands are built from the contract's models and published
with the typed client (stockworker.client.StockClient), encoded before the clock starts.
Prints commands/s from the first command published to the last result observed, how
long the bench's producer took to publish them, command-to-result latency percentiles,
peak memory, the CPU per command of every process (worker, relay, PostgreSQL, Kafka, the
bench's clients) and, with --ceiling, what the database path and Kafka do alone
(bench/ceiling.py). Every process it starts serves /metrics on a free port of its own
(printed at the start).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import uvloop
from aiokafka import AIOKafkaConsumer
from pydantic import TypeAdapter

from stockworker.adapters.kafka.admin import ensure_topics
from stockworker.adapters.postgres.migrations import migrate
from stockworker.client import EncodedCommand, StockClient, encode_command
from stockworker.config import Settings
from stockworker.contract.commands import AnyCommand, Command
from stockworker.service.topics import Topics

# Run as `python bench/bench.py`, Python puts bench/ on the path, not the repository root
# that the test helpers (creating and dropping a database) are imported from.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.databases import create_database, drop_database
from tests.support.kafka_io import delete_topics

from bench.ceiling import database_path, kafka_alone

_COMMAND: TypeAdapter[AnyCommand] = TypeAdapter(Command)

# The producer's batching: a few milliseconds of linger keep its requests (and the
# broker's work per command) few while the bench floods.
LINGER_MS = 5


def make_commands(
    n: int, skus: int, seed: int, sku_prefix: str = "BENCH", tracked_share: float = 0.0
) -> list[AnyCommand]:
    """A warehouse-like mix over many SKUs: receipts (each its own unplanned PO line),
    reservations and their release, picks (some from a reservation), ships, adjustments;
    built as the contract's models (as an upstream publisher using StockClient would).

    With `tracked_share`, that share of the SKUs is tracked, half by serial number and
    half by lot (configured first): their receipts and adjustments name serials or lots
    and their ships name the serials picked; lots are picked first-expiry-first-out."""
    rng = random.Random(seed)
    now = datetime.now(UTC).isoformat()
    open_reservations: dict[str, list[str]] = {}
    out = []
    tracking = {
        f"{sku_prefix}-{k:05d}": "serial" if k % 2 else "lot"
        for k in range(round(skus * tracked_share))
    }
    units = _TrackedUnits()
    for sku, tracked_as in tracking.items():
        item = {"type": "ConfigureItem", "sku": sku, "name": sku, "tracking": tracked_as}
        out.append(
            _COMMAND.validate_python({**item, "command_id": str(uuid.uuid4()), "occurred_at": now})
        )
    for i in range(n):
        sku = f"{sku_prefix}-{rng.randrange(skus):05d}"
        base = {"command_id": str(uuid.uuid4()), "occurred_at": now, "sku": sku, "location": "WH1"}
        held = open_reservations.setdefault(sku, [])
        roll = rng.random()
        body: dict[str, Any]
        if roll < 0.35:
            body = {
                "type": "ReceivePOItem",
                "po_number": f"PO-{i}",
                "po_line": 1,
                "quantity": rng.randint(1, 50),
                "unit_cost": "2.5",
            }
        elif roll < 0.45:
            held.append(f"R-{i}")
            body = {
                "type": "ReserveStock",
                "reservation_id": held[-1],
                "quantity": rng.randint(1, 3),
                "order_ref": "SO-1",
                "allow_backorder": rng.random() < 0.2,
            }
        elif roll < 0.50 and held:
            body = {"type": "ReleaseReservation", "reservation_id": held.pop(0)}
        elif roll < 0.70:
            body = {"type": "PickStock", "quantity": rng.randint(1, 5), "order_ref": "SO-1"}
            if held and rng.random() < 0.3:
                body["reservation_id"] = held.pop(0)
        elif roll < 0.90:
            body = {"type": "ShipStock", "quantity": rng.randint(1, 3), "order_ref": "SO-1"}
        else:
            body = {"type": "AdjustInventory", "delta": rng.choice([-1, 1, 2]), "reason": "COUNT"}
        kind = tracking.get(sku)
        if kind == "serial":
            body = units.serials(sku, body, i)
        elif kind == "lot":
            body = units.lot(body, i)
        out.append(_COMMAND.validate_python({**body, **base}))
    return out


class _TrackedUnits:
    """What the bench believes a serialised SKU holds (the lowest free serials are picked,
    as the worker picks them), to name serials as a publisher would."""

    def __init__(self) -> None:
        self._free: dict[str, list[str]] = {}
        self._picked: dict[str, list[str]] = {}

    def serials(self, sku: str, body: dict[str, Any], i: int) -> dict[str, Any]:
        free = self._free.setdefault(sku, [])
        picked = self._picked.setdefault(sku, [])
        kind = body["type"]
        if kind == "ReceivePOItem" or (kind == "AdjustInventory" and body["delta"] > 0):
            count = min(body.get("quantity", body.get("delta", 1)), 5)
            new = [f"{sku}-{i:07d}-{n}" for n in range(count)]
            free.extend(new)
            free.sort()
            key = "quantity" if kind == "ReceivePOItem" else "delta"
            return {**body, key: count, "serials": new}
        if kind == "AdjustInventory":
            return (
                {**body, "delta": -1, "serials": [free.pop()]}
                if free
                else {**body, "delta": 1, "serials": [f"{sku}-{i:07d}-a"]}
            )
        if kind == "PickStock":
            count = min(body["quantity"], len(free)) or 1
            taken, free[:] = free[:count], free[count:]
            picked.extend(taken)
            return {**body, "quantity": count}
        if kind == "ShipStock":
            count = min(body["quantity"], len(picked)) or 1
            shipped, picked[:] = picked[:count], picked[count:]
            return {**body, "quantity": count, "serials": shipped or [f"{sku}-none"]}
        return body

    @staticmethod
    def lot(body: dict[str, Any], i: int) -> dict[str, Any]:
        kind = body["type"]
        if kind in ("ReceivePOItem", "AdjustInventory"):
            lot = i % 7
            return {**body, "lot": f"LOT-{lot}", "expires_on": f"2027-0{lot + 1}-01"}
        return body


def free_ports(n: int) -> list[int]:
    """`n` distinct ports free on 127.0.0.1 now (all held open until all are chosen)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def spawn(
    roles: list[str], env: dict[str, str], logs: Path
) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    """Start the processes, each serving its HTTP endpoints (/metrics, health) on a free
    port of its own on 127.0.0.1, so that parallel workers never collide."""
    processes = []
    ports = free_ports(len(roles))
    for i, (role, port) in enumerate(zip(roles, ports, strict=True)):
        own = {**env, "STOCKWORKER_HTTP_HOST": "127.0.0.1", "STOCKWORKER_HTTP_PORT": str(port)}
        with open(logs / f"{role}-{i}.log", "wb") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "stockworker", role],
                    env=own,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    return processes, ports


def check_running(processes: list[subprocess.Popen[bytes]], logs: Path) -> None:
    """Stop the bench with a clear line when a process it started has exited."""
    for p in processes:
        if p.poll() is not None:
            raise SystemExit(f"a process the bench started exited ({p.returncode}): see {logs}")


def _status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib(pid: int) -> float:
    return _status_mib(pid, "VmHWM:")


def rss_mib(pid: int) -> float:
    return _status_mib(pid, "VmRSS:")


async def sample_rss(pids: dict[str, int], every: float, samples: dict[str, list[float]]) -> None:
    """Every `every` seconds from the `every`-th on, each process's resident memory now:
    flat samples over a long run show that memory does not grow with the commands."""
    while True:
        await asyncio.sleep(every)
        for role, pid in pids.items():
            with contextlib.suppress(OSError):
                samples.setdefault(role, []).append(rss_mib(pid))


@dataclass(frozen=True)
class ProcessStat:
    """One process as /proc/PID/stat shows it: its command name, parent and CPU so far."""

    pid: int
    name: str
    parent: int
    cpu_seconds: float


def processes() -> list[ProcessStat]:
    """Every process running now (Linux /proc); those that end meanwhile are left out."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        name = text[text.index("(") + 1 : text.rindex(")")]
        found.append(ProcessStat(int(stat.parent.name), name, int(fields[1]), cpu))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    return sum(p.cpu_seconds for p in processes() if p.pid == pid)


def children_of(pid: int) -> list[int]:
    """The processes `pid` started (a worker's relay runs as its child by default)."""
    return [p.pid for p in processes() if p.parent == pid]


def children_cpu(pid: int) -> float:
    return sum(p.cpu_seconds for p in processes() if p.parent == pid)


def cpu_of_command(name: str) -> float:
    """CPU seconds used so far by every process of that name (PostgreSQL's backends and
    background processes are all `postgres`; Kafka's broker is `java`)."""
    return sum(p.cpu_seconds for p in processes() if p.name == name)


def services_cpu() -> dict[str, float]:
    return {"PostgreSQL": cpu_of_command("postgres"), "Kafka": cpu_of_command("java")}


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1] if len(values) > 1 else values[0]


async def run(args: argparse.Namespace) -> None:
    settings = Settings.from_env()
    ceilings: list[str] = []
    database_rate = 0.0
    if args.ceiling:
        ceiling_mix = make_commands(args.commands // 2, args.skus, args.seed + 2, "CEILING")
        line, database_rate = await database_path(
            settings, ceiling_mix, args.batch_size, cpu_of_command
        )
        ceilings.append(line)
        ceilings.append(await kafka_alone(settings, args.commands * 2, cpu_of_command))
    topics = Topics(prefix=f"bench-{uuid.uuid4().hex[:8]}.")
    await ensure_topics(settings.kafka_bootstrap_servers, topics, partitions=args.partitions)
    database_name = f"stockworker_bench_{uuid.uuid4().hex[:8]}"
    database_url = await create_database(settings.database_url, database_name)
    await migrate(database_url)
    logs = Path(tempfile.mkdtemp(prefix="stockworker-bench-"))
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "STOCKWORKER_TOPIC_PREFIX": topics.prefix,
        "STOCKWORKER_GROUP_ID": f"bench-{uuid.uuid4().hex[:6]}",
        "STOCKWORKER_BATCH_SIZE": str(args.batch_size),
        "STOCKWORKER_LOG_LEVEL": "WARNING",
    }
    roles = ["worker"] * args.workers
    if args.relay_process:
        env["STOCKWORKER_RUN_RELAY"] = "false"
        roles.append("relay")
    workers, ports = spawn(roles, env, logs)
    print(
        "metrics:         "
        + ", ".join(
            f"{role} http://127.0.0.1:{port}/metrics"
            for role, port in zip(roles, ports, strict=True)
        )
        + f" (logs in {logs})"
    )
    # Encoded before the clock starts (command id as the results carry it, record), so
    # that the bench's own CPU, which competes with the worker on this machine, stays small.
    commands = [
        (str(c.command_id), encode_command(c))
        for c in make_commands(args.commands, args.skus, args.seed, tracked_share=args.tracked)
    ]
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    clients = contextlib.AsyncExitStack()
    consumer = AIOKafkaConsumer(
        topics.results,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        max_poll_records=10000,
    )
    try:
        client = await clients.enter_async_context(
            StockClient(settings.kafka(), topics.prefix, linger_ms=LINGER_MS)
        )
        await consumer.start()
        clients.push_async_callback(consumer.stop)
        # Warm-up: the same mix on other SKUs, every result awaited, so that start-up
        # (first statements prepared, first sends to each partition, first fetches from
        # each partition) is not measured: it cost the first second of a paced run ~600 ms.
        warm = make_commands(args.warmup, args.skus, args.seed + 1, sku_prefix="WARM")
        waiting = {str(command.command_id) for command in warm}
        await client.send_many(warm)
        warm_deadline = time.perf_counter() + args.timeout
        while waiting:
            batch = await consumer.getmany(timeout_ms=500)
            waiting -= {json.loads(r.value)["command_id"] for rs in batch.values() for r in rs}
            if not batch:
                check_running(workers, logs)
                if time.perf_counter() > warm_deadline:
                    raise SystemExit(f"warm-up: {len(waiting)} results missing (logs in {logs})")

        # Paced in ticks of at least 2 ms, each command stamped when it is handed to the
        # producer; StockClient.send_many hands each over without waiting for the broker.
        async def paced() -> AsyncIterator[EncodedCommand]:
            interval = 1 / args.rate if args.rate else 0.0
            started = time.perf_counter()
            for i, (command_id, command) in enumerate(commands):
                if interval:
                    delay = started + i * interval - time.perf_counter()
                    if delay > 0.002:
                        await asyncio.sleep(delay)
                sent_at[command_id] = time.perf_counter()
                yield command

        published = 0.0

        async def feed() -> None:
            nonlocal published
            await client.send_many(paced())
            published = time.perf_counter()

        rss: dict[str, list[float]] = {}
        sampler = None
        if args.rss_every:
            watched = {
                f"{role} {i}": w.pid for i, (role, w) in enumerate(zip(roles, workers, strict=True))
            }
            watched |= {
                f"relay of worker {i}": child
                for i, w in enumerate(workers)
                for child in children_of(w.pid)
            }
            sampler = asyncio.create_task(sample_rss(watched, args.rss_every, rss))
        cpu_before = [cpu_seconds(w.pid) for w in workers]
        children_before = [children_cpu(w.pid) for w in workers]
        services_before = services_cpu()
        bench_before = time.process_time()
        first = time.perf_counter()
        feeder = asyncio.create_task(feed())
        seen = 0
        last = first
        deadline = first + args.timeout
        while seen < len(commands) and time.perf_counter() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            if not batch:
                check_running(workers, logs)
            now = time.perf_counter()
            for records in batch.values():
                for r in records:
                    cid = json.loads(r.value)["command_id"]
                    if cid in sent_at:
                        latencies.append(now - sent_at.pop(cid))
                        seen += 1
                        last = now
        await feeder
        if sampler:
            sampler.cancel()
        elapsed = last - first
        memory = [peak_rss_mib(w.pid) for w in workers]
        cpu = [cpu_seconds(w.pid) - b for w, b in zip(workers, cpu_before, strict=True)]
        children = [children_cpu(w.pid) - b for w, b in zip(workers, children_before, strict=True)]
        children_rss = [
            max((peak_rss_mib(c) for c in children_of(w.pid)), default=0.0) for w in workers
        ]
        others = {k: v - services_before[k] for k, v in services_cpu().items()}
        others["bench (producer, consumer)"] = time.process_time() - bench_before
    finally:
        await clients.aclose()
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
        try:
            await drop_database(settings.database_url, database_name)
        except asyncpg.PostgresError as exc:
            # Autovacuum (a superuser's session) may still be on a large run's tables.
            print(f"left database {database_name} behind: {exc}", file=sys.stderr)
        # Thousands of leftover partitions would slow every broker restart.
        await delete_topics(settings.kafka_bootstrap_servers, topics)

    mode = f"paced at {args.rate}/s" if args.rate else "flood"
    print(
        f"commands:        {len(commands)} ({mode}), {args.skus} SKUs, "
        f"{args.partitions} partitions, {args.workers} worker(s), batch {args.batch_size}"
    )
    print(f"results seen:    {seen}")
    publishing = published - first
    print(
        f"published in:    {publishing:.2f} s by the bench's producer "
        f"(StockClient.send_many, linger {LINGER_MS} ms; "
        f"{len(commands) / max(publishing, 1e-9):,.0f} commands/s)"
    )
    if not seen:
        raise SystemExit("no results came back: see the worker's log above")
    print(f"throughput:      {seen / elapsed:,.0f} commands/s end to end ({elapsed:.2f} s)")
    ms = sorted(x * 1000 for x in latencies)
    print(
        f"latency (ms):    p50 {percentile(ms, 0.5):.1f}  p90 {percentile(ms, 0.9):.1f}  "
        f"p99 {percentile(ms, 0.99):.1f}  max {ms[-1]:.1f}"
    )
    peaks = ", ".join(f"{role} {mib:.0f} MiB" for role, mib in zip(roles, memory, strict=True))
    peaks += "".join(f", its relay {mib:.0f} MiB" for mib in children_rss if mib)
    print(f"peak RSS:        {peaks}")
    for role, values in rss.items():
        print(
            f"RSS over the run: {role} {min(values):.1f} to {max(values):.1f} MiB, every "
            f"{args.rss_every:g} s: " + " ".join(f"{v:.0f}" for v in values)
        )
    # Everything the worker processes did meanwhile (relay, expiry and retention included).
    per_command = ", ".join(
        f"{role} {seconds / max(seen, 1) * 1e6:.0f} µs"
        for role, seconds in zip(roles, cpu, strict=True)
    )
    per_command += "".join(
        f", its relay {seconds / max(seen, 1) * 1e6:.0f} µs" for seconds in children if seconds
    )
    print(f"CPU per command: {per_command}")
    # The rest of the machine's work for the same commands (on a machine of its own,
    # PostgreSQL and Kafka run elsewhere; the bench's own clients stand for upstream
    # publishers and downstream subscribers).
    print(
        "  elsewhere:     "
        + ", ".join(f"{k} {v / max(seen, 1) * 1e6:.0f} µs" for k, v in others.items())
    )
    busy = (sum(cpu) + sum(children) + sum(others.values())) / elapsed / (os.cpu_count() or 1)
    print(f"  machine:       {busy:.0%} of {os.cpu_count()} cores busy on average")
    for line in ceilings:
        print(f"ceiling:         {line}")
    if database_rate:
        print(f"end to end:      {seen / elapsed / database_rate:.0%} of the database path alone")
    if seen < len(commands):
        print(f"INCOMPLETE: {len(commands) - seen} results missing (logs in {logs})")
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--commands", type=int, default=30000)
    parser.add_argument("--skus", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="commands/s; 0 = as fast as possible"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--warmup", type=int, default=2000, help="commands applied before measuring (min 1)"
    )
    parser.add_argument(
        "--relay-process", action="store_true", help="run the outbox relay as its own process"
    )
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="first measure the database path and Kafka alone (bench/ceiling.py)",
    )
    parser.add_argument(
        "--tracked",
        type=float,
        default=0.0,
        help="share of SKUs tracked (half by serial number, half by lot); default none",
    )
    parser.add_argument(
        "--rss-every",
        type=float,
        default=0.0,
        help="sample each process's resident memory every SECONDS and print the range",
    )
    parser.add_argument("--timeout", type=float, default=300.0)
    # On uvloop, as the worker and relay run (entrypoints/runner.py).
    uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
