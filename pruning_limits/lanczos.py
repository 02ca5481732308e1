"""The Lanczos iteration and its Gauss quadrature rule.

``m`` steps of Lanczos on a symmetric operator ``A`` from a unit start vector ``z`` give a
tridiagonal ``T_m`` (diagonal ``α``, off-diagonal ``β``). Its eigenvalues ``θ_k`` (Ritz values)
and the squared first components ``τ_k`` of its eigenvectors are the nodes and weights of the
``m``-point Gauss quadrature rule for the measure ``Σ_i (u_iᵀz)² δ_{λ_i}``, so that
``zᵀf(A)z ≈ Σ_k τ_k f(θ_k)`` (Golub & Meurant, "Matrices, Moments and Quadrature", 2010;
Ubaru, Chen & Saad, SIAM J. Matrix Anal. Appl. 2017).

With several start vectors ``Z = [z_1 … z_b]``, block Lanczos builds an orthonormal basis of
the block Krylov space ``span{Z, AZ, …, A^{m-1}Z}``, the sum of the ``b`` single Krylov spaces,
and the projection ``T = QᵀAQ`` of dimension up to ``b·m``. Its eigen-decomposition is the block
Gauss rule: ``z_jᵀf(A)z_j ≈ Σ_k (u_kᵀQᵀz_j)² f(θ_k)``, exact for polynomials of degree up to
``2m − 1`` like the single rule, but with up to ``b·m`` nodes shared by all probes (Golub &
Meurant 2010). For the same ``b·m`` products it resolves the spectrum ``b`` times more
finely, which matters where the integrand has features far below the spectral span.

Finite precision destroys the orthogonality of the Lanczos basis and produces spurious copies
of converged Ritz values (Paige 1976). The basis is kept in float64 (float32 on request, for
float32 products: :func:`block_lanczos`) and fully re-orthogonalised (classical Gram-Schmidt
applied twice, "twice is enough", Giraud et al. 2005) when the whole basis (for the block rule
with its projected matrix and working blocks, :func:`full_block_lanczos_bytes`) fits in the
memory budget; otherwise
:func:`lanczos_probes` runs the plain recurrence, O(D) memory, whose Gauss rule stays an accurate quadrature rule (Greenbaum 1989; Knizhnerman 1996; Chen & Trogdon 2023),
with the mode recorded in its result.
:func:`block_lanczos` does the same with ``reorthogonalization="auto"`` (the plain block
recurrence, :func:`plain_block_lanczos_bytes`) or ``"none"``; with its default ``"full"`` it
refuses a basis over the budget.

Both runners accept a ``monitor`` called after every step: a stopping criterion supplied by the
caller (e.g. "the predicted sparsity has settled"), so that this module needs to know nothing
about what is being estimated.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import scipy.linalg
import torch
from tqdm import tqdm

from ._checks import PruningLimitsError, check_choice, check_int, check_positive, describe, real_array, seeded_generator

#: Default memory budget (bytes) for the Lanczos arrays: 1 GiB, the Hessian engine's default
#: too (:data:`pruning_limits.hessian.DEFAULT_MEMORY_BUDGET`; each is held to it on its own).
#: It dates from the first Lanczos code: chosen, not measured. What it admits is computed from
#: the byte counts below: at the defaults (8 probes × 300 steps) the block rule's float64 basis
#: with its projected matrix and working blocks fits up to D = 45 564
#: (:func:`full_block_lanczos_bytes`; 46 324 while the blocks were not counted and 55 924 while
#: the basis alone was, both until 2026-12-06; docs/theory.md §7, "SLQ settings"), and
#: :func:`pruning_limits.spectrum.slq` raises it to what the rule without re-orthogonalisation
#: needs, from D = 13 277 773 (13.3 million weights) with two probes and 300 steps
#: (:func:`plain_block_lanczos_bytes` plus :func:`projection_bytes`; docs/benchmarks.md, "Memory
#: against D").
DEFAULT_MEMORY_BUDGET = 1 << 30

#: Block Lanczos repeats a Gram–Schmidt pass when a column keeps less than this fraction of its
#: norm (the DGKS criterion with the usual 1/√2).
REORTH_NORM_RATIO = 1 / np.sqrt(2)

#: Relative size of β (against the largest |α|+|β| seen) that counts as a breakdown in float64.
DEFAULT_BREAKDOWN_TOL = 1e-10

#: :func:`block_lanczos` deflates a direction of the residual whose singular value is at most this
#: many ulps of the stored basis's dtype times the largest product norm, whatever ``breakdown_tol``
#: asks: the Gram–Schmidt passes run in that dtype, so below it a direction is their rounding, not
#: the operator's (the same 4 ulps as :data:`pruning_limits.spectrum.BREAKDOWN_ULPS` for float32
#: products). 4.8e-7 for a float32 basis; 8.9e-16 for float64, below the default tolerance.
BASIS_DEFLATION_ULPS = 4


class LanczosResult(NamedTuple):
    """Output of :func:`lanczos`.

    Attributes:
        alpha: diagonal of ``T`` (length ``m``, the number of steps actually done).
        beta: off-diagonal of ``T`` (length ``m - 1``).
        breakdown: True when an invariant subspace was found before the requested steps.
        reorthogonalization: the mode that ran, ``"full"`` or ``"none"`` (``"auto"`` resolved).
        num_matvecs: products with the operator.
    """

    alpha: np.ndarray
    beta: np.ndarray
    breakdown: bool
    reorthogonalization: str
    num_matvecs: int


def rademacher_probes(
    dim: int, count: int, *, seed: int = 0, generator: torch.Generator | None = None
) -> np.ndarray:
    """``count`` Rademacher vectors of length ``dim`` scaled to unit norm, as rows (float64).

    Hutchinson (1990) probes; their estimator of ``tr f(A)/D`` has the smallest variance among
    i.i.d.-entry probes (Avron & Toledo, J. ACM 2011). ``generator`` overrides ``seed``.
    """
    dim = check_int("dim", dim, 1)
    count = check_int("probes", count, 1)
    generator = seeded_generator(seed, generator)
    signs = torch.randint(0, 2, (count, dim), generator=generator, dtype=torch.int8).numpy()
    return (2.0 * signs.astype(np.float64) - 1.0) / np.sqrt(dim)


def lanczos(
    matvec: Callable[[np.ndarray], Any],
    dim: int,
    iterations: int,
    *,
    start: np.ndarray | None = None,
    seed: int = 0,
    generator: torch.Generator | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    breakdown_tol: float = DEFAULT_BREAKDOWN_TOL,
    reorthogonalization: str = "auto",
    progress: bool = False,
    progress_bar: Any = None,
) -> LanczosResult:
    """Run up to ``iterations`` Lanczos steps on the symmetric operator ``matvec``.

    One probe of :func:`lanczos_probes` (see there for the re-orthogonalisation modes).

    Args:
        matvec: ``v -> A v`` for a float64 numpy vector of length ``dim`` (numpy or torch back).
        dim: dimension of the operator.
        iterations: requested steps ``m`` (capped at ``dim``).
        start: start vector (normalised here); default a normalised Rademacher vector drawn
            from ``generator`` or ``seed``.
        seed: seed of the default start vector.
        generator: torch generator of the default start vector (overrides ``seed``).
        memory_budget: bytes allowed for the stored vectors; full re-orthogonalisation needs
            ``(m + 1 + 6)·dim·8`` bytes, its basis and :data:`PLAIN_PROBE_VECTORS` working
            vectors (default 1 GiB).
        breakdown_tol: stop when ``β_j ≤ breakdown_tol · max_i(|α_i| + β_i)`` (an invariant
            subspace: the remaining spectrum is invisible from ``start``). Default ``1e-10``,
            far above float64 rounding of a re-orthogonalised step.
        reorthogonalization: ``"auto"`` (default: ``"full"`` when the basis fits the budget,
            else ``"none"``), ``"full"`` or ``"none"``.
        progress: show a tqdm bar on stderr.
        progress_bar: an existing tqdm bar to advance instead (used by :func:`slq`).

    Returns:
        The tridiagonal matrix as :class:`LanczosResult`; after a breakdown it has fewer than
        ``iterations`` steps and never contains NaN.
    """
    if not callable(matvec):
        raise PruningLimitsError(f"matvec must be callable, got {describe(matvec)}")
    dim = check_int("dim", dim, 1)
    if start is None:
        q = rademacher_probes(dim, 1, seed=seed, generator=generator)
    else:
        q = np.asarray(start, dtype=np.float64).reshape(-1)
        if q.size != dim or not np.isfinite(q).all() or not np.linalg.norm(q) > 0:
            raise PruningLimitsError(f"start must be a finite non-zero vector of length {dim}, got shape {q.shape}")
        q = q.reshape(1, -1)
    bar = progress_bar if progress_bar is not None else tqdm(
        total=min(int(iterations), dim) if isinstance(iterations, int) else None,
        disable=not progress, file=sys.stderr, desc="Lanczos", leave=False,
    )
    try:
        result = lanczos_probes(
            lambda V: _as_float64(matvec(np.ascontiguousarray(V[:, 0])), dim).reshape(dim, 1),
            dim,
            iterations,
            q,
            memory_budget=memory_budget,
            breakdown_tol=breakdown_tol,
            reorthogonalization=reorthogonalization,
            progress_bar=bar,
        )
    finally:
        if progress_bar is None:
            bar.close()
    steps = int(result.steps[0])
    return LanczosResult(
        result.alpha[0, :steps].copy(),
        result.beta[0, : steps - 1].copy(),
        bool(result.breakdown[0]),
        result.reorthogonalization,
        result.num_matvecs,
    )


#: Re-orthogonalisation modes of :func:`lanczos_probes`.
REORTHOGONALIZATIONS = ("auto", "full", "none")


class ProbesLanczosResult(NamedTuple):
    """Output of :func:`lanczos_probes`: one tridiagonal matrix per probe.

    Attributes:
        alpha: ``(b, m)`` diagonals; row ``j`` is valid up to ``steps[j]``.
        beta: ``(b, m - 1)`` off-diagonals; row ``j`` is valid up to ``steps[j] - 1``.
        steps: ``(b,)`` steps done per probe (fewer after a breakdown).
        breakdown: ``(b,)`` True where an invariant subspace ended the probe early.
        reorthogonalization: ``"full"`` or ``"none"``.
        num_matvecs: products with the operator.
    """

    alpha: np.ndarray
    beta: np.ndarray
    steps: np.ndarray
    breakdown: np.ndarray
    reorthogonalization: str
    num_matvecs: int

    def rules(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The Gauss rule ``(nodes, weights)`` of every probe (:func:`gauss_quadrature`)."""
        return [
            gauss_quadrature(self.alpha[j, :m], self.beta[j, : m - 1]) for j, m in enumerate(self.steps.tolist())
        ]


