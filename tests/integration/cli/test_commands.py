"""The plugin's commands as real subprocesses against the sandbox's API server, without an operator.

Annotation commands need no operator: the test checks what they write. Status is written here through the
status subresource, as the operator would, to drive `status` and `undo`.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from kubernetes.aio import client

from modelrollout.api import commands
from modelrollout.kube import connect
from modelrollout.sandbox import tools
from tests.support.rollouts import body as world_body
from tests.support.rollouts import rolling_world

from .plugin import BIN, COMMAND_ID, create_rollout, plugin, read_rollout, rollout_spec

if TYPE_CHECKING:
    from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration
PROMETHEUS = "http://127.0.0.1:9090"  # never dialled: no operator runs in these tests


def notes(found: dict[str, Any]) -> dict[str, str]:
    return dict(found["metadata"].get("annotations") or {})


async def write_status(cluster: Cluster, namespace: str, name: str, status: dict[str, Any]) -> None:
    kube = await connect(str(cluster.kubeconfig))
    try:
        await kube.patch_rollout_status(namespace, name, status)
    finally:
        await kube.close()


async def test_pause_resume_promote_and_abort_write_the_documented_annotations(
    cluster: Cluster, kube: NamespacedApi
) -> None:
    ns = kube.namespace
    await create_rollout(kube.api, ns, "recommender", rollout_spec("v1", PROMETHEUS))

    paused = await plugin(cluster.kubeconfig, ns, "pause", "recommender")
    assert paused.code == 0, paused
    assert paused.out == (
        f'pause requested: modelrollout "recommender" in namespace "{ns}" holds its traffic where it is until '
        "resumed\n"
    )
    assert paused.err == (
        f'warning: modelrollout "recommender" in namespace "{ns}" has no status yet: is the operator running?\n'
    )
    assert notes(await read_rollout(kube.api, ns, "recommender")) == {commands.PAUSED: "true"}

    resumed = await plugin(cluster.kubeconfig, ns, "resume", "recommender")
    assert resumed.code == 0, resumed
    assert commands.PAUSED not in notes(await read_rollout(kube.api, ns, "recommender"))

    promoted = await plugin(cluster.kubeconfig, ns, "promote", "recommender")
    assert promoted.code == 0, promoted
    value = notes(await read_rollout(kube.api, ns, "recommender"))[commands.PROMOTE]
    assert re.fullmatch(COMMAND_ID, value)
    assert f"(id {value})" in promoted.out

    full = await plugin(cluster.kubeconfig, ns, "promote", "recommender", "--full")
    assert full.code == 0, full
    value = notes(await read_rollout(kube.api, ns, "recommender"))[commands.PROMOTE]
    assert re.fullmatch(f"{commands.FULL_PREFIX}{COMMAND_ID}", value)

    aborted = await plugin(cluster.kubeconfig, ns, "abort", "recommender")
    assert aborted.code == 0, aborted
    final = notes(await read_rollout(kube.api, ns, "recommender"))
    assert re.fullmatch(COMMAND_ID, final[commands.ABORT])
    assert set(final) == {commands.PROMOTE, commands.ABORT}


async def test_status_prints_the_stored_object_and_renders_it(cluster: Cluster, kube: NamespacedApi) -> None:
    ns = kube.namespace
    world = rolling_world()
    world.run_until(lambda w: w.status.phase == "Canary")
    await create_rollout(kube.api, ns, "recommender", world.spec.wire())
    await write_status(cluster, ns, "recommender", world.status.wire())
    stored = await read_rollout(kube.api, ns, "recommender")

    as_json = await plugin(cluster.kubeconfig, ns, "status", "recommender", "-o", "json")
    assert as_json.code == 0, as_json
    assert json.loads(as_json.out) == stored
    as_yaml = await plugin(cluster.kubeconfig, ns, "status", "recommender", "-o", "yaml")
    assert yaml.safe_load(as_yaml.out) == stored

    shown = await plugin(cluster.kubeconfig, ns, "status", "recommender")
    assert shown.code == 0, shown
    lines = shown.out.splitlines()
    assert lines[0] == f"ModelRollout {ns}/recommender"
    assert lines[1].startswith("Phase      Canary for ")
    assert "Step       1/2, weight 10% of every slice" in lines
    assert any(line.split()[:4] == ["android", "10%", "Pass", "1200/400"] for line in lines)
    assert lines[-1] == f"Message: {world.status.message}"


async def test_status_of_a_missing_rollout_exits_1_naming_it(cluster: Cluster, kube: NamespacedApi) -> None:
    missing = await plugin(cluster.kubeconfig, kube.namespace, "status", "nothing-here")
    assert missing.code == 1
    assert missing.out == ""
    assert missing.err == f'error: modelrollout "nothing-here" not found in namespace "{kube.namespace}"\n'
    for command in ("promote", "abort", "pause", "resume", "undo"):
        result = await plugin(cluster.kubeconfig, kube.namespace, command, "nothing-here")
        assert (result.code, result.err) == (1, missing.err), command


async def test_undo_patches_spec_model_back_to_the_previous_version(
    cluster: Cluster, kube: NamespacedApi
) -> None:
    ns = kube.namespace
    schema_v2 = {"version": 2, "features": [{"name": "user_id", "type": "string"}]}
    spec = rollout_spec("v2", PROMETHEUS)
    spec["model"]["schema"] = schema_v2
    await create_rollout(kube.api, ns, "recommender", spec)

    refused = await plugin(cluster.kubeconfig, ns, "undo", "recommender")
    assert refused.code == 1
    assert refused.err.startswith(
        f'error: modelrollout "recommender" in namespace "{ns}" has no previous version to go back to'
    )

    world = rolling_world()
    world.run_until(lambda w: w.status.phase == "Succeeded" and w.status.stable_version == "v2")
    status = world_body(world)["status"]
    status["previous"]["schema"] = {"version": 1, "features": [], "extraFeatures": "reject"}
    status["previousWarmUntil"] = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await write_status(cluster, ns, "recommender", status)

    undone = await plugin(cluster.kubeconfig, ns, "undo", "recommender")
    assert undone.code == 0, undone
    assert undone.out.splitlines()[0] == (
        f'undo: spec.model of modelrollout "recommender" in namespace "{ns}" set back to v1 '
        "(s3://models/recommender/v1) from v2"
    )
    assert "Argo CD" in undone.out
    model = (await read_rollout(kube.api, ns, "recommender"))["spec"]["model"]
    assert model == {
        "name": "recommender",
        "version": "v1",
        "uri": "s3://models/recommender/v1",
        "schema": {"version": 1, "features": [], "extraFeatures": "reject"},
    }

    again = await plugin(cluster.kubeconfig, ns, "undo", "recommender")
    assert (again.code, again.out) == (
        0,
        f'modelrollout "recommender" in namespace "{ns}": spec.model.version is already v1; nothing to do\n',
    )

    # Once the previous version has been scaled down, undo refuses unless forced.
    await client.CustomObjectsApi(kube.api).patch_namespaced_custom_object(
        "modelrollout.io",
        "v1alpha1",
        ns,
        "modelrollouts",
        "recommender",
        {"spec": {"model": spec["model"]}},
        _content_type="application/merge-patch+json",
    )
    status["previousWarmUntil"] = "2020-01-01T00:00:00Z"
    await write_status(cluster, ns, "recommender", status)
    cold = await plugin(cluster.kubeconfig, ns, "undo", "recommender")
    assert cold.code == 1, cold
    assert cold.err == (
        f'error: modelrollout "recommender" in namespace "{ns}": the previous version v1 is no longer kept warm '
        "(scaled down at 2020-01-01T00:00:00Z, see status.previousWarmUntil); going back now is a full, cold "
        "rollout of it. Use --force to do it anyway\n"
    )
    assert (await read_rollout(kube.api, ns, "recommender"))["spec"]["model"]["version"] == "v2"
    forced = await plugin(cluster.kubeconfig, ns, "undo", "recommender", "--force")
    assert forced.code == 0, forced
    assert (await read_rollout(kube.api, ns, "recommender"))["spec"]["model"]["version"] == "v1"


async def test_kubectl_runs_the_plugin_from_path(cluster: Cluster, kube: NamespacedApi) -> None:
    """`kubectl modelrollout ...` finds kubectl-modelrollout on PATH and hands it every argument."""
    import asyncio

    process = await asyncio.create_subprocess_exec(
        str(tools.binary("kubectl")),
        "modelrollout",
        "status",
        "nothing-here",
        f"--kubeconfig={cluster.kubeconfig}",
        "--namespace",
        kube.namespace,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1, (out, err)
    assert err.decode() == f'error: modelrollout "nothing-here" not found in namespace "{kube.namespace}"\n'
