"""The sandbox: a real Kubernetes control plane, kwok nodes and Prometheus as local processes on 127.0.0.1.

`Sandbox(root).up()` starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok (two fake
Ready nodes) and Prometheus, each logging to `<root>/logs/<component>.log`, and writes `<root>/kubeconfig`
and `<root>/state.json`. `down()` (from this or any later process) stops them all.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from modelrollout.sandbox import realnode, tools
from modelrollout.sandbox.processes import (
    Process,
    SandboxError,
    ensure_port_free,
    free_port,
    http_ok,
    start,
    wait_ready,
)
from modelrollout.sandbox.realnode import RealNode, RealNodeState

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "prometheus")
NODE_NAMES = ("kwok-node-1", "kwok-node-2")
LOAD_SCRAPE_SECONDS = 5
"""Scrape interval of the `load` job (one synthetic target with every rollout's series)."""
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
# Pod IPs handed out by kwok stay on this machine: nothing dials them, and a mistake would stay local.
POD_CIDR = "127.64.0.0/16"
SERVICE_CIDR = (
    "10.0.0.0/24"  # virtual only: kube-apiserver allocates ClusterIPs; nothing routes or dials them
)
# The Istio CRDs the operator writes or reads; the other 13 in Istio's file would only load the API server.
ISTIO_CRD_NAMES = ("virtualservices.networking.istio.io", "destinationrules.networking.istio.io")
# The one Gateway API kind the operator writes. Its parents (Gateways, or the Service clients call, as in
# Gateway API's mesh mode) are only named by it: the API server does not need their kinds to store it.
GATEWAY_API_CRD_NAMES = ("httproutes.gateway.networking.k8s.io",)
ROUTING_CRD_NAMES = (*ISTIO_CRD_NAMES, *GATEWAY_API_CRD_NAMES)


@dataclass
class SandboxState:
    root: str
    kubeconfig: str
    apiserver: str
    prometheus: str
    token: str
    ports: dict[str, int]
    pids: dict[str, list[int]]  # component -> [pid, start time in clock ticks]
    binaries: dict[str, str]
    started_at: float = field(default_factory=time.time)
    real_node: dict[str, Any] | None = None  # RealNodeState's fields once `start_real_node()` ran

    def processes(self) -> list[Process]:
        logs = Path(self.root) / "logs"
        return [
            Process(name=name, pid=pid, log=logs / f"{name}.log", started=started)
            for name, (pid, started) in self.pids.items()
        ]


class Sandbox:
    """Owns the processes of one sandbox rooted at a directory."""

    def __init__(
        self,
        root: Path | str = ".sandbox",
        ports: dict[str, int] | None = None,
        log: Callable[[str], None] = lambda _: None,
        start_timeout: float = 90.0,
    ) -> None:
        self.root = Path(root).resolve()
        self.requested_ports = dict(ports or {})
        self.log = log
        self.start_timeout = start_timeout
        self.processes: list[Process] = []
        self.state: SandboxState | None = None
        self._crds_apply: subprocess.Popen[bytes] | None = None
        self.real_node: RealNodeState | None = None

    # Paths -------------------------------------------------------------------------------------------
    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def targets_dir(self) -> Path:
        return self.root / "prometheus" / "targets"

    @property
    def load_targets_dir(self) -> Path:
        return self.root / "prometheus" / "load-targets"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    # Lifecycle ---------------------------------------------------------------------------------------
    def up(self) -> SandboxState:
        previous = load_state(self.root)
        if previous and any(p.alive() for p in previous.processes()):
            raise SandboxError(
                f"a sandbox is already running in {self.root}; run `modelrollout sandbox down` first"
            )
        binaries = {name: str(tools.binary(name)) for name in COMPONENTS}
        binaries["kubectl"] = str(tools.binary("kubectl"))
        # Missing from the cache: fail before starting anything, as for a binary.
        tools.istio_crds()
        tools.gateway_api_crds()
        ports = self._ports()
        for name in ("etcd", "kube-apiserver", "prometheus"):
            ensure_port_free(name, ports[name])
        self._fresh_dirs()
        token = secrets.token_hex(16)
        self.state = SandboxState(
            root=str(self.root),
            kubeconfig=str(self.kubeconfig),
            apiserver=f"https://127.0.0.1:{ports['kube-apiserver']}",
            prometheus=f"http://127.0.0.1:{ports['prometheus']}",
            token=token,
            ports=ports,
            pids={},
            binaries=binaries,
        )
        try:
            self._start_all(binaries, ports, token)
        except BaseException:
            self.down()
            raise
        return self.state

    def down(self) -> None:
        state = self.state or load_state(self.root)
        processes = list(reversed(self.processes)) or (list(reversed(state.processes())) if state else [])
        if self._crds_apply is not None:
            self._crds_apply.kill()
            self._crds_apply.wait()
            self._crds_apply = None
        for process in processes:
            process.stop()
        self.processes = []
        realnode.cleanup(self.root)
        self.real_node = None
        if self.state_file.exists():
            self.state_file.unlink()

    def __enter__(self) -> SandboxState:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # Internals ---------------------------------------------------------------------------------------
    def _ports(self) -> dict[str, int]:
        names = (
            "etcd",
            "etcd-peer",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
            "prometheus",
        )
        return {name: self.requested_ports.get(name) or free_port() for name in names}

    def _fresh_dirs(self) -> None:
        for sub in ("etcd", "pki", "prometheus", "logs"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
        for sub in (
            "etcd",
            "pki",
            "prometheus/data",
            "logs",
            "prometheus/targets",
            "prometheus/load-targets",
        ):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def _launch(
        self, name: str, argv: list[str], probe: Callable[[], bool], timeout: float | None = None
    ) -> Process:
        started = time.monotonic()
        process = start(name, argv, self.logs / f"{name}.log")
        self.processes.append(process)
        assert self.state is not None
        self.state.pids[name] = [process.pid, process.started]
        self._save()
        wait_ready(process, probe, timeout or self.start_timeout)
        where = f" on 127.0.0.1:{self.state.ports[name]}" if name in self.state.ports else ""
        self.log(f"  {name:<24} ready{where} ({time.monotonic() - started:.1f}s)")
        return process

    def _start_all(self, binaries: dict[str, str], ports: dict[str, int], token: str) -> None:
        pki = self.root / "pki"
        sa_key = pki / "service-account.key"
        sa_key.write_bytes(_rsa_key_pem())
        (pki / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
        etcd_url = f"http://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
        self._launch(
            "etcd",
            [
                binaries["etcd"],
                "--name=sandbox",
                f"--data-dir={self.root / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=sandbox={peer_url}",
                "--unsafe-no-fsync",
                "--log-level=warn",
                "--listen-metrics-urls=",
                "--quota-backend-bytes=4294967296",
            ],
            http_ok(f"{etcd_url}/health", expect='"health":"true"'),
        )
        apiserver = f"https://127.0.0.1:{ports['kube-apiserver']}"
        self._launch(
            "kube-apiserver",
            [
                binaries["kube-apiserver"],
                f"--etcd-servers={etcd_url}",
                f"--cert-dir={pki}",
                f"--secure-port={ports['kube-apiserver']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--authorization-mode=RBAC",
                f"--token-auth-file={pki / 'tokens.csv'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--goaway-chance=0",
                # As on clusters that enforce it: setting blockOwnerDeletion needs update on the owner's
                # finalizers, so the chart's RBAC is tested against the rule, not just `auth can-i`.
                "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
            ],
            http_ok(f"{apiserver}/readyz", token=token),
        )
        self._write_kubeconfig(apiserver, pki / "apiserver.crt", token)
        # Applying the routing CRDs takes about a second: it runs while the other components start.
        self._crds_apply = self._start_routing_crds_apply()
        kubeconfig = str(self.kubeconfig)
        self._launch(
            "kube-controller-manager",
            [
                binaries["kube-controller-manager"],
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={pki / 'apiserver.crt'}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['kube-controller-manager']}",
                f"--cert-dir={pki / 'controller-manager'}",
                "--use-service-account-credentials=false",
                # Endpoint controllers are off: kwok's loopback pod IPs are invalid endpoint addresses, and nothing
                # in the sandbox dials Services (the traffic generator routes to local processes itself).
                "--controllers=*,-node-ipam-controller,-service-lb-controller,-cloud-node-lifecycle-controller,"
                "-node-route-controller,-endpoints-controller,-endpointslice-controller,"
                "-endpointslice-mirroring-controller",
                "--concurrent-deployment-syncs=10",
                # A local control plane needs no client-side throttling: at the default 20 QPS, a hundred
                # rollouts' Deployments, ReplicaSets and pods queue for minutes.
                "--kube-api-qps=5000",
                "--kube-api-burst=10000",
                "--concurrent-replicaset-syncs=10",
                "--profiling=false",
            ],
            http_ok(f"https://127.0.0.1:{ports['kube-controller-manager']}/healthz"),
        )
        self._launch(
            "kube-scheduler",
            [
                binaries["kube-scheduler"],
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['kube-scheduler']}",
                f"--cert-dir={pki / 'scheduler'}",
                "--kube-api-qps=5000",
                "--kube-api-burst=10000",
                "--profiling=false",
            ],
            http_ok(f"https://127.0.0.1:{ports['kube-scheduler']}/healthz"),
        )
        kwok_config = self.root / "pki" / "kwok.yaml"
        kwok_config.write_text(resources.files("modelrollout.sandbox").joinpath("data/kwok.yaml").read_text())
        self._launch(
            "kwok",
            [
                binaries["kwok"],
                f"--config={kwok_config}",
                f"--kubeconfig={kubeconfig}",
                # Only its own nodes: kwok would otherwise take over the real node's pods and fake their status.
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                f"--cidr={POD_CIDR}",
                "--node-ip=127.0.0.1",
                f"--node-port={ports['kwok']}",
                f"--server-address=127.0.0.1:{ports['kwok']}",
                # Without leases kwok's nodes miss the node lifecycle controller's grace period and turn
                # NotReady (taking every pod's readiness with them) about 45s after the start.
                "--node-lease-duration-seconds=40",
            ],
            http_ok(f"http://127.0.0.1:{ports['kwok']}/healthz"),
        )
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(_nodes()))
        self.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
        self.log(f"  {'nodes':<24} {len(NODE_NAMES)} kwok nodes Ready")
        self._wait_default_service_account("default")
        self.install_routing_crds()
        self._start_prometheus(binaries["prometheus"], ports["prometheus"])

    def _start_prometheus(self, binary: str, port: int) -> None:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "scrape_configs": [
                {
                    "job_name": "sandbox",
                    "file_sd_configs": [
                        {"files": [str(self.targets_dir / "*.json")], "refresh_interval": "1s"}
                    ],
                },
                {
                    # Load tests' synthetic source: one target with every rollout's series, which takes
                    # longer to render and ingest than a 1 s interval allows.
                    "job_name": "load",
                    "scrape_interval": f"{LOAD_SCRAPE_SECONDS}s",
                    "scrape_timeout": f"{LOAD_SCRAPE_SECONDS - 1}s",
                    "file_sd_configs": [
                        {"files": [str(self.load_targets_dir / "*.json")], "refresh_interval": "1s"}
                    ],
                },
            ],
        }
        config_file = self.root / "prometheus" / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self._launch(
            "prometheus",
            [
                binary,
                f"--config.file={config_file}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--storage.tsdb.path={self.root / 'prometheus' / 'data'}",
                "--storage.tsdb.retention.time=1d",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            http_ok(f"http://127.0.0.1:{port}/-/ready"),
        )

    def _write_kubeconfig(self, server: str, ca: Path, token: str) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "sandbox", "cluster": {"server": server, "certificate-authority": str(ca)}}
            ],
            "users": [{"name": "admin", "user": {"token": token}}],
            "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "admin"}}],
            "current-context": "sandbox",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    def _wait_default_service_account(self, namespace: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.kubectl("get", "serviceaccount", "default", "-n", namespace, check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise SandboxError("kube-controller-manager did not create the default ServiceAccount within 30s")

    def _save(self) -> None:
        assert self.state is not None
        self.state_file.write_text(json.dumps(asdict(self.state), indent=2))

    # Helpers for callers ------------------------------------------------------------------------------
    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return kubectl(self.kubeconfig, *args, stdin=stdin, check=check)

    def _start_routing_crds_apply(self) -> subprocess.Popen[bytes]:
        manifest = self.root / "pki" / "routing-crds.json"
        manifest.write_text(routing_crds_manifest())
        argv = [str(tools.binary("kubectl")), f"--kubeconfig={self.kubeconfig}", "apply", "--server-side"]
        with (self.logs / "routing-crds.log").open("wb") as output:
            return subprocess.Popen([*argv, "-f", str(manifest)], stdout=output, stderr=subprocess.STDOUT)

    def install_routing_crds(self) -> None:
        """Istio's real VirtualService and DestinationRule CRDs (pinned istio.io/api module) and Gateway API's
        HTTPRoute CRD (pinned sigs.k8s.io/gateway-api module); waits for the apply `up()` started early, or
        applies them now."""
        self._crds_apply = self._crds_apply or self._start_routing_crds_apply()
        try:
            code = self._crds_apply.wait(timeout=self.start_timeout)
        except subprocess.TimeoutExpired:
            raise SandboxError(
                f"kubectl apply of the routing CRDs did not finish within {self.start_timeout:.0f}s"
            ) from None
        self._crds_apply = None
        if code != 0:
            log = (self.logs / "routing-crds.log").read_text().strip()
            raise SandboxError(
                f"kubectl apply of the routing CRDs (Istio, Gateway API) failed (exit code {code}): {log}"
            )
        for name in ROUTING_CRD_NAMES:
            wait_established(self.kubeconfig, name)
        self.log(
            f"  {'istio CRDs':<24} VirtualService, DestinationRule from istio.io/api {tools.ISTIO_API.version}"
        )
        self.log(
            f"  {'gateway API CRDs':<24} HTTPRoute from sigs.k8s.io/gateway-api {tools.GATEWAY_API.version}"
        )

    def start_real_node(self) -> RealNodeState:
        """Starts the real node (kubelet, containerd, its network namespace) once; RealNodeUnavailable says
        why when this machine cannot run containers."""
        if self.real_node is not None:
            return self.real_node
        assert self.state is not None, "the sandbox must be up"
        node = RealNode(
            self.root,
            self.kubeconfig,
            self.state.ports["kube-apiserver"],
            self.state.ports["prometheus"],
            self._launch,
            self.log,
        )
        try:
            self.real_node = node.up()
        except BaseException:
            for name in reversed(realnode.COMPONENTS):
                self.stop_component(name)
            realnode.cleanup(self.root)
            raise
        self.state.real_node = asdict(self.real_node)
        self._save()
        return self.real_node

    def stop_component(self, name: str) -> None:
        """Stops one running component (to inject a fault); `restart_prometheus` brings Prometheus back."""
        for process in list(self.processes):
            if process.name == name:
                process.stop()
                self.processes.remove(process)

    def restart_prometheus(self) -> None:
        """Starts Prometheus again on its port with its data, as after a crash or a rolling restart."""
        assert self.state is not None
        self._start_prometheus(self.state.binaries["prometheus"], self.state.ports["prometheus"])

    def add_scrape_target(
        self, name: str, address: str, labels: dict[str, str] | None = None, *, load: bool = False
    ) -> None:
        """Adds (or replaces) a Prometheus scrape target at runtime through file-based service discovery.

        `load`: scraped every LOAD_SCRAPE_SECONDS by the `load` job (a load test's synthetic source).
        """
        directory = self.load_targets_dir if load else self.targets_dir
        target = [{"targets": [address], "labels": labels or {}}]
        staging = directory / f".{name}.json.tmp"
        staging.write_text(json.dumps(target))
        staging.rename(directory / f"{name}.json")

    def remove_scrape_target(self, name: str) -> None:
        (self.targets_dir / f"{name}.json").unlink(missing_ok=True)


def kubectl(
    kubeconfig: Path | str, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Runs the pinned kubectl against a kubeconfig; with `check`, a failure raises naming the command."""
    result = subprocess.run(
        [str(tools.binary("kubectl")), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
    )
    if check and result.returncode != 0:
        raise SandboxError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def crd_documents(path: Path, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions named `names` out of a multi-document YAML file (other kinds, such as a
    ValidatingAdmissionPolicy shipped beside the CRDs, are skipped)."""
    # libyaml: 0.1 s for Istio's 0.9 MB file, pure Python 0.7 s.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    found = [
        doc
        for doc in yaml.load_all(path.read_text(), Loader=loader)
        if isinstance(doc, dict)
        and doc.get("kind") == "CustomResourceDefinition"
        and doc.get("metadata", {}).get("name") in names
    ]
    missing = set(names) - {doc["metadata"]["name"] for doc in found}
    if missing:
        raise SandboxError(f"{path} has no CustomResourceDefinition {', '.join(sorted(missing))}")
    return found


def istio_crd_documents(path: Path) -> list[dict[str, Any]]:
    """The CRDs named in ISTIO_CRD_NAMES out of Istio's multi-document CRD file."""
    return crd_documents(path, ISTIO_CRD_NAMES)


def routing_crds_manifest() -> str:
    """Istio's VirtualService and DestinationRule CRDs and Gateway API's HTTPRoute CRD from the tool cache, as
    one List to apply."""
    items = istio_crd_documents(tools.istio_crds())
    items += crd_documents(tools.gateway_api_crds(), GATEWAY_API_CRD_NAMES)
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def install_routing_crds(kubeconfig: Path | str, force_conflicts: bool = False) -> None:
    """Applies the routing CRDs (Istio's and Gateway API's) and waits until they are served."""
    args = ["apply", "--server-side", *(["--force-conflicts"] if force_conflicts else []), "-f", "-"]
    kubectl(kubeconfig, *args, stdin=routing_crds_manifest())
    for name in ROUTING_CRD_NAMES:
        wait_established(kubeconfig, name)


def wait_established(kubeconfig: Path | str, crd: str, within: float = 30.0) -> None:
    """Waits until a CRD serves its API. Polls instead of `kubectl wait`, which fails outright when asked
    right after the apply, before the CRD has any condition to wait on."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = kubectl(
            kubeconfig,
            "get",
            "crd",
            crd,
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Established")].status}',
            check=False,
        )
        if found.stdout.strip() == "True":
            return
        time.sleep(0.1)
    raise SandboxError(f"CustomResourceDefinition {crd} was not Established within {within:.0f}s")


def load_state(root: Path | str) -> SandboxState | None:
    path = Path(root).resolve() / "state.json"
    if not path.is_file():
        return None
    return SandboxState(**json.loads(path.read_text()))


def status(root: Path | str) -> dict[str, str]:
    state = load_state(root)
    if state is None:
        return {}
    return {p.name: ("running" if p.alive() else "stopped") for p in state.processes()}


def _nodes() -> list[dict[str, Any]]:
    capacity = {"cpu": "256", "memory": "1Ti", "pods": "2000"}  # room for a 1,000-rollout load test
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "type": "kwok",
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "topology.kubernetes.io/zone": f"sandbox-{index}",
                },
            },
            "status": {
                "allocatable": capacity,
                "capacity": capacity,
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            },
        }
        for index, name in enumerate(NODE_NAMES, start=1)
    ]


def _rsa_key_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
