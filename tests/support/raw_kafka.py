"""Records no well-behaved client would write: a v2 record batch built byte for byte and
produced with a raw ProduceRequest, so a header key can be any bytes."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.codec import gzip_encode
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.record.util import calc_crc32c, encode_varint

GZIP = 1
_UNKNOWN_TOPIC_OR_PARTITION = 3
_NOT_LEADER = 6
CONTROL = 0x20


@dataclass(frozen=True)
class Raw:
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[bytes, bytes | None]] = field(default_factory=tuple)


def _varint(value: int) -> bytes:
    out = bytearray()
    encode_varint(value, out.append)
    return bytes(out)


def _field(data: bytes | None) -> bytes:
    return _varint(-1) if data is None else _varint(len(data)) + data


def _record(offset_delta: int, record: Raw) -> bytes:
    body = b"\x00" + _varint(0) + _varint(offset_delta) + _field(record.key)
    body += _field(record.value) + _varint(len(record.headers))
    for key, value in record.headers:
        body += _field(key) + _field(value)
    return _varint(len(body)) + body


def encode_batch(
    records: Sequence[Raw], base_offset: int = 0, attributes: int = 0, timestamp: int = 0
) -> bytes:
    """One v2 record batch (gzip-compressed when `attributes & GZIP`)."""
    now = timestamp or int(time.time() * 1000)
    body = b"".join(_record(i, r) for i, r in enumerate(records))
    if attributes & 0x07 == GZIP:
        body = gzip_encode(body)
    after_crc = (
        struct.pack(">hiqqqhii", attributes, len(records) - 1, now, now, -1, -1, -1, len(records))
        + body
    )
    crc = calc_crc32c(after_crc)
    batch = struct.pack(">iBI", 0, 2, crc) + after_crc
    return struct.pack(">qi", base_offset, len(batch)) + batch


async def produce_raw(bootstrap: str, topic: str, partition: int, records: Sequence[Raw]) -> None:
    """Append `records` to one partition as a single batch, bypassing every client check.
    A topic just created may have no leader yet: that is retried for a few seconds."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        request = ProduceRequest(None, -1, 30_000, [(topic, [(partition, encode_batch(records))])])
        for attempt in range(50):
            await client.force_metadata_update()
            leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
            if leader is None or leader < 0:
                await asyncio.sleep(0.2)
                continue
            response = await client.send(leader, request)
            errors = [p[1] for _, partitions in response.topics for p in partitions]
            if errors in ([_UNKNOWN_TOPIC_OR_PARTITION], [_NOT_LEADER]) and attempt < 49:
                await asyncio.sleep(0.2)
                continue
            assert errors == [0], f"produce refused: {response}"
            return
        raise AssertionError(f"no leader for {topic}/{partition}")
    finally:
        await client.close()
