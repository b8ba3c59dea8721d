"""Metrics: per-command outcome counts, the Observer port's calls, the Prometheus side
(instruments, retry causes, FastStream's batch sizes, scrape-time collectors, the
exposition) and multiprocess mode across real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError
from faststream.message import StreamMessage

from stockworker.adapters.kafka.command_consumer import CommandConsumer
from stockworker.adapters.kafka.consumer_groups import ConsumerGroups
from stockworker.adapters.metrics import collectors, exposition
from stockworker.adapters.metrics.broker import _provider
from stockworker.adapters.metrics.collectors import ConsumerLagCollector, OutboxCollector
from stockworker.adapters.metrics.instruments import instruments
from stockworker.adapters.metrics.observer import PrometheusObserver, retry_cause
from stockworker.adapters.postgres.errors import DatabaseConnectionLost
from stockworker.adapters.relay_process import RelayProcess
from stockworker.service.batch_state import BatchReport
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.expiry import ReservationExpiry
from stockworker.service.loops import Backoff
from stockworker.service.observation import RESERVATION_EXPIRY
from stockworker.service.ports import InboundRecord, OutboxMessage, PendingMessage
from stockworker.service.relay import OutboxRelay
from stockworker.service.topics import Topics
from tests.support.builders import command, encode
from tests.support.fake_kafka import FakeConsumer, command_record
from tests.support.fake_store import FakeDatabase, FakeUnitOfWork

TOPICS = Topics("t.")
P0 = TopicPartition(TOPICS.commands, 0)


class Transient(Exception):
    pass


class Recorder:
    """An Observer that keeps every call."""

    def __init__(self) -> None:
        self.batches: list[tuple[BatchReport, int, float]] = []
        self.retries: list[BaseException] = []
        self.published: Counter[str] = Counter()
        self.leading: list[bool] = []
        self.sweeps: list[tuple[str, int]] = []

    def batch_applied(self, report: BatchReport, records: int, seconds: float) -> None:
        self.batches.append((report, records, seconds))

    def retried(self, failure: BaseException) -> None:
        self.retries.append(failure)

    def events_published(self, by_topic: Mapping[str, int]) -> None:
        self.published.update(by_topic)

    def relay_leading(self, leading: bool) -> None:
        self.leading.append(leading)

    def swept(self, sweep: str, rows: int) -> None:
        self.sweeps.append((sweep, rows))


def service(db: FakeDatabase) -> CommandBatchService:
    return CommandBatchService(
        lambda: FakeUnitOfWork(db), TOPICS, is_transient=lambda e: isinstance(e, Transient)
    )


def records(*values: bytes | None) -> list[InboundRecord]:
    return [
        InboundRecord(topic=TOPICS.commands, partition=0, offset=i, key=b"SKU-1", value=v)
        for i, v in enumerate(values)
    ]


# --- Counting per command: BatchReport.outcomes ----------------------------------------


async def test_a_batch_counts_each_command_by_type_outcome_and_code() -> None:
    db = FakeDatabase()
    receive = encode(command("ReceivePOItem", quantity=5))
    invalid = command("PickStock", quantity=-1)
    report = await service(db).process(
        records(
            receive,
            encode(command("PickStock", quantity=9)),  # only 5 available
            encode(command("PickStock", quantity=4)),
            receive,  # the same command again
            encode(invalid),  # its schema refuses it
            encode(invalid),  # an invalid command is not recorded: refused again
            b"not json",
            b"",
        )
    )
    assert report.outcomes == Counter(
        {
            ("ReceivePOItem", "accepted", ""): 1,
            ("PickStock", "rejected", "INSUFFICIENT_AVAILABLE"): 1,
            ("PickStock", "accepted", ""): 1,
            ("ReceivePOItem", "duplicate", ""): 1,
            ("PickStock", "rejected", "INVALID_COMMAND"): 2,
            ("unknown", "dead_lettered", "NOT_JSON"): 1,
            ("unknown", "dead_lettered", "EMPTY_MESSAGE"): 1,
        }
    )
    # The totals agree with the counts.
    assert (report.applied, report.rejected, report.duplicates, report.dead_lettered) == (
        2,
        3,
        1,
        2,
    )


async def test_a_reused_command_id_is_a_rejection_and_an_invalid_repeat_a_duplicate() -> None:
    db = FakeDatabase()
    first = command("AdjustInventory", delta=3, reason="FOUND")
    await service(db).process(records(encode(first)))
    other_payload = {**first, "delta": 4}
    invalid_repeat = {**first, "delta": 0}  # invalid, under an id already applied
    report = await service(db).process(records(encode(other_payload), encode(invalid_repeat)))
    assert report.outcomes == Counter(
        {
            ("AdjustInventory", "rejected", "COMMAND_ID_REUSED"): 1,
            ("AdjustInventory", "duplicate", ""): 1,
        }
    )


async def test_a_record_the_database_refuses_counts_as_dead_lettered_with_its_type() -> None:
    db = FakeDatabase()

    class RefusesOneSku(FakeUnitOfWork):
        async def save(self, changes: Any) -> None:
            if any(p.sku == "REFUSED" for _, p in changes.positions):
                raise ValueError("check constraint")
            await super().save(changes)

    failing = CommandBatchService(lambda: RefusesOneSku(db), TOPICS, lambda e: False)
    report = await failing.process(
        records(
            encode(command("AdjustInventory", sku="SKU-1", delta=2)),
            encode(command("AdjustInventory", sku="REFUSED", delta=2)),
        )
    )
    assert report.outcomes == Counter(
        {
            ("AdjustInventory", "accepted", ""): 1,
            ("AdjustInventory", "dead_lettered", "PROCESSING_FAILED"): 1,
        }
    )


def test_reports_add_their_counts_and_compare_on_their_totals_only() -> None:
    a = BatchReport(applied=1, outcomes=Counter({("X", "accepted", ""): 1}))
    b = BatchReport(rejected=2, outcomes=Counter({("X", "rejected", "R"): 2}))
    total = a + b
    assert (total.applied, total.rejected) == (1, 2)
    assert total.outcomes == Counter({("X", "accepted", ""): 1, ("X", "rejected", "R"): 2})
    assert a == BatchReport(applied=1)  # the counts are not compared
    assert "outcomes" not in repr(total)  # the shutdown log line stays short


# --- The Observer port's calls --------------------------------------------------------


async def test_the_consumer_observes_each_applied_batch_and_each_retry() -> None:
    db = FakeDatabase(fail_next_commit=Transient("connection lost"))
    recorder = Recorder()
    transient = lambda e: isinstance(e, Transient)  # noqa: E731
    consumer = CommandConsumer(service(db), transient, Backoff(0.001, 0.01), observer=recorder)
    batch = [
        command_record(P0, i, command("AdjustInventory", sku=f"S{i}", delta=1, reason="FOUND"))
        for i in range(3)
    ]
    await consumer.handle(batch, FakeConsumer(P0))
    assert [type(e) for e in recorder.retries] == [Transient]
    [(report, size, seconds)] = recorder.batches  # the failed attempt is not a batch applied
    assert size == 3 and seconds >= 0
    assert report.outcomes == Counter({("AdjustInventory", "accepted", ""): 3})
    assert consumer.total == report and consumer.total.applied == 3  # totals, not outcomes


class FakeSession:
    def __init__(self, rows: list[PendingMessage]) -> None:
        self.rows = rows
        self.deleted: list[int] = []
        self.parked: list[int] = []

    async def try_lead(self) -> bool:
        return True

    async def wait_for_rows(self, seconds: float) -> None:
        await asyncio.sleep(0.01)

    async def fetch_unpublished(self, limit: int) -> list[PendingMessage]:
        gone = set(self.deleted) | set(self.parked)
        return [r for r in self.rows if r.id not in gone][:limit]

    async def delete_published(self, ids: Sequence[int]) -> None:
        self.deleted.extend(ids)

    async def park(self, id: int, reason: str) -> None:
        self.parked.append(id)

    async def close(self) -> None:
        return None


class TooLarge(Exception):
    pass


class FakePublisher:
    """Refuses every message whose value is b"too large"; takes the rest."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, messages: Sequence[OutboxMessage]) -> list[Exception | None]:
        return [TooLarge() if m.value == b"too large" else None for m in messages]


