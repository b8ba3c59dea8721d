"""`stockworker replay` and `stockworker rebuild`: re-feed commands from the commands
topic through the worker's own path (service/replay.py), plan first."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from stockworker.adapters.kafka.topic_reader import (
    PartitionBounds,
    TopicReader,
    TopicRecord,
    UnknownTopicOrPartition,
)
from stockworker.adapters.postgres.errors import describe_failure, is_transient
from stockworker.adapters.postgres.ledger import check_ledger
from stockworker.adapters.postgres.unit_of_work import (
    PostgresInbox,
    RecordingUnitOfWorkFactory,
    RolledBack,
    all_positions,
    recorded_expiries,
    relay_running,
    rows_held,
)
from stockworker.bootstrap import backoff, build_service, open_database_at
from stockworker.config import ConfigurationError, Settings
from stockworker.entrypoints.ops.common import (
    EXIT_OK,
    EXIT_REFUSED,
    AuditRun,
    BadInput,
    Progress,
    Refused,
    add_write_options,
    audited,
    fingerprint,
    parse_moment,
    print_json,
)
from stockworker.service.batch_state import BatchReport
from stockworker.service.ports import InboundRecord, OutboxMessage, StateChanges
from stockworker.service.replay import (
    FILTERED_OUT,
    IN_INBOX,
    INVALID,
    REPEATED,
    TO_APPLY,
    UNDECODABLE,
    LockBudgetExceeded,
    NotInInbox,
    Pace,
    Plan,
    Ranges,
    Retrying,
    Selection,
    Timed,
    Written,
    compare_positions,
    execute,
    in_order,
    make_plan,
    rebuild,
    what_if,
)
from stockworker.service.topics import Topics


def register(sub: Any) -> None:
    p = sub.add_parser(
        "replay",
        help="re-feed a range of the commands topic through the worker's path (plan first)",
        description="Select records by partition and offsets, or by time; print the plan; "
        "--what-if shows the changes in a rolled-back transaction; --execute applies them.",
    )
    p.add_argument(
        "--partition", type=int, action="append", metavar="P", help="partition (repeatable)"
    )
    p.add_argument("--from-offset", type=int, metavar="A", help="first offset (with --partition)")
    p.add_argument("--to-offset", type=int, metavar="B", help="last offset, included")
    p.add_argument("--since", metavar="TIME", help="ISO 8601 with offset: records at or after")
    p.add_argument("--until", metavar="TIME", help="ISO 8601 with offset: records before (end)")
    p.add_argument("--sku", action="append", metavar="S", help="only this SKU (repeatable)")
    p.add_argument("--type", action="append", metavar="T", help="only this type (repeatable)")
    p.add_argument("--key", metavar="K", help="only records with this key")
    p.add_argument(
        "--what-if",
        action="store_true",
        help="apply in a transaction that is rolled back; print position changes and events",
    )
    p.add_argument(
        "--allow-reapply",
        action="store_true",
        help="with --execute: apply commands no longer in the inbox (else refused)",
    )
    _rate_option(p)
    add_write_options(p)
    p.set_defaults(handler=_replay)

    r = sub.add_parser(
        "rebuild",
        help="replay the whole commands topic into an empty database; compare positions",
    )
    r.add_argument("--into", required=True, metavar="DATABASE_URL", help="the target database")
    r.add_argument(
        "--allow-partial",
        action="store_true",
        help="rebuild although retention removed the topic's first commands",
    )
    _rate_option(r)
    add_write_options(r)
    r.set_defaults(handler=_rebuild)


def _rate_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate", type=float, metavar="N", help="at most N records a second (default: no limit)"
    )


def _check_replay_args(args: argparse.Namespace) -> None:
    by_offset = args.from_offset is not None or args.to_offset is not None
    by_time = args.since is not None or args.until is not None
    if by_offset and by_time:
        raise BadInput("select by offsets or by time, not both")
    if not by_offset and not by_time:
        raise BadInput("select a range: --partition P --from-offset A --to-offset B, or --since T")
    if by_offset and (args.from_offset is None or args.to_offset is None or not args.partition):
        raise BadInput("--from-offset and --to-offset need each other and --partition")
    if by_offset and args.to_offset < args.from_offset:
        raise BadInput(f"--to-offset {args.to_offset} is before --from-offset {args.from_offset}")
    if by_time and args.since is None:
        raise BadInput("--until needs --since")
    if args.what_if and args.execute:
        raise BadInput("--what-if changes nothing and --execute applies: give one of them")
    if args.rate is not None and args.rate <= 0:
        raise BadInput("--rate must be positive")


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    _check_replay_args(args)
    return asyncio.run(_run_replay(settings, args))


def _inbound(record: TopicRecord) -> InboundRecord:
    return InboundRecord(
        record.topic, record.partition, record.offset, record.key, record.value, record.headers
    )


class _Source:
    """The CommandSource port of service/replay.py over a TopicReader (outside any group)."""

    def __init__(self, reader: TopicReader, topic: str) -> None:
        self._reader = reader
        self._topic = topic

    async def read(self, ranges: Ranges) -> AsyncIterator[list[Timed]]:
        async for records in self._reader.read(self._topic, ranges):
            yield [(r.timestamp, _inbound(r)) for r in records]


async def _ranges(
    reader: TopicReader, topic: str, args: argparse.Namespace, selection: Selection
) -> tuple[dict[int, tuple[int, int]], dict[int, PartitionBounds]]:
    """Per partition [start, end) within what the topic holds, and the topic's bounds."""
    try:
        bounds = await reader.bounds(topic, args.partition)
        if (since := selection.since) is not None:
            start = await reader.offsets_at(topic, since, args.partition)
            if (until := selection.until) is not None:
                if until <= since:
                    raise BadInput("--until must be after --since")
                end = await reader.offsets_at(topic, until, args.partition)
            else:
                end = {p: b.end for p, b in bounds.items()}
            wanted = {p: (start[p], end[p]) for p in bounds}
            nothing = f"no records between {args.since} and {args.until or 'now'}"
        else:
            wanted = {p: (args.from_offset, args.to_offset + 1) for p in bounds}
            nothing = (
                f"no records at offsets {args.from_offset}..{args.to_offset} of partition "
                + ", ".join(f"{p} (it holds {b.beginning}..{b.end - 1})" for p, b in bounds.items())
            )
    except UnknownTopicOrPartition as exc:
        raise BadInput(str(exc)) from None
    ranges = {
        p: (max(a, bounds[p].beginning), min(b, bounds[p].end))
        for p, (a, b) in wanted.items()
        if min(b, bounds[p].end) > max(a, bounds[p].beginning)
    }
    if not ranges:
        raise BadInput(nothing)
    return ranges, bounds


