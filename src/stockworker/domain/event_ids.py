"""Event ids: derived from the command that caused the event, so the same command always
yields the same ids (a re-publish repeats them)."""

from __future__ import annotations

import uuid
from uuid import UUID

# Fixed namespace for event ids: changing it changes every id, so never do.
EVENT_ID_NAMESPACE = UUID("5f0c2d8e-6f43-4c1e-9d3a-2b7c1e4f8a90")


def event_id(command_id: UUID, kind: str) -> UUID:
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{command_id}/{kind}")
