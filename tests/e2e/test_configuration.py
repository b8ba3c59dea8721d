"""A misconfigured worker or relay stops at once with one line naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.databases import create_database, drop_database
from tests.support.services import Services, worker_dsn

pytestmark = pytest.mark.e2e


def run(command: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockworker", command],
        env={
            **os.environ,
            "STOCKWORKER_TOPIC_PREFIX": f"cfg-{uuid.uuid4().hex[:6]}.",
            # No HTTP server: workers started here must not contend for port 8080.
            "STOCKWORKER_HTTP_PORT": "0",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_refused(result: subprocess.CompletedProcess[str], *named: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    [line] = [x for x in result.stderr.splitlines() if "configuration error" in x]
    for text in named:
        assert text in line, line
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("STOCKWORKER_BATCH_SIZE", "5OO", "is not a whole number"),
        ("STOCKWORKER_BATCH_SIZE", "-1", "out of range"),
        ("STOCKWORKER_DB_POOL_SIZE", "0", "out of range"),
        ("STOCKWORKER_RETRY_MAX_SECONDS", "inf", "not a finite number"),
        ("STOCKWORKER_RUN_RELAY", "perhaps", "not a boolean"),
        ("STOCKWORKER_KAFKA_SSL_CAFILE", "/nowhere/ca.pem", "is not a file"),
        ("STOCKWORKER_KAFKA_SECURITY_PROTOCOL", "TLS", "is not one of"),
    ],
)
def test_a_bad_setting_is_named_before_anything_starts(
    services: Services, variable: str, value: str, said: str
) -> None:
    assert_refused(run("worker", **{variable: value}), variable, said)


def test_a_missing_database_ca_file_is_not_retried(services: Services, tmp_path: Path) -> None:
    dsn = f"{services.database_url}?sslmode=verify-full&sslrootcert={tmp_path / 'missing.pem'}"
    for command in ("worker", "relay"):
        assert_refused(run(command, DATABASE_URL=dsn), "DATABASE_URL", "sslrootcert")


async def test_a_database_the_worker_cannot_use_stops_it(services: Services) -> None:
    wrong_password = worker_dsn(services.database_url).replace(":app-local-secret@", ":wrong@")
    if wrong_password != worker_dsn(services.database_url):
        for command in ("worker", "relay"):
            assert_refused(run(command, DATABASE_URL=wrong_password), "DATABASE_URL", "Password")
    name = f"stockworker_unmigrated_{uuid.uuid4().hex[:8]}"
    url = await create_database(services.database_url, name)
    try:
        result = run(
            "worker", DATABASE_URL=url, KAFKA_BOOTSTRAP_SERVERS=services.kafka_bootstrap_servers
        )
        assert_refused(result, "DATABASE_URL", "stockworker migrate")
    finally:
        await drop_database(services.database_url, name)
