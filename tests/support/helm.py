"""Runs the pinned helm binary on the operator's chart: lint, template (rendered objects as dicts), install."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from modelrollout.sandbox import tools

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "modelrollout-operator"
# Offline, `helm template` assumes an old Kubernetes; the chart's kubeVersion constraint needs the real one.
KUBE_VERSION = tools.KUBERNETES_VERSION


def helm(*args: str, check: bool = True, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [str(tools.binary("helm")), *args]
    if kubeconfig is not None:
        argv.append(f"--kubeconfig={kubeconfig}")
    with tempfile.TemporaryDirectory(prefix="helm-home-") as home:
        # Keep helm's caches and repository config out of the user's home.
        env = {
            "HELM_CACHE_HOME": f"{home}/cache",
            "HELM_CONFIG_HOME": f"{home}/config",
            "HELM_DATA_HOME": f"{home}/data",
            "PATH": "/usr/bin:/bin",
        }
        result = subprocess.run(argv, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def values_file(values: dict[str, Any], directory: Path) -> Path:
    path = directory / "values.json"  # JSON is YAML; no quoting surprises
    path.write_text(json.dumps(values))
    return path


def template_text(
    values: dict[str, Any] | None = None,
    *,
    release: str = "mro",
    namespace: str = "modelrollout-system",
    extra: Sequence[str] = (),
) -> str:
    with tempfile.TemporaryDirectory(prefix="chart-values-") as tmp:
        args = [
            "template",
            release,
            str(CHART),
            f"--namespace={namespace}",
            f"--kube-version={KUBE_VERSION}",
            f"--values={values_file(values or {}, Path(tmp))}",
            *extra,
        ]
        return helm(*args).stdout


def render(
    values: dict[str, Any] | None = None,
    *,
    release: str = "mro",
    namespace: str = "modelrollout-system",
    include_crds: bool = False,
) -> list[dict[str, Any]]:
    """The chart's objects for these values (CRDs from crds/ only when asked, as `helm template` does)."""
    text = template_text(
        values, release=release, namespace=namespace, extra=["--include-crds"] if include_crds else []
    )
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]
