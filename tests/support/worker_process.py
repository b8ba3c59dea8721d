"""The real worker, run as a child process (`python -m stockworker worker`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from stockworker.service.topics import Topics
from tests.support.services import worker_dsn


class WorkerProcess:
    def __init__(
        self,
        database_url: str,
        bootstrap_servers: str,
        topics: Topics,
        log_dir: Path,
        group_id: str | None = None,
        **settings: str,
    ) -> None:
        self.env = {
            **os.environ,
            # The worker connects as the app role (data only), as in production.
            "DATABASE_URL": worker_dsn(database_url),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            "STOCKWORKER_TOPIC_PREFIX": topics.prefix,
            "STOCKWORKER_GROUP_ID": group_id or f"test-{uuid.uuid4().hex[:8]}",
            "STOCKWORKER_RETRY_MAX_SECONDS": "1",
            "STOCKWORKER_EXPIRY_INTERVAL_SECONDS": "0.5",
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
