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
