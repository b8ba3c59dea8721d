"""Reading dead letters for operators: what failed, where it came from, how to send it back.

Pure: a dead-letter record (anything shaped like `DeadLetterRecord`) is read into a
`DeadLetterView`; views are filtered, grouped by error and message fingerprint, and
turned into the records a redrive sends. Three writers are understood:

- stockworker's own (`dlq.*` headers, see service/dead_letters.py);
- Kafka Connect's `errors.deadletterqueue.*` with context headers (`__connect.errors.*`,
  partition and offset as decimal text);
- Spring Kafka's DeadLetterPublishingRecoverer (`kafka_dlt-*`, partition as a 4-byte and
  offset as an 8-byte big-endian integer; decimal text is accepted too).
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import orjson

from stockworker.contract.codes import DeadLetterCode
from stockworker.domain.event_ids import EVENT_ID_NAMESPACE
from stockworker.service.dead_letters import HEADERS_DROPPED, ORIGINAL_KEY_SIZE, ORIGINAL_SIZE
from stockworker.service.ports import Headers
from stockworker.service.record_headers import INVALID_KEY_HEADER, original_key_bytes

STOCKWORKER = "stockworker"
CONNECT = "kafka-connect"
SPRING = "spring-kafka"

_OWN_PREFIX = "dlq."
_CONNECT_PREFIX = "__connect.errors."
_SPRING_PREFIX = "kafka_dlt-"
_SPRING_RETRY_PREFIX = "retry_topic-"
REDRIVE_PREFIX = "stockworker.redrive."
# Provenance of a redriven record.
REDRIVE_FROM = "stockworker.redrive.from"  # the dead letter: dlq topic/partition/offset
REDRIVE_SOURCE = "stockworker.redrive.source"  # where the original was first consumed
REDRIVE_RUN = "stockworker.redrive.run_id"  # the run, as recorded in ops_audit.arguments
REDRIVE_EDITED = "stockworker.redrive.edited"  # "true" when --edit replaced the value

# Codes whose cause was the command id: an edited copy gets an id of its own.
ID_CODES = frozenset(
    {DeadLetterCode.MISSING_COMMAND_ID.value, DeadLetterCode.INVALID_COMMAND_ID.value}
)


class DeadLetterRecord(Protocol):
    """A record read from the dead-letter topic (TopicReader's TopicRecord is one)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...


@dataclass(frozen=True, slots=True)
class SourcePlace:
    topic: str
    partition: int | None
    offset: int | None

    def __str__(self) -> str:
        p = "?" if self.partition is None else self.partition
        o = "?" if self.offset is None else self.offset
        return f"{self.topic}/{p}/{o}"


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    topic: str
    partition: int
    offset: int
    timestamp: datetime
    writer: str  # STOCKWORKER, CONNECT or SPRING
    code: str  # dlq.error.code, or the exception class for Connect and Spring
    message: str
    source: SourcePlace | None
    key: bytes | None
    value: bytes | None
    original_headers: Headers  # the record's own headers, none of the dead letter's
    dead_letter_headers: Headers  # the writer's (dlq.*, __connect.errors.*, kafka_dlt-*)
    original_size: int | None = None  # dlq.original.size: the value was cut
    original_key_size: int | None = None  # dlq.original.key.size: the key was cut
    headers_dropped: int | None = None  # dlq.headers.dropped: original headers left out
    # Original headers whose key was not text (stockworker kept each as a
    # dlq.invalid_header.* pair): their keys' bytes in hex. They cannot be sent back.
    unsendable_headers: tuple[str, ...] = ()
    details: dict[str, str] = field(default_factory=dict)  # connector, stage, trace...

    @property
    def place(self) -> tuple[int, int]:
        return (self.partition, self.offset)

    @property
    def trimmed(self) -> bool:
        return (
            self.original_size is not None
            or self.original_key_size is not None
            or self.headers_dropped is not None
        )

    @property
    def size(self) -> int:
        """The original value's size in bytes (as it was before any cut)."""
        if self.original_size is not None:
            return self.original_size
        return len(self.value or b"")

    @property
    def key_text(self) -> str:
        return "" if self.key is None else self.key.decode("utf-8", "replace")

    def short_code(self) -> str:
        """The code, or a Java exception's simple class name."""
        return self.code.rsplit(".", 1)[-1] if self.writer != STOCKWORKER else self.code

    def command(self) -> dict[str, Any] | None:
        """The value as a JSON object, when it is one (and whole)."""
        return json_object(self.value) if not self.trimmed else None


def place_text(partition: int, offset: int) -> str:
    return f"{partition}:{offset}"


def parse_place(text: str) -> tuple[int, int]:
    """'PARTITION:OFFSET' -> (partition, offset); ValueError when it is not that."""
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if match is None:
        raise ValueError(f"{text!r} is not PARTITION:OFFSET (e.g. 3:1042)")
    return int(match.group(1)), int(match.group(2))


def json_object(value: bytes | None) -> dict[str, Any] | None:
    if not value:
        return None
    try:
        loaded = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return loaded if isinstance(loaded, dict) else None


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "replace")


