"""`stockworker dlq list|show|redrive`: the dead letters of the commands topic.

Reads the dead-letter topic (outside any consumer group), tells open dead letters from
resolved ones (`dead_letter_resolution`), and redrives chosen ones back to the commands
topic: dry run unless --execute, refused for one already redriven unless --force, each
run that ends recorded in ops_audit (the row and the resolutions are written when it
ends: a run killed part way leaves neither, and sending again is safe because the worker
dedupes by command id). Dead letters written by Kafka Connect or Spring Kafka are
understood too (service/dead_letter_triage.py).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from stockworker.adapters.kafka.record_sender import RecordSender
from stockworker.adapters.kafka.topic_reader import TopicReader, UnknownTopicOrPartition
from stockworker.adapters.postgres.ops_audit import OpsAudit, Resolution
from stockworker.config import Settings
from stockworker.entrypoints.ops.common import (
    EXIT_OK,
    EXIT_REFUSED,
    AuditRun,
    BadInput,
    OperatorError,
    Progress,
    Refused,
    add_output_option,
    add_write_options,
    audited,
    fingerprint,
    parse_moment,
    print_json,
)
from stockworker.service.dead_letter_triage import (
    DeadLetterView,
    EditRefused,
    RedriveRecord,
    Selection,
    decode_bytes,
    group_failures,
    header_text,
    message_fingerprint,
    parse_place,
    place_text,
    plan_document,
    read_dead_letter,
)
from stockworker.service.limits import record_limit
from stockworker.service.redrive import (
    Original,
    build_records,
    choose,
    plan_counts,
    request_error,
    send_failure,
)
from stockworker.service.topics import Topics

# Below this many records a run shows no progress, only its result.
_PROGRESS_FROM = 1000


def register(sub: Any) -> None:
    parser = sub.add_parser("dlq", help="dead letters: list, show, redrive to the commands topic")
    actions = parser.add_subparsers(dest="dlq_command", required=True)

    listing = actions.add_parser("list", help="dead letters, oldest first (open ones unless --all)")
    _add_filters(listing)
    listing.add_argument(
        "--all", action="store_true", help="resolved ones too (redriven, discarded)"
    )
    listing.add_argument(
        "--group",
        action="store_true",
        help="one line per error code and message fingerprint: counts, first and last seen",
    )
    add_output_option(listing)
    listing.set_defaults(handler=_list)

    show = actions.add_parser("show", help="one dead letter: bytes, headers, source, error")
    show.add_argument(
        "place", metavar="PARTITION:OFFSET", help="its place in the dead-letter topic"
    )
    add_output_option(show)
    show.set_defaults(handler=_show)

    redrive = actions.add_parser(
        "redrive", help="send dead letters back to the commands topic (dry run unless --execute)"
    )
    redrive.add_argument(
        "places", metavar="PARTITION:OFFSET", nargs="*", help="dead letters, by place"
    )
    _add_filters(redrive)
    redrive.add_argument(
        "--edit",
        metavar="FILE",
        type=Path,
        help="send this file's bytes as the value instead (one dead letter only)",
    )
    redrive.add_argument(
        "--new-command-id",
        action="store_true",
        help="give the edited command an id of its own (automatic when its id was the problem)",
    )
    redrive.add_argument(
        "--rate", type=float, metavar="N", help="at most N records per second (default: no limit)"
    )
    redrive.add_argument(
        "--force", action="store_true", help="redrive dead letters already redriven"
    )
    add_write_options(redrive)
    redrive.set_defaults(handler=_redrive)

    discard = actions.add_parser(
        "discard",
        help="mark dead letters as dealt with, sending nothing (dry run unless --execute)",
    )
    discard.add_argument(
        "places", metavar="PARTITION:OFFSET", nargs="*", help="dead letters, by place"
    )
    _add_filters(discard)
    discard.add_argument(
        "--force", action="store_true", help="discard dead letters already dealt with"
    )
    add_write_options(discard)
    discard.set_defaults(handler=_discard)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--code",
        action="append",
        metavar="C",
        help="error code (dlq.error.code, or an exception class); repeatable",
    )
    parser.add_argument(
        "--since",
        metavar="T",
        help="written at or after T (ISO 8601 with offset, or 30m/2h/7d ago)",
    )
    parser.add_argument("--until", metavar="T", help="written before T (same forms)")
    parser.add_argument("--key", metavar="K", help="the record key (UTF-8), exactly")
    parser.add_argument(
        "--source-partition",
        type=int,
        metavar="P",
        help="consumed from this partition of its source topic",
    )


# Arguments ------------------------------------------------------------------------------

_AGO = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str, option: str, now: datetime | None = None) -> datetime:
    """ISO 8601 with an offset (or Z), or a duration ago: 90s, 30m, 2h, 7d."""
    ago = _AGO.fullmatch(text.strip())
    if ago:
        amount, unit = int(ago.group(1)), ago.group(2)
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: amount})
    return parse_moment(text, option)


def _selection(args: argparse.Namespace) -> Selection:
    since = parse_time(args.since, "--since") if args.since else None
    until = parse_time(args.until, "--until") if args.until else None
    if since is not None and until is not None and until <= since:
        raise BadInput(f"--until {args.until} is not after --since {args.since}")
    if args.source_partition is not None and args.source_partition < 0:
        raise BadInput(f"--source-partition {args.source_partition} is not a partition")
    return Selection(
        codes=tuple(args.code or ()),
        key=args.key,
        source_partition=args.source_partition,
        since=since,
        until=until,
    )


def _has_filters(args: argparse.Namespace) -> bool:
    return bool(args.code or args.since or args.until or args.key is not None) or (
        args.source_partition is not None
    )


def _place(text: str) -> tuple[int, int]:
    try:
        return parse_place(text)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


# Reading --------------------------------------------------------------------------------


@dataclass
class Scan:
    views: list[DeadLetterView] = field(default_factory=list)
    in_time_range: int = 0  # records read in the time range, before the other filters
    not_dead_letters: int = 0


def _range_text(selection: Selection) -> str:
    since = selection.since.isoformat() if selection.since else "the beginning"
    until = selection.until.isoformat() if selection.until else "now"
    return f"between {since} and {until}"


async def _scan(reader: TopicReader, topics: Topics, selection: Selection, label: str) -> Scan:
    """The dead letters matching the selection, oldest first per partition."""
    topic = topics.dead_letters
    try:
        bounds = await reader.bounds(topic)
        if selection.source_partition is not None:
            await reader.bounds(topics.commands, [selection.source_partition])
    except UnknownTopicOrPartition as exc:
        raise BadInput(str(exc)) from None
    ranges = {p: (b.beginning, b.end) for p, b in bounds.items()}
    if selection.since is not None:
        starts = await reader.offsets_at(topic, selection.since)
        ranges = {p: (max(s, starts[p]), e) for p, (s, e) in ranges.items()}
    if selection.until is not None:
        ends = await reader.offsets_at(topic, selection.until)
        ranges = {p: (s, min(e, ends[p])) for p, (s, e) in ranges.items()}
    ranges = {p: r for p, r in ranges.items() if r[1] > r[0]}
    total = sum(e - s for s, e in ranges.values())
    progress = Progress(label, total) if total >= _PROGRESS_FROM else None
    scan = Scan()
    timed = selection.since is not None or selection.until is not None
    async for records in reader.read(topic, ranges):
        for record in records:
            if timed and not _in_time_range(selection, record.timestamp):
                continue
            scan.in_time_range += 1
            view = read_dead_letter(record)
            if view is None:
                scan.not_dead_letters += 1
            elif selection.matches(view):
                scan.views.append(view)
        if progress:
            progress.advance(len(records))
    if progress:
        progress.finish()
    if timed and scan.in_time_range == 0:
        raise BadInput(f"the dead-letter topic {topic} has nothing {_range_text(selection)}")
    scan.views.sort(key=lambda v: (v.timestamp, v.partition, v.offset))
    return scan


def _in_time_range(selection: Selection, moment: datetime) -> bool:
    if selection.since is not None and moment < selection.since:
        return False
    return selection.until is None or moment < selection.until


async def _one(reader: TopicReader, topic: str, place: tuple[int, int]) -> DeadLetterView:
    partition, offset = place
    try:
        bounds = (await reader.bounds(topic, [partition]))[partition]
    except UnknownTopicOrPartition as exc:
        raise BadInput(str(exc)) from None
    record = await reader.read_one(topic, partition, offset)
    if record is None:
        held = (
            f"it holds {bounds.beginning} to {bounds.end - 1}" if bounds.records else "it is empty"
        )
        raise BadInput(f"no record at {place_text(*place)} in {topic} ({held})")
    view = read_dead_letter(record)
    if view is None:
        raise BadInput(
            f"{place_text(*place)} in {topic} is not a dead letter "
            "(no dlq.error.code, no Kafka Connect or Spring error headers)"
        )
    return view


async def _resolutions(
    database_url: str, topic: str, places: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], Resolution]:
    conn = await asyncpg.connect(database_url)
    try:
        return await OpsAudit(conn).resolutions(topic, places)
    finally:
        await conn.close()


def _status(resolution: Resolution | None) -> str:
    return "open" if resolution is None else resolution.resolution


def _view_document(view: DeadLetterView, resolution: Resolution | None) -> dict[str, Any]:
    command = view.command() or {}
    return {
        "place": place_text(*view.place),
        "partition": view.partition,
        "offset": view.offset,
        "time": view.timestamp,
        "writer": view.writer,
        "code": view.code,
        "message": view.message,
        "fingerprint": message_fingerprint(view.code, view.message),
        "key": view.key_text if view.key is not None else None,
        "source": None if view.source is None else str(view.source),
        "size": view.size,
        "trimmed": view.trimmed,
        "command_id": command.get("command_id"),
        "command_type": command.get("type"),
        "status": _status(resolution),
        "resolved_by_audit_id": None if resolution is None else resolution.audit_id,
    }


# dlq list -------------------------------------------------------------------------------


def _list(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_list_async(settings, args))


async def _list_async(settings: Settings, args: argparse.Namespace) -> int:
    topics = Topics(settings.topic_prefix)
    selection = _selection(args)
    async with TopicReader(settings.kafka()) as reader:
        scan = await _scan(reader, topics, selection, "reading dead letters")
    resolutions = await _resolutions(
        settings.database_url, topics.dead_letters, [v.place for v in scan.views]
    )
    views = scan.views if args.all else [v for v in scan.views if v.place not in resolutions]
    if args.group:
        groups = group_failures(views, resolutions)
        if args.json:
            print_json([asdict(g) for g in groups])
            return EXIT_OK
        print(
            f"{'COUNT':>6} {'OPEN':>5} {'CODE':<22} {'FIRST SEEN':<20} {'LAST SEEN':<20} "
            f"{'EXAMPLE':<10} MESSAGE"
        )
        for g in groups:
            print(
                f"{g.count:>6} {g.open:>5} {g.code[-22:]:<22} {_when(g.first_seen):<20} "
                f"{_when(g.last_seen):<20} {g.example:<10} {g.template[:100]}"
            )
        return EXIT_OK
    if args.json:
        print_json([_view_document(v, resolutions.get(v.place)) for v in views])
        return EXIT_OK
    if not views:
        print("no dead letters" + ("" if args.all else " open (--all shows resolved ones)"))
        return EXIT_OK
    print(
        f"{'PLACE':<10} {'TIME':<20} {'CODE':<20} {'KEY':<16} {'SOURCE':<28} "
        f"{'SIZE':>8} {'STATUS':<16} MESSAGE"
    )
    for v in views:
        size = f"{v.size}{'*' if v.trimmed else ''}"
        print(
            f"{place_text(*v.place):<10} {_when(v.timestamp):<20} {v.short_code()[:20]:<20} "
            f"{v.key_text[:16]:<16} {_source_text(v, topics):<28} {size:>8} "
            f"{_status(resolutions.get(v.place)):<16} {v.message[:80]}"
        )
    if any(v.trimmed for v in views):
        print("* trimmed for size: redrive re-reads it whole from its source offset")
    return EXIT_OK


def _source_text(view: DeadLetterView, topics: Topics) -> str:
    """The source place; `P:O` when it is the commands topic (the usual case)."""
    if view.source is None:
        return "-"
    if view.source.topic == topics.commands:
        return f"{view.source.partition}:{view.source.offset}"
    return str(view.source)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


# dlq show -------------------------------------------------------------------------------


def _show(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_show_async(settings, args))


async def _show_async(settings: Settings, args: argparse.Namespace) -> int:
    topics = Topics(settings.topic_prefix)
    place = _place(args.place)
    async with TopicReader(settings.kafka()) as reader:
        view = await _one(reader, topics.dead_letters, place)
    resolution = (await _resolutions(settings.database_url, topics.dead_letters, [place])).get(
        place
    )
    document = {
        **_view_document(view, resolution),
        "dead_letter_topic": view.topic,
        "original_size": view.original_size,
        "original_key_size": view.original_key_size,
        "headers_dropped": view.headers_dropped,
        "details": view.details,
        "key_bytes": decode_bytes(view.key),
        "value": decode_bytes(view.value),
        "headers": [[k, header_text(v)] for k, v in view.original_headers],
        "dead_letter_headers": [[k, header_text(v)] for k, v in view.dead_letter_headers],
        "resolution": None
        if resolution is None
        else {
            "resolution": resolution.resolution,
            "command_id": resolution.command_id,
            "audit_id": resolution.audit_id,
            "resolved_at": resolution.resolved_at,
        },
    }
    if args.json:
        print_json(document)
        return EXIT_OK
    print(
        f"dead letter {place_text(*place)} of {view.topic}, written {view.timestamp.isoformat()} "
        f"by {view.writer}"
    )
    print(f"  error:   {view.code}: {view.message}")
    print(f"  source:  {view.source or 'unknown'}")
    print(f"  key:     {_shown(view.key)}")
    print(
        f"  status:  {_status(resolution)}"
        + (
            ""
            if resolution is None
            else f" (audit {resolution.audit_id}, {resolution.resolved_at.isoformat()})"
        )
    )
    if view.trimmed:
        print(
            f"  trimmed: value {view.original_size or '-'} bytes, "
            f"key {view.original_key_size or '-'} bytes, {view.headers_dropped or 0} header(s) "
            "left out: the whole record is at its source offset"
        )
    for name, text in view.details.items():
        first = text.splitlines()[0] if text else ""
        print(f"  {name}: {first}")
    print("  headers:")
    for k, v in view.original_headers:
        print(f"    {k}: {header_text(v)}")
    print("  dead-letter headers:")
    for k, v in view.dead_letter_headers:
        print(f"    {k}: {header_text(v)}")
    print(f"  value ({document['value'].get('encoding')}, {len(view.value or b'')} bytes):")
    print("    " + _shown(view.value, whole=True).replace("\n", "\n    "))
    return EXIT_OK


def _shown(value: bytes | None, whole: bool = False) -> str:
    decoded = decode_bytes(value)
    if decoded["encoding"] == "null":
        return "(none)"
    if decoded["encoding"] == "base64":
        return f"base64:{decoded['data']}" if whole else f"hex:{decoded['hex_preview']}"
    if decoded["encoding"] == "json":
        return orjson.dumps(decoded["data"], option=orjson.OPT_INDENT_2).decode()
    return str(decoded["data"])


# dlq redrive ----------------------------------------------------------------------------


class SendFailed(OperatorError):
    """Kafka refused a record part way: the ones acknowledged before it are then marked
    resolved (the message says whether that worked)."""

    exit_code = EXIT_REFUSED


class ResolveFailed(OperatorError):
    """Everything was sent but the resolutions could not be written."""

    exit_code = EXIT_REFUSED


@dataclass
class RedriveOutcome:
    records: list[RedriveRecord] = field(default_factory=list)
    sent: list[RedriveRecord] = field(default_factory=list)


def _redrive(settings: Settings, args: argparse.Namespace) -> int:
    places = [_place(p) for p in args.places]
    error = request_error(
        len(places), _has_filters(args), args.edit is not None, args.new_command_id, args.rate
    )
    if error is not None:
        raise BadInput(error)
    selection = None if places else _selection(args)
    edited: bytes | None = None
    if args.edit is not None:
        try:
            edited = args.edit.read_bytes()
        except OSError as exc:
            raise BadInput(f"--edit {args.edit}: {exc.strerror or exc}") from None
        if not edited:
            raise BadInput(f"--edit {args.edit} is empty")
    return asyncio.run(_redrive_async(settings, args, places, selection, edited))


async def _redrive_async(
    settings: Settings,
    args: argparse.Namespace,
    places: list[tuple[int, int]],
    selection: Selection | None,
    edited: bytes | None,
) -> int:
    topics = Topics(settings.topic_prefix)
    run_id = uuid.uuid4()
    outcome = RedriveOutcome()
    runs: list[AuditRun] = []
    # The resolutions refer to the audit row, which exists only once the run has ended:
    # they are written after it, for exactly the records the broker acknowledged.
    try:
        async with audited(settings.database_url, "dlq redrive", args) as run:
            runs.append(run)
            run.arguments["run_id"] = str(run_id)
            await _redrive_run(
                settings, args, topics, places, selection, edited, run, run_id, outcome
            )
    except SendFailed as exc:
        if not outcome.sent:
            raise
        _, note = await _mark_resolved(settings.database_url, topics, outcome, runs)
        raise SendFailed(f"{exc}; {note}") from exc.__cause__
    except BaseException:
        if outcome.sent:  # interrupted while sending: still account for what went
            marked, note = await _mark_resolved(settings.database_url, topics, outcome, runs)
            if not marked:
                print(f"stockworker dlq: {note}", file=sys.stderr)
        raise
    marked, note = (
        await _mark_resolved(settings.database_url, topics, outcome, runs)
        if outcome.sent
        else (True, "")
    )
    _print_outcome(args, topics, outcome, runs[0], run_id)
    if not marked:
        raise ResolveFailed(f"all {len(outcome.sent)} sent; {note}")
    return EXIT_OK


async def _mark_resolved(
    database_url: str, topics: Topics, outcome: RedriveOutcome, runs: list[AuditRun]
) -> tuple[bool, str]:
    """Records the sent dead letters as resolved: (whether it worked, what came of it)."""
    audit_id = runs[0].audit_id if runs else None
    count = len(outcome.sent)
    if audit_id is not None:
        try:
            await _resolve(
                database_url,
                topics.dead_letters,
                [(r.dead_letter, r.resolution, r.command_id) for r in outcome.sent],
                audit_id,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        else:
            return True, f"the {count} sent are marked resolved (audit {audit_id})"
    else:
        reason = "the run's audit row was not written"
    return False, (
        f"the {count} sent could NOT be marked resolved ({reason}): they still show open, "
        "and a later redrive sends them again, which the worker takes as duplicates "
        "(same command ids: not applied twice)"
    )


async def _redrive_run(
    settings: Settings,
    args: argparse.Namespace,
    topics: Topics,
    places: list[tuple[int, int]],
    selection: Selection | None,
    edited: bytes | None,
    run: AuditRun,
    run_id: UUID,
    outcome: RedriveOutcome,
) -> None:
    async with TopicReader(settings.kafka()) as reader:
        if selection is None:
            views = [await _one(reader, topics.dead_letters, p) for p in dict.fromkeys(places)]
        else:
            views = (await _scan(reader, topics, selection, "selecting dead letters")).views
            if not views:
                raise BadInput("no dead letters match the filters")
        resolutions = await _resolutions(
            settings.database_url, topics.dead_letters, [v.place for v in views]
        )
        choice = choose(views, resolutions, args.force, by_place=selection is None)
        run.counts = choice.counts()
        if choice.refusal is not None:
            raise Refused(choice.refusal)
        originals: dict[tuple[int, int], Original] = {}
        for view in choice.reread():
            try:
                originals[view.place] = await _whole_original(reader, view)
            except BadInput:
                if edited is None:
                    raise
                # The edited bytes replace the value: the dead letter's own key and
                # headers go with them when the source no longer holds the original.
    try:
        records = build_records(choice, run_id, originals, edited, args.new_command_id)
    except EditRefused as exc:
        raise BadInput(f"--edit {args.edit}: {exc}") from None
    outcome.records = records
    run.plan_fingerprint = fingerprint(plan_document(records, topics.commands))
    run.counts = plan_counts(choice, records)
    if not args.execute:
        return
    progress = Progress("redriving", len(records)) if len(records) >= _PROGRESS_FROM else None

    def sent(index: int) -> None:
        outcome.sent.append(records[index])
        run.counts["sent"] = len(outcome.sent)
        if progress:
            progress.advance()

    try:
        async with RecordSender(
            settings.kafka(), record_limit(settings.max_message_bytes)
        ) as sender:
            await sender.send(
                topics.commands,
                [(r.key, r.value, r.headers) for r in records],
                rate=args.rate,
                on_sent=sent,
            )
    except Exception as exc:
        raise SendFailed(send_failure(records, outcome.sent, exc)) from exc
    if progress:
        progress.finish()


async def _whole_original(
    reader: TopicReader, view: DeadLetterView
) -> tuple[bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...]]:
    source = view.source
    if source is None or source.partition is None or source.offset is None:
        raise BadInput(
            f"{place_text(*view.place)} was trimmed for size and does not say where its "
            "original is: it cannot be redriven whole (use --edit)"
        )
    try:
        record = await reader.read_one(source.topic, source.partition, source.offset)
    except UnknownTopicOrPartition as exc:
        raise BadInput(f"{place_text(*view.place)}: its source is gone: {exc}") from None
    if record is None:
        raise BadInput(
            f"{place_text(*view.place)} was trimmed for size and its original at {source} "
            "is no longer held (topic retention): it cannot be redriven whole (use --edit)"
        )
    return record.key, record.value, record.headers


async def _resolve(
    database_url: str,
    topic: str,
    resolved: Sequence[tuple[tuple[int, int], str, UUID | None]],
    audit_id: int,
) -> None:
    """Records how these dead letters (place, resolution, command id) were dealt with."""
    conn = await asyncpg.connect(database_url)
    try:
        audit = OpsAudit(conn)
        async with conn.transaction():
            for (partition, offset), resolution, command_id in resolved:
                await audit.resolve(topic, partition, offset, resolution, audit_id, command_id)
    finally:
        await conn.close()


def _print_outcome(
    args: argparse.Namespace, topics: Topics, outcome: RedriveOutcome, run: AuditRun, run_id: UUID
) -> None:
    if args.json:
        print_json(
            {
                "executed": bool(args.execute),
                "audit_id": run.audit_id,
                "run_id": str(run_id),
                "plan_fingerprint": run.plan_fingerprint,
                "target_topic": topics.commands,
                "counts": run.counts,
                "records": [
                    {
                        "dead_letter": place_text(*r.dead_letter),
                        "key": None if r.key is None else r.key.decode("utf-8", "replace"),
                        "command_id": None if r.command_id is None else str(r.command_id),
                        "resolution": r.resolution,
                        "headers": [[k, header_text(v)] for k, v in r.headers],
                        "headers_left_out": list(r.headers_left_out),
                        "value": decode_bytes(r.value),
                        "sent": r in outcome.sent,
                    }
                    for r in outcome.records
                ],
            }
        )
        return
    verb = "sent" if args.execute else "would send"
    for r in outcome.records:
        key = "-" if r.key is None else r.key.decode("utf-8", "replace")
        extra = (
            f", {len(r.headers_left_out)} header(s) left out: key not UTF-8 or holding NUL "
            f"(hex: {', '.join(r.headers_left_out)})"
            if r.headers_left_out
            else ""
        )
        print(
            f"{verb} {place_text(*r.dead_letter)} -> {topics.commands} key={key} "
            f"command_id={r.command_id or '-'} ({r.resolution}{extra})"
        )
    counts = run.counts
    if args.execute:
        print(
            f"redrive: {counts.get('sent', 0)} of {counts.get('to_send', 0)} sent and marked "
            f"resolved (audit {run.audit_id}, plan {run.plan_fingerprint})"
        )
    else:
        print(
            f"dry run: {counts.get('to_send', 0)} would be sent (plan {run.plan_fingerprint}, "
            f"audit {run.audit_id}); run again with --execute"
        )
    if counts.get("refused_resolved"):
        print(f"skipped {counts['refused_resolved']} already resolved (--force redrives them)")


def _discard(settings: Settings, args: argparse.Namespace) -> int:
    places = [_place(p) for p in args.places]
    if bool(places) == _has_filters(args):
        raise BadInput(
            "name the dead letters by PARTITION:OFFSET or select them with filters "
            "(--code, --since, --until, --key, --source-partition), not both"
        )
    return asyncio.run(_discard_async(settings, args, places))


async def _discard_async(
    settings: Settings, args: argparse.Namespace, places: list[tuple[int, int]]
) -> int:
    """Records the chosen dead letters as `discarded`: they leave `dlq list`, and a
    redrive of them is refused unless forced. Nothing is sent anywhere."""
    topics = Topics(settings.topic_prefix)
    async with audited(settings.database_url, "dlq discard", args) as run:
        async with TopicReader(settings.kafka()) as reader:
            if places:
                views = [await _one(reader, topics.dead_letters, p) for p in dict.fromkeys(places)]
            else:
                views = (
                    await _scan(reader, topics, _selection(args), "selecting dead letters")
                ).views
                if not views:
                    raise BadInput("no dead letters match the filters")
        resolutions = await _resolutions(
            settings.database_url, topics.dead_letters, [v.place for v in views]
        )
        choice = choose(views, resolutions, args.force, by_place=bool(places), action="discard")
        run.counts = {**choice.counts(), "discarded": 0}
        if choice.refusal is not None:
            raise Refused(choice.refusal)
        chosen = [v.place for v in choice.send]
        run.plan_fingerprint = fingerprint(["discard", topics.dead_letters, chosen])
        if args.execute:
            # Recorded with the run's own row once it exists (below); counted here.
            run.counts["discarded"] = len(chosen)
    if args.execute and chosen:
        if run.audit_id is None:  # the block above writes it, or raises
            raise RuntimeError("the discard's audit row was not written")
        discarded = [(place, "discarded", None) for place in chosen]
        await _resolve(settings.database_url, topics.dead_letters, discarded, run.audit_id)
    if args.json:
        print_json(
            {
                "executed": bool(args.execute),
                "audit_id": run.audit_id,
                "plan_fingerprint": run.plan_fingerprint,
                "counts": run.counts,
                "dead_letters": [place_text(*p) for p in chosen],
            }
        )
        return EXIT_OK
    verb = "discarded" if args.execute else "would discard"
    for view in choice.send:
        print(f"{verb} {place_text(*view.place)} {view.code} key={view.key_text or '-'}")
    tail = "" if args.execute else " (dry run: nothing changed; --execute to discard)"
    print(f"{len(chosen)} dead letter(s) {verb}{tail}; audit {run.audit_id}")
    return EXIT_OK
