"""Running `stockworker` operator commands in-process against a test's services."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from stockworker.entrypoints.cli import main
from stockworker.service.topics import Topics
from tests.support.services import Services


def operator_environment(
    monkeypatch: pytest.MonkeyPatch,
    services: Services,
    database_url: str,
    topics: Topics,
    operator: str = "test-operator",
) -> None:
    """The configuration an operator's shell would have for this test's services."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", services.kafka_bootstrap_servers)
    monkeypatch.setenv("STOCKWORKER_TOPIC_PREFIX", topics.prefix)
    monkeypatch.setenv("STOCKWORKER_OPERATOR", operator)


class OperatorCli:
    """Runs `stockworker ...` in-process (in a thread: it runs its own event loop)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    async def __call__(self, *argv: str) -> tuple[int, str, str]:
        """(exit code, stdout, stderr)."""
        self._capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))
        out, err = self._capsys.readouterr()
        return code, out, err

    async def json(self, *argv: str) -> tuple[int, dict[str, Any]]:
        """(exit code, the JSON document) of the command run with --json."""
        code, out, err = await self(*argv, "--json")
        assert out, err
        document: dict[str, Any] = orjson.loads(out)
        return code, document
