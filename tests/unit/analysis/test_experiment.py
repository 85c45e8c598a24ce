"""The A/B assignment rule and the anytime-valid comparison."""

from __future__ import annotations

import math
import random
import re

import pytest

from modelrollout.analysis.experiment import Arm, compare, decode_counts, disagreeing
from modelrollout.analysis.results import Sample
from modelrollout.api.experiment import Assignment, bucket_of, required_trials

SUFFIXES = [f"{i:02x}" for i in range(256)]


@pytest.mark.parametrize("percent", [0.5, 1, 5, 10, 12.5, 20, 33.3, 50, 62.5, 70, 90, 99, 99.6])
def test_the_header_regex_takes_exactly_the_candidates_buckets_in_either_case(percent: float) -> None:
    rule = Assignment(header="x-user-id", candidate_percent=percent)
    pattern = re.compile(rule.regex())
    for suffix in SUFFIXES:
        for key in (f"user-{suffix}", f"user-{suffix.upper()}"):
            wanted = int(suffix, 16) < rule.candidate_buckets()
            assert bool(pattern.fullmatch(key)) == wanted, (percent, key, rule.regex())
    assert abs(rule.actual_percent() - percent) <= 100 / 256 / 2 + 1e-9


def test_ids_that_do_not_end_in_two_hex_characters_stay_on_stable() -> None:
    pattern = re.compile(Assignment(header="x-user-id", candidate_percent=99).regex())
    for key in ("", "a", "user-zz", "user-0g", "user-0-"):
        assert not pattern.fullmatch(key)
        assert bucket_of(key) is None


def test_the_cookie_rule_reads_the_named_cookie_only() -> None:
    rule = Assignment(cookie="uid", candidate_percent=50)
    pattern = re.compile(rule.regex())
    assert pattern.fullmatch("uid=abc00")
    assert pattern.fullmatch("theme=dark; uid=abc7f; lang=en")
    assert not pattern.fullmatch("uid=abc80")
    assert not pattern.fullmatch("xuid=abc00; uid=abc80")


def test_the_split_of_uniform_uuids_is_within_a_point_of_the_asked_share() -> None:
    rng = random.Random(7)
    rule = Assignment(header="x-user-id", candidate_percent=30)
    pattern = re.compile(rule.regex())
    ids = [f"{rng.getrandbits(128):032x}" for _ in range(20000)]
    share = 100 * sum(bool(pattern.fullmatch(i)) for i in ids) / len(ids)
    assert abs(share - 30) < 1.0


def test_required_trials_match_the_textbook_figure() -> None:
    # Two-sided 5%, 80% power, 10% -> 11%: the usual figure is about 14,750 per arm.
    assert required_trials(0.10, 0.10, 0.05, 0.8) == 14749


def test_no_verdict_before_the_minimum_data() -> None:
    result = compare(Arm(5, 100), Arm(50, 100), alpha=0.05, tau=0.01)
    assert not result.enough
    assert result.direction == "none"


def test_a_clear_effect_is_significant_and_its_interval_covers_it() -> None:
    result = compare(Arm(1000, 10000), Arm(1300, 10000), alpha=0.05, tau=0.01)
    assert result.direction == "better"
    assert result.low < 0.03 < result.high
    worse = compare(Arm(1300, 10000), Arm(1000, 10000), alpha=0.05, tau=0.01)
    assert worse.direction == "worse"


def test_equal_arms_are_not_significant() -> None:
    result = compare(Arm(1000, 10000), Arm(1000, 10000), alpha=0.05, tau=0.01)
    assert result.direction == "none"
    assert result.low < 0 < result.high
    assert math.isclose(result.effect, 0.0)


def test_slices_pointing_the_other_way_are_named() -> None:
    overall = compare(Arm(3000, 30000), Arm(3300, 30000), alpha=0.05, tau=0.01)
    slices = {
        "ios": compare(Arm(1000, 10000), Arm(1300, 10000), alpha=0.05, tau=0.01),
        "android": compare(Arm(1000, 10000), Arm(800, 10000), alpha=0.05, tau=0.01),
    }
    assert disagreeing(overall, slices) == ["android"]


def test_counts_are_decoded_per_slice_and_arm() -> None:
    def sample(slice_name: str, version: str, value: float) -> Sample:
        return Sample(value=value, labels={"slice": slice_name, "version": version})

    counts = decode_counts(
        [sample("ios", "v1", 10), sample("ios", "v2", 12), sample("ios", "v9", 99)],
        [sample("ios", "v1", 100), sample("ios", "v2", 100)],
        "v1",
        "v2",
    )
    assert counts == {"ios": {"stable": Arm(10, 100), "canary": Arm(12, 100)}}
