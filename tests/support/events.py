"""Event documents as their published models, checked on the way.

The domain builds events as documents (`domain/outcome_events.py`). Every test that
looks at an event goes through `as_model`, which holds the promise the hot path relies
on: the document validates against its model, and its bytes (what the worker
publishes) are exactly the model's own JSON.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from stockworker.contract.commands import AnyCommand
from stockworker.contract.events import EVENT_TYPES
from stockworker.domain.outcome import Decision
from stockworker.domain.outcome_events import EventDoc, outcome_events
from stockworker.service.messages import event_json

MODELS: dict[str, type[BaseModel]] = {m.model_fields["type"].default: m for m in EVENT_TYPES}


def as_model(document: EventDoc) -> Any:
    model = MODELS[document["type"]].model_validate(document, strict=False)
    published = event_json(document)
    assert published == model.model_dump_json().encode(), (published, model)
    assert MODELS[document["type"]].model_validate_json(published) == model
    return model


def event_models(command: AnyCommand, decision: Decision) -> tuple[Any, list[Any]]:
    """outcome_events, each document checked and returned as its model."""
    result, events = outcome_events(command, decision)
    return as_model(result), [as_model(e) for e in events]