def _selection(args: argparse.Namespace) -> Selection:
    return Selection(
        skus=frozenset(args.sku or ()),
        types=frozenset(args.type or ()),
        key=args.key.encode() if args.key is not None else None,
        since=parse_moment(args.since, "--since") if args.since is not None else None,
        until=parse_moment(args.until, "--until") if args.until is not None else None,
    )


_LABELS = {
    IN_INBOX: "in the inbox (would only re-publish their stored result)",
    TO_APPLY: "not in the inbox (would be applied)",
    REPEATED: "repeat a command id earlier in the range (would re-publish its result)",
    INVALID: "invalid (never in the inbox: would be rejected again)",
    UNDECODABLE: "undecodable (skipped: they were dead-lettered when first read)",
    FILTERED_OUT: "filtered out",
}


def _print_plan(topic: str, plan: Plan, plan_id: str) -> None:
    print(f"replay plan for {topic} (fingerprint {plan_id}):")
    for p, (a, b) in sorted(plan.ranges.items()):
        print(f"  partition {p}: offsets {a}..{b - 1} ({b - a} records)")
    for category, label in _LABELS.items():
        print(f"  {plan.counts[category]:>8}  {label}")
    for line in plan.to_apply_sample:
        print(f"  would apply: {line}")


def _changes_document(written: Written) -> dict[str, Any]:
    return {
        "position_changes": [c.document() for c in written.position_changes()],
        "events": written.events(),
        "events_total": written.message_count,
    }


