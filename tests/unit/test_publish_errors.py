"""Which publish failures park an outbox row, and which are retried in order."""

from __future__ import annotations

import pickle

import pytest
from confluent_kafka import KafkaError, KafkaException

from stockworker.adapters.kafka.publisher import (
    InvalidTopicError,
    KafkaPublishError,
    MessageSizeTooLargeError,
    NotAcknowledged,
    NotSent,
    RecordListTooLargeError,
    is_unpublishable,
    publish_error,
)

NEVER = [
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.TOPIC_EXCEPTION,
]


@pytest.mark.parametrize("code", NEVER)
def test_a_record_the_broker_will_never_take_is_unpublishable(code: int) -> None:
    assert is_unpublishable(publish_error(KafkaError(code)))
    assert is_unpublishable(KafkaException(KafkaError(code)))  # as produce() raises it


@pytest.mark.parametrize(
    "code",
    [
        # The cluster, not the row: wait and retry, in order.
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError._QUEUE_FULL,
        # Fixed by an operator without touching the row (create the topic, grant access).
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError._AUTHENTICATION,
        KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,
        # A consequence of an earlier failure on the same producer, or not nameable.
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaError._GAPLESS_GUARANTEE,
        KafkaError._FATAL,
        KafkaError._PURGE_QUEUE,
        KafkaError._PURGE_INFLIGHT,
        KafkaError.INVALID_MSG,
        KafkaError.UNKNOWN,
        KafkaError._FAIL,
    ],
)
def test_every_other_kafka_error_is_retried(code: int) -> None:
    assert not is_unpublishable(publish_error(KafkaError(code)))
    assert not is_unpublishable(KafkaException(KafkaError(code)))


@pytest.mark.parametrize(
    "error",
    [
        NotSent(),
        NotAcknowledged("no answer from the broker within 30 s"),
        BufferError("Local: Queue full"),
        OSError("connection reset"),
        RuntimeError("anything else"),
        KafkaException("not a KafkaError"),
    ],
)
def test_everything_else_is_retried(error: Exception) -> None:
    assert not is_unpublishable(error)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (KafkaError.MSG_SIZE_TOO_LARGE, MessageSizeTooLargeError),
        (KafkaError.RECORD_LIST_TOO_LARGE, RecordListTooLargeError),
        (KafkaError.TOPIC_EXCEPTION, InvalidTopicError),
        (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaPublishError),
    ],
)
def test_an_error_names_its_kind_and_librdkafkas_reason(
    code: int, kind: type[KafkaPublishError]
) -> None:
    """What the relay logs and keeps as a parked row's reason: `type(e).__name__: e`."""
    error = publish_error(KafkaError(code))
    assert type(error) is kind
    assert error.code == code
    assert str(error) == f"{KafkaError(code).name()}: {KafkaError(code).str()}"


def test_an_error_survives_pickling() -> None:
    error = publish_error(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large for the topic"))
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is MessageSizeTooLargeError
    assert copy.code == KafkaError.MSG_SIZE_TOO_LARGE
    assert str(copy) == "MSG_SIZE_TOO_LARGE: too large for the topic"
    assert is_unpublishable(copy)
