"""What a model's answer is: a usable prediction, or a null one (null, empty or NaN), and the label it decides.

A broken model artifact often answers 200 with nothing in it: a null, an empty list, a NaN score. The serving
library answers such a request as the model did (HTTP 200, `"score": null`) and counts it as a null
prediction, so the `nullPredictionRate` guard sees what users see instead of a masked 500.
"""

from __future__ import annotations

import math
from collections.abc import Sized
from dataclasses import dataclass
from typing import Any

DECISION_THRESHOLD = 0.5
"""A score at or above this decides label "1", below it "0", when the model gives no label of its own."""

Label = str | int | bool


@dataclass(frozen=True)
class Prediction:
    """A model's answer to one request: a score, a label, or both (at least one, for a usable prediction)."""

    score: float | None = None
    """A score in the model's own range (the score histogram covers [0, 1])."""
    label: Label | None = None
    """The decided class or outcome, compared with the true label sent as feedback."""


class NotAPrediction(TypeError):
    """The model returned something that is neither a prediction nor a null one (a bug in the model code)."""


def normalise_label(value: Any) -> str | None:
    """A label as compared: booleans as "1"/"0", whole floats as integers, text as it is; None for none."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value if value.strip() else None
    raise NotAPrediction(f"a label is text, a number or a boolean, not {type(value).__name__}")


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NotAPrediction(f"a score is a number, not {type(value).__name__}")
    return float(value) if math.isfinite(value) else None


def interpret(raw: Any) -> Prediction | None:
    """The model's return value as a usable Prediction, or None for a null prediction.

    Null: None, a NaN or infinite score, an empty string or collection, or a Prediction with neither a
    finite score nor a label. Raises NotAPrediction for anything else a model should not return.
    """
    if raw is None:
        return None
    if isinstance(raw, Prediction):
        score = _finite(raw.score) if raw.score is not None else None
        label = normalise_label(raw.label)
        return Prediction(score=score, label=label) if score is not None or label is not None else None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        score = _finite(raw)
        return Prediction(score=score) if score is not None else None
    if isinstance(raw, str | Sized) and len(raw) == 0:
        return None
    raise NotAPrediction(f"the model returned a {type(raw).__name__}; return a number, a Prediction or None")


def decided_label(prediction: Prediction | None) -> str | None:
    """The label an answer stands for: the model's own, else the score against DECISION_THRESHOLD."""
    if prediction is None:
        return None
    if prediction.label is not None:
        return str(prediction.label)
    assert prediction.score is not None
    return "1" if prediction.score >= DECISION_THRESHOLD else "0"
