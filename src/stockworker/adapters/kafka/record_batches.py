"""Kafka record batches (message format v2) read byte for byte, without decoding anything.

aiokafka decodes every header key as UTF-8 while it fetches and raises when one is not,
which leaves such a record unreadable through it. This reader keeps what the broker sent:
a header key that is not UTF-8 arrives as a str with surrogate escapes
(`key.encode("utf-8", "surrogateescape")` gives the original bytes back), so the worker
can dead-letter the record with everything it held. Only `GuardedConsumer` uses it, and
only to get past such a record.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace

from aiokafka.codec import gzip_decode, lz4_decode, snappy_decode, zstd_decode
from aiokafka.record.util import calc_crc32c
from aiokafka.record.util import decode_varint_py as decode_varint  # bounds-checked

Header = tuple[str, bytes | None]

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta,
# baseTimestamp, maxTimestamp, producerId, producerEpoch, baseSequence, recordCount
_BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")
_LOG_OVERHEAD = 12  # baseOffset + batchLength: the part batchLength does not count
_CRC_START = 21  # the CRC covers everything from the attributes on
_COMPRESSION_MASK = 0x07
_LOG_APPEND_TIME = 0x08
_CONTROL = 0x20
_DECOMPRESS = {1: gzip_decode, 2: snappy_decode, 3: lz4_decode, 4: zstd_decode}


class RecordFormatError(ValueError):
    """The bytes are not a well-formed v2 record batch."""


@dataclass(frozen=True, slots=True)
class RawRecord:
    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]

    @property
    def has_undecodable_header_key(self) -> bool:
        return any(not _is_utf8(k) for k, _ in self.headers)


def _is_utf8(key: str) -> bool:
    if key.isascii():
        return True
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_records(data: bytes, from_offset: int = 0) -> Iterator[RawRecord]:
    """The data records of a fetch response's record set at or after `from_offset`.

    Control batches (transaction markers) are skipped, as a consumer reading uncommitted
    data skips them; a batch cut short at the end of the response (brokers send whole
    batches up to a byte limit, then part of the next) ends the iteration.
    """
    view = memoryview(data)
    pos = 0
    while len(view) - pos >= _LOG_OVERHEAD:
        batch_length = struct.unpack_from(">i", view, pos + 8)[0]
        end = pos + _LOG_OVERHEAD + batch_length
        if end > len(view):
            return
        yield from _batch_records(view[pos:end], from_offset)
        pos = end


def _batch_records(batch: memoryview, from_offset: int) -> Iterator[RawRecord]:
    if len(batch) < _BATCH_HEADER.size:
        raise RecordFormatError("record batch shorter than its header")
    header = _BATCH_HEADER.unpack_from(batch)
    base_offset, magic, crc, attributes = header[0], header[3], header[4], header[5]
    base_timestamp, max_timestamp, count = header[7], header[8], header[12]
    if magic != 2:
        raise RecordFormatError(f"record batch of message format v{magic}, expected v2")
    if calc_crc32c(batch[_CRC_START:]) != crc:
        raise RecordFormatError(f"record batch at offset {base_offset} fails its CRC")
    if attributes & _CONTROL:
        return
    body: bytes | memoryview = batch[_BATCH_HEADER.size :]
    codec = attributes & _COMPRESSION_MASK
    if codec:
        decompress = _DECOMPRESS.get(codec)
        if decompress is None:
            raise RecordFormatError(f"unknown compression codec {codec}")
        body = decompress(bytes(body))
    buffer = bytearray(body)
    pos = 0
    log_append = bool(attributes & _LOG_APPEND_TIME)
    for _ in range(count):
        record, pos = _record(buffer, pos, base_offset, base_timestamp)
        if record.offset < from_offset:
            continue
        if log_append:
            record = replace(record, timestamp=max_timestamp, timestamp_type=1)
        yield record


def _bytes(buffer: bytearray, pos: int) -> tuple[bytes | None, int]:
    length, pos = decode_varint(buffer, pos)
    if length < 0:
        return None, pos
    end = pos + length
    if end > len(buffer):
        raise RecordFormatError("record field runs past the end of its batch")
    return bytes(buffer[pos:end]), end


def _record(
    buffer: bytearray, pos: int, base_offset: int, base_timestamp: int
) -> tuple[RawRecord, int]:
    try:
        length, pos = decode_varint(buffer, pos)
        end = pos + length
        pos += 1  # attributes: unused in v2
        timestamp_delta, pos = decode_varint(buffer, pos)
        offset_delta, pos = decode_varint(buffer, pos)
        key, pos = _bytes(buffer, pos)
        value, pos = _bytes(buffer, pos)
        header_count, pos = decode_varint(buffer, pos)
        headers: list[Header] = []
        for _ in range(header_count):
            raw_key, pos = _bytes(buffer, pos)
            header_value, pos = _bytes(buffer, pos)
            if raw_key is None:
                raise RecordFormatError("a header key is null")
            headers.append((raw_key.decode("utf-8", "surrogateescape"), header_value))
    except IndexError as exc:
        raise RecordFormatError("record runs past the end of its batch") from exc
    if pos != end:
        raise RecordFormatError(f"record length {length} disagrees with its fields")
    record = RawRecord(
        offset=base_offset + offset_delta,
        timestamp=base_timestamp + timestamp_delta,
        timestamp_type=0,
        key=key,
        value=value,
        headers=tuple(headers),
    )
    return record, pos
