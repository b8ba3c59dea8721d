"""Gauges read at scrape time from outside the process: consumer lag (Kafka), the
outbox (PostgreSQL), the database pool.

prometheus_client collects synchronously, and /metrics (render_metrics()) is a plain
function the health app calls: a scrape must never wait on Kafka or PostgreSQL, nor
fail because either is down. So the two sources that need I/O are read by a background
task (`MetricsRefresher`, every REFRESH_SECONDS, about a second) and a scrape renders
what the last read found: at most that old. A read that fails drops that source's
series until the next succeeds (Prometheus sees them absent), and is logged once.
Cost: per worker and second, one outbox statement and one ListOffsets plus one
OffsetFetch request, whether or not anybody scrapes. The pool's figures are in memory
and read at the scrape itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Protocol

import asyncpg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stockworker.adapters.kafka.consumer_groups import ConsumerGroups
from stockworker.adapters.postgres.outbox_stats import OutboxStats, outbox_stats
from stockworker.config.kafka import KafkaConnection
from stockworker.service.loops import Stop

log = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0
# A source that does not answer within this long counts as failed for this round.
READ_TIMEOUT_SECONDS = 5.0


class RefreshedCollector(Collector, Protocol):
    async def refresh(self) -> None:
        """Read the source now; never raises."""

    async def close(self) -> None: ...


class _Reading:
    """Says once when a source starts failing, and when it answers again."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._failing = False

    def failed(self, exc: BaseException) -> None:
        if not self._failing:
            log.warning("metrics: cannot read %s (%s: %s)", self._what, type(exc).__name__, exc)
        self._failing = True

    def succeeded(self) -> None:
        if self._failing:
            log.info("metrics: %s answers again", self._what)
        self._failing = False


class PoolCollector(Collector):
    """stockworker_db_pool_size and _in_use, from the pool's own counts."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def collect(self) -> Iterable[GaugeMetricFamily]:
        size = self._pool.get_size()
        yield GaugeMetricFamily(
            "stockworker_db_pool_size", "Connections the database pool holds", value=size
        )
        yield GaugeMetricFamily(
            "stockworker_db_pool_in_use",
            "Connections of the pool in use",
            value=size - self._pool.get_idle_size(),
        )


class OutboxCollector(Collector):
    """stockworker_outbox_backlog, _oldest_age_seconds and _parked (outbox_stats)."""

    def __init__(self, pool: asyncpg.Pool | asyncpg.Connection) -> None:
        self._pool = pool
        self._stats: OutboxStats | None = None
        self._reading = _Reading("the outbox")

    async def refresh(self) -> None:
        try:
            self._stats = await asyncio.wait_for(outbox_stats(self._pool), READ_TIMEOUT_SECONDS)
        except Exception as exc:
            self._stats = None
            self._reading.failed(exc)
        else:
            self._reading.succeeded()

    async def close(self) -> None:
        pass

    def collect(self) -> Iterable[GaugeMetricFamily]:
        stats = self._stats
        if stats is None:
            return
        yield GaugeMetricFamily(
            "stockworker_outbox_backlog",
            "Outbox rows still to publish (not parked)",
            value=stats.backlog,
        )
        yield GaugeMetricFamily(
            "stockworker_outbox_oldest_age_seconds",
            "Age of the oldest outbox row still to publish; 0 when there is none",
            value=stats.oldest_age_seconds,
        )
        yield GaugeMetricFamily(
            "stockworker_outbox_parked",
            "Outbox rows the broker refused, set aside for an operator",
            value=stats.parked,
        )


class ConsumerLagCollector(Collector):
    """stockworker_consumer_lag{topic,partition}: for every partition of the commands
    topic (not only this member's), its end offset minus the group's committed offset,
    clamped at 0; a partition the group never committed counts from its first record."""

    def __init__(self, kafka: KafkaConnection | str, group_id: str, topic: str) -> None:
        self._kafka = kafka
        self._group_id = group_id
        self._topic = topic
        self._groups: ConsumerGroups | None = None
        self._lag: dict[int, int] | None = None
        self._reading = _Reading(f"the lag of group {group_id!r} on {topic}")

    async def read(self) -> dict[int, int]:
        """Per partition, the lag now (raises what Kafka raises)."""
        if self._groups is None:
            groups = ConsumerGroups(self._kafka)
            try:
                await groups.__aenter__()
            except BaseException:
                # Failed or cancelled (refresh's timeout) part way: self._groups is not
                # set, so _close_client would not see it; close what was started now.
                await groups.__aexit__()
                raise
            self._groups = groups
        committed = await self._groups.committed(self._group_id, self._topic)
        bounds = await self._groups.bounds(self._topic)
        lag: dict[int, int] = {}
        for partition, b in sorted(bounds.items()):
            at = committed.get(partition)
            lag[partition] = max(0, b.end - (b.beginning if at is None else at))
        return lag

    async def refresh(self) -> None:
        try:
            self._lag = await asyncio.wait_for(self.read(), READ_TIMEOUT_SECONDS)
        except Exception as exc:
            self._lag = None
            self._reading.failed(exc)
            await self._close_client()  # a fresh client next round
        else:
            self._reading.succeeded()

    async def _close_client(self) -> None:
        groups, self._groups = self._groups, None
        if groups is not None:
            try:
                await groups.__aexit__()
            except Exception as exc:
                log.debug("metrics: closing the lag client failed: %r", exc)

    async def close(self) -> None:
        await self._close_client()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        lag = self._lag
        if lag is None:
            return
        family = GaugeMetricFamily(
            "stockworker_consumer_lag",
            "End offset minus the worker group's committed offset, clamped at 0",
            labels=["topic", "partition"],
        )
        for partition, value in lag.items():
            family.add_metric([self._topic, str(partition)], value)
        yield family


class MetricsRefresher:
    """A background part: refreshes the collectors every `interval_seconds`."""

    def __init__(
        self,
        collectors: Sequence[RefreshedCollector],
        interval_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self.collectors = tuple(collectors)
        self._interval = interval_seconds
        self._stop = Stop()

    async def refresh(self) -> None:
        await asyncio.gather(*(c.refresh() for c in self.collectors))

    async def run(self) -> None:
        try:
            while not self._stop.is_set():
                await self.refresh()
                await self._stop.wait(self._interval)
        finally:
            for collector in self.collectors:
                await collector.close()

    def stop(self) -> None:
        self._stop.set()
