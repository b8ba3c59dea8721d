"""`stockworker dlq list|show|redrive` against a running worker, real Kafka and PostgreSQL:
a dead-lettered command, corrected and redriven, is applied once; twice is refused."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from stockworker.adapters.kafka.topic_reader import TopicReader, TopicRecord
from stockworker.service.topics import Topics
from tests.support.builders import command
from tests.support.kafka_io import EventCollector, command_message, publish
from tests.support.operator_cli import OperatorCli, operator_environment
from tests.support.services import Services
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def cli(
    services: Services,
    database_url: str,
    topics: Topics,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> OperatorCli:
    """`await cli(*argv)` gives (exit code, stdout, stderr)."""
    operator_environment(monkeypatch, services, database_url, topics, operator="alice")
    return OperatorCli(capsys)


async def records_of(bootstrap: str, topic: str) -> list[TopicRecord]:
    async with TopicReader(bootstrap) as reader:
        bounds = await reader.bounds(topic)
        ranges = {p: (b.beginning, b.end) for p, b in bounds.items()}
        return [r async for batch in reader.read(topic, ranges) for r in batch]


async def on_hand(database_url: str, sku: str = "SKU-1") -> int:
    conn = await asyncpg.connect(database_url)
    try:
        value: int = await conn.fetchval("SELECT on_hand FROM stock_position WHERE sku = $1", sku)
    finally:
        await conn.close()
    return value


def accepted(events: EventCollector, command_id: str) -> list[dict[str, Any]]:
    return [
        r.json()
        for r in events.on(events.topics.results)
        if r.json()["command_id"] == command_id and r.json()["type"] == "CommandAccepted"
    ]


async def audit_rows(database_url: str, operation: str = "dlq redrive") -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(
            await conn.fetch(
                "SELECT id, operator, executed, result, counts, plan_fingerprint, arguments "
                "FROM ops_audit WHERE operation = $1 ORDER BY id",
                operation,
            )
        )
    finally:
        await conn.close()


async def test_a_corrected_dead_letter_is_applied_once_and_not_twice(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
    cli: Any,
    tmp_path: Path,
) -> None:
    bootstrap = services.kafka_bootstrap_servers
    setup = command("ConfigureStockItem", max_quantity=100)
    await publish(bootstrap, topics.commands, [command_message(setup)])
    await events.until(lambda c: setup["command_id"] in c.results())
    before = await on_hand(database_url)

    fixed = command("AdjustInventory", delta=7, reason="FOUND")
    typo = {**fixed, "type": "AdjustInventroy"}
    await publish(
        bootstrap,
        topics.commands,
        [command_message(typo)],
        headers=[("traceparent", b"00-trace-01"), ("tenant", b"eu")],
    )
    await events.until(lambda c: bool(c.on(topics.dead_letters)))

    # dlq list: the dead letter, open, with its source.
    code, out, _ = await cli("dlq", "list", "--json")
    assert code == 0
    [listed] = json.loads(out)
    assert (listed["code"], listed["status"], listed["key"]) == ("UNKNOWN_TYPE", "open", "SKU-1")
    assert listed["command_id"] == fixed["command_id"]
    assert listed["source"].startswith(topics.commands + "/")
    place = listed["place"]
    code, out, _ = await cli("dlq", "list", "--group", "--json")
    assert [(g["code"], g["count"], g["open"]) for g in json.loads(out)] == [("UNKNOWN_TYPE", 1, 1)]
    code, out, _ = await cli("dlq", "list", "--code", "NOT_JSON", "--json")
    assert (code, json.loads(out)) == (0, [])

    # The same for people: one line per dead letter, one per group.
    code, out, _ = await cli("dlq", "list")
    [header, line] = out.splitlines()
    assert header.split()[:3] == ["PLACE", "TIME", "CODE"]
    assert line.startswith(place) and "UNKNOWN_TYPE" in line and " open " in line
    code, out, _ = await cli("dlq", "list", "--group")
    assert "UNKNOWN_TYPE" in out.splitlines()[1]
    code, out, _ = await cli("dlq", "show", place)
    assert "error:   UNKNOWN_TYPE" in out and "traceparent: 00-trace-01" in out

    # dlq show: the bytes decoded, the original headers, the error.
    code, out, _ = await cli("dlq", "show", place, "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["value"]["encoding"] == "json"
    assert shown["value"]["data"]["type"] == "AdjustInventroy"
    assert shown["headers"] == [["traceparent", "00-trace-01"], ["tenant", "eu"]]
    assert "dlq.error.code" in dict(shown["dead_letter_headers"])

    edit = tmp_path / "fixed.json"
    edit.write_text(json.dumps(fixed))
    commands_before = len(await records_of(bootstrap, topics.commands))

    # A dry run prints what would be sent and sends nothing.
    code, out, _ = await cli("dlq", "redrive", place, "--edit", str(edit), "--json")
    assert code == 0
    plan = json.loads(out)
    assert plan["executed"] is False
    assert plan["counts"]["to_send"] == 1
    [planned] = plan["records"]
    assert (planned["command_id"], planned["resolution"]) == (
        fixed["command_id"],
        "redriven-edited",
    )
    assert len(await records_of(bootstrap, topics.commands)) == commands_before
    code, out, _ = await cli("dlq", "redrive", place, "--edit", str(edit))
    assert code == 0
    assert out.startswith(f"would send {place} -> {topics.commands} key=SKU-1")
    assert "run again with --execute" in out

    # Executed: sent once, keyed as the original, applied once.
    code, out, _ = await cli(
        "dlq", "redrive", place, "--edit", str(edit), "--execute", "--operator", "bob", "--json"
    )
    assert code == 0, out
    done = json.loads(out)
    assert done["counts"]["sent"] == 1
    assert done["plan_fingerprint"] == plan["plan_fingerprint"]
    await events.until(lambda c: bool(accepted(c, fixed["command_id"])))
    after_first = await on_hand(database_url)
    assert after_first == before + 7
    redriven = (await records_of(bootstrap, topics.commands))[commands_before:]
    [sent] = redriven
    assert sent.key == b"SKU-1"
    assert json.loads(sent.value or b"") == fixed
    headers = dict(sent.headers)
    assert headers["traceparent"] == b"00-trace-01"
    assert (
        headers["stockworker.redrive.from"]
        == f"{topics.dead_letters}/{place.replace(':', '/')}".encode()
    )
    assert headers["stockworker.redrive.edited"] == b"true"
    assert not any(k.startswith("dlq.") or k == "event_id" for k, _ in sent.headers)

    # Twice: refused, nothing sent.
    code, _, err = await cli("dlq", "redrive", place, "--edit", str(edit), "--execute")
    assert code == 1
    assert "already dealt with" in err and place in err
    await events.settle(2.0)
    assert len(await records_of(bootstrap, topics.commands)) == commands_before + 1
    assert len(accepted(events, fixed["command_id"])) == 1
    assert await on_hand(database_url) == after_first

    # Resolved: no longer open; --all shows how.
    code, out, _ = await cli("dlq", "list", "--json")
    assert json.loads(out) == []
    code, out, _ = await cli("dlq", "list", "--all", "--json")
    [resolved] = json.loads(out)
    assert resolved["status"] == "redriven-edited"

    rows = await audit_rows(database_url)
    assert [(r["executed"], r["result"]) for r in rows] == [
        (False, "ok"),
        (False, "ok"),
        (True, "ok"),
        (True, "refused"),
    ]
    dry, executed = rows[0], rows[2]
    assert (dry["operator"], executed["operator"]) == ("alice", "bob")
    assert json.loads(executed["counts"])["sent"] == 1
    assert json.loads(rows[3]["counts"])["refused_resolved"] == 1
    run_id = headers["stockworker.redrive.run_id"]
    assert run_id is not None
    assert json.loads(executed["arguments"])["run_id"] == run_id.decode()
    assert dry["plan_fingerprint"] == executed["plan_fingerprint"]
    assert resolved["resolved_by_audit_id"] == executed["id"]


async def test_a_kafka_connect_dead_letter_is_redriven_without_its_error_headers(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
    cli: Any,
) -> None:
    bootstrap = services.kafka_bootstrap_servers
    setup = command("ConfigureStockItem", sku="SKU-C", max_quantity=100)
    await publish(bootstrap, topics.commands, [command_message(setup)])
    await events.until(lambda c: setup["command_id"] in c.results())
    lost = command("AdjustInventory", sku="SKU-C", delta=3, reason="FOUND")
    key, value = command_message(lost)
    await publish(
        bootstrap,
        topics.dead_letters,
        [(key, value)],
        headers=[
            ("traceparent", b"00-connect"),
            ("__connect.errors.topic", topics.commands.encode()),
            ("__connect.errors.partition", b"0"),
            ("__connect.errors.offset", b"12"),
            ("__connect.errors.connector.name", b"erp-bridge"),
            (
                "__connect.errors.exception.class.name",
                b"org.apache.kafka.connect.errors.RetriableException",
            ),
            ("__connect.errors.exception.message", b"timeout after 30000 ms"),
        ],
    )
    code, out, _ = await cli("dlq", "list", "--code", "RetriableException", "--json")
    assert code == 0
    [listed] = json.loads(out)
    assert (listed["writer"], listed["source"]) == ("kafka-connect", f"{topics.commands}/0/12")

    code, out, err = await cli(
        "dlq", "redrive", "--code", "RetriableException", "--execute", "--rate", "5"
    )
    assert code == 0, err
    assert "sent" in out
    await events.until(lambda c: bool(accepted(c, lost["command_id"])))
    assert await on_hand(database_url, "SKU-C") == 3
    [sent] = [
        r
        for r in await records_of(bootstrap, topics.commands)
        if dict(r.headers).get("stockworker.redrive.from")
    ]
    assert (sent.key, sent.value) == (key, value)
    names = [k for k, _ in sent.headers]
    assert "traceparent" in names
    assert not any(k.startswith("__connect.") for k in names)
    assert dict(sent.headers)["stockworker.redrive.source"] == f"{topics.commands}/0/12".encode()

    # The same filter again: everything it matches is resolved, so it is refused.
    code, _, err = await cli("dlq", "redrive", "--code", "RetriableException", "--execute")
    assert code == 1 and "already dealt with" in err


async def test_bad_input_is_named(
    services: Services, topics: Topics, cli: Any, database_url: str
) -> None:
    bootstrap = services.kafka_bootstrap_servers
    await publish(bootstrap, topics.dead_letters, [(b"k", b"{}")])  # no error headers
    [plain] = await records_of(bootstrap, topics.dead_letters)
    place = f"{plain.partition}:{plain.offset}"

    code, _, err = await cli("dlq", "show", place)
    assert code == 2 and "is not a dead letter" in err
    code, _, err = await cli("dlq", "redrive", place)
    assert code == 2 and "is not a dead letter" in err
    code, _, err = await cli("dlq", "show", f"{plain.partition}:99")
    assert code == 2 and "no record at" in err
    code, _, err = await cli("dlq", "show", "99:0")
    assert code == 2 and "no partition 99" in err
    code, _, err = await cli("dlq", "show", "three")
    assert code == 2 and "PARTITION:OFFSET" in err
    code, _, err = await cli("dlq", "list", "--since", "2099-01-01T00:00:00+00:00")
    assert code == 2 and "has nothing between" in err
    code, _, err = await cli("dlq", "list", "--since", "2026-01-01T00:00:00")
    assert code == 2 and "no offset" in err
    code, _, err = await cli("dlq", "list", "--source-partition", "42")
    assert code == 2 and "no partition 42" in err
    code, _, err = await cli("dlq", "redrive")
    assert code == 2 and "name the dead letters" in err
    code, _, err = await cli("dlq", "redrive", "0:1", "1:1", "--edit", "x.json")
    assert code == 2 and "exactly one" in err
    # Only the redrive that got as far as reading the topic ran, and failed; the ones
    # whose arguments were wrong did not start.
    assert [r["result"] for r in await audit_rows(database_url)] == ["failed"]


async def test_a_trimmed_dead_letter_is_reread_whole_from_its_source(
    services: Services, topics: Topics, cli: Any, database_url: str, tmp_path: Path
) -> None:
    bootstrap = services.kafka_bootstrap_servers
    whole = json.dumps(command("AdjustInventory", sku="SKU-T", delta=1, reason="FOUND")).encode()
    await publish(bootstrap, topics.commands, [(b"SKU-T", whole)], headers=[("h", b"1")])
    [source] = await records_of(bootstrap, topics.commands)
    await publish(
        bootstrap,
        topics.dead_letters,
        [(b"SKU-T", whole[:10])],
        headers=[
            ("dlq.event_id", str(uuid.uuid4()).encode()),
            ("dlq.error.code", b"MESSAGE_TOO_LARGE"),
            ("dlq.error.message", b"too large"),
            ("dlq.source.topic", topics.commands.encode()),
            ("dlq.source.partition", str(source.partition).encode()),
            ("dlq.source.offset", str(source.offset).encode()),
            ("dlq.original.size", str(len(whole)).encode()),
        ],
    )
    [dead] = await records_of(bootstrap, topics.dead_letters)
    code, out, err = await cli("dlq", "redrive", f"{dead.partition}:{dead.offset}", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["counts"]["reread_whole"] == 1
    [planned] = plan["records"]
    assert planned["value"]["data"] == json.loads(whole)
    assert ["h", "1"] in planned["headers"]
    # Pointing at an offset the source no longer holds: refused as bad input.
    await publish(
        bootstrap,
        topics.dead_letters,
        [(b"SKU-T", whole[:10])],
        headers=[
            ("dlq.error.code", b"MESSAGE_TOO_LARGE"),
            ("dlq.source.topic", topics.commands.encode()),
            ("dlq.source.partition", str(source.partition).encode()),
            ("dlq.source.offset", b"999"),
            ("dlq.original.size", str(len(whole)).encode()),
        ],
    )
    [other] = [
        r
        for r in await records_of(bootstrap, topics.dead_letters)
        if (r.partition, r.offset) != (dead.partition, dead.offset)
    ]
    code, _, err = await cli("dlq", "redrive", f"{other.partition}:{other.offset}")
    assert code == 2 and "no longer held" in err
    # As the error says: a corrected copy can still go, with the dead letter's own key.
    fixed = tmp_path / "fixed.json"
    fixed.write_bytes(whole)
    code, out, err = await cli(
        "dlq", "redrive", f"{other.partition}:{other.offset}", "--edit", str(fixed), "--json"
    )
    assert code == 0, err
    [planned] = json.loads(out)["records"]
    assert planned["value"]["data"] == json.loads(whole)
    assert planned["key"] == "SKU-T"


async def test_a_run_that_fails_part_way_resolves_exactly_what_was_sent(
    services: Services,
    topics: Topics,
    cli: Any,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bootstrap = services.kafka_bootstrap_servers
    small = json.dumps(command("AdjustInventory", sku="SKU-A", delta=1, reason="FOUND")).encode()
    big = json.dumps(
        command("AdjustInventory", sku="SKU-B", delta=1, reason="FOUND", note="x" * 50_000)
    ).encode()
    await publish(bootstrap, topics.commands, [(b"SKU-B", big)])
    [source] = await records_of(bootstrap, topics.commands)

    def dlq_headers(code: bytes, offset: int, size: int | None = None) -> list[Any]:
        headers = [
            ("dlq.error.code", code),
            ("dlq.error.message", b"x"),
            ("dlq.source.topic", topics.commands.encode()),
            ("dlq.source.partition", str(source.partition).encode()),
            ("dlq.source.offset", str(offset).encode()),
        ]
        return headers + ([("dlq.original.size", str(size).encode())] if size else [])

    await publish(
        bootstrap, topics.dead_letters, [(b"SKU-A", small)], dlq_headers(b"PROCESSING_FAILED", 99)
    )
    await asyncio.sleep(0.05)
    await publish(
        bootstrap,
        topics.dead_letters,
        [(b"SKU-B", big[:100])],
        dlq_headers(b"MESSAGE_TOO_LARGE", source.offset, len(big)),
    )
    # The producer takes records up to about 1 KiB here: the whole big one is refused.
    monkeypatch.setenv("STOCKWORKER_MAX_MESSAGE_BYTES", "1024")
    code, _, err = await cli(
        "dlq", "redrive", "--code", "PROCESSING_FAILED", "--code", "MESSAGE_TOO_LARGE", "--execute"
    )
    assert code == 1
    assert "1 of 2 sent" in err and "MessageSizeTooLarge" in err
    # Said once it is true: after the resolution was written, naming the audit row.
    [row] = await audit_rows(database_url)
    assert f"the 1 sent are marked resolved (audit {row['id']})" in err

    code, out, _ = await cli("dlq", "list", "--all", "--json")
    assert {d["key"]: d["status"] for d in json.loads(out)} == {
        "SKU-A": "redriven",
        "SKU-B": "open",
    }
    redriven = [
        r
        for r in await records_of(bootstrap, topics.commands)
        if dict(r.headers).get("stockworker.redrive.from")
    ]
    assert [(r.key, r.value) for r in redriven] == [(b"SKU-A", small)]
    [row] = await audit_rows(database_url)
    assert (row["result"], json.loads(row["counts"])["sent"]) == ("failed", 1)


async def test_a_header_key_that_is_not_text_is_named_as_left_out(
    services: Services, topics: Topics, cli: Any, database_url: str
) -> None:
    """A HEADER_KEY_NOT_UTF8 dead letter as the worker writes it: the bad key kept as a
    dlq.invalid_header.* pair. The redrive leaves it out, and says so before sending."""
    bootstrap = services.kafka_bootstrap_servers
    body = command("AdjustInventory", sku="SKU-1", delta=1, reason="FOUND")
    await publish(
        bootstrap,
        topics.dead_letters,
        [(b"SKU-1", json.dumps(body).encode())],
        [
            ("dlq.invalid_header.key_b64", base64.b64encode(b"\xffkey")),
            ("dlq.invalid_header.value", b"v"),
            ("tenant", b"eu"),
            ("dlq.event_id", str(uuid.uuid4()).encode()),
            ("dlq.error.code", b"HEADER_KEY_NOT_UTF8"),
            ("dlq.error.message", b"the key of header 0 is not UTF-8"),
            ("dlq.source.topic", topics.commands.encode()),
            ("dlq.source.partition", b"0"),
            ("dlq.source.offset", b"7"),
        ],
    )
    [dead] = await records_of(bootstrap, topics.dead_letters)
    place = f"{dead.partition}:{dead.offset}"

    code, out, err = await cli("dlq", "redrive", place)
    assert code == 0, err
    assert "1 header(s) left out: key not UTF-8 or holding NUL (hex: ff6b6579)" in out
    code, out, err = await cli("dlq", "redrive", place, "--json")
    assert code == 0, err
    planned = json.loads(out)
    [record] = planned["records"]
    assert record["headers_left_out"] == ["ff6b6579"]
    assert [k for k, _ in record["headers"] if not k.startswith("stockworker.")] == ["tenant"]
    assert planned["counts"]["headers_left_out"] == 1


async def test_a_discarded_dead_letter_leaves_the_list_and_is_not_redriven(
    services: Services, topics: Topics, cli: Any, database_url: str
) -> None:
    bootstrap = services.kafka_bootstrap_servers
    for body in (b"junk-1", b"junk-2"):
        await publish(
            bootstrap,
            topics.dead_letters,
            [(b"k", body)],
            headers=[("dlq.error.code", b"NOT_JSON"), ("dlq.error.message", b"not JSON")],
        )
    first, second = sorted(
        await records_of(bootstrap, topics.dead_letters), key=lambda r: r.value or b""
    )
    place = f"{first.partition}:{first.offset}"

    code, out, err = await cli("dlq", "discard", place)
    assert code == 0, err
    assert out.splitlines()[0] == f"would discard {place} NOT_JSON key=k"
    code, out, _ = await cli("dlq", "list", "--json")
    assert len(json.loads(out)) == 2  # a dry run changes nothing

    code, out, err = await cli("dlq", "discard", place, "--execute", "--json")
    assert code == 0, err
    assert json.loads(out)["dead_letters"] == [place]
    code, out, _ = await cli("dlq", "list", "--json")
    assert [d["place"] for d in json.loads(out)] == [f"{second.partition}:{second.offset}"]
    code, out, _ = await cli("dlq", "list", "--all", "--json")
    assert {d["place"]: d["status"] for d in json.loads(out)}[place] == "discarded"

    # Dealt with: discarding or redriving it again is refused, and nothing is sent.
    code, _, err = await cli("dlq", "discard", place, "--execute")
    assert code == 1 and "already dealt with" in err
    code, _, err = await cli("dlq", "redrive", place, "--execute")
    assert code == 1 and "discarded by audit" in err
    assert await records_of(bootstrap, topics.commands) == []
    code, _, err = await cli("dlq", "discard")
    assert code == 2 and "PARTITION:OFFSET" in err
    rows = await audit_rows(database_url, "dlq discard")
    assert [(r["executed"], r["result"]) for r in rows] == [
        (False, "ok"),
        (True, "ok"),
        (True, "refused"),
    ]
    assert json.loads(rows[1]["counts"])["discarded"] == 1