def _print_changes(written: Written) -> None:
    changes = written.position_changes()
    print(f"position changes ({len(changes)}):")
    for change in changes:
        doc = change.document()
        before, after = doc["before"] or {}, doc["after"]
        moved = [
            f"{k} {before.get(k, '-')} -> {v}"
            for k, v in after.items()
            if k != "version" and before.get(k) != v
        ]
        print(
            f"  {change.key.sku}@{change.key.location}: version {before.get('version', '-')} "
            f"-> {after['version']}" + (", " + ", ".join(moved) if moved else "")
        )
    events = written.events()
    print(f"events ({written.message_count}):")
    for e in events:
        print(f"  {e['type']:<24} {e['topic']:<36} key {e['key']} event_id {e['event_id']}")
    if written.message_count > len(events):
        print(f"  ... and {written.message_count - len(events)} more")


def _report_document(report: BatchReport) -> dict[str, int]:
    return {
        "applied": report.applied,
        "rejected": report.rejected,
        "duplicates": report.duplicates,
        "dead_lettered": report.dead_lettered,
    }


def _retrying(settings: Settings) -> Retrying:
    return Retrying(is_transient, backoff(settings), describe_failure)


_CONNECT_TIMEOUT_SECONDS = 10.0


async def _open(settings: Settings, url: str, option: str) -> asyncpg.Pool:
    # The worker's pool waits for a database that does not answer yet; an operator
    # would rather hear at once that the URL leads nowhere.
    try:
        probe = await asyncpg.connect(url, timeout=_CONNECT_TIMEOUT_SECONDS)
    except (OSError, TimeoutError) as exc:
        raise BadInput(f"{option}: cannot connect: {exc or type(exc).__name__}") from None
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise BadInput(f"{option}: {type(exc).__name__}: {exc}") from None
    await probe.close()
    try:
        return await open_database_at(settings, url)
    except ConfigurationError as exc:
        raise BadInput(f"{option}: {exc}") from None


async def _run_replay(settings: Settings, args: argparse.Namespace) -> int:
    topic = Topics(settings.topic_prefix).commands
    selection = _selection(args)
    async with audited(settings.database_url, "replay", args) as run:
        pool = await _open(settings, settings.database_url, "DATABASE_URL")
        try:
            async with TopicReader(settings.kafka()) as reader:
                ranges, _ = await _ranges(reader, topic, args, selection)
                source = _Source(reader, topic)
                plan = await make_plan(
                    in_order(source, ranges),
                    ranges,
                    selection,
                    PostgresInbox(pool),
                    settings.max_message_bytes,
                    lock_cap=settings.max_locks_per_transaction,
                )
                plan_id = fingerprint(
                    {"topic": topic, "args": _selected_args(args), **plan.document()}
                )
                run.plan_fingerprint = plan_id
                run.counts = dict(plan.counts)
                document: dict[str, Any] = {
                    "topic": topic,
                    "fingerprint": plan_id,
                    **plan.document(),
                }
                if not args.json:
                    _print_plan(topic, plan, plan_id)
                return await _after_plan(
                    settings, args, run, pool, source, selection, plan, document
                )
        finally:
            await pool.close()


def _selected_args(args: argparse.Namespace) -> dict[str, Any]:
    return {
        k: getattr(args, k)
        for k in ("partition", "from_offset", "to_offset", "since", "until", "sku", "type", "key")
    }


def _refuse(args: argparse.Namespace, document: dict[str, Any], reason: str) -> Refused:
    if args.json:
        print_json({**document, "refused": reason})
    return Refused(reason)


