"""prometheus_client's multiprocess mode, for the relay's child process.

The worker runs its outbox relay as a child process (adapters/relay_process.py); the
child's counters and gauges must reach the worker's /metrics. prometheus_client does
this with one file per process and metric kind in the directory named by
PROMETHEUS_MULTIPROC_DIR, read back at scrape time. The directory must be set before
prometheus_client is first imported (it chooses how to store values then), so the
worker's entry point calls `prepare()` first thing; the child inherits the variable.

This module imports nothing of prometheus_client at import time.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from stockworker.config import ConfigurationError

log = logging.getLogger(__name__)

ENV = "PROMETHEUS_MULTIPROC_DIR"
_LEGACY_ENV = "prometheus_multiproc_dir"


def directory() -> Path | None:
    """The multiprocess directory in use, if any."""
    value = os.environ.get(ENV) or os.environ.get(_LEGACY_ENV)
    return Path(value) if value else None


class MultiprocessDirectory:
    """The directory this process set up: a fresh private one, removed on `close()`,
    or the one the operator named (kept; it must be emptied between runs)."""

    def __init__(self, path: Path, owned: bool) -> None:
        self.path = path
        self.owned = owned

    def close(self) -> None:
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)


def prepare() -> MultiprocessDirectory:
    """Before prometheus_client is imported: use the operator's PROMETHEUS_MULTIPROC_DIR,
    or make a fresh private directory and name it in the environment (children inherit
    it). A directory the operator named must exist and be writable."""
    named = directory()
    if named is not None:
        if not named.is_dir() or not os.access(named, os.W_OK | os.X_OK):
            raise ConfigurationError(ENV, f"{named} is not a writable directory")
        _refresh_value_class()
        return MultiprocessDirectory(named, owned=False)
    path = Path(tempfile.mkdtemp(prefix="stockworker-metrics-"))
    os.environ[ENV] = str(path)
    _refresh_value_class()
    return MultiprocessDirectory(path, owned=True)


def _refresh_value_class() -> None:
    """prometheus_client reads the variable when it is first imported, and a metric takes
    the value class then chosen when it is made: if it was imported already (by a module
    the command line loads, with no metric made yet: ours are made on first use), let it
    choose again."""
    if "prometheus_client.values" in sys.modules:
        from prometheus_client import values

        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def process_exited(pid: int) -> None:
    """A child that reported metrics has exited: its live gauges (relay leadership) go;
    its counters stay, so totals never go back."""
    path = directory()
    if path is None:
        return
    from prometheus_client import multiprocess

    try:
        multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
    except OSError as exc:  # the directory went away: nothing left to mark
        log.warning("metrics: cannot drop the gauges of process %d: %s", pid, exc)
