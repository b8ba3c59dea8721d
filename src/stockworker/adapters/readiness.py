"""Whether a running worker can do its work now (`GET /health/ready`).

Four checks, run side by side under one deadline (`timeout`, 1.5 s), so an answer comes
within about that long even when PostgreSQL or Kafka is gone or hangs:

- `kafka`: the brokers answer (FastStream's `broker.ping`, a metadata request);
- `database`: a query answers on a pooled connection, and the server takes writes (not
  a standby in recovery);
- `partitions`: the commands subscriber holds partitions of the commands topic, or the
  group is legitimately idle for it: the group is stable and its other members hold
  every partition (more workers than partitions), so this one stands by;
- `outbox`: the oldest event still to publish is younger than `max_outbox_age_seconds`
  (the relay keeps up; parked rows wait for an operator and do not count); read on the
  same connection as `database`, so a check never holds more than one of the pool's.

Each result says why in a short `detail`, never with a DSN, a password or row data.

One evaluation runs at a time, and callers within `max_age` of the last one share it
(`current`): however many probes, scrapes and `stockworker top`s ask, the checks cost
the worker about one pooled connection for a moment a second. A scrape never waits for
them (`refresh_soon`): it shows the last evaluation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocol
from faststream.kafka import KafkaBroker

from stockworker.adapters.postgres import queries
from stockworker.adapters.postgres.errors import describe_failure
from stockworker.adapters.postgres.outbox_stats import outbox_stats
from stockworker.config.kafka import KafkaConnection

CHECKS = ("kafka", "database", "partitions", "outbox")
DEFAULT_TIMEOUT_SECONDS = 1.5
# Callers within this long of an evaluation get its answer.
DEFAULT_MAX_AGE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    checks: dict[str, CheckResult]

    @property
    def ready(self) -> bool:
        return all(result.ok for result in self.checks.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "ready" if self.ready else "unready",
            "checks": {name: result.as_json() for name, result in self.checks.items()},
        }


class _Failed(Exception):
    """A check's negative answer (its message is the detail)."""