#: Vectors of length ``D`` per probe that :func:`lanczos_probes` without re-orthogonalisation
#: holds at its peak: the probe, the current and previous vectors, and the product with the
#: operator's result and the copies made to hand it over (``benchmarks/bench_memory.py --probes 1``:
#: 49 bytes per weight at D = 10⁷, docs/benchmarks.md, "Memory against D").
PLAIN_PROBE_VECTORS = 6


def lanczos_probes_bytes(dim: int, iterations: int, probes: int, reorthogonalization: str) -> int:
    """Bytes of the vectors :func:`lanczos_probes` keeps.

    ``"full"`` stores every basis vector of every probe beside the working vectors of the plain
    recurrence, ``probes·(m + 1 + 6)·dim·8`` (until 2026-12-06 the working vectors were not
    counted: a budget of ``probes·(m + 1)·dim·8`` exactly peaked at 1.2 to 2.0 times it, one
    probe, D = 5·10⁴ to 2·10⁵, tracemalloc; a review); ``"none"`` holds
    :data:`PLAIN_PROBE_VECTORS` vectors per probe, ``6·probes·dim·8``: O(D) at any step count.
    """
    vectors = (int(iterations) + 1 + PLAIN_PROBE_VECTORS) if reorthogonalization == "full" else PLAIN_PROBE_VECTORS
    return int(probes) * vectors * int(dim) * 8


