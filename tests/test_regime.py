"""The trust criterion (pruning_limits.regime) and the evidence file it quotes."""

from __future__ import annotations

import json
import math

import pytest

from pruning_limits import PruningLimitsError
from pruning_limits.limits import FLAT_KNEE
from pruning_limits.regime import (
    EVIDENCE_FILE, IN_REGIME, KNEE_GUARD_ZEROS, KNEE_MIN_SPARSITY, OUTSIDE, read_evidence, trust_level, write_evidence_section,
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
    assert inside.reason() == f"l1-trained, λ = 0.002; sharp knee: d ln R/ds = 80 at s*, ≥ {FLAT_KNEE:g}"
    assert inside.evidence == "predicted − measured -0.4 to +1.2 points on 3 such networks"
    flat = trust_level(12.4, 1e-3, evidence=EVIDENCE)
    assert flat.reason() == f"flat knee: d ln R/ds = 12 at s*, < {FLAT_KNEE:g}"
    assert flat.evidence == "predicted − measured +1.5 to +9.0 points on 5 flat-knee l1 runs (2 blind)"
    # the suite's own flat-knee l1 rows are quoted beside the carried-over section
    with_suite = {**EVIDENCE, "suite": {**EVIDENCE["suite"], "outside_l1": {"runs": 1, "gaps": [-1.2, -1.2]}}}
    assert trust_level(12.4, 1e-3, evidence=with_suite).evidence == (
        "predicted − measured +1.5 to +9.0 points on 5 flat-knee l1 runs (2 blind); "
        "-1.2 points on the suite's 1 flat-knee l1 network"
    )
    # just below the level the rounded value read "= 25 ... below 25"
    assert trust_level(FLAT_KNEE - 0.06, 1e-3, evidence=EVIDENCE).reason() == (
        f"flat knee: d ln R/ds = {FLAT_KNEE - 0.1:.1f} at s*, < {FLAT_KNEE:g}"
    )
    control = trust_level(3.0, 0.0, evidence=EVIDENCE)
    assert control.reason().startswith("λ = 0, no l1; flat knee")
    assert control.evidence == "predicted − measured +11.0 to +30.0 points on 4 λ = 0 networks"
    assert trust_level(3.0, 0.0, evidence={}).evidence == ""  # no evidence, no numbers
    assert trust_level(80.0, None, evidence=EVIDENCE).reason().startswith("λ not recorded (judged by the knee alone); sharp knee")
    assert trust_level(3.0, None, evidence=EVIDENCE).reason().endswith("< 25; λ not recorded")  # outside too
    # the network's verdict on a structure's answer names where its knee was taken
    unstructured = "the unstructured s*"
    assert trust_level(80.0, 2e-3, evidence=EVIDENCE, knee_at=unstructured).reason().endswith(
        f"d ln R/ds = 80 at the unstructured s*, ≥ {FLAT_KNEE:g}")
    assert f"= 12 at {unstructured}, <" in trust_level(12.4, 1e-3, evidence=EVIDENCE, knee_at=unstructured).reason()
    assert trust_level(float("nan"), 1e-3, evidence=EVIDENCE, knee_at=unstructured).reason() == f"knee of R(s) undefined at {unstructured}"


def test_evidence_file_round_trip_and_errors(tmp_path):
    path = tmp_path / "evidence.json"
    assert read_evidence(path) == {}
    write_evidence_section("suite", {"in_regime": {"runs": 1, "gaps": [0.1, 0.1]}}, path)
    write_evidence_section("flat_knee", {"runs": 2, "blind_runs": 1, "gaps": [1.0, 2.0]}, path)
    assert read_evidence(path) == {
        "suite": {"in_regime": {"runs": 1, "gaps": [0.1, 0.1]}}, "flat_knee": {"runs": 2, "blind_runs": 1, "gaps": [1.0, 2.0]},
    }
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
    """Gaussian weights (no knee): R² ∝ s³ near 0, so d ln R/ds ≈ 1.5/s ≥ FLAT_KNEE below about
    1.5/FLAT_KNEE; the guard, 0.0626, is derived from the secant (the boundary test below)."""
    import numpy as np

    from pruning_limits.limits import knee_steepness, magnitude_distance_curve

    assert KNEE_MIN_SPARSITY == pytest.approx(0.06258, abs=1e-5) and KNEE_MIN_SPARSITY > 1.5 / FLAT_KNEE
    curve = magnitude_distance_curve(np.random.default_rng(0).standard_normal(200_000))
    for s in (0.03, 0.05):
        assert knee_steepness(curve, s) == pytest.approx(1.5 / s, rel=0.1) and knee_steepness(curve, s) > FLAT_KNEE
    assert knee_steepness(curve, 0.2) < FLAT_KNEE  # above it the test tells the kneeless network apart
    below = trust_level(293.0, None, evidence=EVIDENCE, sparsity=0.0)  # validate --epsilon 1e-30 on a λ = 0 network
    assert below.level == OUTSIDE and below.retrain
    assert below.reason().startswith(
        "no knee test: s* = 0.0 % is below 6.26 %, where weights without a knee pass it too"
    )
    assert trust_level(293.0, 1e-3, evidence=EVIDENCE, sparsity=0.062).level == OUTSIDE
    assert trust_level(293.0, 1e-3, evidence=EVIDENCE, sparsity=0.059).level == OUTSIDE
    assert trust_level(293.0, 1e-3, evidence=EVIDENCE, sparsity=KNEE_MIN_SPARSITY).level == IN_REGIME
    assert "the unstructured s* = 4.0 %" in trust_level(293.0, 1e-3, evidence=EVIDENCE, sparsity=0.04, knee_at="the unstructured s*").reason()


@pytest.mark.parametrize("l1", [-0.0128, float("nan"), float("inf")])
def test_a_negative_or_non_finite_lambda_is_not_l1_training(l1):
    trust = trust_level(30.0, l1, evidence=EVIDENCE)
    assert "l1-trained" not in trust.reason()
    if l1 < 0:
        assert trust.level == OUTSIDE and trust.reason() == "recorded λ = -0.0128 ≤ 0, no l1" and trust.l1 == l1
    else:  # unknown: judged by the knee alone
        assert trust.level == IN_REGIME and trust.l1 is None and trust.reason().startswith("λ not recorded")


def test_a_knee_sharp_at_batch_std_is_outside_at_this_epsilon_without_a_fine_tune():
    sharp = (0.0123, 147.0, 0.9)
    trust = trust_level(7.0, 0.0128, evidence=EVIDENCE, sparsity=0.25, epsilon=1e-9, batch_std=sharp)
    assert trust.level == OUTSIDE and trust.retrain is False and trust.to_dict()["retrain"] is False
    assert trust.reasons == (
        "flat knee at ε = 1e-09: d ln R/ds = 7 at s*, < 25",
        "at ε = batch-std (0.0123) the knee is sharp (d ln R/ds = 147): the prediction holds there",
    )
    # the common case is the other way round: an ε above batch-std, where the knee flattens. The
    # reason said "the prediction holds at the larger ε", the user's, where it does not (a review)
    large = trust_level(16.0, 0.0032, evidence=EVIDENCE, sparsity=0.894, epsilon=0.1, batch_std=(0.0106, 30.0, 0.826))
    assert large.level == OUTSIDE and large.retrain is False
    assert large.reasons == (
        "flat knee at ε = 0.1: d ln R/ds = 16 at s*, < 25",
        "at ε = batch-std (0.0106) the knee is sharp (d ln R/ds = 30): the prediction holds there",
    )
    for verdict in (trust, large):  # neither direction names a larger or smaller ε: batch-std is where it holds
        assert "larger" not in verdict.reason() and "smaller" not in verdict.reason()
        assert verdict.evidence.startswith("predicted − measured ") and "flat-knee l1 runs" in verdict.evidence
    small = trust_level(300.0, 0.0128, evidence=EVIDENCE, sparsity=0.01, epsilon=1e-9, batch_std=sharp)
    assert not small.retrain and small.reason().startswith("no knee test at ε = 1e-09: s* = 1.0 %")
    # outside at batch-std too, or trained without l1, or no batch-std: the fine-tune is the advice
    assert trust_level(7.0, 0.0128, evidence=EVIDENCE, sparsity=0.25, epsilon=1e-9, batch_std=(0.0123, 12.0, 0.9)).retrain
    assert trust_level(7.0, 0.0128, evidence=EVIDENCE, sparsity=0.25, epsilon=1e-9, batch_std=(0.0123, 147.0, 0.03)).retrain
    assert trust_level(7.0, 0.0, evidence=EVIDENCE, sparsity=0.25, epsilon=1e-9, batch_std=sharp).retrain
    assert trust_level(7.0, 0.0128, evidence=EVIDENCE, sparsity=0.25, epsilon=1e-9).retrain
    assert not trust_level(80.0, 0.0128, evidence=EVIDENCE).retrain  # in regime: nothing to do


def test_the_evidence_fits_the_reason():
    """Outside the regime the flat-knee runs were quoted whatever the reason, also for a knee the
    test cannot read (the s₀ guard, an undefined steepness), where the knee read sharp (a
    review: a 90 % pruned checkpoint, d ln R/ds = 128.7, no λ). No run was measured there: no evidence."""
    guard = trust_level(128.7, None, evidence=EVIDENCE, sparsity=0.905, zero_fraction=0.9)
    assert guard.level == OUTSIDE and guard.reasons[0].startswith("no knee test: s* = 90.5 % is less than 6.26 points above")
    assert guard.reasons[-1] == "λ not recorded" and guard.evidence == ""
    assert trust_level(293.0, 1e-3, evidence=EVIDENCE, sparsity=0.01).evidence == ""  # the guard, λ recorded
    assert trust_level(math.nan, 1e-3, evidence=EVIDENCE).evidence == ""  # an undefined knee
    # guarded at the user's ε, sharp at batch-std: still no flat-knee evidence
    assert trust_level(300.0, 0.0128, evidence=EVIDENCE, sparsity=0.01, epsilon=1e-9, batch_std=(0.0123, 147.0, 0.9)).evidence == ""
    # a flat knee keeps its runs (λ recorded or not); a network without l1 its λ = 0 networks, never the l1 runs
    for l1 in (1e-3, None):
        assert trust_level(12.4, l1, evidence=EVIDENCE).evidence.startswith("predicted − measured +1.5 to +9.0 points on 5 flat-knee")
    assert trust_level(12.4, 0.0, evidence=EVIDENCE).evidence.endswith("on 4 λ = 0 networks")
    assert trust_level(12.4, 0.0, evidence={"flat_knee": EVIDENCE["flat_knee"]}).evidence == ""
    assert trust_level(12.4, None, evidence={"suite": {"outside_l1": {"runs": 2, "gaps": [-1.2, 3.0]}}}).evidence == (
        "predicted − measured -1.2 to +3.0 points on the suite's 2 flat-knee l1 networks")


@pytest.mark.parametrize(
    "content, field",
    [
        ({"suite": {"in_regime": {"runs": 3}}}, "suite.in_regime.gaps must be [low, high]"),  # gaps missing
        ({"suite": {"in_regime": {"runs": 3, "gaps": [1.0]}}}, "suite.in_regime.gaps must be [low, high]"),  # one gap
        ({"suite": [1, 2]}, "suite must be a JSON object"),
        ({"suite": {"controls": {"runs": 3, "gaps": ["a", "b"]}}}, "suite.controls.gaps must be [low, high]"),
        ({"suite": {"outside_l1": {"runs": 1, "gaps": [2.0, 1.0]}}}, "suite.outside_l1.gaps must be [low, high]"),
        ({"suite": {"in_regime": {"runs": 1, "gaps": [True, 1.0]}}}, "suite.in_regime.gaps must be [low, high]"),
        ({"suite": {"in_regime": {"runs": "3", "gaps": [0.0, 1.0]}}}, "suite.in_regime.runs must be an integer >= 0"),
        ({"suite": {"in_regime": {"runs": -1, "gaps": [0.0, 1.0]}}}, "suite.in_regime.runs must be an integer >= 0"),
        ({"suite": {"in_regime": None}}, "suite.in_regime must be a JSON object"),
        ({"flat_knee": {"runs": 2, "blind_runs": 1.5, "gaps": [1.0, 2.0]}}, "flat_knee.blind_runs must be an integer >= 0"),
        ({"flat_knee": [1.3, 28.4]}, "flat_knee must be a JSON object"),
    ],
)
def test_damaged_evidence_contents_are_one_line_errors_naming_the_file_and_the_field(tmp_path, content, field):
    """A file of valid JSON with sections of the wrong shape gave KeyError, TypeError, AttributeError
    or ValueError tracebacks at the first verdict (a review); the commands would print them."""
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(content))
    with pytest.raises(PruningLimitsError, match=f"^evidence file '{path}': {__import__('re').escape(field)}") as raised:
        read_evidence(path)
    assert "\n" not in str(raised.value) and "got " in str(raised.value)
    with pytest.raises(PruningLimitsError, match=f"^evidence: {__import__('re').escape(field)}"):
        trust_level(80.0, 1e-3, evidence=content)  # a dict passed in is checked alike


