"""/metrics: the Prometheus text exposition of everything the worker measures.

`render_metrics()` renders, in this order: the instruments (instruments.py and
FastStream's middleware), from every process's files in multiprocess mode (the relay's
child process included) or from this process's registry otherwise; then the scrape-time
collectors installed here (lag, outbox, pool: collectors.py); then readiness, once the
health app has recorded an evaluation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from stockworker.adapters.metrics import multiprocess
from stockworker.adapters.metrics.instruments import instruments

# The scrape-time collectors of this process (bootstrap installs them with the runtime).
_SCRAPED = CollectorRegistry(auto_describe=False)


def install(*collectors: Collector) -> None:
    for collector in collectors:
        _SCRAPED.register(collector)


def uninstall(*collectors: Collector) -> None:
    for collector in collectors:
        with contextlib.suppress(KeyError):
            _SCRAPED.unregister(collector)


def check_multiprocess_mode() -> None:
    """A directory named but the instruments made before it was: the relay's child would
    write files this process never reads. A bug of the entry point."""
    if multiprocess.directory() is not None and not instruments().multiprocess:
        raise RuntimeError(
            f"{multiprocess.ENV} is set but the metrics were made before it was: set it "
            "before the first (entrypoints/cli.py does)"
        )


class _Readiness(Collector):
    """stockworker_ready and stockworker_ready_check{check}, as last recorded."""

    def __init__(self) -> None:
        self.checks: dict[str, bool] | None = None

    def collect(self) -> Iterable[GaugeMetricFamily]:
        checks = self.checks
        if checks is None:
            return
        yield GaugeMetricFamily(
            "stockworker_ready",
            "1 when the last readiness evaluation (/health/ready) was ready, else 0",
            value=1 if all(checks.values()) else 0,
        )
        each = GaugeMetricFamily(
            "stockworker_ready_check",
            "1 when the check passed at the last readiness evaluation, else 0",
            labels=["check"],
        )
        for name, ok in sorted(checks.items()):
            each.add_metric([name], 1 if ok else 0)
        yield each


_READINESS = _Readiness()
_SCRAPED.register(_READINESS)


def record_readiness(checks: Mapping[str, bool]) -> None:
    """The health app's last readiness evaluation, check by check (True = passed)."""
    _READINESS.checks = dict(checks)


def render_metrics() -> tuple[bytes, str]:
    """The exposition body and its content type."""
    made = instruments()
    directory = multiprocess.directory()
    if directory is not None and made.multiprocess:
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(made.registry)
    # The classic text format (0.0.4), which every Prometheus reads: the names are all
    # plain ones, so the body is the same as 1.0.0's.
    return body + generate_latest(_SCRAPED), CONTENT_TYPE_PLAIN_0_0_4
