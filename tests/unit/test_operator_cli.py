"""Operator commands end with one line on stderr, not a traceback, when a service is
out of reach or the input is wrong."""

from __future__ import annotations

import pytest

from stockworker.entrypoints.cli import main

UNREACHABLE = {
    # Ports nothing listens on: the connection is refused at once.
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/nothing",
}


@pytest.mark.parametrize("argv", [["offsets", "show"], ["dlq", "list"], ["audit"]], ids=" ".join)
def test_a_service_out_of_reach_is_one_line_and_exit_2(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in UNREACHABLE.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"stockworker {argv[0]}: cannot reach a service: ")