class Readiness:
    """The worker's readiness checks. `attach_pool` once the pool exists, `stopping`
    when shutdown begins, `close` at the end (the admin client of the idle-group check)."""

    def __init__(
        self,
        broker: KafkaBroker,
        consumer: Callable[[], AIOKafkaConsumer | None],
        *,
        kafka: KafkaConnection,
        topic: str,
        group_id: str,
        max_outbox_age_seconds: float,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_age: float = DEFAULT_MAX_AGE_SECONDS,
        on_report: Callable[[ReadinessReport], None] = lambda report: None,
    ) -> None:
        self._broker = broker
        self._consumer = consumer
        self._kafka = kafka
        self._topic = topic
        self._group_id = group_id
        self._max_outbox_age = max_outbox_age_seconds
        self._timeout = timeout
        self._pool: asyncpg.Pool | None = None
        self._stopping = False
        self._admin: AIOKafkaAdminClient | None = None
        self._admin_starting = asyncio.Lock()
        self._max_age = max_age
        self._on_report = on_report
        self._last: tuple[float, ReadinessReport] | None = None
        self._running: asyncio.Task[ReadinessReport] | None = None

    def attach_pool(self, pool: asyncpg.Pool | None) -> None:
        self._pool = pool

    def stopping(self) -> None:
        self._stopping = True

    async def current(self) -> ReadinessReport:
        """The last evaluation if it is younger than `max_age`, else a new one (shared
        with whoever else asks meanwhile)."""
        last = self._last
        if last is not None and asyncio.get_running_loop().time() - last[0] < self._max_age:
            return last[1]
        return await asyncio.shield(self._evaluation())

    def refresh_soon(self) -> ReadinessReport | None:
        """The last evaluation, not waited for; starts a new one if it is stale."""
        last = self._last
        if last is None or asyncio.get_running_loop().time() - last[0] >= self._max_age:
            self._evaluation()
        return None if last is None else last[1]

    def _evaluation(self) -> asyncio.Task[ReadinessReport]:
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._evaluate(), name="readiness")
        return self._running

    async def _evaluate(self) -> ReadinessReport:
        report = await self.check()
        self._last = (asyncio.get_running_loop().time(), report)
        self._on_report(report)
        return report

    async def close(self) -> None:
        running, self._running = self._running, None
        if running is not None and not running.done():
            running.cancel()
            with contextlib.suppress(BaseException):
                await running
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()

    async def check(self) -> ReadinessReport:
        deadline = asyncio.get_running_loop().time() + self._timeout
        kafka, partitions, (database, outbox) = await asyncio.gather(
            self._bounded(self._kafka_answers, deadline),
            self._bounded(self._partitions, deadline),
            self._database_and_outbox(deadline),
        )
        return ReadinessReport(
            {"kafka": kafka, "database": database, "partitions": partitions, "outbox": outbox}
        )

    async def _bounded(self, check: Callable[[], Awaitable[str]], deadline: float) -> CheckResult:
        try:
            async with asyncio.timeout_at(deadline):
                return CheckResult(True, await check())
        except _Failed as failed:
            return CheckResult(False, str(failed))
        except TimeoutError:
            return CheckResult(False, f"no answer within {self._timeout:g} s")
        except Exception as exc:
            return CheckResult(False, _describe(exc))

    async def _database_and_outbox(self, deadline: float) -> tuple[CheckResult, CheckResult]:
        """Both on one pooled connection: readiness never takes more than one from the
        worker's batches."""
        pool = self._pool
        connection: list[asyncpg.pool.PoolConnectionProxy] = []

        async def acquire() -> str:
            assert pool is not None
            connection.append(await pool.acquire())
            return ""

        if pool is None:
            failed = CheckResult(False, "not connected yet: the worker is starting")
            return failed, failed
        acquired = await self._bounded(acquire, deadline)
        if not acquired.ok:
            return acquired, acquired
        [conn] = connection
        try:
            database = await self._bounded(lambda: self._database_answers(conn), deadline)
            if not database.ok:
                return database, CheckResult(False, "not checked: the database check failed")
            return database, await self._bounded(lambda: self._outbox(conn), deadline)
        finally:
            # A query cut short by the deadline leaves the connection busy: asyncpg ends
            # it (terminates the connection) if it cannot be reset within what is left.
            remaining = max(0.1, deadline - asyncio.get_running_loop().time())
            with contextlib.suppress(Exception):
                await pool.release(conn, timeout=remaining)

    async def _kafka_answers(self) -> str:
        if not self._broker.running:
            raise _Failed(
                "the worker is stopping"
                if self._stopping
                else "not connected yet: the worker is starting"
            )
        # ping loops until its timeout; leave it a margin inside ours.
        if not await self._broker.ping(self._timeout * 0.8):
            raise _Failed(f"the brokers did not answer within {self._timeout * 0.8:g} s")
        return "the brokers answer"

    @staticmethod
    async def _database_answers(conn: asyncpg.pool.PoolConnectionProxy) -> str:
        in_recovery = await conn.fetchval(queries.READINESS_PROBE)
        if in_recovery:
            raise _Failed("the server is a standby in recovery: it takes no writes")
        return "the database answers and takes writes"

    async def _outbox(self, conn: asyncpg.pool.PoolConnectionProxy) -> str:
        # The pool's proxy forwards every Connection method.
        stats = await outbox_stats(cast(asyncpg.Connection, conn))
        age = stats.oldest_age_seconds
        waiting = (
            f"{stats.backlog} events to publish, the oldest waiting {age:.1f} s"
            if stats.backlog
            else "nothing to publish"
        )
        parked = f"; {stats.parked} parked (`stockworker outbox parked`)" if stats.parked else ""
        if age >= self._max_outbox_age:
            raise _Failed(
                f"{waiting}: over STOCKWORKER_READY_MAX_OUTBOX_AGE_SECONDS "
                f"({self._max_outbox_age:g} s){parked}"
            )
        return waiting + parked

    async def _partitions(self) -> str:
        if self._stopping:
            raise _Failed("the worker is stopping")
        consumer = self._consumer()
        if consumer is None:
            raise _Failed("not consuming yet: the worker is starting")
        mine = sorted(tp.partition for tp in consumer.assignment() if tp.topic == self._topic)
        if mine:
            return f"{len(mine)} of {self._topic}: {', '.join(map(str, mine))}"
        topic_partitions = consumer.partitions_for_topic(self._topic)
        if not topic_partitions:
            raise _Failed(f"none assigned: {self._topic} is not known to this consumer yet")
        state, members, owned = await self._group()
        if state == "Stable" and set(topic_partitions) <= owned:
            return (
                f"none assigned, legitimately: the group's {members} members hold all "
                f"{len(topic_partitions)} partitions of {self._topic}; this worker stands by"
            )
        raise _Failed(f"none assigned (group {self._group_id} is {state}, {members} members)")

    async def _group(self) -> tuple[str, int, set[int]]:
        """The group's state, its member count and the partitions of the topic they hold."""
        async with self._admin_starting:
            if self._admin is None:
                admin = AIOKafkaAdminClient(**self._kafka.client_options())
                try:
                    await admin.start()
                except BaseException:
                    await admin.close()
                    raise
                self._admin = admin
        for response in await self._admin.describe_consumer_groups([self._group_id]):
            for group in response.groups:
                error_code, name, state, _ptype, _protocol, members = group[:6]
                if name != self._group_id:
                    continue
                if error_code:
                    raise _Failed(f"cannot describe group {self._group_id} (error {error_code})")
                owned = {
                    tp.partition
                    for member in members
                    for tp in _assigned(member[-1])
                    if tp.topic == self._topic
                }
                return str(state), len(members), owned
        return "Dead", 0, set()


def _describe(exc: Exception) -> str:
    """The failure's kind and the system's words for it (no address, DSN or data)."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return describe_failure(exc)


def _assigned(raw: bytes) -> list[Any]:
    """A member's partitions, decoded from its assignment (empty while it is unknown)."""
    if not raw:
        return []
    return list(ConsumerProtocol.ASSIGNMENT.decode(raw).partitions())
