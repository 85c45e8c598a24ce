"""Helpers for tests that install the chart into the cluster under test and act as its ServiceAccount."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes.aio import client, config

from modelrollout.kube import Kube
from modelrollout.sandbox import tools
from tests.support.helm import CHART, KUBE_VERSION, helm

_config: Any = config  # the generated client's loaders are untyped


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    service_account: str
    install_output: str

    @property
    def user(self) -> str:
        """The username the API server gives the release's ServiceAccount."""
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def can_i(kubeconfig: Path, user: str, verb: str, resource: str, namespace: str | None) -> bool:
    """`kubectl auth can-i` as `user` (a SubjectAccessReview: the API server's own authorizer answers)."""
    scope = [f"--namespace={namespace}"] if namespace else ["--all-namespaces"]
    result = subprocess.run(
        [str(tools.binary("kubectl")), f"--kubeconfig={kubeconfig}", "auth", "can-i", verb, resource,
         f"--as={user}", *scope],
        capture_output=True,
        text=True,
    )  # fmt: skip
    return result.stdout.strip() == "yes"


def wait_authorized(
    kubeconfig: Path, user: str, namespaces: list[str] | None, allowed: bool = True, timeout: float = 15.0
) -> None:
    """Waits until the authorizer has seen new (or removed) bindings: it follows RBAC objects through a cache."""
    deadline = time.monotonic() + timeout
    scopes: list[str | None] = list(namespaces) if namespaces else [None]
    while time.monotonic() < deadline:
        if all(
            can_i(kubeconfig, user, "list", "modelrollouts.modelrollout.io", ns) is allowed for ns in scopes
        ):
            return
        time.sleep(0.2)
    raise AssertionError(f"{user}: listing ModelRollouts is still {'refused' if allowed else 'allowed'}")


@contextmanager
def installed(kubeconfig: Path, namespace: str, values: dict[str, Any], tmp_path: Path) -> Iterator[Release]:
    """`helm install` of the chart under a fresh release name, once its RBAC is in effect; uninstalled after
    (cluster-scoped objects too), once the authorizer has forgotten it."""
    name = f"mro-{secrets.token_hex(3)}"
    values_path = tmp_path / f"{name}-values.json"
    values_path.write_text(json.dumps(values))
    result = helm(
        "install", name, str(CHART), f"--namespace={namespace}", f"--values={values_path}",
        kubeconfig=kubeconfig,
    )  # fmt: skip
    release = Release(name, namespace, f"{name}-modelrollout-operator", result.stdout)
    watched = values.get("watchNamespaces") or None
    try:
        if values.get("rbac", {}).get("create", True):
            wait_authorized(kubeconfig, release.user, watched)
        yield release
    finally:
        helm("uninstall", name, f"--namespace={namespace}", "--wait", check=False, kubeconfig=kubeconfig)
        wait_authorized(kubeconfig, release.user, watched, allowed=False)


def render_for(namespace: str, values: dict[str, Any], tmp_path: Path, release: str = "mro") -> str:
    values_path = tmp_path / "values.json"
    values_path.write_text(json.dumps(values))
    return helm(
        "template",
        release,
        str(CHART),
        f"--namespace={namespace}",
        f"--kube-version={KUBE_VERSION}",
        f"--values={values_path}",
        "--include-crds",
    ).stdout


async def impersonating(kubeconfig: Path, user: str) -> Kube:
    """The operator's own Kube wrapper, authenticated as the admin but acting as `user` (impersonation)."""
    configuration = client.Configuration()
    await _config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    api: Any = client.ApiClient(configuration)
    api.set_default_header("Impersonate-User", user)
    return Kube(api)


def service_account_kubeconfig(kubeconfig: Path, token: str, target: Path) -> Path:
    """A kubeconfig for the same cluster that authenticates with a ServiceAccount token instead."""
    admin = yaml.safe_load(kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cluster = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
    target.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [
                    {"name": "operator", "context": {"cluster": cluster["name"], "user": "operator"}}
                ],
                "current-context": "operator",
            }
        )
    )
    target.chmod(0o600)
    return target