async def _opened(session: FakeSession) -> Any:
    return session


async def test_the_relay_reports_what_the_broker_acknowledged_by_topic_and_its_leadership() -> None:
    def row(i: int, topic: str, value: bytes = b"{}") -> PendingMessage:
        return PendingMessage(i, OutboxMessage(uuid.uuid4(), topic, b"k", value))

    rows = [
        row(1, TOPICS.results),
        row(2, TOPICS.results),
        row(3, TOPICS.dead_letters),
        row(4, TOPICS.results, b"too large"),  # parked: not published
        row(5, TOPICS.results),  # after the parked one, one at a time
    ]
    session = FakeSession(rows)
    recorder = Recorder()
    relay = OutboxRelay(
        open_session=lambda: _opened(session),
        new_publisher=FakePublisher,
        is_unpublishable=lambda exc: isinstance(exc, TooLarge),
        observer=recorder,
    )
    task = asyncio.create_task(relay.run())
    for _ in range(500):
        if len(session.deleted) + len(session.parked) == len(rows):
            break
        await asyncio.sleep(0.01)
    relay.stop()
    await asyncio.wait_for(task, 10)
    assert session.parked == [4]
    assert recorder.published == Counter({TOPICS.results: 3, TOPICS.dead_letters: 1})
    assert recorder.leading == [True, False]


