"""Where a consumer group stands on a topic, and where an offset reset would move it.

Pure: the caller reads the committed offsets, the partitions' bounds and (for a reset by
time) Kafka's offsets-for-times answer, and this module computes the lag and the plan,
as `kafka-consumer-groups --reset-offsets` does: every new offset is clamped to what the
partition still holds, [beginning, end], and each partition says why it moved where it
did. An offset is the position of the next record to read, so "end" means "read nothing
that is there now".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class PlanError(ValueError):
    """The request cannot be planned as given (an unknown partition, a missing offset)."""


@dataclass(frozen=True, slots=True)
class PartitionOffsets:
    """One partition: the group's committed offset (None: it never committed one) and the
    first offset the partition still holds and one past its last record."""

    partition: int
    committed: int | None
    beginning: int
    end: int

    @property
    def position(self) -> int:
        """Where the group reads next: the committed offset, or the beginning when it has
        none or it is no longer held (the worker's consumer resets to the earliest)."""
        if self.committed is None or self.committed < self.beginning:
            return self.beginning
        return self.committed

    @property
    def lag(self) -> int:
        """Records not yet read: end - committed, never below 0 (from the beginning when
        nothing was committed)."""
        return max(self.end - self.position, 0)


class ResetKind(StrEnum):
    TO_DATETIME = "to-datetime"
    TO_OFFSET = "to-offset"
    SHIFT_BY = "shift-by"
    TO_EARLIEST = "to-earliest"
    TO_LATEST = "to-latest"


@dataclass(frozen=True, slots=True)
class ResetRequest:
    """What the operator asked for. `partitions` None means every partition of the topic,
    except with --to-offset given only per partition (then the partitions named)."""

    kind: ResetKind
    partitions: tuple[int, ...] | None = None
    offset: int | None = None  # --to-offset N: every selected partition
    offsets: Mapping[int, int] = field(default_factory=dict)  # --to-offset P=N
    shift: int = 0  # --shift-by N (negative: backwards)
    moment: datetime | None = None  # --to-datetime T

    def describe(self) -> str:
        if self.kind is ResetKind.TO_DATETIME:
            assert self.moment is not None
            return f"to the first record at or after {self.moment.isoformat()}"
        if self.kind is ResetKind.TO_OFFSET:
            parts = [f"P{p}={n}" for p, n in sorted(self.offsets.items())]
            if self.offset is not None:
                parts.append(f"{self.offset} elsewhere" if parts else str(self.offset))
            return "to offset " + ", ".join(parts)
        if self.kind is ResetKind.SHIFT_BY:
            return f"shift by {self.shift:+d}"
        return "to the earliest offset" if self.kind is ResetKind.TO_EARLIEST else "to the end"


@dataclass(frozen=True, slots=True)
class PartitionReset:
    partition: int
    committed: int | None  # as it is now
    current: int  # where the group reads next now (see PartitionOffsets.position)
    new: int
    beginning: int
    end: int
    notes: tuple[str, ...] = ()

    @property
    def changes(self) -> bool:
        """Whether a commit is needed: the offset moves, or none was committed yet."""
        return self.committed != self.new

    @property
    def reread(self) -> int:
        """Records the group will read again (moved backwards)."""
        return max(self.current - self.new, 0)

    @property
    def skip(self) -> int:
        """Records the group will never read (moved forwards)."""
        return max(self.new - self.current, 0)

    def document(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "committed": self.committed,
            "current": self.current,
            "new": self.new,
            "beginning": self.beginning,
            "end": self.end,
            "reread": self.reread,
            "skip": self.skip,
            "changes": self.changes,
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class ResetPlan:
    group: str
    topic: str
    request: ResetRequest
    partitions: tuple[PartitionReset, ...]

    @property
    def changed(self) -> tuple[PartitionReset, ...]:
        return tuple(p for p in self.partitions if p.changes)

    @property
    def reread(self) -> int:
        return sum(p.reread for p in self.partitions)

    @property
    def skip(self) -> int:
        return sum(p.skip for p in self.partitions)

    def new_offsets(self) -> dict[int, int]:
        """What to commit: the partitions whose committed offset changes."""
        return {p.partition: p.new for p in self.changed}

    def identity(self) -> dict[str, Any]:
        """What the plan does, for its fingerprint: the same moves on the same group give
        the same fingerprint, so a dry run and the --execute after it can be matched."""
        return {
            "group": self.group,
            "topic": self.topic,
            "moves": [[p.partition, p.committed, p.new] for p in self.partitions],
        }

    def skip_warning(self) -> str | None:
        """The line a plan that moves the group forwards must show: the records it moves
        past are never read by the group, so those commands are never applied."""
        if not self.skip:
            return None
        where = ", ".join(f"partition {p.partition}: {p.skip}" for p in self.partitions if p.skip)
        return (
            f"warning: {self.skip} command(s) will never be applied: the group moves past "
            f"them unread ({where})"
        )

    def skip_refusal(self, allow_skip: bool) -> str | None:
        """Why committing this plan is refused without --allow-skip, or None."""
        if not self.skip or allow_skip:
            return None
        return (
            f"the plan skips {self.skip} command(s), which will never be applied; "
            "add --allow-skip to commit it"
        )

    def counts(self) -> dict[str, int]:
        return {
            "partitions": len(self.partitions),
            "changed": len(self.changed),
            "reread": self.reread,
            "skip": self.skip,
        }


def select_partitions(existing: Sequence[int], request: ResetRequest) -> list[int]:
    """The partitions the request applies to; PlanError naming any that do not exist."""
    if request.partitions is not None:
        wanted = sorted(set(request.partitions))
    elif request.kind is ResetKind.TO_OFFSET and request.offset is None:
        wanted = sorted(request.offsets)
    else:
        wanted = sorted(existing)
    named = set(wanted) | set(request.offsets)
    unknown = sorted(p for p in named if p not in existing)
    if unknown:
        raise PlanError(
            f"no partition {', '.join(map(str, unknown))} "
            f"(the topic has {len(existing)}: 0 to {len(existing) - 1})"
        )
    outside = sorted(set(request.offsets) - set(wanted))
    if outside:
        raise PlanError(
            f"--to-offset names partition {', '.join(map(str, outside))}, "
            "which --partition leaves out"
        )
    return wanted


def plan_reset(
    group: str,
    topic: str,
    states: Sequence[PartitionOffsets],
    request: ResetRequest,
    at_time: Mapping[int, int | None] | None = None,
) -> ResetPlan:
    """The plan for every selected partition. `states` covers every partition of the
    topic; `at_time` (for --to-datetime) is Kafka's offsets-for-times answer per
    partition: the first offset at or after the moment, None when there is none."""
    by_partition = {s.partition: s for s in states}
    chosen = select_partitions(sorted(by_partition), request)
    return ResetPlan(
        group=group,
        topic=topic,
        request=request,
        partitions=tuple(_plan_one(by_partition[p], request, at_time) for p in chosen),
    )


def _plan_one(
    state: PartitionOffsets, request: ResetRequest, at_time: Mapping[int, int | None] | None
) -> PartitionReset:
    notes: list[str] = []
    if state.committed is None:
        notes.append("no committed offset: the group reads from the beginning")
    elif state.committed < state.beginning:
        notes.append(f"committed {state.committed} is no longer held: reads from the beginning")
    target: int
    if request.kind is ResetKind.TO_EARLIEST:
        target = state.beginning
    elif request.kind is ResetKind.TO_LATEST:
        target = state.end
    elif request.kind is ResetKind.SHIFT_BY:
        target = state.position + request.shift
    elif request.kind is ResetKind.TO_OFFSET:
        given = request.offsets.get(state.partition, request.offset)
        if given is None:
            raise PlanError(f"no offset given for partition {state.partition}")
        target = given
    else:
        if at_time is None or state.partition not in at_time:
            raise PlanError(f"no offset for the time in partition {state.partition}")
        found = at_time[state.partition]
        if found is None:
            notes.append("no record at or after that time: the end offset")
            target = state.end
        else:
            target = found
    new = min(max(target, state.beginning), state.end)
    if target < state.beginning:
        notes.append(f"{target} is before the beginning {state.beginning}: clamped to it")
    elif target > state.end:
        notes.append(f"{target} is past the end {state.end}: clamped to it")
    return PartitionReset(
        partition=state.partition,
        committed=state.committed,
        current=state.position,
        new=new,
        beginning=state.beginning,
        end=state.end,
        notes=tuple(notes),
    )
