"""The worker's HTTP side: liveness, readiness (and what makes it fail), the AsyncAPI
page and document, and a taken port stopping start-up (the default one gives way)."""

from __future__ import annotations

import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from stockworker.adapters.kafka.admin import ensure_topics
from stockworker.service.topics import Topics
from tests.e2e.test_worker_flows import has_results, send
from tests.support.builders import command
from tests.support.kafka_io import EventCollector, delete_topics
from tests.support.services import Services
from tests.support.tcp_proxy import TcpProxy
from tests.support.worker_process import WorkerProcess, wait_for

pytestmark = pytest.mark.e2e

CHECKS = {"kafka", "database", "partitions", "outbox"}
ASYNCAPI = Path(__file__).resolve().parents[2] / "schemas" / "asyncapi.json"


def poll_readiness(worker: WorkerProcess, status: int, timeout: float = 60) -> dict[str, Any]:
    """Polls /health/ready until it answers `status`; each answer must come within 5 s."""
    seen: list[tuple[int, dict[str, Any]]] = []

    def answered() -> bool:
        assert worker.alive(), worker.logs()[-3000:]
        seen.append(worker.readiness(timeout=5))
        return seen[-1][0] == status

    assert wait_for(answered, timeout, interval=0.3), seen[-1:]
    return seen[-1][1]


@pytest.fixture
def proxy(services: Services) -> Iterator[TcpProxy]:
    with TcpProxy.for_url(services.database_url) as proxy:
        yield proxy


async def test_live_and_ready_name_every_check(worker: WorkerProcess) -> None:
    body = worker.wait_ready()
    assert body["status"] == "ready"
    assert set(body["checks"]) == CHECKS
    assert all(check["ok"] is True and check["detail"] for check in body["checks"].values())
    assert "of " in body["checks"]["partitions"]["detail"]  # N of <topic>: the partitions
    status, raw, content_type = worker.get("/health/live")
    assert (status, json.loads(raw)) == (200, {"status": "ok"})
    assert content_type == "application/json"
    assert worker.get("/health/nowhere")[0] == 404
    # /metrics exports the last evaluation (the one just asked for).
    status, raw, content_type = worker.get("/metrics")
    assert status == 200 and content_type.startswith("text/plain"), (status, content_type)
    exposition = raw.decode()
    assert "\nstockworker_ready 1.0\n" in exposition, exposition[-2000:]
    for check in CHECKS:
        assert f'stockworker_ready_check{{check="{check}"}} 1.0' in exposition


async def test_readiness_follows_the_database_through_an_outage(
    services: Services,
    database_url: str,
    topics: Topics,
    tmp_path: Path,
    proxy: TcpProxy,
    events: EventCollector,
) -> None:
    worker = WorkerProcess(
        proxy.route(database_url), services.kafka_bootstrap_servers, topics, tmp_path
    )
    worker.start()
    try:
        worker.wait_ready()

        proxy.cut()
        body = poll_readiness(worker, 503)
        assert body["status"] == "unready"
        assert set(body["checks"]) == CHECKS
        assert body["checks"]["database"]["ok"] is False
        assert body["checks"]["kafka"]["ok"] is True
        secret = database_url.rpartition("@")[0].rpartition(":")[2]
        for check in body["checks"].values():
            assert "postgresql://" not in check["detail"]
            assert secret not in check["detail"]
        # A command sent meanwhile waits for the database, not lost, not dead-lettered.
        receipt = command("ReceivePOItem", quantity=3)
        await send(services, topics, receipt)
        assert worker.get("/health/live")[0] == 200

        proxy.restore()
        body = poll_readiness(worker, 200)
        assert all(check["ok"] for check in body["checks"].values())

        # A database that hangs rather than refuses: readiness still answers in time.
        proxy.freeze()
        body = poll_readiness(worker, 503)
        assert body["checks"]["database"]["ok"] is False
        assert body["checks"]["database"]["detail"] == "no answer within 1.5 s", body
        proxy.thaw()
        poll_readiness(worker, 200)
        await events.until(has_results(receipt))
        assert events.results()[receipt["command_id"]]["type"] == "CommandAccepted"
    finally:
        assert worker.stop() == 0
        print(worker.logs()[-3000:])


