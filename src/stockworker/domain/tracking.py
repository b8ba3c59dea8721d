"""Tracked stock: which serial numbers or lots a position's quantities are made of.

Handlers decide a command on quantities alone. For an item tracked by serial or lot,
`track` then works out which holdings those quantity changes move, from what the
command names or, where it may leave that out, by choice: the lowest serial numbers
first, lots first-expiry-first-out (earliest `expires_on`, then the earliest to arrive).

A position change tells what must move: picks of an order going up take free units;
picks going down give them back (a shipment takes them out of on_hand too); the rest of
the change in on_hand adds units (a receipt, an adjustment up, a transfer's destination,
which gets what left its source) or removes free ones. Untracked items pass through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from types import MappingProxyType

from stockworker.contract.codes import RejectionCode, Tracking
from stockworker.contract.commands import (
    AdjustInventory,
    AnyCommand,
    ExpireLot,
    ReceivePOItem,
    ShipStock,
    TransferStock,
    UnpickStock,
    UnreceivePOItem,
)
from stockworker.domain.handlers.common import back_order_shortfall, fill_back_orders
from stockworker.domain.outcome import Decision, Outcome, PositionChange, Rejection
from stockworker.domain.position import Holding, Position, PositionKey
from stockworker.domain.state import StockView

# The values of Tracking, read once: an enum member's .value costs a descriptor call, and
# track() runs for every command.
NONE = Tracking.NONE.value
SERIAL = Tracking.SERIAL.value
LOT = Tracking.LOT.value

# Commands that must name their serial numbers / their lot; the others may leave the
# choice to the worker (picks of serials; picks, transfers, unpicks and ships of lots).
_NAME_SERIALS = (
    ReceivePOItem,
    UnreceivePOItem,
    AdjustInventory,
    TransferStock,
    ShipStock,
    UnpickStock,
)
_NAME_LOT = (ReceivePOItem, UnreceivePOItem, AdjustInventory)


@dataclass(frozen=True, slots=True)
class Movement:
    """How one holding of a position changed (a StockChanged's `movements` entry)."""

    kind: str
    id: str
    expires_on: date | None
    on_hand: int
    picked: int


def movements(before: Position, after: Position) -> tuple[Movement, ...]:
    """The holdings that changed between two versions of a position, by id."""
    if not before.holdings and not after.holdings:
        return ()
    found = []
    for hid in sorted(before.holdings.keys() | after.holdings.keys()):
        old, new = before.holdings.get(hid), after.holdings.get(hid)
        either = new or old
        assert either is not None
        on_hand = (new.on_hand if new else 0) - (old.on_hand if old else 0)
        picked = (new.picked if new else 0) - (old.picked if old else 0)
        if on_hand or picked or (old and new and old.picks != new.picks):
            found.append(Movement(either.kind, hid, either.expires_on, on_hand, picked))
    return tuple(found)


def _reject(code: RejectionCode, message: str) -> Rejection:
    return Rejection(code, message)


def track(view: StockView, command: AnyCommand, decision: Decision) -> Decision:
    """The decision with the holdings of the positions it changes (see the module)."""
    if isinstance(command, ExpireLot):  # flags a lot itself (handlers/lots.py)
        return decision
    fields = command.__dict__
    serials: tuple[str, ...] | None = fields.get("serials")
    lot: str | None = fields.get("lot")
    if not isinstance(decision, Outcome) or not decision.positions:
        if serials is not None or lot is not None:
            return _not_tracked_check(view, command, serials, lot) or decision
        return decision
    sku: str = fields["sku"]
    item = view.item(sku)
    tracking = item.tracking if item is not None else NONE
    if tracking == NONE:
        if serials is None and lot is None:
            return decision
        return _not_tracked_check(view, command, serials, lot) or decision
    if tracking == SERIAL and lot is not None:
        return _reject(
            RejectionCode.NOT_TRACKED, f"item {sku!r} is tracked by serial number, not by lot"
        )
    if tracking == LOT and serials is not None:
        return _reject(
            RejectionCode.NOT_TRACKED, f"item {sku!r} is tracked by lot, not by serial number"
        )
    counted_none = fields.get("counted_quantity") == 0
    if tracking == SERIAL and serials is None and counted_none:
        serials = ()  # a count that found nothing: every free serial leaves
    if tracking == SERIAL and serials is None and isinstance(command, _NAME_SERIALS):
        return _reject(
            RejectionCode.SERIALS_REQUIRED,
            f"item {sku!r} is tracked by serial number: {command.type} must name "
            "the units (serials)",
        )
    if tracking == LOT and lot is None and isinstance(command, _NAME_LOT):
        return _reject(
            RejectionCode.LOT_REQUIRED,
            f"item {sku!r} is tracked by lot: name the lot ({command.type} needs lot)",
        )
    if serials is not None:
        quantity = _quantity(command)
        if quantity is not None and quantity != len(serials):
            return _reject(
                RejectionCode.SERIAL_COUNT_MISMATCH,
                f"{len(serials)} serial numbers for a quantity of {quantity}",
            )
    request = _Request(
        kind=tracking,
        named=serials if serials is not None else (lot,) if lot is not None else None,
        expires_on=fields.get("expires_on"),
        ships=isinstance(command, ShipStock),
        counts=fields.get("counted_quantity") is not None,
        transfers=isinstance(command, TransferStock),
        gives_back=isinstance(command, UnpickStock),
    )
    changes = []
    for change in decision.positions:
        after = request.apply(view, change)
        if isinstance(after, Rejection):
            return replace(after, current_version=change.before.version or None)
        changes.append(replace(change, after=after))
    return replace(decision, positions=tuple(changes))


def _not_tracked_check(
    view: StockView, command: AnyCommand, serials: object, lot: object
) -> Rejection | None:
    sku: str = command.__dict__["sku"]
    item = view.item(sku)
    tracking = item.tracking if item is not None else NONE
    if tracking == NONE:
        what = "serial numbers" if serials is not None else "a lot"
        return _reject(
            RejectionCode.NOT_TRACKED, f"item {sku!r} is not tracked: the command names {what}"
        )
    return None


def _quantity(command: AnyCommand) -> int | None:
    fields = command.__dict__
    for name in ("quantity", "delta", "counted_quantity"):
        value: int | None = fields.get(name)
        if value is not None:
            return abs(value)
    return None


@dataclass
class _Request:
    kind: str
    named: tuple[str, ...] | None
    expires_on: date | None
    ships: bool
    # A count of a serialised item names every unit found: the others are gone.
    counts: bool = False
    # A transfer moves available stock only (no expired lot); an unpick may give back
    # units of an expired lot, and reservations they covered become back orders again.
    transfers: bool = False
    gives_back: bool = False
    # What left a transfer's source, for its destination.
    moved: list[Holding] = field(default_factory=list)

    def apply(self, view: StockView, change: PositionChange) -> Position | Rejection:
        before, after = change.before, change.after
        holdings = dict(before.holdings)
        where = f"{after.sku!r} at {after.location!r}"
        on_hand_change = after.on_hand - before.on_hand
        if self.counts and self.kind == SERIAL:
            refused = self._count(view, holdings, after, where)
            if refused is not None:
                return refused
            on_hand_change = 0
        orders = before.picks.keys() | after.picks.keys()
        for order in sorted(orders):
            given_back = before.picks.get(order, 0) - after.picks.get(order, 0)
            if given_back > 0:
                refused = self._unpick(holdings, order, given_back, where)
                if refused is not None:
                    return refused
                if self.ships:
                    on_hand_change += given_back
        for order in sorted(orders):
            taken = after.picks.get(order, 0) - before.picks.get(order, 0)
            if taken > 0:
                refused = self._pick(holdings, order, taken, where)
                if refused is not None:
                    return refused
        if on_hand_change > 0:
            refused = self._add(view, holdings, on_hand_change, after, where)
        elif on_hand_change < 0:
            refused = self._remove(holdings, -on_hand_change, where)
        else:
            refused = None
        if refused is not None:
            return refused
        result = replace(
            after,
            holdings=MappingProxyType({k: h for k, h in holdings.items() if h.on_hand}),
            expired=expired_units(holdings.values()),
        )
        if result.available < 0:
            if not self.gives_back:
                return _reject(
                    RejectionCode.INSUFFICIENT_AVAILABLE,
                    f"{where} would hold {result.on_hand - result.picked - result.expired} "
                    f"unexpired units for {result.reserved} reserved",
                )
            result = back_order_shortfall(result)
        result = fill_back_orders(result)
        result.check_invariants()
        result.check_holdings()
        return result

    # -- choosing units -------------------------------------------------------------

    def _order(self, candidates: Iterable[Holding]) -> list[Holding]:
        if self.kind == SERIAL:
            return sorted(candidates, key=lambda h: h.id)
        return sorted(
            candidates,
            key=lambda h: (h.expires_on is None, h.expires_on or date.min, h.sequence, h.id),
        )

    def _named_holdings(
        self, holdings: Mapping[str, Holding], where: str
    ) -> list[Holding] | Rejection:
        assert self.named is not None
        found = []
        for hid in self.named:
            h = holdings.get(hid)
            if h is None:
                if self.kind == SERIAL:
                    return _reject(
                        RejectionCode.SERIAL_NOT_AT_POSITION,
                        f"serial number {hid!r} is not in stock of {where}",
                    )
                return _reject(RejectionCode.LOT_NOT_FOUND, f"no lot {hid!r} in stock of {where}")
            found.append(h)
        return found

    def _take(
        self,
        holdings: dict[str, Holding],
        quantity: int,
        available: dict[str, int],
        where: str,
        what: str,
        order: str | None,
    ) -> list[tuple[Holding, int]] | Rejection:
        """`quantity` units out of `available` (per holding id): the named ones or by choice."""
        if self.named is not None:
            named = self._named_holdings(holdings, where)
            if isinstance(named, Rejection):
                return named
            candidates = named
        else:
            candidates = self._order(holdings[hid] for hid in available)
        taken: list[tuple[Holding, int]] = []
        left = quantity
        for h in candidates:
            if left == 0:
                break
            can = available.get(h.id, 0)
            if self.named is not None and self.kind == SERIAL and can == 0:
                code = (
                    RejectionCode.SERIAL_NOT_PICKED if order else RejectionCode.SERIAL_NOT_AVAILABLE
                )
                return _reject(code, f"serial number {h.id!r} of {where} is not {what}")
            share = min(can, left)
            if share:
                taken.append((h, share))
                left -= share
        if left:
            lots = f"lot {', '.join(self.named)}" if self.named else "its lots"
            return _reject(
                RejectionCode.LOT_INSUFFICIENT,
                f"{lots} of {where} {'has' if self.named else 'have'} {quantity - left} "
                f"{what}, not {quantity}",
            )
        return taken

    def _named_expired(self, holdings: Mapping[str, Holding], where: str) -> Rejection | None:
        for hid in self.named or ():
            h = holdings.get(hid)
            if h is not None and h.expired:
                return _reject(RejectionCode.LOT_EXPIRED, f"lot {hid!r} of {where} has expired")
        return None

    # -- the movements ---------------------------------------------------------------

    def _count(
        self, view: StockView, holdings: dict[str, Holding], after: Position, where: str
    ) -> Rejection | None:
        named = set(self.named or ())
        for h in list(holdings.values()):
            if h.id in named:
                continue
            if h.picked:
                return _reject(
                    RejectionCode.SERIAL_NOT_AVAILABLE,
                    f"serial number {h.id!r} of {where} is picked: a count must name it",
                )
            del holdings[h.id]
        found = tuple(s for s in self.named or () if s not in holdings)
        if not found:
            return None
        counted, self.named = self.named, found
        try:
            return self._add(view, holdings, len(found), after, where)
        finally:
            self.named = counted

    def _pick(
        self, holdings: dict[str, Holding], order: str, quantity: int, where: str
    ) -> Rejection | None:
        refused = self._named_expired(holdings, where)
        if refused is not None:
            return refused
        free = {hid: h.free for hid, h in holdings.items() if h.free > 0 and not h.expired}
        taken = self._take(holdings, quantity, free, where, "free to pick", None)
        if isinstance(taken, Rejection):
            return taken
        for h, q in taken:
            picks = dict(h.picks)
            picks[order] = picks.get(order, 0) + q
            holdings[h.id] = replace(h, picks=MappingProxyType(picks))
        return None

    def _unpick(
        self, holdings: dict[str, Holding], order: str, quantity: int, where: str
    ) -> Rejection | None:
        picked = {hid: h.picks[order] for hid, h in holdings.items() if order in h.picks}
        taken = self._take(holdings, quantity, picked, where, f"picked for order {order!r}", order)
        if isinstance(taken, Rejection):
            return taken
        for h, q in taken:
            picks = dict(h.picks)
            picks[order] -= q
            if not picks[order]:
                del picks[order]
            on_hand = h.on_hand - q if self.ships else h.on_hand
            holdings[h.id] = replace(h, picks=MappingProxyType(picks), on_hand=on_hand)
            if self.ships and not on_hand:
                del holdings[h.id]
        return None

    def _remove(self, holdings: dict[str, Holding], quantity: int, where: str) -> Rejection | None:
        if self.transfers:
            refused = self._named_expired(holdings, where)
            if refused is not None:
                return refused
        free = {
            hid: h.free
            for hid, h in holdings.items()
            if h.free > 0 and not (self.transfers and h.expired)
        }
        taken = self._take(holdings, quantity, free, where, "free", None)
        if isinstance(taken, Rejection):
            return taken
        for h, q in taken:
            self.moved.append(replace(h, on_hand=q, picks=MappingProxyType({})))
            if h.on_hand == q:
                del holdings[h.id]
            else:
                holdings[h.id] = replace(h, on_hand=h.on_hand - q)
        return None

    def _add(
        self,
        view: StockView,
        holdings: dict[str, Holding],
        quantity: int,
        after: Position,
        where: str,
    ) -> Rejection | None:
        transferred = bool(self.moved)
        if transferred:  # a transfer's destination: what left the source arrives
            arriving, self.moved = self.moved, []
        elif self.kind == SERIAL:
            assert self.named is not None
            arriving = [Holding(SERIAL, s, 1) for s in self.named]
        else:
            assert self.named is not None
            arriving = [Holding(LOT, self.named[0], quantity, expires_on=self.expires_on)]
        for new in arriving:
            old = holdings.get(new.id)
            if new.kind == SERIAL:
                # (A transferred serial is still at its source in the view.)
                elsewhere = None if transferred else view.serial_location(after.sku, new.id)
                if old is not None or elsewhere is not None:
                    return _reject(
                        RejectionCode.SERIAL_IN_STOCK,
                        f"serial number {new.id!r} of {after.sku!r} is already in stock "
                        f"at {elsewhere or after.location!r}",
                    )
                holdings[new.id] = replace(new, sequence=after.version)
                continue
            if old is None:
                holdings[new.id] = replace(new, picks=MappingProxyType({}), sequence=after.version)
                continue
            if old.expired:
                return _reject(
                    RejectionCode.LOT_EXPIRED,
                    f"lot {new.id!r} of {where} has expired: stock cannot be added to it",
                )
            if new.expires_on is not None and old.expires_on != new.expires_on:
                return _reject(
                    RejectionCode.LOT_EXPIRY_MISMATCH,
                    f"lot {new.id!r} of {where} expires on {old.expires_on or 'no date'}, "
                    f"not {new.expires_on}",
                )
            holdings[new.id] = replace(old, on_hand=old.on_hand + new.on_hand)
        return None


def lot_count_as_delta(view: StockView, command: AnyCommand) -> AnyCommand:
    """A count of one lot (counted_quantity with lot) as the change it makes to on_hand.

    For a lot item counted_quantity is the lot's quantity, not the position's.
    """
    if not isinstance(command, AdjustInventory) or command.counted_quantity is None:
        return command
    if command.lot is None:
        return command
    item = view.item(command.sku)
    if item is None or item.tracking != LOT:
        return command
    held = view.position(PositionKey(command.sku, command.location)).holdings.get(command.lot)
    delta = command.counted_quantity - (held.on_hand if held else 0)
    return command.model_copy(update={"counted_quantity": None, "delta": delta})


def expired_units(holdings: Iterable[Holding]) -> int:
    """The free units of the expired lots among `holdings` (Position.expired)."""
    return sum(h.free for h in holdings if h.expired)
