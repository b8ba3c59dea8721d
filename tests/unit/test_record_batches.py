"""The byte-for-byte record reader agrees with aiokafka's and reads what aiokafka cannot."""

from __future__ import annotations

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from stockworker.adapters.kafka.record_batches import RecordFormatError, read_records
from tests.support.raw_kafka import CONTROL, GZIP, Raw, encode_batch


def test_reads_what_aiokafka_wrote_as_aiokafka_reads_it() -> None:
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=0, producer_id=-1, producer_epoch=-1,
        base_sequence=-1, batch_size=1 << 20,
    )  # fmt: skip
    for i in range(5):
        headers = [("type", b"PickStock"), ("empty", None)] if i % 2 else []
        builder.append(i, timestamp=1_700_000_000_000 + i, key=f"k{i}".encode(),
                       value=None if i == 3 else f"v{i}".encode(), headers=headers)  # fmt: skip
    data = bytes(builder.build())
    # A batch as the broker stores it: base offset 40.
    data = (40).to_bytes(8, "big") + data[8:]
    theirs = [
        (r.offset, r.timestamp, r.key, r.value, tuple(r.headers))
        for batch in [MemoryRecords(data).next_batch()]
        for r in batch
    ]
    ours = [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in read_records(data)]
    assert ours == theirs
    assert [r.offset for r in read_records(data, from_offset=42)] == [42, 43, 44]


def test_a_header_key_that_is_not_utf8_keeps_its_bytes() -> None:
    data = encode_batch([Raw(b"k", b"v", [(b"\xff\xfebad", b"x"), (b"ok", None)])], 7)
    [record] = read_records(data)
    assert record.offset == 7
    assert record.has_undecodable_header_key
    bad_key, value = record.headers[0]
    assert bad_key.encode("utf-8", "surrogateescape") == b"\xff\xfebad"
    assert value == b"x"
    assert record.headers[1] == ("ok", None)


def test_compressed_batches_and_transaction_markers() -> None:
    compressed = encode_batch([Raw(None, b"a"), Raw(None, b"b")], 10, attributes=GZIP)
    marker = encode_batch([Raw(b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00")], 12,
                          attributes=CONTROL)  # fmt: skip
    after = encode_batch([Raw(None, b"c")], 13)
    records = list(read_records(compressed + marker + after))
    assert [(r.offset, r.value) for r in records] == [(10, b"a"), (11, b"b"), (13, b"c")]


def test_a_batch_cut_short_at_the_end_ends_the_records() -> None:
    first = encode_batch([Raw(None, b"a")], 0)
    second = encode_batch([Raw(None, b"b")], 1)
    assert [r.value for r in read_records(first + second[:-3])] == [b"a"]


def test_damaged_batches_are_refused() -> None:
    data = bytearray(encode_batch([Raw(None, b"value")], 0))
    data[-1] ^= 0xFF
    with pytest.raises(RecordFormatError, match="CRC"):
        list(read_records(bytes(data)))
