"""The bound calculator against a brute-force scan over every k, and its monotonicity properties."""

import dataclasses
import json
import math

import numpy as np
import pytest

from pruning_limits import PruningLimitsError, Spectrum
from pruning_limits.geometry import kinematic_margin
from pruning_limits.limits import (
    first_order_limit,
    fixed_point_curve,
    knee_steepness,
    limit_curve,
    magnitude_distance_curve,
    predict_from_spectrum,
    sparsity_estimator,
    zero_fraction,
)
from pruning_limits.pipeline import predict_limit

from conftest import one_line

# ---------------------------------------------------------------------------------------------
# random cases and the brute-force oracle
# ---------------------------------------------------------------------------------------------


def random_weights(rng, dim):
    """Normal weights with exact zeros and ties (values rounded to a coarse grid)."""
    w = rng.normal(scale=rng.lognormal(sigma=1.0), size=dim)
    w[rng.random(dim) < rng.uniform(0, 0.3)] = 0.0
    ties = rng.random(dim) < 0.3
    w[ties] = np.round(w[ties], 1)
    return w


def random_eigenvalues(rng, dim):
    """Spectrum with an atom at zero, negative eigenvalues and a few large outliers."""
    eigs = rng.lognormal(mean=-3, sigma=3, size=dim)
    eigs[rng.random(dim) < rng.uniform(0, 0.5)] = 0.0
    negative = rng.random(dim) < 0.1
    eigs[negative] = -0.1 * eigs[negative]
    eigs[: rng.integers(0, 4)] *= 1e3
    return eigs


def random_slq_spectrum(rng, dim, probes, iterations):
    """SLQ-shaped spectrum: per probe, Ritz-like nodes (one near 0) with Dirichlet weights."""
    nodes = rng.lognormal(mean=-3, sigma=3, size=(probes, iterations))
    nodes[:, 0] = rng.normal(scale=1e-9, size=probes)
    nodes[rng.random(nodes.shape) < 0.05] *= -0.1
    weights = rng.dirichlet(np.full(iterations, 0.3), size=probes)
    weights[:, 0] += rng.uniform(0, 1, size=probes)
    weights /= weights.sum(axis=1, keepdims=True)
    return Spectrum(nodes, weights, dim)


def brute_force_kept(w, nodes, quad, eps, offset=0.0, trace=None):
    """Smallest k whose sparsity (D − k)/D passes, scanning every k = 0..D."""
    dim = w.size
    squares = np.sort(w**2)
    for k in range(dim + 1):
        r2 = float(squares[: dim - k].sum())
        if trace is None:
            frac = np.mean(np.sum(quad * (2 * eps / (2 * eps + np.abs(nodes) * r2)), axis=1))
            bound = min(max(frac + offset, 0.0), 1.0)
        else:
            bound = 2 * eps * dim / (2 * eps * dim + r2 * trace)
        if (dim - k) / dim <= bound:
            return k
    raise AssertionError("k = D must be feasible")


def brute_force_check(w, spec, eps, eta=0.05):
    dim = spec.dim
    pred = predict_from_spectrum(w, spec, eps, eta=eta)
    nodes, quad = spec.nodes, spec.weights
    margin = kinematic_margin(eta) / math.sqrt(dim)
    kept = brute_force_kept(w, nodes, quad, eps)
    assert pred.kept == kept
    assert pred.sparsity == 1 - kept / dim and pred.density == kept / dim
    assert pred.interval == (
        1 - brute_force_kept(w, nodes, quad, eps, -margin) / dim,
        1 - brute_force_kept(w, nodes, quad, eps, +margin) / dim,
    )
    assert pred.interval[0] <= pred.sparsity <= pred.interval[1]
    assert pred.trace_bound == 1 - brute_force_kept(w, nodes, quad, eps, trace=spec.abs_trace().value) / dim
    assert pred.trace_bound <= pred.sparsity
    per_probe = [1 - brute_force_kept(w, nodes[j : j + 1], quad[j : j + 1], eps) / dim for j in range(spec.probes)]
    assert list(pred.probe_sparsities) == per_probe
    assert pred.distance == pytest.approx(math.sqrt(np.sort(w**2)[: dim - kept].sum()), rel=1e-12, abs=1e-300)
    assert pred.zero_fraction == np.count_nonzero(w == 0) / dim <= pred.sparsity  # pruning zeros costs nothing
    return pred


def test_exact_spectrum_matches_brute_force_scan():
    rng = np.random.default_rng(2024)
    sparsities = []
    for case in range(40):
        dim = int(rng.choice([1, 2, 3, 17, 250, 2000])) if case < 30 else int(rng.integers(1, 2001))
        w = random_weights(rng, dim)
        spec = Spectrum.from_eigenvalues(random_eigenvalues(rng, dim))
        eps = float(10 ** rng.uniform(-6, 1))
        sparsities.append(brute_force_check(w, spec, eps).sparsity)
    # the cases must cover the whole range, not just the trivial ends
    assert min(sparsities) < 0.2 and max(sparsities) > 0.8
    assert sum(0.05 < s < 0.95 for s in sparsities) >= 10


def test_multi_probe_spectrum_matches_brute_force_scan():
    rng = np.random.default_rng(7)
    sparsities = []
    for _ in range(25):
        dim = int(rng.integers(1, 2001))
        spec = random_slq_spectrum(rng, dim, probes=int(rng.integers(1, 9)), iterations=int(rng.integers(1, 60)))
        w = random_weights(rng, dim)
        eps = float(10 ** rng.uniform(-6, 1))
        pred = brute_force_check(w, spec, eps)
        sparsities.append(pred.sparsity)
        if spec.probes > 1:
            assert pred.probe_spread == pytest.approx(np.std(pred.probe_sparsities, ddof=1))
        else:
            assert math.isnan(pred.probe_spread)
    assert sum(0.05 < s < 0.95 for s in sparsities) >= 8


# ---------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------


