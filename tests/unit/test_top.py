"""`stockworker top`: parsing the exposition, rendering a frame, and the command itself
against a small local HTTP server standing in for the worker's /metrics and /health."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from stockworker.entrypoints import cli
from stockworker.entrypoints.top import (
    Readiness,
    TopError,
    fetch_readiness,
    parse_exposition,
    ready_url,
    render,
)


def exposition(
    accepted: int,
    rejected: dict[str, int],
    dead: dict[str, int],
    lag: dict[int, int],
    backlog: int = 0,
    oldest: float = 0.0,
    batches: list[tuple[int, float]] | None = None,
) -> str:
    """Text exposition as prometheus_client writes it, with the shared metric names."""
    registry = CollectorRegistry()
    commands = Counter("stockworker_commands", "c", ["type", "outcome", "code"], registry=registry)
    if accepted:
        commands.labels("ReceivePOItem", "accepted", "").inc(accepted)
    for code, n in rejected.items():
        commands.labels("PickStock", "rejected", code).inc(n)
    for code, n in dead.items():
        commands.labels("unknown", "dead_lettered", code).inc(n)
    gauge = Gauge("stockworker_consumer_lag", "l", ["topic", "partition"], registry=registry)
    for partition, value in lag.items():
        gauge.labels("stock.commands.v1", str(partition)).set(value)
    Gauge("stockworker_outbox_backlog", "b", registry=registry).set(backlog)
    Gauge("stockworker_outbox_oldest_age_seconds", "a", registry=registry).set(oldest)
    Gauge("stockworker_outbox_parked", "p", registry=registry).set(0)
    Gauge("stockworker_relay_leader", "r", registry=registry).set(1)
    Counter("stockworker_retries", "r", ["cause"], registry=registry).labels("database").inc(2)
    size = Histogram("stockworker_batch_size", "s", registry=registry, buckets=(1, 10, 100))
    seconds = Histogram("stockworker_batch_seconds", "t", registry=registry)
    for records, took in batches or []:
        size.observe(records)
        seconds.observe(took)
    return generate_latest(registry).decode()


def test_parse_reads_every_figure_top_shows() -> None:
    text = exposition(
        accepted=7,
        rejected={"INSUFFICIENT_AVAILABLE": 3, "VERSION_CONFLICT": 1},
        dead={"NOT_JSON": 2},
        lag={0: 5, 1: 0, 2: 11},
        backlog=4,
        oldest=2.5,
        batches=[(10, 0.02), (30, 0.04)],
    )
    snap = parse_exposition(text, taken_at=100.0)
    assert snap.outcome_total("accepted") == 7
    assert snap.outcome_total("rejected") == 4
    assert snap.by_code("rejected") == {"INSUFFICIENT_AVAILABLE": 3, "VERSION_CONFLICT": 1}
    assert snap.by_code("dead_lettered") == {"NOT_JSON": 2}
    assert snap.lag == {("stock.commands.v1", 0): 5, ("stock.commands.v1", 1): 0,
                        ("stock.commands.v1", 2): 11}  # fmt: skip
    assert (snap.outbox_backlog, snap.outbox_oldest_age_seconds, snap.outbox_parked) == (4, 2.5, 0)
    assert snap.relay_leader == 1
    assert snap.retries == {"database": 2}
    assert snap.batch_count == 2
    assert snap.batch_records_sum == 40
    assert snap.batch_seconds_sum == pytest.approx(0.06)


def test_frame_shows_rates_between_two_samples_and_codes() -> None:
    before = parse_exposition(
        exposition(10, {"INSUFFICIENT_AVAILABLE": 1}, {}, {0: 50, 1: 20}), taken_at=0.0
    )
    after = parse_exposition(
        exposition(
            30,
            {"INSUFFICIENT_AVAILABLE": 5},
            {"NOT_JSON": 2},
            {0: 3, 1: 0},
            backlog=12,
            oldest=0.75,
            batches=[(20, 0.01), (4, 0.03)],
        ),
        taken_at=2.0,
    )
    frame = render(after, before, Readiness(True, ""), "http://w:8080/metrics")
    lines = {line.split()[0]: line for line in frame.splitlines() if line.strip()}
    # 20 accepted and 4 rejected in 2 s.
    assert "accepted 10.0/s" in lines["throughput"]
    assert "rejected 2.0/s" in lines["throughput"]
    assert "dead_lettered 1.0/s" in lines["throughput"]
    assert "accepted 30" in lines["commands"]
    assert "total 3" in lines["lag"]
    assert "p0 3  p1 0" in frame
    assert "backlog 12  oldest 0.75 s  parked 0  relay leader" in lines["outbox"]
    assert "INSUFFICIENT_AVAILABLE 5 (2.0/s)" in lines["rejections"]
    assert "NOT_JSON 2 (1.0/s)" in lines["dead"]
    assert "retries       database 2" in frame
    assert "batches       2 in the interval, mean 12.0 records, mean 20.0 ms" in frame
    assert "readiness     ready" in frame


def test_first_frame_has_no_rates_and_says_what_is_missing() -> None:
    snap = parse_exposition("# nothing from stockworker yet\n", taken_at=1.0)
    frame = render(snap, None, None, "http://w/metrics")
    assert "accepted -/s" in frame
    assert "lag           n/a" in frame
    assert "backlog n/a  oldest n/a  parked n/a" in frame
    assert "rejections    none" in frame
    assert "batches       none yet" in frame
    assert "readiness     n/a" in frame


def test_a_restarted_worker_counts_from_zero_not_negative() -> None:
    before = parse_exposition(exposition(100, {}, {}, {}), taken_at=0.0)
    after = parse_exposition(exposition(6, {}, {}, {}), taken_at=3.0)
    assert "accepted 2.0/s" in render(after, before, None, "u")


def test_unreadiness_names_the_failed_checks() -> None:
    frame = render(
        parse_exposition("", 0.0),
        None,
        Readiness(False, "database: connection refused"),
        "u",
    )
    assert "readiness     UNREADY (database: connection refused)" in frame


def test_malformed_exposition_is_a_top_error() -> None:
    with pytest.raises(TopError, match="not a Prometheus exposition"):
        parse_exposition("stockworker_commands_total{outcome=accepted 1\n", 0.0)


def test_ready_url_is_beside_the_metrics_url() -> None:
    assert ready_url("http://10.0.0.5:9100/metrics") == "http://10.0.0.5:9100/health/ready"


class _Worker(BaseHTTPRequestHandler):
    metrics = ""
    ready_status = 200
    ready_body: ClassVar[dict[str, object]] = {}

    def do_GET(self) -> None:
        if self.path == "/metrics":
            status, body, kind = 200, self.metrics.encode(), "text/plain; version=0.0.4"
        elif self.path == "/health/ready":
            status, body, kind = self.ready_status, json.dumps(self.ready_body).encode(), "json"
        else:
            status, body, kind = 404, b"", "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_worker() -> Iterator[tuple[str, type[_Worker]]]:
    handler = type("Handler", (_Worker,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_once_prints_one_frame_from_the_url(
    fake_worker: tuple[str, type[_Worker]], capsys: pytest.CaptureFixture[str]
) -> None:
    base, handler = fake_worker
    handler.metrics = exposition(3, {"VERSION_CONFLICT": 1}, {}, {0: 9})
    handler.ready_status = 503
    handler.ready_body = {
        "status": "unready",
        "checks": {"database": {"ok": False, "detail": "timeout"}, "kafka": {"ok": True}},
    }
    code = cli.main(["top", "--url", f"{base}/metrics", "--once", "--interval", "0.05"])
    out = capsys.readouterr().out
    assert code == 0
    assert "\x1b[" not in out  # --once is for scripts: no screen clearing
    assert "commands      accepted 3  rejected 1" in out
    assert "VERSION_CONFLICT 1" in out
    assert "lag           total 9" in out
    assert "readiness     UNREADY (database: timeout)" in out


def test_readiness_ok_and_unreachable(fake_worker: tuple[str, type[_Worker]]) -> None:
    base, handler = fake_worker
    handler.ready_status = 200
    handler.ready_body = {"status": "ready", "checks": {"database": {"ok": True}}}
    assert fetch_readiness(f"{base}/health/ready", 2.0) == Readiness(True, "")
    missing = fetch_readiness(f"{base}/nowhere", 2.0)
    assert missing.ready is None and "404" in missing.detail


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_unreachable_url_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/metrics"
    assert cli.main(["top", "--url", url, "--once"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"stockworker top: cannot read {url}:")


def test_not_metrics_is_one_line_and_exit_1(
    fake_worker: tuple[str, type[_Worker]], capsys: pytest.CaptureFixture[str]
) -> None:
    base, _ = fake_worker
    assert cli.main(["top", "--url", f"{base}/elsewhere", "--once"]) == 1
    assert "HTTP 404" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "file:///etc/passwd"], "--url must be an http(s) URL"),
        (["--interval", "0"], "--interval must be above 0"),
    ],
)
def test_bad_arguments_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["top", "--once", *args]) == 2
    assert message in capsys.readouterr().err
