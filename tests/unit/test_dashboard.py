"""deploy/: the Prometheus configuration and alerts (checked and unit-tested with
promtool) and the Grafana dashboard, whose PromQL may only name metrics the code
exports, so that neither can drift from stockworker.adapters.metrics silently."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import stockworker.adapters.metrics as metrics_package
from stockworker.adapters.metrics import instruments
from stockworker.adapters.metrics.broker import broker_metrics_middleware

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "stockworker.json"

# Series Prometheus makes itself for every target.
PROMETHEUS_OWN = {"up"}
PROMQL_WORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "atan2",
}  # fmt: skip
# Grafana's variables, as Prometheus would see them for a check.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$instance": ".*"}


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, (
        "promtool not found: `scripts/services.sh start` installs Debian's prometheus "
        "package (or apt-get install --no-install-recommends prometheus)"
    )
    return path


def run_promtool(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


@cache
def exported_series() -> dict[str, set[str]]:
    """Per metric family the code exports, the series names Prometheus stores.

    From the instruments' registry (their types give the suffixes) and from the
    scrape-time collectors, read from the source of stockworker.adapters.metrics: every
    `...MetricFamily("stockworker_...", ...)` it builds."""
    # The worker's broker registers FastStream's own families when it is built: build
    # its middleware here, so that the list does not depend on which tests ran before.
    broker_metrics_middleware()
    families: dict[str, set[str]] = {}
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
        "summary": ("", "_sum", "_count"),
    }
    text = generate_latest(instruments.REGISTRY).decode()
    for family in text_string_to_metric_families(text):
        families[family.name] = {family.name + s for s in suffixes[family.type]}
    kinds = {"GaugeMetricFamily": "gauge", "CounterMetricFamily": "counter",
             "HistogramMetricFamily": "histogram"}  # fmt: skip
    for source in Path(metrics_package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if name in kinds and isinstance(first, ast.Constant) and isinstance(first.value, str):
                base = (
                    first.value.removesuffix("_total") if kinds[name] == "counter" else first.value
                )
                families[base] = {base + s for s in suffixes[kinds[name]]}
    return families


def allowed_names() -> set[str]:
    return set().union(*exported_series().values()) | PROMETHEUS_OWN


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of every panel."""
    queries = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            queries.append((panel["title"], target["expr"]))
    return queries


def for_prometheus(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
    return expr


def alert_expressions() -> dict[str, str]:
    """alert name -> expr, from alerts.yml (plain `expr: ...` or a folded `>-` block)."""
    alerts: dict[str, str] = {}
    lines = (PROMETHEUS / "alerts.yml").read_text().splitlines()
    name = None
    for i, line in enumerate(lines):
        if m := re.match(r"\s*- alert:\s*(\S+)", line):
            name = m.group(1)
        elif (m := re.match(r"(\s*)expr:\s*(.*)$", line)) and name:
            indent, value = len(m.group(1)), m.group(2).strip()
            if value in (">-", ">", "|", "|-"):
                block = []
                for following in lines[i + 1 :]:
                    if following.strip() and len(following) - len(following.lstrip()) <= indent:
                        break
                    block.append(following.strip())
                value = " ".join(block)
            alerts[name] = value
            name = None
    return alerts


def without_annotations(rules: str) -> str:
    """alerts.yml minus every `annotations:` block."""
    kept, skip_deeper_than = [], None
    for line in rules.splitlines(keepends=True):
        indent = len(line) - len(line.lstrip())
        if skip_deeper_than is not None:
            if not line.strip() or indent > skip_deeper_than:
                continue
            skip_deeper_than = None
        if m := re.match(r"^(\s*)annotations:\s*$", line):
            skip_deeper_than = len(m.group(1))
            continue
        kept.append(line)
    return "".join(kept)


# --- Prometheus ---------------------------------------------------------------------


def test_prometheus_configuration_is_valid() -> None:
    out = run_promtool("check", "config", "prometheus.yml", cwd=PROMETHEUS)
    assert "1 rule files found" in out


def test_alert_rules_are_valid() -> None:
    out = run_promtool("check", "rules", "alerts.yml", cwd=PROMETHEUS)
    assert f"{len(alert_expressions())} rules found" in out


def test_alerts_fire_when_and_only_when_the_tests_say(tmp_path: Path) -> None:
    (tmp_path / "alerts.yml").write_text(
        without_annotations((PROMETHEUS / "alerts.yml").read_text())
    )
    shutil.copy(PROMETHEUS / "alerts.test.yml", tmp_path)
    assert "SUCCESS" in run_promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)


