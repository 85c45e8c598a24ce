"""The pure rollout state machine: (spec, status, observations) -> (new status, actions).

No I/O: the controller observes the world, calls `plan`, and applies the actions it returns. The surface:
`needs` (what to observe this tick), `plan` (the decision), the observation and action types, and
`capacity_weight` (how much traffic model-ready replicas carry).
"""

from modelrollout.plan.actions import Action, EnsureWorkload, Event, Notify, Plan, RemoveWorkload, SetRoutes
from modelrollout.plan.capacity import capacity_weight
from modelrollout.plan.machine import AnalysisRequest, analysis_request, judged_phase, needs, plan
from modelrollout.plan.observations import Commands, GateResult, Needs, Observations, WorkloadState

__all__ = [
    "Action",
    "AnalysisRequest",
    "Commands",
    "EnsureWorkload",
    "Event",
    "GateResult",
    "Needs",
    "Notify",
    "Observations",
    "Plan",
    "RemoveWorkload",
    "SetRoutes",
    "WorkloadState",
    "analysis_request",
    "capacity_weight",
    "judged_phase",
    "needs",
    "plan",
]
