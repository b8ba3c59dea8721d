"""A small reference model of the stock rules, written apart from the domain code.

It works on command bodies (plain dicts) and keeps only what it must: reserved and
back-ordered are derived from its reservations, on_order from its purchase-order lines.
The property test and the end-to-end tests compare the real domain and worker with it.

Items tracked by serial number or by lot (ConfigureItem `tracking`) are modelled apart
from the quantities: a position holds a set of serial numbers, each free or picked for
one order, or lots, each with a quantity, what of it is picked per order, an expiry date
and the position's version when it arrived. A command is first judged on quantities as
for an untracked item; then the serials or lots it names, or the worker's choice (lowest
serial first; lots first-expiry-first-out: earliest date, lots without a date last, then
by arrival, then by name), must make the same change, or it is refused and nothing moves.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

from stockworker.domain.position import Position

MILLIONTH = Decimal("0.000001")
# A position's stock value and a purchase-order line's received value stay at most this;
# a command that would raise one above it is refused (VALUE_LIMIT).
VALUE_LIMIT = Decimal(10**18)
# Digits for the money arithmetic: plenty, so every product and sum is exact and every
# quotient is rounded once, at the 6th decimal.
PRECISION = 100
# The published limit of a quantity, in base units.
MAX_QUANTITY = 10**12
# The fields that hold quantities (converted from a command's `unit`).
_AMOUNTS = ("quantity", "delta", "counted_quantity")
# Commands that must name the serial numbers they move, and those that must name a lot;
# the others may leave the choice to the worker (or move no stock).
_NAME_SERIALS = {
    "ReceivePOItem",
    "UnreceivePOItem",
    "AdjustInventory",
    "TransferStock",
    "ShipStock",
    "UnpickStock",
}
_NAME_LOT = {"ReceivePOItem", "UnreceivePOItem", "AdjustInventory"}
# The commands that move stock (and so serials or lots).
_MOVES = _NAME_SERIALS | {"PickStock"}


def _money(value: Decimal) -> Decimal:
    return value.quantize(MILLIONTH, rounding=ROUND_HALF_EVEN)


def _part(value: Decimal, part: int, whole: int) -> Decimal:
    return value if part >= whole else _money(value * part / whole)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass
class RefReservation:
    order: str
    held: int
    waiting: int
    expires: datetime | None
    arrival: int


@dataclass
class RefLine:
    sku: str
    location: str
    ordered: int
    received: int = 0
    value: Decimal = Decimal(0)
    cancelled: bool = False
    planned: bool = True

    @property
    def open(self) -> int:
        return 0 if self.cancelled else max(self.ordered - self.received, 0)

    @property
    def status(self) -> str:
        if self.cancelled:
            return "Cancelled"
        if self.received == 0:
            return "New"
        return "ReceivedPartial" if self.received < self.ordered else "ReceivedFull"


@dataclass
class RefLot:
    quantity: int
    expires_on: date | None
    arrival: int  # the position's version when the lot came (back) to it
    picks: Counter[str] = field(default_factory=Counter)
    warned: bool = False  # reported as coming close to its expiry (ExpireLot "expiring")
    expired: bool = False  # expired (ExpireLot "expired"): its free units are unavailable

    @property
    def free(self) -> int:
        return self.quantity - sum(self.picks.values())

    def fefo(self, name: str) -> tuple[bool, date, int, str]:
        """First-expiry-first-out: dated lots by date, undated last; then arrival, name."""
        return (self.expires_on is None, self.expires_on or date.max, self.arrival, name)


# A holding in a snapshot: kind, on_hand, picks per order, expiry date, expired.
Held = tuple[str, int, dict[str, int], date | None, bool]


@dataclass
class RefPosition:
    on_hand: int = 0
    picked: int = 0
    value: Decimal = Decimal(0)
    picks: Counter[str] = field(default_factory=Counter)
    reservations: dict[str, RefReservation] = field(default_factory=dict)
    min_quantity: int = 0
    max_quantity: int = 0
    version: int = 0
    # Tracked items: serial number -> the order it is picked for (None: free) ...
    serials: dict[str, str | None] = field(default_factory=dict)
    # ... or lot -> its stock here.
    lots: dict[str, RefLot] = field(default_factory=dict)

    @property
    def reserved(self) -> int:
        return sum(r.held for r in self.reservations.values())

    @property
    def back_ordered(self) -> int:
        return sum(r.waiting for r in self.reservations.values())

    @property
    def expired(self) -> int:
        """Free units of expired lots: on hand, not available."""
        return sum(lot.free for lot in self.lots.values() if lot.expired)

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved - self.picked - self.expired

    def holdings(self) -> dict[str, Held]:
        held: dict[str, Held] = {
            s: ("serial", 1, {order: 1} if order else {}, None, False)
            for s, order in self.serials.items()
        }
        for name, lot in self.lots.items():
            picks = {o: q for o, q in lot.picks.items() if q}
            held[name] = ("lot", lot.quantity, picks, lot.expires_on, lot.expired)
        return held


Snapshot = tuple[
    int,
    int,
    int,
    int,
    int,
    Decimal,
    int,
    dict[str, int],
    dict[str, tuple[int, int]],
    dict[str, Held],
]


class ReferenceModel:
    def __init__(
        self, over_receipt_tolerance_percent: int = 0, lot_expiring_days: int = 30
    ) -> None:
        self.positions: dict[tuple[str, str], RefPosition] = {}
        self.lines: dict[tuple[str, int], RefLine] = {}
        self.locations: dict[str, bool] = {}  # code -> active
        self.items: dict[str, bool] = {}  # sku -> active
        self.item_versions: Counter[str] = Counter()
        self.units: dict[str, dict[str, int]] = {}  # sku -> named units (base "EA")
        self.tracking: dict[str, str] = {}  # sku -> "serial" | "lot" (default "none")
        self.outcomes: dict[str, bool] = {}  # command_id -> accepted
        # command_id -> the rejection code of a command refused by a rule of tracked stock
        # (after its quantities passed), or NOT_TRACKED for serials/lots of an untracked item.
        self.refusals: dict[str, str] = {}
        self.tolerance = over_receipt_tolerance_percent
        self.lot_expiring_days = lot_expiring_days
        self._arrivals = 0

    # -- helpers -----------------------------------------------------------------------
    def _inactive(self, sku: str, location: str) -> bool:
        return not self.locations.get(location, True) or not self.items.get(sku, True)

    def _on_order(self, key: tuple[str, str]) -> int:
        return sum(line.open for line in self.lines.values() if (line.sku, line.location) == key)

    def _touch(self, p: RefPosition) -> None:
        """A change was accepted: bump the version and hand free stock to back orders."""
        p.version += 1
        self._fill(p)

    @staticmethod
    def _fill(p: RefPosition) -> None:
        for r in sorted(p.reservations.values(), key=lambda r: r.arrival):
            fill = min(r.waiting, max(p.available, 0))
            r.held += fill
            r.waiting -= fill

    def _drop_empty(self, p: RefPosition) -> None:
        p.reservations = {k: r for k, r in p.reservations.items() if r.held or r.waiting}

    @staticmethod
    def _too_valuable(before: Decimal, after: Decimal) -> bool:
        return after > max(VALUE_LIMIT, before)

    # -- commands ----------------------------------------------------------------------
    def apply(self, body: dict[str, Any]) -> bool:
        kind = body["type"]
        handler = getattr(self, f"_{kind}")
        # (TransferStock and the catalogue commands check their own versions.)
        if "expected_version" in body and "location" in body:
            p = self.positions.get((body["sku"], body["location"]))
            if (p.version if p else 0) != body["expected_version"]:
                self.outcomes[body["command_id"]] = False
                return False
        if "unit" in body:
            converted = self._in_base_units(body)
            if converted is None:
                self.outcomes[body["command_id"]] = False
                return False
            body = converted
        kind = self.tracking.get(body.get("sku", ""), "none")
        names = body["type"] != "ExpireLot" and (
            body.get("serials") is not None or body.get("lot") is not None
        )
        if not names and (kind == "none" or body["type"] not in _MOVES):
            with localcontext(prec=PRECISION):
                accepted = bool(handler(body))
            self.outcomes[body["command_id"]] = accepted
            return accepted
        accepted = self._apply_tracked(kind, handler, self._lot_count(kind, body))
        self.outcomes[body["command_id"]] = accepted
        return accepted

    def _apply_tracked(
        self, kind: str, handler: Callable[[dict[str, Any]], bool], b: dict[str, Any]
    ) -> bool:
        """A command about a tracked item (or naming serials or a lot): judged on its
        quantities, then on its serials or lots; refused by either, nothing changes."""
        restore = self._savepoint(b)
        with localcontext(prec=PRECISION):
            accepted = bool(handler(b))
        if not accepted:
            if kind == "none":
                self.refusals[b["command_id"]] = "NOT_TRACKED"
            return False
        refused = self._track(kind, b)
        if refused is None:
            refused = self._unexpired_cover(b)
        if refused is None:
            return True
        restore()
        self.refusals[b["command_id"]] = refused
        return False

    def _unexpired_cover(self, b: dict[str, Any]) -> str | None:
        """Reservations are covered by unexpired stock: a change leaving less is refused,
        but units of an expired lot given back from a pick turn the reservations they
        leave uncovered into back orders again, newest first."""
        for (sku, _), p in self.positions.items():
            if sku != b["sku"]:
                continue
            if p.available < 0:
                if b["type"] != "UnpickStock":
                    return "INSUFFICIENT_AVAILABLE"
                self._uncover(p)
            self._fill(p)
        return None

    @staticmethod
    def _uncover(p: RefPosition) -> None:
        short = -p.available
        for r in sorted(p.reservations.values(), key=lambda r: r.arrival, reverse=True):
            take = min(short, r.held)
            r.held -= take
            r.waiting += take
            short -= take

    def _savepoint(self, b: dict[str, Any]) -> Callable[[], None]:
        """What a command about `b["sku"]` may change, to put back if it is refused."""
        sku = b["sku"]
        positions = {k: copy.deepcopy(p) for k, p in self.positions.items() if k[0] == sku}
        line_key = (b.get("po_number"), b.get("po_line"))
        line = copy.deepcopy(self.lines.get(line_key))  # type: ignore[arg-type]
        arrivals = self._arrivals

        def restore() -> None:
            for key in [k for k in self.positions if k[0] == sku]:
                del self.positions[key]
            self.positions.update(positions)
            if line is None:
                self.lines.pop(line_key, None)  # type: ignore[arg-type]
            else:
                self.lines[line_key] = line  # type: ignore[index]
            self._arrivals = arrivals

        return restore

    def _lot_count(self, kind: str, b: dict[str, Any]) -> dict[str, Any]:
        """A count naming a lot of a lot item counts that lot: the change it makes."""
        if kind != "lot" or b["type"] != "AdjustInventory" or b.get("lot") is None:
            return b
        if b.get("counted_quantity") is None:
            return b
        p = self.positions.get((b["sku"], b["location"]))
        lot = p.lots.get(b["lot"]) if p else None
        delta = b["counted_quantity"] - (lot.quantity if lot else 0)
        return {**{k: v for k, v in b.items() if k != "counted_quantity"}, "delta": delta}

    def _in_base_units(self, b: dict[str, Any]) -> dict[str, Any] | None:
        """The body with its quantities in base units; None when refused."""
        unit = b["unit"]
        factor = 1 if unit == "EA" else self.units.get(b["sku"], {}).get(unit)
        if factor is None:
            return None
        converted = {k: v * factor if k in _AMOUNTS and v is not None else v for k, v in b.items()}
        if any(abs(converted[k]) > MAX_QUANTITY for k in _AMOUNTS if converted.get(k)):
            return None
        return converted

    def _ConfigureLocation(self, b: dict[str, Any]) -> bool:
        if b["code"] not in self.locations and "name" not in b:
            return False
        self.locations[b["code"]] = b.get("active", self.locations.get(b["code"], True))
        return True

    def _ConfigureItem(self, b: dict[str, Any]) -> bool:
        sku = b["sku"]
        if b.get("expected_version", self.item_versions[sku]) != self.item_versions[sku]:
            return False
        if sku not in self.items and "name" not in b:
            return False
        if "EA" in (b.get("units") or {}):
            return False
        tracking = b.get("tracking", self.tracking.get(sku, "none"))
        if tracking != self.tracking.get(sku, "none") and any(
            p.on_hand for (s, _), p in self.positions.items() if s == sku
        ):
            return False  # TRACKING_CHANGE_WITH_STOCK
        if "units" in b:
            self.units[sku] = dict(b["units"] or {})
        self.tracking[sku] = tracking
        self.items[sku] = b.get("active", self.items.get(sku, True))
        self.item_versions[sku] += 1
        return True

    def _ConfigureStockItem(self, b: dict[str, Any]) -> bool:
        p = self.positions.get((b["sku"], b["location"])) or RefPosition()
        lowest = b.get("min_quantity", p.min_quantity) or 0
        highest = b.get("max_quantity", p.max_quantity) or 0
        if highest < lowest:
            return False
        self.positions[b["sku"], b["location"]] = p
        p.min_quantity, p.max_quantity = lowest, highest
        self._touch(p)
        return True

    def _OrderPOItem(self, b: dict[str, Any]) -> bool:
        line_key = (b["po_number"], b["po_line"])
        if line_key in self.lines or self._inactive(b["sku"], b["location"]):
            return False
        self.lines[line_key] = RefLine(b["sku"], b["location"], b["quantity"])
        self._touch(self.positions.setdefault((b["sku"], b["location"]), RefPosition()))
        return True

    def _ReceivePOItem(self, b: dict[str, Any]) -> bool:
        key = (b["sku"], b["location"])
        if self._inactive(*key):
            return False
        line = self.lines.get((b["po_number"], b["po_line"]))
        if line is None:
            line = RefLine(*key, ordered=0, planned=False)
        elif (line.sku, line.location) != key or line.cancelled:
            return False
        elif line.planned:
            allowed = line.ordered + line.ordered * self.tolerance // 100
            if line.received + b["quantity"] > allowed:
                return False
        cost = _money(Decimal(str(b["unit_cost"])) * b["quantity"])
        p = self.positions.get(key) or RefPosition()
        if self._too_valuable(p.value, p.value + cost) or self._too_valuable(
            line.value, line.value + cost
        ):
            return False
        self.lines[(b["po_number"], b["po_line"])] = line
        line.received += b["quantity"]
        line.value += cost
        self.positions[key] = p
        p.on_hand += b["quantity"]
        p.value += cost
        self._touch(p)
        return True

    def _UnreceivePOItem(self, b: dict[str, Any]) -> bool:
        key = (b["sku"], b["location"])
        line = self.lines.get((b["po_number"], b["po_line"]))
        p = self.positions.get(key)
        q = b["quantity"]
        if line is None or (line.sku, line.location) != key or q > line.received:
            return False
        # (Units of an expired lot may be taken back: they are free, though not available.)
        if p is None or p.on_hand - p.reserved - p.picked < q:
            return False
        cost = _part(line.value, q, line.received)
        line.received -= q
        line.value -= cost
        p.value = Decimal(0) if p.on_hand == q else max(p.value - cost, Decimal(0))
        p.on_hand -= q
        self._touch(p)
        return True

    def _CancelPOItem(self, b: dict[str, Any]) -> bool:
        key = (b["sku"], b["location"])
        line = self.lines.get((b["po_number"], b["po_line"]))
        if line is None or (line.sku, line.location) != key or line.open == 0:
            return False
        line.cancelled = True
        self._touch(self.positions[key])
        return True

    def _ReserveStock(self, b: dict[str, Any]) -> bool:
        key = (b["sku"], b["location"])
        p = self.positions.get(key)
        expires = _time(b["expires_at"]) if b.get("expires_at") else None
        taken = any(b["reservation_id"] in q.reservations for q in self.positions.values())
        if self._inactive(*key) or p is None or taken:
            return False
        if expires is not None and expires <= _time(b["occurred_at"]):
            return False
        q = b["quantity"]
        held = min(q, max(p.available, 0))
        if held < q and not b.get("allow_backorder", False):
            return False
        self._arrivals += 1
        p.reservations[b["reservation_id"]] = RefReservation(
            b["order_ref"], held, q - held, expires, self._arrivals
        )
        self._touch(p)
        return True

    def _release(self, p: RefPosition, r: RefReservation, q: int) -> None:
        from_waiting = min(q, r.waiting)
        r.waiting -= from_waiting
        r.held -= q - from_waiting
        self._drop_empty(p)
        self._touch(p)

    def _ReleaseReservation(self, b: dict[str, Any]) -> bool:
        p = self.positions.get((b["sku"], b["location"]))
        r = p.reservations.get(b["reservation_id"]) if p else None
        if p is None or r is None:
            return False
        q = b.get("quantity") or r.held + r.waiting
        if q > r.held + r.waiting:
            return False
        self._release(p, r, q)
        return True

    def _ExpireReservation(self, b: dict[str, Any]) -> bool:
        p = self.positions.get((b["sku"], b["location"]))
        r = p.reservations.get(b["reservation_id"]) if p else None
        if p is None or r is None or r.expires is None or r.expires > _time(b["occurred_at"]):
            return False
        self._release(p, r, r.held + r.waiting)
        return True

    def _ExpireLot(self, b: dict[str, Any]) -> bool:
        """The worker's sweep: a lot is reported once within `lot_expiring_days` of its
        date, and expires the day after it (dates in UTC, by the command's occurred_at)."""
        p = self.positions.get((b["sku"], b["location"]))
        lot = p.lots.get(b["lot"]) if p else None
        if p is None or lot is None or lot.expires_on is None:
            return False
        today = _time(b["occurred_at"]).astimezone(UTC).date()
        if b["stage"] == "expiring":
            due = today >= lot.expires_on - timedelta(days=self.lot_expiring_days)
            if lot.warned or lot.expired or not due:
                return False
            lot.warned = True
        else:
            if lot.expired or today <= lot.expires_on:
                return False
            lot.warned = lot.expired = True
        if p.available < 0:
            self._uncover(p)
        self._touch(p)
        return True

    def _PickStock(self, b: dict[str, Any]) -> bool:
        p = self.positions.get((b["sku"], b["location"]))
        if p is None:
            return False
        q = b["quantity"]
        from_reservation = 0
        r = None
        if b.get("reservation_id"):
            r = p.reservations.get(b["reservation_id"])
            if r is None or r.order != b["order_ref"]:
                return False
            from_reservation = min(q, r.held)
        if p.available < q - from_reservation:
            return False
        if r is not None:
            r.held -= from_reservation
            self._drop_empty(p)
        p.picked += q
        p.picks[b["order_ref"]] += q
        self._touch(p)
        return True

    def _UnpickStock(self, b: dict[str, Any]) -> bool:
        p = self.positions.get((b["sku"], b["location"]))
        if p is None or p.picks[b["order_ref"]] < b["quantity"]:
            return False
        p.picked -= b["quantity"]
        p.picks[b["order_ref"]] -= b["quantity"]
        self._touch(p)
        return True

    def _ShipStock(self, b: dict[str, Any]) -> bool:
        p = self.positions.get((b["sku"], b["location"]))
        if p is None or p.picks[b["order_ref"]] < b["quantity"]:
            return False
        p.value -= _part(p.value, b["quantity"], p.on_hand)
        p.on_hand -= b["quantity"]
        p.picked -= b["quantity"]
        p.picks[b["order_ref"]] -= b["quantity"]
        self._touch(p)
        return True

    def _AdjustInventory(self, b: dict[str, Any]) -> bool:
        key = (b["sku"], b["location"])
        p = self.positions.get(key) or RefPosition()
        new = b["counted_quantity"] if "counted_quantity" in b else p.on_hand + b["delta"]
        if new < p.reserved + p.picked:
            return False
        if new > p.on_hand:
            if self._inactive(*key):
                return False
            unit = (
                Decimal(str(b["unit_cost"]))
                if b.get("unit_cost") is not None
                else (_money(p.value / p.on_hand) if p.on_hand else Decimal(0))
            )
            added = _money(unit * (new - p.on_hand))
            if self._too_valuable(p.value, p.value + added):
                return False
            p.value += added
        else:
            p.value -= _part(p.value, p.on_hand - new, p.on_hand)
        p.on_hand = new
        self.positions[key] = p
        self._touch(p)
        return True

    def _TransferStock(self, b: dict[str, Any]) -> bool:
        sku, src, dst, q = b["sku"], b["from_location"], b["to_location"], b["quantity"]
        if src == dst or src not in self.locations or dst not in self.locations:
            return False
        # Stock may leave an inactive location; it may not enter one, nor may an
        # inactive item (the transfer adds stock at the destination).
        if self._inactive(sku, dst):
            return False
        source = self.positions.get((sku, src))
        target = self.positions.get((sku, dst)) or RefPosition()
        if source is None or source.available < q:
            return False
        if b.get("expected_version", source.version) != source.version:
            return False
        if b.get("expected_destination_version", target.version) != target.version:
            return False
        moved = _part(source.value, q, source.on_hand)
        if self._too_valuable(target.value, target.value + moved):
            return False
        source.on_hand -= q
        source.value -= moved
        target.on_hand += q
        target.value += moved
        self.positions[(sku, dst)] = target
        self._touch(source)
        self._touch(target)
        return True

    # -- tracked stock: the serials or lots a change moves ------------------------------
    def _track(self, kind: str, b: dict[str, Any]) -> str | None:
        """Move the serials or lots of a command its quantities allowed; a rejection
        code when they cannot be moved (the caller then undoes the command)."""
        serials, lot = b.get("serials"), b.get("lot")
        if (
            kind == "none"
            or (serials is not None and kind != "serial")
            or (lot is not None and kind != "lot")
        ):
            return "NOT_TRACKED"
        t = b["type"]
        if kind == "serial" and serials is None and b.get("counted_quantity") == 0:
            b = {**b, "serials": []}  # a count that found nothing names nothing
            serials = []
        if kind == "serial" and serials is None and t in _NAME_SERIALS:
            return "SERIALS_REQUIRED"
        if kind == "lot" and lot is None and t in _NAME_LOT:
            return "LOT_REQUIRED"
        if serials is not None:
            amount = next(b[k] for k in _AMOUNTS if b.get(k) is not None)
            if abs(amount) != len(serials):
                return "SERIAL_COUNT_MISMATCH"
        if t == "TransferStock":
            return self._transfer_tracked(kind, b)
        p = self.positions[b["sku"], b["location"]]
        order = b.get("order_ref", "")
        delta = b.get("delta") or 0
        if t == "ReceivePOItem" or (t == "AdjustInventory" and delta > 0):
            return self._add(kind, b, p, b.get("quantity") or b["delta"])
        if t == "UnreceivePOItem" or (t == "AdjustInventory" and delta < 0):
            taken = self._take_free(kind, b, p, b.get("quantity") or -b["delta"])
            return taken if isinstance(taken, str) else None
        if t == "AdjustInventory" and b.get("counted_quantity") is not None:
            return self._count_serials(b, p)
        if t == "PickStock":
            return self._pick(kind, b, p, order)
        if t in ("UnpickStock", "ShipStock"):
            return self._give_back(kind, b, p, order, shipped=t == "ShipStock")
        return None  # a count of a lot that finds what it holds

    def _serial_in_stock(self, sku: str, serial: str) -> bool:
        return any(serial in p.serials for (s, _), p in self.positions.items() if s == sku)

    def _add(self, kind: str, b: dict[str, Any], p: RefPosition, quantity: int) -> str | None:
        """New stock: serial numbers not in stock anywhere, or more of a lot."""
        if kind == "serial":
            if any(self._serial_in_stock(b["sku"], s) for s in b["serials"]):
                return "SERIAL_IN_STOCK"
            p.serials.update(dict.fromkeys(b["serials"]))
            return None
        expires = date.fromisoformat(b["expires_on"]) if b.get("expires_on") else None
        return self._add_lot(p, b["lot"], quantity, expires)

    @staticmethod
    def _add_lot(p: RefPosition, name: str, quantity: int, expires: date | None) -> str | None:
        """`quantity` of lot `name` arrives at p: a date given must be the lot's own;
        nothing is added to an expired lot."""
        lot = p.lots.get(name)
        if lot is None:
            # (p was touched already: its version is the one this change makes.)
            p.lots[name] = RefLot(quantity, expires, arrival=p.version)
            return None
        if lot.expired:
            return "LOT_EXPIRED"
        if expires is not None and expires != lot.expires_on:
            return "LOT_EXPIRY_MISMATCH"
        lot.quantity += quantity
        return None

    def _take_free(
        self, kind: str, b: dict[str, Any], p: RefPosition, quantity: int, moves: bool = False
    ) -> str | list[tuple[str, int, RefLot | None]]:
        """Remove free stock (named, or by choice for lots): what left, or a code. A
        transfer (`moves`) takes only from lots that have not expired."""
        if kind == "serial":
            serials = b["serials"]
            if any(s not in p.serials for s in serials):
                return "SERIAL_NOT_AT_POSITION"
            if any(p.serials[s] is not None for s in serials):
                return "SERIAL_NOT_AVAILABLE"
            for s in serials:
                del p.serials[s]
            return [(s, 1, None) for s in serials]
        if b.get("lot") is not None:
            lot = p.lots.get(b["lot"])
            if lot is None:
                return "LOT_NOT_FOUND"
            if moves and lot.expired:
                return "LOT_EXPIRED"
            if lot.free < quantity:
                return "LOT_INSUFFICIENT"
            shares = [(b["lot"], quantity)]
        else:
            shares = []
            left = quantity
            for name in sorted(p.lots, key=lambda n: p.lots[n].fefo(n)):
                share = 0 if p.lots[name].expired else min(left, p.lots[name].free)
                if share:
                    shares.append((name, share))
                    left -= share
            assert left == 0, "the quantities allowed more than the lots hold"
        gone: list[tuple[str, int, RefLot | None]] = []
        for name, share in shares:
            lot = p.lots[name]
            gone.append((name, share, copy.copy(lot)))
            lot.quantity -= share
            if not lot.quantity:
                del p.lots[name]
        return gone

    def _transfer_tracked(self, kind: str, b: dict[str, Any]) -> str | None:
        source = self.positions[b["sku"], b["from_location"]]
        target = self.positions[b["sku"], b["to_location"]]
        gone = self._take_free(kind, b, source, b["quantity"], moves=True)
        if isinstance(gone, str):
            return gone
        for name, share, lot in gone:
            if lot is None:
                target.serials[name] = None
                continue
            new_here = name not in target.lots
            refused = self._add_lot(target, name, share, lot.expires_on)
            if refused is not None:
                return refused
            if new_here:  # (reported at the source: not again here)
                target.lots[name].warned = lot.warned
        return None

    def _count_serials(self, b: dict[str, Any], p: RefPosition) -> str | None:
        """A count of a serialised position names every unit found there."""
        found = set(b["serials"])
        if any(order is not None for s, order in p.serials.items() if s not in found):
            return "SERIAL_NOT_AVAILABLE"  # a picked unit is not missing
        if any(s not in p.serials and self._serial_in_stock(b["sku"], s) for s in found):
            return "SERIAL_IN_STOCK"
        p.serials = {s: p.serials.get(s) for s in sorted(found)}
        return None

    def _pick(self, kind: str, b: dict[str, Any], p: RefPosition, order: str) -> str | None:
        quantity = b["quantity"]
        if kind == "serial":
            serials = b.get("serials")
            if serials is None:
                serials = sorted(s for s, o in p.serials.items() if o is None)[:quantity]
            elif any(s not in p.serials for s in serials):
                return "SERIAL_NOT_AT_POSITION"
            elif any(p.serials[s] is not None for s in serials):
                return "SERIAL_NOT_AVAILABLE"
            assert len(serials) == quantity, "the quantities allowed more than is free"
            for s in serials:
                p.serials[s] = order
            return None
        if b.get("lot") is not None:
            lot = p.lots.get(b["lot"])
            if lot is None:
                return "LOT_NOT_FOUND"
            if lot.expired:
                return "LOT_EXPIRED"
            if lot.free < quantity:
                return "LOT_INSUFFICIENT"
            lot.picks[order] += quantity
            return None
        left = quantity
        for name in sorted(p.lots, key=lambda n: p.lots[n].fefo(n)):
            share = 0 if p.lots[name].expired else min(left, p.lots[name].free)
            if share:
                p.lots[name].picks[order] += share
                left -= share
        assert left == 0, "the quantities allowed more than is free"
        return None

    def _give_back(
        self, kind: str, b: dict[str, Any], p: RefPosition, order: str, shipped: bool
    ) -> str | None:
        """Units picked for `order` go back to free stock, or out with a shipment."""
        quantity = b["quantity"]
        if kind == "serial":
            serials = b["serials"]
            if any(s not in p.serials for s in serials):
                return "SERIAL_NOT_AT_POSITION"
            if any(p.serials[s] != order for s in serials):
                return "SERIAL_NOT_PICKED"
            for s in serials:
                if shipped:
                    del p.serials[s]
                else:
                    p.serials[s] = None
            return None
        if b.get("lot") is not None:
            lot = p.lots.get(b["lot"])
            if lot is None:
                return "LOT_NOT_FOUND"
            if lot.picks[order] < quantity:
                return "LOT_INSUFFICIENT"
            shares = [(b["lot"], quantity)]
        else:
            shares = []
            left = quantity
            for name in sorted(p.lots, key=lambda n: p.lots[n].fefo(n)):
                share = min(left, p.lots[name].picks[order])
                if share:
                    shares.append((name, share))
                    left -= share
            assert left == 0, "the quantities allowed more than the order picked"
        for name, share in shares:
            lot = p.lots[name]
            lot.picks[order] -= share
            if shipped:
                lot.quantity -= share
                if not lot.quantity:
                    del p.lots[name]
        return None

    # -- views -------------------------------------------------------------------------
    def snapshot(self) -> dict[tuple[str, str], Snapshot]:
        return {
            key: (
                p.on_hand,
                p.reserved,
                p.picked,
                self._on_order(key),
                p.back_ordered,
                _money(p.value),
                p.version,
                {o: q for o, q in p.picks.items() if q},
                {i: (r.held, r.waiting) for i, r in p.reservations.items()},
                p.holdings(),
            )
            for key, p in self.positions.items()
        }

    def line_statuses(self) -> dict[tuple[str, int], tuple[int, int, str]]:
        return {k: (line.received, line.open, line.status) for k, line in self.lines.items()}


def observed(positions: Iterable[Position]) -> dict[tuple[str, str], Snapshot]:
    """Domain positions in the reference model's snapshot shape."""
    return {
        (p.sku, p.location): (
            p.on_hand,
            p.reserved,
            p.picked,
            p.on_order,
            p.back_ordered,
            p.stock_value,
            p.version,
            dict(p.picks),
            {i: (r.quantity, r.back_ordered) for i, r in p.reservations.items()},
            {
                h.id: (h.kind, h.on_hand, dict(h.picks), h.expires_on, h.expired)
                for h in p.holdings.values()
            },
        )
        for p in positions
    }
