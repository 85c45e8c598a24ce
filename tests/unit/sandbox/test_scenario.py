"""Scenario files: the example loads, rendering fills in placeholders, and every error names its field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelrollout.api.spec import ModelRolloutSpec, Slice
from modelrollout.sandbox.scenario import (
    Event,
    Expectation,
    ScenarioError,
    derive_headers,
    load_scenario,
    on_provider,
    parse_condition,
    parse_scenario,
)
from modelrollout.sandbox.trafficgen import SliceLoad

REPO = Path(__file__).resolve().parents[3]
HEALTHY = REPO / "examples" / "scenarios" / "healthy.yaml"


@pytest.fixture
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(HEALTHY.read_text())
    return loaded


def test_healthy_example_loads() -> None:
    scenario = load_scenario(HEALTHY)
    spec = scenario.rollout.spec
    assert (scenario.name, scenario.stable_version, scenario.candidate_version) == ("healthy", "v1", "v2")
    assert spec.slice_names() == ["ios", "android", "default"]
    assert [s.weight for s in spec.strategy.canary.steps] == [25, 50]
    assert spec.strategy.shadow is not None
    assert spec.strategy.shadow.duration == "10s"
    assert (spec.analysis.interval, spec.analysis.window, spec.analysis.min_samples) == ("2s", "10s", 30)
    guards = {g.name: g for g in spec.analysis.guards}
    assert (guards["error-rate"].max, guards["error-rate"].immediate) == (0.05, True)
    assert (guards["error-ratio"].max_ratio_to_stable, guards["error-ratio"].failure_limit) == (1.5, 2)
    assert guards["p99"].max_ratio_to_stable == 1.5
    assert (guards["prediction-shift"].metric, guards["prediction-shift"].max) == ("predictionPSI", 0.2)
    assert scenario.expect.phase == "Succeeded"
    assert scenario.slice_loads() == [
        SliceLoad("ios", 40, {"x-platform": "ios"}, {"user_id": "sandbox-user", "items": 10}),
        SliceLoad("android", 40, {"x-platform": "android"}, {"user_id": "sandbox-user", "items": 10}),
        SliceLoad("default", 40, {}, {"user_id": "sandbox-user", "items": 10}),
    ]
    # Fleet load times agree with the pods' simulated load delays.
    assert scenario.fleet.versions["v1"].load_time == "3s"
    assert scenario.fleet.versions["v2"].load_time == "5s"


def test_manifests_are_rendered_for_a_namespace() -> None:
    scenario = load_scenario(HEALTHY)
    initial = scenario.manifest("team-a", "http://127.0.0.1:19090")
    assert initial["metadata"] == {"name": "recommender", "namespace": "team-a"}
    assert initial["spec"]["traffic"]["istio"]["host"] == "recommender.team-a.svc.cluster.local"
    assert initial["spec"]["analysis"]["prometheus"]["url"] == "http://127.0.0.1:19090"
    assert initial["spec"]["model"]["version"] == "v1"
    assert "${" not in yaml.safe_dump(initial)

    updated = scenario.updated_manifest("team-a", "http://127.0.0.1:19090")
    spec = ModelRolloutSpec.model_validate(updated["spec"])
    assert (spec.model.version, spec.model.uri) == ("v2", "sandbox://models/recommender/v2")
    assert (
        updated["spec"]["template"]["metadata"]["annotations"]["sandbox.modelrollout.io/load-delay"] == "5s"
    )
    # Rendering does not change the scenario: the initial manifest still has v1 and its own delay.
    again = scenario.manifest("team-b", "http://127.0.0.1:1")
    assert again["spec"]["model"]["version"] == "v1"
    assert again["spec"]["template"]["metadata"]["annotations"]["sandbox.modelrollout.io/load-delay"] == "3s"
    assert again["spec"]["traffic"]["istio"]["host"] == "recommender.team-b.svc.cluster.local"


def test_update_schema_replaces_the_model_schema(document: dict[str, Any]) -> None:
    document["update"]["model"]["schema"] = {
        "version": 2,
        "features": [{"name": "user_id", "type": "string"}],
    }
    updated = parse_scenario(document).updated_manifest("ns", "http://p:9090")
    assert updated["spec"]["model"]["schema"] == {
        "version": 2,
        "features": [{"name": "user_id", "type": "string", "required": True}],
        "extraFeatures": "ignore",
    }


Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = document
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _drop(path: str) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = document
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


FLEET = "fleet/versions"
ERRORS: list[tuple[Mutation, str]] = [
    (_set(f"{FLEET}/v2/default/latency/p99", "5ms"), "fleet.versions.v2.default.latency: p99 (5ms)"),
    (_set(f"{FLEET}/v1/default/errorRate", 1.5), "fleet.versions.v1.default.errorRate: Input should be"),
    (_set(f"{FLEET}/v1/loadTime", "3 s"), "fleet.versions.v1.loadTime: String should match"),
    (
        _set(f"{FLEET}/v1/default/score", {"beta": [2, 5], "constant": 0.1}),
        "v1.default.score: set exactly one",
    ),
    (_set(f"{FLEET}/v1/default/score", {"beta": [0, 5]}), "fleet.versions.v1.default.score: beta parameters"),
    (_set(f"{FLEET}/v1/slices", {"web": {"errorRate": 0.1}}), "fleet.versions.v1.slices.web: not a slice"),
    (_set(f"{FLEET}/v1/loadtime", "3s"), "fleet.versions.v1.loadtime: Extra inputs are not permitted"),
    (_drop(f"{FLEET}/v2"), "fleet.versions: no behaviour for version(s) v2"),
    (_set(f"{FLEET}/V3", {}), "fleet.versions: 'V3' is not a model version"),
    (_set("traffic/slices/web", 5), "traffic.slices.web: not a slice of the rollout"),
    (_set("traffic/slices/ios", -1), "traffic.slices.ios.rate: Input should be greater than or equal to 0"),
    (
        _set("traffic/slices/ios", {"rate": 5, "headers": {"x-platform": "android"}}),
        "traffic.slices.ios.headers: {'x-platform': 'android'} would land in slice 'android', not 'ios'",
    ),
    (_set("traffic/arrival", "bursty"), "traffic.arrival: Input should be 'poisson' or 'uniform'"),
    (
        _set("rollout/spec/strategy/canary/steps", [{"weight": 50}, {"weight": 25}]),
        "rollout.spec.strategy.canary: steps: step weights must strictly ascend",
    ),
    (
        _set("rollout/spec/analysis/guards/0/metric", "errorRat"),
        "rollout.spec.analysis.guards.0: metric: metric must be one of",
    ),
    (_drop("rollout/spec/replicas"), "rollout.spec.replicas: Field required"),
    (
        _set("rollout/spec/analysis/prometheus/url", "${PROMETHEUS}"),
        "rollout.spec.analysis.prometheus.url: unknown placeholder ${PROMETHEUS}",
    ),
    (_set("rollout/metadata/namespace", "ml"), "rollout.metadata: leave namespace out"),
    (_set("rollout/kind", "Rollout"), "rollout.kind: Input should be 'ModelRollout'"),
    (_set("update/model/version", "v1"), "update.model.version: 'v1' is already the rollout's version"),
    (_set("update/model/version", "V2"), "update.model.version: String should match pattern"),
    (
        _set("update/templateAnnotations", {"sandbox.modelrollout.io/load-delay": 5}),
        "update.templateAnnotations.sandbox.modelrollout.io/load-delay: Input should be a valid string",
    ),
    (
        _set("events", [{"after": "10s", "when": "phase == Canary", "action": "abort"}]),
        "events.0: set exactly one of after or when",
    ),
    (
        _set("events", [{"when": "phase == Canry", "action": "abort"}]),
        "events.0: when: unknown phase 'Canry'",
    ),
    (_set("events", [{"when": "phase = Canary", "action": "abort"}]), "events.0: when: cannot read 'phase ="),
    (_set("events", [{"after": "5s", "action": "explode"}]), "events.0.action: Input should be"),
    (_set("events", [{"after": "5s", "action": "abort", "duration": "5s"}]), "events.0: duration: only"),
    (_set("events", [{"after": "5s", "action": "stop-fleet-version"}]), "events.0: version: required"),
    (
        _set("events", [{"after": "5s", "action": "stop-fleet-version", "version": "v9"}]),
        "events: version 'v9' is neither v1 nor v2",
    ),
    (
        _set("events", [{"after": "5s", "action": "fail-replica-load", "version": "candidate"}]),
        "events: fail-replica-load needs `node: real`",
    ),
    (_set("events", [{"after": "5s", "action": "fail-replica-load"}]), "events.0: version: required"),
    (_set("node", "docker"), "node: Input should be 'kwok' or 'real'"),
    (_set("expect/phase", "Done"), "expect.phase: Input should be 'Pending'"),
    (_set("timeout", "forever"), "timeout: String should match pattern"),
    (_drop("update"), "update: Field required"),
]


@pytest.mark.parametrize(("mutate", "expected"), ERRORS)
def test_errors_name_the_field(document: dict[str, Any], mutate: Mutation, expected: str) -> None:
    broken = copy.deepcopy(document)
    mutate(broken)
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(broken, "broken.yaml")
    message = str(raised.value)
    assert message.startswith("broken.yaml: invalid scenario:")
    assert expected in message, message


def test_regex_slices_need_explicit_headers(document: dict[str, Any]) -> None:
    document["rollout"]["spec"]["slices"][0]["match"]["headers"]["x-platform"] = {
        "regex": "i(os|pados)-[0-9]+"
    }
    with pytest.raises(ScenarioError, match=r"traffic\.slices\.ios\.headers: cannot derive headers"):
        parse_scenario(copy.deepcopy(document))
    document["traffic"]["slices"]["ios"] = {"rate": 10, "headers": {"X-Platform": "ios-17"}}
    loads = parse_scenario(document).slice_loads()
    assert loads[0] == SliceLoad("ios", 10, {"x-platform": "ios-17"}, loads[0].body)


@pytest.mark.parametrize(
    ("match", "headers"),
    [
        (
            {"x-platform": {"exact": "ios"}, "x-region": {"exact": "na"}},
            {"x-platform": "ios", "x-region": "na"},
        ),
        ({"x-app-version": {"prefix": "9."}}, {"x-app-version": "9.x"}),
        ({"x-platform": {"regex": "^(ios|ipados)$"}}, {"x-platform": "ios"}),
        ({"x-platform": {"regex": "android"}}, {"x-platform": "android"}),
        ({"x-platform": {"regex": "chrome-[0-9]+"}}, None),
    ],
)
def test_derive_headers(match: dict[str, Any], headers: dict[str, str] | None) -> None:
    assert derive_headers(Slice.model_validate({"name": "s", "match": {"headers": match}})) == headers


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ScenarioError, match="not YAML"):
        load_scenario(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ScenarioError, match="a scenario is a mapping"):
        load_scenario(bad)


STATUS = {
    "phase": "Canary",
    "step": 2,
    "stableVersion": "v1",
    "slices": [
        {"name": "android", "verdict": "Fail", "canaryWeight": 50},
        {"name": "ios", "verdict": "Pass"},
    ],
}


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        ("phase == Canary and step == 2", True),
        ("phase == Canary and step == 1", False),
        ("step >= 2", True),
        ("step > 2", False),
        ("phase != Shadow", True),
        ("slice.android.verdict == Fail", True),
        ("slice.ios.verdict == 'Pass'", True),
        ("slice.android.canaryWeight < 25", False),
        ("slice.web.verdict == Fail", False),  # a missing slice never holds
        ("candidateVersion == v2", False),  # nor a missing field
        ("stableVersion >= 2", False),  # text and number do not order
    ],
)
def test_conditions_on_the_status(condition: str, holds: bool) -> None:
    assert all(c.holds(STATUS) for c in parse_condition(condition)) is holds


def test_event_due() -> None:
    timed = Event.model_validate({"after": "40s", "action": "stop-prometheus", "duration": "20s"})
    assert not timed.due(39.9, {})
    assert timed.due(40.0, {})
    conditional = Event.model_validate(
        {"when": "phase == Canary and step == 2", "action": "restart-operator"}
    )
    assert conditional.due(0, STATUS)
    assert not conditional.due(1000, {"phase": "Shadow"})


def test_expectation_failures() -> None:
    expect = Expectation.model_validate({"phase": "RolledBack", "message": ["android", "rolled back to v1"]})
    assert (
        expect.failures({"phase": "RolledBack", "message": "slice android: error-rate; rolled back to v1"})
        == []
    )
    problems = expect.failures({"phase": "Succeeded", "message": "promoted v2"})
    assert problems == [
        "phase is 'Succeeded', expected 'RolledBack'",
        "message 'promoted v2' does not contain 'android'",
        "message 'promoted v2' does not contain 'rolled back to v1'",
    ]
    assert Expectation(phase="Succeeded", stable_version="v2").failures({"phase": "Succeeded"}) == [
        "stableVersion is None, expected 'v2'"
    ]


def test_on_gateway_api_the_scenario_routes_through_an_http_route_on_the_service() -> None:
    istio = load_scenario(HEALTHY).rollout.spec
    moved = load_scenario(HEALTHY, "gatewayapi").rollout.spec
    assert moved.traffic.istio is None
    gateway = moved.traffic.gateway_api
    assert gateway is not None
    assert istio.traffic.istio is not None
    assert gateway.http_route == istio.traffic.istio.virtual_service
    assert [(p.group, p.kind, p.name) for p in gateway.parent_refs] == [("", "Service", "recommender")]
    # Everything else, slices and strategy included, is the scenario as written.
    assert moved.model_dump(exclude={"traffic"}) == istio.model_dump(exclude={"traffic"})
    assert load_scenario(HEALTHY, "istio").rollout.spec == istio


def test_on_provider_refuses_what_it_cannot_move(document: dict[str, Any]) -> None:
    with pytest.raises(ScenarioError, match="unknown traffic provider 'linkerd'"):
        on_provider(document, "linkerd")
    document["rollout"]["spec"]["traffic"]["istio"]["gateways"] = ["ingress"]
    with pytest.raises(ScenarioError, match=r"traffic\.istio\.gateways: a gateway-bound scenario"):
        on_provider(document, "gatewayapi")


def test_probes_are_sent_apart_from_the_slices_and_may_not_take_a_slice_name(
    document: dict[str, Any],
) -> None:
    document["traffic"]["probes"] = [{"name": "qa", "rate": 2, "headers": {"X-Canary-Override": "true"}}]
    scenario = parse_scenario(copy.deepcopy(document))
    loads = {load.name: load for load in scenario.loads()}
    assert list(loads) == ["ios", "android", "default", "qa"]
    assert loads["qa"].headers == {"x-canary-override": "true"}
    assert [load.name for load in scenario.slice_loads()] == ["ios", "android", "default"]
    document["traffic"]["probes"][0]["name"] = "android"
    with pytest.raises(ScenarioError, match=r"traffic.probes\[0\].name: 'android' is a slice of the rollout"):
        parse_scenario(document)


@pytest.mark.parametrize("name", ["bluegreen-healthy", "bluegreen-regression", "bluegreen-cold-start"])
def test_blue_green_scenarios_load(name: str) -> None:
    scenario = load_scenario(REPO / "examples" / "scenarios" / f"{name}.yaml")
    assert scenario.rollout.spec.strategy.blue_green is not None
