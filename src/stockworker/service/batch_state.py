"""What a batch locks, the in-memory state it decides on, and what it will write."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

from stockworker.contract.commands import AnyCommand
from stockworker.domain.footprint import Footprint, footprint
from stockworker.domain.ledger import LedgerEntry, ledger_entry, references_of
from stockworker.domain.outcome import Outcome
from stockworker.domain.position import Position, PositionKey
from stockworker.domain.purchasing import PoLineKey
from stockworker.domain.state import StockState
from stockworker.service.ports import SHARED_LOCK, OutboxMessage, StateChanges, StoredResult

# The most locks one command takes (a transfer's two positions and its item; a position,
# its PO line or reservation, and its item): a batch of n commands takes at most n times
# this many.
MAX_LOCKS_PER_COMMAND = 3


# A command's outcome, for metrics: (command type, outcome, code). The type is "unknown"
# for a record that could not be decoded; the code is the rejection's reason code or the
# dead letter's code, "" for accepted commands and duplicates.
ACCEPTED = "accepted"
REJECTED = "rejected"
DUPLICATE = "duplicate"
DEAD_LETTERED = "dead_lettered"
UNKNOWN_TYPE = "unknown"
OutcomeKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class BatchReport:
    applied: int = 0
    rejected: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    # How many commands had each outcome, by (type, outcome, code). Not compared: two
    # reports with the same totals are equal.
    outcomes: Counter[OutcomeKey] = field(default_factory=Counter, compare=False, repr=False)

    def __add__(self, other: BatchReport) -> BatchReport:
        return BatchReport(
            self.applied + other.applied,
            self.rejected + other.rejected,
            self.duplicates + other.duplicates,
            self.dead_lettered + other.dead_lettered,
            self.outcomes + other.outcomes,
        )

    def totals_plus(self, other: BatchReport) -> BatchReport:
        """Both reports' totals, without outcome counts: a running total, cheap per batch."""
        return BatchReport(
            self.applied + other.applied,
            self.rejected + other.rejected,
            self.duplicates + other.duplicates,
            self.dead_lettered + other.dead_lettered,
        )


def merged_footprint(commands: Iterable[AnyCommand]) -> Footprint:
    positions: set[PositionKey] = set()
    po_lines: set[PoLineKey] = set()
    reservations: set[str] = set()
    locations: set[str] = set()
    items: set[str] = set()
    configured_locations: set[str] = set()
    configured_items: set[str] = set()
    serials: set[tuple[str, str]] = set()
    stocked_items: set[str] = set()
    for command in commands:
        f = footprint(command)
        positions.update(f.positions)
        po_lines.update(f.po_lines)
        reservations.update(f.reservations)
        locations.update(f.locations)
        items.update(f.items)
        configured_locations.update(f.configured_locations)
        configured_items.update(f.configured_items)
        if f.serials:
            serials.update(f.serials)
        if f.stocked_items:
            stocked_items.update(f.stocked_items)
    return Footprint(
        tuple(sorted(positions)),
        tuple(sorted(po_lines)),
        tuple(sorted(reservations)),
        tuple(sorted(locations)),
        tuple(sorted(items)),
        tuple(sorted(configured_locations)),
        tuple(sorted(configured_items)),
        tuple(sorted(serials)),
        tuple(sorted(stocked_items)),
    )


def lock_names(f: Footprint) -> list[str]:
    """What a batch must hold exclusively: everything it may write.

    Catalogue commands lock the entry they write: each reads its version and writes
    the next, and two at once on different partitions would lose one increment. Stock
    commands hold their item in shared mode: a ConfigureItem changing how the item is
    tracked (only while it holds no stock) must not interleave with a batch that read
    the item as it was and is adding stock to it. Locations are only read.
    """
    configured = set(f.configured_items)
    return [
        *(f"position\x00{k.sku}\x00{k.location}" for k in f.positions),
        *(f"po-line\x00{k.po_number}\x00{k.po_line}" for k in f.po_lines),
        *(f"reservation\x00{r}" for r in f.reservations),
        *(f"location\x00{code}" for code in f.configured_locations),
        *(f"item\x00{sku}" for sku in f.configured_items),
        *(f"{SHARED_LOCK}item\x00{sku}" for sku in f.items if sku not in configured),
    ]


@dataclass
class BatchState:
    """The in-memory state of one batch, everything it will write, and its counts."""

    state: StockState
    loaded: dict[PositionKey, Position]
    stored: dict[UUID, StoredResult]
    changed_positions: dict[PositionKey, Position] = field(default_factory=dict)
    ledger: list[LedgerEntry] = field(default_factory=list)
    new_results: list[StoredResult] = field(default_factory=list)
    outbox: list[OutboxMessage] = field(default_factory=list)
    touched_po_lines: set[PoLineKey] = field(default_factory=set)
    touched_locations: set[str] = field(default_factory=set)
    touched_items: set[str] = field(default_factory=set)
    applied: int = 0
    rejected: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    outcomes: Counter[OutcomeKey] = field(default_factory=Counter)

    # One of these per command: its total and its (type, outcome, code) count.
    def count_accepted(self, command_type: str) -> None:
        self.applied += 1
        self.outcomes[command_type, ACCEPTED, ""] += 1

    def count_rejected(self, command_type: str, code: str) -> None:
        self.rejected += 1
        self.outcomes[command_type, REJECTED, code] += 1

    def count_duplicate(self, command_type: str) -> None:
        self.duplicates += 1
        self.outcomes[command_type, DUPLICATE, ""] += 1

    def count_dead_letter(self, code: str, command_type: str = UNKNOWN_TYPE) -> None:
        self.dead_lettered += 1
        self.outcomes[command_type, DEAD_LETTERED, code] += 1

    def apply(self, command: AnyCommand, outcome: Outcome) -> None:
        self.state.apply(outcome)
        references = references_of(command)
        for change in outcome.positions:
            self.changed_positions[change.after.key] = change.after
            self.ledger.append(
                ledger_entry(
                    change,
                    command.command_id,
                    command.type,
                    command.occurred_at,
                    references,
                )
            )
        if outcome.po_line is not None:
            self.touched_po_lines.add(outcome.po_line.after.key)
        if outcome.location is not None:
            self.touched_locations.add(outcome.location.code)
        if outcome.item is not None:
            self.touched_items.add(outcome.item.sku)

    def changes(self) -> StateChanges:
        return StateChanges(
            positions=[(self.loaded.get(k), p) for k, p in self.changed_positions.items()],
            po_lines=[self.state.po_lines[k] for k in sorted(self.touched_po_lines)],
            locations=[self.state.locations[c] for c in sorted(self.touched_locations)],
            items=[self.state.items[s] for s in sorted(self.touched_items)],
            ledger=self.ledger,
        )

    def report(self) -> BatchReport:
        return BatchReport(
            self.applied, self.rejected, self.duplicates, self.dead_lettered, self.outcomes
        )
