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


def test_rules_normalised_in_float32_are_accepted_and_renormalised_once():
    """The row check of 1e-8 (rtol 0) refused float32 rules, off by a few float32 ulps (a review):
    a Gauss rule from a float32 eigendecomposition, the weights 1/D of an exact measure stored as
    float32. They are accepted (within ROW_SUM_TOLERANCE = 1e-5) and divided by their row sums once,
    so cdf, trace and the integrals read one measure, the float64 renormalisation of the input; a
    float64 rule already at 1 is kept bit for bit; a row off by 1e-3 is refused in one line."""
    import torch

    from pruning_limits.spectrum import ROW_SUM_TOLERANCE

    assert ROW_SUM_TOLERANCE == 1e-5
    rng = np.random.default_rng(0)
    for n in (20, 100, 300):
        a = rng.standard_normal((n, n)).astype(np.float32)
        values, vectors = torch.linalg.eigh(torch.from_numpy((a + a.T) / 2))
        first = vectors[0] ** 2
        rule = (first / first.sum()).numpy()  # float32, normalised in float32
        assert rule.dtype == np.float32 and 0 < abs(float(rule.astype(np.float64).sum()) - 1) < 1e-6
        spec = Spectrum(values.numpy()[None], rule[None], 1000)
        oracle = rule.astype(np.float64) / rule.astype(np.float64).sum()
        np.testing.assert_allclose(spec.weights[0], oracle, rtol=1e-15, atol=0)
        assert spec.weights.sum() == pytest.approx(1.0, abs=n * 2.0**-52)
        assert spec.trace().value == pytest.approx(1000 * float(oracle @ values.numpy().astype(np.float64)), rel=1e-12)
        assert spec.cdf([values.max().item()]) == pytest.approx([1.0], abs=n * 2.0**-52)
    dim = 5000
    eigs = rng.standard_normal(dim)
    stored = np.full((1, dim), 1 / dim, dtype=np.float32)  # 1/D rounded to float32: the row sums to 1 − 2.5e-8
    assert abs(float(stored.astype(np.float64).sum()) - 1) > 1e-8
    exact = Spectrum(eigs[None], stored, dim, exact=True, rule="exact")
    reference = Spectrum.from_eigenvalues(eigs)
    assert exact.trace().value == pytest.approx(eigs.sum(), rel=1e-12, abs=1e-12)
    assert exact.integrate(np.square).value == pytest.approx(reference.integrate(np.square).value, rel=1e-14)
    # a float64 rule from this library is not touched
    rule = rng.dirichlet(np.ones(7), size=3)
    np.testing.assert_array_equal(Spectrum(rng.standard_normal((3, 7)), rule, 50).weights, rule)
    for off in (1e-3, -1e-3, 2e-5):
        bad = np.array([[0.5, 0.5 + off]])
        with pytest.raises(PruningLimitsError) as raised:
            Spectrum(np.ones((1, 2)), bad, 2)
        assert str(raised.value) == (
            f"spectrum weights must sum to 1 in every row (within 1e-05), got row 0 summing to {float(bad.sum())!r}"
        )



def test_a_spectrum_keeps_its_own_read_only_copy_of_the_callers_arrays():
    """A float64 numpy array was stored by reference (its ``writeable`` switched off on the caller's
    own array), a float64 torch tensor or a numpy view wrote through: ``w.mul_(2)`` after
    construction gave row sums of 2 and moved lambda_max (a review). Every input is copied, the
    copies are read-only, and the caller's arrays stay writeable."""
    import dataclasses

    import torch

    rng = np.random.default_rng(3)
    nodes = rng.standard_normal((2, 6))
    weights = rng.dirichlet(np.ones(6), size=2)
    sources = {
        "numpy": (nodes.copy(), weights.copy()),
        "view": (nodes.copy()[:], weights.copy()[:]),
        "torch": (torch.from_numpy(nodes.copy()), torch.from_numpy(weights.copy())),
        "float32-rounded": (nodes.copy(), weights.astype(np.float32).astype(np.float64)),  # renormalised
    }
    for name, (n, w) in sources.items():
        spec = Spectrum(n, w, 40)
        kept = (spec.nodes.copy(), spec.weights.copy(), spec.lambda_max, spec.trace().value, float(spec.cdf([0.0])[0]))
        caller_n, caller_w = np.asarray(n), np.asarray(w)  # the tensors' own memory
        assert caller_n.flags.writeable and caller_w.flags.writeable, name
        assert not np.shares_memory(spec.nodes, caller_n) and not np.shares_memory(spec.weights, caller_w), name
        if name == "torch":
            w.mul_(2)
            n.add_(10)
        else:
            w[0, 0] = 5.0
            n[:] = 10.0
        np.testing.assert_array_equal(spec.nodes, kept[0])
        np.testing.assert_array_equal(spec.weights, kept[1])
        assert (spec.lambda_max, spec.trace().value, float(spec.cdf([0.0])[0])) == kept[2:], name
        assert not spec.nodes.flags.writeable and not spec.weights.flags.writeable
        with pytest.raises(ValueError):
            spec.weights[0, 0] = 1.0
    spec = Spectrum(nodes, weights, 40)
    np.testing.assert_array_equal(spec.weights, weights)  # a float64 rule: the copy is bit for bit
    np.testing.assert_array_equal(dataclasses.replace(spec, num_hvps=2).weights, weights)


def test_library_rules_keep_their_weights_bit_for_bit_and_trace_divides_by_the_row_sum():
    """The claim "a float64 rule from this library is kept bit for bit" holds for the weights only:
    trace() divides each row by its sum, so on library rules whose rows sum to 1 within float64
    rounding (not exactly) it can differ in the last ulps from D·Σ τ θ undivided (a review: 87 of
    216 library spectra, 1-2 ulps). The docstring now says so; this pins both halves on
    gauss_quadrature rules of random Jacobi matrices."""
    from pruning_limits.lanczos import gauss_quadrature

    rng = np.random.default_rng(5)
    rows = [gauss_quadrature(rng.standard_normal(m), np.abs(rng.standard_normal(m - 1)) + 0.1) for m in [12] * 40]
    dim = 1000
    spec = Spectrum.from_ragged(rows, dim)
    trace = spec.trace().per_probe
    moved = 0
    for j, (n, w) in enumerate(rows):
        assert abs(w.sum() - 1) <= w.size * 2.0**-52  # a float64 rule: not renormalised
        np.testing.assert_array_equal(spec.weights[j], w)  # stored bit for bit
        assert trace[j] == dim * (np.sum(w * n) / w.sum())  # the trace divides by the row sum, exactly
        undivided = dim * np.sum(w * n)
        assert abs(trace[j] - undivided) <= 4 * w.size * np.spacing(dim * np.abs(n).max()), j  # a few ulps
        moved += trace[j] != undivided
    assert 0 < moved < len(rows)  # some rows move in the last ulps, as the docstring says
