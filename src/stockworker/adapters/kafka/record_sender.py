"""Sending records an operator chose (redriven dead letters) to a topic, acknowledged by
every in-sync replica, at a bounded rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaProducer

from stockworker.config.kafka import KafkaConnection, as_connection
from stockworker.service.dead_letter_triage import pacing_delay
from stockworker.service.ports import Headers

OutgoingRecord = tuple[bytes | None, bytes | None, Headers]


class RecordSender:
    """`async with RecordSender(kafka) as sender: await sender.send(topic, records)`.

    Idempotent producer, acks=all: a record the broker acknowledged is stored once, in
    order per key. `rate` (records per second) paces the sends; each record is
    acknowledged before `on_sent` is called for it.
    """

    def __init__(self, kafka: KafkaConnection | str, max_request_size: int = 1_048_576) -> None:
        self._producer = AIOKafkaProducer(
            **as_connection(kafka).client_options(),
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            max_request_size=max_request_size,
            request_timeout_ms=30_000,
        )

    async def __aenter__(self) -> RecordSender:
        await self._producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._producer.stop()

    async def send(
        self,
        topic: str,
        records: Sequence[OutgoingRecord],
        rate: float | None = None,
        on_sent: Callable[[int], None] | None = None,
    ) -> None:
        """Sends in order; returns once all are acknowledged. Raises on the first that
        fails (the ones before it were acknowledged and reported through `on_sent`)."""
        started = time.monotonic()
        pending: list[tuple[int, asyncio.Future[object]]] = []
        try:
            for index, (key, value, headers) in enumerate(records):
                delay = pacing_delay(index, time.monotonic() - started, rate)
                if delay > 0:
                    await self._settle(pending, on_sent)
                    await asyncio.sleep(delay)
                future = await self._producer.send(topic, value, key=key, headers=list(headers))
                pending.append((index, future))
        except Exception:
            # Those handed over before the failure may still be stored: each one the
            # broker acknowledges is reported, so none is sent unaccounted for.
            await self._settle(pending, on_sent, quiet=True)
            raise
        await self._settle(pending, on_sent)

    @staticmethod
    async def _settle(
        pending: list[tuple[int, asyncio.Future[object]]],
        on_sent: Callable[[int], None] | None,
        quiet: bool = False,
    ) -> None:
        """Waits for every pending record, reporting each acknowledged one; then raises
        the first failure (unless `quiet`: another error is on its way)."""
        failure: Exception | None = None
        for index, future in pending:
            try:
                await future
            except Exception as exc:
                failure = failure or exc
                continue
            if on_sent is not None:
                on_sent(index)
        pending.clear()
        if failure is not None and not quiet:
            raise failure