def _last(headers: Sequence[tuple[str, bytes | None]], name: str) -> bytes | None:
    for key, value in reversed(headers):
        if key == name:
            return value
    return None


def _has(headers: Sequence[tuple[str, bytes | None]], name: str) -> bool:
    return any(key == name for key, _ in headers)


def _decimal(value: bytes | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return None


def _spring_int(value: bytes | None, width: int) -> int | None:
    """Spring writes partition and offset as big-endian binary; tools re-publishing a
    DLT record (Connect-like ones, or by hand) write decimal text. Decimal text comes
    first: bytes that are all ASCII digits are read as text even when there are `width`
    of them (as binary they would be a partition above 800 million or an offset above
    3 * 10**18, which no topic has)."""
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    if len(value) == width:
        return int.from_bytes(value, "big", signed=True)
    return _decimal(value)


def writer_of(headers: Sequence[tuple[str, bytes | None]]) -> str | None:
    """Who wrote this dead letter, or None when it is not a dead letter."""
    names = {k for k, _ in headers}
    if "dlq.error.code" in names:
        return STOCKWORKER
    if any(k.startswith(_CONNECT_PREFIX) for k in names):
        return CONNECT
    if any(k.startswith(_SPRING_PREFIX) for k in names):
        return SPRING
    return None


def _is_foreign_dead_letter_header(name: str) -> bool:
    return name.startswith((_CONNECT_PREFIX, _SPRING_PREFIX, _SPRING_RETRY_PREFIX))


def _own_originals(headers: Sequence[tuple[str, bytes | None]]) -> tuple[Headers, tuple[str, ...]]:
    """stockworker writes the original headers first, then its own `dlq.*` block, then
    the markers; the relay appends the dead letter's `event_id`. The originals are what
    comes before the `dlq.*` block, less the `dlq.invalid_header.*` pairs standing for
    keys that were not text (not UTF-8, or holding NUL): they cannot be sent back as they
    were. Returns (originals, the keys of those pairs as hex of their bytes)."""
    end = next(
        (i for i, (k, _) in enumerate(headers) if k in ("dlq.event_id", "dlq.error.code")),
        len(headers),
    )
    kept: list[tuple[str, bytes | None]] = []
    unsendable: list[str] = []
    for name, value in headers[:end]:
        if name == INVALID_KEY_HEADER:
            unsendable.append(_invalid_key_hex(value))
        elif not name.startswith(_OWN_PREFIX):
            kept.append((name, value))
    return tuple(kept), tuple(unsendable)


def _invalid_key_hex(value: bytes | None) -> str:
    """The hex of a key kept in base64 by `printable_headers` (as `sendable_headers`
    names a key it leaves out); the value as it is when it is not base64."""
    try:
        return base64.b64decode(value or b"", validate=True).hex()
    except ValueError:
        return "base64:" + _text(value)


def read_dead_letter(record: DeadLetterRecord) -> DeadLetterView | None:
    """The record as a dead letter, or None when no known writer's headers are on it."""
    headers = tuple(record.headers)
    writer = writer_of(headers)
    if writer is None:
        return None
    common: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "writer": writer,
        "key": record.key,
        "value": record.value,
    }
    if writer == STOCKWORKER:
        topic = _last(headers, "dlq.source.topic")
        originals, unsendable = _own_originals(headers)
        return DeadLetterView(
            **common,
            code=_text(_last(headers, "dlq.error.code")),
            message=_text(_last(headers, "dlq.error.message")),
            source=None
            if topic is None
            else SourcePlace(
                _text(topic),
                _decimal(_last(headers, "dlq.source.partition")),
                _decimal(_last(headers, "dlq.source.offset")),
            ),
            original_headers=originals,
            unsendable_headers=unsendable,
            dead_letter_headers=tuple((k, v) for k, v in headers if k.startswith(_OWN_PREFIX)),
            original_size=_decimal(_last(headers, ORIGINAL_SIZE)),
            original_key_size=_decimal(_last(headers, ORIGINAL_KEY_SIZE)),
            headers_dropped=_decimal(_last(headers, HEADERS_DROPPED)),
        )
    if writer == CONNECT:
        p = _CONNECT_PREFIX
        topic = _last(headers, p + "topic")
        details = {
            k[len(p) :]: _text(v)
            for k, v in headers
            if k.startswith(p)
            and k[len(p) :] in ("connector.name", "task.id", "stage", "class.name", "cluster.id")
        }
        trace = _last(headers, p + "exception.stacktrace")
        if trace is not None:
            details["stacktrace"] = _text(trace)
        return DeadLetterView(
            **common,
            code=_text(_last(headers, p + "exception.class.name")) or "CONNECT_ERROR",
            message=_text(_last(headers, p + "exception.message")),
            source=None
            if topic is None
            else SourcePlace(
                _text(topic),
                _decimal(_last(headers, p + "partition")),
                _decimal(_last(headers, p + "offset")),
            ),
            original_headers=tuple((k, v) for k, v in headers if not _is_foreign(k)),
            dead_letter_headers=tuple((k, v) for k, v in headers if _is_foreign(k)),
            details=details,
        )
    p = _SPRING_PREFIX
    topic = _last(headers, p + "original-topic")
    details = {}
    for name in (
        "exception-cause-fqcn",
        "exception-stacktrace",
        "original-consumer-group",
        "key-exception-fqcn",
        "key-exception-message",
    ):
        found = _last(headers, p + name)
        if found is not None:
            details[name] = _text(found)
    code = _last(headers, p + "exception-fqcn") or _last(headers, p + "key-exception-fqcn")
    message = _last(headers, p + "exception-message") or _last(headers, p + "key-exception-message")
    return DeadLetterView(
        **common,
        code=_text(code) or "SPRING_ERROR",
        message=_text(message),
        source=None
        if topic is None
        else SourcePlace(
            _text(topic),
            _spring_int(_last(headers, p + "original-partition"), 4),
            _spring_int(_last(headers, p + "original-offset"), 8),
        ),
        original_headers=tuple((k, v) for k, v in headers if not _is_foreign(k)),
        dead_letter_headers=tuple((k, v) for k, v in headers if _is_foreign(k)),
        details=details,
    )


