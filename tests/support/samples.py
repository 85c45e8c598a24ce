"""Builders shared by the analysis tests: specs, and Prometheus samples shaped like the real answers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from modelrollout.analysis.results import Sample
from modelrollout.api.spec import ModelRolloutSpec
from tests.support import specs

STABLE = "v1.4"
CANDIDATE = "v1.5"


def make_spec(
    guards: list[dict[str, Any]],
    *,
    slices: Iterable[str] = ("ios", "android"),
    profile: str = "modelrollout",
    min_samples: int = 100,
    window: str | None = None,
    interval: str = "30s",
    alpha: float = 0.05,
    url: str = "http://127.0.0.1:9090",
) -> ModelRolloutSpec:
    analysis: dict[str, Any] = {
        "interval": interval,
        "prometheus": {"url": url, "timeout": "2s"},
        "metrics": {"profile": profile},
        "minSamples": min_samples,
        "alpha": alpha,
        "guards": guards,
    }
    if window is not None:
        analysis["window"] = window
    spec = specs.rollout_spec(
        CANDIDATE,
        template={},
        slices=[specs.by_header(s, "x-segment", s) for s in slices],
        strategy={"canary": {"steps": [{"weight": 10, "pause": "1m"}, {"weight": 50}]}},
        analysis=analysis,
    )
    spec["model"]["uri"] = "s3://models/recommender/v1.5"
    return specs.parsed(spec)


def counts(
    table: Mapping[tuple[str, str], tuple[float, float]],
    *,
    code_label: str = "code",
    version_label: str = "version",
) -> list[Sample]:
    """Samples of a counts query from {(slice, version): (requests, errors)}: errors as code 503, rest 200."""
    out: list[Sample] = []
    for (slice_name, version), (requests, errors) in table.items():
        base = {"slice": slice_name, version_label: version}
        out.append(Sample({**base, code_label: "200"}, requests - errors))
        out.append(Sample({**base, code_label: "503"}, errors))
    return out


def buckets(
    table: Mapping[tuple[str, str], Mapping[float, float]],
    *,
    version_label: str = "version",
    le_scale: float = 1.0,
) -> list[Sample]:
    """Samples of a bucket query from {(slice, version): {le: cumulative count}} (le in seconds)."""
    out: list[Sample] = []
    for (slice_name, version), histogram in table.items():
        for le, count in histogram.items():
            text = "+Inf" if le == float("inf") else repr(le * le_scale)
            out.append(Sample({"slice": slice_name, version_label: version, "le": text}, count))
    return out


def values(table: Mapping[tuple[str, str], float]) -> list[Sample]:
    """Samples of a custom query from {(slice, version): value}."""
    return [Sample({"slice": s, "version": v}, value) for (s, v), value in table.items()]
