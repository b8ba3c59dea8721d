"""TLS to PostgreSQL: off by default only on a loopback address, and never against the DSN."""

import pytest

from stockworker.adapters.postgres.pool import connect_options


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u:p@127.0.0.1:5432/db",
        "postgresql://u:p@localhost/db",
        "postgresql://u:p@[::1]:5432/db",
        "postgresql://u:p@127.0.0.2/db",
    ],
)
def test_a_loopback_address_without_an_sslmode_gets_no_tls(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGSSLMODE", raising=False)
    monkeypatch.delenv("PGSERVICE", raising=False)
    assert connect_options(dsn) == {"ssl": False}


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u:p@db.internal:5432/db",
        "postgresql://u:p@10.0.0.5/db",
        "postgresql://u:p@127.0.0.1/db?sslmode=require",
        "postgresql://u:p@localhost/db?sslmode=verify-full&sslrootcert=/ca.pem",
        "postgresql:///db?host=/var/run/postgresql",
        "postgresql://u:p@127.0.0.1/db?service=tunnel",
    ],
)
def test_any_other_address_or_an_explicit_sslmode_keeps_asyncpgs_choice(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGSSLMODE", raising=False)
    assert connect_options(dsn) == {}


@pytest.mark.parametrize("variable", ["PGSSLMODE", "PGSERVICE"])
def test_pgsslmode_or_pgservice_in_the_environment_is_obeyed_on_loopback_too(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGSSLMODE", raising=False)
    monkeypatch.delenv("PGSERVICE", raising=False)
    monkeypatch.setenv(variable, "require")
    assert connect_options("postgresql://u:p@127.0.0.1/db") == {}
