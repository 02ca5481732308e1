"""Lanczos and Gauss quadrature on small dense matrices with known spectra."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pruning_limits._checks import PruningLimitsError
from pruning_limits.lanczos import (
    block_gauss_quadrature,
    block_lanczos,
    block_lanczos_bytes,
    full_block_lanczos_bytes,
    gauss_quadrature,
    lanczos,
    lanczos_probes,
    PLAIN_PROBE_VECTORS,
    lanczos_probes_bytes,
    plain_block_lanczos_bytes,
    projection_bytes,
    rademacher_probes,
)


def matrix_with_eigenvalues(eigs: np.ndarray, seed: int = 0) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((eigs.size, eigs.size)))
    return (q * eigs) @ q.T


def test_gauss_rule_is_exact_for_polynomials_up_to_degree_2m_minus_1() -> None:
    eigs = np.linspace(-1.0, 3.0, 200) ** 3
    A = matrix_with_eigenvalues(eigs)
    z = rademacher_probes(200, 1, seed=3)[0]
    m = 12
    result = lanczos(lambda v: A @ v, 200, m, start=z)
    assert result.alpha.size == m and result.beta.size == m - 1 and not result.breakdown
    nodes, weights = gauss_quadrature(result.alpha, result.beta)
    assert np.isclose(weights.sum(), 1.0, atol=1e-14)
    moment = z.copy()
    for k in range(2 * m):
        exact = z @ moment
        assert np.isclose(np.sum(weights * nodes**k), exact, rtol=1e-8, atol=1e-10 * 27**k)
        moment = A @ moment


def test_extreme_ritz_values_converge() -> None:
    eigs = np.concatenate([np.random.default_rng(1).uniform(0, 1, 295), [2.0, 3.0, 5.0, -1.5, -2.0]])
    A = matrix_with_eigenvalues(eigs, seed=2)
    result = lanczos(lambda v: A @ v, A.shape[0], 60, seed=0)
    nodes, _ = gauss_quadrature(result.alpha, result.beta)
    assert abs(nodes.max() - 5.0) <= 1e-10 and abs(nodes.min() + 2.0) <= 1e-10
    # full re-orthogonalisation: no spurious copies of the converged extreme eigenvalue
    assert np.sum(np.abs(nodes - 5.0) < 1e-6) == 1


def test_breakdown_with_three_distinct_eigenvalues() -> None:
    eigs = np.repeat([1.0, 2.0, 5.0], [10, 25, 15])
    A = matrix_with_eigenvalues(eigs, seed=4)
    z = rademacher_probes(50, 1, seed=0)[0]
    result = lanczos(lambda v: A @ v, 50, 20, start=z)
    assert result.breakdown and result.alpha.size == 3 and result.num_matvecs == 3
    nodes, weights = gauss_quadrature(result.alpha, result.beta)
    assert np.isfinite(nodes).all() and np.isfinite(weights).all()
    np.testing.assert_allclose(nodes, [1.0, 2.0, 5.0], atol=1e-12)
    # the weights are the squared norms of the projections of z on the eigenspaces
    _, U = np.linalg.eigh(A)
    proj = (U.T @ z) ** 2
    expected = [proj[:10].sum(), proj[10:35].sum(), proj[35:].sum()]
    np.testing.assert_allclose(weights, expected, atol=1e-12)


def test_rank_one_and_zero_operator_do_not_give_nan() -> None:
    u = np.ones(30) / np.sqrt(30)
    result = lanczos(lambda v: 4.0 * u * (u @ v), 30, 10, seed=1)
    nodes, weights = gauss_quadrature(result.alpha, result.beta)
    assert result.breakdown and nodes.size == 2 and np.isfinite(nodes).all()
    np.testing.assert_allclose(np.sort(nodes), [0.0, 4.0], atol=1e-12)
    zero = lanczos(lambda v: np.zeros_like(v), 30, 10, seed=1)
    assert zero.breakdown and zero.alpha.tolist() == [0.0]
    assert gauss_quadrature(zero.alpha, zero.beta)[1].tolist() == [1.0]


def test_without_reorthogonalisation_above_the_budget_and_its_quadrature() -> None:
    """Above the budget the plain recurrence runs (recorded, no silent fallback) in O(D) memory.

    The basis loses orthogonality (ghost copies of λ = 6 appear among 200 nodes) but the Gauss
    rule still integrates smooth functions and the φ-type function of the pruning limit as well
    as the fully re-orthogonalised rule (Greenbaum 1989; Chen & Trogdon 2023)."""
    eigs = np.concatenate([np.linspace(0, 1, 396), [2.0, 3.0, 4.0, 6.0]])
    A = matrix_with_eigenvalues(eigs, seed=5)
    z = rademacher_probes(400, 1, seed=0)[0]
    U = np.linalg.eigh(A)[1]
    plain = lanczos(lambda v: A @ v, 400, 200, start=z, memory_budget=10 * 400 * 8)
    full = lanczos(lambda v: A @ v, 400, 200, start=z)
    assert plain.reorthogonalization == "none" and full.reorthogonalization == "full"
    nodes, weights = gauss_quadrature(plain.alpha, plain.beta)
    full_nodes, full_weights = gauss_quadrature(full.alpha, full.beta)
    assert np.sum(np.abs(nodes - 6.0) < 1e-8) >= 2  # ghosts: the orthogonality really was lost
    assert np.sum(np.abs(full_nodes - 6.0) < 1e-8) == 1
    exact_weights = (U.T @ z) ** 2
    for f in (np.exp, lambda x: 1 / (1 + 30 * np.abs(x)), lambda x: 1e-3 / (1e-3 + np.abs(x))):
        exact = float(exact_weights @ f(np.linalg.eigvalsh(A)))
        assert abs(weights @ f(nodes) - exact) <= 1e-3 * exact
        assert abs(weights @ f(nodes) - full_weights @ f(full_nodes)) <= 1e-3 * exact
    with pytest.raises(PruningLimitsError, match="memory budget"):
        lanczos(lambda v: A @ v, 400, 200, start=z, reorthogonalization="full", memory_budget=10 * 400 * 8)
    with pytest.raises(PruningLimitsError, match="without re-orthogonalisation"):
        lanczos(lambda v: A @ v, 400, 200, start=z, memory_budget=2 * 400 * 8)


def test_lockstep_probes_equal_separate_runs_and_the_monitor_stops_them() -> None:
    eigs = np.linspace(-0.5, 3.0, 150) ** 3
    A = matrix_with_eigenvalues(eigs, seed=2)
    starts = rademacher_probes(150, 3, seed=4)
    for mode in ("full", "none"):
        together = lanczos_probes(lambda V: A @ V, 150, 40, starts, reorthogonalization=mode)
        assert together.num_matvecs == 120 and together.reorthogonalization == mode
        for j, start in enumerate(starts):
            alone = lanczos(lambda v: A @ v, 150, 40, start=start, reorthogonalization=mode)
            np.testing.assert_allclose(together.alpha[j], alone.alpha, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(together.beta[j], alone.beta, rtol=1e-12, atol=1e-12)
    seen = []

    def monitor(steps, partial):
        seen.append(steps)
        result = partial()
        assert (result.steps == steps).all() and len(result.rules()) == 3
        return steps == 7

    stopped = lanczos_probes(lambda V: A @ V, 150, 40, starts, monitor=monitor)
    assert seen == list(range(1, 8)) and stopped.num_matvecs == 21 and (stopped.steps == 7).all()
    block = block_lanczos(lambda V: A @ V, 150, 40, starts, monitor=lambda steps, partial: steps == 5)
    assert block.steps == 5 and block.num_matvecs == 15 and block.projection.shape == (15, 15)
    np.testing.assert_allclose(block.projection, block.projection.T)


def test_seeds_generators_and_iteration_cap() -> None:
    A = matrix_with_eigenvalues(np.arange(1.0, 21.0))
    a = lanczos(lambda v: A @ v, 20, 5, seed=7)
    b = lanczos(lambda v: A @ v, 20, 5, generator=torch.Generator().manual_seed(7))
    c = lanczos(lambda v: A @ v, 20, 5, seed=8)
    np.testing.assert_array_equal(a.alpha, b.alpha)
    assert not np.array_equal(a.alpha, c.alpha)
    capped = lanczos(lambda v: A @ v, 20, 50, seed=0)
    assert capped.alpha.size == 20
    nodes, _ = gauss_quadrature(capped.alpha, capped.beta)
    np.testing.assert_allclose(np.sort(nodes), np.arange(1.0, 21.0), atol=1e-10)
    # a torch matvec (float32) is accepted
    A32 = torch.from_numpy(A).float()
    r = lanczos(lambda v: A32 @ torch.from_numpy(v).float(), 20, 5, seed=7)
    np.testing.assert_allclose(r.alpha, a.alpha, rtol=1e-5)


def test_rademacher_probes() -> None:
    z = rademacher_probes(100, 3, seed=0)
    assert z.shape == (3, 100) and z.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0)
    assert set(np.unique(np.abs(z))) == {0.1}
    np.testing.assert_array_equal(z, rademacher_probes(100, 3, seed=0))


def test_bad_inputs() -> None:
    with pytest.raises(PruningLimitsError, match="callable"):
        lanczos(np.eye(3), 3, 2)
    with pytest.raises(PruningLimitsError, match="iterations"):
        lanczos(lambda v: v, 3, 0)
    with pytest.raises(PruningLimitsError, match="start"):
        lanczos(lambda v: v, 3, 2, start=np.zeros(3))
    with pytest.raises(PruningLimitsError, match=r"matvec returned an array of shape \(2,\), expected \(3,\)"):
        lanczos(lambda v: v[:2], 3, 2)
    with pytest.raises(PruningLimitsError, match="NaN"):
        lanczos(lambda v: v * np.nan, 3, 2)
    with pytest.raises(PruningLimitsError, match="alpha"):
        gauss_quadrature(np.ones(3), np.ones(3))


# --- block Lanczos and the block Gauss rule -------------------------------------------------


def test_block_rule_is_exact_for_polynomials_up_to_degree_2m_minus_1_for_every_probe() -> None:
    eigs = np.linspace(-1.0, 3.0, 200) ** 3
    A = matrix_with_eigenvalues(eigs)
    Z = rademacher_probes(200, 4, seed=3)
    m = 6
    result = block_lanczos(lambda V: A @ V, 200, m, Z)
    assert result.projection.shape == (4 * m, 4 * m) and result.num_matvecs == 4 * m and not result.breakdown
    nodes, weights = block_gauss_quadrature(result)
    assert weights.shape == (4, 4 * m)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-14)
    for j, z in enumerate(Z):
        moment = z.copy()
        for k in range(2 * m):
            assert np.isclose(np.sum(weights[j] * nodes**k), z @ moment, rtol=1e-8, atol=1e-10 * 27**k)
            moment = A @ moment
    # and it is the same rule as each probe's own Gauss rule on those polynomials, with more nodes
    single_nodes, single_weights = gauss_quadrature(*lanczos(lambda v: A @ v, 200, m, start=Z[0])[:2])
    assert np.isclose(np.sum(single_weights * single_nodes**5), np.sum(weights[0] * nodes**5), rtol=1e-8)


def test_block_rule_recovers_the_whole_spectrum_when_the_basis_fills_the_space() -> None:
    eigs = np.random.default_rng(5).standard_normal(60)
    A = matrix_with_eigenvalues(eigs, seed=6)
    Z = rademacher_probes(60, 3, seed=0)
    result = block_lanczos(lambda V: A @ V, 60, 25, Z)  # 3 × 25 > 60: stops at the full space
    nodes, weights = block_gauss_quadrature(result)
    np.testing.assert_allclose(nodes, np.sort(eigs), atol=1e-12)
    _, U = np.linalg.eigh(A)
    np.testing.assert_allclose(weights, (Z @ U) ** 2, atol=1e-12)  # the probes' exact spectral weights


def test_block_lanczos_deflates_dependent_starts_and_breaks_down_without_nan() -> None:
    eigs = np.repeat([1.0, 2.0, 5.0], [10, 25, 15])
    A = matrix_with_eigenvalues(eigs, seed=4)
    z = rademacher_probes(50, 2, seed=0)
    Z = np.vstack([z, 2 * z[0]])  # the third start is the first one scaled
    result = block_lanczos(lambda V: A @ V, 50, 20, Z)
    nodes, weights = block_gauss_quadrature(result)
    assert result.breakdown and np.isfinite(nodes).all() and np.isfinite(weights).all()
    # span{Z, AZ, A²Z} already holds both probes' components in the three eigenspaces
    assert result.projection.shape == (6, 6) and result.num_matvecs == 2 + 2 + 2
    np.testing.assert_allclose(np.unique(np.round(nodes, 10)), [1.0, 2.0, 5.0])
    np.testing.assert_allclose(weights[2], weights[0], atol=1e-12)
    # start vectors of very different lengths give the rule of each normalised start
    scaled = block_gauss_quadrature(block_lanczos(lambda V: A @ V, 50, 20, z * np.array([[1e-12], [1e6]])))
    np.testing.assert_allclose(scaled[1], block_gauss_quadrature(block_lanczos(lambda V: A @ V, 50, 20, z))[1], atol=1e-12)
    _, U = np.linalg.eigh(A)
    proj = (U.T @ z[1]) ** 2
    for value, mass in zip([1.0, 2.0, 5.0], [proj[:10].sum(), proj[10:35].sum(), proj[35:].sum()]):
        assert np.isclose(weights[1][np.isclose(nodes, value)].sum(), mass, atol=1e-12)


def test_block_lanczos_rank_one_operator_and_memory_budget() -> None:
    u = np.random.default_rng(0).standard_normal(30)
    A = np.outer(u, u)
    result = block_lanczos(lambda V: A @ V, 30, 10, rademacher_probes(30, 4, seed=1))
    nodes, weights = block_gauss_quadrature(result)
    assert np.isfinite(nodes).all() and np.isclose(nodes.max(), u @ u)
    assert block_lanczos_bytes(1000, 50, 4) == 4 * 50 * 1000 * 8
    assert block_lanczos_bytes(100, 50, 4) == 100 * 100 * 8  # the basis never exceeds D vectors
    with pytest.raises(PruningLimitsError, match="memory budget"):
        block_lanczos(lambda V: V, 1000, 50, rademacher_probes(1000, 4), memory_budget=block_lanczos_bytes(1000, 50, 4) - 1)


class _Diagonal:
    """A diagonal operator of ``D`` values from 0.01 to 10, as :func:`~pruning_limits.spectrum.slq` takes one."""

    dtype = np.float64

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.values = np.linspace(0.01, 10.0, dim)

    def matvec(self, v: np.ndarray) -> np.ndarray:
        return self.values * v

    def matmat(self, V: np.ndarray) -> np.ndarray:
        return self.values[:, None] * V


def _traced_slq(operator: _Diagonal, **settings) -> tuple:
    """``slq(operator, seed=0, **settings)`` and the peak bytes tracemalloc saw it allocate (numpy's
    arrays among them)."""
    import tracemalloc

    from pruning_limits.spectrum import slq

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        spectrum = slq(operator, seed=0, **settings)
        return spectrum, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_the_reorthogonalised_block_rule_holds_its_budget_with_its_working_blocks() -> None:
    """The re-orthogonalised block rule's count, and slq's choice of it, left out the five
    working blocks it shares with the bounded rule (the probes, the current and previous blocks,
    the operator's result and its float64 copy): with a budget of its basis and projected matrix
    exactly, D = 50 000, 8 probes × 10 steps peaked at 1.51 times it (tracemalloc, a review's
    repro). Now a budget of ``full_block_lanczos_bytes`` runs re-orthogonalised within it, one
    byte less runs the bounded rule, and ``"full"`` refuses that naming the blocks. Traced with
    tracemalloc, which sees numpy's arrays (at these sizes the peak is in the product, where
    every block is one), allowed 1 % for the small arrays beside them."""
    dim, probes, steps = 50_000, 8, 10
    operator = _Diagonal(dim)
    need = full_block_lanczos_bytes(dim, steps, probes)
    assert need == block_lanczos_bytes(dim, steps, probes) + projection_bytes(dim, steps, probes) + 5 * probes * dim * 8
    for budget, mode in ((need, "full"), (need - 1, "none")):
        spectrum, peak = _traced_slq(operator, iterations=steps, probes=probes, memory_budget=budget)
        assert spectrum.reorthogonalization == mode
        assert peak <= 1.01 * budget, (mode, peak / budget)
    starts = rademacher_probes(dim, probes, seed=0)
    with pytest.raises(PruningLimitsError) as info:
        block_lanczos(operator.matmat, dim, steps, starts, memory_budget=need - 1)
    blocks = plain_block_lanczos_bytes(dim, probes)
    assert str(info.value).startswith(
        f"the block Lanczos basis (80 vectors of 50000 float64, 32000000 bytes (0.0298 GiB)) with its projected matrix "
        f"and quadrature (204800 bytes (0.000191 GiB)) and 5 working blocks of 8 float64 vectors ({blocks} bytes "
        f"(0.0149 GiB)) exceeds the memory budget of {need - 1} bytes"
    )


def test_the_reorthogonalised_gauss_rule_holds_its_budget_with_its_working_vectors() -> None:
    """The per-probe Gauss rule's full mode counted its basis, ``probes·(m + 1)·D·8`` bytes, and not
    the working vectors of the recurrence: a budget of that exactly peaked at 1.2 to 2.0 times it
    (one probe, D = 50 000 to 200 000, tracemalloc; a review). Now ``lanczos_probes_bytes``
    counts ``PLAIN_PROBE_VECTORS`` beside the basis; a budget of it runs re-orthogonalised within
    it (1 % allowed for the small arrays beside the vectors), one byte less runs the bounded
    recurrence."""
    dim, steps = 100_000, 5
    need = lanczos_probes_bytes(dim, steps, 1, "full")
    assert need == (steps + 1 + PLAIN_PROBE_VECTORS) * dim * 8
    for budget, mode in ((need, "full"), (need - 1, "none")):
        spectrum, peak = _traced_slq(_Diagonal(dim), iterations=steps, probes=1, rule="gauss", memory_budget=budget)
        assert spectrum.reorthogonalization == mode
        assert peak <= 1.01 * budget, (mode, peak / budget)


def test_products_with_nan_or_infinity_are_refused_in_one_line() -> None:
    """The finiteness check of each product reads its max and min now (np.isfinite made a boolean
    copy, an eighth of a block at the rule's peak): NaN, +inf and -inf are still refused."""
    starts = rademacher_probes(20, 2, seed=0)
    for bad in (np.nan, np.inf, -np.inf):
        def matmat(V: np.ndarray, bad: float = bad) -> np.ndarray:
            out = V.copy()
            out[3, 1] = bad
            return out

        for mode in ("full", "none"):
            with pytest.raises(PruningLimitsError, match=r"^matmat returned NaN or infinite values$"):
                block_lanczos(matmat, 20, 5, starts, reorthogonalization=mode)
        with pytest.raises(PruningLimitsError, match=r"^matmat returned NaN or infinite values$"):
            lanczos_probes(matmat, 20, 5, starts)


def test_the_bounded_paths_need_exactly_their_stated_bytes() -> None:
    """The budget check of each path without re-orthogonalisation is the byte count the docs state.

    ``PLAIN_BLOCKS`` (5 blocks of the probes) and ``PLAIN_PROBE_VECTORS`` (6 vectors per probe)
    are counted from the code; benchmarks/bench_memory.py measures the peak against them
    (docs/benchmarks.md, "Memory against D"). Here: a budget of exactly that many bytes runs,
    one byte less is the one-line error, and both runs stay within their O(D) form.
    """
    dim, probes, steps = 500, 3, 40
    values = np.linspace(0.0, 2.0, dim)
    starts = rademacher_probes(dim, probes, seed=2)
    assert plain_block_lanczos_bytes(dim, probes) == 5 * probes * dim * 8
    assert lanczos_probes_bytes(dim, steps, probes, "none") == 6 * probes * dim * 8
    exact = plain_block_lanczos_bytes(dim, probes)
    # its projected matrix and quadrature: 4 float64 squares of probes x steps (D caps the side)
    projected = projection_bytes(dim, steps, probes)
    assert projected == 4 * (probes * steps) ** 2 * 8 and projection_bytes(50, steps, probes) == 4 * 50**2 * 8
    dim = 4 * probes * steps + 2000  # where the bounded path is smaller than the basis (4 x 120 x 120 < 500 x 120)
    values = np.linspace(0.0, 2.0, dim)
    starts = rademacher_probes(dim, probes, seed=2)
    exact = plain_block_lanczos_bytes(dim, probes)
    both = exact + projected
    assert both < block_lanczos_bytes(dim, steps, probes)
    result = block_lanczos(lambda V: values[:, None] * V, dim, steps, starts, memory_budget=both, reorthogonalization="auto")
    nodes, weights = block_gauss_quadrature(result)
    for j in range(probes):  # the second moment is exact after two steps, lost orthogonality or not
        assert weights[j] @ nodes**2 == pytest.approx(float(starts[j] ** 2 @ values**2), rel=1e-10)
    with pytest.raises(PruningLimitsError, match=rf"needs {exact} bytes \([0-9.e-]+ GiB\), above the memory budget of {exact - 1} bytes \([0-9.e-]+ GiB\): raise the budget \(--memory-budget GiB\)"):
        block_lanczos(lambda V: values[:, None] * V, dim, steps, starts, memory_budget=exact - 1, reorthogonalization="auto")
    with pytest.raises(PruningLimitsError, match=rf"40 block steps of 3 probes project onto a 120-square matrix \({projected} bytes"):
        block_lanczos(lambda V: values[:, None] * V, dim, steps, starts, memory_budget=both - 1, reorthogonalization="auto")
    dim = 500
    values = np.linspace(0.0, 2.0, dim)
    starts = rademacher_probes(dim, probes, seed=2)
    single = lanczos_probes_bytes(dim, steps, 1, "none")
    run = lanczos_probes(lambda V: values[:, None] * V, dim, steps, starts[:1], memory_budget=single)
    assert run.reorthogonalization == "none"
    with pytest.raises(PruningLimitsError, match="6 vectors per probe"):
        lanczos_probes(lambda V: values[:, None] * V, dim, steps, starts[:1], memory_budget=single - 1)


def test_block_lanczos_bad_inputs() -> None:
    with pytest.raises(PruningLimitsError, match="matmat must be callable"):
        block_lanczos("A", 3, 2, np.ones((1, 3)))
    with pytest.raises(PruningLimitsError, match=r"starts must be a finite \(probes, 3\) array"):
        block_lanczos(lambda V: V, 3, 2, np.ones(3))
    with pytest.raises(PruningLimitsError, match="non-zero"):
        block_lanczos(lambda V: V, 3, 2, np.zeros((2, 3)))
    with pytest.raises(PruningLimitsError, match="NaN"):
        block_lanczos(lambda V: V * np.nan, 3, 2, np.ones((1, 3)))


def test_block_lanczos_refuses_a_product_of_the_wrong_size() -> None:
    with pytest.raises(PruningLimitsError, match=r"matmat returned an array of shape \(2,\), expected \(3, 1\)"):
        block_lanczos(lambda V: np.ones(2), 3, 2, np.ones((1, 3)))


def test_a_float32_basis_keeps_the_block_rule_of_a_float32_operator() -> None:
    """The basis stored in float32 (re-orthogonalisation passes in float32, recurrence in float64)
    against the float64 basis, on the same float32-rounded products and against the exact
    quadrature (eigh of that operator): the second moment agrees to float32 rounding (measured
    7e-8 and 1.5e-7), and a Stieltjes function like SLQ's φ_R, which the rule resolves slowly,
    is as close to exact with either basis (2.2e-4 and 1.2e-4 at 100 steps); the basis takes
    half the bytes, and a budget between the two sizes admits only the float32 one."""
    rng = np.random.default_rng(3)
    dim = 600
    Q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    eigs = np.concatenate([np.zeros(200), rng.uniform(-0.05, 0.05, 100), np.geomspace(1e-3, 50.0, 300)])
    A32 = torch.from_numpy(((Q * eigs) @ Q.T).astype(np.float32))

    def matmat(V: np.ndarray) -> np.ndarray:  # a float32 operator, as a float32 model's Hessian
        return (A32 @ torch.from_numpy(V.astype(np.float32))).double().numpy()

    starts = rademacher_probes(dim, 4, seed=0)
    lam, U = np.linalg.eigh(A32.double().numpy())
    exact_weights = (starts @ U) ** 2 / (starts**2).sum(axis=1, keepdims=True)
    for dtype in (np.float64, np.float32):
        nodes, weights = block_gauss_quadrature(block_lanczos(matmat, dim, 100, starts, basis_dtype=dtype))
        for f, rtol in ((lambda x: x**2, 1e-6), (lambda x: 1.0 / (1.0 + 1e3 * np.abs(x)), 1e-3)):
            exact = np.sum(exact_weights * f(lam), axis=1)
            assert np.allclose(np.sum(weights * f(nodes), axis=1), exact, rtol=rtol, atol=0), (dtype, rtol)
    assert block_lanczos_bytes(dim, 60, 4, 4) * 2 == block_lanczos_bytes(dim, 60, 4)
    between = full_block_lanczos_bytes(dim, 60, 4, 4) + 1  # the projected matrix and working blocks beside either
    block_lanczos(matmat, dim, 60, starts, basis_dtype=np.float32, memory_budget=between)
    with pytest.raises(PruningLimitsError, match="float64.*exceeds the memory budget"):
        block_lanczos(matmat, dim, 60, starts, memory_budget=between)
    with pytest.raises(PruningLimitsError, match="basis_dtype must be float64 or float32, got float16"):
        block_lanczos(matmat, dim, 60, starts, basis_dtype=np.float16)


def test_a_product_of_the_wrong_shape_is_refused_not_reshaped() -> None:
    """A ``matmat`` that returns the products as rows, ``(k, D)``, was reshaped to ``(D, k)``: the
    rule of a positive definite operator had negative nodes (a review's repro, −5.8 for
    eigenvalues 1…6). Now only ``(D, k)`` is taken, and a ``matvec`` must return ``(D,)``."""
    A = matrix_with_eigenvalues(np.arange(1.0, 7.0), seed=2)
    starts = rademacher_probes(6, 3, seed=0)
    nodes, _ = block_gauss_quadrature(block_lanczos(lambda V: A @ V, 6, 10, starts))
    np.testing.assert_allclose(nodes, np.linalg.eigvalsh(A), atol=1e-12)  # the right shape: the eigenvalues
    with pytest.raises(PruningLimitsError, match=r"matmat returned an array of shape \(3, 6\), expected \(6, 3\)"):
        block_lanczos(lambda V: (A @ V).T, 6, 10, starts)
    with pytest.raises(PruningLimitsError, match=r"matmat returned an array of shape \(3, 6\), expected \(6, 3\)"):
        block_lanczos(lambda V: (A @ V).T, 6, 10, starts, reorthogonalization="none")
    with pytest.raises(PruningLimitsError, match=r"matmat returned an array of shape \(3, 6\), expected \(6, 3\)"):
        lanczos_probes(lambda V: (A @ V).T, 6, 10, starts)
    for shape in ((3, 2), (6, 1), (1, 6)):
        with pytest.raises(PruningLimitsError, match=rf"matvec returned an array of shape \({shape[0]}, {shape[1]}\), expected \(6,\)"):
            lanczos(lambda v: (A @ v).reshape(shape), 6, 10)


def test_complex_and_non_numeric_products_are_refused() -> None:
    """Complex products were cast to float64 with a ComplexWarning only (the imaginary part
    dropped: a wrong spectrum); a product of strings failed inside numpy."""
    A = np.diag([1.0, 2.0, 3.0])
    for matvec in (lambda v: (A @ v) + 0j, lambda v: torch.from_numpy(A @ v).to(torch.complex128)):
        with pytest.raises(PruningLimitsError, match="matvec returned complex values"):
            lanczos(matvec, 3, 2)
    with pytest.raises(PruningLimitsError, match=r"matmat returned complex values \(torch.complex64\)"):
        block_lanczos(lambda V: torch.from_numpy(A @ V).to(torch.complex64), 3, 2, np.ones((1, 3)))
    with pytest.raises(PruningLimitsError, match=r"matvec must return an array of numbers, got 'abc' \(str\)"):
        lanczos(lambda v: "abc", 3, 2)
    with pytest.raises(PruningLimitsError, match="alpha must be real numbers, got complex values"):
        gauss_quadrature([1 + 1j, 2.0], [0.5])


def test_basis_dtype_takes_torch_dtypes_and_refuses_other_names() -> None:
    A = matrix_with_eigenvalues(np.arange(1.0, 9.0), seed=1)
    starts = rademacher_probes(8, 3, seed=0)
    as_numpy = block_lanczos(lambda V: A @ V, 8, 5, starts, basis_dtype=np.float32)
    as_torch = block_lanczos(lambda V: A @ V, 8, 5, starts, basis_dtype=torch.float32)
    np.testing.assert_array_equal(as_torch.projection, as_numpy.projection)
    with pytest.raises(PruningLimitsError, match=r"basis_dtype must be float64 or float32, got 'banana' \(str\)"):
        block_lanczos(lambda V: A @ V, 8, 5, starts, basis_dtype="banana")
    with pytest.raises(PruningLimitsError, match="basis_dtype must be float64 or float32, got torch.float16"):
        block_lanczos(lambda V: A @ V, 8, 5, starts, basis_dtype=torch.float16)
    with pytest.raises(PruningLimitsError, match=r"product_dtype must be a numpy or torch dtype, got 'banana' \(str\)"):
        block_lanczos(lambda V: A @ V, 8, 5, starts, product_dtype="banana")


@pytest.mark.parametrize("mode", ["full", "none"])
def test_block_lanczos_refuses_a_non_symmetric_operator(mode: str) -> None:
    """The block rule keeps the upper half of each ``QⱼᵀAQⱼ``: a non-symmetric operator gave
    nodes that are no eigenvalues of it (``[[1, 5], [0, 1]]``, eigenvalues 1 and 1: −2.54 and
    4.54, a review's repro). An asymmetry above ``√eps`` of the products' dtype times the largest
    product norm is refused: a relative 1e-6 in float64 products (tolerance 1.5e-8), not when
    the products may be float32 (the default for float64 arrays, which may hold them), checked at
    TF32's √eps (0.031), as a GPU may compute float32 convolutions in TF32."""
    with pytest.raises(PruningLimitsError, match="the operator is not symmetric: a block QᵀAQ differs from its transpose by 5"):
        block_lanczos(lambda V: np.array([[1.0, 5.0], [0.0, 1.0]]) @ V, 2, 3, np.eye(2), reorthogonalization=mode)
    rng = np.random.default_rng(0)
    S = matrix_with_eigenvalues(rng.uniform(1.0, 2.0, 40), seed=3)
    N = rng.standard_normal((40, 40))
    starts = rademacher_probes(40, 4, seed=1)
    for size, product_dtype, refused in ((0.2, None, True), (1e-2, None, False), (1e-6, np.float64, True), (1e-6, None, False),
                                         (1e-6, torch.float32, False), (0.0, np.float64, False)):
        A = S + size * N
        run = lambda: block_lanczos(lambda V: A @ V, 40, 8, starts, reorthogonalization=mode, product_dtype=product_dtype)  # noqa: E731
        if refused:
            with pytest.raises(PruningLimitsError, match="the operator is not symmetric"):
                run()
        else:  # accepted; the nodes of a rounding-sized asymmetry are those of S
            nodes, _ = block_gauss_quadrature(run())
            assert size > 1e-6 or (np.all(nodes > 0.9) and np.all(nodes < 2.1))


def test_the_re_orthogonalised_probes_hold_their_basis_once() -> None:
    """``lanczos_probes`` indexed its stored basis by the active probes every step, a copy of the
    whole basis: 3.0 times the basis at the peak (tracemalloc, D = 20 000, 60 steps), 1.1 now.
    numpy reports its arrays to tracemalloc, so the peak counts every basis-sized temporary."""
    import tracemalloc

    dim, steps = 20_000, 60
    diagonal = np.linspace(0.1, 2.0, dim)
    tracemalloc.start()
    try:
        result = lanczos(lambda v: diagonal * v, dim, steps)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.reorthogonalization == "full"
    assert peak < 1.5 * (steps + 1) * dim * 8


# --- low-rank operators: the block Krylov space runs out ------------------------------------


def pruned_mlp_eigenvalues() -> np.ndarray:
    """A spectrum shaped like the Hessian of a fully pruned MLP (all weights zero): ± pairs of
    multiplicity 12, above the 8 probes, a simple eigenvalue beside each, and a 60-fold zero.

    The review's repro (``pruning-limit prune --sparsity 1`` of a 64-32-10 MLP, D = 2 368) had 9 such
    pairs of multiplicity 18, 18 simple eigenvalues and a 2 026-fold zero: its block Krylov space from
    8 probes has ``Σ min(multiplicity, 8) = 170`` dimensions, 21 full blocks and 2 directions. Here
    ``9·2·8 + 18 + 8 = 170`` too, in D = 294."""
    a = np.linspace(0.2, 1.0, 9)
    return np.concatenate([np.repeat(a, 12), np.repeat(-a, 12), a + 0.022, -a - 0.022, np.zeros(60)])


def assert_spectral_measure(A: np.ndarray, starts: np.ndarray, nodes: np.ndarray, weights: np.ndarray, eigh=None) -> None:
    """The rule of each start is its spectral measure ``Σ_i (u_iᵀz)² δ_{λ_i}`` (``z`` normalised),
    with ``u_i, λ_i`` from ``numpy.linalg.eigh``: the weight on each distinct eigenvalue (the atom at
    zero included) is the start's squared coordinates in its eigenspace, and the nodes carry their
    weight no further than ``Σ_k w_k·dist(θ_k, spectrum) ≤ 1e-13·max|λ|`` from the spectrum, which
    bounds the rule's error on every 1-Lipschitz integrand. (Re-orthogonalised, every node that
    carries weight is within 3e-15 of an eigenvalue; without, copies of converged Ritz values carry
    1e-12 weight up to 4e-12 away and the nodes that are no eigenvalue carry 1e-31.) ``eigh``: the
    eigen-decomposition of ``A`` when already computed."""
    eigs, vectors = np.linalg.eigh(A) if eigh is None else eigh
    top = max(float(np.abs(eigs).max()), 1.0)
    z = starts / np.linalg.norm(starts, axis=1, keepdims=True)
    exact = (z @ vectors) ** 2
    weights = np.atleast_2d(weights)
    nodes = np.broadcast_to(nodes, weights.shape)
    distinct = np.unique(np.round(eigs / top, 9)) * top
    for j in range(z.shape[0]):
        distance = np.abs(nodes[j][:, None] - eigs[None, :]).min(axis=1)
        assert np.sum(weights[j] * distance) <= 1e-13 * top, j
        for value in distinct:
            got = weights[j][np.abs(nodes[j] - value) <= 1e-9 * top].sum()
            assert abs(got - exact[j][np.abs(eigs - value) <= 1e-9 * top].sum()) <= 1e-12, (j, value)


def low_rank_operators() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    u = rng.standard_normal(60)
    basis, _ = np.linalg.qr(rng.standard_normal((80, 5)))
    return {
        "zero": np.zeros((60, 60)),
        "rank one": np.outer(u, u),
        "rank five": (basis * np.array([-2.0, -0.5, 0.3, 1.0, 4.0])) @ basis.T,
        "fully pruned MLP": np.diag(pruned_mlp_eigenvalues()),
    }


@pytest.mark.parametrize("mode", ["full", "none"])
@pytest.mark.parametrize("name", ["zero", "rank one", "rank five", "fully pruned MLP"])
def test_the_block_rule_of_a_low_rank_operator_is_its_spectral_measure(name: str, mode: str, symmetry_margin) -> None:
    """Rank far below ``probes × steps``: the block Krylov space becomes invariant long before the
    30 steps (22 blocks on the fully pruned MLP's spectrum). On the fully pruned MLP's spectrum the residual then had directions about 1e-9 of the
    products' norm beside others of 0.1 in the same block, above the deflation tolerance (1e-10 of
    it); their QR left them 1e-7 off the basis, and the symmetry check read that as asymmetry and
    refused the symmetric operator ("differs from its transpose by 8.57e-09 … tolerance 3.63e-09", the
    review's D = 2 368 Hessian; here seeds 3 and 5, and 7 without re-orthogonalisation).
    Such a block is now orthogonalised again and the rule is the exact measure. (On that spectrum
    the run goes on past the 170 dimensions with the tiny directions, now harmlessly: they carry
    no weight of the probes.) The symmetric operator stays far inside the symmetry check's
    tolerance, so that the check still tells a non-symmetric one (the next tests): measured up to
    5e-6 of it on such spectra, here required below 1e-3."""
    worst = symmetry_margin
    A = low_rank_operators()[name]
    dim = A.shape[0]
    decomposition = np.linalg.eigh(A)
    for seed in (3, 5, 7) if name == "fully pruned MLP" else (0,):
        starts = rademacher_probes(dim, 8, seed=seed)
        result = block_lanczos(lambda V: A @ V, dim, 30, starts, reorthogonalization=mode, product_dtype=np.float64)
        nodes, weights = block_gauss_quadrature(result)
        assert np.isfinite(nodes).all() and np.isfinite(weights).all()
        if mode == "full" and name != "fully pruned MLP":  # rank + 8 directions: an invariant space
            assert result.breakdown and result.projection.shape[0] == np.linalg.matrix_rank(A) + 8
        assert_spectral_measure(A, starts, nodes, weights, decomposition)
    assert worst[0] < 1e-3
    if name == "zero":  # one product shows the space {Z} invariant: all mass on a zero node
        assert result.steps == 1 and result.num_matvecs == 8 and np.all(nodes == 0.0)


def test_slq_gives_the_probes_spectral_measure_where_the_krylov_space_runs_out() -> None:
    """``spectrum.slq``, the entry ``predict`` uses (block rule, re-orthogonalised: the basis fits),
    on the fully pruned MLP's spectrum: it raised "the operator is not symmetric" for seeds 3, 5
    and 7; each probe's rule is now its exact spectral measure, the atom at zero included."""
    from pruning_limits.spectrum import slq

    A = np.diag(pruned_mlp_eigenvalues())
    decomposition = np.linalg.eigh(A)
    zero = np.abs(decomposition[0]) < 1e-12
    for seed in (3, 5, 7):
        spectrum = slq(A, iterations=30, probes=8, seed=seed)
        assert spectrum.rule == "block" and spectrum.reorthogonalization == "full"
        starts = rademacher_probes(A.shape[0], 8, seed=seed)  # slq's probes
        assert_spectral_measure(A, starts, spectrum.nodes, spectrum.weights, decomposition)
        atom = np.mean(((starts @ decomposition[1]) ** 2)[:, zero].sum(axis=1))
        assert abs(spectrum.atom_at_zero() - atom) <= 1e-12 and 0.1 < atom < 0.3  # 60 of 294 dimensions


@pytest.mark.parametrize("mode", ["full", "none"])
def test_a_direction_far_below_the_others_in_its_block_stays_orthogonal_to_the_basis(mode: str) -> None:
    """The smallest case of the fully pruned MLP's failure, in D = 6 turned by random rotations:
    ``A e₁ = 2e₁ + e₃`` and ``A e₂ = 3e₂ + e₃ + 1e-9·e₄`` from the starts ``e₁, e₂``, so that the
    first residual has singular values 1.4 and 7e-10 (a cancellation of two columns of norm 1),
    kept at the default deflation (1e-10 × 3.2). The QR makes the small one's column about
    ``eps·1.4/7e-10`` ≈ 4e-7 off the first block; without the extra Gram–Schmidt pass 5 of the 6
    rotations were refused as non-symmetric (re-orthogonalised; 2 of 6 without, one node 2e-13 off).
    The basis fills the space, so the rule is the exact spectral measure."""
    D = 6
    A = np.zeros((D, D))
    A[np.arange(6), np.arange(6)] = [2.0, 3.0, 5.0, 7.0, 1.0, 4.0]
    for i, j, value in ((0, 2, 1.0), (1, 2, 1.0), (1, 3, 1e-9), (2, 4, 0.5), (3, 5, 0.5)):
        A[i, j] = A[j, i] = value
    for seed in range(6):
        rotation, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((D, D)))
        B = rotation @ A @ rotation.T
        B = 0.5 * (B + B.T)
        starts = rotation[:, :2].T.copy()
        result = block_lanczos(lambda V: B @ V, D, 5, starts, reorthogonalization=mode, product_dtype=np.float64)
        nodes, weights = block_gauss_quadrature(result)
        assert result.projection.shape == (D, D)
        np.testing.assert_allclose(nodes, np.linalg.eigvalsh(B), atol=1e-13)
        assert_spectral_measure(B, starts, nodes, weights)


