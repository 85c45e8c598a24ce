"""Without Istio's CRDs beside the project (a user's own clone), the sandbox installs its minimal
VirtualService CRD, which still refuses the two mistakes the operator must never write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelrollout.sandbox import cluster
from modelrollout.sandbox.cluster import Sandbox
from tests.integration.sandbox.test_sandbox import _virtual_service

pytestmark = pytest.mark.integration


def test_the_minimal_virtual_service_crd_types_weights_and_header_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster, "ISTIO_CRDS", tmp_path / "no-istio-here")
    lines: list[str] = []
    sandbox = Sandbox(tmp_path / "sandbox", log=lines.append)
    sandbox.up()
    try:
        assert any("modelrollout's minimal VirtualService CRD" in line for line in lines)

        def create(body: dict[str, object]) -> tuple[int, str]:
            result = sandbox.kubectl("create", "-f", "-", stdin=json.dumps(body), check=False)
            return result.returncode, result.stderr

        assert create(_virtual_service(90, {"exact": "ios"}))[0] == 0
        code, error = create(
            {**_virtual_service("90.5", {"exact": "ios"}), "metadata": {"name": "fractional"}}
        )
        assert code != 0
        assert "weight" in error
        code, error = create(
            {**_virtual_service(90, {"exact": "ios", "regex": "i.*"}), "metadata": {"name": "both"}}
        )
        assert code != 0
        assert "x-platform" in error
    finally:
        sandbox.down()
