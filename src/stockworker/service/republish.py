"""Publishing events again, with their original ids, for a subscriber that lost some
(`stockworker events republish`).

Outbox rows are deleted once published, so events are rebuilt from what stays:
- StockChanged, LowStock and StockReplenished from the ledger, whose entries (since
  migration 0008) hold everything the event held: quantities after and deltas, the
  settings after, the command's references and the offset of its occurred_at. They are
  built by the same functions the worker uses (domain/outcome_events.py), with the same
  uuid5 ids, so they are the original records byte for byte.
- Command results (CommandAccepted, CommandRejected) are the inbox's stored messages,
  the very bytes first published (only while the inbox keeps them: its retention).
PurchaseOrderLineChanged is not republished: a line's state at the time is not kept.

Records are sent straight to Kafka, not through the outbox: a large republish must not
queue live events behind it, and republished events are old either way (a subscriber
tells them by `event_id`, and a position's order by `version`). Each carries the header
`republished: true`. Nothing goes to the snapshot topic: an old state must not overwrite
a newer one there.

`seed_snapshots` (`stockworker events snapshot`) writes positions' current snapshots
through the outbox instead, under the worker's locks, so they keep their order.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import orjson

from stockworker.domain.event_ids import EventIds
from stockworker.domain.footprint import Footprint
from stockworker.domain.ledger import QUANTITY_FIELDS, LedgerEntry, LedgerSettings
from stockworker.domain.outcome import PositionChange
from stockworker.domain.outcome_events import EventDoc, low_stock_events, stock_changed
from stockworker.domain.position import Position, PositionKey
from stockworker.service.batch_state import lock_names
from stockworker.service.messages import event_message
from stockworker.service.ports import OutboxMessage, StoredResult, UnitOfWorkFactory
from stockworker.service.snapshots import snapshot_document, snapshot_row
from stockworker.service.topics import Topics

CHANGED, LOW_STOCK, RESULTS = "changed", "low-stock", "results"
KINDS = (CHANGED, LOW_STOCK, RESULTS)
REPUBLISHED_HEADER = ("republished", b"true")

# A ledger entry's key: (sku, location, version).
EntryKey = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class Selection:
    """What to republish: events of commands that occurred in [since, until), of these
    SKUs (any when empty) at this location (any when None), of these kinds."""

    since: datetime | None = None
    until: datetime | None = None
    skus: tuple[str, ...] = ()
    location: str | None = None
    kinds: tuple[str, ...] = KINDS

    def matches(self, sku: str | None, location: str | None, occurred_at: datetime | None) -> bool:
        if self.skus and sku not in self.skus:
            return False
        if self.location is not None and location != self.location:
            return False
        if self.since is not None and (occurred_at is None or occurred_at < self.since):
            return False
        return not (self.until is not None and (occurred_at is None or occurred_at >= self.until))


class RepublishSource(Protocol):
    """Where republished events come from (the PostgreSQL adapter: adapters/postgres/ledger.py)."""

    def ledger(self, selection: Selection) -> AsyncIterator[list[LedgerEntry]]:
        """The selected ledger entries in (sku, location, version) order, in chunks."""

    async def entries(self, keys: Sequence[EntryKey]) -> list[LedgerEntry]:
        """The entries with these keys (those that exist)."""

    def results(self) -> AsyncIterator[list[StoredResult]]:
        """Every stored result, in the order the commands were processed, in chunks."""

    async def position_keys(
        self, selection: Selection, after: PositionKey | None, limit: int
    ) -> list[PositionKey]:
        """The selected positions' keys in key order, the first `limit` after `after`."""


Publish = Callable[[Sequence[OutboxMessage]], Awaitable[None]]


@dataclass
class RepublishReport:
    """What a run found (and, executed, sent): counts by kind, the time span, and a
    digest of every event id in order (the plan's fingerprint)."""

    counts: Counter[str] = field(default_factory=Counter)
    first_occurred_at: datetime | None = None
    last_occurred_at: datetime | None = None
    published: int = 0
    _digest: Any = field(default_factory=hashlib.sha256, repr=False)

    def kind_counts(self) -> dict[str, int]:
        """Counts of every kind (0 for a kind not seen) and of what was not rebuildable."""
        return {**dict.fromkeys(KINDS, 0), **self.counts}

    @property
    def selected(self) -> int:
        return sum(n for kind, n in self.counts.items() if kind in KINDS)

    @property
    def event_ids_digest(self) -> str:
        return str(self._digest.hexdigest())[:16]

    def _saw(self, message: OutboxMessage, kind: str, occurred_at: datetime | None) -> None:
        self.counts[kind] += 1
        self._digest.update(message.event_id.bytes)
        if occurred_at is not None:
            if self.first_occurred_at is None or occurred_at < self.first_occurred_at:
                self.first_occurred_at = occurred_at
            if self.last_occurred_at is None or occurred_at > self.last_occurred_at:
                self.last_occurred_at = occurred_at


