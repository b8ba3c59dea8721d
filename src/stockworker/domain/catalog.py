"""Locations and items: the catalogue positions refer to."""

from __future__ import annotations

from dataclasses import dataclass


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
    active: bool = True
    version: int = 1
