"""The real node's preconditions and configuration, without starting anything."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelrollout.sandbox import images, realnode


def test_says_the_node_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realnode.os, "geteuid", lambda: 1000)
    reason = realnode.unavailable()
    assert reason is not None
    assert "needs root" in reason


def test_names_what_to_install_when_containerd_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realnode.os, "geteuid", lambda: 0)
    real_which = shutil.which
    monkeypatch.setattr(
        realnode.shutil, "which", lambda name: None if name == "containerd" else real_which(name)
    )
    reason = realnode.unavailable()
    assert reason is not None
    assert "containerd" in reason
    assert "apt-get install" in reason


def test_only_pods_that_ask_land_on_the_real_node(tmp_path: Path) -> None:
    state = realnode.RealNodeState(
        netns="mro-test", index=3, root=str(tmp_path), host_veth="mroh3",
        containerd_socket=str(tmp_path / "c.sock"), runc_root=str(tmp_path / "runc"),
        kubelet_port=1, kubelet_healthz_port=2, prometheus_port=3,
    )  # fmt: skip
    node = realnode.RealNode(tmp_path, tmp_path / "kubeconfig", 1, 2, lambda *a: None, print)  # type: ignore[arg-type, return-value]
    node.state = state
    config = node._kubelet_config(tmp_path)
    taint = config["registerWithTaints"][0]
    placement = realnode.placement()
    assert placement["tolerations"] == [
        {"key": taint["key"], "operator": "Exists", "effect": taint["effect"]}
    ]
    assert placement["nodeSelector"].items() <= realnode.NODE_LABELS.items()
    assert config["failCgroupV1"] is False, "this host has cgroup v1"
    assert state.pod_cidr == "10.214.3.0/24"
    assert state.prometheus_url == "http://10.213.3.2:3"


def test_images_are_named_by_their_inputs(tmp_path: Path) -> None:
    for name in images.CONTEXT_FILES:
        (tmp_path / name).write_text(name)
    (tmp_path / "operator").mkdir()
    (tmp_path / "operator" / "a.py").write_text("x = 1\n")
    before = images.image_set(tmp_path)
    assert images.image_set(tmp_path) == before, "the same inputs give the same names"
    (tmp_path / "operator" / "a.py").write_text("x = 2\n")
    after = images.image_set(tmp_path)
    assert after.operator.ref != before.operator.ref
    assert after.model_server.ref != before.model_server.ref
    assert after.pause.ref == before.pause.ref, "the pause image does not depend on the operator's code"
    assert after.archive != before.archive
