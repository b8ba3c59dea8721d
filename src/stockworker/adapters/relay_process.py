"""The worker's outbox relay in a process of its own (the default).

The worker starts `stockworker relay` as its child, with its own environment (so the
same settings). The two live and die together: on shutdown the child gets SIGTERM once
the worker's last batch is committed, so it publishes what is committed and exits (past
the shutdown grace it is killed); a child that exits by itself (it retries every
transient failure, so this is a crash or a configuration it cannot run with) stops the
worker too, with the child's exit code, for the supervisor to restart both; and the
kernel ends the child if the worker dies first (PR_SET_PDEATHSIG), so a killed worker
never leaves a relay behind.

Why a process: the relay costs ~25-30 µs of CPU per command, and in the worker's event
loop its rounds also hold up batches; apart, it runs on another core (see
docs/operations.md, "Performance"). `STOCKWORKER_RELAY_INLINE=true` keeps it inside.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import sys
from collections.abc import Callable

from stockworker.service.loops import Stop

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before it runs: SIGTERM it when the worker ends, however it ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class RelayProcess:
    def __init__(
        self, grace_seconds: float, on_child_exit: Callable[[int], None] = lambda pid: None
    ) -> None:
        """`on_child_exit` is given the child's pid once it has exited (its metrics'
        live gauges are then dropped: adapters/metrics/multiprocess.py)."""
        self._grace = grace_seconds
        self._on_child_exit = on_child_exit
        self._stop = Stop()
        self._on_exit: Callable[[int], None] = lambda code: None

    def on_unexpected_exit(self, callback: Callable[[int], None]) -> None:
        """Who stops the worker when the relay exits by itself (given its exit code)."""
        self._on_exit = callback

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        if self._stop.is_set():
            return
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "stockworker", "relay", preexec_fn=_die_with_parent
        )
        exited = asyncio.ensure_future(process.wait())
        try:
            await self._watch(process, exited)
        finally:
            if exited.done():
                self._on_child_exit(process.pid)

    async def _watch(
        self, process: asyncio.subprocess.Process, exited: asyncio.Future[int]
    ) -> None:
        while not exited.done():
            if await self._stop.wait(0.5):
                break
        if exited.done():
            code = exited.result()
            if not self._stop.is_set():
                log.error("the outbox relay process exited with %s: the worker stops too", code)
                self._on_exit(code)
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(exited), self._grace)
        except TimeoutError:
            log.error("the outbox relay did not stop within %.0f s: killed", self._grace)
            process.kill()
            await exited