async def test_each_expiry_round_is_observed_with_the_reservations_it_expired() -> None:
    db = FakeDatabase()
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    made, due = (now - timedelta(hours=1)).isoformat(), (now - timedelta(minutes=1)).isoformat()
    reserve = [
        command("ReserveStock", sku=sku, reservation_id=f"R-{sku}", quantity=1, order_ref="O",
                expires_at=due, occurred_at=made)
        for sku in ("A", "B")
    ]  # fmt: skip
    receipts = [command("ReceivePOItem", sku=sku, po_number=f"PO-{sku}") for sku in ("A", "B")]
    await service(db).process(records(*(encode(b) for b in [*receipts, *reserve])))
    failures: list[BaseException] = [Transient("database down")]

    def unit_of_work() -> FakeUnitOfWork:
        if failures:
            db.fail_next_commit = failures.pop()
        return FakeUnitOfWork(db)

    recorder = Recorder()
    expiry = ReservationExpiry(
        unit_of_work,
        service(db),
        clock=lambda: now,
        is_transient=lambda e: isinstance(e, Transient),
        interval_seconds=0.01,
        observer=recorder,
    )
    task = asyncio.create_task(expiry.run())
    for _ in range(500):
        if len(recorder.sweeps) >= 2:
            break
        await asyncio.sleep(0.01)
    expiry.stop()
    await asyncio.wait_for(task, 10)
    assert [type(e) for e in recorder.retries] == [Transient]  # the failed round
    assert recorder.sweeps[:2] == [(RESERVATION_EXPIRY, 2), (RESERVATION_EXPIRY, 0)]


async def test_the_relay_process_reports_its_child_once_it_has_exited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STOCKWORKER_HTTP_PORT", "70000")  # the child refuses to start
    children: list[int] = []
    codes: list[int] = []
    relay = RelayProcess(5.0, on_child_exit=children.append)
    relay.on_unexpected_exit(codes.append)
    await asyncio.wait_for(relay.run(), 60)
    assert codes == [2]
    assert len(children) == 1 and children[0] > 0


# --- Prometheus ----------------------------------------------------------------------


def sample(name: str, **labels: str) -> float:
    return instruments().registry.get_sample_value(name, labels) or 0.0


