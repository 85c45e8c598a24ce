"""modelrollout: progressive delivery of ML model versions with per-slice judged canaries."""

__version__ = "0.1.0"