def _is_foreign(name: str) -> bool:
    return _is_foreign_dead_letter_header(name)


# Fingerprints ---------------------------------------------------------------------------

_UUID = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]{16,}\b")
_NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_SPACES = re.compile(r"\s+")


def message_template(message: str) -> str:
    """The message with what varies between occurrences taken out: quoted values, UUIDs,
    long hex strings and numbers become placeholders."""
    text = _QUOTED.sub("<value>", message)
    text = _UUID.sub("<uuid>", text)
    text = _HEX.sub("<hex>", text)
    text = _NUMBER.sub("<n>", text)
    return _SPACES.sub(" ", text).strip()


def message_fingerprint(code: str, message: str) -> str:
    digest = hashlib.sha256(f"{code}\n{message_template(message)}".encode())
    return digest.hexdigest()[:12]


@dataclass(slots=True)
class FailureGroup:
    code: str
    fingerprint: str
    template: str
    count: int
    open: int
    first_seen: datetime
    last_seen: datetime
    example: str  # PARTITION:OFFSET of the latest


def group_failures(
    views: Iterable[DeadLetterView], resolved: Iterable[tuple[int, int]] = ()
) -> list[FailureGroup]:
    """By code and message fingerprint, most frequent first."""
    done = set(resolved)
    groups: dict[tuple[str, str], FailureGroup] = {}
    for v in views:
        fp = message_fingerprint(v.code, v.message)
        g = groups.get((v.code, fp))
        if g is None:
            g = groups[(v.code, fp)] = FailureGroup(
                v.code,
                fp,
                message_template(v.message),
                0,
                0,
                v.timestamp,
                v.timestamp,
                place_text(*v.place),
            )
        g.count += 1
        g.open += v.place not in done
        if v.timestamp < g.first_seen:
            g.first_seen = v.timestamp
        if v.timestamp >= g.last_seen:
            g.last_seen = v.timestamp
            g.example = place_text(*v.place)
    return sorted(groups.values(), key=lambda g: (-g.count, g.code, g.fingerprint))