def lanczos_probes(
    matmat: Callable[[np.ndarray], Any],
    dim: int,
    iterations: int,
    starts: np.ndarray,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    breakdown_tol: float = DEFAULT_BREAKDOWN_TOL,
    reorthogonalization: str = "auto",
    monitor: Callable[[int, Callable[[], ProbesLanczosResult]], bool] | None = None,
    progress_bar: Any = None,
    product_dtype: Any = None,
) -> ProbesLanczosResult:
    """Independent Lanczos runs from the rows of ``starts``, in lockstep (one ``matmat`` per step).

    Each probe ``z_j`` gets its own three-term recurrence and so its own Gauss rule; running
    them side by side lets the operator multiply all current vectors at once and lets a
    ``monitor`` look at every probe's rule after the same number of steps.

    Re-orthogonalisation:

    - ``"full"``: every new vector is orthogonalised against the probe's whole stored basis
      (classical Gram–Schmidt twice, Giraud et al. 2005): ``probes·(m + 1 + 6)·D·8`` bytes with
      the working vectors (:func:`lanczos_probes_bytes`). The first
      pass's coefficients ``qᵢᵀAqⱼ`` (``i < j``) are ``β_{j−1}`` for ``i = j − 1`` and 0 below for a
      symmetric operator; they are checked against those values (see Raises), which costs no
      product and changes no result.
    - ``"none"``: the plain recurrence, holding 6 vectors per probe at its peak (the probe, the
      current and previous vectors, the product and its copies). Orthogonality is lost as
      Ritz values converge and converged ones reappear as copies ("ghosts", Paige 1976), but
      the Gauss rule stays a good quadrature rule for the probe's measure: the computed
      ``T_m`` is the exact Lanczos matrix of a measure close to it (Greenbaum 1989;
      Knizhnerman 1996), and ghosts share the weight of the eigenvalue they copy, so integrals
      are not spoiled (Chen & Trogdon, "Stability of the Lanczos algorithm on matrix function
      products", 2023). Memory ``6·probes·D·8`` bytes at any step count
      (:data:`PLAIN_PROBE_VECTORS`); tests/test_lanczos.py and docs/benchmarks.md measure it
      against the re-orthogonalised rules.
    - ``"auto"`` (default): ``"full"`` when it fits ``memory_budget``, else ``"none"``.

    Args:
        matmat: ``V -> A V`` for a float64 ``(dim, k)`` array whose columns are vectors.
        dim: dimension of the operator.
        iterations: requested steps per probe (capped at ``dim``).
        starts: ``(b, dim)`` start vectors as rows (normalised here).
        memory_budget: bytes allowed for the stored vectors (:func:`lanczos_probes_bytes`).
        breakdown_tol: relative ``β`` that ends a probe (see :func:`lanczos`).
        reorthogonalization: ``"auto"``, ``"full"`` or ``"none"``.
        monitor: called after every step as ``monitor(steps_done, partial)``, where
            ``partial()`` builds the :class:`ProbesLanczosResult` so far; a true return stops
            the run. Stopping criteria live with the caller (e.g. the pipeline's sparsity
            monitor); this function knows nothing about what is being estimated.
        progress_bar: a tqdm bar advanced by one per product.
        product_dtype: the dtype (numpy or torch) in which ``matmat`` computes its products, the
            symmetry check's rounding, as for :func:`block_lanczos` (default: that of the arrays it
            returns, at least float32; :func:`pruning_limits.spectrum.slq` passes the operator's).

    Returns:
        :class:`ProbesLanczosResult`; never contains NaN.

    Raises:
        PruningLimitsError: bad arguments, a budget too small even for ``"none"``, or, with
            ``"full"``, an operator found non-symmetric: some ``qᵢᵀAqⱼ`` off its symmetric value
            by more than ``√eps`` of ``product_dtype`` (TF32's for anything narrower than
            float64, as :func:`block_lanczos`) times the largest product norm seen (symmetric
            operators stayed at 1.5e-8 of that tolerance, a float64 matrix, and 5.4e-6, a
            float32 CNN Hessian: tests/test_slq.py). Without
            re-orthogonalisation the Gauss rule is not checked: symmetry is the caller's to ensure.
    """
    if not callable(matmat):
        raise PruningLimitsError(f"matmat must be callable, got {describe(matmat)}")
    dim = check_int("dim", dim, 1)
    steps = min(check_int("iterations", iterations, 1), dim)
    memory_budget = check_positive("memory_budget", memory_budget)
    breakdown_tol = check_positive("breakdown_tol", breakdown_tol)
    mode = check_choice("reorthogonalization", reorthogonalization, REORTHOGONALIZATIONS)
    starts = np.asarray(starts, dtype=np.float64)
    if starts.ndim != 2 or starts.shape[1] != dim or starts.shape[0] == 0 or not np.isfinite(starts).all():
        raise PruningLimitsError(f"start vectors must form a finite (probes, {dim}) array, got shape {starts.shape}")
    norms = np.linalg.norm(starts, axis=1)
    if not (norms > 0).all():
        raise PruningLimitsError("every start vector must be non-zero")
    probes = starts.shape[0]
    if mode == "auto":
        mode = "full" if lanczos_probes_bytes(dim, steps, probes, "full") <= memory_budget else "none"
    needed = lanczos_probes_bytes(dim, steps, probes, mode)
    if needed > memory_budget:
        what = "the Lanczos basis" if mode == "full" else f"Lanczos without re-orthogonalisation ({PLAIN_PROBE_VECTORS} vectors per probe)"
        raise PruningLimitsError(
            f"{what} needs {_size(needed)} for {probes} probe(s) of D = {dim}, above the memory budget of "
            f"{_size(memory_budget)}: raise the budget (--memory-budget GiB) or use fewer probes"
        )
    full = mode == "full"
    # re-orthogonalised, each step checks symmetry (see Raises): None, the first product's dtype, at least float32
    symmetry = _Symmetry(None if product_dtype is None else _dtype_eps(product_dtype, "product_dtype"), _FLOAT64_EPS)
    largest = 0.0  # the largest product norm seen, the check's scale (as block_lanczos's)
    q = starts / norms[:, None]
    basis = np.empty((probes, steps, dim)) if full else None
    previous = np.zeros_like(q)
    alpha = np.zeros((probes, steps))
    beta = np.zeros((probes, max(steps - 1, 0)))
    done = np.zeros(probes, dtype=np.int64)
    broke = np.zeros(probes, dtype=bool)
    active = np.ones(probes, dtype=bool)
    scale = np.zeros(probes)
    spent = 0

    def partial() -> ProbesLanczosResult:
        return ProbesLanczosResult(alpha.copy(), beta.copy(), done.copy(), broke.copy(), mode, spent)

    for j in range(steps):
        rows = np.flatnonzero(active)
        product = symmetry.product(matmat, np.ascontiguousarray(q[rows].T), dim, rows.size).T.copy()
        spent += rows.size
        if progress_bar is not None:
            progress_bar.update(rows.size)
        a = np.einsum("ij,ij->i", q[rows], product)
        alpha[rows, j] = a
        done[rows] = j + 1
        if full:
            basis[rows, j] = q[rows]
            # (r, j+1, D): a view while every probe runs; indexing by rows copied the basis every step
            # (3 times its size at the peak of a 400 000 × 100-step run, 937 MiB for a 308 MiB basis)
            stored = basis[:, : j + 1] if rows.size == probes else basis[rows, : j + 1]
            largest = max(largest, float(_column_norms(product.T).max()))  # its rows, the probes' products
            for sweep in range(2):
                coefficients = np.einsum("rkd,rd->rk", stored, product)
                if sweep == 0 and j > 0:  # qᵢᵀAqⱼ (i < j): β_{j-1} = q_jᵀAq_{j-1} for i = j - 1, 0 below
                    expected = np.zeros((rows.size, j))
                    expected[:, j - 1] = beta[rows, j - 1]
                    symmetry.check(_NO_BLOCK, largest, coefficients[:, :j], expected.T, what="a probe's QᵀAQ")
                product -= np.einsum("rkd,rk->rd", stored, coefficients)
        else:
            product -= a[:, None] * q[rows]
            if j > 0:
                product -= beta[rows, j - 1][:, None] * previous[rows]
        b = np.linalg.norm(product, axis=1)
        last = beta[rows, j - 1] if j > 0 else np.zeros(rows.size)
        scale[rows] = np.maximum.reduce([scale[rows], np.abs(a) + b, np.abs(a) + last])
        if j == steps - 1:
            break
        ended = (b <= breakdown_tol * scale[rows]) | (b == 0.0)
        broke[rows[ended]] = True
        active[rows[ended]] = False
        keep = rows[~ended]
        beta[keep, j] = b[~ended]
        previous[keep] = q[keep]
        q[keep] = product[~ended] / b[~ended, None]
        if not active.any():
            break
        if monitor is not None and monitor(j + 1, partial):
            break
    return partial()


class BlockLanczosResult(NamedTuple):
    """Output of :func:`block_lanczos`.

    Attributes:
        projection: the symmetric ``(n, n)`` matrix ``QᵀAQ`` on the orthonormal basis built
            (``n ≤ b·m``; block tridiagonal up to rounding).
        start_coordinates: ``(b, n)`` coordinates ``Qᵀz_j`` of the start vectors.
        steps: block steps done.
        breakdown: True when the block Krylov space became invariant before the requested steps.
        num_matvecs: products with the operator.
    """

    projection: np.ndarray
    start_coordinates: np.ndarray
    steps: int
    breakdown: bool
    num_matvecs: int


#: Blocks of ``probes`` float64 vectors of length ``D`` that block Lanczos without
#: re-orthogonalisation holds at once, at its peaks: the probes (kept by the caller) and the
#: current block, with the previous block, the operator's result and its float64 copy while a
#: product is computed, or with the product and the two blocks of its QR factorisation after it.
#: Counted from :func:`_plain_block_lanczos`; measured by ``benchmarks/bench_memory.py``
#: (docs/benchmarks.md, "Memory against D").
PLAIN_BLOCKS = 5


def plain_block_lanczos_bytes(dim: int, probes: int) -> int:
    """Bytes block Lanczos without re-orthogonalisation holds: ``PLAIN_BLOCKS·probes·dim·8``, at any step count."""
    return PLAIN_BLOCKS * int(probes) * int(dim) * 8


