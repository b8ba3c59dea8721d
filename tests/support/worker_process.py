"""The real worker, run as a child process (`python -m stockworker worker`)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from stockworker.service.topics import Topics
from tests.support.services import worker_dsn

_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port nothing uses now, below Linux's ephemeral range (32768-60999), so no
    outgoing connection (Kafka, PostgreSQL clients) takes it before the worker binds it;
    never the same twice in one test run (workers built before any of them starts)."""
    while True:
        port = random.randrange(20_000, 32_000)
        if port in _handed_out:
            continue
        _handed_out.add(port)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


class WorkerProcess:
    """A worker; its health and metrics on `http_url` (a free port of its own unless
    `http_port` is given; "0" turns the HTTP server off)."""

    def __init__(
        self,
        database_url: str,
        bootstrap_servers: str,
        topics: Topics,
        log_dir: Path,
        group_id: str | None = None,
        **settings: str,
    ) -> None:
        self.http_port = int(settings.pop("http_port", None) or free_port())
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.env = {
            **os.environ,
            # The worker connects as the app role (data only), as in production.
            "DATABASE_URL": worker_dsn(database_url),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            "STOCKWORKER_TOPIC_PREFIX": topics.prefix,
            "STOCKWORKER_GROUP_ID": group_id or f"test-{uuid.uuid4().hex[:8]}",
            "STOCKWORKER_RETRY_MAX_SECONDS": "1",
            "STOCKWORKER_EXPIRY_INTERVAL_SECONDS": "0.5",
            "STOCKWORKER_HTTP_HOST": "127.0.0.1",
            "STOCKWORKER_HTTP_PORT": str(self.http_port),
            **{f"STOCKWORKER_{k.upper()}": v for k, v in settings.items()},
        }
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"worker-{self.starts}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stockworker", "worker"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs at all."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes, str]:
        """GET `path` from the worker's HTTP server: status, body, content type."""
        try:
            with urllib.request.urlopen(self.http_url + path, timeout=timeout) as response:
                return response.status, response.read(), response.headers["Content-Type"]
        except urllib.error.HTTPError as error:
            return error.code, error.read(), error.headers["Content-Type"]

    def readiness(self, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
        """`/health/ready`: its status and JSON body."""
        status, body, _ = self.get("/health/ready", timeout)
        return status, json.loads(body)

    def wait_ready(self, timeout: float = 60) -> dict[str, Any]:
        """Polls /health/ready until the worker is ready; its last body either way."""
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            assert self.alive(), self.logs()[-3000:]
            try:
                status, body = self.readiness()
            except OSError:  # not listening yet
                status = 0
            if status == 200:
                return body
            time.sleep(0.2)
        raise AssertionError(f"not ready within {timeout} s: {body}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_size(self) -> int:
        """Bytes written to the logs of every run so far."""
        return sum(p.stat().st_size for p in self.log_dir.glob("worker-*.log"))

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-5000:] for p in sorted(self.log_dir.glob("worker-*.log"))
        )


def wait_for(predicate: object, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(interval)
    return False
