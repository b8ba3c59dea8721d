"""FastStream's Prometheus middleware for the commands subscriber, with real batches.

The worker's parser hands the service the raw records and leaves FastStream's body
empty (entrypoints/worker.py, `_raw_batch`), so FastStream's own Kafka provider would
count every batch's size as 0 bytes. This provider measures the records themselves:
`faststream_received_messages_total` counts records, and
`faststream_received_messages_size_bytes` observes each batch's total value bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord
from faststream.kafka.prometheus.provider import (
    BatchKafkaMetricsSettingsProvider,
    KafkaMetricsSettingsProvider,
)
from faststream.message import StreamMessage
from faststream.prometheus import ConsumeAttrs, PrometheusMiddleware
from prometheus_client import Gauge

from stockworker.adapters.metrics.instruments import instruments

APP_NAME = "stockworker"


class RawBatchMetricsSettingsProvider(BatchKafkaMetricsSettingsProvider):
    """A batch's size from its records' values (the parsed body is empty)."""

    __slots__ = ()

    def get_consume_attrs_from_message(
        self, msg: StreamMessage[tuple[ConsumerRecord[Any, Any], ...]]
    ) -> ConsumeAttrs:
        records = msg.raw_message
        return {
            "destination_name": records[0].topic if records else "",
            "message_size": sum(len(r.value) for r in records if r.value is not None),
            "messages_count": len(records),
        }


_BATCH = RawBatchMetricsSettingsProvider()
_SINGLE = KafkaMetricsSettingsProvider()


def _provider(
    msg: ConsumerRecord[Any, Any] | Sequence[ConsumerRecord[Any, Any]] | None,
) -> RawBatchMetricsSettingsProvider | KafkaMetricsSettingsProvider:
    return _BATCH if isinstance(msg, Sequence) else _SINGLE


_IN_PROCESS = "faststream_received_messages_in_process"


def broker_metrics_middleware() -> PrometheusMiddleware[Any, Any]:
    """The middleware to give the broker (`middlewares=[...]`)."""
    registry = instruments().registry
    if _IN_PROCESS not in registry._names_to_collectors:
        # FastStream takes a metric of its name that is registered already. Its own
        # gauge would be per process in multiprocess mode (a `pid` label); summed over
        # the live processes it is one series, as without multiprocess mode.
        Gauge(
            _IN_PROCESS,
            "Gauge of received messages in process by broker and handler",
            ["app_name", "broker", "handler"],
            registry=registry,
            multiprocess_mode="livesum",
        )
    return PrometheusMiddleware(
        settings_provider_factory=_provider,
        registry=registry,
        app_name=APP_NAME,
    )
