from __future__ import annotations

from aiokafka import ConsumerRecord, TopicPartition

from stockworker.adapters.kafka.command_consumer import inbound, next_offsets


def record(partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t",
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=b"v",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=1,
        headers=[("h", None)],
    )


def test_each_partition_commits_one_past_its_last_record_in_the_batch() -> None:
    batch = [record(0, 5), record(1, 40), record(0, 6), record(0, 7), record(1, 41)]
    assert next_offsets(batch) == {TopicPartition("t", 0): 8, TopicPartition("t", 1): 42}


def test_inbound_keeps_the_record_as_it_came() -> None:
    r = inbound(record(3, 9))
    assert (r.topic, r.partition, r.offset, r.value, r.headers) == ("t", 3, 9, b"v", (("h", None),))