@pytest.mark.parametrize("mode", ["full", "none"])
def test_a_non_symmetric_operator_is_refused_where_the_krylov_space_runs_out(mode: str) -> None:
    """The extra orthogonalisation of a block whose singular values spread does not hide an
    asymmetry: 1e-6 of a random matrix (the tolerance is 1.5e-8 in float64) is refused on the fully
    pruned MLP's spectrum and on the rotated D = 6 case, as on a full-rank operator."""
    rng = np.random.default_rng(1)
    pruned = np.diag(pruned_mlp_eigenvalues())
    D = 6
    small = np.diag([2.0, 3.0, 5.0, 7.0, 1.0, 4.0])
    for i, j, value in ((0, 2, 1.0), (1, 2, 1.0), (1, 3, 1e-9), (2, 4, 0.5), (3, 5, 0.5)):
        small[i, j] = small[j, i] = value
    rotation, _ = np.linalg.qr(rng.standard_normal((D, D)))
    small = rotation @ small @ rotation.T
    for A, starts in ((pruned, rademacher_probes(pruned.shape[0], 8, seed=0)), (small, rotation[:, :2].T.copy())):
        A = 0.5 * (A + A.T) + 1e-6 * np.abs(A).max() * rng.standard_normal(A.shape)
        with pytest.raises(PruningLimitsError, match="the operator is not symmetric"):
            block_lanczos(lambda V: A @ V, A.shape[0], 60, starts, reorthogonalization=mode, product_dtype=np.float64)


