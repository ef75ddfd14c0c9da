"""The shipped alert rules and Grafana dashboard: valid, tested with promtool, and only about real metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from runner.metrics import RunnerMetrics
from tests.monitoring.conftest import exercise

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "monitoring" / "prometheus"
DASHBOARD = ROOT / "monitoring" / "grafana" / "rata.json"
NAME = re.compile(r"\brata_[a-zA-Z0-9_]*[a-zA-Z0-9]")


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: run `make promtool` (installs Debian's prometheus package)")
    return found


def _exported_sample_names() -> set[str]:
    metrics = RunnerMetrics()
    exercise(metrics)
    text = metrics.exposition().decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def _dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    queries += [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    return queries


def _alert_rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_accepts_the_alert_rules():
    checked = subprocess.run(
        [_promtool(), "check", "rules", str(PROMETHEUS / "alerts.yml")], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_alert_rules())} rules found" in checked.stdout


def test_the_alert_rules_pass_their_promtool_unit_tests():
    tested = subprocess.run(
        [_promtool(), "test", "rules", "alerts_test.yml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_issues_alerts_exist_and_each_has_a_unit_test():
    names = {rule["alert"] for rule in _alert_rules()}
    assert {
        "RataFeedStale",
        "RataTradingHalted",
        "RataLossLimitNear",
        "RataEventLoopLag",
        "RataDatabaseErrors",
    } <= names
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert tested == names
    assert all(rule["labels"]["severity"] in ("warning", "critical") for rule in _alert_rules())


def test_every_metric_the_alerts_use_is_exported():
    exported = _exported_sample_names()
    used = {name for rule in _alert_rules() for name in NAME.findall(rule["expr"])}
    assert used
    assert used <= exported, sorted(used - exported)


def test_every_metric_the_dashboard_uses_is_exported():
    exported = _exported_sample_names()
    used = {name for query in _dashboard_queries() for name in NAME.findall(query)}
    assert len(used) >= 20
    assert used <= exported, sorted(used - exported)


def test_the_dashboard_is_well_formed():
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "rata-runner"
    assert board["schemaVersion"] >= 36
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"]
            assert all(t["expr"].strip() for t in panel["targets"])
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert all('instance=~"$instance"' in query for query in _dashboard_queries()[:-1])
