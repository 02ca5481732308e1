"""The trust criterion (pruning_limits.regime) and the evidence file it quotes."""

from __future__ import annotations

import json
import math

import pytest

from pruning_limits import PruningLimitsError
from pruning_limits.limits import FLAT_KNEE
from pruning_limits.regime import EVIDENCE_FILE, IN_REGIME, OUTSIDE, read_evidence, trust_level, write_evidence_section

EVIDENCE = {
    "flat_knee": {"runs": 5, "blind_runs": 2, "gaps": [1.5, 9.0]},
    "suite": {"in_regime": {"runs": 3, "gaps": [-0.4, 1.2]}, "controls": {"runs": 4, "gaps": [11.0, 30.0]}},
}


@pytest.mark.parametrize(
    "steepness, l1, level",
    [
        (FLAT_KNEE, 1e-3, IN_REGIME),  # the level itself counts as sharp (>=)
        (FLAT_KNEE + 50, 1e-3, IN_REGIME),
        (FLAT_KNEE - 0.01, 1e-3, OUTSIDE),  # flat knee
        (FLAT_KNEE + 50, 0.0, OUTSIDE),  # trained without l1, however sharp
        (3.0, 0.0, OUTSIDE),
        (FLAT_KNEE + 50, None, IN_REGIME),  # λ unknown (TorchScript, state_dict): the knee decides
        (3.0, None, OUTSIDE),
        (math.nan, 1e-3, OUTSIDE),  # undefined steepness
    ],
)
def test_trust_level_follows_the_documented_criterion(steepness, l1, level):
    trust = trust_level(steepness, l1, evidence=EVIDENCE)
    assert trust.level == level and trust.in_regime == (level == IN_REGIME)
    record = trust.to_dict()
    assert json.loads(json.dumps(record))["level"] == level


def test_reasons_and_evidence_are_words_from_the_evidence_file():
    inside = trust_level(80.0, 2e-3, evidence=EVIDENCE)
    assert inside.reason() == f"l1-trained (λ = 0.002); sharp knee: d ln R/ds = 80 at s*, at least {FLAT_KNEE:g}"
    assert inside.evidence == "on 3 such networks (docs/validation.md) predicted − measured was -0.4 to +1.2 points"
    flat = trust_level(12.4, 1e-3, evidence=EVIDENCE)
    assert flat.reason() == f"flat knee: d ln R/ds = 12 at s*, below {FLAT_KNEE:g}"
    assert flat.evidence == "on 5 l1 runs with a flat knee (2 blind) predicted − measured was +1.5 to +9.0 points"
    # the suite's own flat-knee l1 rows are quoted beside the carried-over section
    with_suite = {**EVIDENCE, "suite": {**EVIDENCE["suite"], "outside_l1": {"runs": 1, "gaps": [-1.2, -1.2]}}}
    assert trust_level(12.4, 1e-3, evidence=with_suite).evidence == (
        "on 5 l1 runs with a flat knee (2 blind) predicted − measured was +1.5 to +9.0 points; "
        "on the suite's 1 l1 network with a flat knee -1.2 points"
    )
    # just below the level the rounded value read "= 25 ... below 25"
    assert trust_level(FLAT_KNEE - 0.06, 1e-3, evidence=EVIDENCE).reason() == (
        f"flat knee: d ln R/ds = {FLAT_KNEE - 0.1:.1f} at s*, below {FLAT_KNEE:g}"
    )
    control = trust_level(3.0, 0.0, evidence=EVIDENCE)
    assert control.reason().startswith("trained without l1 (λ = 0); flat knee")
    assert control.evidence == "on 4 λ = 0 networks (docs/validation.md) predicted − measured was +11.0 to +30.0 points"
    assert trust_level(3.0, 0.0, evidence={}).evidence == ""  # no evidence, no numbers
    assert trust_level(80.0, None, evidence=EVIDENCE).reason().startswith("λ not recorded")
    # the network's verdict on a structure's answer names where its knee was taken
    unstructured = "the unstructured s*"
    assert trust_level(80.0, 2e-3, evidence=EVIDENCE, knee_at=unstructured).reason().endswith(
        f"d ln R/ds = 80 at the unstructured s*, at least {FLAT_KNEE:g}")
    assert f"= 12 at {unstructured}, below" in trust_level(12.4, 1e-3, evidence=EVIDENCE, knee_at=unstructured).reason()
    assert trust_level(float("nan"), 1e-3, evidence=EVIDENCE, knee_at=unstructured).reason() == f"knee of R(s) undefined at {unstructured}"


def test_evidence_file_round_trip_and_errors(tmp_path):
    path = tmp_path / "evidence.json"
    assert read_evidence(path) == {}
    write_evidence_section("suite", {"in_regime": {"runs": 1, "gaps": [0.1, 0.1]}}, path)
    write_evidence_section("flat_knee", {"runs": 2}, path)
    assert read_evidence(path) == {"suite": {"in_regime": {"runs": 1, "gaps": [0.1, 0.1]}}, "flat_knee": {"runs": 2}}
    path.write_text("{not json")
    with pytest.raises(PruningLimitsError, match="cannot read the evidence file"):
        read_evidence(path)
    path.write_text("[1, 2]")
    with pytest.raises(PruningLimitsError, match="must hold a JSON object"):
        read_evidence(path)


def test_the_installed_evidence_file_has_the_flat_knee_section():
    evidence = read_evidence()
    assert EVIDENCE_FILE.name == "evidence.json" and EVIDENCE_FILE.parent.name == "pruning_limits"
    assert {"runs", "blind_runs", "gaps"} <= set(evidence["flat_knee"])
    assert evidence["flat_knee"]["level"] == FLAT_KNEE
