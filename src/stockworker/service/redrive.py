"""What a dead-letter redrive does, decided before anything is sent.

Pure: given the dead letters chosen (by place or by filters) and how each was already
dealt with, `choose` says which are sent, which are skipped or refuse the run, and which
go again by --force; `build_records` turns them into the records to send (with the whole
originals re-read for trimmed ones, and an --edit payload); `plan_counts` and
`send_failure` are what the run records and says. `stockworker dlq redrive`
(entrypoints/ops/dlq.py) reads the topics and the database, prints, and sends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from stockworker.service.dead_letter_triage import (
    DeadLetterView,
    RedriveRecord,
    place_text,
    redrive_record,
)

Place = tuple[int, int]
Original = tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes | None]]]

# A refusal names at most this many dead letters.
_NAMED = 5


class PriorResolution(Protocol):
    """How a dead letter was already dealt with (ops_audit's Resolution is one)."""

    @property
    def resolution(self) -> str: ...
    @property
    def audit_id(self) -> int: ...


def request_error(
    places: int,
    filters: bool,
    edit: bool,
    new_command_id: bool,
    rate: float | None,
) -> str | None:
    """What is wrong with a redrive's arguments (None: nothing). `places` is how many
    dead letters were named by place, `filters` whether any filter was given."""
    if places and filters:
        return "give dead letters by place or by filters (--code ...), not both"
    if not places and not filters:
        return (
            "name the dead letters: PARTITION:OFFSET ..., or filters "
            "(--code, --since, --until, --key, --source-partition)"
        )
    if edit and places != 1:
        return "--edit replaces the value of one dead letter: give exactly one place"
    if new_command_id and not edit:
        return "--new-command-id is for an edited payload (--edit FILE)"
    if rate is not None and not rate > 0:
        return f"--rate {rate:g} is not a positive number of records per second"
    return None


@dataclass(frozen=True, slots=True)
class RedriveChoice:
    selected: tuple[DeadLetterView, ...]
    send: tuple[DeadLetterView, ...]  # in the order they go
    resolved: tuple[DeadLetterView, ...]  # among `selected`, already dealt with
    forced: bool  # the resolved ones are in `send` (--force)
    refusal: str | None  # the run is refused: nothing is sent

    def counts(self) -> dict[str, int]:
        return {
            "selected": len(self.selected),
            "refused_resolved": 0 if self.forced else len(self.resolved),
            "forced": len(self.resolved) if self.forced else 0,
        }

    def reread(self) -> tuple[DeadLetterView, ...]:
        """Those sent whose whole original must be re-read from the source topic."""
        return tuple(v for v in self.send if v.trimmed)


def choose(
    views: Sequence[DeadLetterView],
    resolutions: Mapping[Place, PriorResolution],
    force: bool,
    by_place: bool,
    action: str = "redrive",
) -> RedriveChoice:
    """Dead letters already resolved (redriven, discarded) are not sent again unless
    `force`. Named by place, any of them refuses the whole run (the operator named it:
    sending the others would hide that); chosen by filters, they are skipped, and the
    run is refused only when nothing else is left."""
    selected = tuple(views)
    resolved = tuple(v for v in selected if v.place in resolutions)
    if not resolved or force:
        return RedriveChoice(selected, selected, resolved, bool(resolved), None)
    refusal = None
    if by_place or len(resolved) == len(selected):
        named = ", ".join(
            f"{place_text(*v.place)} ({resolutions[v.place].resolution} by audit "
            f"{resolutions[v.place].audit_id})"
            for v in resolved[:_NAMED]
        ) + (" ..." if len(resolved) > _NAMED else "")
        done = "nothing sent" if action == "redrive" else f"nothing done ({action})"
        refusal = f"already dealt with: {named}; {done} (--force to {action} them again)"
    send = () if refusal else tuple(v for v in selected if v.place not in resolutions)
    return RedriveChoice(selected, send, resolved, False, refusal)


def build_records(
    choice: RedriveChoice,
    run_id: UUID,
    originals: Mapping[Place, Original],
    edited: bytes | None = None,
    new_command_id: bool = False,
) -> list[RedriveRecord]:
    """The records to send, one per dead letter in `choice.send`: a trimmed one from its
    whole original (`originals`, by dead-letter place; KeyError when it is missing,
    unless `edited` replaces the value: then the dead letter's own key and headers go
    with it). EditRefused when the edited payload cannot be given the id it needs."""

    def original(view: DeadLetterView) -> Original | None:
        if not view.trimmed or (edited is not None and view.place not in originals):
            return None
        return originals[view.place]

    return [
        redrive_record(view, run_id, original(view), edited, new_command_id) for view in choice.send
    ]


def plan_counts(choice: RedriveChoice, records: Sequence[RedriveRecord]) -> dict[str, int]:
    """The run's counts before sending (`sent` goes up as the broker acknowledges)."""
    return {
        **choice.counts(),
        "to_send": len(records),
        "reread_whole": len(choice.reread()),
        "edited": sum(r.edited for r in records),
        "headers_left_out": sum(len(r.headers_left_out) for r in records),
        "sent": 0,
    }


def send_failure(
    records: Sequence[RedriveRecord], sent: Sequence[RedriveRecord], error: BaseException
) -> str:
    """What to say when the broker refused a record part way (before the resolutions:
    whether those were written is the caller's to add)."""
    done = {r.dead_letter for r in sent}
    unsent = [place_text(*r.dead_letter) for r in records if r.dead_letter not in done]
    more = " ..." if len(unsent) > _NAMED else ""
    return (
        f"{len(sent)} of {len(records)} sent; not sent: {', '.join(unsent[:_NAMED])}{more}: "
        f"{type(error).__name__}: {error}"
    )
