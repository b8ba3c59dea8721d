"""The JSON log format: one object per line, with the context a log call gives."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from stockworker.config import ConfigurationError, Settings
from stockworker.entrypoints.logs import JsonLines

BASE = {"DATABASE_URL": "postgresql://u@db/x", "KAFKA_BOOTSTRAP_SERVERS": "k:9092"}


def _record(**extra: object) -> logging.LogRecord:
    logger = logging.getLogger("stockworker.test")
    record = logger.makeRecord(
        logger.name, logging.ERROR, __file__, 1, "dead-lettering %s", ("t[1]@5",), None
    )
    record.__dict__.update(extra)
    return record


def test_a_line_holds_the_message_and_the_context_given() -> None:
    line = json.loads(
        JsonLines().format(
            _record(command_id="c-1", sku="SKU-1", partition=1, offset=5, unrelated="no")
        )
    )
    assert line["message"] == "dead-lettering t[1]@5"
    assert (line["level"], line["logger"]) == ("ERROR", "stockworker.test")
    assert (line["command_id"], line["sku"], line["partition"], line["offset"]) == (
        "c-1",
        "SKU-1",
        1,
        5,
    )
    assert "unrelated" not in line
    assert line["time"].endswith("Z")


def test_an_exception_is_one_field_of_the_same_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record()
        record.exc_info = sys.exc_info()
    text = JsonLines().format(record)
    assert "\n" not in text
    assert "ValueError: boom" in json.loads(text)["exception"]


def test_the_format_is_checked() -> None:
    assert Settings.from_env({**BASE, "STOCKWORKER_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(ConfigurationError, match="STOCKWORKER_LOG_FORMAT"):
        Settings.from_env({**BASE, "STOCKWORKER_LOG_FORMAT": "xml"})
