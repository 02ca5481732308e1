"""The Spectrum container against exact eigenvalues (numpy oracles)."""

import numpy as np
import pytest

from pruning_limits import PruningLimitsError, Spectrum


def test_exact_measure_integrates_like_eigenvalues():
    rng = np.random.default_rng(0)
    eigs = np.concatenate([np.zeros(30), rng.normal(size=70)])
    spec = Spectrum.from_eigenvalues(eigs)
    assert spec.nodes.shape == spec.weights.shape == (1, 100)
    assert spec.dim == 100 and spec.exact
    assert spec.trace().value == pytest.approx(eigs.sum())
    assert spec.abs_trace().value == pytest.approx(np.abs(eigs).sum())
    assert spec.integrate(np.square).value == pytest.approx(np.mean(eigs**2))
    assert spec.atom_at_zero() == pytest.approx(0.3)
    assert spec.cdf([eigs.min() - 1, 0.0, eigs.max()]) == pytest.approx([0, np.mean(eigs <= 0), 1])
    assert spec.lambda_max == eigs.max() and spec.lambda_min == eigs.min()


def test_ragged_rows_are_padded_without_changing_integrals():
    rows = [(np.array([1.0, 3.0]), np.array([0.5, 0.5])), (np.array([2.0]), np.array([1.0]))]
    spec = Spectrum.from_ragged(rows, dim=4)
    assert spec.nodes.shape == (2, 2)
    assert spec.integrate(lambda x: x).value == pytest.approx(2.0)
    assert spec.trace().per_probe == pytest.approx([8.0, 8.0])
    assert spec.lambda_max == 3.0 and spec.lambda_min == 1.0


def test_density_is_normalised():
    spec = Spectrum.from_eigenvalues([-1.0, 0.0, 2.0])
    grid = np.linspace(-5, 7, 4001)
    assert np.trapezoid(spec.density(grid, 0.1), grid) == pytest.approx(1.0, abs=1e-6)


def test_invalid_measures_are_refused():
    with pytest.raises(PruningLimitsError, match="sum to 1"):
        Spectrum(np.ones((1, 2)), np.ones((1, 2)), 2)
    with pytest.raises(PruningLimitsError, match="one shape"):
        Spectrum(np.ones((1, 2)), np.ones((1, 3)) / 3, 2)
