"""Rollback safety: can the stable version take requests shaped for the candidate?

Once clients see the candidate they may start sending its request shape. A rollback that puts stable back in
front of those requests is only safe when stable can read them; this is decided before any traffic moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelrollout.api.spec import Feature, ServingSchema


@dataclass(frozen=True)
class SafetyResult:
    """The verdict, and one sentence per problem (or per reason it could not be checked)."""

    safe: bool
    reasons: list[str] = field(default_factory=list)
    checked: bool = True
    """False when a schema was missing: `safe` is then True by convention, but nothing was verified."""


def _describe(feature: Feature) -> str:
    return f"{feature.type}, {'required' if feature.required else 'optional'}"


def check_rollback_safety(stable: ServingSchema | None, candidate: ServingSchema | None) -> SafetyResult:
    """Whether rolling back from the candidate to stable would break on candidate-shaped requests."""
    missing = [side for side, schema in (("stable", stable), ("candidate", candidate)) if schema is None]
    if stable is None or candidate is None:
        which = " and the ".join(missing)
        verb = "declare" if len(missing) > 1 else "declares"
        return SafetyResult(
            safe=True,
            reasons=[f"rollback safety could not be checked: the {which} version {verb} no serving schema."],
            checked=False,
        )

    offered = {f.name: f for f in candidate.features}
    known = {f.name: f for f in stable.features}
    reasons: list[str] = []
    for feature in stable.features:
        other = offered.get(feature.name)
        if other is None:
            if feature.required:
                reasons.append(
                    f"feature {feature.name!r} is required by stable but absent from the candidate's schema, "
                    "so candidate-shaped requests will not carry it."
                )
            continue
        if other.type != feature.type:
            reasons.append(
                f"feature {feature.name!r} is {feature.type} for stable but {other.type} for the candidate, "
                "so stable would misread candidate-shaped requests."
            )
        elif feature.required and not other.required:
            reasons.append(
                f"feature {feature.name!r} is required by stable but optional for the candidate, "
                "so candidate-shaped requests may omit it."
            )
    if stable.extra_features == "reject":
        for feature in candidate.features:
            if feature.name not in known:
                reasons.append(
                    f"feature {feature.name!r} ({_describe(feature)}) is sent by candidate-shaped requests, "
                    "but stable does not know it and rejects unknown features."
                )
    return SafetyResult(safe=not reasons, reasons=reasons)
