"""Seeded random streams of mixed commands for the end-to-end and fault tests.

Every reference a command names (purchase-order line, reservation id) belongs to one
SKU, as it does upstream, so all commands about it share a partition and their order
is fixed. Locations (and tracked items) are configured by a setup stream that must be
applied first.

Items tracked by serial number or by lot (`tracked`: sku -> "serial" | "lot") get
commands of their own, slipped in between the untracked ones from a second random
source: the untracked commands of a seed stay the same, in the same order (the stream
being `count` long, fewer of them). Their serials and lots are drawn from the state a
private reference model gives the stream so far, so most commands are valid; some name
a serial in stock, too few serials, a lot for a serialised item, or nothing at all.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from itertools import count as counting
from typing import Any

from tests.support.builders import command
from tests.support.reference import ReferenceModel, RefPosition

LOCATIONS = ("L1", "L2")
# One item tracked by serial number and one by lot, for the streams that want them.
TRACKED: Mapping[str, str] = {"TRK-SERIAL": "serial", "TRK-LOT": "lot"}
# A tracked SKU gets this many times the commands of an untracked one.
_TRACKED_WEIGHT = 3
# Expiry dates of lots (far ahead: no lot expires while a test runs); several lots share
# one, so first-expiry-first-out goes by arrival between them.
_EXPIRIES = ("2099-01-01", "2099-06-01", None)


def setup_stream(tracked: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    locations = [command("ConfigureLocation", code=code, name=code) for code in LOCATIONS]
    items = [
        command("ConfigureItem", sku=sku, name=f"{kind} tracked", tracking=kind)
        for sku, kind in (tracked or {}).items()
    ]
    return locations + items


def mixed_stream(
    seed: int, count: int, skus: list[str], tracked: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    untracked = _untracked(seed, skus)
    if not tracked:
        return [next(untracked) for _ in range(count)]
    rng = random.Random(f"tracked-{seed}")
    weight = _TRACKED_WEIGHT * len(tracked)
    share = weight / (len(skus) + weight)
    stream = _Tracked(rng, tracked)
    return [stream.next() if rng.random() < share else next(untracked) for _ in range(count)]


def _untracked(seed: int, skus: list[str]) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    lines: dict[str, list[str]] = {s: [] for s in skus}
    reservations: dict[str, list[str]] = {s: [] for s in skus}
    for n in counting():
        sku = rng.choice(skus)
        location = rng.choice(LOCATIONS)
        order = f"SO-{rng.randrange(4)}"
        roll = rng.random()
        at = {"sku": sku, "location": location}
        if roll < 0.20:
            po = f"PO-{sku}-{n}"
            lines[sku].append(po)
            body = command("ReceivePOItem", **at, po_number=po, quantity=rng.randint(1, 20),
                           unit_cost=rng.choice(["1", "2.5", "0.75"]))  # fmt: skip
        elif roll < 0.26:
            po = f"PO-{sku}-{n}"
            lines[sku].append(po)
            body = command("OrderPOItem", **at, po_number=po, quantity=rng.randint(5, 30))
        elif roll < 0.32 and lines[sku]:
            body = command("ReceivePOItem", **at, po_number=rng.choice(lines[sku]),
                           quantity=rng.randint(1, 15))  # fmt: skip
        elif roll < 0.50:
            body = command("PickStock", **at, quantity=rng.randint(1, 8), order_ref=order)
        elif roll < 0.60:
            body = command("ShipStock", **at, quantity=rng.randint(1, 6), order_ref=order)
        elif roll < 0.70:
            rid = f"R-{sku}-{n}"
            reservations[sku].append(rid)
            backorder = rng.random() < 0.3
            body = command("ReserveStock", **at, reservation_id=rid, order_ref=order,
                           quantity=rng.randint(1, 6), allow_backorder=backorder)  # fmt: skip
        elif roll < 0.74 and reservations[sku]:
            body = command("ReleaseReservation", **at, reservation_id=rng.choice(reservations[sku]))
        elif roll < 0.78 and reservations[sku]:
            body = command("PickStock", **at, reservation_id=rng.choice(reservations[sku]),
                           quantity=rng.randint(1, 4), order_ref=order)  # fmt: skip
        elif roll < 0.81:
            body = command("UnpickStock", **at, quantity=rng.randint(1, 3), order_ref=order)
        elif roll < 0.89:
            source, target = rng.sample(LOCATIONS, 2)
            body = command("TransferStock", sku=sku, from_location=source, to_location=target,
                           quantity=rng.randint(1, 5))  # fmt: skip
        elif roll < 0.92 and lines[sku]:
            body = command("UnreceivePOItem", **at, po_number=rng.choice(lines[sku]),
                           quantity=rng.randint(1, 5))  # fmt: skip
        elif roll < 0.94 and lines[sku]:
            body = command("CancelPOItem", **at, po_number=rng.choice(lines[sku]))
        elif roll < 0.98:
            body = command("AdjustInventory", **at, delta=rng.choice([-3, -1, 1, 2]),
                           reason="CORRECTION")  # fmt: skip
        else:
            body = command("AdjustInventory", **at, delta=..., reason="COUNT",
                           counted_quantity=rng.randint(0, 30))  # fmt: skip
        yield body


class _Tracked:
    """Commands about tracked items, drawn with a look at what the stream so far left."""

    def __init__(self, rng: random.Random, tracked: Mapping[str, str]) -> None:
        self.rng = rng
        self.tracked = dict(tracked)
        self.model = ReferenceModel()
        for body in setup_stream(tracked):
            self.model.apply(body)
        self.n = 0
        self.lots: dict[str, dict[str, str | None]] = {s: {} for s in tracked}  # name -> date
        self.reservations: dict[str, list[str]] = {s: [] for s in tracked}

    def next(self) -> dict[str, Any]:
        self.n += 1
        sku = self.rng.choice(sorted(self.tracked))
        body = self._serial(sku) if self.tracked[sku] == "serial" else self._lot(sku)
        self.model.apply(body)
        return body

    # -- what the stream so far holds -------------------------------------------------
    def _at(self, sku: str, location: str) -> RefPosition:
        return self.model.positions.get((sku, location)) or RefPosition()

    def _pick_some(self, names: list[str], most: int) -> list[str]:
        return self.rng.sample(sorted(names), self.rng.randint(1, min(most, len(names))))

    def _fresh(self, sku: str, n: int) -> list[str]:
        first = self.n * 10
        return [f"{sku}-{first + i:07d}" for i in range(n)]

    def _in_stock(self, sku: str) -> list[str]:
        return sorted(s for loc in LOCATIONS for s in self._at(sku, loc).serials)

    def _received_line(self, sku: str, location: str) -> str | None:
        lines = sorted(
            po
            for (po, _), line in self.model.lines.items()
            if (line.sku, line.location) == (sku, location) and line.received
        )
        return self.rng.choice(lines) if lines else None

    def _reserve_or_release(self, sku: str, at: dict[str, str], order: str) -> dict[str, Any]:
        if self.reservations[sku] and self.rng.random() < 0.3:
            rid = self.rng.choice(self.reservations[sku])
            return command("ReleaseReservation", **at, reservation_id=rid)
        rid = f"R-{sku}-{self.n}"
        self.reservations[sku].append(rid)
        return command("ReserveStock", **at, reservation_id=rid, order_ref=order,
                       quantity=self.rng.randint(1, 3),
                       allow_backorder=self.rng.random() < 0.3)  # fmt: skip

    # -- serial numbers ---------------------------------------------------------------
    def _serial(self, sku: str) -> dict[str, Any]:
        rng = self.rng
        location = rng.choice(LOCATIONS)
        at = {"sku": sku, "location": location}
        here = self._at(sku, location)
        order = f"SO-{rng.randrange(4)}"
        free = [s for s, o in here.serials.items() if o is None]
        picked = [s for s, o in here.serials.items() if o == order]
        roll = rng.random()
        if roll < 0.24:
            serials = self._fresh(sku, rng.randint(1, 4))
            if rng.random() < 0.06 and self._in_stock(sku):
                serials[0] = rng.choice(self._in_stock(sku))  # SERIAL_IN_STOCK
            body = command("ReceivePOItem", **at, po_number=f"PO-{sku}-t{self.n}",
                           quantity=len(serials), unit_cost=rng.choice(["4", "7.5"]))  # fmt: skip
            if rng.random() < 0.04:
                body["quantity"] += 1  # SERIAL_COUNT_MISMATCH
            if rng.random() < 0.96:  # else SERIALS_REQUIRED
                body["serials"] = serials
            return body
        if roll < 0.42:
            if free and rng.random() < 0.4:
                serials = self._pick_some(free, 3)
                return command("PickStock", **at, quantity=len(serials), order_ref=order,
                               serials=serials)  # fmt: skip
            return command("PickStock", **at, quantity=rng.randint(1, 3), order_ref=order)
        if roll < 0.56:
            # Mostly what the order picked here; sometimes a unit it did not (refused).
            names = picked if picked and rng.random() < 0.9 else sorted(here.serials)
            serials = self._pick_some(names, 2) if names else self._fresh(sku, 1)
            kind = "ShipStock" if rng.random() < 0.75 else "UnpickStock"
            return command(kind, **at, quantity=len(serials), order_ref=order, serials=serials)
        if roll < 0.66 and free:
            target = LOCATIONS[1 - LOCATIONS.index(location)]
            serials = self._pick_some(free, 3)
            return command("TransferStock", sku=sku, from_location=location, to_location=target,
                           quantity=len(serials), serials=serials)  # fmt: skip
        if roll < 0.76:
            return self._reserve_or_release(sku, at, order)
        if roll < 0.84:
            if free and rng.random() < 0.6:
                serials = self._pick_some(free, 2)
                return command("AdjustInventory", **at, delta=-len(serials), reason="DAMAGE",
                               serials=serials)  # fmt: skip
            serials = self._fresh(sku, rng.randint(1, 2))
            return command("AdjustInventory", **at, delta=len(serials), reason="FOUND",
                           serials=serials)  # fmt: skip
        if roll < 0.89 and here.serials:
            # A count names every unit found: all picked ones, most free ones, a new one.
            found = [s for s, o in here.serials.items() if o is not None or rng.random() < 0.8]
            found += self._fresh(sku, rng.randint(0, 1))
            if found:
                return command("AdjustInventory", **at, delta=..., reason="COUNT",
                               counted_quantity=len(found), serials=sorted(found))  # fmt: skip
        if roll < 0.94 and free:
            po = self._received_line(sku, location)
            if po is not None:
                serials = self._pick_some(free, 2)
                return command("UnreceivePOItem", **at, po_number=po, quantity=len(serials),
                               serials=serials)  # fmt: skip
        if roll < 0.97:
            # A lot for a serialised item (NOT_TRACKED), or a transfer naming nothing.
            if rng.random() < 0.5:
                return command("AdjustInventory", **at, delta=1, reason="FOUND", lot="L-1")
            return command("TransferStock", sku=sku, from_location="L1", to_location="L2",
                           quantity=1)  # fmt: skip
        return self._tracking_change(sku, "lot")

    def _tracking_change(self, sku: str, other: str) -> dict[str, Any]:
        """Another kind of tracking: refused while the item holds stock; else the same."""
        held = any(self._at(sku, loc).on_hand for loc in LOCATIONS)
        return command("ConfigureItem", sku=sku, name=...,
                       tracking=other if held else self.tracked[sku])  # fmt: skip

    # -- lots -------------------------------------------------------------------------
    def _lot(self, sku: str) -> dict[str, Any]:
        rng = self.rng
        location = rng.choice(LOCATIONS)
        at = {"sku": sku, "location": location}
        here = self._at(sku, location)
        order = f"SO-{rng.randrange(4)}"
        known = self.lots[sku]
        held = sorted(here.lots)
        roll = rng.random()
        if roll < 0.24:
            if not known or rng.random() < 0.3:
                lot = f"{sku}-LOT{self.n}"
                known[lot] = rng.choice(_EXPIRIES)
            else:
                lot = rng.choice(sorted(known))
            expires = known[lot]
            if rng.random() < 0.04:
                expires = "2098-12-31"  # LOT_EXPIRY_MISMATCH, if the lot is held here
            body = command("ReceivePOItem", **at, po_number=f"PO-{sku}-t{self.n}",
                           quantity=rng.randint(1, 12),
                           unit_cost=rng.choice(["1", "2.25"]))  # fmt: skip
            if rng.random() < 0.97:  # else LOT_REQUIRED
                body["lot"] = lot
                if expires is not None and rng.random() < 0.7:
                    body["expires_on"] = expires
            return body
        if roll < 0.42:
            body = command("PickStock", **at, quantity=rng.randint(1, 6), order_ref=order)
            if held and rng.random() < 0.3:
                body["lot"] = rng.choice(held)
            return body
        if roll < 0.56:
            kind = "ShipStock" if rng.random() < 0.75 else "UnpickStock"
            body = command(kind, **at, quantity=rng.randint(1, 4), order_ref=order)
            mine = sorted(name for name, lot in here.lots.items() if lot.picks[order])
            if mine and rng.random() < 0.3:
                body["lot"] = rng.choice(mine)
            return body
        if roll < 0.68:
            target = LOCATIONS[1 - LOCATIONS.index(location)]
            body = command("TransferStock", sku=sku, from_location=location, to_location=target,
                           quantity=rng.randint(1, 6))  # fmt: skip
            if held and rng.random() < 0.3:
                body["lot"] = rng.choice(held)
            return body
        if roll < 0.78:
            return self._reserve_or_release(sku, at, order)
        if roll < 0.86 and known:
            lot = rng.choice(held) if held and rng.random() < 0.8 else rng.choice(sorted(known))
            delta = rng.choice([-3, -1, 1, 2])
            return command("AdjustInventory", **at, delta=delta, reason="CORRECTION", lot=lot)
        if roll < 0.90 and held:
            return command("AdjustInventory", **at, delta=..., reason="COUNT",
                           counted_quantity=rng.randint(0, 10), lot=rng.choice(held))  # fmt: skip
        if roll < 0.94 and held:
            po = self._received_line(sku, location)
            if po is not None:
                return command("UnreceivePOItem", **at, po_number=po,
                               quantity=rng.randint(1, 3), lot=rng.choice(held))  # fmt: skip
        if roll < 0.98:
            # Serial numbers for a lot item (NOT_TRACKED), or an adjustment naming no lot.
            if rng.random() < 0.5:
                return command("PickStock", **at, quantity=1, order_ref=order,
                               serials=[f"{sku}-S1"])  # fmt: skip
            return command("AdjustInventory", **at, delta=-1, reason="LOSS")
        return self._tracking_change(sku, "serial")
