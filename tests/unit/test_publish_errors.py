"""Which publish failures park an outbox row, and which are retried in order."""

from __future__ import annotations

import pytest
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    KafkaConnectionError,
    KafkaTimeoutError,
    LeaderNotAvailableError,
    MessageSizeTooLargeError,
    NotEnoughReplicasError,
    NotLeaderForPartitionError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    RecordListTooLargeError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
    UnknownError,
    UnknownTopicOrPartitionError,
    UnsupportedForMessageFormatError,
)

from stockworker.adapters.kafka.publisher import NotAcknowledged, NotSent, is_unpublishable


@pytest.mark.parametrize(
    "error", [MessageSizeTooLargeError(), RecordListTooLargeError(), InvalidTopicError()]
)
def test_a_record_the_broker_will_never_take_is_unpublishable(error: Exception) -> None:
    assert is_unpublishable(error)


@pytest.mark.parametrize(
    "error",
    [
        # The cluster, not the row: wait and retry, in order.
        KafkaConnectionError(),
        KafkaTimeoutError(),
        RequestTimedOutError(),
        NotLeaderForPartitionError(),
        LeaderNotAvailableError(),
        NotEnoughReplicasError(),
        ProducerClosed(),
        # Fixed by an operator without touching the row (create the topic, grant access).
        UnknownTopicOrPartitionError(),
        TopicAuthorizationFailedError(),
        UnsupportedForMessageFormatError(),
        # A consequence of an earlier failure on the same producer, or not nameable.
        OutOfOrderSequenceNumber(),
        CorruptRecordException(),
        UnknownError(),
        NotSent(),
        NotAcknowledged(),
        OSError("connection reset"),
        RuntimeError("anything else"),
    ],
)
def test_everything_else_is_retried(error: Exception) -> None:
    assert not is_unpublishable(error)
