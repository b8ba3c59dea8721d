"""Readiness evaluations are shared: however many callers, one runs at a time, and a
scrape never waits for one."""

from __future__ import annotations

import asyncio
from typing import Any

from stockworker.adapters.readiness import CheckResult, Readiness, ReadinessReport
from stockworker.config.kafka import KafkaConnection


class CountingReadiness(Readiness):
    def __init__(self, **kwargs: Any) -> None:
        self.reports: list[ReadinessReport] = []
        super().__init__(
            None,  # type: ignore[arg-type]  # the checks are replaced below
            lambda: None,
            kafka=KafkaConnection("127.0.0.1:1"),
            topic="t",
            group_id="g",
            max_outbox_age_seconds=60,
            on_report=self.reports.append,
            **kwargs,
        )
        self.evaluations = 0
        self.release = asyncio.Event()

    async def check(self) -> ReadinessReport:
        self.evaluations += 1
        await self.release.wait()
        return ReadinessReport({"database": CheckResult(True, f"evaluation {self.evaluations}")})


async def test_concurrent_callers_share_one_evaluation_and_recent_answers_are_reused() -> None:
    readiness = CountingReadiness(max_age=60)
    callers = [asyncio.create_task(readiness.current()) for _ in range(5)]
    await asyncio.sleep(0)
    readiness.release.set()
    reports = await asyncio.gather(*callers)
    assert readiness.evaluations == 1
    assert {r.checks["database"].detail for r in reports} == {"evaluation 1"}
    assert (await readiness.current()).checks["database"].detail == "evaluation 1"
    assert readiness.evaluations == 1
    assert len(readiness.reports) == 1  # recorded once per evaluation


async def test_a_stale_answer_is_evaluated_again() -> None:
    readiness = CountingReadiness(max_age=0)
    readiness.release.set()
    await readiness.current()
    await readiness.current()
    assert readiness.evaluations == 2


async def test_a_scrape_does_not_wait_and_shows_the_last_evaluation() -> None:
    readiness = CountingReadiness(max_age=60)
    assert readiness.refresh_soon() is None  # nothing yet; an evaluation has started
    assert readiness.refresh_soon() is None  # the same one, not a second
    await asyncio.sleep(0)
    assert readiness.evaluations == 1
    readiness.release.set()
    await asyncio.sleep(0.01)
    shown = readiness.refresh_soon()
    assert shown is not None and shown.checks["database"].detail == "evaluation 1"
    assert readiness.evaluations == 1


async def test_closing_cancels_an_evaluation_in_flight() -> None:
    readiness = CountingReadiness(max_age=60)
    readiness.refresh_soon()
    await asyncio.sleep(0)
    await readiness.close()  # does not wait for the check, which never ends
    assert readiness.reports == []
