"""How large a record may be on its way to Kafka: one limit, derived from one setting.

`STOCKWORKER_MAX_MESSAGE_BYTES` (M) bounds the value of a command the worker parses.
Everything the worker publishes must fit under `record_limit(M)`: it is the relay
producer's `max_request_size` and the `max.message.bytes` that `stockworker topics`
gives the dead-letter topic. Dead letters, the only messages that carry foreign bytes,
are built to fit under `dead_letter_budget(M)`, a little less, measured as the whole
record (key, value, header keys and values, and Kafka's framing).
"""

from __future__ import annotations

from stockworker.service.ports import Headers, OutboxMessage

# Room above M for a dead letter's own headers, so a command at the limit with ordinary
# headers is dead-lettered whole. With the default M (1,000,000) the limit stays below
# Kafka's default max.message.bytes (1,048,588) and the producer's default request size.
LIMIT_HEADROOM = 32 * 1024
# What the size estimate below cannot see (another client's framing, a header added later).
SAFETY_MARGIN = 1024

# The header every published message gets from the relay (see README, "Events").
EVENT_ID_HEADER = "event_id"

# Kafka record format v2: a one-record batch has a 61-byte batch header; a record has
# at most 21 bytes of its own fields (length, attributes, timestamp and offset deltas)
# besides its key, value and headers, each length being a zig-zag varint.
BATCH_HEADER_BYTES = 61
RECORD_FIELDS_BYTES = 21


def record_limit(max_message_bytes: int) -> int:
    """The largest record the relay sends and the dead-letter topic must accept."""
    return max_message_bytes + LIMIT_HEADROOM


def dead_letter_budget(max_message_bytes: int) -> int:
    """The largest size (as `published_size` measures it) a dead letter is built to."""
    return record_limit(max_message_bytes) - SAFETY_MARGIN


def varint_size(value: int) -> int:
    """Bytes of `value` as a zig-zag varint (Kafka's encoding of lengths; -1 is null)."""
    zigzag = (value << 1) ^ (value >> 63)
    size = 1
    while zigzag > 0x7F:
        zigzag >>= 7
        size += 1
    return size


def bytes_field_size(data: bytes | None) -> int:
    """A key, value or header value: its length as a varint, then its bytes."""
    return 1 if data is None else varint_size(len(data)) + len(data)


def header_size(key: str, value: bytes | None) -> int:
    encoded = key.encode("utf-8", "surrogatepass")
    return varint_size(len(encoded)) + len(encoded) + bytes_field_size(value)


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """An upper bound of the size of a one-record batch holding this record, uncompressed:
    what the producer checks against max_request_size and the broker against
    max.message.bytes."""
    return (
        BATCH_HEADER_BYTES
        + RECORD_FIELDS_BYTES
        + bytes_field_size(key)
        + bytes_field_size(value)
        + varint_size(len(headers))
        + sum(header_size(k, v) for k, v in headers)
    )


def published_size(message: OutboxMessage) -> int:
    """`record_size` of the message as the relay publishes it (with its event_id header)."""
    event_id = (EVENT_ID_HEADER, str(message.event_id).encode())
    return record_size(message.key, message.value, (*message.headers, event_id))
