"""Running until stopped: retrying with capped backoff, and repeating at an interval.

Every long-running part of the worker (the pool at start-up, the batch retry, the
outbox relay, reservation expiry, retention) is one of these two shapes, with one
spelling of "stop".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Unrecoverable(Exception):
    """A failure no retry can cure (a configuration error): a loop may end on it."""


class Stop:
    """A part's stop signal: set once; waits end early when it is set."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking when stopped; whether it is stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)
        return self._event.is_set()


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with jitter (STOCKWORKER_RETRY_*_SECONDS)."""

    initial_seconds: float = 0.1
    max_seconds: float = 10.0

    def pauses(self) -> Iterator[float]:
        delay = self.initial_seconds
        while True:
            yield delay * random.uniform(0.5, 1.0)
            delay = min(delay * 2, self.max_seconds)


async def retry(
    operation: Callable[[], Awaitable[T]],
    *,
    retry_on: Callable[[BaseException], bool],
    backoff: Backoff,
    what: str,
    stop: Stop | None = None,
    describe: Callable[[BaseException], str] = repr,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T | None:
    """`operation` until it succeeds. A failure `retry_on` accepts is logged (and handed
    to `on_retry`) and tried again after a pause; any other is raised. None when stopped
    before it succeeded."""
    pauses = backoff.pauses()
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not retry_on(exc):
                raise
            if stop is not None and stop.is_set():
                return None
            pause = next(pauses)
            log.warning("transient failure %s, retrying in %.2fs: %s", what, pause, describe(exc))
            if on_retry is not None:
                on_retry(exc)
            if stop is None:
                await asyncio.sleep(pause)
            elif await stop.wait(pause):
                return None


async def repeat(
    action: Callable[[], Awaitable[object]],
    *,
    interval_seconds: float,
    stop: Stop,
    on_error: Callable[[Exception], None],
) -> None:
    """`action`, then a pause of `interval_seconds`, until stopped. A failure is handed
    to `on_error` and the next round comes as usual."""
    while not stop.is_set():
        try:
            await action()
        except Exception as exc:
            on_error(exc)
        await stop.wait(interval_seconds)


def log_failure(
    what: str,
    is_transient: Callable[[BaseException], bool],
    describe: Callable[[BaseException], str],
    on_retry: Callable[[BaseException], None] | None = None,
) -> Callable[[Exception], None]:
    """An `on_error` for `repeat` that says whether the next round may cure it (and
    hands the failure to `on_retry`: the next round is its retry)."""

    def on_error(exc: Exception) -> None:
        if on_retry is not None:
            on_retry(exc)
        if is_transient(exc):
            log.warning("%s: transient failure %s", what, describe(exc))
        else:
            log.error("%s failed (%s); retrying after the interval", what, describe(exc))

    return on_error
