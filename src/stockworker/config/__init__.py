"""Settings, read from environment variables (documented in README.md).

Every value is checked when Settings is built: a wrong one stops start-up with a
`ConfigurationError` naming the variable and why, instead of surfacing later as a
failure that is retried forever.
"""

from __future__ import annotations

import math
import os
import ssl
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

from stockworker.config.kafka import KafkaConnection
from stockworker.service.loops import Unrecoverable

DEFAULT_DATABASE_URL = "postgresql://stockworker:stockworker@127.0.0.1:5432/stockworker"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class ConfigurationError(Unrecoverable):
    """A setting no retry can cure; the message names the variable."""

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(f"{variable}: {reason}")
        self.variable = variable


# The two connection settings use their usual names; every other field is STOCKWORKER_<FIELD>.
_ENV_NAMES = {
    "database_url": "DATABASE_URL",
    "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
    # OpenTelemetry's own names, which its SDK and collectors document.
    "otel_exporter_otlp_endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT",
    "otel_service_name": "OTEL_SERVICE_NAME",
}


def env_name(field_name: str) -> str:
    return _ENV_NAMES.get(field_name, f"STOCKWORKER_{field_name.upper()}")


# Inclusive bounds of the numeric settings (None: unbounded on that side); a lower bound
# given as a float excludes zero-or-less by being the smallest accepted value.
_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "batch_size": (1, 10_000),
    "batch_timeout_ms": (1, 600_000),
    "batch_top_up_ms": (0, 1_000),
    "db_pool_size": (1, 100),
    "max_message_bytes": (1_024, 100_000_000),
    "max_locks_per_transaction": (10, 1_000_000),
    "relay_batch_size": (1, 100_000),
    "retry_initial_seconds": (0.001, 3_600),
    "retry_max_seconds": (0.001, 3_600),
    "over_receipt_tolerance_percent": (0, 1_000),
    "expiry_interval_seconds": (0.01, 86_400),
    "lot_expiring_days": (0, 3_650),
    "inbox_retention_hours": (0.0001, None),
    "outbox_retention_hours": (0.0001, None),
    "retention_interval_seconds": (0.01, 86_400),
    "shutdown_grace_seconds": (0, 3_600),
    "http_port": (0, 65_535),
    "ready_max_outbox_age_seconds": (0.001, None),
    "otel_sample_ratio": (0, 1),
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
    # How long a batch waits for the commands that reached Kafka while the last batch
    # was being applied (adapters/kafka/guarded_consumer.py, `_top_up`); 0: not at all.
    batch_top_up_ms: int = 3
    db_pool_size: int = 4
    max_message_bytes: int = 1_000_000
    # Advisory locks one transaction may take; a batch that needs more is applied in
    # several transactions (PostgreSQL's lock table is shared and fixed in size).
    max_locks_per_transaction: int = 2_000
    run_relay: bool = True
    # The worker's relay inside its own process (else a child process, the default).
    relay_inline: bool = False
    relay_batch_size: int = 2000
    retry_initial_seconds: float = 0.1
    retry_max_seconds: float = 10.0
    log_level: str = "INFO"
    # "json": one JSON object per line (for a log collector); "text" for people.
    log_format: str = "text"
    # How far a receipt may exceed its purchase-order line, in percent of the ordered quantity.
    over_receipt_tolerance_percent: float = 0.0
    # How often the worker looks for reservations whose expires_at has passed (and lots
    # coming close to or past their expiry date).
    expiry_interval_seconds: float = 5.0
    # How many days before its expires_on a lot with stock is reported (LotExpiring).
    lot_expiring_days: int = 30
    # Inbox rows must outlive any redelivery of their command (Kafka retention, replays).
    inbox_retention_hours: float = 168.0
    outbox_retention_hours: float = 24.0
    retention_interval_seconds: float = 60.0
    # On SIGTERM: how long the batch in hand may take to finish and commit.
    shutdown_grace_seconds: float = 25.0
    # Health, readiness, /metrics and the AsyncAPI page (docs/operations.md, "Observing
    # it"); port 0 serves none of them.
    # All interfaces: in a container the runtime decides what is published.
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    # Whether STOCKWORKER_HTTP_PORT was given: only the default port, when taken (two
    # workers on one machine), gives way to a free one; a port asked for must be had.
    http_port_explicit: bool = field(default=False, metadata={"from_env": False})
    # Readiness fails while the oldest unpublished outbox row is older than this.
    ready_max_outbox_age_seconds: float = 60.0
    # OpenTelemetry tracing: off unless an OTLP endpoint is given (e.g. http://collector:4318).
    otel_exporter_otlp_endpoint: str = ""
    otel_service_name: str = "stockworker"
    otel_sample_ratio: float = 1.0

    def __post_init__(self) -> None:
        for name, (low, high) in _BOUNDS.items():
            value = getattr(self, name)
            if (low is not None and value < low) or (high is not None and value > high):
                shown = f"{low:g}" if low is not None else "-inf"
                upper = f"{high:g}" if high is not None else "any"
                raise ConfigurationError(
                    env_name(name), f"{value!r} is out of range: between {shown} and {upper}"
                )
        if self.retry_max_seconds < self.retry_initial_seconds:
            raise ConfigurationError(
                env_name("retry_max_seconds"),
                f"{self.retry_max_seconds!r} is below STOCKWORKER_RETRY_INITIAL_SECONDS "
                f"({self.retry_initial_seconds!r})",
            )
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigurationError(
                env_name("log_level"), f"{self.log_level!r} is not one of {', '.join(LOG_LEVELS)}"
            )
        if self.log_format not in LOG_FORMATS:
            raise ConfigurationError(
                env_name("log_format"),
                f"{self.log_format!r} is not one of {', '.join(LOG_FORMATS)}",
            )
        for name in ("database_url", "kafka_bootstrap_servers", "group_id"):
            if not getattr(self, name).strip():
                raise ConfigurationError(env_name(name), "must not be empty")
        _check_dsn(self.database_url)
        for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"):
            _check_readable_file(env_name(name), getattr(self, name))
        try:
            kafka = self.kafka()
        except ValueError as exc:
            protocol_error = "protocol" in str(exc)
            name = "kafka_security_protocol" if protocol_error else "kafka_sasl_mechanism"
            raise ConfigurationError(env_name(name), str(exc)) from None
        try:
            kafka.security()  # loads the CA bundle and client certificate, if any
        except (OSError, ssl.SSLError) as exc:
            files = ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
            names = "/".join(env_name(n) for n in files)
            raise ConfigurationError(names, f"cannot be used for TLS: {exc}") from None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        for f in fields(cls):
            name = env_name(f.name)
            if name in env and f.metadata.get("from_env", True):
                values[f.name] = _parse(name, env[name], f.default)
        values["http_port_explicit"] = env_name("http_port") in env
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