def projection_bytes(dim: int, iterations: int, block: int) -> int:
    """Bytes of the projected matrix ``QᵀAQ`` of :func:`block_lanczos` and of its quadrature (a
    symmetric copy, the eigenvectors): four float64 squares of ``min(block·iterations, dim)``
    (the peak measured 3.1 with ``tracemalloc`` at a side of 2 000). Both rules' budgets count
    them: many steps at a small D made them the largest arrays of the bounded recurrence (107 GiB
    at 6 × 20 000 steps), and once the re-orthogonalised rule's basis fills the space (``D``
    float64 vectors: one square of side ``D``) they take four times its bytes (until 2026-12-06
    that rule counted its basis alone and peaked at 3.7 times a budget, a review's repro)."""
    side = min(int(block) * int(iterations), int(dim))
    return 4 * side * side * 8


def block_lanczos_bytes(dim: int, iterations: int, block: int, itemsize: int = 8) -> int:
    """Bytes of the basis :func:`block_lanczos` stores: ``min(block·iterations, dim)`` vectors of ``dim``
    numbers of ``itemsize`` bytes (8: float64, the default; 4: a float32 basis)."""
    return min(int(block) * int(iterations), int(dim)) * int(dim) * int(itemsize)


def full_block_lanczos_bytes(dim: int, iterations: int, block: int, itemsize: int = 8) -> int:
    """Bytes the re-orthogonalised :func:`block_lanczos` holds at its peak, all counted against its
    budget: the basis (:func:`block_lanczos_bytes`), the projected matrix with its quadrature
    (:func:`projection_bytes`) and the working blocks it shares with the plain recurrence (the
    probes, the current and previous blocks, the product and its copy or QR factors:
    :func:`plain_block_lanczos_bytes`, float64 whatever the basis's dtype). Until 2026-12-06
    the blocks were not counted: a budget of the other two exactly peaked at 1.51 times it
    (D = 50 000, 8 probes × 10 steps, tracemalloc; a review's repro)."""
    return (
        block_lanczos_bytes(dim, iterations, block, itemsize)
        + projection_bytes(dim, iterations, block)
        + plain_block_lanczos_bytes(dim, block)
    )