def test_the_prometheus_observer_moves_the_instruments() -> None:
    observer = PrometheusObserver()
    accepted = {"type": "ReceivePOItem", "outcome": "accepted", "code": ""}
    rejected = {"type": "PickStock", "outcome": "rejected", "code": "INSUFFICIENT_AVAILABLE"}
    before = {
        "accepted": sample("stockworker_commands_total", **accepted),
        "rejected": sample("stockworker_commands_total", **rejected),
        "batches": sample("stockworker_batch_size_count"),
        "records": sample("stockworker_batch_size_sum"),
        "retries": sample("stockworker_retries_total", cause="database_connection"),
        "published": sample("stockworker_events_published_total", topic="t.x"),
        "sweeps": sample("stockworker_sweeps_total", sweep="inbox_retention"),
        "rows": sample("stockworker_sweep_rows_total", sweep="inbox_retention"),
    }
    report = BatchReport(
        outcomes=Counter(
            {tuple(accepted.values()): 4, tuple(rejected.values()): 1}  # type: ignore[dict-item]
        )
    )
    observer.batch_applied(report, 5, 0.02)
    observer.batch_applied(report, 5, 0.03)
    observer.retried(DatabaseConnectionLost("gone"))
    observer.events_published({"t.x": 7})
    observer.swept("inbox_retention", 12)
    observer.swept("inbox_retention", 0)
    assert sample("stockworker_commands_total", **accepted) - before["accepted"] == 8
    assert sample("stockworker_commands_total", **rejected) - before["rejected"] == 2
    assert sample("stockworker_batch_size_count") - before["batches"] == 2
    assert sample("stockworker_batch_size_sum") - before["records"] == 10
    assert sample("stockworker_retries_total", cause="database_connection") - before["retries"] == 1
    assert sample("stockworker_events_published_total", topic="t.x") - before["published"] == 7
    assert sample("stockworker_sweeps_total", sweep="inbox_retention") - before["sweeps"] == 2
    assert sample("stockworker_sweep_rows_total", sweep="inbox_retention") - before["rows"] == 12
    observer.relay_leading(True)
    assert sample("stockworker_relay_leader") == 1
    observer.relay_leading(False)
    assert sample("stockworker_relay_leader") == 0


@pytest.mark.parametrize(
    ("failure", "cause"),
    [
        (asyncpg.exceptions.SerializationError(""), "database_conflict"),
        (asyncpg.exceptions.DeadlockDetectedError(""), "database_conflict"),
        (asyncpg.exceptions.OutOfMemoryError(""), "database_lock_table_full"),
        (asyncpg.exceptions.AdminShutdownError(""), "database_unavailable"),
        (asyncpg.exceptions.ConnectionFailureError(""), "database_connection"),
        (asyncpg.exceptions.InternalServerError(""), "database_error"),
        (DatabaseConnectionLost("closed"), "database_connection"),
        (KafkaConnectionError("no broker"), "kafka"),
        (TimeoutError(), "timeout"),
        (ConnectionRefusedError(), "connection"),
        (RuntimeError("a bug"), "unexpected"),
    ],
)
def test_a_retry_cause_is_a_short_name_from_a_small_set(failure: BaseException, cause: str) -> None:
    assert retry_cause(failure) == cause


def test_faststream_counts_a_raw_batchs_records_and_their_bytes() -> None:
    batch = tuple(
        ConsumerRecord(TOPICS.commands, 0, i, 0, 0, b"k", value, None, 1, len(value or b""), ())
        for i, value in enumerate([b"12345", b"123", None])
    )
    message = StreamMessage(raw_message=batch, body=b"", message_id="m")
    provider = _provider(batch)
    assert provider.get_consume_attrs_from_message(message) == {
        "destination_name": TOPICS.commands,
        "message_size": 8,
        "messages_count": 3,
    }


class FakePool:
    def __init__(self, row: dict[str, Any] | None = None, fail: bool = False) -> None:
        self.row, self.fail = row, fail

    async def fetchrow(self, _query: str, *_args: object) -> dict[str, Any] | None:
        if self.fail:
            raise ConnectionRefusedError("database down")
        return self.row


