"""Kafka header keys that are not UTF-8, or not storable as text.

The protocol defines header keys as strings, but a broker stores whatever bytes a
client sent. The Kafka adapter hands such a key over surrogate-escaped (Python's
lossless way to carry undecodable bytes in a str); a record that has one is
dead-lettered. Keys must be text everywhere a dead letter goes next (the outbox's
`text[]`, which also refuses NUL, and the dead-letter topic), so each header whose key
is not UTF-8 or holds NUL travels as two `dlq.*` headers: the key's bytes in base64,
and the header's value.
"""

from __future__ import annotations

import base64

from stockworker.contract.codes import DeadLetterCode
from stockworker.domain.decoding import Undecodable
from stockworker.service.ports import Headers, InboundRecord

INVALID_KEY_HEADER = "dlq.invalid_header.key_b64"
INVALID_VALUE_HEADER = "dlq.invalid_header.value"


def original_key_bytes(key: str) -> bytes | None:
    """The bytes of a key that is not UTF-8; None for a key that is."""
    if key.isascii():
        return None
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return key.encode("utf-8", "surrogateescape")
    return None


def undecodable_headers(headers: Headers) -> Undecodable | None:
    for index, (key, _) in enumerate(headers):
        if original_key_bytes(key) is not None:
            return Undecodable(
                DeadLetterCode.HEADER_KEY_NOT_UTF8,
                f"the key of header {index} is not UTF-8 (kept in base64 in {INVALID_KEY_HEADER})",
            )
    return None


def _unstorable_key_bytes(key: str) -> bytes | None:
    """The bytes of a key that cannot be stored as text; None for one that can."""
    raw = original_key_bytes(key)
    if raw is None and "\x00" in key:
        raw = key.encode("utf-8")
    return raw


def printable_headers(headers: Headers) -> Headers:
    """The headers with every key that cannot be stored as text (not UTF-8, or holding
    NUL) replaced by the two `dlq.invalid_header.*` headers."""
    if all(_unstorable_key_bytes(k) is None for k, _ in headers):
        return headers
    kept: list[tuple[str, bytes | None]] = []
    for key, value in headers:
        raw = _unstorable_key_bytes(key)
        if raw is None:
            kept.append((key, value))
        else:
            kept.append((INVALID_KEY_HEADER, base64.b64encode(raw)))
            kept.append((INVALID_VALUE_HEADER, value))
    return tuple(kept)


# W3C Trace Context (https://www.w3.org/TR/trace-context/): a command's `traceparent`
# (and `tracestate`) go onto every message it causes, so a trace runs from its publisher
# through the worker to subscribers. Only well-sized values are carried: the rest of a
# header is the publisher's business, and an event's size budget is not.
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_TRACEPARENT_BYTES = 55  # version 00: 2 + 1 + 32 + 1 + 16 + 1 + 2
_TRACESTATE_MAX_BYTES = 512


def trace_headers(headers: Headers) -> Headers:
    """The record's trace context headers worth carrying on (the last of each), or ()."""
    if not headers:
        return ()
    parent: bytes | None = None
    state: bytes | None = None
    for key, value in headers:
        if key == TRACEPARENT and value is not None and len(value) == _TRACEPARENT_BYTES:
            parent = value
        elif key == TRACESTATE and value is not None and len(value) <= _TRACESTATE_MAX_BYTES:
            state = value
    if parent is None:
        return ()
    return (
        ((TRACEPARENT, parent),) if state is None else ((TRACEPARENT, parent), (TRACESTATE, state))
    )


def carried_trace(record: InboundRecord | None) -> Headers:
    """The trace context a record's results and events carry: the worker's span for it
    when tracing is on, else the record's own (or none)."""
    if record is None:
        return ()
    return record.trace if record.trace is not None else trace_headers(record.headers)