def block_lanczos(
    matmat: Callable[[np.ndarray], Any],
    dim: int,
    iterations: int,
    starts: np.ndarray,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    breakdown_tol: float = DEFAULT_BREAKDOWN_TOL,
    reorthogonalization: str = "full",
    monitor: Callable[[int, Callable[[], BlockLanczosResult]], bool] | None = None,
    progress_bar: Any = None,
    basis_dtype: Any = np.float64,
    product_dtype: Any = None,
) -> BlockLanczosResult:
    """Run up to ``iterations`` block Lanczos steps from the rows of ``starts``, fully re-orthogonalised by default.

    Each step multiplies the current block by the operator at once (``matmat``), removes its
    components on the current and previous blocks (the three-term recurrence) and then on the
    whole stored basis (classical Gram–Schmidt, repeated when a column keeps less than 1/√2 of
    its norm), records them as a column block of ``QᵀAQ``, and orthonormalises the remainder
    (thin QR and an SVD of its triangle). Directions whose singular value falls below ``breakdown_tol`` times
    the largest product norm seen (at least :data:`BASIS_DEFLATION_ULPS` ulps of ``basis_dtype``:
    the passes round in it) are dropped (deflation): they already lie in the basis. The
    block shrinks instead of dividing by zero, and an empty block is a breakdown. A new block
    whose kept singular values span more than :data:`MIXING_SPREAD` (8 192) is orthogonalised
    once more against the basis (without re-orthogonalisation, the current block): the QR leaves
    the column of a singular value ``σ_k`` about ``eps·σ_1/σ_k`` off it (:func:`_restore_orthogonality`).
    That happens where the block Krylov space runs out, as for the Hessian of a fully pruned
    network (every weight zero): beside directions of 0.1, a residual kept some of 6e-11 to 2e-9
    (up to 9e-9 of the largest product norm; dropped at √eps of it, the next residual held one of
    3e-8: rounding that the recurrence amplified, too close to real directions for a deflation
    threshold to tell apart), whose columns came out up to 8e-8 off the basis, and the symmetry
    check below refused the symmetric Hessian. Graded spectra reach the spread too (see
    :data:`MIXING_SPREAD`), harmlessly. The extra pass follows the DGKS criterion as the main
    loop does: a direction that keeps less than 1/√2 of its norm gets a second pass, and one that
    keeps at most ``√eps`` of ``basis_dtype`` after it is dropped, not normalised. A float32 basis
    with float64 products and the default tolerance had refused symmetric low-rank operators
    (rank 1-10 in D = 80, "differs … by 0.06-1.2" on products of norm 5, a review's repro): the
    float32 passes left directions of about 1e-7 of the product norm, rounding above ``1e-10``,
    which the QR normalised into columns 0.98 inside the basis. The deflation tolerance and the
    second pass now each remove them on their own (tests/test_lanczos.py).

    Args:
        matmat: ``V -> A V`` for a float64 ``(dim, k)`` numpy array whose columns are vectors.
        dim: dimension of the operator.
        iterations: requested block steps ``m`` (the basis holds at most ``dim`` vectors).
        starts: ``(b, dim)`` start vectors as rows (any non-zero lengths; normalised here).
        memory_budget: bytes allowed for the basis (:func:`block_lanczos_bytes`), the
            projected matrix with its quadrature (:func:`projection_bytes`) and the working
            blocks (:func:`plain_block_lanczos_bytes`), all three :func:`full_block_lanczos_bytes`;
            without re-orthogonalisation for the plain recurrence's blocks and the projected matrix.
        breakdown_tol: relative singular value that counts as zero (default ``1e-10``); re-orthogonalised,
            at least :data:`BASIS_DEFLATION_ULPS` ulps of ``basis_dtype`` (4.8e-7 for float32).
        reorthogonalization: ``"full"`` (default, described above) or ``"none"``: the plain
            block three-term recurrence (the coupling of consecutive blocks from their QR
            factors, Golub & Underwood 1977), holding :data:`PLAIN_BLOCKS` blocks of ``b``
            vectors, ``5·b·D·8`` bytes at any step count (:func:`plain_block_lanczos_bytes`),
            plus its projected matrix (:func:`projection_bytes`; both within the budget);
            ``"auto"``: ``"full"`` when :func:`full_block_lanczos_bytes` fit ``memory_budget``,
            else ``"none"``.
        monitor: called after every block step as ``monitor(steps_done, partial)``, where
            ``partial()`` builds the :class:`BlockLanczosResult` so far (as :func:`lanczos_probes`);
            a true return stops the run.
        progress_bar: a tqdm bar to advance by one per product.
        basis_dtype: ``numpy.float64`` (default) or ``numpy.float32``, the dtype in which the
            stored basis is kept and the re-orthogonalisation passes run. The current and
            previous blocks, the three-term recurrence and ``QᵀAQ`` stay float64. A float32
            basis halves the memory and keeps the vectors orthogonal to about 1e-7, the
            rounding of float32 products: for an operator computed in float32 it loses nothing
            the products had not already lost (docs/theory.md, "A float32 basis"). A torch
            dtype (``torch.float32``) is read as the numpy one.
        product_dtype: the dtype (numpy or torch) in which ``matmat`` computes its products; it
            sets the tolerance of the symmetry check. Default: that of the arrays it returns,
            and at least float32, since a float64 array may hold float32 products (a float32
            :class:`~pruning_limits.hessian.HessianOperator` returns float64 for float64 blocks).
            :func:`pruning_limits.spectrum.slq` passes the operator's ``dtype``.

    ``QᵀAQ`` is checked for symmetry: the rule keeps its upper half, so a non-symmetric
    operator gave nodes that are no eigenvalues of it (``[[1, 5], [0, 1]]``: −2.54 and 4.54).
    Every diagonal block ``QⱼᵀAQⱼ`` is compared with its transpose and, re-orthogonalised, every
    ``Qⱼ₋₁ᵀAQⱼ`` with the coupling ``QⱼᵀAQⱼ₋₁`` its QR gave. Without re-orthogonalisation only
    the diagonal blocks are checked, so blocks of one column (one probe, or probes deflated to
    one direction) are not: the coupling check would cost one more product of blocks per step,
    and once consecutive blocks lose orthogonality near a small ``β`` it would differ by more
    than rounding for a symmetric operator too. The check refuses an asymmetry above
    ``√eps`` of ``product_dtype`` (or of ``basis_dtype``, if coarser; TF32's for anything
    narrower than float64, as GPUs may compute float32 convolutions in it) times the largest
    product norm seen, far above rounding while the basis is orthonormal (on exhausted Krylov
    spaces in float64 a symmetric operator stays below 1e-3 of the tolerance, tests/test_lanczos.py).

    Returns:
        :class:`BlockLanczosResult`; never contains NaN.

    Raises:
        PruningLimitsError: the basis, projected matrix and working blocks (``"full"``) or the
            plain recurrence's blocks and projected matrix (``"none"``, or ``"auto"`` when the first
            do not fit) exceed
            ``memory_budget``, ``starts`` is
            not a finite non-zero ``(b, dim)`` array, or the operator is not symmetric.
    """
    if not callable(matmat):
        raise PruningLimitsError(f"matmat must be callable, got {describe(matmat)}")
    dim = check_int("dim", dim, 1)
    steps = check_int("iterations", iterations, 1)
    memory_budget = check_positive("memory_budget", memory_budget)
    breakdown_tol = check_positive("breakdown_tol", breakdown_tol)
    starts = np.asarray(starts, dtype=np.float64)
    if starts.ndim != 2 or starts.shape[1] != dim or starts.shape[0] == 0 or not np.isfinite(starts).all():
        raise PruningLimitsError(f"starts must be a finite (probes, {dim}) array, got shape {starts.shape}")
    norms = np.linalg.norm(starts, axis=1)
    if not (norms > 0).all():
        raise PruningLimitsError("every start vector must be non-zero")
    mode = check_choice("reorthogonalization", reorthogonalization, REORTHOGONALIZATIONS)
    basis_dtype = _basis_dtype(basis_dtype)
    # None: the dtype of the first product, at least float32 (see _Symmetry)
    rounding = None if product_dtype is None else _dtype_eps(product_dtype, "product_dtype")
    itemsize = basis_dtype.itemsize
    probes = starts.shape[0]
    # the re-orthogonalised rule holds its basis, the bounded rule's working blocks and, as the bounded one,
    # the projected matrix with its quadrature
    full_bytes = full_block_lanczos_bytes(dim, steps, probes, itemsize)
    if mode == "auto":
        mode = "full" if full_bytes <= memory_budget else "none"
    if mode == "none":
        needed = plain_block_lanczos_bytes(dim, probes)
        if needed > memory_budget:
            raise PruningLimitsError(
                f"block Lanczos without re-orthogonalisation ({PLAIN_BLOCKS} blocks of {probes} vectors of D = {dim}) "
                f"needs {_size(needed)}, above the memory budget of {_size(memory_budget)}: raise the budget "
                "(--memory-budget GiB) or use fewer probes"
            )
        projected = projection_bytes(dim, steps, probes)
        if needed + projected > memory_budget:
            raise PruningLimitsError(
                f"{steps} block steps of {probes} probes project onto a {min(probes * steps, dim)}-square matrix "
                f"({_size(projected)} with its quadrature) beside the recurrence's {_size(needed)}, above the memory "
                f"budget of {_size(memory_budget)}: lower iterations (--iterations) or raise memory_budget "
                "(--memory-budget GiB)"
            )
        symmetry = _Symmetry(rounding, _dtype_eps(basis_dtype))
        return _plain_block_lanczos(matmat, dim, steps, starts, norms, breakdown_tol, monitor, progress_bar, symmetry)
    if full_bytes > memory_budget:
        basis_bytes = block_lanczos_bytes(dim, steps, probes, itemsize)
        blocks = plain_block_lanczos_bytes(dim, probes)
        raise PruningLimitsError(
            f"the block Lanczos basis ({basis_bytes // (itemsize * dim)} vectors of {dim} {basis_dtype}, "
            f"{_size(basis_bytes)}) with its projected matrix and quadrature ({_size(full_bytes - basis_bytes - blocks)}) "
            f"and {PLAIN_BLOCKS} working blocks of {probes} float64 vectors ({_size(blocks)}) exceeds the memory budget "
            f"of {_size(memory_budget)}: raise memory_budget (--memory-budget GiB), lower iterations (--iterations) or "
            "use fewer probes"
        )
    capacity = min(probes * steps, dim)
    basis = np.empty((capacity, dim), dtype=basis_dtype)  # rows are the orthonormal basis vectors
    projection = np.zeros((capacity, capacity))
    block, coupling = _orthonormal_block((starts / norms[:, None]).T, breakdown_tol, capacity)
    start_coordinates = coupling.T  # Z = Q_1 · coupling, so Q_1ᵀz_j = coupling[:, j]
    size, previous, done, spent, breakdown = 0, 0, 0, 0, False
    scale = 0.0
    last = np.zeros((dim, 0))  # the previous block, float64
    symmetry = _Symmetry(rounding, _dtype_eps(basis_dtype))
    basis_eps = _dtype_eps(basis_dtype)
    # the passes run in the basis's dtype: below a few of its ulps a direction is their rounding
    deflation = max(breakdown_tol, BASIS_DEFLATION_ULPS * basis_eps)
    link = np.zeros((block.shape[1], 0))  # QⱼᵀAQⱼ₋₁ from the QR of the previous residual
    while True:
        width = block.shape[1]
        basis[size : size + width] = block.T
        product = symmetry.product(matmat, block, dim, width)
        spent += width
        if progress_bar is not None:
            progress_bar.update(width)
        scale = max(scale, float(_column_norms(product).max()))
        # The three-term recurrence removes the previous and current blocks (float64); one
        # Gram–Schmidt pass over the whole basis then removes what finite precision left, and a
        # second pass runs only if a column lost most of its norm in the first (Daniel, Gragg,
        # Kaufman & Stewart 1976). Each pass reads the whole basis twice: the dominant cost at large D.
        # Every D-long update is in place: beside the basis, the probes, the previous and current
        # blocks, the product and its QR are all the D-long arrays there are (PLAIN_BLOCKS).
        coefficients = np.zeros((size + width, width))
        coefficients[previous:size] = _matmul(last.T, product)  # classical Gram–Schmidt on both blocks
        coefficients[size:] = _matmul(block.T, product)
        _subtract_product(product, last, coefficients[previous:size])
        _subtract_product(product, block, coefficients[size:])
        last = block  # the previous block is not needed again
        stored = basis[: size + width]
        for _ in range(2):
            before = _column_norms(product)
            narrow = product.astype(basis_dtype, copy=False)
            correction = _matmul(stored, narrow)
            if basis_dtype == np.float64:
                _subtract_product(product, stored.T, correction)
            else:  # a float32 basis: the update is float32 (half a block), subtracted in float64
                product -= _matmul(stored.T, correction)
            del narrow
            coefficients += correction
            if (_column_norms(product) >= REORTH_NORM_RATIO * before).all():
                break
        symmetry.check(coefficients[size:], scale, coefficients[previous:size], link)
        projection[: size + width, size : size + width] = coefficients
        previous = size
        size += width
        done += 1
        if done == steps or size == capacity:
            break
        block, link = _orthonormal_block(product, deflation * scale, capacity - size, overwrite=True)
        del product  # (its memory may now hold the next block) not alive while the operator computes
        if block.shape[1]:
            block, link = _restore_orthogonality(block, link, basis[:size], basis_eps)
        if block.shape[1] == 0:
            breakdown = True
            break
        if monitor is not None and monitor(done, lambda: _block_result(projection, start_coordinates, size, done, False, spent)):
            break
    return _block_result(projection, start_coordinates, size, done, breakdown, spent)


