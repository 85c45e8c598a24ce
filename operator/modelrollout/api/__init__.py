"""The ModelRollout API: pydantic models of spec and status, the single source of truth.

The CRD (`crd`) and the field reference are generated from these models; `validation` turns a model's
refusal into `path: message` lines worded as admission words them; `commands` reads the command annotations.
Pure: no I/O.
"""

from modelrollout.api.guards import Analysis, Guard, Thresholds
from modelrollout.api.spec import ModelRolloutSpec, Slice
from modelrollout.api.status import ModelRolloutStatus, Phase
from modelrollout.api.validation import describe, lint_spec

__all__ = [
    "Analysis",
    "Guard",
    "ModelRolloutSpec",
    "ModelRolloutStatus",
    "Phase",
    "Slice",
    "Thresholds",
    "describe",
    "lint_spec",
]
