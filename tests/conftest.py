"""Shared fixtures: one sandbox per test session, a fresh namespace per test, async Kubernetes clients.

Integration tests run against the local sandbox, or against any cluster named by MODELROLLOUT_TEST_KUBECONFIG
(for example a kind cluster where Docker exists); then Prometheus-backed tests need MODELROLLOUT_TEST_PROMETHEUS.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from kubernetes.aio import client, config

from modelrollout.sandbox.cluster import Sandbox, install_routing_crds, kubectl, wait_established
from modelrollout.sandbox.processes import PORT_RANGE_ENV

REPO = Path(__file__).resolve().parents[1]
PORT_BLOCK_START, PORT_BLOCK_SIZE = 20000, 1500
UNIT_TIMEOUT = 60.0
"""Seconds a unit test may take (the slowest takes a few); a hang fails it, instead of the session's 600 s."""
CRD_FILE = REPO / "crds" / "modelrollout.yaml"

# Hypothesis' too_slow health check times input generation; on the shared 2-core machine under a parallel
# suite it fails property tests whose inputs are fine. The properties and example counts stay as written.
settings.register_profile("shared-machine", suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("shared-machine")


@dataclass
class Cluster:
    """What a test needs to reach the cluster under test."""

    kubeconfig: Path
    prometheus: str | None
    sandbox: Sandbox | None

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return kubectl(self.kubeconfig, *args, stdin=stdin, check=check)

    def require_sandbox(self) -> Sandbox:
        if self.sandbox is None:
            raise AssertionError(
                "this test drives local processes and needs the sandbox, not an external cluster"
            )
        return self.sandbox


def pytest_configure(config: pytest.Config) -> None:
    """Each parallel worker (pytest-xdist) picks its sandbox's ports from its own block, so two sandboxes
    starting at once never race for one port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and PORT_RANGE_ENV not in os.environ:
        index = int(worker[2:])
        low = PORT_BLOCK_START + index * PORT_BLOCK_SIZE
        os.environ[PORT_RANGE_ENV] = f"{low}-{low + PORT_BLOCK_SIZE}"


SERIAL_LANES = ("e2e",)
"""Test folders whose tests run one at a time on one worker: an e2e scenario judges latency, and two of them
on two cores would slow each other's model servers into a false rollback."""
SHARED_WORKER_MODULES = ("tests/integration/api/test_no_crash.py",)
"""Modules whose tests read what an earlier test of the module counted, so they must run in one process."""


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Every test is its own unit of work, except that each serial lane is one unit (one worker, in order).

    pytest-xdist's own `loadgroup` cannot do this with pytest 9 (it renames node ids, which pytest 9 derives).
    """
    from xdist.scheduler import LoadScopeScheduling

    class Lanes(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            lane = nodeid.split("/")[1] if nodeid.startswith("tests/") else ""
            module = nodeid.split("::")[0]
            if module in SHARED_WORKER_MODULES:
                return module
            return lane if lane in SERIAL_LANES else nodeid

    return Lanes(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Serial lanes go last: the parallel tests are mostly done before the first scenario judges latency."""
    items.sort(key=lambda item: any(item.path.is_relative_to(REPO / "tests" / lane) for lane in SERIAL_LANES))


def pytest_itemcollected(item: pytest.Item) -> None:
    if item.path.is_relative_to(REPO / "tests" / "unit") and item.get_closest_marker("timeout") is None:
        item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT))


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    external = os.environ.get("MODELROLLOUT_TEST_KUBECONFIG")
    if external:
        found = Cluster(Path(external), os.environ.get("MODELROLLOUT_TEST_PROMETHEUS"), None)
        install_routing_crds(found.kubeconfig, force_conflicts=True)
        found.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
        yield found
        return
    # One directory per session, so two sessions on one machine never share a control plane.
    sandbox = Sandbox(REPO / ".sandbox" / f"pytest-{os.getpid()}")
    state = sandbox.up()
    try:
        found = Cluster(Path(state.kubeconfig), state.prometheus, sandbox)
        found.kubectl("apply", "--server-side", "-f", str(CRD_FILE))
        wait_established(found.kubeconfig, "modelrollouts.modelrollout.io")
        yield found
    finally:
        sandbox.down()
        if not os.environ.get("MODELROLLOUT_KEEP_SANDBOX"):
            shutil.rmtree(sandbox.root, ignore_errors=True)


@pytest.fixture
def prometheus_url(cluster: Cluster) -> str:
    if cluster.prometheus is None:
        raise AssertionError(
            "no Prometheus: set MODELROLLOUT_TEST_PROMETHEUS with MODELROLLOUT_TEST_KUBECONFIG"
        )
    return cluster.prometheus


@pytest.fixture(scope="session")
async def api_client(cluster: Cluster) -> AsyncIterator[client.ApiClient]:
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=configuration)
    async with client.ApiClient(configuration) as api:
        yield api


@dataclass
class NamespacedApi:
    """An async client bound to the test's namespace."""

    api: client.ApiClient
    namespace: str

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)


@pytest.fixture
async def namespace(api_client: client.ApiClient) -> AsyncIterator[str]:
    name = f"t-{secrets.token_hex(4)}"
    core = client.CoreV1Api(api_client)
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    for _ in range(150):  # pods are refused until the controller-manager creates the default ServiceAccount
        accounts = await core.list_namespaced_service_account(name)
        if any(a.metadata.name == "default" for a in accounts.items):
            break
        await asyncio.sleep(0.1)
    yield name
    await core.delete_namespace(name)


@pytest.fixture
async def kube(api_client: client.ApiClient, namespace: str) -> NamespacedApi:
    return NamespacedApi(api_client, namespace)
