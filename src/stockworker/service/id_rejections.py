"""The results of commands whose id cannot be answered with a decision: an invalid
payload (it does not use up the id) and an id reused for another payload."""

from __future__ import annotations

import json

from stockworker.contract.codes import RejectionCode
from stockworker.contract.commands import AnyCommand
from stockworker.domain.decoding import InvalidCommand
from stockworker.domain.idempotency import raw_fingerprint
from stockworker.domain.outcome import Rejection
from stockworker.domain.outcome_events import EventDoc, command_target, rejected
from stockworker.service.ports import StoredResult


def invalid_command_result(item: InvalidCommand, raw: bytes) -> EventDoc:
    summary = "; ".join(f"{e.field}: {e.message}" for e in item.field_errors[:5])
    return rejected(
        command_id=item.command_id,
        command_type=item.command_type,
        rejection=Rejection(
            RejectionCode.INVALID_COMMAND,
            f"{item.command_type} does not match its schema: {summary}",
            item.field_errors,
        ),
        occurred_at=item.occurred_at,
        sku=item.sku,
        location=item.location,
        # Its own event id: the same command_id may later carry an accepted result.
        event_kind=f"invalid/{raw_fingerprint(raw).hex()}",
    )


def reused_id_result(command: AnyCommand, prior: StoredResult, fingerprint: bytes) -> EventDoc:
    """The refusal of a command_id already used for another payload; the first stays."""
    try:
        first = json.loads(prior.result.value)
        what = f"a {first.get('command_type')} of {first.get('sku')!r} at {first.get('location')!r}"
    except ValueError:
        what = "another command"
    sku, location = command_target(command)
    return rejected(
        command_id=command.command_id,
        command_type=command.type,
        rejection=Rejection(
            RejectionCode.COMMAND_ID_REUSED,
            f"command_id {command.command_id} was already used for {what}, with another "
            "payload; nothing was changed: give this command a new command_id",
        ),
        occurred_at=command.occurred_at,
        sku=sku,
        location=location,
        event_kind=f"reused/{fingerprint.hex()}",
    )
