"""How to reach Kafka: bootstrap servers plus optional TLS and SASL, for every client.

Part of the configuration: one description feeds both FastStream's broker (a
`security` object) and the plain aiokafka clients (consumer, producer, admin), so they
can never disagree.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

from faststream.kafka.security import parse_security
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""  # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with SASL_*
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_cafile: str = ""  # CA bundle to verify the brokers (default: the system's)
    ssl_certfile: str = ""  # client certificate for mutual TLS
    ssl_keyfile: str = ""

    def __post_init__(self) -> None:
        if self.security_protocol not in PROTOCOLS:
            raise ValueError(
                f"Kafka security protocol {self.security_protocol!r} is not one of "
                f"{', '.join(PROTOCOLS)}"
            )
        if self.security_protocol.startswith("SASL") and self.sasl_mechanism not in _SASL:
            raise ValueError(
                f"SASL mechanism {self.sasl_mechanism!r} is not one of {', '.join(_SASL)}"
            )

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ssl_cafile or None)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile or None)
        return context

    def security(self) -> BaseSecurity | None:
        """FastStream's description, for KafkaBroker(security=...)."""
        use_ssl = self.security_protocol in ("SSL", "SASL_SSL")
        context = self._ssl_context() if use_ssl else None
        if self.security_protocol.startswith("SASL"):
            sasl = _SASL[self.sasl_mechanism]
            return sasl(
                self.sasl_username, self.sasl_password, ssl_context=context, use_ssl=use_ssl
            )
        if use_ssl:
            return BaseSecurity(ssl_context=context, use_ssl=True)
        return None

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer / AIOKafkaAdminClient."""
        return {"bootstrap_servers": self.bootstrap_servers, **parse_security(self.security())}


def as_connection(kafka: KafkaConnection | str) -> KafkaConnection:
    """A plain bootstrap string means an unauthenticated, unencrypted connection."""
    return kafka if isinstance(kafka, KafkaConnection) else KafkaConnection(kafka)
