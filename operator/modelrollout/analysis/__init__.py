"""Per-slice analysis: PromQL templates, the Prometheus client, pure judges and verdicts (see run.analyze)."""
