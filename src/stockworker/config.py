"""Settings, read from environment variables (documented in README.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from urllib.parse import urlsplit, urlunsplit

from stockworker.adapters.kafka.connection import KafkaConnection

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
    # Kafka TLS / SASL (see docs/operations.md "Security").
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", repr=False)
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = ""
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
    # Inbox rows must outlive any redelivery of their command (Kafka retention, replays).
    inbox_retention_hours: float = 168.0
    outbox_retention_hours: float = 24.0
    retention_interval_seconds: float = 60.0
    # On SIGTERM: how long the batch in hand may take to finish and commit.
    shutdown_grace_seconds: float = 25.0

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

    def kafka(self) -> KafkaConnection:
        return KafkaConnection(
            bootstrap_servers=self.kafka_bootstrap_servers,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password,
            ssl_cafile=self.kafka_ssl_cafile,
            ssl_certfile=self.kafka_ssl_certfile,
            ssl_keyfile=self.kafka_ssl_keyfile,
        )

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.repr}
        shown["database_url"] = redact_dsn(self.database_url)
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


def redact_dsn(dsn: str) -> str:
    """The DSN with its password replaced, for logs and error messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
