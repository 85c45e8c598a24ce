"""Against a running operator in the sandbox: Argo CD's resource actions steer a rollout (run by Argo CD's
action runner, sent as the merge patch Argo CD's API server sends), and a kstatus wait, as Flux's
`wait: true` does it, returns only when the rollout ended.

With no model metrics in Prometheus every analysis is Inconclusive and holds, so the rollout stays wherever
the commands put it (Shadow and each step hold for ten minutes).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes.aio import client

from modelrollout.identity import GROUP, PLURAL, VERSION
from tests.support.operator import (
    create_rollout,
    delete_rollout,
    drop_finalizers,
    eventually,
    operator,
    phase,
    read_rollout,
    rollout_spec,
)
from tests.support.verdicts import (
    WaitResult,
    argocd_actions,
    argocd_run_action,
    kstatus_wait_command,
    wait_result,
)

if TYPE_CHECKING:
    from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration
NAME = "recommender"


async def patch(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> None:
    await client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, NAME, body, _content_type="application/merge-patch+json"
    )


async def new_version(api: client.ApiClient, namespace: str, version: str) -> None:
    await patch(api, namespace, {"spec": {"model": {"version": version, "uri": f"s3://models/r/{version}"}}})


async def run_action(api: client.ApiClient, namespace: str, action: str) -> dict[str, Any]:
    """What clicking the action in Argo CD does: discovery must offer it, Argo CD's runner runs it on the live
    object and its API server sends the resulting merge patch. Returns the patch."""
    live = await read_rollout(api, namespace, NAME)
    offered = await asyncio.to_thread(argocd_actions, live)
    assert not offered[action].disabled, f"{action} is not offered in phase {phase(live)}"
    sent = await asyncio.to_thread(argocd_run_action, live, action)
    assert sent is not None, f"{action} changed nothing"
    await patch(api, namespace, sent)
    return sent


def annotation(sent: dict[str, Any]) -> str:
    [value] = sent["metadata"]["annotations"].values()
    return str(value)


async def test_argo_cd_actions_steer_a_rollout_through_the_running_operator(
    cluster: Cluster, kube: NamespacedApi, prometheus_url: str, tmp_path: Path
) -> None:
    api, ns = kube.api, kube.namespace
    log = tmp_path / "operator.log"
    try:
        async with operator(cluster, ns, log) as process:
            await create_rollout(api, ns, NAME, rollout_spec("v1", prometheus_url))
            await eventually(api, ns, NAME, lambda r: phase(r) == "Succeeded", "v1 stable", 120)
            await new_version(api, ns, "v2")
            await eventually(api, ns, NAME, lambda r: phase(r) == "Shadow", "Shadow for v2", 120)

            sent = await run_action(api, ns, "promote")
            found = await eventually(
                api,
                ns,
                NAME,
                lambda r: r["status"]["acknowledged"].get("promote") == annotation(sent),
                "promote",
            )
            assert (found["status"]["phase"], found["status"]["step"]) == ("Canary", 1)
            assert found["status"]["history"][-1]["reason"] == "ManualPromotion"

            await run_action(api, ns, "pause")
            found = await eventually(api, ns, NAME, lambda r: phase(r) == "Paused", "Paused")
            offered = await asyncio.to_thread(argocd_actions, found)
            assert (offered["pause"].disabled, offered["resume"].disabled) == (True, False)

            await run_action(api, ns, "resume")
            found = await eventually(api, ns, NAME, lambda r: phase(r) == "Canary", "resumed")
            assert found["status"]["history"][-1]["reason"] == "Resumed"

            sent = await run_action(api, ns, "promote-full")
            assert annotation(sent).startswith("full:")
            found = await eventually(
                api, ns, NAME, lambda r: r["status"].get("stableVersion") == "v2", "v2", 60
            )
            assert found["status"]["acknowledged"]["promote"] == annotation(sent)

            await new_version(api, ns, "v3")
            await eventually(api, ns, NAME, lambda r: phase(r) == "Shadow", "Shadow for v3", 120)
            sent = await run_action(api, ns, "abort")
            found = await eventually(api, ns, NAME, lambda r: phase(r) == "RolledBack", "RolledBack")
            assert found["status"]["acknowledged"]["abort"] == annotation(sent)
            assert found["status"]["history"][-1]["reason"] == "Aborted"
            assert found["status"]["stableVersion"] == "v2"

            sent = await run_action(api, ns, "retry")
            found = await eventually(
                api, ns, NAME, lambda r: r["status"]["acknowledged"].get("retry") == annotation(sent), "retry"
            )
            await eventually(api, ns, NAME, lambda r: phase(r) == "Shadow", "Shadow for v3 again", 120)

            await delete_rollout(api, ns, NAME)
            assert process.returncode is None, f"the operator exited early:\n{log.read_text()[-4000:]}"
    finally:
        await drop_finalizers(api, ns, NAME)


async def kstatus_wait(cluster: Cluster, namespace: str, *, within: float, fail_fast: bool) -> WaitResult:
    command = kstatus_wait_command(cluster.kubeconfig, namespace, NAME, timeout=within, fail_fast=fail_fast)
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), within + 60)
    assert out, f"verdicts wait printed nothing: {err.decode()}"
    result = wait_result(out.decode())
    assert (process.returncode == 0) == result.done, err.decode()
    return result


async def test_a_kstatus_wait_returns_only_when_the_rollout_ended(
    cluster: Cluster, kube: NamespacedApi, prometheus_url: str, tmp_path: Path
) -> None:
    api, ns = kube.api, kube.namespace
    log = tmp_path / "operator.log"
    try:
        async with operator(cluster, ns, log):
            # A new object: waited for from its creation, before the operator wrote any status.
            await create_rollout(api, ns, NAME, rollout_spec("v1", prometheus_url))
            first = await kstatus_wait(cluster, ns, within=120, fail_fast=True)
            assert (first.status, first.done) == ("Current", True), first
            assert phase(await read_rollout(api, ns, NAME)) == "Succeeded"

            # Shadow holds for ten minutes: the wait must not call it done, however long it looks.
            await new_version(api, ns, "v2")
            await eventually(api, ns, NAME, lambda r: phase(r) == "Shadow", "Shadow for v2", 120)
            held = await kstatus_wait(cluster, ns, within=6, fail_fast=True)
            assert (held.status, held.done) == ("InProgress", False), held
            assert "mirroring" in held.message, "the wait says why it is still waiting"

            # Paused: still in progress, on purpose (it ends once a person resumes).
            await patch(api, ns, {"metadata": {"annotations": {"modelrollout.io/paused": "true"}}})
            await eventually(api, ns, NAME, lambda r: phase(r) == "Paused", "Paused")
            paused = await kstatus_wait(cluster, ns, within=4, fail_fast=True)
            assert (paused.status, paused.done) == ("InProgress", False), paused
            await patch(api, ns, {"metadata": {"annotations": {"modelrollout.io/paused": None}}})
            # A promote read in the same tick as the resume would find the phase still Paused and be ignored.
            await eventually(api, ns, NAME, lambda r: phase(r) == "Shadow", "resumed in Shadow")

            # Promoted to the end: Current, and only then.
            await patch(api, ns, {"metadata": {"annotations": {"modelrollout.io/promote": "full:w1"}}})
            done = await kstatus_wait(cluster, ns, within=60, fail_fast=True)
            assert (done.status, done.done) == ("Current", True), done
            found = await read_rollout(api, ns, NAME)
            assert (phase(found), found["status"]["stableVersion"]) == ("Succeeded", "v2")

            # Rolled back: Failed, which a fail-fast wait reports at once and a plain wait never calls done.
            await new_version(api, ns, "v3")
            await eventually(api, ns, NAME, lambda r: phase(r) == "Shadow", "Shadow for v3", 120)
            await patch(api, ns, {"metadata": {"annotations": {"modelrollout.io/abort": "w2"}}})
            failed = await kstatus_wait(cluster, ns, within=60, fail_fast=True)
            assert (failed.status, failed.done) == ("Failed", False), failed
            assert phase(await read_rollout(api, ns, NAME)) == "RolledBack"
            plain = await kstatus_wait(cluster, ns, within=3, fail_fast=False)
            assert (plain.status, plain.done) == ("Failed", False), plain
            await delete_rollout(api, ns, NAME)
    finally:
        await drop_finalizers(api, ns, NAME)
