"""Per-slice analysis: PromQL templates (`queries`), pure judges and verdicts, and the Prometheus edge.

The pure part — `queries`, `judges`, `sequential`, `distributions`, `verdicts`, `results` — does no I/O.
`prometheus` (the HTTP client) and `run.analyze` (one tick's queries, concurrently, then judged) are the
only async, I/O-bearing modules; import them directly. This surface re-exports only pure names, so
importing the package never pulls in an HTTP client.
"""

from modelrollout.analysis.results import AnalysisResult, PrometheusError, Sample, SliceVerdict
from modelrollout.analysis.verdicts import judge

__all__ = ["AnalysisResult", "PrometheusError", "Sample", "SliceVerdict", "judge"]
