"""Pure rendering of each version's Deployment and Service (labels, MODEL_* env, model-load probes) and
the version's reproducibility fingerprint. No I/O; refusals are `InvalidTemplate` naming the field."""

from modelrollout.workloads.render import fingerprint, render_deployment, render_service, template_hash

__all__ = ["fingerprint", "render_deployment", "render_service", "template_hash"]
