"""Spectral measures of a symmetric operator: Gauss quadrature nodes and weights per probe.

A :class:`Spectrum` stores, for each probe ``j``, the nodes ``θ_jk`` and weights ``τ_jk`` of
the quadrature rule that stochastic Lanczos quadrature (SLQ) produces, one Gauss rule per probe
or the block Gauss rule whose nodes all probes share, so that

    ∫ f dμ_H ≈ (1/n_v) Σ_j Σ_k τ_jk f(θ_jk)

(Ubaru, Chen & Saad 2017; Zhang et al. 2024, §5). An exact spectrum is one probe holding all
eigenvalues with weights ``1/D``. Gauss rules shorter than the others (Lanczos breakdown) are padded
with copies of their last node at weight zero, which changes no integral and no extreme value.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ._autograd import with_gradients
from ._checks import PruningLimitsError, check_int, check_positive, describe, real_array, seeded_generator


#: How far a row of quadrature weights may sum from 1 (absolute) to be taken for a probability
#: measure normalised in finite precision: about 84 float32 ulps at 1 (``2⁻²³`` = 1.19e-7). A rule
#: normalised in float32 (a Gauss rule from a float32 eigendecomposition, the weights ``1/D`` of
#: an exact measure stored as float32) sums to 1 within its summation's rounding: at most about
#: ``log₂(n)`` ulps for pairwise summation (numpy, torch) and ``n`` ulps for a sequential one,
#: measured 2e-8 to 9e-8 on float32 ``eigh`` rules of 20 to 300 nodes. It is the tolerance
#: ``allclose`` gave before (``1e-8 + 1e-5``, rtol included) and stops weights that are not a
#: probability measure (a row off by 1e-3: mass missing, counts, a float16 rule). A row it accepts
#: is divided by its sum once, at construction, where it differs from 1 by more than float64
#: rounding (``n·2⁻⁵²``): every integral then reads one measure, as ``trace_bound ≤ s*`` (Jensen)
#: needs, and the weights of a float64 rule from this library are stored bit for bit (a copy of
#: them: :class:`Spectrum` never shares the caller's arrays). The integrals
#: (:meth:`Spectrum.integrate`, :meth:`Spectrum.trace`, :meth:`Spectrum.abs_trace`,
#: :func:`pruning_limits.geometry.delta_fraction`) still divide each row by its sum, which removes
#: that last rounding: a zero Hessian gives exactly 1. So :meth:`Spectrum.trace` (and the JSON
#: ``trace``, ``trace_stderr``) of a float64 rule whose rows sum to 1 only within float64 rounding
#: may differ by a few ulps from ``D·Σ τ θ`` undivided, the value it gave before (1-2 ulps
#: measured on library rules, a review); the weights and the other integrals are unchanged.
ROW_SUM_TOLERANCE = 1e-5


class Estimate(NamedTuple):
    """A Monte-Carlo estimate over probes: mean, standard error, and the value of each probe."""

    value: float
    stderr: float
    per_probe: np.ndarray


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Nodes and weights of a spectral measure, one row per probe.

    Attributes:
        nodes: ``(probes, n)`` float64 array of Ritz values (or eigenvalues): ``n`` is the
            number of Lanczos steps for the Gauss rule, up to ``probes × steps`` nodes shared by
            every row for the block rule, and ``D`` for an exact spectrum.
        weights: ``(probes, n)`` float64 array, each row summing to 1 (given within
            :data:`ROW_SUM_TOLERANCE`, divided by its sum where it was off by more than float64
            rounding).
        dim: dimension ``D`` of the operator.
        exact: True when the nodes are the exact eigenvalues.
        num_hvps: Hessian-vector products spent to obtain the spectrum.
        rule: ``"gauss"`` (one Gauss rule per probe, nodes differ between rows), ``"block"``
            (the block Gauss rule: every row holds the same nodes) or ``"exact"``.
        steps: Lanczos steps per probe (``None`` when not from Lanczos).
        reorthogonalization: ``"full"`` or ``"none"`` for a Lanczos spectrum (either rule: the
            block rule too runs without re-orthogonalisation above the memory budget), ``None``
            otherwise.
        stopping: how an adaptive run stopped (tolerance, converged, the estimates seen), as
            recorded by the caller's monitor; ``None`` for a fixed number of steps.
    """

    nodes: np.ndarray
    weights: np.ndarray
    dim: int
    exact: bool = False
    num_hvps: int = 0
    rule: str = "gauss"
    steps: int | None = None
    reorthogonalization: str | None = None
    stopping: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # own copies, read-only below: a caller's float64 array or tensor (or a view of it) stored
        # by reference wrote through after construction, and had its own ``writeable`` switched off
        nodes = np.array(np.atleast_2d(real_array(self.nodes, "spectrum nodes")), dtype=np.float64, copy=True)
        weights = np.array(np.atleast_2d(real_array(self.weights, "spectrum weights")), dtype=np.float64, copy=True)
        if nodes.shape != weights.shape or nodes.size == 0:
            raise PruningLimitsError(
                f"nodes and weights must be non-empty arrays of one shape, got {nodes.shape} and {weights.shape}"
            )
        if not (np.isfinite(nodes).all() and np.isfinite(weights).all()):
            raise PruningLimitsError("spectrum nodes and weights must be finite")
        if (weights < 0).any():
            raise PruningLimitsError(f"spectrum weights must be non-negative, got {float(weights.min()):.4g}")
        sums = weights.sum(axis=1)
        off = np.abs(sums - 1.0) > ROW_SUM_TOLERANCE
        if off.any():
            row = int(np.flatnonzero(off)[0])
            raise PruningLimitsError(
                f"spectrum weights must sum to 1 in every row (within {ROW_SUM_TOLERANCE:g}), got row {row} summing to {float(sums[row])!r}"
            )
        rounded = np.abs(sums - 1.0) > weights.shape[1] * np.finfo(np.float64).eps  # beyond float64 rounding
        if rounded.any():  # a rule normalised in lower precision: renormalised once (ROW_SUM_TOLERANCE)
            weights[rounded] /= sums[rounded, None]
        check_int("spectrum dim", self.dim, 1)  # None, nan, 'a' or 2.7 (read as 2) before
        if self.rule not in ("gauss", "block", "exact"):
            raise PruningLimitsError(f"spectrum rule must be 'gauss', 'block' or 'exact', got {self.rule!r}")
        if self.rule == "block" and not (nodes == nodes[0]).all():
            raise PruningLimitsError("a block-rule spectrum must hold the same nodes in every row")
        if self.steps is not None and (isinstance(self.steps, bool) or int(self.steps) != self.steps or self.steps < 1):
            raise PruningLimitsError(f"spectrum steps must be None or an integer >= 1, got {self.steps!r}")
        if not isinstance(self.exact, (bool, np.bool_)) or bool(self.exact) != (self.rule == "exact"):
            raise PruningLimitsError(
                f"spectrum exact must be True with rule 'exact' and False otherwise, got exact={self.exact!r} with rule {self.rule!r}"
            )
        if self.reorthogonalization not in (None, "full", "none"):
            raise PruningLimitsError(
                f"spectrum reorthogonalization must be None, 'full' or 'none', got {describe(self.reorthogonalization)}"
            )
        object.__setattr__(self, "num_hvps", check_int("spectrum num_hvps", self.num_hvps, 0))
        object.__setattr__(self, "exact", bool(self.exact))
        nodes.flags.writeable = False
        weights.flags.writeable = False
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "dim", int(self.dim))

    @classmethod
    def from_eigenvalues(cls, eigenvalues: Any, *, num_hvps: int = 0) -> Spectrum:
        """The exact spectral measure ``(1/D) Σ δ_{λ_i}`` of the given eigenvalues."""
        eigs = np.sort(real_array(eigenvalues, "eigenvalues").ravel())
        if eigs.size == 0:
            raise PruningLimitsError("from_eigenvalues needs at least one eigenvalue")
        weights = np.full(eigs.size, 1.0 / eigs.size)
        return cls(eigs[None, :], weights[None, :], eigs.size, exact=True, num_hvps=num_hvps, rule="exact")

    @classmethod
    def from_ragged(
        cls,
        rows: list[tuple[np.ndarray, np.ndarray]],
        dim: int,
        *,
        num_hvps: int = 0,
        rule: str = "gauss",
        steps: int | None = None,
        reorthogonalization: str | None = None,
    ) -> Spectrum:
        """Build from per-probe ``(nodes, weights)`` of possibly different lengths (zero-weight padding).

        ``rows``: any iterable of pairs of 1-D arrays, the nodes and weights of one probe, of one
        length ``>= 1`` each (shorter weights were padded with zeros, longer ones failed in numpy).
        """
        rows = list(rows) if isinstance(rows, Iterable) else rows
        if not isinstance(rows, list) or not rows:
            raise PruningLimitsError(f"a spectrum needs at least one probe's (nodes, weights), got {describe(rows)}")
        pairs = []
        for j, row in enumerate(rows):
            try:
                n, w = row
            except (TypeError, ValueError):
                raise PruningLimitsError(f"spectrum row {j} must be a pair (nodes, weights), got {describe(row)}") from None
            n, w = real_array(n, "nodes"), real_array(w, "weights")
            if n.ndim != 1 or n.size == 0 or w.shape != n.shape:
                raise PruningLimitsError(
                    f"spectrum row {j} must hold 1-D nodes and weights of one length >= 1, got shapes {n.shape} and {w.shape}"
                )
            pairs.append((n, w))
        width = max(n.size for n, _ in pairs)
        nodes = np.empty((len(pairs), width))
        weights = np.zeros((len(pairs), width))
        for j, (n, w) in enumerate(pairs):
            nodes[j, : n.size] = n
            nodes[j, n.size :] = n[-1]
            weights[j, : w.size] = w
        return cls(
            nodes, weights, dim, num_hvps=num_hvps, rule=rule, steps=steps, reorthogonalization=reorthogonalization
        )

    @property
    def probes(self) -> int:
        """Number of probes (rows)."""
        return self.nodes.shape[0]

    @property
    def iterations(self) -> int:
        """Lanczos steps per probe when known (:attr:`steps`), otherwise the nodes per probe (columns).

        The Gauss rule has one node per step; the block rule up to ``probes × steps`` nodes.
        """
        return self.nodes.shape[1] if self.steps is None else int(self.steps)

    def integrate(self, f: Callable[[np.ndarray], np.ndarray]) -> Estimate:
        """Gauss-quadrature estimate of ``∫ f dμ``, averaged over probes, with its standard error.

        ``f`` is applied to the whole node array at once and must be vectorised. Each row is
        divided by the sum of its weights (1 to float64 rounding after construction, see
        :data:`ROW_SUM_TOLERANCE`), as :func:`pruning_limits.geometry.delta_fraction` does, so
        that ``D·integrate(φ_R)`` is the ``δ`` the predictor uses, bit for bit.
        """
        per_probe = np.sum(self.weights * np.asarray(f(self.nodes), dtype=np.float64), axis=1) / self.weights.sum(axis=1)
        return _estimate(per_probe)

    def trace(self) -> Estimate:
        """Estimate of ``tr(H) = D ∫ λ dμ``; with SLQ this is Hutchinson's estimate on the same probes.

        Each row is divided by the sum of its weights, as in :meth:`integrate` and :meth:`abs_trace`:
        for a row summing to 1 only within float64 rounding this can move the last ulps against
        ``D·Σ τ θ`` undivided (see :data:`ROW_SUM_TOLERANCE`).
        """
        per_probe = self.dim * (np.sum(self.weights * self.nodes, axis=1) / self.weights.sum(axis=1))
        return _estimate(per_probe)

    def abs_trace(self) -> Estimate:
        """Estimate of ``tr|H| = D ∫ |λ| dμ``, each row divided by the sum of its weights (as :meth:`integrate`)."""
        per_probe = self.dim * (np.sum(self.weights * np.abs(self.nodes), axis=1) / self.weights.sum(axis=1))
        return _estimate(per_probe)

    def _pooled(self) -> tuple[np.ndarray, np.ndarray]:
        """All nodes with their probe-averaged weights (the shared nodes once for the block rule)."""
        if self.rule == "block":
            return self.nodes[0], self.weights.mean(axis=0)
        return self.nodes.ravel(), self.weights.ravel() / self.probes

    def cdf(self, x: Any) -> np.ndarray:
        """Estimated spectral distribution function ``μ((-∞, x])`` at the points ``x`` (NaN where ``x`` is NaN)."""
        points = real_array(x, "x")
        flat_nodes, flat_weights = self._pooled()
        order = np.argsort(flat_nodes, kind="stable")
        cumulative = np.concatenate([[0.0], np.cumsum(flat_weights[order])])
        index = np.searchsorted(flat_nodes[order], points, side="right")
        values = np.clip(cumulative[index], 0.0, 1.0)
        missing = np.isnan(points)
        # searchsorted puts NaN after every node: μ = 1 there
        return np.where(missing, np.nan, values)[()] if missing.any() else values

    def density(self, grid: Any, sigma: float) -> np.ndarray:
        """Gaussian-smoothed density on ``grid`` with bandwidth ``sigma``; for plots only."""
        sigma = check_positive("sigma", sigma)
        grid = np.asarray(grid, dtype=np.float64)
        flat_nodes, flat_weights = self._pooled()
        keep = flat_weights > 0
        diff = (grid.reshape(-1, 1) - flat_nodes[keep].reshape(1, -1)) / sigma
        kernel = np.exp(-0.5 * diff**2) / (sigma * np.sqrt(2 * np.pi))
        return (kernel @ flat_weights[keep]).reshape(grid.shape)

    @property
    def lambda_max(self) -> float:
        """Largest node: a lower estimate of the largest eigenvalue (Lanczos converges fast to it)."""
        return float(self.nodes.max())

    @property
    def lambda_min(self) -> float:
        """Smallest node: an upper estimate of the smallest eigenvalue."""
        return float(self.nodes.min())

    def atom_at_zero(self, tol: float = 1e-6) -> float:
        """Estimated mass of the spectrum at zero: weight of nodes with ``|θ| ≤ tol·max|θ|``.

        The default ``1e-6`` dates from the first version of this class, with no measurement
        recorded for it (docs/theory.md §6b: "set before this model existed"; §10 documents it).
        It lies above the rounding of float32 Hessian products, at most ``3.4·10⁻⁷·λ_max`` per
        eigenvalue on the 64-28-10 MLP (docs/theory.md §7, "Float64 analysis").
        """
        tol = check_positive("tol", tol)
        scale = float(np.abs(self.nodes).max())
        return self.integrate(lambda lam: (np.abs(lam) <= tol * scale).astype(np.float64)).value

    def summary(self) -> dict[str, Any]:
        """Summary for JSON (no node arrays).

        ``trace_stderr`` is NaN for a single probe (no spread to estimate it from), which the
        ``json`` module writes only with ``allow_nan=True``; :func:`pruning_limits.report.dumps_json`,
        the command line's writer, writes it as ``null``.
        """
        trace = self.trace()
        return {
            "dim": self.dim,
            "probes": self.probes,
            "iterations": self.iterations,
            "nodes_per_probe": int(self.nodes.shape[1]),
            "rule": self.rule,
            "exact": self.exact,
            "num_hvps": int(self.num_hvps),
            "lambda_max": self.lambda_max,
            "lambda_min": self.lambda_min,
            "trace": trace.value,
            "trace_stderr": trace.stderr,
            "atom_at_zero": self.atom_at_zero(),
            "reorthogonalization": self.reorthogonalization,
            **({} if self.stopping is None else {"stopping": self.stopping}),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record including the node and weight arrays."""
        return {**self.summary(), "nodes": self.nodes.tolist(), "weights": self.weights.tolist()}


def _estimate(per_probe: np.ndarray) -> Estimate:
    n = per_probe.size
    stderr = float(per_probe.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return Estimate(float(per_probe.mean()), stderr, per_probe)


# ---------------------------------------------------------------------------------------------
# Estimating spectra: stochastic Lanczos quadrature and the exact (dense) spectrum.
# torch, the Hessian engine and Lanczos are imported inside the functions so that the pure
# maths above stays importable without torch.

#: Default Lanczos steps per probe, chosen for the pruning limit, which needs the measure near
#: zero. Chen, Trogdon & Ubaru (ICML 2021, Thm. 1-2) bound the Wasserstein-1 distance between the
#: SLQ measure and the spectral measure by about ``t·(λmax − λmin)`` after ``≈ 12/t`` steps, and
#: tests/test_slq.py measures W1 ≈ 3e-4 of the span on a trained MLP with 80 steps. But the
#: transition of ``φ_R(λ) = 2ε/(2ε + |λ|R²)`` at ``|λ| = 2ε/R²`` lies far below ``λmax``, next
#: to its kink at ``λ = 0``, which the small negative eigenvalues put just inside the spectrum,
#: where Gauss nodes are sparse (docs/benchmarks.md). With one Gauss rule per probe, 100 steps
#: gave ``s*`` up to 0.009 too low against the exact spectrum and 300 steps within 0.0021
#: (docs/theory.md, "SLQ settings"). The block rule (the default when its basis fits the memory
#: budget) resolves the same transitions with fewer steps (80 steps: 0.00 against −0.043 at
#: D = 2 080; 300 steps: −0.0003 against −0.0088 at D = 9 700); 300 steps keep the per-probe
#: rule accurate where the block basis does not fit. PyHessian's density uses 100 steps (Yao et
#: al. 2020); a plot of the density alone needs no more than that.
DEFAULT_ITERATIONS = 300

#: Default probes. The SLQ trace is Hutchinson's estimate on the same probes, so its error is
#: set by the number of probes alone (variance ``≤ 2‖H‖_F²/probes`` for normalised Rademacher
#: probes, Avron & Toledo 2011); for the measure one probe suffices at large ``D`` (Chen et al.
#: 2021), but the per-probe spread of ``s*`` was 0.003-0.008 at D ≈ 1 500-2 400, and 8 probes
#: bring its standard error under 0.003 (docs/theory.md, "SLQ settings").
DEFAULT_PROBES = 8

#: Largest dimension :func:`exact_spectrum` accepts by default: a dense float64 Hessian of
#: 10 000² entries takes 800 MB and ``eigvalsh`` a few minutes on two cores.
DEFAULT_MAX_DIM = 10_000


#: Largest asymmetry ``max|A − Aᵀ|``, relative to ``max|A|``, of a dense float64 operator: far
#: above rounding, far below a mistake. A matrix of a narrower dtype may carry ``√eps`` of it
#: (3.5e-4 in float32), the tolerance of block Lanczos's symmetry check
#: (:func:`pruning_limits.lanczos.block_lanczos`): a float32 Hessian is asymmetric by its
#: rounding, which ``1e-10`` refused (``torch.func.hessian``: 1e-8 on a review's example;
#: measured when this tolerance was set, 9 ulps on a 1 476-weight CNN and 14 ulps, 1.7e-6, for
#: the same CNN's dense float32 ``HessianOperator`` matrix: too close to 100 ulps to rely on).
DENSE_SYMMETRY_TOL = 1e-10


def _torch_dtype(dtype: Any) -> Any:
    """An operator's ``.dtype`` (torch, numpy or its name) as a torch dtype; ``None`` for ``None`` or anything else.

    ``slq`` compared ``dtype == torch.float32``, so an operator whose ``dtype`` was
    ``numpy.float32`` was treated as float64 (its breakdown tolerance 1e-10, below its rounding:
    30 steps where 4 end it, a review's repro).
    """
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    try:
        return torch.from_numpy(np.empty(0, dtype=np.dtype(dtype))).dtype
    except (TypeError, ValueError):
        return None


def products_dtype(operator: Any) -> Any:
    """The dtype an operator computes its products in, as it declares it: its ``product_dtype``
    where it has one (:meth:`pruning_limits.hessian.HessianOperator.to_linear_operator`: a
    ``LinearOperator`` whose ``dtype`` is float64 for scipy, over float32 products), else its
    ``.dtype``; ``None`` when it declares neither."""
    declared = getattr(operator, "product_dtype", None)
    return getattr(operator, "dtype", None) if declared is None else declared


def _refuse_complex(dtype: Any, what: str) -> None:
    """One line for an operator whose dtype is complex (casting to float64 dropped the imaginary part with a warning only)."""
    if dtype is not None and dtype.is_complex:
        raise PruningLimitsError(f"{what} must be real (Lanczos needs a real symmetric operator), got dtype {dtype}")


def _as_operator(operator: Any, dim: int | None) -> tuple[Callable[[np.ndarray], Any], int, Any]:
    """``(matvec, dim, dtype)`` for an operator with ``.matvec`` and ``.dim`` or a square ``.shape`` (a
    ``scipy.sparse.linalg.LinearOperator``), a dense or ``scipy.sparse`` matrix, or a callable;
    ``dtype``, that of the products, is a torch dtype (:func:`_torch_dtype`; float64 for a matrix,
    whose products are float64) or ``None`` (an operator that declares none, a callable): an
    operator's ``product_dtype`` where it has one, else its ``.dtype`` (:func:`products_dtype`)."""
    shape = getattr(operator, "shape", None)
    square = _is_square(shape)
    if _has_products(operator):
        dtype = _torch_dtype(products_dtype(operator))
        _refuse_complex(dtype, "the operator")
        size = operator.dim if hasattr(operator, "dim") else shape[0]
        return operator.matvec, check_int("the operator's dim", size, 1), dtype
    if callable(operator):
        if dim is None:
            raise PruningLimitsError("a callable operator needs dim=<its dimension>")
        return operator, check_int("dim", dim, 1), None
    import scipy.sparse

    if scipy.sparse.issparse(operator) and square:  # products A @ V, in float64 for float64 blocks
        dtype = _torch_dtype(operator.dtype)
        _refuse_complex(dtype, "a sparse operator")
        sparse = operator.tocsr()
        if not np.isfinite(sparse.data).all():
            raise PruningLimitsError("a sparse operator must be a finite symmetric matrix, got NaN or infinite entries")
        scale = float(abs(sparse).max()) if sparse.nnz else 0.0
        _check_symmetric(float(abs(sparse - sparse.T).max()) if sparse.nnz else 0.0, scale, dtype, "a sparse operator")
        symmetric = (sparse + sparse.T).astype(np.float64) * 0.5
        return (lambda v: symmetric @ v), check_int("the operator's dim", shape[0], 1), _float64()
    if square:
        dtype = _torch_dtype(getattr(operator, "dtype", None))
        matrix = real_array(operator, "a dense operator")
        scale = float(np.abs(matrix).max()) if matrix.size else 0.0
        asymmetry = float(np.abs(matrix - matrix.T).max(initial=0.0))
        if not np.isfinite(scale):
            raise PruningLimitsError("a dense operator must be a finite symmetric matrix, got NaN or infinite entries")
        _check_symmetric(asymmetry, scale, dtype, "a dense operator")
        if asymmetry > 0:  # rounding's asymmetry removed, as dense_hessian does (a copy only then)
            matrix = matrix + matrix.T
            matrix *= 0.5
        return (lambda v: matrix @ v), check_int("the operator's dim", matrix.shape[0], 1), _float64()
    raise PruningLimitsError(
        "operator must have .matvec and .dim (or a square .shape), be a square matrix, or be a callable with dim=, "
        f"got {describe(operator)}"
    )


def _float64() -> Any:
    """``torch.float64`` (torch imported here, not with the module)."""
    import torch

    return torch.float64


def _is_square(shape: Any) -> bool:
    """Whether ``shape`` is that of a square matrix (a tuple: numpy, scipy, ``torch.Size``)."""
    return isinstance(shape, (tuple, list)) and len(shape) == 2 and shape[0] == shape[1]


def _has_products(operator: Any) -> bool:
    """Whether ``operator`` multiplies by itself: ``.matvec`` and its size, ``.dim`` or a square ``.shape``."""
    return hasattr(operator, "matvec") and (hasattr(operator, "dim") or _is_square(getattr(operator, "shape", None)))


def _check_symmetric(asymmetry: float, scale: float, dtype: Any, what: str) -> None:
    """Refuse a matrix whose ``max|A − Aᵀ|`` exceeds its dtype's tolerance (:data:`DENSE_SYMMETRY_TOL`)."""
    import torch

    eps = torch.finfo(dtype).eps if dtype is not None and dtype.is_floating_point else 0.0
    tol = max(DENSE_SYMMETRY_TOL, float(np.sqrt(eps)) if eps > np.finfo(np.float64).eps else 0.0)
    if asymmetry > tol * scale:
        # Lanczos assumes A = A^T: a non-symmetric matrix gave nodes that are no eigenvalues of it
        raise PruningLimitsError(
            f"{what} must be a finite symmetric matrix, got one with |A - A^T| up to {asymmetry:.3g} against entries "
            f"up to {scale:.3g} (tolerance {tol:.3g} of them for {str(dtype or 'float64').replace('torch.', '')})"
        )


def _as_matmat(operator: Any, matvec: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], Any]:
    """``V -> A V`` for columns: the operator's own ``.matmat`` (batched) when it has one."""
    if hasattr(operator, "matmat") and _has_products(operator):
        return operator.matmat
    if not hasattr(operator, "matvec") and not callable(operator):
        return matvec  # a dense matrix: its ``matrix @ v`` also multiplies blocks of columns

    from .lanczos import _as_float64

    def columns(block: np.ndarray) -> np.ndarray:
        return np.column_stack([_as_float64(matvec(np.ascontiguousarray(v)), block.shape[0]) for v in block.T])

    return columns


def block_basis_dtype(dtype: Any) -> type:
    """The dtype :func:`slq` stores the block rule's basis in for products of ``dtype`` (an
    operator's ``.dtype``, or ``None``): float32 products get a float32 basis, half the memory and
    nothing lost that the products had not lost already (:func:`pruning_limits.lanczos.block_lanczos`,
    docs/theory.md, "A float32 basis"); anything else float64."""
    import torch

    return np.float32 if _torch_dtype(dtype) == torch.float32 else np.float64


#: Ulps of the products' dtype (relative to the largest ``|α| + β``) below which a Lanczos ``β``
#: counts as a breakdown. A float32 Hessian product's rounding error, against float64 products of
#: the same model, measured 0.02-0.10 ulps of ``λ_max`` on digits MLPs (D = 1 184 and 29 600) and
#: 0.3-0.4 on the CIFAR-style ResNet-20 of ``benchmarks/bench_scale.py`` (32 samples): 4 ulps stays
#: ten times above it. The 100 ulps used before ended a run inside a bulk 10⁵ below the outliers
#: and called it exact (docs/theory.md, "Breakdown in float32"). It need not detect an invariant
#: space whose eigenvalues are nearly degenerate: on a dense float32 operator with 4 distinct
#: eigenvalues, two of them 1e-3 apart, rounding amplified by eps/gap kept β at 1.5e-4 of the
#: scale after 4 steps and the Gauss rule ran 37 steps instead of 4 (a review's repro); the rule
#: stayed right (per-cluster weights within 1e-5), at the cost of the extra products.
BREAKDOWN_ULPS = 4


def _breakdown_tol(dtype: Any) -> float:
    """Breakdown tolerance of Lanczos for products computed in ``dtype`` (:data:`BREAKDOWN_ULPS`; 1e-10 for float64)."""
    from .lanczos import DEFAULT_BREAKDOWN_TOL

    import torch

    dtype = _torch_dtype(dtype)
    if dtype is not None and dtype.is_floating_point:
        return max(DEFAULT_BREAKDOWN_TOL, BREAKDOWN_ULPS * torch.finfo(dtype).eps)
    return DEFAULT_BREAKDOWN_TOL


#: Quadrature rules :func:`slq` accepts.
SLQ_RULES = ("auto", "block", "gauss")

#: A monitor passed to :func:`slq` first sees the spectrum after this many steps per probe, then
#: after every further growth by :data:`MONITOR_GROWTH` (at least :data:`MONITOR_MIN_GAP` steps):
#: geometric checkpoints cost a bounded number of quadrature rules (about 15 up to 300 steps;
#: each block rule is an ``eigh`` of up to ``probes × steps`` columns) and let an estimate that
#: oscillates with the step count (docs/theory.md, "SLQ settings") show it between checks.
MONITOR_FIRST_STEP = 10
MONITOR_GROWTH = 1.25
MONITOR_MIN_GAP = 5

#: Constant of :func:`default_probes`: the per-probe spread of ``s*`` times ``√D`` stayed below
#: 0.4 on the digits MLPs of docs/theory.md ("SLQ settings": 0.003-0.008 at D ≈ 1 500-2 400)
#: and shrinks like ``1/√D`` (Chen, Trogdon & Ubaru 2021); ``probes ≥ (0.4/0.001)²/D`` keeps the
#: standard error of ``s*`` over probes near 0.1 points.
PROBES_CONSTANT = 160_000

#: Fewest probes :func:`default_probes` gives: two show the spread between probes.
MIN_PROBES = 2


def default_probes(dim: int) -> int:
    """Probes for an adaptive run at dimension ``D``: ``clip(⌈PROBES_CONSTANT/D⌉, 2, DEFAULT_PROBES)``.

    8 probes (:data:`DEFAULT_PROBES`) up to D = 22 857 (7 from D = 22 858), 2 from D = 80 000:
    at large D one probe already sees the measure (Chen, Trogdon & Ubaru, ICML 2021), and every
    probe multiplies the products. The pipeline reports the observed spread, so too few probes do
    not go unnoticed.
    """
    dim = check_int("dim", dim, 1)
    return int(min(DEFAULT_PROBES, max(MIN_PROBES, -(-PROBES_CONSTANT // dim))))


def monitor_checkpoints(limit: int) -> list[int]:
    """Steps at which :func:`slq` shows a monitor the spectrum, up to ``limit`` (exclusive)."""
    steps, step = [], MONITOR_FIRST_STEP
    while step < limit:
        steps.append(step)
        step = max(step + MONITOR_MIN_GAP, int(np.ceil(step * MONITOR_GROWTH)))
    return steps


def slq(
    operator: Any,
    *,
    iterations: int = DEFAULT_ITERATIONS,
    probes: int = DEFAULT_PROBES,
    seed: int = 0,
    generator: Any = None,
    dim: int | None = None,
    memory_budget: int | None = None,
    rule: str = "auto",
    reorthogonalization: str = "auto",
    monitor: Callable[[Spectrum], bool] | None = None,
    progress: bool = False,
) -> Spectrum:
    """Stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017) of a symmetric operator.

    The probes are normalised Rademacher vectors ``z_j``
    (:func:`pruning_limits.lanczos.rademacher_probes` with the same ``seed``/``generator``).

    - ``rule="gauss"``: ``iterations`` Lanczos steps from each ``z_j`` (all probes in lockstep,
      :func:`pruning_limits.lanczos.lanczos_probes`) give its own Gauss rule
      ``(θ_jk, τ_jk)``; the spectrum is their average over probes. Fully re-orthogonalised
      when all probes' bases fit ``memory_budget``, otherwise without re-orthogonalisation
      (O(D) memory per probe; ``reorthogonalization`` overrides, the spectrum records it).
    - ``rule="block"``: one block Lanczos run from all probes at once, with the same products
      (``iterations`` per probe, applied as ``matmat`` blocks), gives the block Gauss rule: up
      to ``probes × iterations`` nodes shared by all probes, with per-probe weights
      (:func:`pruning_limits.lanczos.block_lanczos`). Per probe it is exact for the same
      polynomials, but it resolves the spectrum ``probes`` times more finely. On the trained
      MLPs of docs/benchmarks.md, ``s*`` at 80 steps was 0.00 points from the exact spectrum's
      against −4.28 with the Gauss rule (D = 2 080), and at 300 steps −0.03 against −0.88
      (D = 9 700). It stores all probes' bases: ``min(probes × iterations, D) × D × 8`` bytes
      (4 bytes a number for an operator whose products are float32: a float32 basis), beside
      its projected matrix ``QᵀAQ`` with the quadrature's copies,
      ``32 × min(probes × iterations, D)²`` bytes (:func:`pruning_limits.lanczos.projection_bytes`),
      and works in five blocks of ``probes × D`` float64 numbers (the probes included,
      ``5 × probes × D × 8`` bytes): all three counted against ``memory_budget``
      (:func:`pruning_limits.lanczos.full_block_lanczos_bytes`; until 2026-12-06 the blocks were
      not, and a budget of the other two peaked at up to 1.51 times it).
      It stops early, with exact quadrature for the probes, when the block Krylov space
      becomes invariant. When the three do not fit ``memory_budget`` the
      block recurrence runs without re-orthogonalisation in ``5 × probes × D × 8`` bytes
      (:func:`pruning_limits.lanczos.plain_block_lanczos_bytes`) plus the same projected matrix
      (``reorthogonalization="none"``; a budget below their sum is an error). On the D = 2 080
      MLP its ``s*`` minus the re-orthogonalised block rule's ranged over −0.53 … +0.34 points
      at 80 steps, −0.44 … −0.14 at 150 and −0.15 … 0.00 at 300 (8 seeds × 8 rounding-sized
      perturbations of the products, ``benchmarks/block_rounding.py``; docs/theory.md,
      "Bounded memory").
    - ``rule="auto"`` (default): ``"block"`` when there is more than one probe, otherwise
      ``"gauss"``.

    Every rule gives the trace of Hutchinson's estimator on the same probes.

    Args:
        operator: a real symmetric operator: anything with ``.matvec`` and ``.dim`` or a
            square ``.shape`` (e.g. :class:`HessianOperator`, a
            ``scipy.sparse.linalg.LinearOperator``; its ``.matmat`` is used when present, and
            its ``product_dtype``, else its ``.dtype``, numpy or torch, sets the rounding Lanczos
            allows: :meth:`HessianOperator.to_linear_operator` declares float64 for scipy and
            the products' dtype as ``product_dtype``), a dense square
            matrix (numpy or torch) or a ``scipy.sparse`` one (asymmetry up to
            :data:`DENSE_SYMMETRY_TOL` of its entries, ``√eps`` in a narrower dtype, removed as
            ``(A + Aᵀ)/2``), or a callable ``v -> A v`` with ``dim=``. Products must be real,
            of shape ``(D,)`` from ``matvec`` and ``(D, k)`` from ``matmat``. Re-orthogonalised,
            both rules refuse an operator they find non-symmetric
            (:func:`pruning_limits.lanczos.block_lanczos`,
            :func:`pruning_limits.lanczos.lanczos_probes`); without re-orthogonalisation the
            block rule checks only blocks of two or more columns and the Gauss rule is not
            checked: symmetry is then the caller's to ensure.
        iterations: Lanczos steps per probe (default :data:`DEFAULT_ITERATIONS`); with a
            ``monitor`` the most steps it may take.
        probes: number of probes (default :data:`DEFAULT_PROBES`).
        seed: seed of the probes; ``generator`` (a ``torch.Generator``) overrides it.
        dim: dimension of a callable operator (an integer >= 1).
        memory_budget: bytes for the Lanczos arrays: the stored vectors and the block rule's
            projected matrix and working blocks (default 1 GiB; a :class:`HessianOperator` holds its caches to a
            budget of its own). The block rule's basis is float32 for an operator whose
            products are float32 (half the bytes), float64 otherwise. The default grows to
            what the rule without re-orthogonalisation needs when that is more
            (``5 × probes × D × 8`` bytes and the projected matrix: from D = 13 277 773, 13.3
            million weights, with two probes and 300 steps), so that no run fails for want of a
            budget it was not given; an explicit budget below that need is an error.
        rule: ``"auto"``, ``"block"`` or ``"gauss"``.
        reorthogonalization: ``"auto"`` (full when the basis, and for the block rule its
            projected matrix and working blocks, fit ``memory_budget``),
            ``"full"`` or ``"none"`` (:func:`pruning_limits.lanczos.lanczos_probes`,
            :func:`pruning_limits.lanczos.block_lanczos`).
        monitor: a stopping criterion: called with the partial :class:`Spectrum` after
            :data:`MONITOR_FIRST_STEP` steps and then at :func:`monitor_checkpoints`; a true
            return ends the run there. When it has a ``status`` attribute (a short text such
            as the current estimate), the progress bar shows it.
        progress: tqdm bar on stderr over all products.

    Returns:
        A :class:`Spectrum` with one row per probe, ``rule``, ``steps`` (Lanczos steps done per
        probe: fewer than ``iterations`` after a breakdown or a monitor's stop),
        ``reorthogonalization`` and ``num_hvps`` (products spent).

    Raises:
        PruningLimitsError: bad arguments, ``reorthogonalization="full"`` whose basis (with the
            block rule's projected matrix and working blocks) exceeds the budget, a budget too small even for
            Lanczos without re-orthogonalisation, a complex or non-symmetric operator, or
            products of the wrong shape.
    """
    from tqdm import tqdm

    from .lanczos import (
        DEFAULT_MEMORY_BUDGET,
        REORTHOGONALIZATIONS,
        block_gauss_quadrature,
        block_lanczos,
        full_block_lanczos_bytes,
        lanczos_probes,
        lanczos_probes_bytes,
        plain_block_lanczos_bytes,
        projection_bytes,
        rademacher_probes,
    )

    matvec, size, dtype = _as_operator(operator, dim)
    iterations = check_int("iterations", iterations, 1)
    probes = check_int("probes", probes, 1)
    if rule not in SLQ_RULES:
        raise PruningLimitsError(f"rule must be one of {', '.join(SLQ_RULES)}, got {rule!r}")
    if reorthogonalization not in REORTHOGONALIZATIONS:
        raise PruningLimitsError(
            f"reorthogonalization must be one of {', '.join(REORTHOGONALIZATIONS)}, got {reorthogonalization!r}"
        )
    if monitor is not None and not callable(monitor):
        raise PruningLimitsError(f"monitor must be callable, got {monitor!r:.60}")
    starts = rademacher_probes(size, probes, generator=seeded_generator(seed, generator))
    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else check_positive("memory_budget", memory_budget)
    steps = min(iterations, size)
    if rule == "auto":
        rule = "block" if probes > 1 else "gauss"
    if memory_budget is None:  # the default never refuses a run: the bounded path's O(D) is the least any run needs
        least = (plain_block_lanczos_bytes(size, probes) + projection_bytes(size, steps, probes) if rule == "block"
                 else lanczos_probes_bytes(size, steps, probes, "none"))
        budget = max(budget, least)
    block_mode = reorthogonalization
    basis_dtype = block_basis_dtype(dtype)
    if rule == "block" and block_mode == "auto":  # the basis, the projected matrix with its quadrature, the blocks
        full = full_block_lanczos_bytes(size, steps, probes, np.dtype(basis_dtype).itemsize)
        block_mode = "full" if full <= budget else "none"
    checkpoints = set(monitor_checkpoints(steps)) if monitor is not None else set()

    with tqdm(total=probes * steps, disable=not progress, file=sys.stderr, desc="SLQ", leave=False) as bar:

        def watch(to_spectrum: Callable[[Any], Spectrum]) -> Callable[[int, Callable[[], Any]], bool] | None:
            if monitor is None:
                return None

            def check(done: int, partial: Callable[[], Any]) -> bool:
                if done not in checkpoints:
                    return False
                stop = bool(monitor(to_spectrum(partial())))
                status = getattr(monitor, "status", None)
                if status:
                    bar.set_postfix_str(str(status), refresh=True)
                return stop

            return check

        if rule == "block":

            def block_spectrum(result: Any) -> Spectrum:
                nodes, weights = block_gauss_quadrature(result)
                rows = [(nodes, row) for row in weights]
                return Spectrum.from_ragged(
                    rows, size, num_hvps=result.num_matvecs, rule="block", steps=result.steps,
                    reorthogonalization=block_mode,
                )

            result = block_lanczos(
                _as_matmat(operator, matvec),
                size,
                steps,
                starts,
                memory_budget=budget,
                breakdown_tol=_breakdown_tol(dtype),
                reorthogonalization=block_mode,
                monitor=watch(block_spectrum),
                progress_bar=bar,
                basis_dtype=basis_dtype,
                product_dtype=dtype,
            )
            return block_spectrum(result)

        def gauss_spectrum(result: Any) -> Spectrum:
            return Spectrum.from_ragged(
                result.rules(), size, num_hvps=result.num_matvecs, rule="gauss", steps=int(result.steps.max()),
                reorthogonalization=result.reorthogonalization,
            )

        result = lanczos_probes(
            _as_matmat(operator, matvec),
            size,
            steps,
            starts,
            memory_budget=budget,
            breakdown_tol=_breakdown_tol(dtype),
            reorthogonalization=reorthogonalization,
            monitor=watch(gauss_spectrum),
            progress_bar=bar,
            product_dtype=dtype,
        )
        return gauss_spectrum(result)


@with_gradients
def estimate_spectrum(
    model: Any,
    data: Any,
    *,
    iterations: int = DEFAULT_ITERATIONS,
    probes: int = DEFAULT_PROBES,
    seed: int = 0,
    generator: Any = None,
    loss_fn: Any = None,
    params: Any = "prunable",
    method: str = "auto",
    memory_budget: int | None = None,
    rule: str = "auto",
    reorthogonalization: str = "auto",
    monitor: Callable[[Spectrum], bool] | None = None,
    progress: bool = False,
) -> Spectrum:
    """SLQ estimate of the spectrum of the loss Hessian over the prunable weights.

    Builds a :class:`pruning_limits.hessian.HessianOperator` for ``(model, data)`` and runs
    :func:`slq` on it. Defaults: :data:`DEFAULT_ITERATIONS` steps and :data:`DEFAULT_PROBES`
    probes (see their justification there).

    Args:
        model, data, loss_fn, params, method: as for :class:`HessianOperator`.
        iterations, probes, seed, generator, rule, reorthogonalization, monitor, progress: as
            for :func:`slq`.
        memory_budget: bytes (default 1 GiB) that the engine's caches and, apart, the Lanczos
            arrays are each held to: the :class:`HessianOperator` gets it and :func:`slq` gets
            it, so the two together may use up to about twice it, beside the model and the
            data. The default block rule needs ``min(probes × iterations, D) × D × 8`` bytes
            for its basis (4 bytes a number for float32 products, whose basis is float32) and
            ``32 × min(probes × iterations, D)²`` for its projected matrix, beside five working
            blocks of ``probes × D × 8`` bytes; above that it runs
            without re-orthogonalisation in ``5 × probes × D × 8`` bytes and the same
            projected matrix; with one probe, or ``rule="gauss"``, one Gauss rule per probe,
            without re-orthogonalisation when the probes' bases do not fit.

    Returns:
        The estimated :class:`Spectrum`; ``num_hvps`` counts every Hessian-vector product.
    """
    from .hessian import DEFAULT_MEMORY_BUDGET, HessianOperator

    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else memory_budget
    operator = HessianOperator(model, data, loss_fn=loss_fn, params=params, method=method, memory_budget=budget)
    spectrum = slq(
        operator,
        iterations=iterations,
        probes=probes,
        seed=seed,
        generator=generator,
        memory_budget=memory_budget,
        rule=rule,
        reorthogonalization=reorthogonalization,
        monitor=monitor,
        progress=progress,
    )
    stopping = {**(spectrum.stopping or {}), "hessian_methods": dict(operator.methods)}  # auto's rule, recorded
    return dataclasses.replace(spectrum, num_hvps=operator.num_hvps, stopping=stopping)


def dense_hessian(operator: Any, *, block_size: int = 64, progress: bool = False) -> np.ndarray:
    """Assemble the dense float64 matrix of ``operator`` block of columns by block.

    Args:
        operator: anything with ``.matmat`` (columns are vectors) and ``.dim``. An operator
            whose ``dtype`` is a torch dtype (:class:`HessianOperator`) receives torch blocks of
            that dtype on its ``device``; any other, float64 numpy blocks (as :func:`slq` gives
            them). It may return torch or numpy ``(dim, k)`` arrays.
        block_size: columns per ``matmat`` call (default 64: large enough to amortise the
            per-call cost, small enough that a block of vectors stays cheap).
        progress: tqdm bar on stderr over the blocks.

    Returns:
        The symmetrised ``(dim, dim)`` float64 array ``(A + Aᵀ)/2``.

    Raises:
        PruningLimitsError: ``operator`` lacks ``.dim`` or ``.matmat``, or a product is not a
            finite real ``(dim, k)`` array.
    """
    import torch
    from tqdm import tqdm

    from .lanczos import _as_float64

    block_size = check_int("block_size", block_size, 1)
    dim = _dense_operator_dim(operator)
    dtype = getattr(operator, "dtype", None)
    device = getattr(operator, "device", None) or torch.device("cpu")
    dense = np.empty((dim, dim))
    starts = range(0, dim, block_size)
    for start in tqdm(starts, disable=not progress, file=sys.stderr, desc="dense Hessian", leave=False):
        stop = min(start + block_size, dim)
        if isinstance(dtype, torch.dtype):
            block = torch.zeros(dim, stop - start, dtype=dtype, device=device)
            block[torch.arange(start, stop), torch.arange(stop - start)] = 1
        else:
            block = np.zeros((dim, stop - start))
            block[np.arange(start, stop), np.arange(stop - start)] = 1
        dense[:, start:stop] = _as_float64(operator.matmat(block), dim, width=stop - start)
    return 0.5 * (dense + dense.T)


def _dense_operator_dim(operator: Any) -> int:
    """``operator.dim`` after checking the operator has ``.dim`` and ``.matmat`` (:func:`dense_hessian`)."""
    if not (hasattr(operator, "dim") and hasattr(operator, "matmat")):
        raise PruningLimitsError(f"operator must have .dim and .matmat (a HessianOperator), got {describe(operator)}")
    return check_int("the operator's dim", operator.dim, 1)


@with_gradients
def exact_spectrum(
    model: Any,
    data: Any,
    *,
    loss_fn: Any = None,
    params: Any = "prunable",
    max_dim: int = DEFAULT_MAX_DIM,
    block_size: int = 64,
    method: str = "auto",
    memory_budget: int | None = None,
    progress: bool = False,
) -> Spectrum:
    """The exact spectrum of the loss Hessian: dense matrix from ``matmat``, ``eigvalsh`` in float64.

    The Hessian is assembled block of columns by block (:func:`dense_hessian`), never with
    ``torch.func.hessian`` over all weights at once (that needs memory for the whole Jacobian
    of the gradient graph).

    Args:
        model, data, loss_fn, params, method: as for :class:`HessianOperator`.
        max_dim: refuse larger dimensions (default :data:`DEFAULT_MAX_DIM`).
        block_size: columns per product block.
        memory_budget: bytes for the engine's caches (default 1 GiB).
        progress: tqdm bar on stderr.

    Returns:
        ``Spectrum.from_eigenvalues`` of all eigenvalues, with ``num_hvps = D``.

    Raises:
        PruningLimitsError: the dimension exceeds ``max_dim``.
    """
    from .hessian import DEFAULT_MEMORY_BUDGET, HessianOperator
    from .objective import prunable_dim

    # refuse before building the engine
    _check_dense_dim(prunable_dim(model, params), max_dim)
    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else memory_budget
    operator = HessianOperator(model, data, loss_fn=loss_fn, params=params, method=method, memory_budget=budget)
    return operator_exact_spectrum(operator, max_dim=max_dim, block_size=block_size, progress=progress)


def operator_exact_spectrum(
    operator: Any, *, max_dim: int = DEFAULT_MAX_DIM, block_size: int = 64, progress: bool = False
) -> Spectrum:
    """:func:`exact_spectrum` of an operator already built (e.g. the one SLQ used).

    Args:
        operator: anything with ``.matmat`` and ``.dim`` (e.g. :class:`HessianOperator`), as
            :func:`dense_hessian` takes it.
        max_dim, block_size, progress: as for :func:`exact_spectrum`.

    Returns:
        ``Spectrum.from_eigenvalues`` of all eigenvalues (``eigvalsh`` of the symmetrised
        float64 matrix), with ``num_hvps = D``.

    Raises:
        PruningLimitsError: the dimension exceeds ``max_dim``, or as :func:`dense_hessian`.
    """
    _check_dense_dim(_dense_operator_dim(operator), max_dim)
    dense = dense_hessian(operator, block_size=block_size, progress=progress)
    return Spectrum.from_eigenvalues(np.linalg.eigvalsh(dense), num_hvps=dense.shape[0])


def _check_dense_dim(dim: int, max_dim: int) -> None:
    max_dim = check_int("max_dim", max_dim, 1)
    if dim > max_dim:
        raise PruningLimitsError(
            f"exact_spectrum needs a dense {dim} x {dim} Hessian, above max_dim={max_dim}: "
            "use estimate_spectrum (SLQ) or raise max_dim"
        )
