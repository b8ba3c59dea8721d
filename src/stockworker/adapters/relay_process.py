"""The worker's outbox relay in a process of its own (the default).

The worker starts `stockworker relay` as its child, with its own environment (so the
same settings), and keeps it running: a child that exits is started again after a
backoff. On shutdown the child gets SIGTERM once the worker's last batch is committed,
so it publishes what is committed and exits; past the shutdown grace it is killed.
The kernel kills the child if the worker dies first (PR_SET_PDEATHSIG), so a killed
worker never leaves a relay behind.

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

from stockworker.service.loops import Backoff, Stop

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before it runs: SIGTERM it when the worker ends, however it ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class RelayProcess:
    def __init__(self, backoff: Backoff, grace_seconds: float) -> None:
        self._backoff = backoff
        self._grace = grace_seconds
        self._stop = Stop()
        self.starts = 0

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        pauses = self._backoff.pauses()
        while not self._stop.is_set():
            code = await self._run_child()
            if self._stop.is_set():
                return
            pause = next(pauses)
            log.error(
                "the outbox relay process exited with %s; starting it again in %.1f s",
                code,
                pause,
            )
            await self._stop.wait(pause)

    async def _run_child(self) -> int:
        # S603: the command is this interpreter and a fixed argument list.
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "stockworker", "relay", preexec_fn=_die_with_parent
        )
        self.starts += 1
        exited = asyncio.ensure_future(process.wait())
        while not exited.done():
            if await self._stop.wait(0.5):
                break
        if not exited.done():
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(exited), self._grace)
            except TimeoutError:
                log.error("the outbox relay did not stop within %.0f s: killed", self._grace)
                process.kill()
        return await exited