# Selection ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selection:
    codes: tuple[str, ...] = ()
    key: str | None = None
    source_partition: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, view: DeadLetterView) -> bool:
        if self.codes and not (view.code in self.codes or view.short_code() in self.codes):
            return False
        if self.key is not None and view.key_text != self.key:
            return False
        if self.source_partition is not None and (
            view.source is None or view.source.partition != self.source_partition
        ):
            return False
        if self.since is not None and view.timestamp < self.since:
            return False
        return not (self.until is not None and view.timestamp >= self.until)


# Redrive --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RedriveRecord:
    """What a redrive sends to the commands topic for one dead letter."""

    dead_letter: tuple[int, int]
    key: bytes | None
    value: bytes | None
    headers: Headers
    command_id: UUID | None  # the command id the worker will see, when there is one
    edited: bool
    headers_left_out: tuple[str, ...] = ()  # original header names that cannot be sent

    @property
    def resolution(self) -> str:
        return "redriven-edited" if self.edited else "redriven"


class EditRefused(ValueError):
    """The edited payload cannot be used as asked (not a JSON object when an id is due)."""


def edited_command_id(dead_letter: DeadLetterView, edited: bytes) -> UUID:
    """The id of an edited copy: derived from the dead letter and the edited bytes, so
    sending the same correction again (after a crash, or --force) is the same command to
    the worker's inbox, while a different correction is a command of its own."""
    digest = hashlib.sha256(edited).hexdigest()
    return uuid.uuid5(
        EVENT_ID_NAMESPACE,
        f"redrive/{dead_letter.topic}/{dead_letter.partition}/{dead_letter.offset}/{digest}",
    )


def needs_new_command_id(dead_letter: DeadLetterView, asked: bool) -> bool:
    return asked or dead_letter.code in ID_CODES


def with_command_id(edited: bytes, command_id: UUID) -> bytes:
    body = json_object(edited)
    if body is None:
        raise EditRefused("the edited payload is not a JSON object: cannot give it a command id")
    body["command_id"] = str(command_id)
    return orjson.dumps(body)


def _command_id_of(value: bytes | None) -> UUID | None:
    body = json_object(value)
    raw = body.get("command_id") if body else None
    if not isinstance(raw, str):
        return None
    try:
        return UUID(raw)
    except ValueError:
        return None


def sendable_headers(
    headers: Sequence[tuple[str, bytes | None]],
) -> tuple[Headers, tuple[str, ...]]:
    """The headers that go back: not any dead-letter writer's, not an earlier redrive's
    provenance, and only keys that are text (a key that is not UTF-8 would dead-letter
    the command again). Returns (kept, names left out)."""
    kept: list[tuple[str, bytes | None]] = []
    left_out: list[str] = []
    for name, value in headers:
        if name.startswith((_OWN_PREFIX, REDRIVE_PREFIX)) or _is_foreign(name):
            continue
        if original_key_bytes(name) is not None or "\x00" in name:
            left_out.append(name.encode("utf-8", "surrogateescape").hex())
            continue
        kept.append((name, value))
    return tuple(kept), tuple(left_out)


