"""The Grafana dashboard: only the operator's real metric names and labels, only defined variables."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from modelrollout.controller.metrics import OperatorMetrics
from tests.support.dashboard import BUILTINS, expressions, load, used_variables, variables

_METRIC = re.compile(r"\b(modelrollout_[a-z_]+)\b")
_SELECTOR = re.compile(r"\b(modelrollout_[a-z_]+)\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
# Labels a scrape adds to every series (the ServiceMonitor honours the operator's own namespace label).
TARGET_LABELS = {"job", "instance"}


def exposed_series() -> dict[str, set[str]]:
    """Every series name the operator exposes, with its label names (one child per metric is enough)."""
    metrics = OperatorMetrics(CollectorRegistry())
    for collector in vars(metrics).values():
        names = getattr(collector, "_labelnames", None)
        if names:  # unlabelled metrics expose their series already
            collector.labels(*(["x"] * len(names)))
    series: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def test_the_dashboard_is_valid_json_with_unique_panel_ids_and_a_datasource_variable() -> None:
    dashboard = load()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert "datasource" in variables(dashboard)
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"], panel["title"]


def test_every_metric_the_dashboard_reads_is_one_the_operator_exposes_with_those_labels() -> None:
    series = exposed_series()
    exprs = expressions(load())
    assert len(exprs) > 20
    for expr in exprs:
        names = set(_METRIC.findall(expr))
        assert names, f"reads no operator metric: {expr}"
        unknown = names - set(series)
        assert not unknown, f"{expr}: the operator exposes no {sorted(unknown)}"
        for name, matchers in _SELECTOR.findall(expr):
            labels = set(_MATCHER_LABEL.findall(matchers))
            assert labels <= series[name] | TARGET_LABELS, f"{expr}: {name} has no {labels - series[name]}"
        available = set().union(*(series[n] for n in names)) | TARGET_LABELS
        for grouping in _GROUPING.findall(expr):
            labels = {label.strip() for label in grouping.split(",") if label.strip()}
            assert labels <= available, f"{expr}: grouping by {labels - available} that no series carries"


def test_every_metric_family_of_the_operator_is_on_the_dashboard() -> None:
    read = set().union(*(set(_METRIC.findall(e)) for e in expressions(load())))
    families = {re.sub(r"_(bucket|sum|count|created|total)$", "", name) for name in exposed_series()}
    shown = {re.sub(r"_(bucket|sum|count|created|total)$", "", name) for name in read}
    assert families - shown == set()


def test_only_defined_variables_are_used() -> None:
    dashboard = load()
    defined = variables(dashboard) | set(BUILTINS)
    for expr in expressions(dashboard):
        assert used_variables(expr) <= defined, expr
