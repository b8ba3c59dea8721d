"""Log output: lines for people (`text`, the default) or one JSON object per line for a
log collector (`STOCKWORKER_LOG_FORMAT=json`).

A JSON line holds `time` (UTC), `level`, `logger`, `message`, the exception when there
is one, and the context a log call gives with `extra=` under the names in CONTEXT
(`command_id`, `sku`, `batch`, ...). Payload values are never logged, in either format.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from stockworker.config import Settings

# The `extra=` names a JSON line carries when a log call gives them.
CONTEXT = ("command_id", "sku", "location", "batch", "topic", "partition", "offset", "code")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str, option=orjson.OPT_UTC_Z).decode()


def configure_logging(settings: Settings) -> None:
    """Log to stderr in the configured format. Like logging.basicConfig, it leaves a
    root logger that already has handlers (stockworker called from another program, or
    its tests) to whoever set them up."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            JsonLines() if settings.log_format == "json" else logging.Formatter(_TEXT_FORMAT)
        )
        root.addHandler(handler)
        root.setLevel(settings.log_level.upper())
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