def test_evidence_sections_without_runs_and_a_damaged_section_rewritten(tmp_path):
    """``gap_range`` writes ``{"runs": 0, "gaps": []}`` for an empty split: valid, and quoted as nothing.
    A damaged section is replaced by ``write_evidence_section``; a bad new one is refused before writing."""
    empty = {"suite": {"in_regime": {"runs": 0, "gaps": []}, "outside_l1": {"runs": 0, "gaps": []}}}
    assert trust_level(80.0, 1e-3, evidence=empty).evidence == ""
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps({"suite": [1, 2], "flat_knee": {"runs": 1, "gaps": [1.0, 1.0]}}))
    write_evidence_section("suite", {"in_regime": {"runs": 2, "gaps": [0.1, 0.4]}}, path)
    assert read_evidence(path)["suite"] == {"in_regime": {"runs": 2, "gaps": [0.1, 0.4]}}
    before = path.read_text()
    with pytest.raises(PruningLimitsError, match="with the new 'suite' section: suite.controls.gaps must be"):
        write_evidence_section("suite", {"controls": {"runs": 2}}, path)
    assert path.read_text() == before


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"knee_steepness": None}, "knee_steepness must be a number (NaN where undefined), got None"),
        ({"knee_steepness": "80"}, "knee_steepness must be a number"),
        ({"l1": "abc"}, "l1 must be a number or None (not recorded), got 'abc'"),
        ({"l1": "1e-3"}, "l1 must be a number or None"),  # a string is not read as a number
        ({"l1": True}, "l1 must be a number or None"),
        ({"sparsity": "0.5"}, "sparsity must be a number in [0, 1], NaN or None"),
        ({"sparsity": 1.5}, "sparsity must be a number in [0, 1], got 1.5"),
        ({"zero_fraction": -0.1}, "zero_fraction must be a number in [0, 1], got -0.1"),
        ({"zero_fraction": float("nan")}, "zero_fraction must be a number in [0, 1], got nan"),
        ({"zero_fraction": None}, "zero_fraction must be a number in [0, 1], got None"),
        ({"epsilon": "1e-3"}, "epsilon must be a number or None"),
        ({"batch_std": (0.01, 100.0)}, "batch_std must be None or (ε, d ln R/ds, s*), three numbers"),
        ({"batch_std": "abc"}, "batch_std must be None or (ε, d ln R/ds, s*)"),
        ({"batch_std": (0.01, None, 0.9)}, "batch_std[1] must be a number"),
        ({"evidence": [1, 2]}, "evidence must be a JSON object of sections"),
    ],
)
def test_bad_arguments_to_trust_level_are_one_line_errors(kwargs, message):
    """``trust_level(80, "abc")`` raised ValueError and ``trust_level(None, 1e-3)`` TypeError (a review)."""
    import re

    arguments = {"knee_steepness": 80.0, "l1": 1e-3, "evidence": EVIDENCE, "sparsity": 0.5, **kwargs}
    with pytest.raises(PruningLimitsError, match=re.escape(message)) as raised:
        trust_level(**arguments)
    assert "\n" not in str(raised.value)


