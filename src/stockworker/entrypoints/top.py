"""`stockworker top`: a live terminal view of a worker's /metrics, without Grafana.

Polls the worker's Prometheus exposition (and its /health/ready beside it), and shows
throughput by outcome (the rate between two samples), consumer lag per partition, the
outbox's backlog and age, rejections and dead letters by code, retries and readiness.
Parsing and rendering are pure functions of the exposition text, so they are testable
without a worker.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

OUTCOMES = ("accepted", "rejected", "duplicate", "dead_lettered")
CLEAR = "\x1b[H\x1b[2J"
# At most this many partitions / codes on a line each; the rest are summed up as "+N more".
MAX_ITEMS = 12


class TopError(Exception):
    """What `stockworker top` reports in one line before it exits 1."""


@dataclass
class Snapshot:
    """The figures `top` shows, read from one scrape of /metrics."""

    taken_at: float
    commands: dict[tuple[str, str], float] = field(default_factory=dict)  # (outcome, code)
    lag: dict[tuple[str, int], float] = field(default_factory=dict)  # (topic, partition)
    retries: dict[str, float] = field(default_factory=dict)
    published: dict[str, float] = field(default_factory=dict)
    outbox_backlog: float | None = None
    outbox_oldest_age_seconds: float | None = None
    outbox_parked: float | None = None
    relay_leader: float | None = None
    batch_count: float = 0.0
    batch_seconds_sum: float = 0.0
    batch_records_sum: float = 0.0

    def outcome_total(self, outcome: str) -> float:
        return sum(v for (o, _), v in self.commands.items() if o == outcome)

    def by_code(self, outcome: str) -> dict[str, float]:
        codes: dict[str, float] = defaultdict(float)
        for (o, code), value in self.commands.items():
            if o == outcome:
                codes[code or "-"] += value
        return dict(codes)


@dataclass(frozen=True)
class Readiness:
    ready: bool | None  # None: the endpoint could not be read
    detail: str


def parse_exposition(text: str, taken_at: float) -> Snapshot:
    """One Snapshot from Prometheus text exposition; a malformed text raises TopError."""
    # Imported here: `stockworker --help` should not pay for it.
    from prometheus_client.parser import text_string_to_metric_families

    snap = Snapshot(taken_at=taken_at)
    commands: dict[tuple[str, str], float] = defaultdict(float)
    lag: dict[tuple[str, int], float] = defaultdict(float)
    retries: dict[str, float] = defaultdict(float)
    published: dict[str, float] = defaultdict(float)
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, IndexError, TypeError) as exc:
        raise TopError(f"not a Prometheus exposition: {exc}") from exc
    for family in families:
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "stockworker_commands_total":
                commands[(labels.get("outcome", ""), labels.get("code", ""))] += value
            elif name == "stockworker_consumer_lag":
                try:
                    partition = int(labels.get("partition", "-1"))
                except ValueError:
                    partition = -1
                lag[(labels.get("topic", ""), partition)] += value
            elif name == "stockworker_retries_total":
                retries[labels.get("cause", "")] += value
            elif name == "stockworker_events_published_total":
                published[labels.get("topic", "")] += value
            elif name == "stockworker_outbox_backlog":
                snap.outbox_backlog = (snap.outbox_backlog or 0.0) + value
            elif name == "stockworker_outbox_oldest_age_seconds":
                snap.outbox_oldest_age_seconds = max(snap.outbox_oldest_age_seconds or 0.0, value)
            elif name == "stockworker_outbox_parked":
                snap.outbox_parked = (snap.outbox_parked or 0.0) + value
            elif name == "stockworker_relay_leader":
                snap.relay_leader = max(snap.relay_leader or 0.0, value)
            elif name == "stockworker_batch_seconds_count":
                snap.batch_count += value
            elif name == "stockworker_batch_seconds_sum":
                snap.batch_seconds_sum += value
            elif name == "stockworker_batch_size_sum":
                snap.batch_records_sum += value
    snap.commands, snap.lag = dict(commands), dict(lag)
    snap.retries, snap.published = dict(retries), dict(published)
    return snap


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value)}{unit}"
    return f"{value:.1f}{unit}" if abs(value) >= 10 else f"{value:.2f}{unit}"


def _rate(current: float, previous: float | None, elapsed: float | None) -> str:
    if previous is None or not elapsed or elapsed <= 0:
        return "-/s"
    # A counter that went down means the worker restarted: count from zero.
    delta = current - previous if current >= previous else current
    return f"{delta / elapsed:.1f}/s"


def _get(counts: dict[str, float] | None, key: str) -> float | None:
    return None if counts is None else counts.get(key, 0.0)


def _items(pairs: Iterable[tuple[str, str]]) -> str:
    shown = list(pairs)
    if not shown:
        return "none"
    text = "  ".join(f"{k} {v}" for k, v in shown[:MAX_ITEMS])
    if len(shown) > MAX_ITEMS:
        text += f"  +{len(shown) - MAX_ITEMS} more"
    return text


def render(
    current: Snapshot,
    previous: Snapshot | None,
    readiness: Readiness | None,
    url: str,
) -> str:
    """The frame `top` prints: plain text, one figure group a line."""
    elapsed = current.taken_at - previous.taken_at if previous is not None else None
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [f"stockworker top  {url}  {stamp}"]
    if readiness is None:
        lines.append("readiness     n/a")
    elif readiness.ready is None:
        lines.append(f"readiness     unknown ({readiness.detail})")
    else:
        state = "ready" if readiness.ready else "UNREADY"
        detail = f" ({readiness.detail})" if readiness.detail else ""
        lines.append(f"readiness     {state}{detail}")

    rates, totals = [], []
    for outcome in OUTCOMES:
        now = current.outcome_total(outcome)
        before = previous.outcome_total(outcome) if previous is not None else None
        rates.append(f"{outcome} {_rate(now, before, elapsed)}")
        totals.append(f"{outcome} {_number(now)}")
    lines.append("throughput    " + "  ".join(rates))
    lines.append("commands      " + "  ".join(totals))

    if current.lag:
        total_lag = sum(current.lag.values())
        per_partition = sorted(current.lag.items(), key=lambda kv: (kv[0][0], kv[0][1]))
        one_topic = len({topic for topic, _ in current.lag}) == 1
        lines.append(f"lag           total {_number(total_lag)}")
        lines.append(
            "  partitions  "
            + _items(
                (f"p{p}" if one_topic else f"{t}[{p}]", _number(v)) for (t, p), v in per_partition
            )
        )
    else:
        lines.append("lag           n/a")

    lines.append(
        f"outbox        backlog {_number(current.outbox_backlog)}"
        f"  oldest {_number(current.outbox_oldest_age_seconds, ' s')}"
        f"  parked {_number(current.outbox_parked)}"
        + (
            "  relay " + ("leader" if current.relay_leader else "standby")
            if current.relay_leader is not None
            else ""
        )
    )
    for title, outcome in (("rejections", "rejected"), ("dead letters", "dead_lettered")):
        codes = current.by_code(outcome)
        # A code absent from the previous sample had not happened yet: it counts from 0.
        before_codes = previous.by_code(outcome) if previous is not None else None

        lines.append(
            f"{title:<14}"
            + _items(
                (
                    code,
                    f"{_number(v)} ({_rate(v, _get(before_codes, code), elapsed)})",
                )
                for code, v in sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))
                if v > 0
            )
        )
    lines.append(
        "retries       "
        + _items(
            (cause, _number(v))
            for cause, v in sorted(current.retries.items(), key=lambda kv: (-kv[1], kv[0]))
            if v > 0
        )
    )
    if previous is not None and current.batch_count > previous.batch_count:
        batches = current.batch_count - previous.batch_count
        seconds = (current.batch_seconds_sum - previous.batch_seconds_sum) / batches
        records = (current.batch_records_sum - previous.batch_records_sum) / batches
        lines.append(
            f"batches       {_number(batches)} in the interval, mean {records:.1f} records,"
            f" mean {seconds * 1000:.1f} ms"
        )
    elif current.batch_count:
        lines.append(
            f"batches       {_number(current.batch_count)} so far, mean"
            f" {current.batch_records_sum / current.batch_count:.1f} records,"
            f" mean {current.batch_seconds_sum / current.batch_count * 1000:.1f} ms"
        )
    else:
        lines.append("batches       none yet")
    return "\n".join(lines) + "\n"


def ready_url(metrics_url: str) -> str:
    """The /health/ready URL served beside a /metrics URL."""
    parts = urllib.parse.urlsplit(metrics_url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/health/ready", "", ""))


def fetch_metrics(url: str, timeout: float) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: bytes = response.read()
    except urllib.error.HTTPError as exc:
        raise TopError(f"cannot read {url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TopError(f"cannot read {url}: {reason}") from exc
    return body.decode("utf-8", errors="replace")


def fetch_readiness(url: str, timeout: float) -> Readiness:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return Readiness(True, _failed_checks(response.read()))
    except urllib.error.HTTPError as exc:
        if exc.code == 503:
            return Readiness(False, _failed_checks(exc.read()))
        return Readiness(None, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Readiness(None, str(getattr(exc, "reason", exc)))


def _failed_checks(body: bytes) -> str:
    """The checks that failed, `name: detail`, from the readiness JSON."""
    try:
        checks = json.loads(body).get("checks", {})
    except (ValueError, AttributeError):
        return ""
    if not isinstance(checks, dict):
        return ""
    failed = [
        f"{name}: {check.get('detail', 'failed')}" if check.get("detail") else name
        for name, check in sorted(checks.items())
        if isinstance(check, dict) and not check.get("ok", True)
    ]
    return "; ".join(failed)


@dataclass
class Poller:
    url: str
    timeout: float = 5.0
    clock: Callable[[], float] = time.monotonic

    def sample(self) -> Snapshot:
        text = fetch_metrics(self.url, self.timeout)
        return parse_exposition(text, self.clock())

    def readiness(self) -> Readiness:
        return fetch_readiness(ready_url(self.url), self.timeout)


def run_top(url: str, interval: float, once: bool) -> int:
    if interval <= 0:
        print("stockworker top: --interval must be above 0", file=sys.stderr)
        return 2
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        print(f"stockworker top: --url must be an http(s) URL, got {url!r}", file=sys.stderr)
        return 2
    poller = Poller(url, timeout=max(1.0, min(interval, 10.0)))
    try:
        previous = poller.sample()
        if once:
            # Two samples an interval apart, so the frame has rates too.
            time.sleep(interval)
            print(render(poller.sample(), previous, poller.readiness(), url), end="")
            return 0
        print(CLEAR + render(previous, None, poller.readiness(), url), end="", flush=True)
        while True:
            time.sleep(interval)
            current = poller.sample()
            print(CLEAR + render(current, previous, poller.readiness(), url), end="", flush=True)
            previous = current
    except TopError as exc:
        print(f"stockworker top: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=None,
        help="the worker's metrics URL (default http://127.0.0.1:$STOCKWORKER_HTTP_PORT/metrics,"
        " port 8080 unless set)",
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between samples (default 2)"
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="print one frame (rates over one interval) and exit, for scripts",
    )