def _parse(variable: str, raw: str, default: object) -> object:
    text = raw.strip()
    if isinstance(default, bool):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigurationError(variable, f"{raw!r} is not a boolean (true or false)")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise ConfigurationError(variable, f"{raw!r} is not a whole number") from None
    if isinstance(default, float):
        try:
            number = float(text)
        except ValueError:
            raise ConfigurationError(variable, f"{raw!r} is not a number") from None
        if not math.isfinite(number):
            raise ConfigurationError(variable, f"{raw!r} is not a finite number")
        return number
    return raw


def _check_readable_file(variable: str, path: str) -> None:
    if not path:
        return
    file = Path(path)
    if not file.is_file():
        raise ConfigurationError(variable, f"{path!r} is not a file")
    if not os.access(file, os.R_OK):
        raise ConfigurationError(variable, f"{path!r} cannot be read")


def _check_dsn(dsn: str) -> None:
    """The DSN's scheme and TLS files (checked now: a missing CA file is never transient)."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ConfigurationError(
            "DATABASE_URL", f"expected a postgresql:// URL, got {redact_dsn(dsn)!r}"
        )
    for parameter, values in parse_qs(parts.query).items():
        if parameter in ("sslrootcert", "sslcert", "sslkey") and values[-1] != "system":
            _check_readable_file(f"DATABASE_URL ({parameter})", values[-1])


def redact_dsn(dsn: str) -> str:
    """The DSN with its password replaced, for logs and error messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