def _plain_block_lanczos(
    matmat: Callable[[np.ndarray], Any],
    dim: int,
    steps: int,
    starts: np.ndarray,
    norms: np.ndarray,
    breakdown_tol: float,
    monitor: Callable[[int, Callable[[], BlockLanczosResult]], bool] | None,
    progress_bar: Any,
    symmetry: _Symmetry,
) -> BlockLanczosResult:
    """Block Lanczos without re-orthogonalisation (see :func:`block_lanczos`, ``reorthogonalization="none"``).

    Holds the current and previous blocks and the product, and releases the product before the
    next one is computed, so that at most :data:`PLAIN_BLOCKS` blocks of ``D`` float64 numbers
    (the caller's probes included) are alive at once (``benchmarks/bench_memory.py``). No
    normalised copy of the probes, and no block beyond these, outlives its step.
    """
    capacity = min(starts.shape[0] * steps, dim)  # as the re-orthogonalised rule: at most D directions
    projection = np.zeros((capacity, capacity))
    # the rule is for z/‖z‖ (equal norms keep deflation scale-free); Z/‖Z‖ = Q_1 · coupling
    block, coupling = _orthonormal_block((starts / norms[:, None]).T, breakdown_tol, capacity)
    start_coordinates = coupling.T
    previous: np.ndarray | None = None
    link: np.ndarray | None = None  # residual of the previous step = block · link
    size, start_previous, done, spent, breakdown, scale = 0, 0, 0, 0, False, 0.0
    while True:
        width = block.shape[1]
        product = symmetry.product(matmat, block, dim, width)
        spent += width
        if progress_bar is not None:
            progress_bar.update(width)
        scale = max(scale, float(_column_norms(product).max()))
        # (each update below makes one block-sized temporary; none of them raises the peak)
        if previous is not None:
            product -= _matmul(previous, link.T)  # A Q_j has Q_{j-1} B_jᵀ, B_j the previous QR coupling
            projection[start_previous:size, size : size + width] = link.T
            previous = None  # not needed again: not alive during the QR below
        diagonal = _matmul(block.T, product)
        product -= _matmul(block, diagonal)
        correction = _matmul(block.T, product)  # one local pass keeps the block itself orthogonal
        product -= _matmul(block, correction)
        diagonal += correction
        symmetry.check(diagonal, scale)
        projection[size : size + width, size : size + width] = 0.5 * (diagonal + diagonal.T)
        start_previous = size
        size += width
        done += 1
        if done == steps or size == capacity:
            break
        following, link = _orthonormal_block(product, breakdown_tol * scale, capacity - size, overwrite=True)
        del product  # (its memory may now hold the next block) not alive while the operator computes
        if following.shape[1]:
            following, link = _restore_orthogonality(following, link, block.T, _FLOAT64_EPS)
        if following.shape[1] == 0:
            breakdown = True
            break
        previous, block = block, following
        if monitor is not None and monitor(done, lambda: _block_result(projection, start_coordinates, size, done, False, spent)):
            break
    return _block_result(projection, start_coordinates, size, done, breakdown, spent)


def _block_result(
    projection: np.ndarray, start_coordinates: np.ndarray, size: int, done: int, breakdown: bool, spent: int
) -> BlockLanczosResult:
    """The :class:`BlockLanczosResult` of the first ``size`` basis vectors (``QᵀAQ`` from its upper part)."""
    upper = projection[:size, :size]
    symmetric = np.triu(upper) + np.triu(upper, 1).T
    coordinates = np.zeros((start_coordinates.shape[0], size))
    coordinates[:, : start_coordinates.shape[1]] = start_coordinates
    return BlockLanczosResult(symmetric, coordinates, done, breakdown, spent)


_FLOAT64_EPS = float(np.finfo(np.float64).eps)
_NO_BLOCK = np.zeros((0, 0))  # the diagonal block lanczos_probes's symmetry check has not (one column per probe)
_FLOAT32_EPS = float(np.finfo(np.float32).eps)


def _dtype_eps(dtype: Any, name: str | None = None) -> float:
    """Machine epsilon of a floating dtype (numpy or torch); float64's for integers and other kinds,
    whose products float64 holds. ``name``: refuse what is no dtype, in one line naming it."""
    if isinstance(dtype, torch.dtype):
        return float(torch.finfo(dtype).eps) if dtype.is_floating_point else _FLOAT64_EPS
    try:
        parsed = np.dtype(dtype)
    except (TypeError, ValueError):
        if name is not None:
            raise PruningLimitsError(f"{name} must be a numpy or torch dtype, got {describe(dtype)}") from None
        return _FLOAT64_EPS
    return float(np.finfo(parsed).eps) if np.issubdtype(parsed, np.floating) else _FLOAT64_EPS


def _basis_dtype(value: Any) -> np.dtype:
    """``basis_dtype`` of :func:`block_lanczos` (numpy, its name, or torch) as numpy float64 or float32."""
    if isinstance(value, torch.dtype):
        parsed = {torch.float64: np.dtype(np.float64), torch.float32: np.dtype(np.float32)}.get(value)
        shown = str(value)
    else:
        try:
            parsed = np.dtype(value)
            shown = str(parsed)
        except (TypeError, ValueError):
            parsed, shown = None, describe(value)
    if parsed is None or parsed not in (np.dtype(np.float64), np.dtype(np.float32)):  # (None == float64 in numpy)
        raise PruningLimitsError(f"basis_dtype must be float64 or float32, got {shown}")
    return parsed


#: Machine epsilon of TF32 (10 explicit mantissa bits), in which a GPU may compute float32
#: convolutions (cuDNN's default, ``torch.backends.cudnn.allow_tf32``): products about 1e-3 from
#: exact, which the library does not switch off.
_TF32_EPS = 2.0**-10


def _coarsest(rounding: float) -> float:
    """The epsilon the symmetry check assumes: float32 products may have been computed in TF32."""
    return max(rounding, _TF32_EPS) if rounding >= _FLOAT32_EPS else rounding


