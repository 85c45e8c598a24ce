"""The controller: thin async glue around the pure planner, and the only place decisions become writes.

`handlers` wires kopf (one daemon per rollout); `tick` runs one reconcile: `observe` reads the world,
`modelrollout.plan` decides, `apply` writes routes then workloads, `record` writes status, Events and
notifications; `outbound` makes the HTTP calls a spec asks for (gates, notifications); `runtime` holds the
clients; `metrics` is the operator's own /metrics; `main` starts it all.
"""

from modelrollout.controller.runtime import Runtime
from modelrollout.controller.tick import Reconciler, TickReport

__all__ = ["Reconciler", "Runtime", "TickReport"]
