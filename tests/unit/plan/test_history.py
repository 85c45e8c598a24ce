"""The decision history stays bounded in bytes as well as entries, so status writes never outgrow etcd."""

from __future__ import annotations

import json

from modelrollout.api.status import EVIDENCE_LIMIT, HISTORY_LIMIT, HISTORY_MAX_BYTES
from modelrollout.plan.tick import bounded_history
from tests.support.largest_status import decisions, every_verdict, largest_status
from tests.support.world import guard


def _bytes(history: list[object]) -> int:
    return len(json.dumps([d.wire() for d in history]))  # type: ignore[attr-defined]


def test_rollbacks_citing_every_verdict_keep_history_under_its_byte_cap() -> None:
    history = decisions()
    assert _bytes(history) > 1_500_000, "the case must be one that would pass etcd's limit unbounded"
    kept = bounded_history(history)
    assert _bytes(kept) <= HISTORY_MAX_BYTES
    assert kept[-1].time == history[-1].time, "the newest decision is always kept"
    assert all(len(d.evidence) <= EVIDENCE_LIMIT for d in kept)
    assert len(kept) <= HISTORY_LIMIT


def test_trimmed_evidence_keeps_failing_verdicts_first() -> None:
    entry = decisions(1)[0]
    passing = [guard(f"p{i}", "Pass") for i in range(EVIDENCE_LIMIT)]
    failing = every_verdict()[:3]
    (kept,) = bounded_history([entry.model_copy(update={"evidence": passing + failing})])
    assert kept.evidence[:3] == failing


def test_the_largest_status_fits_well_under_etcds_object_limit() -> None:
    status = largest_status(decisions())
    assert len(json.dumps(status.wire())) < 1_200_000
