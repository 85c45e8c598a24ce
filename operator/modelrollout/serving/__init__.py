"""A small library for model servers: model-ready and liveness endpoints, predictions, per-slice metrics."""

from modelrollout.identity import DEFAULT_SLICE
from modelrollout.serving.app import (
    PredictionError,
    RequestContext,
    ServedModel,
    ServingConfig,
    create_app,
    serve,
)
from modelrollout.serving.metrics import ServingMetrics
from modelrollout.serving.predictions import Prediction
from modelrollout.serving.slices import SliceClassifier, parse_slices

__all__ = [
    "DEFAULT_SLICE",
    "Prediction",
    "PredictionError",
    "RequestContext",
    "ServedModel",
    "ServingConfig",
    "ServingMetrics",
    "SliceClassifier",
    "create_app",
    "parse_slices",
    "serve",
]