class _Symmetry:
    """The symmetry check of block Lanczos: ``|C − Cᵀ| ≤ √eps · scale`` for every diagonal block
    ``C = QⱼᵀAQⱼ``, ``eps`` of the products' dtype and ``scale`` the largest product norm seen.

    A symmetric operator's ``C`` is asymmetric by its products' rounding alone: float32 Hessian
    products are 0.02-0.4 ulps of ``λ_max`` from exact (:data:`pruning_limits.spectrum.BREAKDOWN_ULPS`),
    thousands of times below ``√eps`` (3.5e-4 in float32, 1.5e-8 in float64); a grossly
    non-symmetric operator is off by the size of its entries. The same ``√eps`` as
    :class:`~pruning_limits.hessian.HessianOperator`'s determinism check, so that products which
    pass it (GPU reductions that differ from run to run) pass this one.

    Products narrower than float64 are checked at TF32's ``√eps`` (0.031): a GPU may compute
    float32 convolutions in TF32 (:data:`_TF32_EPS`), and no test here can show that the float32
    tolerance holds there; a grossly non-symmetric operator is still off by far more.

    ``rounding``: the products' machine epsilon when the caller declared it (``product_dtype``),
    else ``None``: then the epsilon of the first product's dtype and at least float32's (a float64
    array may hold float32 products). At least ``floor`` (the basis dtype's: a float32 basis
    rounds the re-orthogonalisation's coefficients).

    Attributes:
        margin: the asymmetry the last :meth:`check` measured as a fraction of its tolerance
            (0 before the first; 0 for a zero block at a zero scale), recorded before it refuses:
            what tests read to show how far inside the tolerance a symmetric operator stays.
    """

    def __init__(self, rounding: float | None, floor: float) -> None:
        self.rounding = None if rounding is None else _coarsest(max(rounding, floor))
        self.floor = max(floor, _FLOAT32_EPS) if rounding is None else floor
        self.margin = 0.0

    def product(self, matmat: Callable[[np.ndarray], Any], block: np.ndarray, dim: int, width: int) -> np.ndarray:
        """``matmat(block)`` as float64 ``(dim, width)``; the first one sets the rounding when not declared
        (the operator's own array is released here, as before)."""
        value = matmat(block)
        if self.rounding is None:
            self.rounding = _coarsest(max(_dtype_eps(getattr(value, "dtype", None)), self.floor))
        return _as_float64(value, dim, width=width)

    def check(
        self,
        diagonal: np.ndarray,
        scale: float,
        above: np.ndarray | None = None,
        link: np.ndarray | None = None,
        *,
        what: str = "a block QᵀAQ",
    ) -> None:
        """Refuse a diagonal block ``QⱼᵀAQⱼ`` whose asymmetry exceeds ``√eps·scale``; with the
        re-orthogonalised rule also ``Qⱼ₋₁ᵀAQⱼ`` (``above``) against the transpose of ``QⱼᵀAQⱼ₋₁``,
        the coupling its QR gave (``link``): a block of one column has no asymmetry of its own.
        :func:`lanczos_probes` passes an empty ``diagonal`` and each probe's ``qᵢᵀAqⱼ`` for
        ``i < j`` as ``above`` (``what``: the message's name for the matrix)."""
        asymmetry = float(np.abs(diagonal - diagonal.T).max(initial=0.0))
        if above is not None and above.size:
            asymmetry = max(asymmetry, float(np.abs(above - link.T).max()))
        tol = float(np.sqrt(self.rounding)) * scale
        self.margin = asymmetry / tol if tol > 0 else (float("inf") if asymmetry > 0 else 0.0)
        if asymmetry > tol:
            raise PruningLimitsError(
                f"the operator is not symmetric: {what} differs from its transpose by {asymmetry:.3g}, against "
                f"products of norm up to {scale:.3g} (tolerance {tol:.3g}, √eps of the products' dtype); Lanczos needs "
                "A = Aᵀ"
            )


