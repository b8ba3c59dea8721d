"""The worker's HTTP side: liveness, readiness, metrics and the AsyncAPI page.

The routes are FastStream ASGI handlers on the worker's `AsgiFastStream` (see
worker.py); uvicorn serves them on STOCKWORKER_HTTP_HOST:STOCKWORKER_HTTP_PORT.

- `GET /health/live`: 200 `{"status": "ok"}` while the event loop runs.
- `GET /health/ready`: 200 `{"status": "ready", "checks": {...}}` or 503 with
  `"status": "unready"`; each check `{"ok": bool, "detail": str}` (adapters/readiness.py).
- `GET /metrics`: Prometheus text exposition (adapters/metrics). Each scrape also asks
  for a readiness evaluation, not waited for, so `stockworker_ready` is at most a scrape
  old however rarely probes come.
- `GET /asyncapi`: FastStream's AsyncAPI page (its script and style come from the
  unpkg CDN) of `GET /asyncapi.json`, the same document as schemas/asyncapi.json.

The worker, not uvicorn, owns SIGTERM and SIGINT: uvicorn runs as a task on a socket
bound before anything else starts, with its own signal capture switched off, and stops
after the worker has drained (worker.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import socket
from collections.abc import Generator
from typing import Any

import uvicorn
from faststream.asgi import AsgiResponse, get
from faststream.asgi.response import JSONResponse
from faststream.asgi.types import ASGIApp, Scope

from stockworker.adapters.metrics.exposition import record_readiness, render_metrics
from stockworker.adapters.readiness import Readiness, ReadinessReport
from stockworker.config import ConfigurationError
from stockworker.entrypoints.asyncapi import asyncapi_document

log = logging.getLogger(__name__)

_NO_STORE = {"Cache-Control": "no-store"}
# Seconds uvicorn waits for open requests once the worker has stopped.
_HTTP_GRACE_SECONDS = 2


def record_report(report: ReadinessReport) -> None:
    """Each readiness evaluation, as `stockworker_ready` and `stockworker_ready_check`."""
    record_readiness({name: result.ok for name, result in report.checks.items()})


def health_routes(readiness: Readiness) -> list[tuple[str, ASGIApp]]:
    @get(include_in_schema=False)
    async def live(scope: Scope) -> AsgiResponse:
        return JSONResponse({"status": "ok"}, 200, _NO_STORE)

    @get(include_in_schema=False)
    async def ready(scope: Scope) -> AsgiResponse:
        report = await readiness.current()
        return JSONResponse(report.as_json(), 200 if report.ready else 503, _NO_STORE)

    @get(include_in_schema=False)
    async def metrics(scope: Scope) -> AsgiResponse:
        # Never waited for: a scrape shows the last evaluation (a second old at most
        # when scraped every second), and never waits on PostgreSQL or Kafka.
        readiness.refresh_soon()
        body, content_type = render_metrics()
        return AsgiResponse(body, 200, {"Content-Type": content_type, **_NO_STORE})

    return [("/health/live", live), ("/health/ready", ready), ("/metrics", metrics)]


class _Document:
    """A fixed AsyncAPI document, shaped as FastStream's `Specification`."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._document = document

    @property
    def title(self) -> str:
        return str(self._document["info"]["title"])

    def to_jsonable(self) -> Any:
        return self._document

    def to_json(self) -> str:
        return json.dumps(self._document)

    def to_yaml(self) -> str:
        return json.dumps(self._document, indent=2)  # JSON is YAML


class ContractSpecification:
    """FastStream's `SpecificationFactory`, answering with stockworker's own AsyncAPI
    document (entrypoints/asyncapi.py) instead of one generated from the subscribers:
    the worker reads raw batches and its relay publishes through its own producer, so
    FastStream sees none of the messages."""

    title = "stockworker"
    description: str | None = None
    version: str | None = None
    contact: Any = None
    license: Any = None

    def __init__(self) -> None:
        self._document = _Document(asyncapi_document())
        self.title = self._document.title

    def add_broker(self, broker: Any, /) -> ContractSpecification:
        return self

    def add_http_route(self, path: str, handler: Any) -> ContractSpecification:
        return self

    def to_specification(self) -> _Document:
        return self._document


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """The worker handles SIGTERM/SIGINT (drain, commit, stop the relay), not uvicorn."""
        yield


class PortInUse(ConfigurationError):
    """Another process listens on the port."""


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound now: a port in use stops start-up before anything runs."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigurationError(
            "STOCKWORKER_HTTP_HOST", f"cannot resolve {host!r}: {exc.strerror}"
        ) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigurationError(
                "STOCKWORKER_HTTP_HOST", f"{host} is not an address of this machine"
            ) from None
        error = PortInUse if exc.errno == errno.EADDRINUSE else ConfigurationError
        raise error(
            "STOCKWORKER_HTTP_PORT",
            f"cannot listen on {host}:{port} ({exc.strerror}): choose a free port, "
            "or 0 for no HTTP server",
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class HttpServer:
    """uvicorn serving `app` on a socket bound at construction."""

    def __init__(
        self, app: ASGIApp, host: str, port: int, *, any_port_if_taken: bool = False
    ) -> None:
        """`any_port_if_taken`: the port is the default one, not asked for; when another
        process holds it (a second worker on one machine) a free port is used instead."""
        try:
            self._socket = listen(host, port)
        except PortInUse:
            if not any_port_if_taken:
                raise
            self._socket = listen(host, 0)
            log.warning(
                "the default HTTP port %d is in use: serving on %d instead (set "
                "STOCKWORKER_HTTP_PORT to choose one)",
                port,
                self._socket.getsockname()[1],
            )
        self.port = int(self._socket.getsockname()[1])
        self._host = host
        config = uvicorn.Config(
            app,
            lifespan="off",  # the worker runs the app's start-up and shutdown itself
            interface="asgi3",
            ws="none",
            log_config=None,  # keep the worker's logging (text or JSON)
            log_level=logging.WARNING,
            access_log=False,
            timeout_graceful_shutdown=_HTTP_GRACE_SECONDS,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve([self._socket]), name="http")
        log.info("health, metrics and AsyncAPI on http://%s:%d", self._host, self.port)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        else:
            self._socket.close()