def redrive_record(
    dead_letter: DeadLetterView,
    run_id: UUID,
    original: tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes | None]]] | None = None,
    edited: bytes | None = None,
    new_command_id: bool = False,
) -> RedriveRecord:
    """The record to send for one dead letter.

    `original` is (key, value, headers) re-read whole from the source topic for a dead
    letter that was trimmed; else the dead letter's own key, value and original headers
    are used. `edited` replaces the value (keyed and headed as the original); it gets a
    fresh command id when the original's id was the problem or `new_command_id`.
    """
    if original is not None:
        key, value, headers = original
        unsendable: tuple[str, ...] = ()  # the source's own keys: sendable_headers judges
    else:
        key, value, headers = dead_letter.key, dead_letter.value, dead_letter.original_headers
        unsendable = dead_letter.unsendable_headers
    kept, left_out = sendable_headers(headers)
    left_out = (*unsendable, *left_out)
    command_id: UUID | None
    if edited is not None:
        if needs_new_command_id(dead_letter, new_command_id):
            command_id = edited_command_id(dead_letter, edited)
            value = with_command_id(edited, command_id)
        else:
            value = edited
            command_id = _command_id_of(value)
    else:
        command_id = _command_id_of(value)
    provenance: list[tuple[str, bytes | None]] = [
        (
            REDRIVE_FROM,
            f"{dead_letter.topic}/{dead_letter.partition}/{dead_letter.offset}".encode(),
        ),
        (REDRIVE_RUN, str(run_id).encode()),
    ]
    if dead_letter.source is not None:
        provenance.append((REDRIVE_SOURCE, str(dead_letter.source).encode()))
    if edited is not None:
        provenance.append((REDRIVE_EDITED, b"true"))
    return RedriveRecord(
        dead_letter=dead_letter.place,
        key=key,
        value=value,
        headers=(*kept, *provenance),
        command_id=command_id,
        edited=edited is not None,
        headers_left_out=left_out,
    )


def plan_document(records: Sequence[RedriveRecord], target_topic: str) -> list[dict[str, Any]]:
    """What a redrive sends, as recorded in its plan fingerprint (no run id: the same
    selection over the same records gives the same fingerprint)."""
    return [
        {
            "dead_letter": place_text(*r.dead_letter),
            "topic": target_topic,
            "key": None if r.key is None else base64.b64encode(r.key).decode(),
            "value_sha256": hashlib.sha256(r.value or b"").hexdigest(),
            "headers": [k for k, _ in r.headers if k != REDRIVE_RUN],
            "command_id": None if r.command_id is None else str(r.command_id),
        }
        for r in records
    ]


# Showing bytes --------------------------------------------------------------------------


def decode_bytes(value: bytes | None) -> dict[str, Any]:
    """How to show bytes: JSON when they are JSON, text when UTF-8, else base64 (and a
    hex preview of the first 64 bytes)."""
    if value is None:
        return {"encoding": "null", "data": None}
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return {
            "encoding": "base64",
            "data": base64.b64encode(value).decode(),
            "hex_preview": value[:64].hex(" "),
            "size": len(value),
        }
    try:
        return {"encoding": "json", "data": orjson.loads(value), "size": len(value)}
    except orjson.JSONDecodeError:
        return {"encoding": "utf-8", "data": text, "size": len(value)}


def header_text(value: bytes | None) -> str | None:
    """A header value as text when it is UTF-8, else as `base64:...`."""
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode()


def pacing_delay(sent: int, elapsed: float, rate: float | None) -> float:
    """How long to wait before sending record number `sent` (0-based) so that no more
    than `rate` records go per second since the start."""
    if not rate:
        return 0.0
    return max(sent / rate - elapsed, 0.0)
