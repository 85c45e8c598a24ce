"""Specs the API server admitted (before this CRD, or by a looser one) that the operator must refuse with a
condition naming the field, before it writes anything, instead of failing every tick."""

from __future__ import annotations

from typing import Any

from modelrollout.identity import MAX_NAME, NAME_TOO_LONG
from tests.support.controller import NAME, NAMESPACE, Harness
from tests.support.specs import PLATFORMS

LOOKAHEAD = {"name": "beta", "match": {"headers": {"x-user": {"regex": "beta-(?=eu)"}}}}


def writes(h: Harness) -> list[str]:
    return [c.resource for c in h.kube.calls if c.verb in ("create", "patch", "apply") and not c.failed]


async def test_a_header_regex_re2_refuses_is_refused_naming_the_slice_before_any_route_write() -> None:
    h = Harness()
    h.create(slices=[*PLATFORMS, LOOKAHEAD])
    await h.tick()
    invalid = h.condition("InvalidSpec")
    assert invalid["status"] == "True"
    assert "spec.slices[2].match.headers.x-user.regex" in invalid["message"]
    assert "slice beta" in invalid["message"]
    assert "not valid RE2" in invalid["message"]
    assert h.kube.virtual_service(NAMESPACE, "recommender") is None
    assert "virtualservice" not in writes(h)
    assert "deployment" not in writes(h)
    assert "InvalidSpec" in h.kube.event_reasons()


async def test_a_regex_made_invalid_mid_rollout_freezes_the_routes_as_they_were() -> None:
    h = Harness()
    h.create()
    await h.run_until(lambda s: s.get("phase") == "Succeeded", "v1 stable")
    before = h.virtual_service()
    h.patch({"spec": {"slices": [*PLATFORMS, LOOKAHEAD]}})
    await h.tick()
    assert h.condition("InvalidSpec")["status"] == "True"
    assert h.virtual_service() == before


async def test_a_rollout_name_longer_than_a_label_value_is_refused_not_retried_forever() -> None:
    h = Harness()
    long_name = "r" * (MAX_NAME + 1)
    spec: dict[str, Any] = dict(h.create()["spec"])
    h.kube.rollouts.clear()
    h.kube.add_rollout({"metadata": {"name": long_name, "namespace": NAMESPACE}, "spec": spec})
    await h.reconciler.tick(NAMESPACE, long_name)
    stored = h.kube.rollout(NAMESPACE, long_name)
    conditions = {c["type"]: c for c in stored["status"]["conditions"]}
    assert conditions["InvalidSpec"]["status"] == "True"
    assert conditions["InvalidSpec"]["message"] == NAME_TOO_LONG
    assert writes(h) == ["modelrollout/status", "event"]
    assert NAME not in [key[1] for key in h.kube.rollouts]
