"""One operator, one namespace, three broken ModelRollouts and a healthy one: the broken ones never hurt it.

- `no-image`: the template's container has no image: Blocked, InvalidTemplate, InvalidSpec=True naming the field.
- `claimed`: its VirtualService exists and another rollout claims it: Reconciled=False, ApplyFailed, naming both.
- `blind`: its Prometheus is a closed port: Inconclusive slices, MetricsAvailable=False; it never promotes.
- `healthy`: the initial deploy of v1 (no analysis) reaches Succeeded while the others are broken.
The operator process never exits and logs no traceback from our code.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from modelrollout.identity import CLAIM_ANNOTATION

from .helpers import (
    ISTIO,
    MODEL,
    closed_port_url,
    condition,
    create_rollout,
    custom,
    deployment_versions,
    eventually,
    patch_rollout,
    phase_is,
    read_rollout,
    read_virtual_service,
    rollout_spec,
    running_operator,
    sample_value,
    status_of,
    tracebacks_from_our_code,
)

if TYPE_CHECKING:
    from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration

FOREIGN_ROUTE: dict[str, Any] = {
    "name": "someone-elses-route",
    "route": [{"destination": {"host": "other.example.svc.cluster.local", "port": {"number": 8080}}}],
}


def _no_image(prometheus: str) -> dict[str, Any]:
    spec = rollout_spec("v1", prometheus, virtual_service="no-image")
    del spec["template"]["spec"]["containers"][0]["image"]
    return spec


async def _claimed_virtual_service(kube: NamespacedApi) -> None:
    body = {
        "apiVersion": f"{ISTIO[0]}/{ISTIO[1]}",
        "kind": "VirtualService",
        "metadata": {"name": "claimed", "annotations": {CLAIM_ANNOTATION: "someone-else"}},
        "spec": {"hosts": [f"{MODEL}.example.svc.cluster.local"], "http": [FOREIGN_ROUTE]},
    }
    await custom(kube.api).create_namespaced_custom_object(ISTIO[0], ISTIO[1], kube.namespace, ISTIO[2], body)


async def test_broken_rollouts_do_not_hurt_a_healthy_one(
    cluster: Cluster, kube: NamespacedApi, prometheus_url: str, tmp_path: Path
) -> None:
    ns, api = kube.namespace, kube.api
    blind_url = closed_port_url()
    await _claimed_virtual_service(kube)
    async with running_operator(cluster.kubeconfig, api, ns, tmp_path) as operator:
        await create_rollout(api, ns, "no-image", _no_image(prometheus_url))
        await create_rollout(
            api, ns, "claimed", rollout_spec("v1", prometheus_url, virtual_service="claimed")
        )
        # Short shadow and steps: were missing data taken for a pass, this one would promote within seconds.
        fast = {
            "shadow": {"duration": "1s"},
            "canary": {"steps": [{"weight": 20, "pause": "1s"}, {"weight": 50, "pause": "1s"}]},
        }
        await create_rollout(
            api, ns, "blind", rollout_spec("v1", blind_url, virtual_service="blind", strategy=fast)
        )
        await create_rollout(
            api, ns, "healthy", rollout_spec("v1", prometheus_url, virtual_service="healthy")
        )

        # (d) The healthy rollout goes out while the others are broken.
        # Reconciled follows the decision: it says whether the writes the committed status implies landed.
        healthy = await eventually(
            api,
            ns,
            "healthy",
            lambda s: (
                s.get("phase") == "Succeeded" and (condition(s, "Reconciled") or {}).get("status") == "True"
            ),
            "v1 Succeeded and applied",
            operator=operator,
        )
        assert healthy["stableVersion"] == "v1"
        vs = await read_virtual_service(api, ns, "healthy")
        assert vs is not None
        assert [r["name"] for r in vs["spec"]["http"]] == [
            "modelrollout-ios",
            "modelrollout-default",
        ]

        # (a) No image: Blocked with InvalidTemplate, naming the field; nothing deployed.
        field = "spec.template.spec.containers[0].image"
        bad = await eventually(api, ns, "no-image", phase_is("Blocked"), "Blocked", operator=operator)
        assert bad["history"][-1]["reason"] == "InvalidTemplate"
        assert field in bad["message"], bad["message"]
        invalid = condition(bad, "InvalidSpec")
        assert invalid is not None
        assert (invalid["status"], invalid["reason"]) == ("True", "InvalidTemplate")
        assert field in invalid["message"]
        assert await deployment_versions(api, ns, "no-image") == set()

        # (b) A VirtualService claimed by someone else: the write is refused and said so; nothing overwritten.
        claimed = await eventually(
            api,
            ns,
            "claimed",
            lambda s: (condition(s, "Reconciled") or {}).get("status") == "False",
            "Reconciled=False",
            operator=operator,
        )
        reconciled = condition(claimed, "Reconciled")
        assert reconciled is not None
        assert reconciled["reason"] == "ApplyFailed"
        assert f"VirtualService {ns}/claimed" in reconciled["message"], reconciled
        assert "someone-else" in reconciled["message"], reconciled
        assert claimed["phase"] != "Succeeded", "a rollout whose routes were not written is not Succeeded"
        claimed_version = (await read_rollout(api, ns, "claimed"))["metadata"]["resourceVersion"]
        vs = await read_virtual_service(api, ns, "claimed")
        assert vs is not None
        assert vs["spec"]["http"] == [FOREIGN_ROUTE]
        assert vs["metadata"]["annotations"][CLAIM_ANNOTATION] == "someone-else"

        # (c) Prometheus unreachable: v1 needs no metrics; v2 holds in Shadow, then in Canary, never promotes.
        await eventually(api, ns, "blind", phase_is("Succeeded"), "v1 Succeeded", operator=operator)
        await patch_rollout(
            api, ns, "blind", {"spec": {"model": {"version": "v2", "uri": f"s3://models/{MODEL}/v2"}}}
        )
        blind = await eventually(
            api,
            ns,
            "blind",
            lambda s: (
                s.get("phase") == "Shadow"
                and (condition(s, "MetricsAvailable") or {}).get("status") == "False"
            ),
            "Shadow with MetricsAvailable=False",
            operator=operator,
        )
        metrics = condition(blind, "MetricsAvailable")
        assert metrics is not None
        assert metrics["reason"] == "QueryFailed"
        assert f"cannot reach {blind_url}" in metrics["message"], metrics
        await asyncio.sleep(3)  # 3 analysis intervals, each longer than the 1s shadow duration
        blind = status_of(await read_rollout(api, ns, "blind"))
        assert blind["phase"] == "Shadow", blind.get("message")
        assert {s["name"]: s["verdict"] for s in blind["slices"]} == {
            "ios": "Inconclusive",
            "default": "Inconclusive",
        }

        await patch_rollout(
            api, ns, "blind", {"metadata": {"annotations": {"modelrollout.io/promote": "to-canary"}}}
        )
        await eventually(
            api, ns, "blind", lambda s: s.get("phase") == "Canary" and s.get("step") == 1, "Canary 1"
        )
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # steps of 1s: a pass on missing data would move on at once
            blind = status_of(await read_rollout(api, ns, "blind"))
            assert (blind["phase"], blind["step"], blind["stableVersion"]) == ("Canary", 1, "v1"), blind[
                "message"
            ]
            await asyncio.sleep(0.25)
        assert all(s["verdict"] == "Inconclusive" for s in blind["slices"]), blind["slices"]
        assert (condition(blind, "MetricsAvailable") or {}).get("status") == "False"

        # The others are still where they were, and the operator is alive and never hit an unhandled error.
        assert status_of(await read_rollout(api, ns, "no-image"))["phase"] == "Blocked"
        claimed_now = await read_rollout(api, ns, "claimed")
        assert status_of(claimed_now)["phase"] != "Succeeded"
        # It kept retrying (every 5s) without rewriting the same failure: no write loop on a stuck rollout.
        assert claimed_now["metadata"]["resourceVersion"] == claimed_version
        assert status_of(await read_rollout(api, ns, "healthy"))["phase"] == "Succeeded"
        samples = await operator.metrics()
        for name in ("no-image", "claimed", "blind", "healthy"):
            crashed = sample_value(
                samples, "modelrollout_reconcile_errors_total", namespace=ns, rollout=name, cause="Exception"
            )
            assert not crashed, f"{name}: {crashed} ticks raised\n{operator.log_tail()}"
        assert (
            sample_value(samples, "modelrollout_phase", namespace=ns, rollout="healthy", phase="Succeeded")
            == 1
        )
        retried = sample_value(
            samples,
            "modelrollout_reconcile_errors_total",
            namespace=ns,
            rollout="claimed",
            cause="ApplyFailed",
        )
        assert retried is not None, "the claimed rollout's failures are counted"
        assert retried >= 2, f"the claimed rollout was retried: {retried}"
        assert operator.running, f"the operator exited:\n{operator.log_tail()}"
        log = operator.log_text()
        assert "reconcile failed" not in log, operator.log_tail()
        assert tracebacks_from_our_code(log) == [], log[-6000:]