async def test_scrape_time_gauges_show_the_last_read_and_vanish_while_it_fails() -> None:
    pool = FakePool({"backlog": 12, "oldest_age_seconds": 3.5, "parked": 1})
    collector = OutboxCollector(pool)  # type: ignore[arg-type]
    exposition.install(collector)
    try:
        assert b"stockworker_outbox_backlog" not in exposition.render_metrics()[0]  # not read
        await collector.refresh()
        body, content_type = exposition.render_metrics()
        assert content_type.startswith("text/plain; version=0.0.4")
        assert b"stockworker_outbox_backlog 12.0" in body
        assert b"stockworker_outbox_oldest_age_seconds 3.5" in body
        assert b"stockworker_outbox_parked 1.0" in body
        pool.fail = True
        await collector.refresh()  # does not raise
        assert b"stockworker_outbox_backlog" not in exposition.render_metrics()[0]
    finally:
        exposition.uninstall(collector)


async def test_lag_without_a_reachable_kafka_is_absent_not_an_error() -> None:
    lag = ConsumerLagCollector("127.0.0.1:1", "group", TOPICS.commands)  # nothing listens
    exposition.install(lag)
    try:
        await lag.refresh()  # does not raise
        assert b"stockworker_consumer_lag" not in exposition.render_metrics()[0]
    finally:
        exposition.uninstall(lag)
        await lag.close()


async def test_a_lag_read_cut_short_by_its_timeout_leaves_no_connection_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broker that accepts connections and never answers: the read times out while the
    Kafka clients are still starting, and whatever they opened is closed."""
    connected: list[asyncio.StreamWriter] = []
    open_: set[asyncio.StreamWriter] = set()
    all_closed = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.append(writer)
        open_.add(writer)
        try:
            await reader.read()  # until the client closes
        finally:
            open_.discard(writer)
            writer.close()
            if not open_:
                all_closed.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setattr(collectors, "READ_TIMEOUT_SECONDS", 0.3)
    lag = ConsumerLagCollector(f"127.0.0.1:{port}", "group", TOPICS.commands)
    try:
        await lag.refresh()  # does not raise
        assert connected  # it did get as far as the broker
        await asyncio.wait_for(all_closed.wait(), 10)  # the client closed every connection
        mine = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not [t for t in mine if "aiokafka" in repr(t.get_coro())]
    finally:
        await lag.close()
        server.close()
        await server.wait_closed()


async def test_consumer_groups_that_failed_to_start_can_be_left_safely() -> None:
    groups = ConsumerGroups("127.0.0.1:1")  # nothing listens
    with pytest.raises(KafkaConnectionError):
        await groups.__aenter__()
    await groups.__aexit__()  # what a caller's cleanup does: closes nothing twice, no error
    await groups.__aexit__()


def test_readiness_appears_once_recorded() -> None:
    before = exposition._READINESS.checks  # module state: put back for the other tests
    try:
        exposition.record_readiness({"kafka": True, "database": False})
        body = exposition.render_metrics()[0].decode()
        assert "stockworker_ready 0.0" in body
        assert 'stockworker_ready_check{check="database"} 0.0' in body
        assert 'stockworker_ready_check{check="kafka"} 1.0' in body
        exposition.record_readiness({"kafka": True, "database": True})
        assert "stockworker_ready 1.0" in exposition.render_metrics()[0].decode()
    finally:
        exposition._READINESS.checks = before


# --- Multiprocess mode, in real processes ------------------------------------------------

_CHILD = """
from stockworker.adapters.metrics.observer import PrometheusObserver
observer = PrometheusObserver()
observer.events_published({"t.changed": 5})
observer.relay_leading(True)
"""

_PARENT = """
import sys
from stockworker.adapters.metrics import exposition, multiprocess
from stockworker.adapters.metrics.observer import PrometheusObserver
exposition.check_multiprocess_mode()
PrometheusObserver().events_published({"t.changed": 2})
print(exposition.render_metrics()[0].decode())
multiprocess.process_exited(int(sys.argv[1]))
print("--- after the child exited")
print(exposition.render_metrics()[0].decode())
"""


def python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_a_child_processs_counters_and_live_gauge_reach_the_parents_exposition(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD], env=env)
    assert child.wait(timeout=60) == 0
    shown = python(_PARENT, env, str(child.pid)).stdout
    while_alive, after = shown.split("--- after the child exited")
    # Counters add up over processes; a dead child's counts stay, its leadership goes.
    assert 'stockworker_events_published_total{topic="t.changed"} 7.0' in while_alive
    assert "stockworker_relay_leader 1.0" in while_alive
    assert 'stockworker_events_published_total{topic="t.changed"} 7.0' in after
    assert "stockworker_relay_leader 0.0" in after


def test_the_directory_may_be_named_after_prometheus_client_is_imported(tmp_path: Path) -> None:
    """The command line loads modules that import prometheus_client before the worker's
    entry point names the directory: the instruments, made later, still use it."""
    late = """
    import os, sys
    import prometheus_client
    from stockworker.adapters.metrics import exposition, multiprocess
    from stockworker.adapters.metrics.observer import PrometheusObserver
    directory = multiprocess.prepare()
    assert directory.owned and os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(directory.path)
    exposition.check_multiprocess_mode()
    PrometheusObserver().relay_leading(True)
    print(sorted(os.listdir(directory.path)))
    directory.close()
    print(directory.path.exists())
    """
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    files, exists = python(late, env).stdout.splitlines()
    assert "gauge_livesum_" in files
    assert exists == "False"  # a private directory goes with the worker


def test_metrics_made_before_the_directory_is_named_are_refused(tmp_path: Path) -> None:
    early = """
    import os
    from stockworker.adapters.metrics import exposition
    from stockworker.adapters.metrics.instruments import instruments
    instruments()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ.pop("LATE_DIR")
    exposition.check_multiprocess_mode()
    """
    env = {**os.environ, "LATE_DIR": str(tmp_path)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with pytest.raises(subprocess.CalledProcessError) as failed:
        python(early, env)
    assert "made before it was" in failed.value.stderr


# Prepares the directory named in the environment; prints the configuration error.
_PREPARE = """
from stockworker.adapters.metrics import multiprocess
from stockworker.config import ConfigurationError
try:
    multiprocess.prepare()
