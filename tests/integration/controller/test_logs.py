"""`--log-format json` makes every line the operator writes a JSON object; `text` writes none.

The run covers start-up, a rollout's initial deploy and shadow (judged against a Prometheus that is not
there), a warning from our own code (a notification nobody receives), the HTTP client's, the health and the
metrics endpoints' lines, and the shutdown after SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .helpers import (
    MODEL,
    Operator,
    closed_port_url,
    condition,
    create_rollout,
    eventually,
    patch_rollout,
    phase_is,
    release_rollouts,
    rollout_spec,
    tracebacks_from_our_code,
)

if TYPE_CHECKING:
    from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration
NAME = "logged"


def as_json(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@pytest.mark.parametrize("log_format", ["json", "text"])
async def test_log_format(cluster: Cluster, kube: NamespacedApi, tmp_path: Path, log_format: str) -> None:
    ns, api = kube.namespace, kube.api
    nowhere = closed_port_url("/hook")
    operator = Operator(cluster.kubeconfig, ns, tmp_path, log_format=log_format)
    try:
        await asyncio.to_thread(operator.start)
        notify = {"notify": [{"webhook": {"url": nowhere, "timeout": "1s"}}]}
        await create_rollout(api, ns, NAME, rollout_spec("v1", closed_port_url(), rollback=notify))
        await eventually(api, ns, NAME, phase_is("Succeeded"), "v1 Succeeded", operator=operator)
        # v2 in shadow, judged against a Prometheus that is not there: the analysis path logs too.
        await patch_rollout(
            api, ns, NAME, {"spec": {"model": {"version": "v2", "uri": f"s3://models/{MODEL}/v2"}}}
        )
        await eventually(
            api,
            ns,
            NAME,
            lambda s: (condition(s, "MetricsAvailable") or {}).get("status") == "False",
            "MetricsAvailable=False",
            operator=operator,
        )
        await operator.metrics()  # the metrics endpoint must not write plain lines either
        deadline = time.monotonic() + 10
        while f"notification to {nowhere} failed" not in operator.log_text():
            assert time.monotonic() < deadline, operator.log_tail()
            await asyncio.sleep(0.2)
    finally:
        await asyncio.to_thread(operator.stop)
        await release_rollouts(api, ns)

    assert tracebacks_from_our_code(operator.log_text()) == []
    lines = [line for line in operator.log_text().splitlines() if line.strip()]
    assert len(lines) >= 5, lines
    parsed = [as_json(line) for line in lines]
    if log_format == "json":
        bad = [line for line, value in zip(lines, parsed, strict=True) if value is None]
        assert bad == [], f"{len(bad)} of {len(lines)} lines are not JSON objects:\n" + "\n".join(bad[:20])
        ours = [v for v in parsed if v and f"notification to {nowhere} failed" in str(v.get("message"))]
        assert ours, "our own warning is in the JSON log"
        assert ours[0].get("severity", ours[0].get("levelname", "")).lower().startswith("warn"), ours[0]
        assert any("Operator is stopping" in str(v.get("message")) for v in parsed if v), (
            "shutdown logged as JSON"
        )
    else:
        assert parsed == [None] * len(lines), [line for line, v in zip(lines, parsed, strict=True) if v]
        assert any(f"notification to {nowhere} failed" in line for line in lines)
