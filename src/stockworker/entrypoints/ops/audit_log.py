"""`stockworker audit`: what operators did, newest first (the ops_audit table)."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import asdict
from typing import Any

import asyncpg

from stockworker.adapters.postgres.ops_audit import OpsAudit, RecordedOperation
from stockworker.config import Settings
from stockworker.entrypoints.ops.common import EXIT_OK, add_output_option, print_json


def register(sub: Any) -> None:
    parser = sub.add_parser("audit", help="list what operators did (ops_audit), newest first")
    parser.add_argument("--limit", type=_positive, default=20, help="at most this many (20)")
    add_output_option(parser)
    parser.set_defaults(handler=_audit)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def _audit(settings: Settings, args: argparse.Namespace) -> int:
    operations = asyncio.run(_recent(settings.database_url, args.limit))
    if args.json:
        print_json(
            [{"id": op.id, **asdict(op.entry), "finished_at": op.finished_at} for op in operations]
        )
        return EXIT_OK
    for op in operations:
        e = op.entry
        print(
            f"{op.id:>6} {e.started_at.isoformat(timespec='seconds')} {e.operator:<16} "
            f"{e.operation:<18} {'executed' if e.executed else 'dry run':<8} {e.result:<8} "
            f"{e.counts}"
        )
    return EXIT_OK


async def _recent(database_url: str, limit: int) -> list[RecordedOperation]:
    conn = await asyncpg.connect(database_url)
    try:
        return await OpsAudit(conn).recent(limit)
    finally:
        await conn.close()