def test_limit_grows_with_epsilon_and_drops_with_scale():
    rng = np.random.default_rng(11)
    for _ in range(10):
        dim = int(rng.integers(50, 1500))
        w = random_weights(rng, dim)
        eigs = random_eigenvalues(rng, dim)
        spec = Spectrum.from_eigenvalues(eigs)
        epsilons = np.logspace(-8, 2, 40)
        curve = limit_curve(w, spec, epsilons)
        assert (np.diff(curve.sparsity) >= 0).all()
        assert (np.diff(curve.interval_low) >= 0).all() and (np.diff(curve.interval_high) >= 0).all()
        for eps, s in zip(epsilons[::7], curve.sparsity[::7]):
            base = predict_from_spectrum(w, spec, eps)
            assert base.sparsity == s
            for c in (1.5, 10.0):
                assert predict_from_spectrum(c * w, spec, eps).sparsity <= base.sparsity
                assert predict_from_spectrum(w, Spectrum.from_eigenvalues(c * eigs), eps).sparsity <= base.sparsity


@pytest.mark.parametrize("dim", [6, 29, 300])
def test_flat_hessian_allows_full_sparsity(dim):
    # D weights 1/D sum to 1 - 2^-53 at D = 6, 1 - 2^-52 at 29 and 1 + 2^-52 at 300: a zero Hessian
    # must reach full sparsity whatever the rounding of its quadrature weights
    rng = np.random.default_rng(3)
    w = rng.normal(size=dim)
    for spec in (Spectrum.from_eigenvalues(np.zeros(dim)), Spectrum(np.zeros((4, 10)), np.full((4, 10), 0.1), dim)):
        pred = predict_from_spectrum(w, spec, 1e-3)
        assert pred.sparsity == 1.0 and pred.kept == 0 and pred.trace_bound == 1.0
        assert pred.interval[1] == 1.0
        assert pred.interval[0] == max(0.0, 1 - math.ceil(dim * pred.margin) / dim)
        with_gradient = predict_from_spectrum(w, spec, 1e-3, gradient=1e-9 * rng.normal(size=dim))
        assert with_gradient.sparsity == with_gradient.first_order_limit == 1.0


def test_vanishing_epsilon_tends_to_fraction_of_zero_eigenvalues():
    rng = np.random.default_rng(5)
    dim, zeros = 1000, 137
    w = rng.normal(size=dim)
    w[w == 0] = 1.0
    eigs = np.concatenate([np.zeros(zeros), rng.lognormal(sigma=2, size=dim - zeros)])
    spec = Spectrum.from_eigenvalues(eigs)
    curve = limit_curve(w, spec, np.logspace(-2, -200, 30))
    assert (np.diff(curve.sparsity) <= 0).all()
    assert (curve.sparsity >= zeros / dim).all()
    assert curve.sparsity[-1] == zeros / dim
    # exactly-zero weights are free to prune: the limit tends to max(zero eigs, zero weights)/D
    w_sparse = w.copy()
    w_sparse[:250] = 0.0
    assert predict_from_spectrum(w_sparse, spec, 1e-200).sparsity == 250 / dim
    assert predict_from_spectrum(w, Spectrum.from_eigenvalues(rng.lognormal(size=dim)), 1e-200).sparsity == 0.0


def test_custom_criterion_curve():
    rng = np.random.default_rng(9)
    dim = 400
    w = rng.normal(size=dim)
    spec = Spectrum.from_eigenvalues(random_eigenvalues(rng, dim))
    r2 = magnitude_distance_curve(w)
    assert r2.shape == (dim + 1,) and r2[-1] == 0 and r2[0] == pytest.approx(np.sum(w**2))
    assert (np.diff(r2) <= 0).all()
    magnitude = predict_from_spectrum(w, spec, 1e-3)
    same = predict_from_spectrum(w, spec, 1e-3, criterion=r2)
    assert same.kept == magnitude.kept and same.criterion == "custom"
    # a structured criterion removes more weight at every k: the limit cannot increase
    worse = predict_from_spectrum(w, spec, 1e-3, criterion=np.minimum(r2 * 2.0, r2[0]) * (np.arange(dim + 1) < dim))
    assert worse.sparsity <= magnitude.sparsity
    with pytest.raises(PruningLimitsError, match=r"^criterion array R_k² must be non-increasing in k \(nested supports\)$") as info:
        predict_from_spectrum(w, spec, 1e-3, criterion=r2[::-1])
    one_line(info)
    with pytest.raises(PruningLimitsError, match=rf"^criterion array must hold R_k² for k = 0\.\.D \({dim + 1} values\), got shape \({dim},\)$") as info:
        predict_from_spectrum(w, spec, 1e-3, criterion=r2[:-1])
    one_line(info)
    with pytest.raises(PruningLimitsError, match=r"^criterion must be one of 'magnitude', got 'random' \(str\)$") as info:
        predict_from_spectrum(w, spec, 1e-3, criterion="random")
    one_line(info)


def test_fixed_point_curve_crosses_diagonal_at_the_limit():
    rng = np.random.default_rng(12)
    dim = 1234
    w = random_weights(rng, dim)
    spec = random_slq_spectrum(rng, dim, probes=3, iterations=40)
    eps = 1e-4
    curve = fixed_point_curve(w, spec, eps, points=101)
    pred = predict_from_spectrum(w, spec, eps)
    assert curve.limit == pred.sparsity
    assert curve.sparsity[0] == 0.0 and curve.sparsity[-1] == 1.0 and (np.diff(curve.sparsity) > 0).all()
    assert (np.diff(curve.distance) >= 0).all() and (np.diff(curve.delta_fraction) <= 0).all()
    feasible = curve.sparsity <= curve.delta_fraction
    assert (curve.sparsity[feasible] <= pred.sparsity).all()
    assert (curve.sparsity[~feasible] > pred.sparsity).all()
    json.dumps(curve.to_dict())
    # D smaller than the number of points: every k once
    small = fixed_point_curve(w[:5], Spectrum.from_eigenvalues([0.0, 1, 2, 3, 4]), eps, points=50)
    assert small.kept.tolist() == [5, 4, 3, 2, 1, 0]


