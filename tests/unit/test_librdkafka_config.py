"""KafkaConnection as librdkafka configuration: the same connection the other clients get."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from stockworker.config import Settings
from stockworker.config.kafka import KafkaConnection


def builds(config: dict[str, Any]) -> None:
    """librdkafka takes the configuration (it loads CA, certificate and key files here)."""
    producer = Producer({**config, "logger": logging.getLogger("test.librdkafka")})
    producer.close()


def test_plaintext_is_the_default() -> None:
    config = Settings.from_env({}).kafka().librdkafka_config()
    assert config == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "plaintext"}
    builds(config)


def test_sasl_over_tls_with_the_systems_ca_bundle() -> None:
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "broker-1:9093,broker-2:9093",
            "STOCKWORKER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "STOCKWORKER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "STOCKWORKER_KAFKA_SASL_USERNAME": "stock",
            "STOCKWORKER_KAFKA_SASL_PASSWORD": "kafka-secret",
        }
    )
    config = settings.kafka().librdkafka_config()
    assert config == {
        "bootstrap.servers": "broker-1:9093,broker-2:9093",
        "security.protocol": "sasl_ssl",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "stock",
        "sasl.password": "kafka-secret",
        "ssl.ca.location": "probe",
        "ssl.endpoint.identification.algorithm": "https",
    }
    builds(config)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_without_tls_sets_no_tls_property(mechanism: str) -> None:
    config = KafkaConnection(
        "b:9092",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_username="u",
        sasl_password="p",
    ).librdkafka_config()
    assert config["security.protocol"] == "sasl_plaintext"
    assert config["sasl.mechanisms"] == mechanism
    assert (config["sasl.username"], config["sasl.password"]) == ("u", "p")
    assert not [k for k in config if k.startswith("ssl.")]
    builds(config)


def test_tls_files_are_passed_as_locations() -> None:
    config = KafkaConnection(
        "b:9093",
        security_protocol="SSL",
        ssl_cafile="/etc/kafka/ca.pem",
        ssl_certfile="/etc/kafka/client.pem",
        ssl_keyfile="/etc/kafka/client.key",
    ).librdkafka_config()
    assert config == {
        "bootstrap.servers": "b:9093",
        "security.protocol": "ssl",
        "ssl.ca.location": "/etc/kafka/ca.pem",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.certificate.location": "/etc/kafka/client.pem",
        "ssl.key.location": "/etc/kafka/client.key",
    }


def test_a_certificate_file_without_a_key_file_holds_the_key() -> None:
    config = KafkaConnection(
        "b:9093", security_protocol="SSL", ssl_certfile="/etc/kafka/client.pem"
    ).librdkafka_config()
    assert config["ssl.certificate.location"] == "/etc/kafka/client.pem"
    assert config["ssl.key.location"] == "/etc/kafka/client.pem"
    assert config["ssl.ca.location"] == "probe"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate and its key (PEM), made by the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=test",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_librdkafka_loads_the_ca_certificate_and_key(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    kafka = KafkaConnection(
        "127.0.0.1:1",
        security_protocol="SSL",
        ssl_cafile=str(cert),
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
    )
    kafka.check_tls_files()
    builds(kafka.librdkafka_config())


def test_librdkafka_takes_the_key_from_the_certificate_file(
    certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = certificate
    both = tmp_path / "both.pem"
    both.write_bytes(cert.read_bytes() + key.read_bytes())
    kafka = KafkaConnection(
        "127.0.0.1:1", security_protocol="SSL", ssl_cafile=str(cert), ssl_certfile=str(both)
    )
    kafka.check_tls_files()
    builds(kafka.librdkafka_config())


def test_a_missing_ca_file_is_named_before_librdkafka_sees_it() -> None:
    kafka = KafkaConnection(
        "b:9093", security_protocol="SASL_SSL", sasl_mechanism="PLAIN", ssl_cafile="/nonexistent"
    )
    with pytest.raises(FileNotFoundError):
        kafka.check_tls_files()
    KafkaConnection("b:9092", ssl_cafile="/nonexistent").check_tls_files()  # no TLS: not read
