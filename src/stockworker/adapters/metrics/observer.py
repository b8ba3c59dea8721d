"""The Observer port (service/observation.py) on Prometheus instruments.

Called per batch and per round, never per command: a batch's outcome counts arrive
already counted (BatchReport.outcomes), a handful of increments a batch.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec

import asyncpg
from aiokafka.errors import KafkaError

from stockworker.adapters.metrics.instruments import instruments
from stockworker.adapters.postgres.errors import DatabaseConnectionLost
from stockworker.service.batch_state import BatchReport, OutcomeKey

# The retry causes (the `cause` label), a bounded set.
_BY_SQLSTATE = {
    "40001": "database_conflict",  # serialization failure
    "40P01": "database_conflict",  # deadlock
    "53200": "database_lock_table_full",
    "42501": "database_privilege",
}
_BY_SQLSTATE_CLASS = {
    "08": "database_connection",
    "53": "database_resources",
    "57": "database_unavailable",  # shut down, starting up, cancelled
    "22": "database_data",  # permanent, but a sweep's next round retries it
    "23": "database_data",
}


def retry_cause(failure: BaseException) -> str:
    """A short, bounded name for the kind of a transient failure."""
    if isinstance(failure, asyncpg.PostgresError):
        state = str(failure.sqlstate or "")
        return _BY_SQLSTATE.get(state) or _BY_SQLSTATE_CLASS.get(state[:2], "database_error")
    if isinstance(failure, DatabaseConnectionLost | asyncpg.InterfaceError):
        return "database_connection"
    if isinstance(failure, KafkaError):
        return "kafka"
    if isinstance(failure, TimeoutError):
        return "timeout"
    if isinstance(failure, ssl.SSLError):
        return "tls"
    if isinstance(failure, OSError):  # ConnectionError included
        return "connection"
    return "unexpected"


_P = ParamSpec("_P")
log = logging.getLogger(__name__)


def _never_raises(method: Callable[_P, None]) -> Callable[_P, None]:
    """Metrics must never change what happens to a command: an update that fails (a
    multiprocess file that cannot grow on a full disk) is logged, once, and dropped."""
    failed = False

    @functools.wraps(method)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> None:
        nonlocal failed
        try:
            method(*args, **kwargs)
        except Exception as exc:
            if not failed:
                log.warning("metrics: an update failed and is dropped (%r)", exc)
            failed = True

    return guarded


class PrometheusObserver:
    """Feeds the instruments in instruments.py. No method raises (`_never_raises`)."""

    def __init__(self) -> None:
        self._instruments = instruments()
        # Label lookups are the costly part of an update: one per key, once.
        self._commands: dict[OutcomeKey, Any] = {}
        self._published: dict[str, Any] = {}

    @_never_raises
    def batch_applied(self, report: BatchReport, records: int, seconds: float) -> None:
        commands = self._commands
        for key, count in report.outcomes.items():
            child = commands.get(key)
            if child is None:
                child = commands[key] = self._instruments.commands.labels(*key)
            child.inc(count)
        self._instruments.batch_size.observe(records)
        self._instruments.batch_seconds.observe(seconds)

    @_never_raises
    def retried(self, failure: BaseException) -> None:
        self._instruments.retries.labels(retry_cause(failure)).inc()

    @_never_raises
    def events_published(self, by_topic: Mapping[str, int]) -> None:
        published = self._published
        for topic, count in by_topic.items():
            child = published.get(topic)
            if child is None:
                child = published[topic] = self._instruments.events_published.labels(topic)
            child.inc(count)

    @_never_raises
    def relay_leading(self, leading: bool) -> None:
        self._instruments.relay_leader.set(1 if leading else 0)

    @_never_raises
    def swept(self, sweep: str, rows: int) -> None:
        self._instruments.sweeps.labels(sweep).inc()
        self._instruments.sweep_rows.labels(sweep).inc(rows)
