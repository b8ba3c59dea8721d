"""A real Prometheus (Debian's binary) scrapes a running worker's /metrics: the lag and
outcome series arrive with the right values, the repo's alert rules evaluate against
them (the dead-letter alert fires), and every dashboard query runs."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stockworker.service.topics import Topics
from tests.support.builders import command
from tests.support.kafka_io import EventCollector, command_message, publish
from tests.support.services import Services
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "stockworker.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class Prometheus:
    """A Prometheus server of its own: a free port, its storage in a temporary directory,
    scraping one target every second and evaluating the repo's alert rules."""

    def __init__(self, workdir: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        assert binary, (
            "prometheus not found: `scripts/services.sh start` installs Debian's "
            "prometheus package (or apt-get install --no-install-recommends prometheus)"
        )
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        config = {
            "global": {
                "scrape_interval": "1s",
                "evaluation_interval": "1s",
                "scrape_timeout": "1s",
            },
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {
                    "job_name": "stockworker",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": [target]}],
                }
            ],
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(json.dumps(config))  # JSON is YAML
        self.args = [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.logs()
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"Prometheus not ready within 60 s:\n{self.logs()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as error:  # 400/422: a bad query, the body says why
            body = json.loads(error.read())
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = self.api("query", query=promql)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def by_label(self, promql: str, label: str) -> dict[str, float]:
        return {s["metric"].get(label, ""): float(s["value"][1]) for s in self.query(promql)}


async def eventually(
    what: str, probe: Callable[[], Any], expected: Any, within: float = 60
) -> None:
    """Polls `probe()` (every 0.5 s, up to `within` s) until it returns `expected`."""
    deadline = time.monotonic() + within
    seen: Any = None
    while time.monotonic() < deadline:
        seen = probe()
        if seen == expected:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what}: expected {expected!r}, last seen {seen!r}")


@pytest.fixture
def prometheus(worker: WorkerProcess, tmp_path: Path) -> Iterator[Prometheus]:
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    server = Prometheus(workdir, f"127.0.0.1:{worker.http_port}")
    server.start()
    yield server
    server.stop()
    print(server.logs())  # shown by pytest only when the test failed


def dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


async def test_prometheus_scrapes_lag_and_outcomes_and_evaluates_the_alerts(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    prometheus: Prometheus,
) -> None:
    worker.wait_ready()  # also records readiness, which /metrics then exposes
    await eventually(
        "the worker scraped",
        lambda: prometheus.by_label('up{job="stockworker"}', "job"),
        {"stockworker": 1.0},
    )

    accepted = [command("AdjustInventory", sku=f"SKU-{i}", delta=5) for i in range(4)]
    rejected = [
        command("PickStock", sku="SKU-0", quantity=100),  # 5 on hand
        command("PickStock", sku="SKU-NONE"),
    ]
    bodies = [*accepted, *rejected, accepted[0]]  # the last one again: a duplicate
    await publish(
        services.kafka_bootstrap_servers, topics.commands, [command_message(b) for b in bodies]
    )
    await publish(services.kafka_bootstrap_servers, topics.commands, [(b"k", b"not json")])
    ids = {b["command_id"] for b in bodies}
    await events.until(lambda c: ids <= set(c.results()))
    results = events.results()
    assert [results[b["command_id"]]["reason_code"] for b in rejected] == [
        "INSUFFICIENT_AVAILABLE",
        "UNKNOWN_POSITION",
    ]

    await eventually(
        "commands by outcome",
        lambda: prometheus.by_label(
            'sum by (outcome) (stockworker_commands_total{job="stockworker"})', "outcome"
        ),
        {"accepted": 4.0, "rejected": 2.0, "duplicate": 1.0, "dead_lettered": 1.0},
    )
    assert prometheus.by_label(
        'sum by (code) (stockworker_commands_total{job="stockworker", outcome="rejected"})',
        "code",
    ) == {"INSUFFICIENT_AVAILABLE": 1.0, "UNKNOWN_POSITION": 1.0}
    assert prometheus.by_label(
        'sum by (code) (stockworker_commands_total{job="stockworker", outcome="dead_lettered"})',
        "code",
    ) == {"NOT_JSON": 1.0}

    # Lag: one series per partition of the commands topic, all 0 once the worker has
    # committed past everything it was sent.
    lag_query = f'stockworker_consumer_lag{{job="stockworker", topic="{topics.commands}"}}'
    await eventually(
        "lag per partition",
        lambda: prometheus.by_label(lag_query, "partition"),
        {str(p): 0.0 for p in range(6)},
    )
    await eventually(
        "readiness exported",
        lambda: prometheus.by_label('stockworker_ready{job="stockworker"}', "job"),
        {"stockworker": 1.0},
    )

    # The repo's alert rules run on these series without an error, and the first dead
    # letter of a code fires at once.
    rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
    assert len(rules) == ALERTS.read_text().count("- alert:")
    assert {r["name"]: r["health"] for r in rules if r["health"] != "ok"} == {}

    def firing() -> set[tuple[str, str]]:
        return {
            (a["labels"]["alertname"], a["labels"].get("code", ""))
            for a in prometheus.api("alerts")["alerts"]
            if a["state"] == "firing"
        }

    await eventually(
        "dead-letter alert", lambda: ("StockworkerDeadLetters", "NOT_JSON") in firing(), True
    )

    # Every dashboard query runs; the lag and outcome panels show the same figures.
    for _, expr in dashboard_queries():
        prometheus.query(expr.replace("$__rate_interval", "1m").replace("$instance", ".*"))
    panels = dict(dashboard_queries())
    lag_panel = panels["Lag per partition"].replace("$instance", ".*")
    assert len(prometheus.query(lag_panel)) >= 6
    outcomes_query = (
        panels["Commands by outcome"]
        .replace("$instance", ".*")
        .replace("rate(", "increase(")
        .replace("$__rate_interval", "10m")
    )
    # increase() needs two scrapes of a series: the dead letter's may have had one yet.
    await eventually(
        "the outcome panel's series",
        lambda: set(prometheus.by_label(outcomes_query, "outcome")),
        {"accepted", "rejected", "duplicate", "dead_lettered"},
    )
