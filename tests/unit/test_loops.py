"""The two shapes of everything that runs until stopped: retry, and repeat."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from stockworker.service.loops import Backoff, Stop, repeat, retry


class Flaky(Exception):
    pass


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    pauses = list(itertools.islice(Backoff(0.1, 0.5).pauses(), 6))
    caps = [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]
    assert all(cap / 2 <= pause <= cap for pause, cap in zip(pauses, caps, strict=True))


async def test_retry_tries_again_what_may_pass_and_raises_what_may_not() -> None:
    attempts: list[int] = []

    async def twice_flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise Flaky()
        return "done"

    fast = Backoff(0.001, 0.002)
    retried = await retry(
        twice_flaky, retry_on=lambda e: isinstance(e, Flaky), backoff=fast, what="x"
    )
    assert (retried, len(attempts)) == ("done", 3)

    async def broken() -> None:
        raise ValueError("not worth retrying")

    with pytest.raises(ValueError):
        await retry(broken, retry_on=lambda e: isinstance(e, Flaky), backoff=fast, what="x")


async def test_retry_gives_up_when_stopped() -> None:
    stop = Stop()

    async def never() -> int:
        raise Flaky()

    attempt = asyncio.create_task(
        retry(never, retry_on=lambda e: True, backoff=Backoff(5, 5), what="x", stop=stop)
    )
    await asyncio.sleep(0.01)
    stop.set()
    assert await asyncio.wait_for(attempt, 1) is None


async def test_repeat_goes_on_after_a_failure_until_stopped() -> None:
    stop = Stop()
    rounds: list[int] = []
    errors: list[Exception] = []

    async def every_other_fails() -> None:
        rounds.append(1)
        if len(rounds) % 2:
            raise Flaky()
        if len(rounds) == 4:
            stop.set()

    await asyncio.wait_for(
        repeat(every_other_fails, interval_seconds=0.001, stop=stop, on_error=errors.append), 1
    )
    assert (len(rounds), len(errors)) == (4, 2)