def _position(entry: LedgerEntry, settings: LedgerSettings | None, before: bool) -> Position:
    """The position after `entry` (or, `before`, before it: the quantities less the
    deltas, with `settings` from the entry before)."""
    q = entry.after
    quantities = {name: getattr(q, name) for name in QUANTITY_FIELDS}
    if before:
        quantities = {name: v - getattr(entry.deltas, name) for name, v in quantities.items()}
    return Position(
        entry.sku,
        entry.location,
        **quantities,
        min_quantity=settings.min_quantity if settings else 0,
        max_quantity=settings.max_quantity if settings else 0,
        low_stock_threshold=settings.low_stock_threshold if settings else 0,
        reorder_quantity=settings.reorder_quantity if settings else 0,
        bin=settings.bin if settings else None,
        preferred_supplier=settings.preferred_supplier if settings else None,
        version=entry.version - 1 if before else entry.version,
    )


def _cause(entry: LedgerEntry) -> EventDoc:
    r = entry.references
    return {
        # A uuid.UUID (the database driver gives its own kind), as a command holds it.
        "command_id": UUID(int=entry.command_id.int),
        "command_type": entry.command_type,
        "reason": entry.reason,
        "order_ref": r.order_ref,
        "reservation_id": r.reservation_id,
        "po_number": r.po_number,
        "po_line": r.po_line,
        "unit": r.unit,
    }


def rebuilt_events(
    entry: LedgerEntry, previous: LedgerEntry | None, kinds: Iterable[str]
) -> tuple[list[EventDoc], list[str]]:
    """The events the command of `entry` published for its position (StockChanged, then
    a LowStock or StockReplenished when it crossed the threshold), as documents; and
    what could not be rebuilt (by kind). `previous` is the entry of the version before
    (None for version 1)."""
    wanted = set(kinds)
    if entry.settings is None:  # written before migration 0008
        return [], [k for k in (CHANGED, LOW_STOCK) if k in wanted]
    settings_before: LedgerSettings | None
    if entry.version == 1:  # a new position: nothing before it
        known_before, settings_before = True, None
    elif previous is not None and previous.settings is not None:
        known_before, settings_before = True, previous.settings
    else:
        known_before, settings_before = False, entry.settings
    after = _position(entry, entry.settings, before=False)
    # StockChanged uses the quantities before only (its deltas), not the settings.
    before = _position(entry, settings_before, before=True)
    change = PositionChange(before, after, entry.reason)
    ids, cause = EventIds(entry.command_id), _cause(entry)
    events: list[EventDoc] = []
    missing: list[str] = []
    if CHANGED in wanted:
        events.append(stock_changed(entry.occurred_at, change, ids, cause, entry.movements))
    if LOW_STOCK in wanted:
        if known_before:
            events.extend(low_stock_events(entry.occurred_at, change, ids, cause))
        else:
            missing.append(LOW_STOCK)
    return events, missing


def _key(entry: LedgerEntry) -> EntryKey:
    return entry.sku, entry.location, entry.version


async def _ledger_messages(
    source: RepublishSource, selection: Selection, topics: Topics, report: RepublishReport
) -> AsyncIterator[list[OutboxMessage]]:
    kinds = [k for k in (CHANGED, LOW_STOCK) if k in selection.kinds]
    if not kinds:
        return
    last: LedgerEntry | None = None
    async for chunk in source.ledger(selection):
        # The entry before each one: the one just read, else read it.
        # (Only a crossing needs it: a StockChanged needs the quantities before, which
        # the entry's deltas give.)
        wanted = [
            (e.sku, e.location, e.version - 1)
            for i, e in enumerate(chunk)
            if LOW_STOCK in kinds
            and e.version > 1
            and not _follows(chunk[i - 1] if i else last, e)
            and e.settings is not None
        ]
        found = {_key(e): e for e in await source.entries(wanted)} if wanted else {}
        out: list[OutboxMessage] = []
        for i, entry in enumerate(chunk):
            before = chunk[i - 1] if i else last
            if not _follows(before, entry):
                before = found.get((entry.sku, entry.location, entry.version - 1))
            events, missing = rebuilt_events(entry, before, kinds)
            for kind in missing:
                report.counts[f"{kind} not rebuildable"] += 1
            for event in events:
                message = _republished(event_message(event, topics))
                kind = CHANGED if event["type"] == "StockChanged" else LOW_STOCK
                report._saw(message, kind, entry.occurred_at)
                out.append(message)
        last = chunk[-1] if chunk else last
        if out:
            yield out


