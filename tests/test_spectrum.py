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


def test_ragged_rows_must_pair_nodes_and_weights_of_one_length() -> None:
    """Nodes [1, 2] with weights [1] were padded to weights [1, 0]; longer weights or 2-D rows
    failed in numpy, an empty row with an IndexError, and a generator of rows with a TypeError."""
    rows = [(np.array([1.0, 3.0]), np.array([0.5, 0.5])), (np.array([2.0]), np.array([1.0]))]
    from_generator = Spectrum.from_ragged((row for row in rows), dim=4)
    np.testing.assert_array_equal(from_generator.nodes, Spectrum.from_ragged(rows, dim=4).nodes)
    for nodes, weights, shapes in (([1.0, 2.0], [1.0], r"\(2,\) and \(1,\)"), ([1.0], [0.5, 0.5], r"\(1,\) and \(2,\)"),
                                   ([], [], r"\(0,\) and \(0,\)"), ([[1.0, 2.0]], [[0.5, 0.5]], r"\(1, 2\) and \(1, 2\)")):
        with pytest.raises(PruningLimitsError, match=rf"spectrum row 1 must hold 1-D nodes and weights of one length >= 1, got shapes {shapes}"):
            Spectrum.from_ragged([rows[0], (np.array(nodes), np.array(weights))], dim=4)
    with pytest.raises(PruningLimitsError, match="spectrum row 0 must be a pair"):
        Spectrum.from_ragged([(np.array([1.0, 2.0]),)], dim=4)
    with pytest.raises(PruningLimitsError, match="at least one probe"):
        Spectrum.from_ragged(iter([]), dim=4)


def test_cdf_is_nan_at_nan_and_refuses_text() -> None:
    spec = Spectrum.from_eigenvalues([1.0, 2.0])
    assert np.isnan(spec.cdf(np.nan))
    np.testing.assert_array_equal(spec.cdf([0.0, np.nan, 1.5, 3.0]), [0.0, np.nan, 0.5, 1.0])
    assert spec.cdf(1.5) == 0.5 and np.ndim(spec.cdf(1.5)) == 0
    with pytest.raises(PruningLimitsError, match=r"x must be an array of numbers, got 'a' \(str\)"):
        spec.cdf("a")


def test_spectrum_fields_are_checked_at_construction() -> None:
    """``num_hvps='x'`` failed in ``summary()`` with a raw ValueError, ``num_hvps=-5`` and
    ``reorthogonalization='bogus'`` were kept, and ``rule='exact'`` with ``exact=False`` accepted."""
    nodes, weights = np.array([[1.0, 2.0]]), np.array([[0.5, 0.5]])
    assert Spectrum(nodes, weights, 2, num_hvps=np.int64(4), reorthogonalization="none").summary()["num_hvps"] == 4
    for settings, match in (
        (dict(num_hvps="x"), r"spectrum num_hvps must be an integer >= 0, got 'x' \(str\)"),
        (dict(num_hvps=-5), "spectrum num_hvps must be an integer >= 0, got -5"),
        (dict(reorthogonalization="bogus"), "spectrum reorthogonalization must be None, 'full' or 'none', got 'bogus'"),
        (dict(rule="exact"), "spectrum exact must be True with rule 'exact' and False otherwise, got exact=False"),
        (dict(exact=True), "spectrum exact must be True with rule 'exact' and False otherwise, got exact=True with rule 'gauss'"),
    ):
        with pytest.raises(PruningLimitsError, match=match):
            Spectrum(nodes, weights, 2, **settings)
    assert Spectrum.from_eigenvalues([1.0, 2.0]).exact is True
