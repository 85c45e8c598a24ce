"""Kubernetes access: the only subpackage that imports `kubernetes` (or sees aiohttp, its transport).

Callers program against `KubeApi` (the protocol) and receive a `Kube` from `connect`; every failure, from
an HTTP error to an unreachable server, arrives as `KubeError`.
"""

from modelrollout.errors import KubeError
from modelrollout.kube.client import Kube, connect, default_namespace
from modelrollout.kube.protocol import KubeApi

__all__ = ["Kube", "KubeApi", "KubeError", "connect", "default_namespace"]
