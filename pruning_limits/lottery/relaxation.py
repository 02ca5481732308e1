"""Neuron pruning, lower bound: the LP relaxation, its Farkas certificates, cutting planes, bisection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._checks import PruningLimitsError, check_choice
from .error import _circle, sup_error_exact
from .network import MODELS, Stream, check_epsilon, network, relu, target

#: Relative safety margin of the Farkas check: the float64 rounding error of the checked margin
#: is below about (k + d + 4) * 2^-53 times its scale, k the number of rows (< 1e-12 up to 9 000
#: rows), so requiring the margin to be below -1e-9 * scale leaves three orders of magnitude.
FARKAS_TOLERANCE = 1e-9

#: Relative violation below which cutting planes stop: the relaxation is then taken as feasible
#: (this only ends a search; nothing is certified by it).
CUT_TOLERANCE = 1e-7


def candidates(first: np.ndarray, second: np.ndarray, pruning: str) -> tuple[np.ndarray, np.ndarray]:
    """The hidden units a pruned network chooses from: whole neurons, or every masked variant of each.

    ``"neuron"``: the neurons themselves. ``"weight"``: for each neuron, in order, each non-empty
    first-layer mask (binary counting over the inputs): a weight-pruned network is a choice of at
    most one variant per neuron, so the LP over variants (without the "at most one" rows) is a
    relaxation of weight pruning. Used for the model-L control.
    """
    if pruning == "neuron":
        return first, second
    d = first.shape[1]
    masks = np.array([[(k >> j) & 1 for j in range(d)] for k in range(1, 2**d)], dtype=np.float64)
    rows = (first[:, None, :] * masks[None, :, :]).reshape(-1, d)
    return rows, np.repeat(second, masks.shape[0])


def lp_constraints(
    points: np.ndarray, w: np.ndarray, first: np.ndarray, second: np.ndarray, epsilon: float, model: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of the relaxation at ``points``: ``A_up s <= b_up`` and ``A_lo s >= b_lo`` (one row per point each).

    With ``t = <w,x>``, ``r = |x|`` and ``h = A s`` the inner sum:
    model R: ``h <= relu(t) + ε r`` everywhere, and ``h >= t - ε r`` where ``t > ε r`` (there the
    output ReLU must pass ``h`` through); these are exactly ``|f(x) - g(x)| <= ε r``.
    Model L: ``|h - relu(t)| <= ε r`` everywhere. Lower rows that do not apply have ``b_lo = -inf``.
    """
    points = np.atleast_2d(np.asarray(points, dtype=np.float64))
    r = np.linalg.norm(points, axis=1)
    t = points @ w
    A = relu(points @ first.T) * second[None, :]
    b_up = relu(t) + epsilon * r
    if model == "R":
        b_lo = np.where(t > epsilon * r, t - epsilon * r, -np.inf)
    else:
        b_lo = relu(t) - epsilon * r
    return A, b_up, A, b_lo


@dataclass(frozen=True)
class FarkasCertificate:
    """Multipliers proving that the relaxation at ``points`` with the first ``width`` units is infeasible.

    ``y_up >= 0`` on the rows ``A s <= b_up`` and ``y_lo >= 0`` on ``A s >= b_lo``; with
    ``c = A^T (y_up - y_lo)`` every ``s`` in ``[0,1]^n`` satisfying the rows would give
    ``b_up.y_up - b_lo.y_lo >= c.s >= -sum_i max(0, -c_i)``; the certificate's ``margin`` (the
    left minus the right) is negative, a contradiction.
    """

    width: int
    points: np.ndarray
    y_up: np.ndarray
    y_lo: np.ndarray
    margin: float
    scale: float


def farkas_margin(
    points: np.ndarray,
    y_up: np.ndarray,
    y_lo: np.ndarray,
    w: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    epsilon: float,
    model: str,
) -> tuple[float, float]:
    """``(margin, scale)`` of Farkas multipliers: ``margin = b_up.y_up - b_lo.y_lo + sum_i max(0, -c_i)``.

    ``scale = sum_g (y_up,g + y_lo,g)(|b_g| + sum_i |A_gi|)`` bounds every term that enters the
    margin, so its float64 rounding error is below ``(n + d + 4) 2^-53 scale``.
    """
    y_up = np.asarray(y_up, dtype=np.float64)
    y_lo = np.asarray(y_lo, dtype=np.float64)
    if np.any(y_up < 0) or np.any(y_lo < 0) or not (np.all(np.isfinite(y_up)) and np.all(np.isfinite(y_lo))):
        raise PruningLimitsError("Farkas multipliers must be finite and non-negative")
    A, b_up, _, b_lo = lp_constraints(points, w, first, second, epsilon, model)
    if np.any(y_lo[~np.isfinite(b_lo)] != 0):
        raise PruningLimitsError("a Farkas multiplier sits on a lower row that does not exist")
    b_lo = np.where(np.isfinite(b_lo), b_lo, 0.0)
    c = A.T @ (y_up - y_lo)
    margin = float(b_up @ y_up - b_lo @ y_lo + np.sum(relu(-c)))
    row_size = np.sum(np.abs(A), axis=1)
    scale = float(y_up @ (np.abs(b_up) + row_size) + y_lo @ (np.abs(b_lo) + row_size))
    return margin, scale


