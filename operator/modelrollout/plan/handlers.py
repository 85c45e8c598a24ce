"""Which handler runs in which phase (terminal phases have none)."""

from __future__ import annotations

from collections.abc import Callable

from modelrollout.plan.bluegreen import baking, preview
from modelrollout.plan.experiment import experiment
from modelrollout.plan.phases import canary, paused, pending, promoting, shadow, warming
from modelrollout.plan.tick import Tick

HANDLERS: dict[str, Callable[[Tick], None]] = {
    "Pending": pending,
    "Blocked": pending,
    "Warming": warming,
    "Shadow": shadow,
    "Canary": canary,
    "Preview": preview,
    "Baking": baking,
    "Experiment": experiment,
    "Promoting": promoting,
    "Paused": paused,
}
"""The phase handler run on each tick; terminal phases have none."""