def test_the_alert_unit_tests_catch_a_wrong_rule(tmp_path: Path) -> None:
    """Summing lag over workers without de-duplicating: the alert tests must fail."""
    rules = without_annotations((PROMETHEUS / "alerts.yml").read_text())
    deduplicated = (
        'sum by (topic) (max by (topic, partition) (stockworker_consumer_lag{job="stockworker"}))'
    )
    assert deduplicated in rules
    (tmp_path / "alerts.yml").write_text(
        rules.replace(deduplicated, 'sum by (topic) (stockworker_consumer_lag{job="stockworker"})')
    )
    shutil.copy(PROMETHEUS / "alerts.test.yml", tmp_path)
    done = subprocess.run(
        [promtool(), "test", "rules", "alerts.test.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "StockworkerConsumerLagHigh" in done.stdout + done.stderr


def test_every_alert_the_docs_promise_exists() -> None:
    alerts = alert_expressions()
    for name in (
        "StockworkerTargetDown",
        "StockworkerUnready",
        "StockworkerConsumerLagHigh",
        "StockworkerConsumerStalled",
        "StockworkerOutboxOld",
        "StockworkerOutboxStuck",
        "StockworkerDeadLetters",
        "StockworkerDeadLetterRateHigh",
    ):
        assert name in alerts
    assert "code" in alerts["StockworkerDeadLetters"]  # by code


@pytest.mark.parametrize("alert", sorted(alert_expressions()))
def test_alerts_only_name_exported_metrics(alert: str) -> None:
    expr = alert_expressions()[alert]
    names = metric_names(expr)
    assert names, expr
    assert names <= allowed_names(), f"{alert}: not exported: {names - allowed_names()}"


# --- Grafana ------------------------------------------------------------------------


def test_exported_series_come_from_the_code() -> None:
    """The list the dashboard is checked against is the code's, and not empty."""
    series = allowed_names()
    for name in (
        "stockworker_commands_total",
        "stockworker_batch_seconds_bucket",
        "stockworker_consumer_lag",
        "stockworker_outbox_oldest_age_seconds",
        "stockworker_ready",
    ):
        assert name in series
    assert "stockworker_commands" not in series  # a counter is stored with _total


@pytest.mark.parametrize(("title", "expr"), panel_queries())
def test_panels_only_name_exported_metrics(title: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, f"{title}: no metric in {expr}"
    assert names <= allowed_names(), f"{title}: not exported: {names - allowed_names()}"


def test_every_exported_metric_is_on_the_dashboard() -> None:
    """Every family of ours; FastStream's own (`faststream_*`, listed in operations.md's
    metric table) may be charted but need not be."""
    used = set().union(*(metric_names(expr) for _, expr in panel_queries()))
    missing = [
        family
        for family, series in exported_series().items()
        if not series & used and not family.startswith("faststream_")
    ]
    assert not missing, f"exported but on no panel: {missing}"


def test_panel_queries_parse_as_promql(tmp_path: Path) -> None:
    """Every query, variables substituted, through Prometheus's own parser (as recording
    rules: JSON is YAML)."""
    rules = [
        {"record": f"dashboard:panel_{i}", "expr": for_prometheus(expr)}
        for i, (_, expr) in enumerate(panel_queries())
    ]
    (tmp_path / "panels.yml").write_text(
        json.dumps({"groups": [{"name": "panels", "rules": rules}]})
    )
    out = run_promtool("check", "rules", "panels.yml", cwd=tmp_path)
    assert f"{len(rules)} rules found" in out


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    exprs = [expr for _, expr in panel_queries()]

    def any_expr(*parts: str) -> bool:
        return any(all(p in e for p in parts) for e in exprs)

    assert any_expr("sum by (outcome)", "stockworker_commands_total")
    assert any_expr("by (topic, partition)", "stockworker_consumer_lag")
    assert any_expr("stockworker_outbox_backlog")
    assert any_expr("stockworker_outbox_oldest_age_seconds")
    for q in ("0.5", "0.95", "0.99"):
        assert any_expr(f"histogram_quantile({q}", "stockworker_batch_seconds_bucket", "by (le)")
    assert any_expr("sum by (code)", 'outcome="dead_lettered"')
    assert any_expr("sum by (code)", 'outcome="rejected"')
    assert any_expr("stockworker_ready")


def test_dashboard_is_well_formed() -> None:
    board = dashboard()
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "instance"} <= variables
    for panel in panels:
        assert panel["gridPos"]["w"] <= 24
        for target in panel.get("targets", []):
            # Every query goes to the chosen data source, and every refId is unique.
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs))
    # Cells do not overlap.
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        g = panel["gridPos"]
        cells = {(g["x"] + dx, g["y"] + dy) for dx in range(g["w"]) for dy in range(g["h"])}
        assert not cells & taken, panel["title"]
        taken |= cells


def test_provisioning_matches_the_compose_mounts() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    provider = (GRAFANA / "provisioning" / "dashboards" / "stockworker.yml").read_text()
    datasource = (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    path = re.search(r"path:\s*(\S+)", provider)
    assert path
    assert f"./deploy/grafana/dashboards:{path.group(1)}:ro" in compose
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in compose
    assert "./deploy/prometheus:/etc/prometheus:ro" in compose
    # The dashboard's default data source is the provisioned one.
    default = next(v for v in dashboard()["templating"]["list"] if v["name"] == "datasource")
    assert f"uid: {default['current']['value']}" in datasource
    assert "url: http://prometheus:9090" in datasource
    # Compose publishes the worker's default port on no fixed host port (so that
    # `--scale worker=3` can start three), and Prometheus finds every replica by DNS.
    worker = re.search(r"\n  worker:\n((?:    .*\n|\s*\n)+)", compose)
    assert worker
    assert re.findall(r"ports: (.*)", worker.group(1)) == ['["8080"]']
    scrape = (PROMETHEUS / "prometheus.yml").read_text()
    assert re.search(r'dns_sd_configs:\s+- names: \["worker"\]\s+type: A\s+port: 8080\n', scrape)


def test_metric_names_reads_promql() -> None:
    assert metric_names(
        'sum by (code) (increase(a_total{x="y", z=~"$instance"}[10m])) > 0 '
        "unless on () b offset 10m or vector(0) and histogram_quantile(0.9, c_bucket[5m])"
    ) == {"a_total", "b", "c_bucket"}
