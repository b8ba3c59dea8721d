"""A small reference model of the stock rules, written apart from the domain code.

It works on command bodies (plain dicts) and keeps only what it must: reserved and
back-ordered are derived from its reservations, on_order from its purchase-order lines.
The property test and the end-to-end tests compare the real domain and worker with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
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
class RefPosition:
    on_hand: int = 0
    picked: int = 0
    value: Decimal = Decimal(0)
    picks: Counter[str] = field(default_factory=Counter)
    reservations: dict[str, RefReservation] = field(default_factory=dict)
    min_quantity: int = 0
    max_quantity: int = 0
    version: int = 0

    @property
    def reserved(self) -> int:
        return sum(r.held for r in self.reservations.values())

    @property
    def back_ordered(self) -> int:
        return sum(r.waiting for r in self.reservations.values())

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved - self.picked


Snapshot = tuple[int, int, int, int, int, Decimal, int, dict[str, int], dict[str, tuple[int, int]]]


class ReferenceModel:
    def __init__(self, over_receipt_tolerance_percent: int = 0) -> None:
        self.positions: dict[tuple[str, str], RefPosition] = {}
        self.lines: dict[tuple[str, int], RefLine] = {}
        self.locations: dict[str, bool] = {}  # code -> active
        self.items: dict[str, bool] = {}  # sku -> active
        self.item_versions: Counter[str] = Counter()
        self.units: dict[str, dict[str, int]] = {}  # sku -> named units (base "EA")
        self.outcomes: dict[str, bool] = {}  # command_id -> accepted
        self.tolerance = over_receipt_tolerance_percent
        self._arrivals = 0

    # -- helpers -----------------------------------------------------------------------
    def _inactive(self, sku: str, location: str) -> bool:
        return not self.locations.get(location, True) or not self.items.get(sku, True)

    def _on_order(self, key: tuple[str, str]) -> int:
        return sum(line.open for line in self.lines.values() if (line.sku, line.location) == key)

    def _touch(self, p: RefPosition) -> None:
        """A change was accepted: bump the version and hand free stock to back orders."""
        p.version += 1
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
        with localcontext(prec=PRECISION):
            accepted = bool(handler(body))
        self.outcomes[body["command_id"]] = accepted
        return accepted

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
        if "units" in b:
            if "EA" in (b["units"] or {}):
                return False
            self.units[sku] = dict(b["units"] or {})
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
        if p is None or p.available < q:
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
        )
        for p in positions
    }
