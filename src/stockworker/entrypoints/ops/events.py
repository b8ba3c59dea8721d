"""`stockworker events republish`: publish events again, with their original ids, for a
subscriber that lost some (service/republish.py says what is rebuilt from where)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from stockworker.adapters.kafka.publisher import KafkaPublisher
from stockworker.adapters.postgres.ledger import PostgresRepublishSource
from stockworker.adapters.postgres.unit_of_work import PostgresUnitOfWorkFactory
from stockworker.config import Settings
from stockworker.entrypoints.ops.common import (
    EXIT_OK,
    EXIT_REFUSED,
    BadInput,
    OperatorError,
    Progress,
    add_write_options,
    audited,
    fingerprint,
    parse_moment,
    print_json,
)
from stockworker.service.limits import record_limit
from stockworker.service.ports import OutboxMessage
from stockworker.service.republish import (
    KINDS,
    RepublishReport,
    Selection,
    republish,
    seed_snapshots,
)
from stockworker.service.topics import Topics


class PublishFailed(OperatorError):
    """The broker did not take every record (those before the failure were sent)."""

    exit_code = EXIT_REFUSED


def register(sub: Any) -> None:
    events = sub.add_parser(
        "events", help="events for subscribers: republish them, seed the snapshot topic"
    )
    actions = events.add_subparsers(dest="events_command", required=True)
    parser = actions.add_parser(
        "republish",
        help="publish events again with their original ids (from the ledger and the inbox)",
        description=(
            "Rebuild StockChanged, LowStock/StockReplenished (from the ledger) and command "
            "results (the inbox's stored bytes) of commands that occurred in a time range, "
            "for some SKUs or a location, and publish them again with their original "
            "event ids. Prints the plan unless --execute."
        ),
    )
    parser.add_argument("--since", metavar="TIME", help="occurred at or after (ISO 8601, offset)")
    parser.add_argument("--until", metavar="TIME", help="occurred before (ISO 8601, offset)")
    _add_position_filter(parser)
    parser.add_argument(
        "--kind",
        action="append",
        choices=KINDS,
        help="only events of this kind (repeatable; default all three)",
    )
    add_write_options(parser)
    parser.set_defaults(handler=_republish)

    seed = actions.add_parser(
        "snapshot",
        help="write positions' current state to the snapshot topic (through the outbox)",
        description=(
            "Write the current PositionSnapshot of the selected positions (default all) to "
            "the outbox, each page of positions under the worker's locks; the relay "
            "publishes them to the compacted snapshot topic in order with its own. Needed "
            "once after upgrading to a version with the snapshot topic: positions not "
            "changed since have no snapshot. Prints the count unless --execute."
        ),
    )
    _add_position_filter(seed)
    add_write_options(seed)
    seed.set_defaults(handler=_snapshot, since=None, until=None, kind=None)


def _add_position_filter(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sku", action="append", metavar="SKU", help="only this SKU (repeatable; default all)"
    )
    parser.add_argument("--location", metavar="CODE", help="only this location (default all)")


def _moment(text: str | None, option: str) -> datetime | None:
    return None if text is None else parse_moment(text, option)


def selection_of(args: argparse.Namespace) -> Selection:
    since, until = _moment(args.since, "--since"), _moment(args.until, "--until")
    if since is not None and until is not None and since >= until:
        raise BadInput("--since must be before --until")
    return Selection(
        since=since,
        until=until,
        skus=tuple(dict.fromkeys(args.sku or ())),
        location=args.location,
        kinds=tuple(dict.fromkeys(args.kind or KINDS)),
    )


def _republish(settings: Settings, args: argparse.Namespace) -> int:
    selection = selection_of(args)
    report, audit_id = asyncio.run(_run(settings, args, selection))
    _print(args, selection, report, audit_id)
    return EXIT_OK


async def _run(
    settings: Settings, args: argparse.Namespace, selection: Selection
) -> tuple[RepublishReport, int | None]:
    topics = Topics(settings.topic_prefix)
    report = RepublishReport()
    async with audited(settings.database_url, "events republish", args) as run:
        conn = await asyncpg.connect(settings.database_url)
        publisher: KafkaPublisher | None = None
        try:
            source = PostgresRepublishSource(conn)
            progress = Progress("republish", None)
            if args.execute:
                publisher = KafkaPublisher(
                    settings.kafka(), record_limit(settings.max_message_bytes)
                )
                await publisher.start()
            await republish(
                source,
                selection,
                topics,
                publish=_sender(publisher) if publisher is not None else None,
                progress=progress.advance,
                report=report,
            )
            progress.finish()
        finally:
            if publisher is not None:
                await publisher.stop()
            await conn.close()
            # Also when publishing failed part way: the audit row says how far it got.
            run.counts = {**report.kind_counts(), "published": report.published}
            run.plan_fingerprint = fingerprint(
                {"selection": _selection_json(selection), "event_ids": report.event_ids_digest}
            )
        if report.selected == 0:
            raise BadInput("nothing to republish: no event of that selection is held")
    return report, run.audit_id


def _sender(publisher: KafkaPublisher) -> Any:
    async def send(messages: Sequence[OutboxMessage]) -> None:
        errors = await publisher.publish(messages)
        failed = [e for e in errors if e is not None]
        if failed:
            sent = len(errors) - len(failed)
            raise PublishFailed(
                f"the broker did not take {len(failed)} of a batch of {len(errors)} records "
                f"({sent} of it were sent): {type(failed[0]).__name__}: {failed[0]}; "
                "run it again (subscribers drop what they have by event_id)"
            )

    return send


def _selection_json(selection: Selection) -> dict[str, Any]:
    return {
        "since": selection.since.isoformat() if selection.since else None,
        "until": selection.until.isoformat() if selection.until else None,
        "skus": list(selection.skus),
        "location": selection.location,
        "kinds": list(selection.kinds),
    }


def _print(
    args: argparse.Namespace,
    selection: Selection,
    report: RepublishReport,
    audit_id: int | None,
) -> None:
    if args.json:
        print_json(
            {
                "executed": bool(args.execute),
                "selection": _selection_json(selection),
                "counts": report.kind_counts(),
                "selected": report.selected,
                "published": report.published,
                "first_occurred_at": report.first_occurred_at,
                "last_occurred_at": report.last_occurred_at,
                "event_ids_digest": report.event_ids_digest,
                "audit_id": audit_id,
            }
        )
        return
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(report.counts.items()))
    span = f"occurred {report.first_occurred_at} to {report.last_occurred_at}"
    if args.execute:
        print(f"republished {report.published} events ({counts}); {span}; audit {audit_id}")
    else:
        print(f"would republish {report.selected} events ({counts}); {span}; audit {audit_id}")
        print("nothing was sent: run it again with --execute to publish them")


def _snapshot(settings: Settings, args: argparse.Namespace) -> int:
    selection = selection_of(args)
    counts, audit_id = asyncio.run(_seed(settings, args, selection))
    if args.json:
        print_json(
            {
                "executed": bool(args.execute),
                "selection": _selection_json(selection),
                "counts": dict(counts),
                "audit_id": audit_id,
            }
        )
    elif args.execute:
        print(
            f"wrote {counts['snapshots']} snapshots to the outbox (the relay publishes them); "
            f"{dict(counts)}; audit {audit_id}"
        )
    else:
        print(f"would write {counts['snapshots']} snapshots; audit {audit_id}")
        print("nothing was written: run it again with --execute to write them")
    return EXIT_OK


async def _seed(
    settings: Settings, args: argparse.Namespace, selection: Selection
) -> tuple[dict[str, int], int | None]:
    topics = Topics(settings.topic_prefix)
    async with audited(settings.database_url, "events snapshot", args) as run:
        conn = await asyncpg.connect(settings.database_url)
        pool: asyncpg.Pool | None = None
        try:
            if args.execute:
                pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
            progress = Progress("snapshot", None)
            counts = await seed_snapshots(
                PostgresRepublishSource(conn),
                PostgresUnitOfWorkFactory(pool) if pool is not None else None,
                selection,
                topics,
                progress=progress.advance,
            )
            progress.finish()
        finally:
            if pool is not None:
                await pool.close()
            await conn.close()
        run.counts = dict(counts)
        run.plan_fingerprint = fingerprint({"selection": _selection_json(selection)})
        if not counts["snapshots"]:
            raise BadInput("no position in that selection")
    return dict(counts), run.audit_id
