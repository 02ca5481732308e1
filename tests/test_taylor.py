"""The second-order Taylor model of one-shot pruning, against brute force and exact quadratics."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from pruning_limits import PruningLimitsError
from pruning_limits.hessian import HessianOperator
from pruning_limits.masks import apply_masks, global_magnitude_masks
from pruning_limits.objective import evaluate_loss, flat_weights, loss_gradient
from pruning_limits.taylor import taylor_one_shot_limit


def _brute_force_first_crossing(w, g, H, epsilon):
    """Largest m before the first m with gᵀd + ½dᵀHd > ε, scanning every m (d = −w on the m smallest)."""
    order = np.argsort(np.abs(w), kind="stable")
    for m in range(w.size + 1):
        d = np.zeros_like(w)
        d[order[:m]] = -w[order[:m]]
        if g @ d + 0.5 * d @ H @ d > epsilon:
            return m - 1
    return w.size


def _random_case(rng, dim):
    w = rng.standard_normal(dim) * rng.uniform(0.01, 1.0, dim)
    a = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    H = a @ a.T + 0.1 * np.diag(rng.uniform(0, 1, dim))
    g = -1e-2 * np.sign(w) * rng.uniform(0.5, 1.5, dim)  # an l1 optimum's gradient, roughly
    return w, g, H


@pytest.mark.parametrize("seed", range(12))
def test_every_count_grid_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    dim = int(rng.integers(5, 80))
    w, g, H = _random_case(rng, dim)
    total = g @ -w + 0.5 * w @ H @ w
    epsilon = float(rng.uniform(0.05, 0.9)) * total
    result = taylor_one_shot_limit(w, g, H, epsilon, sparsities=np.arange(dim + 1) / dim)
    assert result.sparsity * dim == pytest.approx(_brute_force_first_crossing(w, g, H, epsilon))
    assert result.num_hvps == dim  # every m ≥ 1 once


@pytest.mark.parametrize("seed", range(12))
def test_default_grid_and_bisection_equal_brute_force_for_a_monotone_cost(seed):
    # Diagonal PSD H and g_i w_i ≤ 0: every pruned weight adds a non-negative cost, q rises in m.
    rng = np.random.default_rng(100 + seed)
    dim = int(rng.integers(50, 600))
    w = rng.standard_normal(dim) * rng.uniform(0.0, 1.0, dim)
    h = rng.uniform(0, 2, dim)
    g = -rng.uniform(0, 1e-2, dim) * np.sign(w)
    epsilon = float(rng.uniform(0.01, 0.5)) * float(np.sum(-g * w + 0.5 * h * w**2))
    result = taylor_one_shot_limit(w, g, np.diag(h), epsilon)
    assert round(result.sparsity * dim) == _brute_force_first_crossing(w, g, np.diag(h), epsilon)
    assert result.num_hvps < 41 + 2 * np.log2(dim)  # grid plus one bisection, not a scan
    q = result.loss_change
    assert np.all(np.diff(q) >= -1e-15) and q[0] == 0


def test_operator_matrix_and_callable_agree():
    rng = np.random.default_rng(7)
    w, g, H = _random_case(rng, 40)
    epsilon = 0.3 * float(g @ -w + 0.5 * w @ H @ w)
    from_matrix = taylor_one_shot_limit(w, g, H, epsilon)
    from_tensor = taylor_one_shot_limit(w, g, torch.from_numpy(H), epsilon)
    from_callable = taylor_one_shot_limit(w, g, lambda v: H @ v, epsilon)
    assert from_matrix.sparsity == from_tensor.sparsity == from_callable.sparsity
    np.testing.assert_allclose(from_matrix.second_order, from_callable.second_order, rtol=1e-14)


def test_exact_for_a_loss_quadratic_in_the_weights():
    # A linear model with MSE loss is exactly quadratic in its weight: q(m) is the true loss change.
    torch.manual_seed(0)
    x = torch.randn(300, 6, dtype=torch.float64)
    y = x @ torch.randn(6, 3, dtype=torch.float64) + 0.3 * torch.randn(300, 3, dtype=torch.float64)
    model = nn.Linear(6, 3).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(3, 6, dtype=torch.float64) * torch.rand(3, 6, dtype=torch.float64))
    w = flat_weights(model)
    g = loss_gradient(model, (x, y))
    op = HessianOperator(model, (x, y))
    dense_loss = evaluate_loss(model, (x, y))
    result = taylor_one_shot_limit(w, g, op, 1e9, sparsities=np.arange(19) / 18)
    for m, q in zip(result.num_pruned, result.loss_change):
        pruned = copy.deepcopy(model)
        apply_masks(pruned, global_magnitude_masks(pruned, int(m)))
        assert q == pytest.approx(evaluate_loss(pruned, (x, y)) - dense_loss, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"gradient": np.zeros(3)}, "one entry per weight"),
        ({"gradient": "abc"}, "gradient must be"),
        ({"gradient": np.array([0, np.nan, 0, 0])}, "NaN"),
        ({"epsilon": 0.0}, "epsilon"),
        ({"hessian": np.eye(5)}, "dimension 5, expected 4"),
        ({"sparsities": [0.5, 1.5]}, "sparsities must be numbers in [0, 1]"),
        ({"sparsities": "half"}, "sparsities must be numbers in [0, 1]"),
    ],
)
def test_bad_inputs_give_one_line_errors(kwargs, message):
    args = {"weights": np.ones(4), "gradient": np.zeros(4), "hessian": np.eye(4), "epsilon": 0.1, **kwargs}
    with pytest.raises(PruningLimitsError) as info:
        taylor_one_shot_limit(**args)
    assert message in str(info.value) and "\n" not in str(info.value)


# ----------------------------------------------------------------------------- spectral one-shot model


def _rotated(rng, eigenvalues):
    q, _ = np.linalg.qr(rng.standard_normal((eigenvalues.size, eigenvalues.size)))
    return (q * eigenvalues) @ q.T, q


def test_spectral_one_shot_limit_matches_a_brute_force_scan_with_the_exact_spectrum():
    from pruning_limits.spectrum import Spectrum
    from pruning_limits.taylor import spectral_one_shot_limit

    rng = np.random.default_rng(3)
    dim = 60
    # 20 exactly flat directions, 10 negative, 30 positive eigenvalues
    eigenvalues = np.concatenate([np.zeros(20), -rng.uniform(0.01, 0.1, 10), rng.uniform(0.1, 2.0, 30)])
    hessian, _ = _rotated(rng, eigenvalues)
    spectrum = Spectrum.from_eigenvalues(np.linalg.eigvalsh(hessian))
    w = rng.standard_normal(dim) * rng.uniform(0.01, 1.0, dim)
    g = 0.01 * rng.standard_normal(dim)
    # oracle: κ = Σ|λ| over the 40 non-flat eigenvalues / 40, scanned over every m with the running-max cost
    kappa = np.abs(eigenvalues).sum() / 40
    order = np.argsort(np.abs(w), kind="stable")
    for epsilon in (1e-3, 0.05, 0.5, 5.0):
        expected, cost = dim, 0.0
        for m in range(1, dim + 1):
            cost = max(cost, float(-(g[order[:m]] * w[order[:m]]).sum()))
            if cost + 0.5 * kappa * float((w[order[:m]] ** 2).sum()) > epsilon:
                expected = m - 1
                break
        model = spectral_one_shot_limit(w, g, spectrum, epsilon)
        assert model.flat_fraction == pytest.approx(20 / 60, abs=1e-12)
        assert model.curvature == pytest.approx(kappa, rel=1e-10)
        assert round(model.sparsity * dim) == expected and model.sparsity == pytest.approx(expected / dim, abs=1e-12), epsilon
        assert model.distance == pytest.approx(np.sqrt((w[order[:expected]] ** 2).sum()), rel=1e-12)
        running = np.maximum.accumulate(np.concatenate([[0.0], np.cumsum(-(g[order] * w[order]))]))
        assert model.first_order_cost == pytest.approx(running[expected], rel=1e-12, abs=1e-15)


def test_the_model_premise_mean_curvature_of_a_random_direction_in_the_non_flat_eigenspace():
    """E[dᵀ|H|d] = R² tr|H| / (D (1 − p₀)) for d uniform on the sphere of radius R in the non-flat eigenspace."""
    rng = np.random.default_rng(4)
    dim, flat = 40, 25
    eigenvalues = np.concatenate([np.zeros(flat), rng.uniform(-0.5, 3.0, dim - flat)])
    _, q = _rotated(rng, eigenvalues)
    active = q[:, flat:]  # eigenvectors of the non-zero eigenvalues
    samples = 20_000
    coordinates = rng.standard_normal((samples, dim - flat))
    d = coordinates @ active.T
    d *= 2.0 / np.linalg.norm(d, axis=1, keepdims=True)  # R = 2
    abs_hessian = (q * np.abs(eigenvalues)) @ q.T
    values = np.einsum("si,ij,sj->s", d, abs_hessian, d)
    expected = 4.0 * np.abs(eigenvalues).sum() / (dim - flat)
    # Monte-Carlo tolerance: 4 standard errors of the mean
    assert abs(values.mean() - expected) <= 4 * values.std() / np.sqrt(samples)


def test_spectral_one_shot_limit_edge_cases_and_errors():
    from pruning_limits.spectrum import Spectrum
    from pruning_limits.taylor import one_shot_crossing, spectral_one_shot_limit

    w = np.array([0.1, -0.2, 0.3, 1.0])
    g = np.array([-0.01, 0.02, -0.03, -0.1]) * 0  # no first-order cost
    flat = spectral_one_shot_limit(w, g, Spectrum.from_eigenvalues(np.zeros(4)), 0.01)
    assert flat.curvature == 0 and flat.flat_fraction == 1 and flat.sparsity == 1.0  # nothing to pay
    steep = spectral_one_shot_limit(w, g, Spectrum.from_eigenvalues([0.0, 0.0, 0.0, 1e6]), 1e-3)
    assert steep.curvature == pytest.approx(1e6 / 1) and steep.sparsity == 0.0
    with pytest.raises(PruningLimitsError, match="differ in dimension: 4 weights, spectrum of dim 3"):
        spectral_one_shot_limit(w, g, Spectrum.from_eigenvalues([1.0, 2.0, 3.0]), 0.1)
    with pytest.raises(PruningLimitsError, match="spectrum must be a pruning_limits.spectrum.Spectrum"):
        spectral_one_shot_limit(w, g, np.ones(4), 0.1)
    for bad in (0, 1.0, 2.0):
        with pytest.raises(PruningLimitsError, match=r"atom_tol must be a number in \(0, 1\)"):
            spectral_one_shot_limit(w, g, Spectrum.from_eigenvalues(np.ones(4)), 0.1, atom_tol=bad)
    for bad in (-1.0, True, float("nan"), "1"):
        with pytest.raises(PruningLimitsError, match="curvature must be a finite number >= 0"):
            one_shot_crossing(w, g, 0.1, bad)
    assert one_shot_crossing(w, g, 0.1, np.int64(1))[0] == one_shot_crossing(w, g, 0.1, 1.0)[0]
    with pytest.raises(PruningLimitsError, match="epsilon"):
        spectral_one_shot_limit(w, g, Spectrum.from_eigenvalues(np.ones(4)), 0.0)


def test_atom_tol_decides_which_eigenvalues_count_as_flat():
    from pruning_limits.spectrum import Spectrum
    from pruning_limits.taylor import spectral_one_shot_limit

    # relative sizes 1e-7 and 1e-5 of λmax = 1: flat at atom_tol 1e-6 only the first, at 1e-4 both
    spectrum = Spectrum.from_eigenvalues([1e-7, 1e-7, 1e-5, 1e-5, 1.0, 1.0])
    w, g = np.array([0.01, 0.02, 0.03, 0.5, 0.6, 0.7]), np.zeros(6)
    loose = spectral_one_shot_limit(w, g, spectrum, 1e-3, atom_tol=1e-4)
    strict = spectral_one_shot_limit(w, g, spectrum, 1e-3, atom_tol=1e-6)
    assert loose.flat_fraction == pytest.approx(4 / 6) and strict.flat_fraction == pytest.approx(2 / 6)
    mean_abs = (2e-7 + 2e-5 + 2.0) / 6
    assert loose.curvature == pytest.approx(mean_abs / (2 / 6)) and strict.curvature == pytest.approx(mean_abs / (4 / 6))
    assert loose.sparsity <= strict.sparsity  # more flat mass, stiffer non-flat part, earlier crossing
