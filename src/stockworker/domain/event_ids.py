"""Event ids: derived from the command that caused the event, so the same command always
yields the same ids (a re-publish repeats them)."""

from __future__ import annotations

from hashlib import sha1
from uuid import UUID

# Fixed namespace for event ids: changing it changes every id, so never do.
EVENT_ID_NAMESPACE = UUID("5f0c2d8e-6f43-4c1e-9d3a-2b7c1e4f8a90")


class EventIds:
    """The ids of one command's events: `uuid5(EVENT_ID_NAMESPACE, f"{command_id}/{kind}")`.

    The same as uuid.uuid5 (a test holds them equal), with the command's part of the
    name prepared once: a command has several events, and this is on the hot path.
    """

    __slots__ = ("_prefix",)

    def __init__(self, command_id: UUID) -> None:
        self._prefix = EVENT_ID_NAMESPACE.bytes + f"{command_id}/".encode()

    def __call__(self, kind: str) -> UUID:
        return UUID(bytes=sha1(self._prefix + kind.encode()).digest()[:16], version=5)
