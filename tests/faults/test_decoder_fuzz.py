"""Fault 7, fuzzed: mutated commands of every type through the decoder and the batch
service. Every record ends as exactly one result or one dead letter, never an exception,
and no state that breaks an invariant is ever written."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stockworker.contract.commands import COMMAND_TYPE_NAMES
from stockworker.domain.decoding import InvalidCommand, Undecodable, decode_command
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.ports import InboundRecord
from stockworker.service.topics import Topics
from tests.support.builders import command, encode
from tests.support.fake_store import FakeDatabase, FakeUnitOfWork

TOPICS = Topics()
hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=120),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid command of a random type, then damaged: a field replaced or dropped, or the
    bytes truncated or flipped."""
    body: dict[str, Any] = command(draw(st.sampled_from(sorted(COMMAND_TYPE_NAMES))))
    how = draw(st.sampled_from(["replace", "drop", "add", "truncate", "flip", "none"]))
    if how == "replace":
        body[draw(st.sampled_from(sorted(body)))] = draw(hostile_values)
    elif how == "drop":
        body.pop(draw(st.sampled_from(sorted(body))))
    elif how == "add":
        body[draw(st.text(min_size=1, max_size=10))] = draw(hostile_values)
    raw = json.dumps(body, allow_nan=False).encode()
    if how == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif how == "flip":
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
    return raw


@settings(max_examples=400)
@given(mutated())
def test_the_decoder_gives_an_outcome_for_any_mutation(raw: bytes) -> None:
    decoded = decode_command(raw)
    if isinstance(decoded, InvalidCommand):
        assert decoded.field_errors
        assert decoded.command_type in COMMAND_TYPE_NAMES
    elif isinstance(decoded, Undecodable):
        assert decoded.message


@settings(max_examples=100)
@given(st.lists(mutated(), min_size=1, max_size=25))
async def test_every_record_of_a_fuzzed_batch_ends_as_one_result_or_one_dead_letter(
    raws: list[bytes],
) -> None:
    db = FakeDatabase()
    service = CommandBatchService(lambda: FakeUnitOfWork(db), TOPICS, is_transient=lambda e: False)
    stock = encode(command("ReceivePOItem", quantity=50))
    records = [
        InboundRecord(TOPICS.commands, 0, i, b"k", value) for i, value in enumerate([stock, *raws])
    ]
    report = await service.process(records)
    assert report.applied + report.rejected + report.duplicates + report.dead_lettered == len(
        records
    )
    # The fake database checks every invariant on commit; positions are all consistent.
    for position in db.positions.values():
        position.check_invariants()
    dead = [m for m in db.outbox if m.topic == TOPICS.dead_letters]
    assert len(dead) == report.dead_lettered
    assert all(dict(m.headers)["dlq.error.code"] != b"PROCESSING_FAILED" for m in dead)
