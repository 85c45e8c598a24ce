"""Preflight gates through the running operator: only an explicit {"allowed": true} lets a version deploy.

v1 goes out with the gate allowing; the gate then refuses v2 in every way a gate can (a deny with its reason,
HTTP 500, something that is not JSON, a truthy string, no answer in time). Each keeps v2 Blocked with the
gate's reason, and no v2 Deployment appears. When the gate changes its mind, the next tick lets v2 through.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from modelrollout.controller.outbound import MAX_ANSWER_BYTES, REASON_LIMIT

from .helpers import (
    ENVIRONMENT,
    IMAGE,
    MODEL,
    Answer,
    create_rollout,
    deployment_versions,
    eventually,
    json_answer,
    patch_rollout,
    phase_is,
    recorder,
    rollout_spec,
    running_operator,
    tracebacks_from_our_code,
)

if TYPE_CHECKING:
    from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration
NAME = "gated"
IMAGE_V2 = "ghcr.io/example/model-server:1.1"

CUT = "x" * REASON_LIMIT + f"... ({20_000 - REASON_LIMIT} more characters)"
REFUSALS: list[tuple[str, Answer, str]] = [
    (
        "deny",
        json_answer({"allowed": False, "reason": "leakage report missing for v2"}),
        "leakage report missing for v2",
    ),
    ("http 500", (500, b'{"allowed": true}', 0.0), "answered HTTP 500"),
    ("garbage", (200, b"<html>surely fine</html>", 0.0), "answered something that is not JSON"),
    ("truthy string", json_answer({"allowed": "true"}), "denied"),
    ("not an object", json_answer([True]), "answer is not a JSON object"),
    ("timeout", (200, b'{"allowed": true}', 3.0), "no answer within 1s"),
    # A whole report as the reason: cut, or the status would outgrow what the API server stores.
    ("a long reason", json_answer({"allowed": False, "reason": "x" * 20_000}), CUT),
    # A body past the cap is not read at all: one operator serves every tenant's gates.
    (
        "a huge answer",
        json_answer({"allowed": True, "reason": "x" * 500_000}),
        f"answered more than {MAX_ANSWER_BYTES} bytes",
    ),
]


def blocked_with(message: str) -> Callable[[dict[str, Any]], bool]:
    return lambda status: status.get("phase") == "Blocked" and status.get("message") == message


async def test_gates_block_until_explicitly_allowed(
    cluster: Cluster, kube: NamespacedApi, prometheus_url: str, tmp_path: Path
) -> None:
    ns, api = kube.namespace, kube.api
    with recorder(json_answer({"allowed": True, "reason": "report attached"})) as gate:
        gates = [{"name": "leakage-report", "webhook": {"url": gate.url, "timeout": "1s"}}]
        async with running_operator(cluster.kubeconfig, api, ns, tmp_path) as operator:
            await create_rollout(
                api, ns, NAME, rollout_spec("v1", prometheus_url, environment="env-1", gates=gates)
            )
            await eventually(api, ns, NAME, phase_is("Succeeded"), "initial deploy of v1", operator=operator)
            first = gate.bodies()[0]
            assert first["rollout"]["name"] == NAME
            assert first["rollout"]["namespace"] == ns
            assert first["model"] == MODEL
            assert first["candidate"]["version"] == "v1"
            assert first["stable"] is None

            # From here the gate refuses; v2 also changes the image and the environment fingerprint.
            gate.answer = REFUSALS[0][1]
            await patch_rollout(
                api,
                ns,
                NAME,
                {
                    "spec": {
                        "model": {"version": "v2", "uri": f"s3://models/{MODEL}/v2"},
                        "template": {
                            "metadata": {"annotations": {ENVIRONMENT: "env-2"}},
                            "spec": {
                                "containers": [
                                    {
                                        "name": "server",
                                        "image": IMAGE_V2,
                                        "ports": [{"containerPort": 8080, "name": "http"}],
                                    }
                                ]
                            },
                        },
                    }
                },
            )
            for what, answer, reason in REFUSALS:
                gate.answer = answer
                expected = f"gate leakage-report refused v2: {reason}"
                status = await eventually(
                    api,
                    ns,
                    NAME,
                    blocked_with(expected),
                    f"Blocked by a gate answering {what}",
                    operator=operator,
                )
                assert status["history"][-1]["reason"] == "GateRefused", what
                assert status["stableVersion"] == "v1"
                assert status["candidateVersion"] == "v2"
                assert status.get("candidate") is None, "nothing about v2 is recorded as deployed"
                degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
                assert (degraded["status"], degraded["message"]) == ("True", expected)
                assert await deployment_versions(api, ns, NAME) == {"v1"}, f"v2 deployed although {what}"

            # Blocked is re-evaluated every tick: the gate keeps being asked while it refuses.
            asked = gate.count()
            await eventually(
                api, ns, NAME, lambda _: gate.count() >= asked + 2, "the gate asked again while Blocked"
            )
            assert await deployment_versions(api, ns, NAME) == {"v1"}

            # What the gate saw: the model, both versions with their schemas and fingerprints.
            context = gate.bodies()[-1]
            assert context["model"] == MODEL
            candidate, stable = context["candidate"], context["stable"]
            assert candidate["version"] == "v2"
            assert candidate["uri"] == f"s3://models/{MODEL}/v2"
            assert candidate["schema"] == {
                "version": 1,
                "features": [{"name": "user_id", "type": "string", "required": True}],
                "extraFeatures": "ignore",
            }
            assert candidate["fingerprint"]["images"] == [IMAGE_V2]
            assert candidate["fingerprint"]["modelUri"] == f"s3://models/{MODEL}/v2"
            assert candidate["fingerprint"]["environment"] == "env-2"
            assert candidate["fingerprint"]["templateHash"]
            assert stable["version"] == "v1"
            assert stable["uri"] == f"s3://models/{MODEL}/v1"
            assert stable["schema"] == candidate["schema"]
            assert stable["fingerprint"]["images"] == [IMAGE]
            assert stable["fingerprint"]["environment"] == "env-1"
            assert stable["fingerprint"]["templateHash"] != candidate["fingerprint"]["templateHash"]

            # The gate changes its mind: the next tick deploys v2.
            gate.answer = json_answer({"allowed": True, "reason": "report attached"})
            status = await eventually(
                api, ns, NAME, phase_is("Warming", "Shadow"), "v2 past the gate", operator=operator
            )
            # The status commits the decision first; the Deployment it implies follows in the same tick.
            deadline = time.monotonic() + 10
            while "v2" not in await deployment_versions(api, ns, NAME):
                assert time.monotonic() < deadline, "v2 was not deployed after the gate allowed it"
                await asyncio.sleep(0.2)
            assert status["candidate"]["fingerprint"]["images"] == [IMAGE_V2]
            assert operator.running, operator.log_tail()
            assert tracebacks_from_our_code(operator.log_text()) == [], operator.log_tail()
