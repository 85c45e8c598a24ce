"""The Grafana dashboard's PromQL: every expression in it, and Grafana's variables replaced by concrete values."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "charts" / "modelrollout-operator" / "dashboards" / "modelrollout.json"
BUILTINS = {"__rate_interval": "1m", "__range": "1h", "__interval": "30s"}
_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\)$")
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def load() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """PromQL of every panel target and annotation, plus the series selectors of label_values() variables."""
    found = [node["expr"] for node in _walk(dashboard.get("panels", [])) if isinstance(node.get("expr"), str)]
    found += [a["expr"] for a in dashboard.get("annotations", {}).get("list", []) if a.get("expr")]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = _LABEL_VALUES.match(query.strip())
        if match is None:
            raise AssertionError(f"variable {variable['name']}: not a label_values() query: {query}")
        if match["selector"]:
            found.append(match["selector"])
    return found


def variables(dashboard: dict[str, Any]) -> set[str]:
    return {v["name"] for v in dashboard.get("templating", {}).get("list", [])}


def used_variables(expr: str) -> set[str]:
    return {a or b for a, b in _VARIABLE.findall(expr)}


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replaces $name and ${name} the way Grafana would with one selected value each."""
    merged = {**BUILTINS, **values}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in merged:
            raise AssertionError(f"no value for Grafana variable ${name} in {expr}")
        return merged[name]

    return _VARIABLE.sub(replace, expr)
