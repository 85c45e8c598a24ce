"""Istio's own judgement of what the operator writes: `istioctl validate` (the checks istiod's admission webhook
runs, which the sandbox does not have) on every version of an object written during a test, and
`istioctl analyze` on a live namespace. istioctl is built from the pinned istio.io/istio module (`make tools`).

`WriteRecorder` keeps every version of the objects of one resource stored in a namespace while it runs (a
watch, so no write is missed between two reads); any provider's objects can be recorded (pass `resource`, e.g.
"httproutes.gateway.networking.k8s.io"). `validate` refuses kinds istioctl does not validate: for those (Gateway
API's HTTPRoute included) `istioctl validate` prints "valid" without checking anything; their upstream
validation is their CRD's schema and CEL rules, which the API server runs, and `istioctl analyze` of the
namespace. `assert_routes_valid` is the check the e2e scenarios make after each run.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from modelrollout.sandbox.tools import binary

VALIDATED_GROUPS = frozenset(
    {"networking.istio.io", "security.istio.io", "telemetry.istio.io", "extensions.istio.io"}
)
"""API groups whose kinds `istioctl validate` really validates (its Pilot collections)."""
VIRTUAL_SERVICES = "virtualservices.networking.istio.io"


class NotValidated(ValueError):
    """An object istioctl validate would call valid without checking it."""


@dataclass(frozen=True)
class Invalid:
    """One stored version istioctl refuses, with its errors."""

    name: str
    resource_version: str
    errors: str


@dataclass(frozen=True)
class Message:
    """One `istioctl analyze` message."""

    code: str
    level: str
    message: str
    origin: str


def _istioctl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary("istioctl")), *args], input=stdin, capture_output=True, text=True, timeout=120
    )


def _group(obj: Mapping[str, Any]) -> str:
    api_version = str(obj.get("apiVersion", ""))
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def validate(objects: Sequence[Mapping[str, Any]]) -> list[Invalid]:
    """`istioctl validate` on each object; the ones it refuses, with its errors (empty: all valid)."""
    for obj in objects:
        if _group(obj) not in VALIDATED_GROUPS:
            raise NotValidated(
                f"istioctl validate does not check {obj.get('apiVersion')} {obj.get('kind')}: "
                "it would call it valid without looking"
            )
    if not objects:
        return []
    with tempfile.TemporaryDirectory(prefix="istioctl-validate-") as tmp:
        files = []
        for index, obj in enumerate(objects):
            path = Path(tmp) / f"{index:05d}.yaml"
            path.write_text(yaml.safe_dump(dict(obj)))
            files.append(path)
        everything = _istioctl("validate", *(f"--filename={p}" for p in files))
        if everything.returncode == 0:
            return []
        # One run for all found a problem: one run per object says which versions.
        invalid = []
        for path, obj in zip(files, objects, strict=True):
            alone = _istioctl("validate", f"--filename={path}")
            if alone.returncode != 0:
                meta = obj.get("metadata") or {}
                invalid.append(
                    Invalid(str(meta.get("name")), str(meta.get("resourceVersion")), alone.stderr.strip())
                )
        if not invalid:
            raise AssertionError(f"istioctl validate failed on the set but on no object: {everything.stderr}")
        return invalid


def assert_routes_valid(kubeconfig: Path, namespace: str, written: Sequence[Mapping[str, Any]]) -> None:
    """Every version written passes `istioctl validate` (for Istio kinds), and `istioctl analyze` finds no
    Error in the namespace: the checks istiod would make, which the sandbox's API server does not."""
    assert written, "nothing was written"
    istio_kinds = [obj for obj in written if _group(obj) in VALIDATED_GROUPS]
    refused = validate(istio_kinds)
    assert not refused, "istioctl validate refuses objects the operator wrote:\n" + "\n".join(
        f"{r.name} (resourceVersion {r.resource_version}): {r.errors}" for r in refused
    )
    found = errors(analyze(kubeconfig, namespace))
    assert not found, f"istioctl analyze: {found}"


def analyze(kubeconfig: Path, namespace: str) -> list[Message]:
    """`istioctl analyze` of a live namespace: every message it has, with its level."""
    result = _istioctl("analyze", f"--kubeconfig={kubeconfig}", f"--namespace={namespace}", "--output=json")
    try:
        found = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"istioctl analyze failed ({result.returncode}): {result.stderr}") from None
    return [Message(m["code"], m["level"], m["message"], m.get("origin", "")) for m in found]


def errors(messages: Iterable[Message]) -> list[Message]:
    return [m for m in messages if m.level == "Error"]


class WriteRecorder:
    """Every stored version of one resource's objects in a namespace, from `start` to `stop` (a kubectl
    watch; the namespace may not exist yet when it starts)."""

    def __init__(self, kubeconfig: Path, namespace: str, resource: str = VIRTUAL_SERVICES) -> None:
        self.command = [
            str(binary("kubectl")),
            f"--kubeconfig={kubeconfig}",
            "get",
            resource,
            f"--namespace={namespace}",
            "--watch",
            "--output-watch-events",
            "--output=json",
        ]
        self._sink = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in stop)
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> WriteRecorder:
        self._process = subprocess.Popen(self.command, stdout=self._sink, stderr=subprocess.PIPE, text=True)
        return self

    def stop(self) -> list[dict[str, Any]]:
        """Stops watching; every distinct version seen, in the order stored."""
        assert self._process is not None, "start() first"
        self._process.terminate()
        _, err = self._process.communicate(timeout=30)
        self._sink.seek(0)
        text = self._sink.read()
        self._sink.close()
        versions: dict[str, dict[str, Any]] = {}
        decoder = json.JSONDecoder()
        position = 0
        while True:
            while position < len(text) and text[position].isspace():
                position += 1
            if position >= len(text):
                break
            event, position = decoder.raw_decode(text, position)
            obj = event.get("object") or {}
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if event.get("type") in ("ADDED", "MODIFIED") and version and version not in versions:
                versions[version] = obj
        if not versions and err.strip():
            raise AssertionError(f"the watch of {self.command[3]} failed: {err.strip()}")
        return list(versions.values())

    def __enter__(self) -> WriteRecorder:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
