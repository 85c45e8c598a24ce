"""What other projects' own code concludes about an object: kstatus and Argo CD, run by the pinned `verdicts`
helper (tools/verdicts, built by `make tools` from sigs.k8s.io/cli-utils and github.com/argoproj/argo-cd/v3).

Every call takes many objects at once (one process per call). Objects cross as JSON and are decoded by the
API machinery, exactly as a live object read from the API server.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelrollout.sandbox.tools import binary

REPO = Path(__file__).resolve().parents[2]
ARGOCD_DIR = REPO / "charts" / "modelrollout-operator" / "argocd"
HEALTH_SCRIPT = ARGOCD_DIR / "health.lua"
ACTIONS_DIR = ARGOCD_DIR / "actions"
ARGOCD_CM = REPO / "examples" / "argocd" / "argocd-cm.yaml"
"""The argocd-cm example users merge: the health check and the actions as Argo CD reads them."""


class UpstreamError(RuntimeError):
    """The upstream code could not compute an answer for an object (its message says why)."""


@dataclass(frozen=True)
class Verdict:
    status: str
    message: str


@dataclass(frozen=True)
class Action:
    name: str
    disabled: bool


def _run(args: Sequence[str], objects: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(binary("verdicts")), *args],
        input=json.dumps(list(objects)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise UpstreamError(f"verdicts {' '.join(args)} failed: {result.stderr.strip()}")
    answers: list[dict[str, Any]] = json.loads(result.stdout)
    return answers


def _answer(answer: Mapping[str, Any]) -> Mapping[str, Any]:
    if "error" in answer:
        raise UpstreamError(str(answer["error"]))
    return answer


def kstatus_all(objects: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    """kstatus' `status.Compute` (what Flux, kpt and `cli-utils apply --wait` read) for each object."""
    return [Verdict(a["status"], a["message"]) for a in map(_answer, _run(["kstatus"], objects))]


def kstatus(obj: Mapping[str, Any]) -> Verdict:
    return kstatus_all([obj])[0]


def argocd_health_all(objects: Sequence[Mapping[str, Any]], argocd_cm: Path = ARGOCD_CM) -> list[Verdict]:
    """Argo CD's health of each live object, computed as its application controller does, with the resource
    customizations of `argocd_cm` read by Argo CD's settings manager."""
    answers = _run(["argocd-health", "--argocd-cm", str(argocd_cm)], objects)
    return [Verdict(a["status"], a["message"]) for a in map(_answer, answers)]


def argocd_health(obj: Mapping[str, Any], argocd_cm: Path = ARGOCD_CM) -> Verdict:
    return argocd_health_all([obj], argocd_cm)[0]


def argocd_actions_all(
    objects: Sequence[Mapping[str, Any]], argocd_cm: Path = ARGOCD_CM
) -> list[dict[str, Action]]:
    """The resource actions Argo CD offers for each live object (its action discovery), by name."""
    answers = _run(["argocd-actions", "--argocd-cm", str(argocd_cm)], objects)
    return [
        {a["name"]: Action(a["name"], bool(a["disabled"])) for a in _answer(answer)["actions"]}
        for answer in answers
    ]


def argocd_actions(obj: Mapping[str, Any], argocd_cm: Path = ARGOCD_CM) -> dict[str, Action]:
    return argocd_actions_all([obj], argocd_cm)[0]


def argocd_run_action(
    obj: Mapping[str, Any], action: str, argocd_cm: Path = ARGOCD_CM
) -> dict[str, Any] | None:
    """Runs an action through Argo CD's action runner; returns the JSON merge patch Argo CD's API server would
    send for it (None when the action changes nothing). Raises UpstreamError when Argo CD would refuse it."""
    [answer] = _run(["argocd-run", "--argocd-cm", str(argocd_cm), "--action", action], [obj])
    operations = _answer(answer)["operations"]
    if len(operations) != 1 or operations[0]["operation"] != "patch":
        raise UpstreamError(f"action {action}: expected one patch of the object, got {operations}")
    patch: dict[str, Any] | None = operations[0].get("patch")
    return patch


def config_map_with(data: Mapping[str, str], directory: Path) -> Path:
    """An argocd-cm with these keys (for trying a script other than the shipped one)."""
    path = directory / "argocd-cm.yaml"
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        # Argo CD reads only a ConfigMap with this label.
        "metadata": {
            "name": "argocd-cm",
            "namespace": "argocd",
            "labels": {"app.kubernetes.io/part-of": "argocd"},
        },
        "data": dict(data),
    }
    path.write_text(json.dumps(body))
    return path


@dataclass(frozen=True)
class WaitResult:
    status: str
    message: str
    done: bool
    seconds: float


def kstatus_wait_command(
    kubeconfig: Path, namespace: str, name: str, *, timeout: float, fail_fast: bool, interval: float = 0.5
) -> list[str]:
    """`verdicts wait` on a ModelRollout: cli-utils' status poller and aggregator, as Flux's
    kustomize-controller waits on a Kustomization's objects (`wait: true`)."""
    command = [
        str(binary("verdicts")),
        "wait",
        f"--kubeconfig={kubeconfig}",
        f"--namespace={namespace}",
        "--group=modelrollout.io",
        "--kind=ModelRollout",
        f"--name={name}",
        f"--timeout={timeout}s",
        f"--interval={interval}s",
    ]
    return [*command, "--fail-fast"] if fail_fast else command


def wait_result(stdout: str) -> WaitResult:
    answer = json.loads(stdout.strip().splitlines()[-1])
    return WaitResult(answer["status"], answer["message"], bool(answer["done"]), float(answer["seconds"]))
