"""Settings, read from environment variables (documented in README.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

DEFAULT_DATABASE_URL = "postgresql://stockworker:stockworker@127.0.0.1:5432/stockworker"


def _bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


# The two connection settings use their usual names; every other field is STOCKWORKER_<FIELD>.
_ENV_NAMES = {
    "database_url": "DATABASE_URL",
    "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
}


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    group_id: str = "stockworker"
    batch_size: int = 500
    batch_timeout_ms: int = 100
    db_pool_size: int = 4
    max_message_bytes: int = 1_000_000
    run_relay: bool = True
    relay_batch_size: int = 2000
    retry_initial_seconds: float = 0.1
    retry_max_seconds: float = 10.0
    log_level: str = "INFO"
    # How far a receipt may exceed its purchase-order line, in percent of the ordered quantity.
    over_receipt_tolerance_percent: float = 0.0
    # How often the worker looks for reservations whose expires_at has passed.
    expiry_interval_seconds: float = 5.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        for f in fields(cls):
            name = _ENV_NAMES.get(f.name, f"STOCKWORKER_{f.name.upper()}")
            if name not in env:
                continue
            raw = env[name]
            default = f.default
            if isinstance(default, bool):
                values[f.name] = _bool(raw)
            elif isinstance(default, int):
                values[f.name] = int(raw)
            elif isinstance(default, float):
                values[f.name] = float(raw)
            else:
                values[f.name] = raw
        return cls(**values)  # type: ignore[arg-type]
