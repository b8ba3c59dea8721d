"""The HTTP settings: a port given must be had; only the default one may give way."""

from __future__ import annotations

import socket

import pytest

from stockworker.config import ConfigurationError, Settings
from stockworker.entrypoints.http import HttpServer, PortInUse


def test_only_a_port_from_the_environment_is_explicit() -> None:
    assert Settings.from_env({}).http_port == 8080
    assert not Settings.from_env({}).http_port_explicit
    given = Settings.from_env({"STOCKWORKER_HTTP_PORT": "9000"})
    assert (given.http_port, given.http_port_explicit) == (9000, True)
    # Not a setting of its own: the environment cannot claim it.
    assert not Settings.from_env({"STOCKWORKER_HTTP_PORT_EXPLICIT": "true"}).http_port_explicit
    with pytest.raises(ConfigurationError, match="STOCKWORKER_HTTP_PORT"):
        Settings.from_env({"STOCKWORKER_HTTP_PORT": "70000"})


async def test_a_taken_port_is_refused_unless_it_is_the_default() -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        pass

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        with pytest.raises(PortInUse, match=f"127.0.0.1:{taken}"):
            HttpServer(app, "127.0.0.1", taken)
        server = HttpServer(app, "127.0.0.1", taken, any_port_if_taken=True)
        try:
            assert server.port not in (0, taken)
        finally:
            await server.stop()