async def _after_plan(
    settings: Settings,
    args: argparse.Namespace,
    run: AuditRun,
    pool: asyncpg.Pool,
    source: _Source,
    selection: Selection,
    plan: Plan,
    document: dict[str, Any],
) -> int:
    if args.what_if:
        try:
            report, written = await what_if(
                plan,
                source,
                selection,
                RolledBack(pool),
                partial(build_service, settings),
                settings.max_locks_per_transaction,
                settings.batch_size,
                settings.max_message_bytes,
            )
        except LockBudgetExceeded as exc:
            raise _refuse(args, document, str(exc)) from None
        document.update(what_if=True, report=_report_document(report), **_changes_document(written))
        if args.json:
            print_json(document)
        else:
            print("what-if: applied in a transaction that was rolled back; nothing changed")
            _print_changes(written)
        return EXIT_OK
    if not args.execute:
        if args.json:
            print_json(document)
        else:
            print("dry run: nothing done (--what-if shows the changes, --execute runs it)")
        return EXIT_OK
    if plan.counts[TO_APPLY] and not args.allow_reapply:
        raise _refuse(
            args,
            document,
            f"{plan.counts[TO_APPLY]} selected commands are not in the inbox and would be "
            "applied again (inbox retention, or another database): check them with "
            "--what-if, then add --allow-reapply",
        )
    written = Written()
    progress = Progress("replay", plan.selected)
    try:
        report = await execute(
            plan,
            source,
            selection,
            build_service(settings, RecordingUnitOfWorkFactory(pool, written)),
            PostgresInbox(pool),
            args.allow_reapply,
            Pace(args.rate),
            settings.batch_size,
            settings.max_message_bytes,
            progress=progress.advance,
            retrying=_retrying(settings),
        )
    except NotInInbox as exc:
        progress.finish()
        run.counts.update({f"done_{k}": v for k, v in _report_document(exc.done).items()})
        raise _refuse(args, {**document, "report": _report_document(exc.done)}, str(exc)) from None
    progress.finish()
    run.counts.update({f"done_{k}": v for k, v in _report_document(report).items()})
    relaying = await relay_running(pool)
    async with pool.acquire() as conn:
        ledger = await check_ledger(conn)
    document.update(
        executed=True,
        report=_report_document(report),
        relay_running=relaying,
        ledger_differences={
            f"{k.sku}@{k.location}": v for k, v in sorted(ledger.differences.items())
        },
        **_changes_document(written),
    )
    if args.json:
        print_json(document)
    else:
        _print_changes(written)
        r = report
        print(
            f"replayed: {r.applied} applied, {r.rejected} rejected, {r.duplicates} duplicates "
            f"(stored result re-published), {r.dead_lettered} dead-lettered"
        )
        if not relaying:
            print(
                "warning: no outbox relay holds its lock on this database: the results and "
                "events written to the outbox wait until a worker or `stockworker relay` runs"
            )
        for key, problems in sorted(ledger.differences.items()):
            for problem in problems:
                print(f"ledger: {key.sku}@{key.location}: {problem}")
        print(
            f"ledger check: {ledger.positions_checked} positions, {ledger.entries} entries, "
            f"{len(ledger.differences)} with differences"
        )
    return EXIT_REFUSED if ledger.differences else EXIT_OK


# rebuild


class _Counted:
    """What a rebuild wrote: only counted (its outbox messages are not written)."""

    def __init__(self) -> None:
        self.messages = 0

    def committed(self, changes: Sequence[StateChanges], messages: Sequence[OutboxMessage]) -> None:
        self.messages += len(messages)


def _rebuild(settings: Settings, args: argparse.Namespace) -> int:
    if args.rate is not None and args.rate <= 0:
        raise BadInput("--rate must be positive")
    if args.into == settings.database_url:
        raise BadInput("--into is the live database (DATABASE_URL): give an empty one")
    return asyncio.run(_run_rebuild(settings, args))


async def _run_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    topic = Topics(settings.topic_prefix).commands
    recorded = argparse.Namespace(**{**vars(args), "into": without_password(args.into)})
    async with audited(settings.database_url, "rebuild", recorded) as run:
        live = await _open(settings, settings.database_url, "DATABASE_URL")
        try:
            target = await _open(settings, args.into, "--into")
            try:
                return await _rebuild_into(settings, args, run, topic, live, target)
            finally:
                await target.close()
        finally:
            await live.close()