def check_farkas(cert: FarkasCertificate, w: np.ndarray, first: np.ndarray, second: np.ndarray, epsilon: float, model: str) -> bool:
    """True when the certificate proves infeasibility with the safety margin :data:`FARKAS_TOLERANCE`.

    ``first`` and ``second`` are the candidate units of the stream's first ``cert.width`` neurons
    (:func:`candidates`).
    """
    margin, scale = farkas_margin(cert.points, cert.y_up, cert.y_lo, w, first, second, epsilon, model)
    return bool(scale > 0 and margin < -FARKAS_TOLERANCE * scale)


def _linprog() -> Callable[..., Any]:
    from scipy.optimize import linprog

    return linprog


def farkas_lp(
    points: np.ndarray,
    w: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    epsilon: float,
    model: str,
    width: int | None = None,
) -> tuple[FarkasCertificate | None, np.ndarray | None]:
    """Decide the relaxation at ``points``: a checked Farkas certificate, or a feasible ``s``.

    Solves the primal LP with a maximised slack (HiGHS); if it is infeasible, solves the normalised Farkas
    LP ourselves, ``min b_up.y_up - b_lo.y_lo + 1.p`` s.t. ``p >= -A^T(y_up - y_lo)``,
    ``sum y = 1``, ``y, p >= 0`` (always feasible and bounded; its optimum is negative exactly
    when the primal is infeasible), cleans the multipliers and checks them with
    :func:`check_farkas`. Returns ``(certificate, None)``, ``(None, s)`` or ``(None, None)``
    (the solver's answer could not be confirmed either way). ``width`` is the stream width the
    units come from (default: their number).
    """
    linprog = _linprog()
    n = first.shape[0]
    if n == 0:  # the empty network: the lower row at x = w alone is contradictory (0 >= 1 - ε)
        pts = np.asarray(w, dtype=np.float64)[None, :]
        margin, scale = farkas_margin(pts, np.zeros(1), np.ones(1), w, first, second, epsilon, model)
        cert = FarkasCertificate(0, pts, np.zeros(1), np.ones(1), margin, scale)
        return (cert, None) if check_farkas(cert, w, first, second, epsilon, model) else (None, None)
    A, b_up, _, b_lo = lp_constraints(points, w, first, second, epsilon, model)
    lo_rows = np.isfinite(b_lo)
    A_lo = A[lo_rows]
    A_ub = np.vstack([A, -A_lo])
    b_ub = np.concatenate([b_up, -b_lo[lo_rows]])
    # Primal with a slack δ (maximised, capped at ε): a central feasible point errs less between
    # the points, so the cutting planes need fewer rounds; δ* < 0 means infeasible.
    r = np.linalg.norm(np.atleast_2d(points), axis=1)
    r_rows = np.concatenate([r, r[lo_rows]])
    cost_p = np.zeros(n + 1)
    cost_p[-1] = -1.0
    primal = linprog(
        cost_p,
        A_ub=np.hstack([A_ub, r_rows[:, None]]),
        b_ub=b_ub,
        bounds=[(0.0, 1.0)] * n + [(-1.0, epsilon)],
        method="highs",
    )
    if primal.status != 0:
        return None, None
    if primal.x[-1] >= 0:
        return None, np.asarray(primal.x[:n])
    m_up, m_lo = A.shape[0], A_lo.shape[0]
    cost = np.concatenate([b_up, -b_lo[lo_rows], np.ones(n)])
    # rows: -(A^T y_up - A_lo^T y_lo) - p <= 0
    G = np.hstack([-A.T, A_lo.T, -np.eye(n)])
    eq = np.concatenate([np.ones(m_up + m_lo), np.zeros(n)])[None, :]
    dual = linprog(cost, A_ub=G, b_ub=np.zeros(n), A_eq=eq, b_eq=[1.0], bounds=(0.0, None), method="highs")
    if dual.status != 0 or dual.fun >= 0:
        return None, None
    y = np.maximum(np.asarray(dual.x[: m_up + m_lo]), 0.0)
    y[y < 1e-12 * y.max()] = 0.0
    y_up = y[:m_up]
    y_lo = np.zeros(m_up)
    y_lo[np.flatnonzero(lo_rows)] = y[m_up:]
    support = (y_up > 0) | (y_lo > 0)
    pts = np.atleast_2d(points)[support]
    margin, scale = farkas_margin(pts, y_up[support], y_lo[support], w, first, second, epsilon, model)
    cert = FarkasCertificate(n if width is None else width, pts, y_up[support], y_lo[support], margin, scale)
    if not check_farkas(cert, w, first, second, epsilon, model):
        return None, None
    return cert, None


