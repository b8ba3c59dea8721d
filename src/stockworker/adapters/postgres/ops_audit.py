"""The operators' audit trail (`ops_audit`) and the dead letters they dealt with
(`dead_letter_resolution`), on PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from stockworker.adapters.postgres import queries
from stockworker.config import ConfigurationError

RESULTS = ("ok", "refused", "failed")
RESOLUTIONS = ("redriven", "redriven-edited", "discarded")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    operator: str
    operation: str  # "dlq redrive", "replay", "offsets reset", ...
    arguments: dict[str, Any]
    executed: bool  # False for a dry run, a plan, a what-if
    result: str  # one of RESULTS
    started_at: datetime
    counts: dict[str, int] = field(default_factory=dict)
    plan_fingerprint: str | None = None

    def __post_init__(self) -> None:
        if self.result not in RESULTS:
            raise ValueError(f"audit result {self.result!r} is not one of {RESULTS}")


@dataclass(frozen=True, slots=True)
class RecordedOperation:
    id: int
    entry: AuditEntry
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class Resolution:
    partition: int
    offset: int
    resolution: str  # one of RESOLUTIONS
    command_id: UUID | None
    audit_id: int
    resolved_at: datetime


def _json(value: dict[str, Any]) -> str:
    # default=str: datetimes, UUIDs, Decimals and paths in arguments are written as text.
    return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()


class OpsAudit:
    """Reads and writes the audit trail on one connection (the caller owns it)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def check_recordable(self) -> None:
        """Raises ConfigurationError when operations could not be recorded here (the
        table is missing, or this role may not add rows), before any of them runs."""
        try:
            allowed = await self._conn.fetchval(queries.MAY_RECORD_OPERATIONS)
        except asyncpg.UndefinedTableError:
            raise ConfigurationError(
                "DATABASE_URL",
                "the database has no ops_audit table: run `stockworker migrate` first",
            ) from None
        if not allowed:
            raise ConfigurationError(
                "DATABASE_URL", "this role may not add rows to ops_audit (see migrate --grant-to)"
            )

    async def record(self, entry: AuditEntry) -> int:
        """Writes one finished operation; returns its id."""
        audit_id: int = await self._conn.fetchval(
            queries.RECORD_OPERATION,
            entry.operator,
            entry.operation,
            _json(entry.arguments),
            entry.plan_fingerprint,
            entry.executed,
            _json(entry.counts),
            entry.result,
            entry.started_at,
        )
        return audit_id

    async def recent(self, limit: int = 50) -> list[RecordedOperation]:
        """The latest operations, newest first."""
        rows = await self._conn.fetch(queries.RECENT_OPERATIONS, limit)
        return [
            RecordedOperation(
                id=r["id"],
                entry=AuditEntry(
                    operator=r["operator"],
                    operation=r["operation"],
                    arguments=orjson.loads(r["arguments"]),
                    executed=r["executed"],
                    result=r["result"],
                    started_at=r["started_at"],
                    counts=orjson.loads(r["counts"]),
                    plan_fingerprint=r["plan_fingerprint"],
                ),
                finished_at=r["finished_at"],
            )
            for r in rows
        ]

    async def resolutions(
        self, dlq_topic: str, places: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], Resolution]:
        """How these dead letters (partition, offset) were dealt with, where they were."""
        if not places:
            return {}
        rows = await self._conn.fetch(
            queries.DEAD_LETTER_RESOLUTIONS,
            dlq_topic,
            [p for p, _ in places],
            [o for _, o in places],
        )
        found = [
            Resolution(
                r["dlq_partition"],
                r["dlq_offset"],
                r["resolution"],
                r["command_id"],
                r["audit_id"],
                r["resolved_at"],
            )
            for r in rows
        ]
        return {(r.partition, r.offset): r for r in found}

    async def resolve(
        self,
        dlq_topic: str,
        partition: int,
        offset: int,
        resolution: str,
        audit_id: int,
        command_id: UUID | None = None,
    ) -> None:
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution {resolution!r} is not one of {RESOLUTIONS}")
        await self._conn.execute(
            queries.RESOLVE_DEAD_LETTER,
            dlq_topic,
            partition,
            offset,
            resolution,
            command_id,
            audit_id,
        )
