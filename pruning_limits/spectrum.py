"""Spectral measures of a symmetric operator: Gauss quadrature nodes and weights per probe.

A :class:`Spectrum` stores, for each probe ``j``, the nodes ``θ_jk`` and weights ``τ_jk`` of
the Gauss quadrature rule that stochastic Lanczos quadrature (SLQ) produces, so that

    ∫ f dμ_H ≈ (1/n_v) Σ_j Σ_k τ_jk f(θ_jk)

(Ubaru, Chen & Saad 2017; Zhang et al. 2024, §5). An exact spectrum is one probe holding all
eigenvalues with weights ``1/D``. Rows shorter than the others (Lanczos breakdown) are padded
with copies of their last node at weight zero, which changes no integral and no extreme value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ._checks import PruningLimitsError, check_positive


class Estimate(NamedTuple):
    """A Monte-Carlo estimate over probes: mean, standard error, and the value of each probe."""

    value: float
    stderr: float
    per_probe: np.ndarray


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Nodes and weights of a spectral measure, one row per probe.

    Attributes:
        nodes: ``(probes, iterations)`` float64 array of Ritz values (or eigenvalues).
        weights: ``(probes, iterations)`` float64 array, each row summing to 1.
        dim: dimension ``D`` of the operator.
        exact: True when the nodes are the exact eigenvalues.
        num_hvps: Hessian-vector products spent to obtain the spectrum.
    """

    nodes: np.ndarray
    weights: np.ndarray
    dim: int
    exact: bool = False
    num_hvps: int = 0

    def __post_init__(self) -> None:
        nodes = np.atleast_2d(np.asarray(self.nodes, dtype=np.float64))
        weights = np.atleast_2d(np.asarray(self.weights, dtype=np.float64))
        if nodes.shape != weights.shape or nodes.size == 0:
            raise PruningLimitsError(
                f"nodes and weights must be non-empty arrays of one shape, got {nodes.shape} and {weights.shape}"
            )
        if not (np.isfinite(nodes).all() and np.isfinite(weights).all()):
            raise PruningLimitsError("spectrum nodes and weights must be finite")
        if (weights < 0).any() or not np.allclose(weights.sum(axis=1), 1.0, atol=1e-8):
            raise PruningLimitsError("spectrum weights must be non-negative and sum to 1 in every row")
        if int(self.dim) < 1:
            raise PruningLimitsError(f"spectrum dim must be >= 1, got {self.dim}")
        nodes.flags.writeable = False
        weights.flags.writeable = False
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "dim", int(self.dim))

    @classmethod
    def from_eigenvalues(cls, eigenvalues: Any, *, num_hvps: int = 0) -> Spectrum:
        """The exact spectral measure ``(1/D) Σ δ_{λ_i}`` of the given eigenvalues."""
        eigs = np.sort(np.asarray(eigenvalues, dtype=np.float64).ravel())
        if eigs.size == 0:
            raise PruningLimitsError("from_eigenvalues needs at least one eigenvalue")
        weights = np.full(eigs.size, 1.0 / eigs.size)
        return cls(eigs[None, :], weights[None, :], eigs.size, exact=True, num_hvps=num_hvps)

    @classmethod
    def from_ragged(
        cls, rows: list[tuple[np.ndarray, np.ndarray]], dim: int, *, num_hvps: int = 0
    ) -> Spectrum:
        """Build from per-probe ``(nodes, weights)`` of possibly different lengths (zero-weight padding)."""
        if not rows:
            raise PruningLimitsError("a spectrum needs at least one probe")
        width = max(len(n) for n, _ in rows)
        nodes = np.empty((len(rows), width))
        weights = np.zeros((len(rows), width))
        for j, (n, w) in enumerate(rows):
            n, w = np.asarray(n, dtype=np.float64), np.asarray(w, dtype=np.float64)
            nodes[j, : len(n)] = n
            nodes[j, len(n) :] = n[-1]
            weights[j, : len(w)] = w
        return cls(nodes, weights, dim, num_hvps=num_hvps)

    @property
    def probes(self) -> int:
        """Number of probes (rows)."""
        return self.nodes.shape[0]

    @property
    def iterations(self) -> int:
        """Number of quadrature nodes per probe (columns)."""
        return self.nodes.shape[1]

    def integrate(self, f: Callable[[np.ndarray], np.ndarray]) -> Estimate:
        """Gauss-quadrature estimate of ``∫ f dμ``, averaged over probes, with its standard error.

        ``f`` is applied to the whole node array at once and must be vectorised.
        """
        per_probe = np.sum(self.weights * np.asarray(f(self.nodes), dtype=np.float64), axis=1)
        return _estimate(per_probe)

    def trace(self) -> Estimate:
        """Estimate of ``tr(H) = D ∫ λ dμ``; with SLQ this is Hutchinson's estimate on the same probes."""
        per_probe = self.dim * np.sum(self.weights * self.nodes, axis=1)
        return _estimate(per_probe)

    def abs_trace(self) -> Estimate:
        """Estimate of ``tr|H| = D ∫ |λ| dμ``."""
        per_probe = self.dim * np.sum(self.weights * np.abs(self.nodes), axis=1)
        return _estimate(per_probe)

    def cdf(self, x: Any) -> np.ndarray:
        """Estimated spectral distribution function ``μ((-∞, x])`` at the points ``x``."""
        points = np.asarray(x, dtype=np.float64)
        flat_nodes, flat_weights = self.nodes.ravel(), self.weights.ravel() / self.probes
        order = np.argsort(flat_nodes, kind="stable")
        cumulative = np.concatenate([[0.0], np.cumsum(flat_weights[order])])
        index = np.searchsorted(flat_nodes[order], points, side="right")
        return np.clip(cumulative[index], 0.0, 1.0)

    def density(self, grid: Any, sigma: float) -> np.ndarray:
        """Gaussian-smoothed density on ``grid`` with bandwidth ``sigma``; for plots only."""
        sigma = check_positive("sigma", sigma)
        grid = np.asarray(grid, dtype=np.float64)
        flat_nodes, flat_weights = self.nodes.ravel(), self.weights.ravel() / self.probes
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
        """Estimated mass of the spectrum at zero: weight of nodes with ``|θ| ≤ tol·max|θ|``."""
        tol = check_positive("tol", tol)
        scale = float(np.abs(self.nodes).max())
        return self.integrate(lambda lam: (np.abs(lam) <= tol * scale).astype(np.float64)).value

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable summary (no node arrays)."""
        trace = self.trace()
        return {
            "dim": self.dim,
            "probes": self.probes,
            "iterations": self.iterations,
            "exact": self.exact,
            "num_hvps": int(self.num_hvps),
            "lambda_max": self.lambda_max,
            "lambda_min": self.lambda_min,
            "trace": trace.value,
            "trace_stderr": trace.stderr,
            "atom_at_zero": self.atom_at_zero(),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record including the node and weight arrays."""
        return {**self.summary(), "nodes": self.nodes.tolist(), "weights": self.weights.tolist()}


def _estimate(per_probe: np.ndarray) -> Estimate:
    n = per_probe.size
    stderr = float(per_probe.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return Estimate(float(per_probe.mean()), stderr, per_probe)
