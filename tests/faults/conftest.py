from __future__ import annotations

import pytest

from tests.faults.harness import REPORT, profile


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORT:
        return
    terminalreporter.section(f"fault suite summary ({profile().name} profile)")
    for summary in REPORT:
        terminalreporter.write_line(summary.line())
