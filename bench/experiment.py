"""A/B experiment statistics: the false-positive rate over simulated A/A experiments checked every interval,
and the power at the declared effect.

Each simulated experiment draws, per interval, Bernoulli conversions for both arms (the same rate for A/A,
+10% for A/B) and runs the operator's own comparison (`analysis.experiment.compare`) after every interval,
stopping at the first significant verdict or at the sample cap (twice the fixed-horizon size, as the
operator's default). The false-positive rate must stay at or under alpha although it is checked every
interval; the power is the share of A/B runs called better by the cap.
"""

from __future__ import annotations

import random
import time
from typing import Any

from rich.console import Console

from modelrollout.analysis.experiment import Arm, compare
from modelrollout.api.experiment import cap_of, required_trials

BASELINE = 0.10
EFFECT = 0.10
ALPHA = 0.05
POWER = 0.8
PER_INTERVAL = 250
"""Trials per arm per interval (the looks: one per interval)."""


def _binomial(rng: random.Random, trials: int, p: float) -> int:
    return sum(rng.random() < p for _ in range(trials))


def _run(rng: random.Random, p_stable: float, p_candidate: float, cap: int) -> tuple[str, int]:
    stable = candidate = Arm(0.0, 0.0)
    looks = 0
    tau = EFFECT * BASELINE
    while stable.trials < cap:
        stable = stable + Arm(_binomial(rng, PER_INTERVAL, p_stable), PER_INTERVAL)
        candidate = candidate + Arm(_binomial(rng, PER_INTERVAL, p_candidate), PER_INTERVAL)
        looks += 1
        verdict = compare(stable, candidate, alpha=ALPHA, tau=tau).direction
        if verdict != "none":
            return verdict, looks
    return "none", looks


def simulate(experiments: int, seed: int = 11) -> dict[str, Any]:
    """A/A false-positive rate and A/B power over `experiments` runs each."""
    rng = random.Random(seed)
    cap = cap_of(required_trials(BASELINE, EFFECT, ALPHA, POWER), None)
    assert cap is not None
    aa = [_run(rng, BASELINE, BASELINE, cap) for _ in range(experiments)]
    ab = [_run(rng, BASELINE, BASELINE * (1 + EFFECT), cap) for _ in range(experiments)]
    better = [looks for verdict, looks in ab if verdict == "better"]
    return {
        "experiments": experiments,
        "alpha": ALPHA,
        "looks_per_experiment": cap // PER_INTERVAL,
        "cap_trials_per_arm": cap,
        "false_positive_rate": sum(v != "none" for v, _ in aa) / experiments,
        "power": len(better) / experiments,
        "wrong_direction_rate": sum(v == "worse" for v, _ in ab) / experiments,
        "median_looks_to_detect": sorted(better)[len(better) // 2] if better else None,
    }


def run(console: Console, experiments: int = 300) -> dict[str, Any]:
    started = time.monotonic()
    result = simulate(experiments)
    result["seconds"] = round(time.monotonic() - started, 1)
    console.print(
        f"  A/A false-positive rate {result['false_positive_rate']:.3f} (alpha {ALPHA}) over {experiments} "
        f"experiments checked {result['looks_per_experiment']} times each; power at +{EFFECT:.0%} "
        f"{result['power']:.2f} (cap {result['cap_trials_per_arm']} trials per arm; median "
        f"{result['median_looks_to_detect']} looks to detect)"
    )
    return result
