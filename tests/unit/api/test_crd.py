"""crds/modelrollout.yaml is what the models render, byte for byte."""

from __future__ import annotations

import difflib
from pathlib import Path

from modelrollout.api.crd import render

CRD_FILE = Path(__file__).resolve().parents[3] / "crds" / "modelrollout.yaml"


def test_committed_crd_matches_the_models() -> None:
    rendered = render()
    committed = CRD_FILE.read_text()
    if rendered != committed:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(keepends=True),
                    rendered.splitlines(keepends=True),
                    "crds/modelrollout.yaml (committed)",
                    "rendered from operator/modelrollout/api",
                )
            )[:40]
        )
        raise AssertionError(
            "crds/modelrollout.yaml is stale: the API models changed without regenerating it. "
            f"Run `make crds` and commit the result.\n{diff}"
        )
