"""Which foreign routes placed before the owned ones catch their requests (Istio: first match wins)."""

from __future__ import annotations

from typing import Any

from modelrollout.traffic.istio import shadowing


def route(name: str, *blocks: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "route": [{"destination": {"host": f"{name}.svc"}}]}
    if blocks:
        out["match"] = list(blocks)
    return out


IOS = {"headers": {"x-platform": {"exact": "ios"}}}
ANDROID = {"headers": {"x-platform": {"exact": "android"}}}


def test_a_catch_all_before_ours_shadows_every_owned_route() -> None:
    http = [route("all"), route("modelrollout-ios", IOS), route("modelrollout-default")]
    assert shadowing(http) == ["all shadows modelrollout-ios", "all shadows modelrollout-default"]


def test_a_broader_match_shadows_a_narrower_one_and_a_different_one_does_not() -> None:
    narrower = {"headers": {"x-platform": {"exact": "ios"}, "x-beta": {"exact": "1"}}}
    http = [route("beta", narrower), route("ios-pin", IOS), route("modelrollout-ios", IOS)]
    assert shadowing(http) == ["ios-pin shadows modelrollout-ios"]
    assert shadowing([route("android-pin", ANDROID), route("modelrollout-ios", IOS)]) == []


def test_foreign_routes_after_ours_never_shadow() -> None:
    assert shadowing([route("modelrollout-ios", IOS), route("all")]) == []
