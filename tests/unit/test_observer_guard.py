"""Metrics never change a command's fate: a failing update is logged once and dropped."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from stockworker.adapters.metrics.observer import PrometheusObserver
from stockworker.service.batch_state import BatchReport


class Broken:
    def __getattr__(self, name: str) -> object:
        raise OSError(28, "No space left on device")


def test_a_failing_update_is_dropped_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    observer = PrometheusObserver()
    observer._instruments = Broken()  # type: ignore[assignment]
    report = BatchReport(applied=1, outcomes=Counter({("PickStock", "accepted", ""): 1}))
    with caplog.at_level(logging.WARNING):
        observer.batch_applied(report, 1, 0.01)
        observer.retried(TimeoutError())
        observer.events_published({"t": 1})
        observer.relay_leading(True)
        observer.swept("inbox_retention", 3)
        observer.batch_applied(report, 1, 0.01)
    failures = [r for r in caplog.records if "metrics: an update failed" in r.getMessage()]
    # Once per kind of update, not once per call.
    assert len(failures) == 5
    assert "No space left on device" in failures[0].getMessage()