def _follows(before: LedgerEntry | None, entry: LedgerEntry) -> bool:
    return (
        before is not None
        and before.sku == entry.sku
        and before.location == entry.location
        and before.version == entry.version - 1
    )


def _republished(message: OutboxMessage) -> OutboxMessage:
    return replace(message, headers=(*message.headers, REPUBLISHED_HEADER))


def _result_matches(selection: Selection, document: dict[str, Any]) -> bool:
    """A result is about its command's position, and every position it changed."""
    occurred = document.get("occurred_at")
    occurred_at = datetime.fromisoformat(occurred) if isinstance(occurred, str) else None
    places = [(document.get("sku"), document.get("location"))]
    places += [(p.get("sku"), p.get("location")) for p in document.get("positions") or ()]
    return any(selection.matches(sku, loc, occurred_at) for sku, loc in places)


async def _result_messages(
    source: RepublishSource, selection: Selection, report: RepublishReport
) -> AsyncIterator[list[OutboxMessage]]:
    if RESULTS not in selection.kinds:
        return
    async for chunk in source.results():
        out: list[OutboxMessage] = []
        for stored in chunk:
            try:
                document = orjson.loads(stored.result.value)
            except orjson.JSONDecodeError:
                report.counts["results unreadable"] += 1
                continue
            if not _result_matches(selection, document):
                continue
            message = _republished(stored.result)
            occurred = document.get("occurred_at")
            report._saw(message, RESULTS, datetime.fromisoformat(occurred) if occurred else None)
            out.append(message)
        if out:
            yield out


async def republish(
    source: RepublishSource,
    selection: Selection,
    topics: Topics,
    publish: Publish | None = None,
    progress: Callable[[int], None] = lambda _: None,
    report: RepublishReport | None = None,
) -> RepublishReport:
    """Rebuild the selected events; with `publish`, send them (in order, per position:
    by version; results in the order they were processed). Without it, a plan. Counts
    go into `report` as the run goes, so a caller holding it knows, should publishing
    fail part way, how far it got."""
    report = report if report is not None else RepublishReport()
    for messages in (
        _ledger_messages(source, selection, topics, report),
        _result_messages(source, selection, report),
    ):
        async for chunk in messages:
            if publish is not None:
                await publish(chunk)
                report.published += len(chunk)
            progress(len(chunk))
    return report


# --- Seeding the snapshot topic (`stockworker events snapshot`) ----------------------


def position_snapshot(position: Position, entry: LedgerEntry) -> EventDoc:
    """The PositionSnapshot document of a position, `entry` being its ledger entry at its
    version (for the id of the StockChanged that made it, and when)."""
    ids = EventIds(UUID(int=entry.command_id.int))
    changed = stock_changed(entry.occurred_at, PositionChange(position, position), ids, {})
    return snapshot_document(changed)


async def seed_snapshots(
    source: RepublishSource,
    unit_of_work: UnitOfWorkFactory | None,
    selection: Selection,
    topics: Topics,
    progress: Callable[[int], None] = lambda _: None,
    page: int = 500,
) -> Counter[str]:
    """Write the current snapshot of every selected position to the outbox (with
    `unit_of_work`; without, only count them), a page of positions a transaction.

    Each page locks its positions as the worker does, so its snapshot rows take their
    place in the outbox between the changes before and after: the relay then publishes
    them in order with its own, and no snapshot overwrites a newer one.
    """
    counts: Counter[str] = Counter()
    after: PositionKey | None = None
    while keys := await source.position_keys(selection, after, page):
        after = keys[-1]
        if unit_of_work is None:
            counts["snapshots"] += len(keys)
            progress(len(keys))
            continue
        async with unit_of_work() as uow:
            scope = Footprint(positions=tuple(keys))
            await uow.lock(lock_names(scope))
            state = await uow.load_state(scope)
            positions = [state.position(k) for k in keys]
            found = await source.entries([(p.sku, p.location, p.version) for p in positions])
            entries = {(e.sku, e.location): e for e in found}
            rows = []
            for p in positions:
                entry = entries.get((p.sku, p.location))
                if entry is None:
                    counts["snapshots without ledger entry"] += 1
                    continue
                rows.append(snapshot_row(position_snapshot(p, entry), topics))
            await uow.append_outbox(rows)
        counts["snapshots"] += len(rows)
        progress(len(keys))
    return counts
