"""Locations and items: the catalogue positions refer to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

NO_UNITS: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Location:
    code: str
    name: str
    active: bool = True
    version: int = 1


@dataclass(frozen=True, slots=True)
class Item:
    sku: str
    name: str
    base_unit: str = "EA"
    # Named units and how many base units each holds (BOX: 12).
    units: Mapping[str, int] = field(default_factory=lambda: NO_UNITS)
    active: bool = True
    # "none", "serial" or "lot" (contract.codes.Tracking).
    tracking: str = "none"
    version: int = 1

    def factor(self, unit: str) -> int | None:
        """Base units in one `unit`, or None when the item has no such unit."""
        return 1 if unit == self.base_unit else self.units.get(unit)