def _orthonormal_block(
    vectors: np.ndarray, tol: float, limit: int, *, overwrite: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal columns ``Q`` and coefficients ``C`` with ``vectors ≈ Q C``, dropping singular values ``≤ tol``.

    A thin QR (fast for a tall block) and an SVD of its small triangle ``R = U S Vᵀ`` reveal the
    rank: ``Q ← Q U[:, :r]``, ``C = S[:r] Vᵀ[:r]``. ``overwrite``: ``vectors`` is not needed
    afterwards, so a C-contiguous float64 block of full rank receives ``Q U`` in place (the same
    product, no new block of D rows).
    """
    q, r = (t.numpy() for t in torch.linalg.qr(torch.from_numpy(np.ascontiguousarray(vectors))))
    u, singular, vt = np.linalg.svd(r)
    rank = min(int(np.sum(singular > tol)), limit)
    coupling = singular[:rank, None] * vt[:rank]
    if overwrite and rank == vectors.shape[1] and vectors.dtype == np.float64 and vectors.flags.c_contiguous:
        torch.matmul(torch.from_numpy(q), torch.from_numpy(u), out=torch.from_numpy(vectors))
        return vectors, coupling
    return _matmul(q, u[:, :rank]), coupling


#: A new block of :func:`block_lanczos` whose kept singular values ``σ_1 ≥ … ≥ σ_k`` span more
#: than ``eps^(-1/4)`` (8 192 in float64; the QR runs in float64 whatever the basis) is
#: orthogonalised once more (:func:`_restore_orthogonality`). Below it the QR leaves its columns at
#: most ``eps^(3/4)`` (1.8e-12) off the basis, ``eps^(-1/4)`` times below the symmetry check's
#: ``√eps``. Spreads above it come where a block Krylov space runs out (none of the 1 174 block
#: steps of tests/test_lanczos.py, test_slq.py and test_spectrum.py before the fully pruned cases
#: reached it), and on graded spectra: a rotated ``logspace(-14, 0, 30)`` beside 90 zeros (D = 120,
#: 3, 8 and 16 probes, 5 seeds, 60 steps) reached it at 11 of 82 re-orthogonalised block steps and
#: at 266 of 456 without, ± ``logspace(-16, 0, 60)`` at 55 of 315 without (a review's repro); the
#: columns came out within 2e-16 of the basis and the rules stayed exact. Each time costs one more
#: pass over the basis (in ``"full"`` mode about half that step's re-orthogonalisation). In float64
#: none of these needed the second pass of :func:`_restore_orthogonality`.
MIXING_SPREAD = _FLOAT64_EPS**-0.25


def _restore_orthogonality(
    block: np.ndarray, link: np.ndarray, against: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """The new block ``Q`` (residual ``P ≈ Q·link``, rows of ``link`` ``σ_i·v_iᵀ``) orthogonal to the rows of ``against`` again.

    The residual ``P`` is orthogonal to the basis to rounding, but its QR and SVD are backward
    stable only for ``P`` as a whole: ``P + ΔP = Q·link`` with ``‖ΔP‖ ≈ eps·σ_1``. A direction
    of small ``σ_i`` (a near-cancellation of columns of norm up to ``σ_1``) is found up to ``ΔP``,
    so its column of ``Q`` is about ``eps·σ_1/σ_i`` off the basis (measured up to 8e-8 for the
    0.1 and 6e-11 of a fully pruned MLP's Hessian, :func:`block_lanczos`). When ``σ_1/σ_k`` exceeds
    :data:`MIXING_SPREAD`, a classical Gram–Schmidt pass against ``against`` (the stored basis;
    without re-orthogonalisation, the current block: the next diagonal block's symmetry depends
    on it alone) leaves ``W = (I − BBᵀ)Q``, whose QR ``Q' S`` replaces ``Q``; the coupling becomes
    ``S·link``, so that ``P ≈ Q'·S·link`` still.

    One pass is enough while every direction of ``Q`` keeps at least :data:`REORTH_NORM_RATIO`
    (1/√2) of its norm, the DGKS criterion (Daniel, Gragg, Kaufman & Stewart 1976), checked here
    on the singular values of ``S`` (those of ``W``: a combination of columns can lie in the basis
    while no single column does). Otherwise the direction was mostly in the basis already, as
    rounding of a float32 basis is (``eps`` about 1e-7; a review's repro kept 4e-8 of a column's
    norm, and its QR made a column 0.98 inside the basis), and what one pass leaves of it is
    the pass's own rounding: a second pass removes that, and a direction that keeps at most
    ``√eps`` of its norm after it is dropped (deflated: it lies in the basis) instead of being
    normalised, by the rank-revealing QR of the main loop (:func:`_orthonormal_block`). The block
    may come back narrower, or empty (then the Krylov space is exhausted).

    Args:
        block: ``(D, k)`` orthonormal columns ``Q`` (float64); overwritten.
        link: ``(k, k')`` coupling with ``P ≈ Q·link``.
        against: ``(n, D)`` orthonormal rows (float64, or a float32 basis).
        eps: machine epsilon of the passes (of ``against``'s dtype).

    Returns:
        ``(Q', link')`` with ``P ≈ Q'·link'`` up to the components dropped, ``Q'`` orthogonal to
        ``against`` to about ``eps``.
    """
    singular = np.linalg.norm(link, axis=1)
    if not singular[-1] * MIXING_SPREAD < singular[0]:
        return block, link
    _project_out(block, against)
    q, triangle = (t.numpy() for t in torch.linalg.qr(torch.from_numpy(block)))
    # (Q's columns are orthonormal: W's singular values are the fractions of norm each direction keeps)
    if np.linalg.svd(triangle, compute_uv=False)[-1] >= REORTH_NORM_RATIO:
        return q, _matmul(triangle, link)
    del q, triangle
    _project_out(block, against)
    q, coupling = _orthonormal_block(block, float(np.sqrt(eps)), block.shape[1])
    return q, _matmul(coupling, link)


def _project_out(block: np.ndarray, against: np.ndarray) -> None:
    """``block -= againstᵀ·(against·block)`` in place: one classical Gram–Schmidt pass against the
    rows of ``against``, computed in their dtype (a float32 basis: the update is float32, subtracted
    in float64, as in :func:`block_lanczos`)."""
    narrow = block.astype(against.dtype, copy=False)
    correction = _matmul(against, narrow)
    del narrow
    if against.dtype == np.float64:
        _subtract_product(block, against.T, correction)
    else:
        block -= _matmul(against.T, correction)


def _column_norms(block: np.ndarray) -> np.ndarray:
    """Euclidean norm of each column, without the squared copy ``numpy.linalg.norm(axis=0)`` makes."""
    return torch.linalg.vector_norm(torch.from_numpy(block), dim=0).numpy()


def _subtract_product(out: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """``out -= a @ b`` in place (float64, torch's pool): one ``addmm_``, no temporary the size of ``out``."""
    torch.from_numpy(out).addmm_(torch.from_numpy(a), torch.from_numpy(b), alpha=-1.0)


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for two arrays of one dtype, computed by torch on its own thread pool.

    The products run in torch, so numpy's BLAS (OpenBLAS) between them would keep a second
    pool of threads that spin after each call and take the cores from torch's next product:
    on two cores that made block Lanczos on the D = 2 080 test MLP 7-10 times slower with
    ``OMP_WAIT_POLICY`` unset (docs/benchmarks.md, "Two thread pools"). The large products of the recurrence therefore
    stay in torch's pool; the arrays are shared, not copied.
    """
    return (torch.from_numpy(a) @ torch.from_numpy(b)).numpy()


def block_gauss_quadrature(result: BlockLanczosResult) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (eigenvalues of ``QᵀAQ``) and per-probe weights ``(u_kᵀQᵀz_j)²/‖z_j‖²`` of the block rule.

    Returns:
        ``(nodes, weights)`` with ``nodes`` of shape ``(n,)`` shared by all probes and
        ``weights`` of shape ``(b, n)``, each row renormalised to sum to 1 exactly.
    """
    if not isinstance(result, BlockLanczosResult):
        raise PruningLimitsError(f"result must be a BlockLanczosResult (block_lanczos), got {describe(result)}")
    nodes, vectors = np.linalg.eigh(result.projection)
    weights = (result.start_coordinates @ vectors) ** 2
    return nodes, weights / weights.sum(axis=1, keepdims=True)


def gauss_quadrature(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (Ritz values) and weights (squared first eigenvector components) of ``T``.

    Uses ``scipy.linalg.eigh_tridiagonal``; the weights are renormalised to sum to 1 exactly.
    """
    alpha = real_array(alpha, "alpha")
    beta = real_array(beta, "beta")
    if alpha.ndim != 1 or alpha.size == 0 or beta.shape != (alpha.size - 1,):
        raise PruningLimitsError(
            f"expected alpha of length m >= 1 and beta of length m - 1, got {alpha.shape} and {beta.shape}"
        )
    if not (np.isfinite(alpha).all() and np.isfinite(beta).all()):
        raise PruningLimitsError("alpha and beta contain NaN or infinite values")
    if alpha.size == 1:
        return alpha.copy(), np.ones(1)
    nodes, vectors = scipy.linalg.eigh_tridiagonal(alpha, beta)
    weights = vectors[0] ** 2
    return nodes, weights / weights.sum()


def _as_float64(value: Any, dim: int, *, width: int | None = None) -> np.ndarray:
    """An operator's product as float64 numpy: a ``(dim,)`` vector, or ``(dim, width)`` for ``matmat``.

    The shape must be exactly that: a ``(width, dim)`` result (products as rows) was read in
    ``(dim, width)`` order and gave a wrong spectrum, negative nodes for a positive definite
    operator (a review's repro). Complex values are refused: casting dropped their imaginary
    part with a warning only.
    """
    name = "matvec" if width is None else "matmat"
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise PruningLimitsError(f"{name} returned complex values ({value.dtype}): Lanczos needs a real symmetric operator")
        converted = value.detach().to("cpu", torch.float64)
        # a converted (float32, GPU) tensor is a new array, ours to change; else copy: callers subtract in place
        out = converted.numpy() if converted.data_ptr() != value.data_ptr() else np.array(converted.numpy())
    else:
        if np.iscomplexobj(value):
            raise PruningLimitsError(f"{name} returned complex values: Lanczos needs a real symmetric operator")
        try:
            out = np.array(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise PruningLimitsError(f"{name} must return an array of numbers, got {describe(value)}") from None
    expected = (dim,) if width is None else (dim, width)
    if out.shape != expected:
        raise PruningLimitsError(f"{name} returned an array of shape {out.shape}, expected {expected}")
    # max and min propagate NaN and reach ±inf without the boolean copy np.isfinite makes (an eighth
    # of a block beside the operator's result and this copy: the peak of the counted blocks)
    if out.size and not (np.isfinite(out.max()) and np.isfinite(out.min())):
        raise PruningLimitsError(f"{name} returned NaN or infinite values")
    return out


def _size(nbytes: float) -> str:
    """Bytes as an error message says them: the count, and GiB as ``--memory-budget`` takes them."""
    return f"{nbytes:.0f} bytes ({nbytes / 2**30:.3g} GiB)"


class _CallableModule(type(sys)):
    """This module, callable as its function :func:`lanczos`.

    The package exports the function ``lanczos`` under the name of this module. Once anything
    imports the module, Python binds ``pruning_limits.lanczos`` to it, and ``pl.lanczos(...)``
    raised "'module' object is not callable" where it had worked a moment before (a review's
    repro). Calling the module calls the function, so the name works either way.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> LanczosResult:
        return lanczos(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