def test_numpy_numbers_are_numbers_for_trust_level():
    import numpy as np

    trust = trust_level(np.float64(80.0), np.float32(1e-3), evidence=EVIDENCE, sparsity=np.float64(0.5),
                        zero_fraction=np.float64(0.0), epsilon=np.float64(1e-3))
    assert trust.level == IN_REGIME


def test_the_small_sparsity_guard_counts_from_the_weights_already_zero():
    """20 000 Gaussian weights (no knee at all) with half of them set exactly to 0: ``d ln R/ds`` just
    above the zeros is ``≈ 1.5/(s − s₀)`` (the KNEE_MIN_SPARSITY derivation with ``s − s₀`` for ``s``),
    so a small ε read "in regime" at ``s*`` = 50.1 % with a knee of 736 (a review). The guard now
    counts from ``s₀ = Prediction.zero_fraction``."""
    import numpy as np

    from pruning_limits import Spectrum
    from pruning_limits.limits import knee_steepness, magnitude_distance_curve, predict_from_spectrum, zero_fraction

    rng = np.random.default_rng(0)
    dim = 20_000
    w = rng.standard_normal(dim)
    w[: dim // 2] = 0.0
    curve = magnitude_distance_curve(w)
    assert zero_fraction(curve) == 0.5
    for u in (0.03, 0.05):  # the closed form beyond the zeros, as for s₀ = 0 at s = u
        assert knee_steepness(curve, 0.5 + u) == pytest.approx(1.5 / u, rel=0.1)
        assert knee_steepness(curve, 0.5 + u) > FLAT_KNEE
    assert knee_steepness(curve, 0.5 + 0.15) < FLAT_KNEE  # further on the kneeless network shows
    spectrum = Spectrum.from_eigenvalues(rng.lognormal(sigma=2, size=dim))
    for eps in (1e-4, 1e-2):
        p = predict_from_spectrum(w, spectrum, eps)
        assert p.zero_fraction == 0.5 and p.to_dict()["zero_fraction"] == 0.5
        assert 0.5 < p.sparsity < 0.5 + KNEE_MIN_SPARSITY and p.knee_steepness > FLAT_KNEE  # the knee test alone passes
        assert trust_level(p.knee_steepness, None, evidence=EVIDENCE, sparsity=p.sparsity).level == IN_REGIME  # before
        trust = trust_level(p.knee_steepness, None, evidence=EVIDENCE, sparsity=p.sparsity, zero_fraction=p.zero_fraction)
        assert trust.level == OUTSIDE and trust.retrain
        assert trust.reasons[0] == (
            f"no knee test: s* = {100 * p.sparsity:.1f} % is less than 6.26 points above the 50.0 % of weights already "
            f"zero (s₀), where weights without a knee pass it too"
        )
    # 6.26 points above the zeros the knee test speaks again; a few zeros print with two digits
    assert trust_level(293.0, 1e-3, evidence=EVIDENCE, sparsity=0.57, zero_fraction=0.5).level == IN_REGIME
    assert trust_level(293.0, 1e-3, evidence=EVIDENCE, sparsity=0.55, zero_fraction=0.5).level == OUTSIDE
    few = trust_level(293.0, 1e-3, evidence=EVIDENCE, sparsity=0.05, zero_fraction=2e-4)
    assert "s* = 5.0 % is less than 6.26 points above the 0.02 % of weights already zero" in few.reason()
    # at ε = batch-std the same zeros count: a knee "sharp" just above them is no reason to skip the fine-tune
    assert trust_level(7.0, 0.0128, evidence=EVIDENCE, sparsity=0.8, epsilon=1e-9, batch_std=(0.0123, 147.0, 0.52),
                       zero_fraction=0.5).retrain
    assert not trust_level(7.0, 0.0128, evidence=EVIDENCE, sparsity=0.8, epsilon=1e-9, batch_std=(0.0123, 147.0, 0.9),
                           zero_fraction=0.5).retrain


def test_the_bound_of_the_derivation_on_kneeless_densities():
    """``d ln R/ds ≥ 1.5/(s − s₀)`` where the non-zero ``|w|`` have a non-increasing density (the
    KNEE_MIN_SPARSITY docstring), against the exact discrete slope ``D·w_(m)²/(2 Σ_{j≤m} w_(j)²)`` at
    ``m = (s − s₀)·D`` pruned non-zero weights. The magnitudes are the exact quantiles of uniform
    (equality in the continuum), half-normal and exponential (|Laplace|) laws, after 30 % exact
    zeros; the discrete sum is above the integral by ``O(1/m)``, the tolerance. Magnitudes that all
    lie near one value (a density that rises from 0: no non-increasing density) fall far below."""
    import numpy as np
    from scipy import stats

    dim, zeros = 200_000, 60_000
    n = dim - zeros
    levels = (np.arange(1, n + 1) - 0.5) / n
    laws = {"uniform": levels, "half-normal": stats.halfnorm.ppf(levels), "exponential": stats.expon.ppf(levels),
            "near one value": stats.norm.ppf(levels, loc=10.0, scale=0.1)}
    for name, magnitudes in laws.items():
        r2 = np.cumsum(magnitudes**2)  # R² after pruning the zeros and the m smallest non-zero weights
        for u in (0.005, 0.02, 0.06):
            m = int(round(u * dim))
            slope = dim * magnitudes[m - 1] ** 2 / (2 * r2[m - 1])
            if name == "near one value":
                assert slope < 0.6 / u  # about 1/(2u): the bound needs the density's shape
            else:
                assert slope >= 1.5 / u * (1 - 2 / m), (name, u, slope)
                if name == "uniform":
                    assert slope == pytest.approx(1.5 / u, rel=2 / m)
    # the survivors of magnitude pruning (all above its threshold, t(0) > 0): t non-decreasing gives
    # t(u)² ≥ the mean of t² over [0, u], so at least 1/(2u), and near it, a third of the bound;
    # 1/(2u) ≥ 25 only for u ≤ 0.02, inside the guard (which is conservative there)
    survivors = np.sort(stats.halfnorm.ppf(0.5 + levels / 2))  # the larger half of half-normal magnitudes
    r2 = np.cumsum(survivors**2)
    for u in (0.02, 0.03, 0.05):
        m = int(round(u * dim))
        slope = dim * survivors[m - 1] ** 2 / (2 * r2[m - 1])
        assert 1 / (2 * u) <= slope < 1.1 / (2 * u) < 1.5 / u, (u, slope)


@pytest.mark.parametrize("zeros", [0.0, 0.3, 0.5])
def test_the_guard_covers_the_secant_of_kneeless_weights(zeros):
    """The guard was 1.5/25 = 0.06, where the point bound ``1.5/(s − s₀)`` reaches 25; the test reads
    knee_steepness's ±0.01 secant, steeper, and Gaussian and Laplace magnitudes lie above the bound,
    so kneeless networks read "in regime" at ``s* − s₀`` in 0.060–0.062 (a review). The guard is now
    where the secant of Laplace weights beside half zeros falls to 25 (0.06258, regime._laplace_secant,
    in closed form). On exact quantiles of uniform, half-normal and exponential magnitudes (D = 4·10⁵)
    beside a fraction ``zeros`` of exact zeros, the secant falls below 25 inside the guard: just below
    the guard the verdict is "outside" by the guard, just above it the knee test alone decides (a flat
    knee for all of them)."""
    import numpy as np
    from scipy import stats

    from pruning_limits.limits import knee_steepness, magnitude_distance_curve, zero_fraction
    from pruning_limits.regime import _laplace_secant, _secant_crossing, _uniform_secant

    # the constants: the uniform crossing solves 1.5·ln((u+h)/(u−h))/(2h) = 25; the guard the Laplace one
    uniform = _secant_crossing(_uniform_secant, FLAT_KNEE)
    assert uniform == pytest.approx(0.0605545, abs=1e-7) and _uniform_secant(uniform) == pytest.approx(FLAT_KNEE, rel=1e-12)
    assert KNEE_MIN_SPARSITY == _secant_crossing(_laplace_secant, FLAT_KNEE) == pytest.approx(0.0625838, abs=1e-7)
    assert _laplace_secant(KNEE_MIN_SPARSITY) == pytest.approx(FLAT_KNEE, rel=1e-12)
    dim = 400_000
    count = int(round(zeros * dim))
    levels = (np.arange(dim - count) + 0.5) / (dim - count)
    laws = {"uniform": levels, "half-normal": stats.halfnorm.ppf(levels), "exponential": stats.expon.ppf(levels)}
    crossings = {}
    for name, magnitudes in laws.items():
        curve = magnitude_distance_curve(np.concatenate([np.zeros(count), magnitudes]))
        s0 = zero_fraction(curve)
        assert s0 == count / dim
        low, high = 0.05, 0.08  # where knee_steepness falls to 25, by bisection
        assert knee_steepness(curve, s0 + low) > FLAT_KNEE > knee_steepness(curve, s0 + high)
        for _ in range(30):
            middle = 0.5 * (low + high)
            low, high = (middle, high) if knee_steepness(curve, s0 + middle) >= FLAT_KNEE else (low, middle)
        crossings[name] = low
        assert uniform - 2e-5 < low < KNEE_MIN_SPARSITY + 2e-5, (name, low)  # 2e-5: ±1 weight of 4·10⁵ at each end
        # the old guard's edge: the knee test alone read "in regime", the guard now says outside
        at = s0 + 0.0603
        assert knee_steepness(curve, at) > FLAT_KNEE
        assert trust_level(knee_steepness(curve, at), None, evidence=EVIDENCE).level == IN_REGIME  # the knee test alone
        assert trust_level(knee_steepness(curve, at), None, evidence=EVIDENCE, sparsity=at, zero_fraction=s0).level == OUTSIDE
        below, above = s0 + KNEE_MIN_SPARSITY - 5e-4, s0 + KNEE_MIN_SPARSITY + 5e-4
        verdict = trust_level(knee_steepness(curve, below), None, evidence=EVIDENCE, sparsity=below, zero_fraction=s0)
        assert verdict.level == OUTSIDE and verdict.reasons[0].startswith("no knee test: s* = ")
        steep = knee_steepness(curve, above)
        assert steep < FLAT_KNEE
        verdict = trust_level(steep, None, evidence=EVIDENCE, sparsity=above, zero_fraction=s0)
        assert verdict == trust_level(steep, None, evidence=EVIDENCE)  # the knee test alone
        assert verdict.level == OUTSIDE and verdict.reasons[0].startswith("flat knee: d ln R/ds = ")
    # the order of the derivation: uniform at the bound's secant, Gaussian just above, Laplace steepest
    assert crossings["uniform"] == pytest.approx(uniform, abs=2e-5)
    assert crossings["uniform"] < crossings["half-normal"] < crossings["exponential"]
    assert crossings["exponential"] == pytest.approx(_secant_crossing(lambda u: _laplace_secant(u, zeros), FLAT_KNEE), abs=2e-5)
    if zeros == KNEE_GUARD_ZEROS:
        assert crossings["exponential"] == pytest.approx(KNEE_MIN_SPARSITY, abs=2e-5)


def test_the_secant_crossing_refuses_constants_whose_bracket_leaves_the_secant_domain():
    """The bracket [1.5/level, 3/level] lies inside _laplace_secant's domain (step < u < 1 − zeros − step)
    only for some constants: FLAT_KNEE ≤ 6 beside half zeros (u + step > 0.5) and FLAT_KNEE ≥ 1.5/KNEE_STEP
    (u − step ≤ 0) raised a bare ``ValueError: math domain error`` from math.log, at import (a review).
    The function is called directly with other constants: inside the domain it finds the crossing,
    outside it a PruningLimitsError names the bracket."""
    from pruning_limits.regime import _laplace_secant, _secant_crossing, _uniform_secant

    for level, step in ((8, 0.01), (25, 0.001), (25, 0.02), (40, 0.03), (149, 0.01)):
        u = _secant_crossing(lambda u: _laplace_secant(u, step=step), level)
        assert 1.5 / level < u < 3.0 / level and _laplace_secant(u, step=step) == pytest.approx(level, rel=1e-9)
    for level, step, end in ((6, 0.01, "u = 0.5 "), (3, 0.01, "u = 0.5 "), (30, 0.05, "u = 0.05 "),
                             (50, 0.03, "u = 0.03 "), (150, 0.01, "u = 0.01 "), (200, 0.01, "u = 0.0075 ")):
        with pytest.raises(PruningLimitsError) as raised:
            _secant_crossing(lambda u: _laplace_secant(u, step=step), level)
        message = str(raised.value)
        assert message.startswith(f"the knee level {level:g} brackets u in [{1.5 / level:g}, {3 / level:g}], outside the secant's domain at {end}")
        assert "\n" not in message and message.endswith("FLAT_KNEE, KNEE_STEP and KNEE_GUARD_ZEROS give no guard")
    with pytest.raises(PruningLimitsError, match="outside the secant's domain at u = 0.05 "):  # u = step: 1/0
        _secant_crossing(lambda u: _uniform_secant(u, step=0.05), 30)
    for level in (0, -25, math.nan, math.inf):
        with pytest.raises(PruningLimitsError, match="the knee level must be a finite number > 0"):
            _secant_crossing(_uniform_secant, level)
