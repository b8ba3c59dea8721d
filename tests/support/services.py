"""Real PostgreSQL and Kafka for integration and end-to-end tests.

Where they come from, in order:
1. DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS when set;
2. testcontainers, when a Docker engine answers;
3. otherwise scripts/services.sh starts the local ones (PostgreSQL from Debian's
   packages, Kafka from its Maven Central jars), reusing running ones.

Each test gets its own database, cloned from a migrated template, and its own topic
prefix and consumer group, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from stockworker.adapters.kafka.admin import ensure_topics
from stockworker.adapters.postgres.migrations import migrate
from stockworker.service.topics import Topics
from tests.support.databases import create_database, drop_database
from tests.support.kafka_io import delete_topics

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DB = "stockworker_test_template"


@dataclass(frozen=True)
class Services:
    database_url: str  # the schema owner's: creates databases, runs migrations
    kafka_bootstrap_servers: str
    # The worker's role (data privileges only), when the environment has one.
    app_database_url: str | None = None

    @property
    def app_role(self) -> str | None:
        return urlsplit(self.app_database_url).username if self.app_database_url else None


_APP_CREDENTIALS: dict[str, str] = {}


def worker_dsn(database_url: str) -> str:
    """The DSN a worker process uses for a test database: the app role where there is one."""
    if not _APP_CREDENTIALS:
        return database_url
    parts = urlsplit(database_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{_APP_CREDENTIALS['user']}:{_APP_CREDENTIALS['password']}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def _remember_app_role(services: Services) -> None:
    if services.app_database_url:
        parts = urlsplit(services.app_database_url)
        _APP_CREDENTIALS.update(user=parts.username or "", password=parts.password or "")


async def _create_app_role(superuser_url: str) -> None:
    conn = await asyncpg.connect(superuser_url)
    try:
        await conn.execute("CREATE ROLE stockworker_app LOGIN PASSWORD 'app-local-secret'")
    finally:
        await conn.close()


def _docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def _containers() -> Iterator[Services]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with (
        PostgresContainer("postgres:16", driver=None) as pg,
        KafkaContainer("confluentinc/cp-kafka:7.6.1").with_kraft() as kafka,
    ):
        url = pg.get_connection_url()
        asyncio.run(_create_app_role(url))
        host = urlsplit(url).netloc.rsplit("@", 1)[-1]
        app = urlunsplit(urlsplit(url)._replace(netloc=f"stockworker_app:app-local-secret@{host}"))
        yield Services(url, kafka.get_bootstrap_server(), app)


def _local() -> Services:
    subprocess.run([str(ROOT / "scripts" / "services.sh"), "start"], check=True)
    env = subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), "env"], check=True, capture_output=True, text=True
    ).stdout
    values = dict(
        line.removeprefix("export ").split("=", 1) for line in env.splitlines() if "=" in line
    )
    return Services(
        values["DATABASE_URL"],
        values["KAFKA_BOOTSTRAP_SERVERS"],
        values.get("STOCKWORKER_APP_DATABASE_URL"),
    )


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    database_url = os.environ.get("DATABASE_URL")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if database_url and bootstrap:
        found = Services(database_url, bootstrap, os.environ.get("STOCKWORKER_APP_DATABASE_URL"))
        _remember_app_role(found)
        yield found
    elif _docker_available():
        with _containers() as found:
            _remember_app_role(found)
            yield found
    else:
        found = _local()
        _remember_app_role(found)
        yield found


@pytest.fixture(scope="session")
async def template_database(services: Services) -> str:
    """A database with every migration applied, cloned by each test."""
    await drop_database(services.database_url, TEMPLATE_DB)
    url = await create_database(services.database_url, TEMPLATE_DB)
    await migrate(url, grant_to=services.app_role)
    return url


@pytest.fixture
async def database_url(services: Services, template_database: str) -> AsyncIterator[str]:
    name = f"stockworker_test_{uuid.uuid4().hex[:12]}"
    yield await create_database(services.database_url, name, template=TEMPLATE_DB)
    await drop_database(services.database_url, name)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
async def topics(services: Services) -> AsyncIterator[Topics]:
    """Fresh topics for one test (6 partitions each), deleted afterwards: thousands of
    leftover partitions would make every broker restart (fault tests) slow."""
    topics = Topics(prefix=f"test-{uuid.uuid4().hex[:10]}.")
    await ensure_topics(services.kafka_bootstrap_servers, topics, partitions=6)
    yield topics
    with contextlib.suppress(Exception):
        await delete_topics(services.kafka_bootstrap_servers, topics)