FLOAT32_EPS = float(np.finfo(np.float32).eps)
FLOAT64_EPS = float(np.finfo(np.float64).eps)


@pytest.mark.parametrize("defence", ["deflation and second pass", "second pass alone"])
@pytest.mark.parametrize("rank", [1, 3, 10])
def test_a_float32_basis_with_float64_products_keeps_a_low_rank_operator_exact(
    rank: int, defence: str, symmetry_margin, monkeypatch
) -> None:
    """A float32 basis with float64 products and the default ``breakdown_tol`` (1e-10) refused
    rotated diagonal operators of rank 1, 3 and 10 in D = 80 as "not symmetric … differs by 0.06
    to 1.2" on products of norm 5 (a review's repro): the float32 Gram–Schmidt passes left
    directions of about 1e-7 of the product norm, rounding that the deflation kept, and the extra
    pass of :func:`_restore_orthogonality` left them 4e-8 of their norm, which its QR normalised
    into columns 0.98 inside the basis. The deflation now runs at 4 ulps of the basis's dtype, and
    a direction that keeps less than 1/√2 of its norm gets a second pass and is dropped below
    √eps: each defence alone (``"second pass alone"`` sets the deflation back to ``breakdown_tol``)
    gives the exact rule.

    Oracles: the invariant Krylov space ``span{Z} ⊕ range(A)`` has ``rank + b`` dimensions, and the
    run breaks down with exactly that many (no rounding direction kept); the moments
    ``Σ_k w_k θ_k^p`` equal ``zᵀA^p z/‖z‖²`` (dense float64 products) for p = 1…4 within
    ``2p·eps32·‖A‖^p`` and the weight sits within ``2·eps32·‖A‖`` of ``numpy.linalg.eigvalsh`` on
    average. The bound: every stored basis vector is rounded to float32 (``eps32/2`` relative per
    entry) and the passes run in float32, so ``QᵀAQ`` is the projection onto an exactly
    orthonormal basis up to ``‖ΔT‖ ≲ 2·eps32·‖A‖``; a node moves by at most ``‖ΔT‖`` (Weyl) and
    ``e₁ᵀT^p e₁`` by at most ``p·‖A‖^(p−1)·‖ΔT‖``. (Measured: up to 0.94·eps32·‖A‖^p and 0.11·eps32·‖A‖.)
    The symmetric operator stays far inside the symmetry check's tolerance (below 1e-3 of it)."""
    import pruning_limits.lanczos as lanczos_module

    if defence == "second pass alone":
        monkeypatch.setattr(lanczos_module, "BASIS_DEFLATION_ULPS", 0)
    worst = symmetry_margin
    D = 80
    for rotation in range(3):
        rng = np.random.default_rng(100 + rotation)
        eigs = np.concatenate([rng.uniform(-5.0, 5.0, rank), np.zeros(D - rank)])
        A = matrix_with_eigenvalues(eigs, seed=rotation)
        A = 0.5 * (A + A.T)
        exact_nodes = np.linalg.eigvalsh(A)
        top = float(np.abs(exact_nodes).max())
        for probes in (2, 4, 8):
            for seed in range(3):
                starts = rademacher_probes(D, probes, seed=seed)
                result = block_lanczos(
                    lambda V: A @ V, D, 40, starts, basis_dtype=np.float32, product_dtype=np.float64
                )
                assert result.breakdown and result.projection.shape[0] == rank + probes, (rotation, probes, seed)
                nodes, weights = block_gauss_quadrature(result)
                distance = np.abs(nodes[:, None] - exact_nodes[None, :]).min(axis=1)
                assert np.all(weights @ distance <= 2 * FLOAT32_EPS * top), (rotation, probes, seed)
                moment = starts.T / np.linalg.norm(starts, axis=1)
                z = moment.copy()
                for p in range(1, 5):
                    moment = A @ moment
                    exact = np.einsum("dj,dj->j", z, moment)
                    error = np.abs(weights @ nodes**p - exact).max()
                    assert error <= 2 * p * FLOAT32_EPS * top**p, (rotation, probes, seed, p, error / (FLOAT32_EPS * top**p))
    assert worst[0] < 1e-3, worst[0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_extra_pass_drops_a_direction_that_lies_in_the_basis_instead_of_normalising_it(dtype) -> None:
    """:func:`_restore_orthogonality` on a block ``Q = [b, x₁, x₂]·H`` (``b`` a stored basis vector,
    ``x₁, x₂`` orthogonal to the basis, ``H`` orthogonal with first row ``(1, 1, 1)/√3``): every
    column keeps √(2/3) of its norm after a Gram–Schmidt pass, above the DGKS 1/√2, yet the
    combination ``b`` lies in the basis, so what one pass leaves of it is rounding. The
    criterion on the singular values of the pass's result catches it: the block comes back with
    the two directions of ``span{x₁, x₂}`` (dense oracle: its projector), orthogonal to the basis
    to a few eps of the basis's dtype, and the coupling is ``Q'ᵀ·Q·link``, so that ``Q'·link'`` is
    ``Q·link`` without its component in the basis. Before, the QR normalised the rounding into a
    column inside the basis (as the float32 basis did in the test above)."""
    from pruning_limits.lanczos import _restore_orthogonality

    rng = np.random.default_rng(0)
    D = 50
    frame, _ = np.linalg.qr(rng.standard_normal((D, 13)))
    basis = frame[:, :10].T.astype(dtype)  # the stored basis, rows (float32: rounded)
    b = basis[3].astype(np.float64)
    x = frame[:, 10:12] - basis.T.astype(np.float64) @ (basis.astype(np.float64) @ frame[:, 10:12])
    x, _ = np.linalg.qr(x)  # orthogonal to the stored basis in float64
    H, _ = np.linalg.qr(np.column_stack([np.ones(3), rng.standard_normal((3, 2))]))
    H = H.T * np.sign(H[0, 0])  # first row (1, 1, 1)/√3
    block, _ = np.linalg.qr(np.column_stack([b, x]) @ H)
    link = np.diag([1.0, 1e-2, 1e-6]) @ rng.standard_normal((3, 4))  # a spread above MIXING_SPREAD
    original = block.copy()
    eps = float(np.finfo(dtype).eps)
    q, coupling = _restore_orthogonality(block, link.copy(), basis, eps)
    assert q.shape == (D, 2) and coupling.shape == (2, 4)
    np.testing.assert_allclose(q.T @ q, np.eye(2), rtol=0, atol=4 * FLOAT64_EPS)
    assert np.abs(basis.astype(np.float64) @ q).max() <= 4 * eps
    np.testing.assert_allclose(q @ q.T, x @ x.T, rtol=0, atol=4 * eps)
    outside = original @ link - basis.T.astype(np.float64) @ (basis.astype(np.float64) @ (original @ link))
    np.testing.assert_allclose(q @ coupling, outside, rtol=0, atol=8 * eps)


@pytest.mark.parametrize("mode", ["full", "none"])
def test_a_graded_spectrum_reaches_the_mixing_spread_and_its_rule_stays_exact(mode: str, monkeypatch) -> None:
    """The extra pass is not only for Krylov spaces that run out: a rotated ``logspace(-14, 0, 30)``
    beside 90 zeros (D = 120) gives new blocks whose singular values spread beyond
    :data:`MIXING_SPREAD` (a review's repro: 11 of 82 re-orthogonalised block steps, 266 of 456
    without, over 3, 8 and 16 probes and 5 seeds). It is counted here through the passes it
    makes: it happens, in float64 one pass is always enough (no direction keeps less than 1/√2,
    nothing is dropped), and the rule is the probes' exact measure: its moments ``zᵀA^p z``
    (p ≤ 8, dense float64 products) within 1e-13, float64 rounding (measured 4e-16), as the 60
    steps exhaust the Krylov space (‖A‖ = 1), and its weight within 1e-10 of
    ``numpy.linalg.eigvalsh`` on average, the deflation tolerance: eigenvalues 1e-14 to 1e-10 lie
    in directions it may drop, so the nodes there need not be eigenvalues (measured 2.7e-12)."""
    import pruning_limits.lanczos as lanczos_module

    passes = []
    project_out = lanczos_module._project_out

    def counted(block, against):
        passes.append(block.shape[1])
        return project_out(block, against)

    monkeypatch.setattr(lanczos_module, "_project_out", counted)
    restore = lanczos_module._restore_orthogonality
    calls = []

    def traced(block, link, against, eps):
        before = len(passes)
        out = restore(block, link, against, eps)
        calls.append(len(passes) - before)
        assert out[0].shape[1] == block.shape[1]  # nothing dropped in float64
        return out

    monkeypatch.setattr(lanczos_module, "_restore_orthogonality", traced)
    D = 120
    A = matrix_with_eigenvalues(np.concatenate([np.logspace(-14, 0, 30), np.zeros(D - 30)]), seed=1)
    A = 0.5 * (A + A.T)
    exact_nodes = np.linalg.eigvalsh(A)
    for probes in (3, 8):
        for seed in range(3):
            starts = rademacher_probes(D, probes, seed=seed)
            result = block_lanczos(lambda V: A @ V, D, 60, starts, reorthogonalization=mode, product_dtype=np.float64)
            nodes, weights = block_gauss_quadrature(result)
            distance = np.abs(nodes[:, None] - exact_nodes[None, :]).min(axis=1)
            assert np.all(weights @ distance <= 1e-10)
            z = starts.T / np.linalg.norm(starts, axis=1)
            moment = z.copy()
            for p in range(1, 9):  # moments of the measure: dense float64 products
                moment = A @ moment
                assert np.abs(weights @ nodes**p - np.einsum("dj,dj->j", z, moment)).max() <= 1e-13, p
    assert sum(count > 0 for count in calls) > 0  # the spread was reached
    assert max(calls) == 1  # and one pass was enough each time