def without_password(url: str) -> str:
    """`url` with its password, in the user part or as a `password=` query parameter,
    replaced by `***` (what is recorded in ops_audit)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        name = user.partition(":")[0]
        netloc = f"{name}:***@{host}"
    query = urlencode(
        [
            (k, "***" if k.lower() == "password" else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query if parts.query else ""))


async def _rebuild_into(
    settings: Settings,
    args: argparse.Namespace,
    run: AuditRun,
    topic: str,
    live: asyncpg.Pool,
    target: asyncpg.Pool,
) -> int:
    held = await rows_held(target)
    if any(held.values()):
        raise Refused(
            f"--into is not empty ({held['positions']} positions, {held['inbox']} inbox "
            f"entries, {held['ledger']} ledger entries): rebuild only into a fresh, migrated "
            "database"
        )
    expiries = await recorded_expiries(live)
    async with TopicReader(settings.kafka()) as reader:
        try:
            bounds = await reader.bounds(topic)
        except UnknownTopicOrPartition as exc:
            raise BadInput(str(exc)) from None
        trimmed = {p: b.beginning for p, b in bounds.items() if b.beginning > 0}
        ranges = {p: (b.beginning, b.end) for p, b in bounds.items() if b.end > b.beginning}
        total = sum(b - a for a, b in ranges.values())
        plan = {
            "topic": topic,
            "ranges": {str(p): {"from": a, "to": b - 1} for p, (a, b) in sorted(ranges.items())},
            "records": total,
            "sweeper_expiries": len(expiries),
            "trimmed_by_retention": {str(p): b for p, b in sorted(trimmed.items())},
        }
        run.plan_fingerprint = fingerprint(plan)
        run.counts = {"records": total, "sweeper_expiries": len(expiries)}
        if not args.json:
            print(
                f"rebuild plan: {total} records of {topic} and {len(expiries)} reservation "
                "expiries of the live sweeper, into an empty database"
            )
            for p, (a, b) in sorted(ranges.items()):
                print(f"  partition {p}: offsets {a}..{b - 1}")
        if trimmed and not args.allow_partial:
            reason = (
                "retention has removed the first commands of partition "
                + ", ".join(f"{p} (it begins at {b})" for p, b in sorted(trimmed.items()))
                + ": a rebuild would be partial (--allow-partial to do it anyway)"
            )
            if args.json:
                print_json({**plan, "refused": reason})
            raise Refused(reason)
        if not args.execute:
            if args.json:
                print_json(plan)
            else:
                print("dry run: nothing done (--execute to rebuild)")
            return EXIT_OK
        counted = _Counted()
        unit_of_work = RecordingUnitOfWorkFactory(target, counted, write_outbox=False)
        service = build_service(settings, unit_of_work)
        progress = Progress("rebuild", total)

        report = await rebuild(
            service,
            unit_of_work,
            in_order(_Source(reader, topic), ranges),
            expiries,
            Pace(args.rate),
            settings.batch_size,
            settings.max_message_bytes,
            progress=progress.advance,
            retrying=_retrying(settings),
        )
        progress.finish()
    differences = compare_positions(await all_positions(live), await all_positions(target))
    result = {
        **plan,
        "executed": True,
        "report": _report_document(report.batches),
        "expiries_applied": report.expiries_applied,
        "expiries_not_reproduced": report.expiries_not_reproduced,
        "outbox_messages_not_written": counted.messages,
        "differences": differences,
    }
    run.counts.update(
        applied=report.batches.applied,
        rejected=report.batches.rejected,
        expiries_applied=report.expiries_applied,
        differences=len(differences),
    )
    if args.json:
        print_json(result)
    else:
        done = report.batches
        print(
            f"rebuilt: {done.applied} applied, {done.rejected} rejected, "
            f"{done.duplicates} duplicates, "
            f"{report.expiries_applied} expiries; {counted.messages} result and event messages "
            "not written to the target's outbox (they were published from the live database)"
        )
        for line in report.expiries_not_reproduced:
            print(f"expiry not reproduced: {line}")
        for line in differences:
            print(f"difference: {line}")
        print(f"{len(differences)} differences from the live database's positions")
    return EXIT_REFUSED if differences or report.expiries_not_reproduced else EXIT_OK
