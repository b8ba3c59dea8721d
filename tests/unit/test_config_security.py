"""Settings: Kafka TLS/SASL options reach every client, and secrets stay out of reprs."""

from __future__ import annotations

import ssl

import pytest

from stockworker.config import Settings, redact_dsn
from stockworker.config.kafka import KafkaConnection


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    kafka = Settings.from_env({}).kafka()
    assert kafka.security() is None
    assert kafka.client_options() == {"bootstrap_servers": "127.0.0.1:9092"}


def test_sasl_over_tls_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "broker:9093",
            "STOCKWORKER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "STOCKWORKER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "STOCKWORKER_KAFKA_SASL_USERNAME": "stock",
            "STOCKWORKER_KAFKA_SASL_PASSWORD": "kafka-secret",
        }
    )
    options = settings.kafka().client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "stock",
        "kafka-secret",
    )
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode is ssl.CERT_REQUIRED
    assert "kafka-secret" not in repr(settings) and "kafka-secret" not in repr(settings.kafka())


def test_tls_without_sasl() -> None:
    options = KafkaConnection("b:9093", security_protocol="SSL").client_options()
    assert options["security_protocol"] == "SSL"
    assert "sasl_mechanism" not in options


@pytest.mark.parametrize(
    ("protocol", "mechanism", "message"),
    [("TLS", "", "not one of"), ("SASL_SSL", "MD5", "SASL mechanism 'MD5'")],
)
def test_unknown_security_settings_fail_at_start(
    protocol: str, mechanism: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        KafkaConnection("b:9093", security_protocol=protocol, sasl_mechanism=mechanism)


def test_database_passwords_are_redacted() -> None:
    dsn = "postgresql://worker:pg-secret@db:5432/stock?sslmode=verify-full"
    assert redact_dsn(dsn) == "postgresql://worker:***@db:5432/stock?sslmode=verify-full"
    assert redact_dsn("postgresql://db/stock") == "postgresql://db/stock"
    assert "pg-secret" not in repr(Settings(database_url=dsn))
