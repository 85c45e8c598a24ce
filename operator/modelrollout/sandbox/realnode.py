"""A real node beside the kwok nodes: a kubelet on containerd and runc, its pods in a network namespace the
sandbox creates itself.

    host (root network namespace)              namespace mro-<id> (created here)
    kubelet: registers node `real-node`,       containerd + runc (CNI runs here, so the bridge lives here)
      probes dial pod IPs                      bridge mro0, POD_NET.1/24 (CNI bridge + host-local)
    veth mroh<k>  LINK_NET.1/30   <------->    veth mron<k> LINK_NET.2/30
    route POD_NET/24 via LINK_NET.2            lo: 10.0.0.1/32, the `kubernetes` Service's ClusterIP
                                               netns proxy: 10.0.0.1:443 -> API server on host 127.0.0.1,
                                                            LINK_NET.2:<port> -> Prometheus on host 127.0.0.1

Pod IPs (POD_NET) exist only inside that namespace and behind its veth: the traffic generator, Prometheus
and the kubelet reach them over the route above, and nothing in the namespace routes anywhere else. A pod
reaches the API server as any in-cluster client does (KUBERNETES_SERVICE_HOST=10.0.0.1, the API server's
certificate names that address) and Prometheus at `prometheus_url`.

The node carries the label `type=real` and the taint `sandbox.modelrollout.io/real-node=true:NoSchedule`:
only pods that ask (see `placement()`) land there. kwok manages only the nodes annotated as its own.
Every piece needs root; `unavailable()` says what this machine lacks.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from modelrollout.sandbox import images as images_module
from modelrollout.sandbox import tools
from modelrollout.sandbox.processes import Process, SandboxError, free_port, http_ok

NODE_NAME = "real-node"
NODE_LABELS = {"type": "real", "kubernetes.io/os": "linux"}
TAINT_KEY = "sandbox.modelrollout.io/real-node"
CNI_BIN = Path("/usr/lib/cni")
CNI_PLUGINS = ("bridge", "host-local", "loopback")
HOST_BINARIES = ("containerd", "runc", "ctr", "nsenter", "ip")
KUBERNETES_SERVICE_IP = "10.0.0.1"  # the first address of the sandbox's service CIDR
COMPONENTS = ("containerd", "netns-proxy", "kubelet")
LOCK = Path("/run/modelrollout-realnode.lock")


class RealNodeUnavailable(SandboxError):
    """This machine cannot run the real node; the message says why and what to install."""


def placement() -> dict[str, Any]:
    """The pod spec fields that put a pod on the real node (and only there)."""
    return {
        "nodeSelector": {"type": NODE_LABELS["type"]},
        "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
    }


def unavailable() -> str | None:
    """Why this machine cannot run the real node, or None."""
    if os.geteuid() != 0:
        return "the real node needs root (containerd, runc, network namespaces, mounts); run as root"
    cgroups = Path("/sys/fs/cgroup")
    if not (cgroups / "memory").is_dir() and not (cgroups / "cgroup.controllers").is_file():
        return f"no cgroups mounted at {cgroups}: containers cannot run here"
    missing = [name for name in HOST_BINARIES if shutil.which(name) is None]
    missing += [str(CNI_BIN / p) for p in CNI_PLUGINS if not (CNI_BIN / p).is_file()]
    if missing:
        return (
            f"{', '.join(missing)} not found: install Debian's containerd, runc and containernetworking-plugins "
            "(`apt-get install containerd runc containernetworking-plugins`)"
        )
    if not Path("/dev/kmsg").exists():
        return "/dev/kmsg is missing: the kubelet's OOM watcher needs it"
    return None


@dataclass
class RealNodeState:
    """What `down()` needs from another process: names, addresses and directories."""

    netns: str
    index: int
    root: str
    host_veth: str
    containerd_socket: str
    runc_root: str
    kubelet_port: int
    kubelet_healthz_port: int
    prometheus_port: int

    @property
    def link_host(self) -> str:
        return f"10.213.{self.index}.1"

    @property
    def link_node(self) -> str:
        return f"10.213.{self.index}.2"

    @property
    def pod_cidr(self) -> str:
        return f"10.214.{self.index}.0/24"

    @property
    def prometheus_url(self) -> str:
        """Prometheus as a pod on the real node reaches it."""
        return f"http://{self.link_node}:{self.prometheus_port}"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SandboxError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _in_netns(netns: str, *argv: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", *argv], capture_output=True, text=True)
    if result.returncode != 0:
        raise SandboxError(f"{' '.join(argv)} in {netns} failed: {result.stderr.strip()}")
    return result


class RealNode:
    """Starts and stops the real node of one sandbox; its processes join the sandbox's process list."""

    def __init__(
        self,
        sandbox_root: Path,
        kubeconfig: Path,
        apiserver_port: int,
        prometheus_port: int,
        launch: Callable[[str, list[str], Callable[[], bool], float | None], Process],
        log: Callable[[str], None],
    ) -> None:
        self.sandbox_root = sandbox_root
        self.kubeconfig = kubeconfig
        self.apiserver_port = apiserver_port
        self.host_prometheus_port = prometheus_port
        self.launch = launch
        self.log = log
        self.state: RealNodeState | None = None
        self.images: images_module.ImageSet | None = None

    # Lifecycle -------------------------------------------------------------------------------------------
    def up(self) -> RealNodeState:
        reason = unavailable()
        if reason:
            raise RealNodeUnavailable(f"the real node cannot run on this machine: {reason}")
        kubelet = tools.binary("kubelet")
        started = time.monotonic()
        self.images = images_module.ensure_images(lambda line: self.log(line))
        root = self.sandbox_root / "real-node"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        self.state = self._network(root)
        self.log(f"  {'real-node network':<24} {self.state.netns}, pods in {self.state.pod_cidr}")
        self._start_containerd(root)
        self._import_images()
        self._start_proxy(root)
        self._start_kubelet(root, kubelet)
        self.log(f"  {'real-node':<24} Ready ({time.monotonic() - started:.1f}s)")
        return self.state

    def _network(self, root: Path) -> RealNodeState:
        ident = hashlib.sha256(str(self.sandbox_root).encode()).hexdigest()[:8]
        netns = f"mro-{ident}"
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        with LOCK.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            cleanup_network(netns, None)
            index = _free_index()
            host_veth, node_veth = f"mroh{index}", f"mron{index}"
            state = RealNodeState(
                netns=netns, index=index, root=str(root), host_veth=host_veth,
                containerd_socket=str(root / "containerd" / "containerd.sock"),
                runc_root=str(root / "runc"), kubelet_port=free_port(), kubelet_healthz_port=free_port(),
                prometheus_port=self.host_prometheus_port,
            )  # fmt: skip
            _ip("netns", "add", netns)
            _ip("link", "add", host_veth, "type", "veth", "peer", "name", node_veth)
            _ip("link", "set", node_veth, "netns", netns)
            _ip("addr", "add", f"{state.link_host}/30", "dev", host_veth)
            _ip("link", "set", host_veth, "up")
            _ip("route", "add", state.pod_cidr, "via", state.link_node, "dev", host_veth)
        for args in (
            ("addr", "add", f"{state.link_node}/30", "dev", node_veth),
            ("link", "set", node_veth, "up"),
            ("link", "set", "lo", "up"),
            ("addr", "add", f"{KUBERNETES_SERVICE_IP}/32", "dev", "lo"),
        ):
            _ip("-n", netns, *args)
        _in_netns(netns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
        (self.sandbox_root / "real-node.json").write_text(json.dumps(asdict(state)))
        return state

    def _start_containerd(self, root: Path) -> None:
        assert self.state is not None
        assert self.images is not None
        (root / "cni" / "net.d").mkdir(parents=True)
        (root / "cni" / "net.d" / "10-mro.conflist").write_text(json.dumps(self._cni_config(root)))
        config = root / "containerd" / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(self._containerd_config(root))
        socket = Path(self.state.containerd_socket)

        def answers() -> bool:
            return socket.exists() and self._ctr("version", check=False).returncode == 0

        self.launch(
            "containerd",
            ["nsenter", f"--net=/run/netns/{self.state.netns}", "containerd", f"--config={config}"],
            answers,
            60.0,
        )

    def _import_images(self) -> None:
        assert self.images is not None
        started = time.monotonic()
        self._ctr("images", "import", str(self.images.archive))
        names = ", ".join(image.name for image in self.images.for_node())
        self.log(f"  {'images':<24} {names} imported in {time.monotonic() - started:.1f}s")

    def _start_proxy(self, root: Path) -> None:
        assert self.state is not None
        import sys

        ready = root / "netns-proxy.ready"
        argv = [
            sys.executable, "-m", "modelrollout.sandbox.netns_proxy",
            f"--netns=/run/netns/{self.state.netns}",
            f"--forward={KUBERNETES_SERVICE_IP}:443=127.0.0.1:{self.apiserver_port}",
            f"--forward={self.state.link_node}:{self.state.prometheus_port}=127.0.0.1:{self.host_prometheus_port}",
            f"--ready-file={ready}",
        ]  # fmt: skip
        self.launch("netns-proxy", argv, ready.exists, 30.0)

    def _start_kubelet(self, root: Path, binary: Path) -> None:
        assert self.state is not None
        config = root / "kubelet" / "config.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(yaml.safe_dump(self._kubelet_config(root)))
        labels = ",".join(f"{k}={v}" for k, v in NODE_LABELS.items())
        argv = [
            str(binary), f"--config={config}", f"--kubeconfig={self.kubeconfig}",
            f"--root-dir={root / 'kubelet'}", f"--cert-dir={root / 'kubelet' / 'pki'}",
            f"--hostname-override={NODE_NAME}", f"--node-ip={self.state.link_host}",
            f"--node-labels={labels}", "--v=1",
        ]  # fmt: skip
        healthz = http_ok(f"http://127.0.0.1:{self.state.kubelet_healthz_port}/healthz")
        self.launch("kubelet", argv, healthz, 60.0)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = subprocess.run(
                [str(tools.binary("kubectl")), f"--kubeconfig={self.kubeconfig}", "get", "node", NODE_NAME,
                 "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'],
                capture_output=True, text=True,
            )  # fmt: skip
            if found.stdout.strip() == "True":
                return
            time.sleep(0.5)
        raise SandboxError(f"node {NODE_NAME} did not turn Ready within 60s; see {root.parent / 'logs'}")

    # Configuration -----------------------------------------------------------------------------------------
    def _cni_config(self, root: Path) -> dict[str, Any]:
        assert self.state is not None
        return {
            "cniVersion": "0.4.0",
            "name": "mro",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "mro0",
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.state.pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(root / "cni" / "ipam"),
                    },
                }
            ],
        }

    def _containerd_config(self, root: Path) -> str:
        assert self.state is not None
        assert self.images is not None
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        return f"""version = 2
root = "{root / "containerd" / "root"}"
state = "{root / "containerd" / "state"}"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{self.state.containerd_socket}"

[ttrpc]
  address = "{self.state.containerd_socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root / "containerd" / "opt"}"

[{cri}]
  sandbox_image = "{self.images.pause.ref}"
  # This host refuses a negative oom_score_adj; without this every pod sandbox fails to start.
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Pod network namespaces under the state directory (not /run/netns): clean-up unmounts them with the rest.
  netns_mounts_under_state_dir = true

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{self.state.runc_root}"

[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{root / "cni" / "net.d"}"
"""

    def _kubelet_config(self, root: Path) -> dict[str, Any]:
        assert self.state is not None
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This host has cgroup v1, which kubelet 1.35 refuses unless told otherwise.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "failSwapOn": False,
            "address": self.state.link_host,
            "port": self.state.kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.state.kubelet_healthz_port,
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "containerRuntimeEndpoint": f"unix://{self.state.containerd_socket}",
            "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
            "resolvConf": "",
            "clusterDomain": "cluster.local",
            "nodeStatusUpdateFrequency": "2s",
            "nodeStatusReportFrequency": "10s",
            "syncFrequency": "10s",
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "localStorageCapacityIsolation": False,
            "serializeImagePulls": False,
            "maxPods": 30,
            "podLogsDir": str(root / "pod-logs"),
            "volumePluginDir": str(root / "kubelet" / "volume-plugins"),
        }

    def _ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.state is not None
        result = subprocess.run(
            ["ctr", f"--address={self.state.containerd_socket}", "--namespace=k8s.io", *args],
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            raise SandboxError(f"ctr {' '.join(args[:2])} failed: {result.stderr.strip()[-2000:]}")
        return result


# Clean-up (from any process) -------------------------------------------------------------------------------
def _free_index() -> int:
    used = _ip("-o", "route", "show").stdout
    for index in range(1, 250):
        if f"10.214.{index}.0/24" not in used and f"10.213.{index}." not in used:
            return index
    raise SandboxError("no free 10.214.x.0/24 for the real node's pods")


def cleanup_network(netns: str, host_veth: str | None) -> None:
    if host_veth:
        _ip("link", "delete", host_veth, check=False)
    if Path(f"/run/netns/{netns}").exists():
        _ip("netns", "delete", netns, check=False)


def cleanup(sandbox_root: Path) -> None:
    """After the node's processes stopped: its containers, their shims, its mounts and its network."""
    saved = sandbox_root / "real-node.json"
    if not saved.is_file():
        return
    state = RealNodeState(**json.loads(saved.read_text()))
    runc_root = Path(state.runc_root) / "k8s.io"
    if runc_root.is_dir():
        listed = subprocess.run(["runc", f"--root={runc_root}", "list", "-q"], capture_output=True, text=True)
        for container in listed.stdout.split():
            subprocess.run(
                ["runc", f"--root={runc_root}", "delete", "--force", container], capture_output=True
            )
    _kill_shims(state.containerd_socket)
    _unmount_under(Path(state.root))
    cleanup_network(state.netns, state.host_veth)
    shutil.rmtree(state.root, ignore_errors=True)
    saved.unlink(missing_ok=True)


def _kill_shims(socket: str) -> None:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and socket.encode() in argv:
                os.kill(int(proc.name), 9)


def _unmount_under(root: Path) -> None:
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    targets = [line.split()[1].replace("\\040", " ") for line in mounts]
    for target in sorted((t for t in targets if t.startswith(str(root))), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)