def initial_points(dim: int, count: int, seed: int) -> np.ndarray:
    """Starting points of the relaxation: equally spaced angles (d = 2), ±1 (d = 1), seeded Gaussian directions (d > 2)."""
    if dim == 1:
        return np.array([[1.0], [-1.0]])
    if dim == 2:
        return _circle(np.linspace(0.0, 2 * np.pi, count, endpoint=False))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]))
    pts = rng.standard_normal((count, dim))
    return pts / np.linalg.norm(pts, axis=1, keepdims=True)


def violated_points(
    w: np.ndarray, first: np.ndarray, second: np.ndarray, epsilon: float, model: str, *, rng: np.random.Generator, top: int
) -> np.ndarray:
    """Points where the network errs by more than ``ε`` (cutting planes): exact arcs (d <= 2), a random sample (d > 2)."""
    d = w.shape[0]
    if d <= 2:
        res = sup_error_exact(w, first, second, model)
        order = np.argsort(-res.arc_values)[:top]
        order = order[res.arc_values[order] > epsilon * (1 + CUT_TOLERANCE)]
        return res.arc_points[order]
    pts = rng.standard_normal((20000, d))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    err = np.abs(target(pts, w) - network(pts, first, second, model))
    order = np.argsort(-err)[:top]
    return pts[order[err[order] > epsilon * (1 + CUT_TOLERANCE)]]


@dataclass
class Relaxation:
    """State of one (stream, ε) relaxation: the points accumulated by cutting planes (valid for every width)."""

    stream: Stream
    epsilon: float
    model: str
    pruning: str = "neuron"
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    max_rounds: int = 60
    lp_solves: int = 0

    def __post_init__(self) -> None:
        if self.points.size == 0:
            d = self.stream.dim
            self.points = initial_points(d, 128 if d == 2 else 64 * d, self.stream.seed)
        self._rng = np.random.default_rng(np.random.SeedSequence([self.stream.seed, 104729]))

    def units(self, width: int) -> tuple[np.ndarray, np.ndarray]:
        return candidates(self.stream.first[:width], self.stream.second[:width], self.pruning)

    def decide(self, width: int) -> FarkasCertificate | None:
        """A checked certificate that width ``width`` cannot reach ε, or ``None`` (no certificate found)."""
        first, second = self.units(width)
        if width == 0:
            first, second = np.zeros((0, self.stream.dim)), np.zeros(0)
        for _ in range(self.max_rounds):
            self.lp_solves += 1
            cert, s = farkas_lp(self.points, self.stream.w, first, second, self.epsilon, self.model, width)
            if cert is not None:
                return cert
            if s is None:
                return None
            new = violated_points(self.stream.w, first, second * s, self.epsilon, self.model, rng=self._rng, top=16)
            if len(new) == 0:
                return None  # the relaxation is feasible on the whole sphere (d <= 2) or the sample
            self.points = np.vstack([self.points, new])
        return None


@dataclass(frozen=True)
class NeuronLowerBound:
    """Certified lower bound on the width (neuron) pruning needs: ``lower_bound = certificate.width + 1``.

    ``reached_width`` is the smallest width at which no certificate was found (bisection bracket);
    ``None`` when even the whole stream was certified (the bound is then the stream width + 1).
    """

    lower_bound: int
    certificate: FarkasCertificate
    reached_width: int | None
    lp_solves: int
    points: np.ndarray


def lp_lower_bound(
    stream: Stream, epsilon: float, model: str = "R", *, pruning: str = "neuron", start: int = 4
) -> NeuronLowerBound:
    """Certified lower bound by LP infeasibility and bisection over the stream width.

    A certificate at width ``n`` is one at every smaller width (dropping columns only lowers the
    margin), so galloping then bisection brackets the largest certified width ``n``; the bound is
    ``n + 1``. Widths where no certificate is found bound the search from above; they are not
    claimed as anything. The search stops at the stream's width (:data:`MAX_WIDTH` in the
    experiment); a bound that reaches it is valid but capped.
    """
    epsilon = check_epsilon(epsilon)
    check_choice("model", model, MODELS)
    check_choice("pruning", pruning, ("neuron", "weight"))
    relax = Relaxation(stream, epsilon, model, pruning)
    best = relax.decide(0)
    if best is None:
        raise PruningLimitsError("internal: the empty network was not certified infeasible")
    lo, hi = 0, min(max(1, start), stream.width)
    while True:
        cert = relax.decide(hi)
        if cert is None:
            break
        best, lo = cert, hi
        if hi == stream.width:  # certified at the whole stream: a valid bound, not a tight one
            return NeuronLowerBound(lo + 1, best, None, relax.lp_solves, relax.points)
        hi = min(2 * hi, stream.width)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        cert = relax.decide(mid)
        if cert is None:
            hi = mid
        else:
            best, lo = cert, mid
    return NeuronLowerBound(lo + 1, best, hi, relax.lp_solves, relax.points)