except ConfigurationError as exc:
    print(exc)
"""


def test_a_directory_the_operator_names_must_be_writable(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(missing)}
    assert python(_PREPARE, env).stdout.strip() == (
        f"PROMETHEUS_MULTIPROC_DIR: {missing} is not a writable directory"
    )


def test_what_an_earlier_run_left_in_the_operators_directory_is_not_summed_in(
    tmp_path: Path,
) -> None:
    """A worker killed without cleaning up left its relay's leadership (1) and its counts;
    the next run starts from its own figures only, and touches no file but those."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    earlier = subprocess.Popen([sys.executable, "-c", _CHILD], env=env)
    assert earlier.wait(timeout=60) == 0
    assert any(p.name.startswith("gauge_livesum_") for p in tmp_path.iterdir())
    (tmp_path / "notes.txt").write_text("kept")
    code = """
    from stockworker.adapters.metrics import exposition, multiprocess
    from stockworker.adapters.metrics.observer import PrometheusObserver
    multiprocess.prepare()
    exposition.check_multiprocess_mode()
    PrometheusObserver().events_published({"t.changed": 2})
    print(exposition.render_metrics()[0].decode())
    """
    shown = python(code, env).stdout
    assert 'stockworker_events_published_total{topic="t.changed"} 2.0' in shown
    assert "stockworker_relay_leader 1.0" not in shown
    assert (tmp_path / "notes.txt").read_text() == "kept"


def test_a_directory_holding_a_db_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    (tmp_path / "inventory.db").write_text("kept")  # prometheus_client would read it
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    assert python(_PREPARE, env).stdout.strip() == (
        f"PROMETHEUS_MULTIPROC_DIR: {tmp_path} holds inventory.db, which is not a metrics "
        "file (every *.db there is read as one): name a directory of its own"
    )
    assert (tmp_path / "inventory.db").read_text() == "kept"


def test_a_directory_the_operator_names_is_used_and_kept(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    code = """
    from stockworker.adapters.metrics import multiprocess
    from stockworker.adapters.metrics.observer import PrometheusObserver
    directory = multiprocess.prepare()
    PrometheusObserver().relay_leading(True)
    directory.close()
    print(directory.owned)
    """
    assert python(code, env).stdout.strip() == "False"
    assert any(p.name.startswith("gauge_livesum_") for p in tmp_path.iterdir())