async def test_an_outbox_falling_behind_makes_the_worker_unready(
    services: Services, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    """No relay here: an event left waiting longer than the bound fails `outbox`; parked
    rows (an operator's business) do not."""
    worker = WorkerProcess(
        database_url,
        services.kafka_bootstrap_servers,
        topics,
        tmp_path,
        run_relay="false",
        ready_max_outbox_age_seconds="30",
    )
    worker.start()
    conn = await asyncpg.connect(database_url)
    try:
        worker.wait_ready()
        row = await conn.fetchval(
            "INSERT INTO outbox (event_id, topic, key, value, created_at)"
            " VALUES ($1, $2, 'K', '{}', now() - interval '2 minutes') RETURNING id",
            uuid.uuid4(),
            topics.changed,
        )
        body = poll_readiness(worker, 503)
        assert [name for name, c in body["checks"].items() if not c["ok"]] == ["outbox"]
        detail = body["checks"]["outbox"]["detail"]
        assert "1 events to publish" in detail, detail
        assert "STOCKWORKER_READY_MAX_OUTBOX_AGE_SECONDS (30 s)" in detail, detail

        await conn.execute(
            "UPDATE outbox SET parked_at = now(), parked_reason = 'test' WHERE id = $1", row
        )
        body = poll_readiness(worker, 200)
        assert "1 parked" in body["checks"]["outbox"]["detail"], body
    finally:
        await conn.close()
        assert worker.stop() == 0
        print(worker.logs()[-3000:])


@pytest.fixture
async def one_partition(services: Services) -> AsyncIterator[Topics]:
    topics = Topics(prefix=f"test-{uuid.uuid4().hex[:10]}.")
    await ensure_topics(services.kafka_bootstrap_servers, topics, partitions=1)
    yield topics
    with contextlib.suppress(Exception):
        await delete_topics(services.kafka_bootstrap_servers, topics)


async def test_a_worker_the_group_does_not_need_stands_by_ready(
    services: Services, database_url: str, one_partition: Topics, tmp_path: Path
) -> None:
    group = f"test-{uuid.uuid4().hex[:8]}"
    workers = [
        WorkerProcess(
            database_url,
            services.kafka_bootstrap_servers,
            one_partition,
            tmp_path / str(i),
            group_id=group,
            run_relay="false",
        )
        for i in range(2)
    ]
    try:
        for worker in workers:
            (worker.log_dir).mkdir()
            worker.start()
        bodies = [worker.wait_ready() for worker in workers]

        def roles_settled() -> bool:
            bodies[:] = [worker.readiness()[1] for worker in workers]
            details = [b["checks"]["partitions"]["detail"] for b in bodies]
            return sorted(d.startswith("1 of ") for d in details) == [False, True]

        assert wait_for(roles_settled, 60, interval=0.5), bodies
        assert all(b["status"] == "ready" for b in bodies)
        details = [b["checks"]["partitions"]["detail"] for b in bodies]
        [idle] = [d for d in details if not d.startswith("1 of ")]
        assert "legitimately" in idle and "stands by" in idle, idle
    finally:
        for worker in workers:
            worker.stop()


async def test_the_asyncapi_page_and_document_are_served(worker: WorkerProcess) -> None:
    wait_for(lambda: _listening(worker), 30)
    status, raw, content_type = worker.get("/asyncapi.json")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(raw) == json.loads(ASYNCAPI.read_text())
    status, raw, content_type = worker.get("/asyncapi")
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    page = raw.decode()
    assert "AsyncApiStandalone.render" in page
    assert "stock.commands.v1" in page  # the document is in the page


def _listening(worker: WorkerProcess) -> bool:
    try:
        return worker.get("/health/live")[0] == 200
    except OSError:
        return False


def test_a_taken_port_stops_start_up_with_one_line(services: Services, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = WorkerProcess(
            services.database_url,
            services.kafka_bootstrap_servers,
            Topics("unused."),
            tmp_path,
            http_port=str(port),
        )
        worker.start()
        assert worker.process is not None
        assert worker.process.wait(timeout=60) == 2
    logs = worker.logs()
    [line] = [x for x in logs.splitlines() if "configuration error" in x]
    assert "STOCKWORKER_HTTP_PORT" in line and str(port) in line, line
    assert "Traceback" not in logs
    assert "stockworker consuming" not in logs  # nothing started


def test_the_default_port_taken_gives_way_to_a_free_one(
    services: Services, database_url: str, tmp_path: Path
) -> None:
    """Two workers on one machine, neither told a port: the second serves elsewhere.

    On a database of its own (migrated), not the services' shared one, whose schema
    may be behind this checkout's migrations on a developer's machine."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):  # held by someone else already: taken as well
            holder.bind(("127.0.0.1", 8080))
            holder.listen()
        worker = WorkerProcess(
            database_url, services.kafka_bootstrap_servers, Topics("unused."), tmp_path
        )
        del worker.env["STOCKWORKER_HTTP_PORT"]
        worker.start()
        try:
            assert wait_for(lambda: "serving on" in worker.logs(), 60), worker.logs()
            [line] = [x for x in worker.logs().splitlines() if "default HTTP port 8080" in x]
            port = int(line.split("serving on ")[1].split()[0])
            assert port != 8080
            worker.http_port, worker.http_url = port, f"http://127.0.0.1:{port}"
            assert wait_for(lambda: _listening(worker), 60), worker.logs()
        finally:
            assert worker.stop() == 0


async def test_port_zero_serves_no_http(worker: WorkerProcess, tmp_path: Path) -> None:
    """STOCKWORKER_HTTP_PORT=0: the worker runs, and listens on no TCP port at all."""
    quiet = WorkerProcess(
        worker.env["DATABASE_URL"],
        worker.env["KAFKA_BOOTSTRAP_SERVERS"],
        Topics(worker.env["STOCKWORKER_TOPIC_PREFIX"]),
        tmp_path / "quiet",
        group_id=worker.env["STOCKWORKER_GROUP_ID"],
        http_port="0",
        run_relay="false",
    )
    quiet.log_dir.mkdir()
    quiet.start()
    try:
        assert quiet.process is not None
        assert wait_for(lambda: "stockworker consuming" in quiet.logs(), 60), quiet.logs()
        assert quiet.alive()
        assert _listening_ports(quiet.process.pid) == set()
        worker.wait_ready()
        assert worker.process is not None
        assert _listening_ports(worker.process.pid) == {worker.http_port}
    finally:
        assert quiet.stop() == 0


def _listening_ports(pid: int) -> set[int]:
    """The TCP ports process `pid` listens on (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = fd.readlink().name
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for row in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