def test_prediction_record_and_input_errors():
    rng = np.random.default_rng(0)
    w = rng.normal(size=100)
    spec = random_slq_spectrum(rng, 100, probes=1, iterations=10)
    pred = predict_from_spectrum(w, spec, 0.01)
    record = json.loads(json.dumps(pred.to_dict(), allow_nan=False))
    for key in ("sparsity", "density", "interval", "epsilon", "dim", "kept", "trace_bound", "spectrum"):
        assert key in record
    assert record["probe_spread"] is None and record["dim"] == 100
    assert record["sparsity"] + record["density"] == pytest.approx(1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pred.sparsity = 0.5  # frozen
    with pytest.raises(PruningLimitsError, match="differ in dimension"):
        predict_from_spectrum(w[:-1], spec, 0.01)
    with pytest.raises(PruningLimitsError, match=r"^epsilon must be a finite number > 0, got 0\.0 \(float\)$") as info:
        predict_from_spectrum(w, spec, 0.0)
    one_line(info)
    with pytest.raises(PruningLimitsError, match=r"^eta must be a number in \(0, 1\), got 1\.0 \(float\)$") as info:
        predict_from_spectrum(w, spec, 0.01, eta=1.0)
    one_line(info)
    with pytest.raises(PruningLimitsError, match=r"^weights contain NaN or infinite values$") as info:
        predict_from_spectrum(np.full(100, np.nan), spec, 0.01)
    one_line(info)
    # the array's repr is cut short (numpy's summary, then the message's own cut)
    with pytest.raises(PruningLimitsError, match=r"^spectrum must be a pruning_limits\.spectrum\.Spectrum, got array\(\[1\., .* \(ndarray\)$") as info:
        predict_from_spectrum(w, np.ones(100), 0.01)
    one_line(info)


def test_knee_steepness_recovers_a_known_log_slope_and_reaches_the_prediction():
    dim, slope = 10_000, 30.0
    kept = np.arange(dim + 1)
    # R(s) = exp(slope · s) with s = 1 − k/D, so d ln R/ds = slope everywhere
    distance_squared = np.exp(2 * slope * (1 - kept / dim))
    assert knee_steepness(distance_squared, 0.8) == pytest.approx(slope, rel=1e-9)
    assert knee_steepness(distance_squared, 0.999) == pytest.approx(slope, rel=1e-6)  # secant clipped at s = 1
    assert knee_steepness(distance_squared, 0.8, step=0.1) == pytest.approx(slope, rel=1e-9)
    # R = 0 with nothing pruned: the secant starts at the first weight pruned (it was NaN, which
    # read as "knee undefined", outside the regime)
    distance_squared[-1] = 0.0
    assert knee_steepness(distance_squared, 0.005) == pytest.approx(slope, rel=1e-9)
    # an already sparse network: 90 % exact zeros, R = 0 up to s = 0.9; at s* = 0.905 the secant
    # of ±1 point starts at s = 0.9 (the first non-zero weight), where the answer was NaN
    sparse = distance_squared.copy()
    sparse[dim // 10 :] = 0.0  # k ≥ 1 000 kept: only zeros pruned
    assert knee_steepness(sparse, 0.905) == pytest.approx(
        0.5 * (math.log(sparse[850]) - math.log(sparse[999])) / (149 / dim), rel=1e-12)
    assert np.isnan(knee_steepness(sparse, 0.85))  # s* + 1 point prunes only zeros: no knee there
    assert np.isnan(knee_steepness(np.zeros(11), 0.5))
    assert knee_steepness(distance_squared, 0.5) == pytest.approx(slope, rel=1e-9)
    for bad, match in ((dict(sparsity=1.5), r"^sparsity must be a number in \[0, 1\], got 1\.5 \(float\)$"),
                       (dict(sparsity=0.5, step=0.0), r"^step must be a number in \(0, 1\], got 0\.0 \(float\)$")):
        with pytest.raises(PruningLimitsError, match=match) as info:
            knee_steepness(distance_squared, **bad)
        one_line(info)
    with pytest.raises(PruningLimitsError, match=r"^distance_squared must be a 1-D array of R_k² for k = 0\.\.D, got shape \(3, 3\)$") as info:
        knee_steepness(np.ones((3, 3)), 0.5)
    one_line(info)
    # a curve rising with the kept count (a criterion passed reversed) gave a negative slope
    with pytest.raises(PruningLimitsError, match=r"non-increasing in k, got R_1² = 2 > R_0² = 1"):
        knee_steepness(np.array([1.0, 2.0, 0.5]), 0.5)
    with pytest.raises(PruningLimitsError, match=r"non-negative.*R_D² = -1"):
        knee_steepness(np.array([1.0, 0.5, -1.0]), 0.5)
    # small D, by hand: R² = 16, 9, 4, 1, 0.25 for k = 0..4 kept. At s = 0.5 ± 0.01 both ends round
    # to k = 2, so the secant takes its neighbours k = 3 (s = 0.25) and k = 1 (s = 0.75):
    # ½ (ln 9 − ln 1) / 0.5 = ln 9
    small = np.array([16.0, 9.0, 4.0, 1.0, 0.25])
    assert knee_steepness(small, 0.5) == pytest.approx(math.log(9.0), rel=1e-12)
    # ends on different weights: s = 0.25 ± 0.2 reaches k = 4 (s = 0) and k = 2 (s = 0.5)
    assert knee_steepness(small, 0.25, step=0.2) == pytest.approx(0.5 * math.log(4.0 / 0.25) / 0.5, rel=1e-12)
    # the prediction reports it at s*, from the magnitude curve of its weights
    rng = np.random.default_rng(1)
    w = rng.laplace(size=2000)
    pred = predict_from_spectrum(w, Spectrum.from_eigenvalues(rng.uniform(0, 1, size=2000)), 0.05)
    expected = knee_steepness(magnitude_distance_curve(w), pred.sparsity)
    assert pred.knee_steepness == expected and pred.knee_steepness > 0
    assert pred.to_dict()["knee_steepness"] == expected


# ---------------------------------------------------------------------------------------------
# the whole pipeline on a trained MLP: SLQ defaults against the exact spectrum
# ---------------------------------------------------------------------------------------------


def _trained_digits_mlp():
    """Digits MLP 64-28-10 (D = 2 072 prunable weights), Adam with an l1 penalty, fixed seed."""
    torch = pytest.importorskip("torch")
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 28), torch.nn.ReLU(), torch.nn.Linear(28, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(400):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        penalty = model[0].weight.abs().sum() + model[2].weight.abs().sum()
        (loss + 1e-4 * penalty).backward()
        opt.step()
    return model, (x, y)


def test_predict_limit_slq_defaults_agree_with_exact_spectrum():
    import copy

    import torch

    from pruning_limits.objective import batch_std_epsilon, flat_weights, loss_gradient
    from pruning_limits.spectrum import estimate_spectrum, exact_spectrum

    model, data = _trained_digits_mlp()
    before = [p.detach().clone() for p in model.parameters()]
    reference = copy.deepcopy(model).double()
    eps = batch_std_epsilon(reference, data)
    weights = flat_weights(reference)
    spectrum = exact_spectrum(reference, data)
    exact = predict_from_spectrum(weights, spectrum, eps)
    exact_with_gradient = predict_from_spectrum(weights, spectrum, eps, gradient=loss_gradient(reference, data))
    slq_spectrum = estimate_spectrum(reference, data)  # the default SLQ settings of predict_limit
    slq = predict_limit(model, data, spectrum=slq_spectrum)  # default: with the gradient term
    assert slq.dim == exact.dim == 2072
    assert slq.epsilon == pytest.approx(eps, rel=1e-12)
    # the predictions must be non-trivial for the comparison to mean something
    assert 0.2 < exact.sparsity < 0.95 and 0.2 < exact_with_gradient.sparsity < 0.95
    assert slq.gradient_term
    assert abs(slq.sparsity - exact_with_gradient.sparsity) <= 0.005, (slq.sparsity, exact_with_gradient.sparsity)
    paper = predict_limit(model, data, gradient_term=False, spectrum=slq_spectrum)
    assert abs(paper.sparsity - exact.sparsity) <= 0.005, (paper.sparsity, exact.sparsity)
    # the block rule may stop early: the probes' block Krylov space becomes invariant (the atom at 0)
    assert slq_spectrum.rule == "block" and 0 < slq.num_hvps <= 300 * 8
    assert slq.seconds > 0 and len(slq.probe_sparsities) == slq.spectrum["probes"] == 8
    # one Gauss rule per probe (the fallback above the memory budget) meets the same target
    gauss = estimate_spectrum(reference, data, rule="gauss")
    assert gauss.rule == "gauss" and gauss.num_hvps == 300 * 8
    gauss_prediction = predict_limit(model, data, spectrum=gauss)
    assert abs(gauss_prediction.sparsity - exact_with_gradient.sparsity) <= 0.005
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert next(model.parameters()).dtype == torch.float32
    # a precomputed spectrum and a numeric epsilon skip SLQ and batch-std
    again = predict_limit(model, data, epsilon=eps, spectrum=spectrum, gradient_term=False)
    assert again.kept == exact.kept
    # a precomputed gradient skips its computation and gives the same prediction
    gradient = loss_gradient(reference, data)
    given = predict_limit(model, data, epsilon=eps, spectrum=spectrum, gradient=gradient)
    assert given.gradient_term and given.kept == exact_with_gradient.kept
    assert given.first_order_cost == exact_with_gradient.first_order_cost
    with pytest.raises(PruningLimitsError, match="gradient_term=False"):
        predict_limit(model, data, epsilon=eps, spectrum=spectrum, gradient=gradient, gradient_term=False)
    with pytest.raises(PruningLimitsError, match=rf"^gradient must have one entry per weight \({gradient.size}\), got shape \({gradient.size - 1},\)$") as info:
        predict_limit(model, data, epsilon=eps, spectrum=spectrum, gradient=gradient[:-1])
    one_line(info)
    with pytest.raises(PruningLimitsError, match=r"^epsilon must be one of 'batch-std', got 'std' \(str\)$") as info:
        predict_limit(model, data, epsilon="std")
    one_line(info)
    with pytest.raises(PruningLimitsError, match="differ in dimension"):
        predict_limit(model, data, epsilon=eps, spectrum=Spectrum.from_eigenvalues(np.ones(10)))


# ---------------------------------------------------------------------------------------------
# the first-order (gradient) term
# ---------------------------------------------------------------------------------------------


def brute_force_kept_with_gradient(w, g, nodes, quad, eps):
    """Smallest k passing with ε_k = ε − max_{j ≤ D−k} (−Σ_{j smallest |w|} g·w), scanning every k."""
    dim = w.size
    order = np.argsort(np.abs(w), kind="stable")
    for k in range(dim + 1):
        pruned = dim - k
        cost = max(float(-(g[order[:j]] * w[order[:j]]).sum()) for j in range(pruned + 1))
        eps_k = eps - cost
        if eps_k <= 0:
            continue
        r2 = float((w[order[:pruned]] ** 2).sum())
        frac = np.mean(np.sum(quad * (2 * eps_k / (2 * eps_k + np.abs(nodes) * r2)), axis=1))
        if pruned / dim <= min(frac, 1.0):
            return k
    raise AssertionError("k = D must be feasible")


def test_gradient_term_matches_brute_force_and_never_raises_the_limit():
    rng = np.random.default_rng(7)
    for _ in range(12):
        dim = int(rng.integers(5, 150))
        w = random_weights(rng, dim)
        # l1-optimum-like gradient (−λ sign w) plus noise of either sign
        g = -1e-2 * np.sign(w) + rng.normal(scale=3e-3, size=dim)
        spec = Spectrum.from_eigenvalues(random_eigenvalues(rng, dim))
        eps = float(rng.lognormal(-3, 1))
        with_gradient = predict_from_spectrum(w, spec, eps, gradient=g)
        assert with_gradient.kept == brute_force_kept_with_gradient(w, g, spec.nodes, spec.weights, eps)
        assert with_gradient.gradient_term and with_gradient.first_order_cost >= 0
        paper = predict_from_spectrum(w, spec, eps)
        assert with_gradient.sparsity <= paper.sparsity
        assert with_gradient.trace_bound <= with_gradient.sparsity
        zero = predict_from_spectrum(w, spec, eps, gradient=np.zeros(dim))
        assert zero.sparsity == paper.sparsity and zero.interval == paper.interval


def test_first_order_limit_is_a_ceiling_no_spectrum_crosses_and_a_zero_hessian_reaches():
    """``first_order_limit`` against a scan of ``c_k`` by brute force: ``s*`` (and the top of its
    interval) never exceeds it on random spectra; with every eigenvalue zero (δ/D = 1 at any R)
    ``s*`` equals it; without the gradient term it is 1."""
    rng = np.random.default_rng(11)
    for _ in range(12):
        dim = int(rng.integers(5, 150))
        w = random_weights(rng, dim)
        g = -1e-2 * np.sign(w) + rng.normal(scale=3e-3, size=dim)
        eps = float(rng.lognormal(-3, 1))
        order = np.argsort(np.abs(w), kind="stable")
        costs = [max(float(-(g[order[:j]] * w[order[:j]]).sum()) for j in range(pruned + 1)) for pruned in range(dim + 1)]
        ceiling = 1.0 - min(dim - pruned for pruned in range(dim + 1) if eps - costs[pruned] > 0) / dim
        for eigenvalues in (random_eigenvalues(rng, dim), np.zeros(dim)):
            prediction = predict_from_spectrum(w, Spectrum.from_eigenvalues(eigenvalues), eps, gradient=g)
            assert prediction.first_order_limit == ceiling
            assert prediction.sparsity <= ceiling and prediction.interval[1] <= ceiling
            assert prediction.to_dict()["first_order_limit"] == ceiling
        assert prediction.sparsity == ceiling  # the zero Hessian: only the first-order cost limits
        assert predict_from_spectrum(w, Spectrum.from_eigenvalues(eigenvalues), eps).first_order_limit == 1.0
    assert first_order_limit(0.1, None) == 1.0
    assert first_order_limit(0.1, [0.3, 0.1, 0.05, 0.0]) == pytest.approx(1 / 3)  # c_k < ε from k = 2 kept of 3 on
    with pytest.raises(PruningLimitsError, match="cost must be a finite 1-D array"):
        first_order_limit(0.1, [0.0])
    with pytest.raises(PruningLimitsError, match="never grow with k"):
        first_order_limit(0.1, [0.3, 0.4, 0.0])


def test_gradient_term_errors():
    spec = Spectrum.from_eigenvalues([1.0, 2.0, 3.0])
    with pytest.raises(PruningLimitsError, match="one entry per weight"):
        predict_from_spectrum([1.0, 2.0, 3.0], spec, 0.1, gradient=[1.0])
    with pytest.raises(PruningLimitsError, match="criterion='magnitude'"):
        predict_from_spectrum([1.0, 2.0, 3.0], spec, 0.1, criterion=[14.0, 5.0, 1.0, 0.0], gradient=[0.0, 0.0, 0.0])


def test_an_epsilon_near_the_float64_limit_prunes_everything_without_nan():
    """ε = 1e308: 2ε overflowed to inf and φ = inf/inf gave NaN (RuntimeWarning, and an answer
    from a search over NaN comparisons). The integrand is now ε/(ε + |λ|R²/2), equal bit for bit
    to 2ε/(2ε + |λ|R²) where nothing overflows."""
    import warnings

    from pruning_limits.geometry import delta_integrand

    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 30))
    spec = Spectrum.from_eigenvalues(np.linalg.eigvalsh(a @ a.T / 30))
    w = rng.normal(size=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for eps in (1e300, 1e308, 1.7e308):
            result = predict_from_spectrum(w, spec, eps)  # also solves the trace rule (_solve_trace)
            assert result.sparsity == 1.0 and result.trace_bound == 1.0
    # the trace rule where 2εD and R²·tr|H| both overflow: the answer of the same problem scaled down
    from pruning_limits.limits import _solve_trace

    big, scaled = (_solve_trace(e, np.linspace(r, 0.0, 10_001), 1e10) for e, r in ((1e305, 1e300), (1e295, 1e290)))
    assert big == scaled == 6418  # the overflow branch once said every weight could go (k = 0)
    lam, r2, eps = rng.normal(size=1000) * 10.0 ** rng.uniform(-8, 8, 1000), 3.7, 10.0 ** rng.uniform(-12, 3, 1000)
    old = 2.0 * eps / (2.0 * eps + np.abs(lam) * r2)
    assert np.array_equal(np.array([delta_integrand(lam[i : i + 1], eps[i], r2)[0] for i in range(1000)]), old)


# ---------------------------------------------------------------------------------------------
# structures' allowed counts, zero-atom ties
# ---------------------------------------------------------------------------------------------


def brute_force_pruned_at_allowed_costs(w, g, order, allowed, nodes, quad, eps):
    """Largest ``m`` (number pruned) over every ``m`` with ``ε − c_m > 0`` and ``m/D ≤ δ(R_m; ε − c_m)/D``, where ``c_m``
    is the largest accumulated ``−g·w`` of the first ``a`` entries of ``order`` over allowed ``a ≤ m``."""
    dim = w.size
    best = 0
    for pruned in range(dim + 1):
        cost = max(float(-(g[order[:a]] * w[order[:a]]).sum()) for a in allowed if a <= pruned)
        eps_m = eps - cost
        if eps_m <= 0:
            continue
        r2 = float((w[order[:pruned]] ** 2).sum())
        frac = np.mean(np.sum(quad * (2 * eps_m / (2 * eps_m + np.abs(nodes) * r2)), axis=1))
        if pruned / dim <= min(frac, 1.0):
            best = max(best, pruned)
    return best


def crossing(curve):
    """The largest drawn feasible sparsity (the solver's test, ``curve.feasible``), after checking the
    feasible points are a prefix and include every point with ``s ≤ δ/D`` (the slack only adds)."""
    feasible = curve.feasible
    assert feasible.dtype == bool and feasible[0] and not (np.diff(feasible.astype(int)) > 0).any()
    assert feasible[curve.sparsity <= curve.delta_fraction].all()
    return float(curve.sparsity[feasible].max())


def test_fixed_point_curve_follows_a_structures_allowed_counts(cancelling_groups):
    """With a gradient, the prediction of a neuron/channel structure takes the first-order cost at
    allowed counts (group ends) only; the drawn curve took it at every count, so a group whose
    ``−g·w`` changes sign inside added its partial cost and the curve crossed the diagonal
    elsewhere (a review: 0.333 against s* = 1.0 on three groups of two with a zero Hessian)."""
    case = cancelling_groups  # s* = 1 in closed form (conftest)
    w, g, order, allowed, r2, flat = (case[k] for k in ("weights", "gradient", "order", "allowed", "r2", "spectrum"))
    pred = predict_from_spectrum(w, flat, case["epsilon"], criterion=r2, gradient=g, order=order, allowed=allowed)
    curve = fixed_point_curve(w, flat, case["epsilon"], criterion=r2, gradient=g, order=order, allowed=allowed, points=7)
    assert pred.sparsity == 1.0 and curve.limit == 1.0 and crossing(curve) == 1.0
    assert (curve.delta_fraction == 1.0).all()
    every_count = fixed_point_curve(w, flat, case["epsilon"], criterion=r2, gradient=g, order=order, points=7)
    assert crossing(every_count) == every_count.limit == pytest.approx(1 / 3)  # partial groups' cost counts
    # a real neuron order of a small MLP, a gradient of either sign inside each row
    import torch
    from torch import nn

    from pruning_limits.objective import flat_weights
    from pruning_limits.structures import distance_curve, layer_layout, predict_structured, structured_order

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    w = flat_weights(model)
    plan = structured_order(w, layer_layout(model), "neuron")
    rng = np.random.default_rng(0)
    g = rng.normal(scale=0.05, size=w.size)
    spec = Spectrum.from_eigenvalues(rng.lognormal(-3, 1, size=w.size))
    r2 = distance_curve(w, plan.order)
    differs = 0
    for eps in (0.01, 0.02, 0.05):
        pruned = brute_force_pruned_at_allowed_costs(w, g, plan.order, plan.allowed, spec.nodes, spec.weights, eps)
        raw = predict_from_spectrum(w, spec, eps, criterion=r2, gradient=g, order=plan.order, allowed=plan.allowed)
        curve = fixed_point_curve(
            w, spec, eps, criterion=r2, gradient=g, order=plan.order, allowed=plan.allowed, points=w.size + 1
        )
        assert crossing(curve) == curve.limit == raw.sparsity and raw.kept == w.size - pruned
        structured = predict_structured(w, spec, eps, plan, gradient=g)
        assert structured.sparsity == plan.allowed_at_most(pruned) / w.size
        every_count = fixed_point_curve(w, spec, eps, criterion=r2, gradient=g, order=plan.order, points=w.size + 1)
        differs += crossing(every_count) != raw.sparsity
    assert differs >= 1  # the case exercises partial groups: the every-count curve crosses elsewhere


def test_zero_atom_ties_reach_the_fraction_of_zero_eigenvalues():
    """As ε → 0, ``δ(R) →`` (number of zero eigenvalues) for every ``R > 0`` and ``s*`` tends to
    their fraction ``m/D`` (docs/theory.md §4; the weights are non-zero). With the other
    eigenvalues at 1e6 and ε = 1e-300 their share is ~1e-306, so ``δ`` exceeds ``m`` and
    ``s* = m/D`` exactly; but ``δ`` summed in float64 came out a few ulps below ``m``
    (6.999999999999999 at D = 9, m = 7) and ``s*`` one weight short in 302 of the 1 829 cases
    below. A deficit far above the rounding (1e-13 relative) must still not cross."""
    short = []
    for dim in range(1, 60):
        w = np.linspace(1.0, 2.0, dim)
        for zeros in range(dim + 1):
            spec = Spectrum.from_eigenvalues(np.r_[np.zeros(zeros), np.full(dim - zeros, 1e6)])
            pred = predict_from_spectrum(w, spec, 1e-300)
            if pred.kept != dim - zeros or pred.probe_sparsities != (pred.sparsity,):
                short.append((dim, zeros, pred.kept))
    assert not short, short[:5]
    assert predict_from_spectrum(np.linspace(1, 2, 9), Spectrum.from_eigenvalues([0] * 7 + [1e6] * 2), 1e-300).sparsity == 7 / 9
    # eigenvalues [0, λ], weights [1, 2], ε = 1: at k = 0 (R² = 5) δ = 1 + 1/(1 + 2.5λ) = 2 − η with
    # η ≈ 2.5λ; s = 1 needs δ ≥ 2, so s* = 1/2 (k = 1: R² = 1, δ ≥ 1) for any λ > 0 whose deficit
    # float64 resolves: 1e-13 and 1e-14 relative (~450 and ~45 ulps) stay infeasible
    for lam in (8e-14, 8e-15):
        pred = predict_from_spectrum([1.0, 2.0], Spectrum.from_eigenvalues([0.0, lam]), 1.0)
        assert pred.sparsity == 0.5 and pred.kept == 1
    assert predict_from_spectrum([1.0, 2.0], Spectrum.from_eigenvalues([0.0, 0.0]), 1.0).sparsity == 1.0


# ---------------------------------------------------------------------------------------------
# review fixes: overflowing squares, row sums, the curve's crossing, limit_curve's order, inputs
# ---------------------------------------------------------------------------------------------


def test_weights_whose_squares_overflow_are_refused_in_one_line():
    """``w**2`` of 1e200 is inf, and ``|λ|·R²`` of a zero eigenvalue then ``0·inf = NaN``: a zero
    Hessian gave ``s* = 1/3`` instead of 1 without a word (a review). Now refused, naming ``max |w|``,
    also with warnings as errors (no RuntimeWarning first); up to the float64 range the zero Hessian
    still gives ``s* = 1`` (closed form: ``δ/D = 1`` for every ``R``)."""
    import re
    import warnings

    zero = Spectrum.from_eigenvalues([0.0, 0.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # a square overflows, or only their sum does
        for w, largest in (([1e200, 1e200, 1.0], "1e+200"), ([1e154, 1e154, 1e154], "1e+154")):
            expected = rf"^weights too large: max \|w\| = {re.escape(largest)}, and R² = Σ w² .* overflows float64"
            with pytest.raises(PruningLimitsError, match=expected) as raised:
                predict_from_spectrum(np.array(w), zero, 0.1)
            assert "\n" not in str(raised.value)
            with pytest.raises(PruningLimitsError, match="weights too large"):
                magnitude_distance_curve(w)
        for w in ([1e150, 1e150, 1.0], [1e154, 1e-300, 0.0]):  # R² up to 1e308: finite
            p = predict_from_spectrum(np.array(w), zero, 0.1)
            assert p.sparsity == p.trace_bound == p.interval[1] == 1.0  # (the low end: 1 − a_η/√3 < 0, clipped to 0)
        # |λ|·R² = 1e10·1e308 overflows to inf: φ = 0 there (right), no NaN, no warning. k = 0 gives
        # δ/D = 2/3 < 1; k = 1 (R² = 2) gives 2/3 + φ/3 ≥ 2/3: s* = 2/3 (closed form)
        stiff = predict_from_spectrum(np.array([1e154, 1.0, 1.0]), Spectrum.from_eigenvalues([0.0, 0.0, 1e10]), 0.1)
        assert stiff.kept == 1 and stiff.sparsity == 1 - 1 / 3


def test_trace_bound_stays_below_s_star_where_rows_sum_to_1_up_to_the_tolerance():
    """Jensen (``trace_bound ≤ s*``) needs the predictor and ``abs_trace`` to read one measure. The
    Spectrum check let rows summing to 1 − 9e-6 through (``allclose``'s default rtol), the predictor
    renormalised them and ``abs_trace`` did not: ``s* = 0``, ``trace_bound = 0.5`` (a review). Such
    a row is accepted again (ROW_SUM_TOLERANCE = 1e-5: float32 rules sum to 1 only that closely)
    and divided by its sum at construction, so every integral reads the normalised measure; a row
    off by 1e-3 is refused."""
    from pruning_limits.geometry import delta_fraction, spectral_statistical_dimension

    with pytest.raises(PruningLimitsError, match=r"sum to 1 in every row \(within 1e-05\), got row 0 summing to 0.999"):
        Spectrum(np.array([[2.0, 2.0]]), np.array([[0.5, 0.5 - 1e-3]]), 2)
    spec = Spectrum(np.array([[2.0, 2.0]]), np.array([[0.5, 0.5 - 9e-6]]), 2)
    assert spec.weights.sum() == pytest.approx(1.0, abs=2e-16) and spec.weights[0, 0] == pytest.approx(0.5 / (1 - 9e-6), rel=1e-15)
    assert spec.abs_trace().value == 4.0 and spec.trace().value == 4.0 and spec.integrate(lambda x: np.ones_like(x)).value == 1.0
    phi = 0.5 - 1e-12  # 2ε/(2ε + |λ|R²) at k = 1 (R² = 1), just below s = 1/2: not reached, by either test
    eps = phi / (1 - phi)
    p = predict_from_spectrum([1.0, 1.0], spec, eps)
    assert p.sparsity == 0.0 and p.trace_bound <= p.sparsity
    # unnormalised, tr|H| = 4(1 − 9e-6) gave a share above 1/2: the case the renormalisation guards
    assert 2 * eps * 2 / (2 * eps * 2 + 1.0 * 2 * 2 * (1 - 9e-6)) >= 0.5
    # the spectral statistical dimension is the δ the predictor uses, bit for bit
    assert spectral_statistical_dimension(spec, eps, 1.0).value == 2 * delta_fraction(spec.nodes, spec.weights, eps, 1.0)
    # random rules, rows off by up to the tolerance: Jensen holds against the brute-force scan
    rng = np.random.default_rng(44)
    for _ in range(200):
        dim = int(rng.integers(2, 40))
        nodes = rng.lognormal(-2, 2, size=(2, 6))
        quad = rng.dirichlet(np.ones(6), size=2) * (1 + rng.uniform(-9e-6, 9e-6, size=(2, 1)))
        spec = Spectrum(nodes, quad, dim)
        w = rng.normal(size=dim)
        eps = float(10 ** rng.uniform(-4, 0))
        p = predict_from_spectrum(w, spec, eps)
        assert p.trace_bound <= p.sparsity
        assert spec.abs_trace().value == pytest.approx(dim * np.mean(np.sum(quad * nodes, axis=1) / quad.sum(axis=1)), rel=1e-15)
        assert spec.trace().value == pytest.approx(spec.abs_trace().value, rel=1e-15)  # positive nodes: one measure


def test_fixed_point_curve_crosses_where_the_solver_does_at_zero_eigenvalue_ties():
    """D = 9, 7 zero eigenvalues, ε = 1e-300: ``δ/D`` rounds to 0.7777777777777777, below
    ``s = 7/9``; the solver's 8-ulp slack reaches it (``s* = 7/9``) while the drawn curve crossed
    one weight earlier (a review). ``feasible`` is the solver's test: exactly the ``k ≥ kept``."""
    w = np.linspace(1, 2, 9)
    spec = Spectrum.from_eigenvalues([0] * 7 + [1e6] * 2)
    curve = fixed_point_curve(w, spec, 1e-300, points=10)
    pred = predict_from_spectrum(w, spec, 1e-300)
    assert pred.sparsity == curve.limit == 1 - 2 / 9
    at_limit = curve.kept == 2
    assert curve.delta_fraction[at_limit][0] < curve.sparsity[at_limit][0]  # the rounding the slack is for
    assert crossing(curve) == curve.limit
    assert curve.feasible.tolist() == (curve.kept >= pred.kept).tolist()
    assert curve.to_dict()["feasible"] == curve.feasible.tolist()
    # every tie of the zero-atom test, every k drawn: the crossing is the limit
    for dim in (3, 9, 17, 40):
        w = np.linspace(1.0, 2.0, dim)
        for zeros in range(dim + 1):
            spec = Spectrum.from_eigenvalues(np.r_[np.zeros(zeros), np.full(dim - zeros, 1e6)])
            curve = fixed_point_curve(w, spec, 1e-300, points=dim + 1)
            assert crossing(curve) == curve.limit == 1 - (dim - zeros) / dim  # s* = m/D (as the zero-atom test)
            assert curve.feasible.tolist() == (curve.kept >= predict_from_spectrum(w, spec, 1e-300).kept).tolist()


def test_limit_curve_takes_a_custom_criterions_order_and_allowed_counts(cancelling_groups):
    """``limit_curve`` had no ``order=``/``allowed=``, so a custom curve with a gradient was refused
    with a message asking for ``order=`` (a review). Each entry is ``predict_from_spectrum``'s."""
    case = cancelling_groups
    w, g, order, allowed, r2, flat = (case[k] for k in ("weights", "gradient", "order", "allowed", "r2", "spectrum"))
    epsilons = [0.02, case["epsilon"], 0.5]
    curve = limit_curve(w, flat, epsilons, criterion=r2, gradient=g, order=order, allowed=allowed)
    every_count = limit_curve(w, flat, epsilons, criterion=r2, gradient=g, order=order)
    for i, eps in enumerate(epsilons):
        for got, kwargs in ((curve, {"allowed": allowed}), (every_count, {})):
            p = predict_from_spectrum(w, flat, eps, criterion=r2, gradient=g, order=order, **kwargs)
            assert (got.sparsity[i], got.kept[i]) == (p.sparsity, p.kept)
            assert (got.interval_low[i], got.interval_high[i]) == p.interval
    assert curve.sparsity[1] == 1.0 and every_count.sparsity[1] == pytest.approx(1 / 3)  # closed forms (conftest)
    rng = np.random.default_rng(3)
    w = rng.normal(size=30)
    spec = Spectrum.from_eigenvalues(rng.lognormal(-2, 1, size=30))
    g = rng.normal(scale=0.01, size=30)
    permutation = rng.permutation(30)
    r2 = np.concatenate([[0.0], np.cumsum(w[permutation] ** 2)])[::-1].copy()
    curve = limit_curve(w, spec, [1e-3, 1e-2], criterion=r2, gradient=g, order=permutation)
    for i, eps in enumerate((1e-3, 1e-2)):
        assert curve.kept[i] == predict_from_spectrum(w, spec, eps, criterion=r2, gradient=g, order=permutation).kept
    with pytest.raises(PruningLimitsError, match=r"gradient needs criterion='magnitude' or the order .* \(order=\)"):
        limit_curve(w, spec, [1e-3], criterion=r2, gradient=g)
    with pytest.raises(PruningLimitsError, match="order must be a permutation of the 30 weight indices"):
        limit_curve(w, spec, [1e-3], criterion=r2, gradient=g, order=[0, 1])


def test_zero_fraction_is_the_largest_sparsity_with_r_zero():
    """``s₀`` against a count of zeros (magnitude) and a scan of ``R_k²`` (any curve)."""
    rng = np.random.default_rng(8)
    for _ in range(50):
        dim = int(rng.integers(1, 60))
        w = rng.normal(size=dim)
        w[rng.random(dim) < rng.uniform(0, 1)] = 0.0
        r2 = magnitude_distance_curve(w)
        assert zero_fraction(r2) == np.count_nonzero(w == 0) / dim
        scanned = max((1 - k / dim for k in range(dim + 1) if r2[k] == 0), default=0.0)
        assert zero_fraction(r2) == pytest.approx(scanned, abs=1e-15)
    assert zero_fraction([3.0, 1.0, 0.5]) == 0.0  # a custom curve with R_D² > 0: no zero
    assert zero_fraction([0.0, 0.0, 0.0]) == 1.0
    p = predict_from_spectrum([0.0, 0.0, 1.0, 2.0], Spectrum.from_eigenvalues([1.0, 1.0, 1.0, 1.0]), 1e-9)
    assert p.zero_fraction == 0.5 == p.sparsity and p.to_dict()["zero_fraction"] == 0.5


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: sparsity_estimator([1.0, 2.0], "abc"), "epsilons must be an array of numbers, got 'abc'"),
        (lambda: sparsity_estimator([1.0, 2.0], [np.nan]), "epsilon must be a finite number > 0, got nan"),
        (lambda: sparsity_estimator([1.0, 2.0], [0.1, None]), "epsilon must be a finite number > 0, got nan"),
        (lambda: sparsity_estimator([1.0, 2.0], []), "epsilons must hold at least one value"),
        (lambda: knee_steepness([np.nan, 1.0, 0.5, 0.0], 0.5), "distance_squared must hold finite R_k², got R_0² = nan"),
        (lambda: knee_steepness([np.inf, 1.0, 0.5, 0.0], 0.5), "distance_squared must hold finite R_k², got R_0² = inf"),
        (lambda: knee_steepness([1.0, 0.5, -np.inf], 0.5), "distance_squared must hold finite R_k², got R_2² = -inf"),
        (lambda: knee_steepness(["a"], 0.5), "distance_squared must be an array of numbers"),
        (lambda: knee_steepness([1.0, 2.0, 0.0], 0.5), "non-increasing in k, got R_1² = 2 > R_0² = 1"),
        (lambda: zero_fraction([1.0, np.nan, 0.0]), "distance_squared must hold finite R_k², got R_1² = nan"),
        (lambda: zero_fraction([1.0]), "distance_squared must be a 1-D array of R_k² for k = 0..D, got shape (1,)"),
    ],
)
def test_bad_inputs_to_the_estimator_the_knee_and_the_zero_fraction_are_one_line_errors(call, message):
    """``sparsity_estimator(w, "abc")`` raised numpy's ValueError; ``knee_steepness`` returned NaN for
    a NaN curve and a finite 1.04 for one starting at inf (a review)."""
    import re

    with pytest.raises(PruningLimitsError, match=re.escape(message)) as raised:
        call()
    assert "\n" not in str(raised.value)
    assert sparsity_estimator([1.0, 2.0], 0.1)(Spectrum.from_eigenvalues([1.0, 2.0])) == (
        predict_from_spectrum([1.0, 2.0], Spectrum.from_eigenvalues([1.0, 2.0]), 0.1).sparsity,
    )
