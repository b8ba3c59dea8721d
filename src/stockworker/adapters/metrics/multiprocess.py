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
import re
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
    or the one the operator named (kept; `prepare()` clears what an earlier run left)."""

    def __init__(self, path: Path, owned: bool) -> None:
        self.path = path
        self.owned = owned

    def close(self) -> None:
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)


def prepare() -> MultiprocessDirectory:
    """Before prometheus_client is imported: use the operator's PROMETHEUS_MULTIPROC_DIR,
    or make a fresh private directory and name it in the environment (children inherit
    it). A directory the operator named must exist and be writable; prometheus_client's
    files an earlier run left in it are removed (see `_clear_earlier_run`)."""
    named = directory()
    if named is not None:
        if not named.is_dir() or not os.access(named, os.W_OK | os.X_OK):
            raise ConfigurationError(ENV, f"{named} is not a writable directory")
        _clear_earlier_run(named)
        _refresh_value_class()
        return MultiprocessDirectory(named, owned=False)
    path = Path(tempfile.mkdtemp(prefix="stockworker-metrics-"))
    os.environ[ENV] = str(path)
    _refresh_value_class()
    return MultiprocessDirectory(path, owned=True)


# prometheus_client's files: <kind>_<pid>.db, kind counter, histogram, summary or
# gauge_<mode> (gauge_livesum_<pid>.db holds the relay's leadership).
_METRICS_FILE = re.compile(r"(?:counter|histogram|summary|gauge_[a-z]+)_\d+\.db")


def _clear_earlier_run(path: Path) -> None:
    """Files of an earlier run would be summed into this one's exposition (a dead
    process's relay leadership showing 1, counters starting high): before this worker
    (or its relay child) writes any, remove prometheus_client's files. Only those: a
    *.db file of another name is refused (prometheus_client would read it too), any
    other file is left alone. A directory serves one worker at a time (with its relay
    child); two workers sharing one would clear and sum each other's."""
    try:
        databases = [entry for entry in path.iterdir() if entry.name.endswith(".db")]
        foreign = sorted(e.name for e in databases if not _METRICS_FILE.fullmatch(e.name))
        if foreign:  # prometheus_client reads every *.db there: /metrics would fail
            raise ConfigurationError(
                ENV,
                f"{path} holds {foreign[0]}, which is not a metrics file (every *.db there "
                "is read as one): name a directory of its own",
            )
        stale = [entry for entry in databases if _METRICS_FILE.fullmatch(entry.name)]
        for entry in stale:
            entry.unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            ENV, f"cannot clear the metrics files of an earlier run from {path}: {exc}"
        ) from None
    if stale:
        log.info("metrics: removed %d files an earlier run left in %s", len(stale), path)


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
