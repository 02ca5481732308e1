"""The trust criterion (pruning_limits.regime) and the evidence file it quotes."""

from __future__ import annotations

import json
import math

import pytest

from pruning_limits import PruningLimitsError
from pruning_limits.limits import FLAT_KNEE
from pruning_limits.regime import (
    EVIDENCE_FILE, IN_REGIME, KNEE_MIN_SPARSITY, OUTSIDE, read_evidence, trust_level, write_evidence_section,
)

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
    assert trust_level(80.0, None, evidence=EVIDENCE).reason().startswith("λ not recorded (judged by the knee alone); sharp knee")
    assert trust_level(3.0, None, evidence=EVIDENCE).reason().endswith("below 25; λ not recorded")  # outside too
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


def test_knee_min_sparsity_is_where_a_kneeless_network_passes_the_knee_test():
    """Gaussian weights (no knee): R² ∝ s³ near 0, so d ln R/ds ≈ 1.5/s ≥ FLAT_KNEE below 1.5/FLAT_KNEE."""
    import numpy as np

    from pruning_limits.limits import knee_steepness, magnitude_distance_curve

    assert KNEE_MIN_SPARSITY == pytest.approx(1.5 / FLAT_KNEE) and KNEE_MIN_SPARSITY == pytest.approx(0.06)
    curve = magnitude_distance_curve(np.random.default_rng(0).standard_normal(200_000))
    for s in (0.03, 0.05):
        assert knee_steepness(curve, s) == pytest.approx(1.5 / s, rel=0.1) and knee_steepness(curve, s) > FLAT_KNEE
    assert knee_steepness(curve, 0.2) < FLAT_KNEE  # above it the test tells the kneeless network apart
    below = trust_level(293.0, None, evidence=EVIDENCE, sparsity=0.0)  # validate --epsilon 1e-30 on a λ = 0 network
    assert below.level == OUTSIDE and below.retrain
    assert below.reason().startswith("no knee test: s* = 0.0 % is below 6 %, where d ln R/ds ≥ 1.5/s for any network")
    assert trust_level(293.0, 1e-3, evidence=EVIDENCE, sparsity=0.059).level == OUTSIDE
    assert trust_level(293.0, 1e-3, evidence=EVIDENCE, sparsity=KNEE_MIN_SPARSITY).level == IN_REGIME
    assert "the unstructured s* = 4.0 %" in trust_level(293.0, 1e-3, evidence=EVIDENCE, sparsity=0.04, knee_at="the unstructured s*").reason()


@pytest.mark.parametrize("l1", [-0.0128, float("nan"), float("inf")])
def test_a_negative_or_non_finite_lambda_is_not_l1_training(l1):
    trust = trust_level(30.0, l1, evidence=EVIDENCE)
    assert "l1-trained" not in trust.reason()
    if l1 < 0:
        assert trust.level == OUTSIDE and trust.reason() == "trained without l1 (recorded λ = -0.0128 ≤ 0)" and trust.l1 == l1
    else:  # unknown: judged by the knee alone
        assert trust.level == IN_REGIME and trust.l1 is None and trust.reason().startswith("λ not recorded")


def test_a_knee_sharp_at_batch_std_is_outside_at_this_epsilon_without_a_fine_tune():
    sharp = (0.0123, 147.0, 0.9)
    trust = trust_level(7.0, 0.0128, evidence=EVIDENCE, sparsity=0.25, epsilon=1e-9, batch_std=sharp)
    assert trust.level == OUTSIDE and trust.retrain is False and trust.to_dict()["retrain"] is False
    assert trust.reasons == (
        "flat knee at ε = 1e-09: d ln R/ds = 7 at s*, below 25",
        "at ε = batch-std (0.0123) the knee is sharp (d ln R/ds = 147): the prediction holds at the larger ε",
    )
    small = trust_level(300.0, 0.0128, evidence=EVIDENCE, sparsity=0.01, epsilon=1e-9, batch_std=sharp)
    assert not small.retrain and small.reason().startswith("no knee test at ε = 1e-09: s* = 1.0 %")
    # outside at batch-std too, or trained without l1, or no batch-std: the fine-tune is the advice
    assert trust_level(7.0, 0.0128, evidence=EVIDENCE, sparsity=0.25, epsilon=1e-9, batch_std=(0.0123, 12.0, 0.9)).retrain
    assert trust_level(7.0, 0.0128, evidence=EVIDENCE, sparsity=0.25, epsilon=1e-9, batch_std=(0.0123, 147.0, 0.03)).retrain
    assert trust_level(7.0, 0.0, evidence=EVIDENCE, sparsity=0.25, epsilon=1e-9, batch_std=sharp).retrain
    assert trust_level(7.0, 0.0128, evidence=EVIDENCE, sparsity=0.25, epsilon=1e-9).retrain
    assert not trust_level(80.0, 0.0128, evidence=EVIDENCE).retrain  # in regime: nothing to do
