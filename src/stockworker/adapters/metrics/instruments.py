"""The worker's own Prometheus instruments (names: docs, "Metrics").

Made on first use (`instruments()`), not at import: in multiprocess mode (the worker
sets PROMETHEUS_MULTIPROC_DIR, see multiprocess.py) prometheus_client decides where a
metric keeps its value when the metric is made, and modules that import this package
are imported before the worker's entry point names the directory.

They live in their own registry, not prometheus_client's global one. In multiprocess
mode their values are kept in per-process files and exposition reads those; otherwise
the registry is rendered. The scrape-time gauges (lag, outbox, pool) are collectors:
see collectors.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    values,
)


@dataclass(frozen=True, slots=True)
class Instruments:
    registry: CollectorRegistry
    # Whether their values are kept in PROMETHEUS_MULTIPROC_DIR's files.
    multiprocess: bool
    commands: Counter
    batch_size: Histogram
    batch_seconds: Histogram
    retries: Counter
    events_published: Counter
    relay_leader: Gauge
    sweep_rows: Counter
    sweeps: Counter


_made: Instruments | None = None


def instruments() -> Instruments:
    """The instruments, made on the first call."""
    global _made
    if _made is None:
        _made = _make()
    return _made


def _make() -> Instruments:
    # No `_created` series: multiprocess mode has none, so neither has the single process.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=True)
    return Instruments(
        registry=registry,
        multiprocess=bool(getattr(values.ValueClass, "_multiprocess", False)),
        commands=Counter(
            "stockworker_commands",
            "Commands from the commands topic by type, outcome (accepted, rejected, "
            "duplicate, dead_lettered) and code (the rejection's reason code or the dead "
            "letter's code)",
            ["type", "outcome", "code"],
            registry=registry,
        ),
        batch_size=Histogram(
            "stockworker_batch_size",
            "Records per batch handed to the service",
            buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
            registry=registry,
        ),
        batch_seconds=Histogram(
            "stockworker_batch_seconds",
            "Seconds to apply one batch, its transactions included",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        ),
        retries=Counter(
            "stockworker_retries",
            "Transient failures retried after a pause, by cause",
            ["cause"],
            registry=registry,
        ),
        events_published=Counter(
            "stockworker_events_published",
            "Messages the outbox relay had acknowledged by the broker, by topic",
            ["topic"],
            registry=registry,
        ),
        relay_leader=Gauge(
            "stockworker_relay_leader",
            "1 while this worker's outbox relay (in the worker or its child process) leads",
            registry=registry,
            # Summed over live processes; a dead child's value goes with mark_process_dead.
            multiprocess_mode="livesum",
        ),
        sweep_rows=Counter(
            "stockworker_sweep_rows",
            "Rows dealt with by sweeps (reservations expired, inbox and outbox rows deleted)",
            ["sweep"],
            registry=registry,
        ),
        sweeps=Counter(
            "stockworker_sweeps",
            "Sweep rounds this worker ran, by sweep",
            ["sweep"],
            registry=registry,
        ),
    )


def __getattr__(name: str) -> CollectorRegistry:
    """`instruments.REGISTRY`: the instruments' registry (made on first use)."""
    if name == "REGISTRY":
        return instruments().registry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
