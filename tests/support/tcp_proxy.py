"""A TCP proxy a test can cut and restore: one worker's view of a server goes away
(connections refused, open ones dropped) while the server itself, shared with other
tests and agents, runs on untouched.

It runs its own event loop in a thread, so a test that blocks (polling with
time.sleep, urllib) does not stall the traffic it carries.

    with TcpProxy("127.0.0.1", 5432) as proxy:
        dsn = proxy.route(database_url)   # the same DSN, through the proxy
        ...
        proxy.cut()       # refuse new connections, drop the open ones
        proxy.restore()   # listen again on the same port
        proxy.freeze()    # accept, but carry nothing either way: a server that hangs
        proxy.thaw()      # carry again what waited
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")

_CHUNK = 65_536


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0  # chosen by the kernel on the first listen, kept after
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    @classmethod
    def for_url(cls, url: str) -> TcpProxy:
        """A proxy to the host and port of a DSN or URL."""
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None, "give host and port"
        return cls(parts.hostname, parts.port)

    def route(self, url: str) -> str:
        """`url` with its host and port replaced by the proxy's."""
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@" if credentials else ""
        return urlunsplit(parts._replace(netloc=f"{netloc}{self.host}:{self.port}"))

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        self.restore()
        return self

    def __exit__(self, *_: object) -> None:
        self.thaw()
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def cut(self) -> None:
        """Close the listening socket (connects are refused) and drop every connection."""
        self._call(self._cut())

    def restore(self) -> None:
        """Listen again, on the same port."""
        self._call(self._listen())

    def freeze(self) -> None:
        """Keep every connection open and accept new ones, but carry no byte."""
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def thaw(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def _call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=30)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._carry, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._connections):
            writer.transport.abort()
        self._connections.clear()
        if server is not None:
            await server.wait_closed()

    async def _carry(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        self._connections.add(client_out)
        await self._flowing.wait()
        try:
            target_in, target_out = await asyncio.open_connection(*self.target)
        except OSError:
            client_out.transport.abort()
            return
        self._connections.update((client_out, target_out))
        try:
            await asyncio.gather(
                self._pipe(client_in, target_out), self._pipe(target_in, client_out)
            )
        finally:
            for writer in (client_out, target_out):
                self._connections.discard(writer)
                writer.transport.abort()

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await source.read(_CHUNK):
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        # One side ended: end the other too, as the server or client would see it.
        with contextlib.suppress(OSError):
            sink.transport.abort()
