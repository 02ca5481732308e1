"""The neuron-vs-weight pruning gap, with certificates (THEORY §7; Ferré et al., arXiv 2603.02234).

Setting (ours, because the paper's full text is not at hand; stated in full in docs/gap.md):

- target ``f(x) = relu(<w, x>)``, ``w`` uniform on the unit sphere of ``R^d`` (seeded);
- a *stream* of hidden neurons ``(u_i, v_i)``, ``u_i ~ N(0, I_d)``, ``v_i ~ Uniform[-1, 1]``;
  the random network of width ``n`` is the first ``n`` neurons of the stream, so "the width
  pruning needs" is monotone in ``n`` and found by bisection;
- model ``"R"``: ``g(x) = relu(sum_i v_i relu(<u_i, x>))`` (output ReLU); model ``"L"``:
  ``g(x) = sum_i v_i relu(<u_i, x>)`` (linear output, the control);
- error: ``sup_{|x|=1} |f(x) - g(x)|``. Both sides are positively homogeneous, so the sphere is
  the whole story; at a point ``x`` off the sphere an ``ε``-approximation errs by at most
  ``ε |x|``, which is how every constraint below is written (float grid points are not exactly
  on the sphere).

What is certified, and how it can be re-checked (:func:`check_gap_record`):

- *weight pruning, upper bound*: the subset-sum construction of THEORY §7 gives masks of both
  layers for the first ``n`` neurons; the masked network's error is computed exactly
  (``d <= 2``) or bounded in closed form (``d > 2``, see :func:`separable_error_bound`) and is
  ``<= ε``. The masks are the certificate.
- *neuron pruning, lower bound*: every subset of the first ``n`` neurons is a 0/1 point of the
  LP relaxation written on any finite set of points; a non-negative combination of its
  constraints that is contradictory (a Farkas certificate, :func:`check_farkas`) proves that no
  subset of the first ``n`` neurons reaches ``ε``, so the width needed is ``>= n + 1``.
- *neuron pruning, exact minimum* (``d <= 2``, small widths): a MILP on points refined by
  cutting planes; its feasible answer is a subset whose exact error is ``<= ε`` (checkable); the
  infeasibility of the next smaller width is the MILP solver's claim on a finite point set
  (valid on the sphere because a finite point set only relaxes the problem), not a checkable
  certificate. The record says so.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._checks import PruningLimitsError, check_choice, check_int, check_seed, describe
from ._search import last_true

#: Output models: "R" has an output ReLU (THEORY §7), "L" a linear output (the control).
MODELS = ("R", "L")

#: Default ε ladder of ``pruning-limit gap``: halvings 2^-2 ... 2^-12 (THEORY §7 prototype:
#: neuron bounds 2^-3 ... 2^-12; the gap shows below 2^-9 in d = 2).
DEFAULT_EPSILONS = tuple(2.0**-k for k in range(2, 13))

#: Default ε ladder for model L (the control): 2^-2 ... 2^-8; its widths grow like 1/ε, so the
#: LPs at 2^-12 would need thousands of neurons.
DEFAULT_EPSILONS_L = tuple(2.0**-k for k in range(2, 9))

#: Relative safety margin of the Farkas check. The checked margin's scale is
#: ``sum_g (y_up,g + y_lo,g) (L + ε) |x_g|`` with ``L = |w| + sum_i |v_i| |u_i|`` (a bound on
#: ``|b_g| + sum_i |A_gi|`` that does not shrink where ``<u_i, x>`` or ``<w, x> - ε|x|`` cancels),
#: and the float64 rounding error of the margin is below about ``(k + n + d + 5) 2^-53`` times it,
#: k the number of rows and n of units (< 1e-12 up to 9 000 of them): requiring the margin to be
#: below ``-1e-9 * scale`` leaves three orders of magnitude (:func:`farkas_margin`, docs/gap.md).
FARKAS_TOLERANCE = 1e-9

#: How the stored ``scale`` of a Farkas certificate is defined; records state it (``farkas_scale``).
#: Records written before it was introduced stored ``sum_g (y_up,g + y_lo,g)(|b_g| + sum_i |A_gi|)``
#: (:data:`LEGACY_FARKAS_SCALE`), which does not bound the rounding where ``<u_i, x>`` cancels; their
#: certificates are re-checked against the scale above, their stored ``scale`` against that definition.
FARKAS_SCALE = "sum_g (y_upper_g + y_lower_g) (L + eps) |x_g|, L = |w| + sum_i |v_i| |u_i|"

#: The ``scale`` definition of records that do not state ``farkas_scale``.
LEGACY_FARKAS_SCALE = "sum_g (y_upper_g + y_lower_g) (|b_g| + sum_i |A_gi|)"

#: A model R lower row ``h >= t - ε r`` exists where ``t > ε r``; that is decided in float64, so
#: it is taken only where ``t - ε r > LOWER_ROW_MARGIN (|w| + ε) r``: the rounding of ``t`` and
#: ``ε r`` (below ``(d + 3) 2^-53 (|w| + ε) r``, < 3e-13 up to d = 1 024) cannot then turn a point
#: where the output ReLU need not pass the sum (``t <= ε r`` exactly) into one with a row.
LOWER_ROW_MARGIN = 1e-12

#: The largest ε taken. The empty network's certificate is the lower row at ``x = w``: margin
#: ``-(t - ε r) = -(1 - ε)`` against a scale ``(|w| + ε)|w|``, about 2. At ``ε = 1 - 2^-53`` that row
#: is float64 rounding (a review's internal error); from about ``1 - 2e-9`` on the margin is inside
#: :data:`FARKAS_TOLERANCE` times the scale. ``1 - 1e-8`` leaves a factor 5 over the tolerance
#: and ``1e-8 |w|`` over :data:`LOWER_ROW_MARGIN`.
MAX_EPSILON = 1.0 - 1e-8

#: Neurons of one sign class of one coordinate block that the subset-sum search uses (the first
#: ones of the stream); meet-in-the-middle enumerates 2^(k/2) sums per half, 2^20 at 40.
MAX_SUBSET_ITEMS = 40

#: Relative violation below which cutting planes stop: the relaxation is then taken as feasible
#: (this only ends a search; nothing is certified by it).
CUT_TOLERANCE = 1e-7

#: Smallest stream width of the experiment (:func:`stream_width`); the bisections search the
#: stream they are given, and a search that needs more says so.
MIN_STREAM_WIDTH = 4096

#: Stream neurons per input dimension (:func:`stream_width`): the construction serves
#: coordinate ``i mod d`` with neuron ``i``, so ``d`` times more classes need ``d`` times more
#: neurons. Every (coordinate, sign) class held its :data:`MAX_SUBSET_ITEMS` neurons from 80 d
#: to 110 d on (seeds 0-4, d = 1, 2, 8, 16, 32), so at 128 d the construction is limited by its
#: items per class, not by the stream (docs/gap.md, "How far the stream reaches").
STREAM_NEURONS_PER_DIM = 128


def stream_width(dim: int) -> int:
    """Width of the experiment's stream in dimension ``d``: ``max(MIN_STREAM_WIDTH, 128 d)``.

    Raises:
        PruningLimitsError: ``dim`` is not an integer >= 1.
    """
    return max(MIN_STREAM_WIDTH, STREAM_NEURONS_PER_DIM * check_int("dim", dim, 1))


def epsilon_text(epsilon: float) -> str:
    """ε as it is shown, exactly: ``2^-k`` for a power of two, else the shortest decimal of the float.

    ``0.9999999`` stays ``0.9999999`` (``f"{eps:g}"`` showed ``1``), ``0.25`` is ``2^-2``.
    """
    value = float(epsilon)
    mantissa, exponent = math.frexp(value)
    if mantissa == 0.5:  # an exact power of two
        return f"2^{exponent - 1}"
    return repr(value)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


# ----------------------------------------------------------------------------- the stream


@dataclass(frozen=True)
class Stream:
    """The target and the first ``width`` neurons of one seeded stream.

    Attributes:
        seed: the seed of the stream.
        w: target direction, shape ``(d,)``, unit norm.
        first: first-layer rows ``u_i``, shape ``(width, d)``.
        second: second-layer weights ``v_i``, shape ``(width,)``.
    """

    seed: int
    w: np.ndarray
    first: np.ndarray
    second: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.w.shape[0])

    @property
    def width(self) -> int:
        return int(self.second.shape[0])


def make_stream(dim: int, seed: int, width: int) -> Stream:
    """Draw the target and the first ``width`` neurons of the stream ``seed`` (THEORY §7).

    Three independent generators (``numpy.random.SeedSequence(seed).spawn(3)``) draw ``w``, the
    rows ``u_i`` and the weights ``v_i``; each draws its values in order, so the stream of width
    ``m < n`` is the first ``m`` neurons of the stream of width ``n``.
    """
    dim = check_int("dim", dim, 1)
    seed = check_seed("seed", seed)
    width = check_int("width", width, 0)
    rng_w, rng_u, rng_v = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    w = rng_w.standard_normal(dim)
    w /= np.linalg.norm(w)
    first = rng_u.standard_normal((width, dim))
    second = rng_v.uniform(-1.0, 1.0, width)
    return Stream(seed=seed, w=w, first=first, second=second)


def network(x: np.ndarray, first: np.ndarray, second: np.ndarray, model: str = "R") -> np.ndarray:
    """The two-layer network at points ``x`` (rows): ``relu(relu(x U^T) v)`` (R) or without the outer relu (L)."""
    inner = relu(np.atleast_2d(x) @ np.asarray(first).T) @ np.asarray(second)
    return relu(inner) if model == "R" else inner


def target(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return relu(np.atleast_2d(x) @ np.asarray(w))


# ----------------------------------------------------------------------------- sup error


@dataclass(frozen=True)
class SupError:
    """Exact sup error on the unit circle and where it is attained (arc by arc, for cutting planes).

    Attributes:
        value: ``max |f - g|`` on the sphere.
        point: a point of the sphere where it is attained.
        arc_points: one maximiser per linear piece (rows, unit norm).
        arc_values: ``|f - g|`` at those points.
    """

    value: float
    point: np.ndarray
    arc_points: np.ndarray
    arc_values: np.ndarray


def _circle(theta: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(theta), np.sin(theta)], axis=-1)


def sup_error_exact(w: np.ndarray, first: np.ndarray, second: np.ndarray, model: str = "R") -> SupError:
    """``sup_{|x|=1} |relu(<w,x>) - g(x)|`` exactly, for ``d = 1`` (two points) and ``d = 2``.

    In ``d = 2`` every function involved is piecewise linear in ``x``: between consecutive
    breakpoints on the circle (the zeros of ``<w,x>``, of every ``<u_i,x>`` and, for model R, of
    the inner sum) the error is ``a cos θ + b sin θ``, whose maximum modulus on the arc is at an
    end or at ``atan2(b, a)`` or its antipode. Everything is evaluated in float64, so "exact"
    means up to float64 rounding (about 1e-15 relative).

    Raises:
        PruningLimitsError: ``d > 2`` (use :func:`certified_error`) or mismatched shapes.
    """
    w, first, second = _check_network(w, first, second, model)
    d = w.shape[0]
    if d == 1:
        pts = np.array([[1.0], [-1.0]])
        vals = np.abs(target(pts, w) - network(pts, first, second, model))
        k = int(np.argmax(vals))
        return SupError(float(vals[k]), pts[k], pts, vals)
    if d != 2:
        raise PruningLimitsError(f"the exact sup error needs d = 1 or 2, got d = {d}; use certified_error")
    keep = (second != 0) & np.any(first != 0, axis=1)
    first, second = first[keep], second[keep]
    two_pi = 2.0 * np.pi
    normals = np.vstack([w[None, :], first])
    base = np.arctan2(normals[:, 1], normals[:, 0])
    angles = np.concatenate([base + np.pi / 2, base - np.pi / 2, [0.0, two_pi]])
    angles = np.unique(np.mod(angles, two_pi))
    angles = np.unique(np.concatenate([angles, [0.0, two_pi]]))

    def pieces(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo, hi = theta[:-1], theta[1:]
        ok = hi > lo
        lo, hi = lo[ok], hi[ok]
        mid = _circle(0.5 * (lo + hi))
        active = (mid @ first.T) > 0  # (arcs, n)
        inner = (active * second) @ first  # (arcs, 2): the inner sum is <inner, x> on the arc
        return lo, hi, inner

    lo, hi, inner = pieces(angles)
    if model == "R":  # the output ReLU's kinks: zeros of <inner, x> inside an arc
        phi = np.arctan2(inner[:, 1], inner[:, 0])
        extra = []
        for shift in (np.pi / 2, -np.pi / 2):
            cand = lo + np.mod(phi + shift - lo, two_pi)
            inside = (cand > lo) & (cand < hi) & np.any(inner != 0, axis=1)
            extra.append(cand[inside])
        angles = np.unique(np.concatenate([angles, *extra]))
        lo, hi, inner = pieces(angles)
    mid = _circle(0.5 * (lo + hi))
    f_coef = np.where((mid @ w)[:, None] > 0, w[None, :], 0.0)
    g_coef = inner
    if model == "R":
        g_coef = np.where(np.sum(mid * inner, axis=1)[:, None] > 0, inner, 0.0)
    e = f_coef - g_coef  # error = <e, x> on the arc
    cand_theta = [lo, hi]
    peak = np.arctan2(e[:, 1], e[:, 0])
    for p in (peak, peak + np.pi):
        c = lo + np.mod(p - lo, two_pi)
        cand_theta.append(np.where(c < hi, c, lo))
    thetas = np.stack(cand_theta, axis=1)  # (arcs, 4)
    pts = _circle(thetas)  # (arcs, 4, 2)
    vals = np.abs(np.einsum("akj,aj->ak", pts, e))
    best = np.argmax(vals, axis=1)
    arc_vals = vals[np.arange(len(best)), best]
    arc_pts = pts[np.arange(len(best)), best]
    k = int(np.argmax(arc_vals))
    return SupError(float(arc_vals[k]), arc_pts[k], arc_pts, arc_vals)


def _check_network(w: Any, first: Any, second: Any, model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    check_choice("model", model, MODELS)
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64).reshape(-1)
    if first.ndim != 2 or first.shape[1] != w.shape[0] or first.shape[0] != second.shape[0]:
        raise PruningLimitsError(
            f"expected first-layer rows of length d = {w.shape[0]} and one second-layer weight per row, "
            f"got shapes {first.shape} and {second.shape}"
        )
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(first)) and np.all(np.isfinite(second))):
        raise PruningLimitsError("network weights must be finite")
    return w, first, second


def separable_error_bound(w: np.ndarray, first: np.ndarray, second: np.ndarray) -> float | None:
    """Closed-form bound on the model-R sup error of a network whose rows have one non-zero entry.

    Such a network's inner sum is ``h(x) = sum_j P_j relu(x_j) + Q_j relu(-x_j)``, so
    ``<w,x> - h(x) = sum_j φ_j(x_j)`` with ``φ_j(t) = (w_j - P_j) t`` for ``t > 0`` and
    ``(w_j + Q_j) t`` for ``t < 0``; its sup over the sphere is ``|m|_2`` with
    ``m_j = max(0, w_j - P_j, -(w_j + Q_j))`` (and ``|m'|_2`` for the other sign), exactly.
    Since ``relu`` is 1-Lipschitz, ``|f - g| <= |<w,x> - h(x)|``: the returned value bounds the
    model-R error in every dimension. ``None`` when some kept row has two non-zero entries.
    """
    w, first, second = _check_network(w, first, second, "R")
    kept = (second != 0) & np.any(first != 0, axis=1)
    rows, vals = first[kept], second[kept]
    if np.any(np.count_nonzero(rows, axis=1) > 1):
        return None
    d = w.shape[0]
    P = np.zeros(d)
    Q = np.zeros(d)
    for row, v in zip(rows, vals):
        j = int(np.flatnonzero(row)[0])
        if row[j] > 0:
            P[j] += v * row[j]
        else:
            Q[j] += v * -row[j]
    m_plus = np.maximum.reduce([np.zeros(d), w - P, -(w + Q)])
    m_minus = np.maximum.reduce([np.zeros(d), P - w, w + Q])
    return float(max(np.linalg.norm(m_plus), np.linalg.norm(m_minus)))


#: The largest input dimension :func:`gap_experiment` and :func:`check_gap_record` take. With
#: 4 096 neurons the construction reached the default ladder (2^-12) for seeds 0-4 up to d = 80,
#: for none from d = 96, and no ε <= 0.5 from d = 300; with :func:`stream_width` (128 d) seed 0
#: reaches 2^-12 at d = 64, 96, 128 and 192. The record grows like d^2: at d = 128 the default
#: weight-only run (5 seeds) wrote 176 MB and peaked at 1.3 GB (docs/gap.md, "How far the
#: stream reaches"), so d stops there.
MAX_DIM = 128

#: Model L's largest d: its LP bounds weight pruning over the 2^d - 1 masks of every neuron.
MODEL_L_MAX_DIM = 4


#: The largest d :func:`check_gap_record` re-checks: the experiment's limit until 2026-12-05, so
#: that records written before :data:`MAX_DIM` was lowered to 128 can still be checked. Weight
#: limits (:data:`WEIGHT_LIMITS`) came with that change, so a record holds them only up to
#: :data:`MAX_DIM`; one claimed above it is refused before its construction is rerun.
CHECK_MAX_DIM = 1024


def _dim_problem(dim: int, model: str, max_dim: int = MAX_DIM) -> str | None:
    """Why ``dim`` is out of reach for ``model`` (``max_dim``, :data:`MODEL_L_MAX_DIM`), or ``None``."""
    if dim > max_dim:
        return f"dim must be at most {max_dim}, got {dim}"
    if model == "L" and dim > MODEL_L_MAX_DIM:
        return f"model L holds d <= {MODEL_L_MAX_DIM} (its LP covers the 2^d - 1 masks of every neuron), got d = {dim}"
    return None

#: The most points :func:`cube_grid` lays out (about 0.2 GB of float64 at d = 4): a record asking
#: for more is refused in one line, not computed for minutes into gigabytes.
MAX_GRID_POINTS = 5_000_000


def cube_grid(dim: int, per_axis: int) -> tuple[np.ndarray, float]:
    """Points of the cube surface ``{|y|_inf = 1}`` on a grid of ``per_axis`` values per axis, projected to the sphere.

    Returns the unit points and a covering radius ``δ = (h/2) sqrt(d-1)``, ``h = 2/(per_axis-1)``:
    every unit ``x`` lies on a face of the cube after scaling by ``1/|x|_inf``, within
    ``(h/2) sqrt(d-1)`` of a grid point of that face, and the radial projection onto the sphere
    is 1-Lipschitz outside the unit ball.
    """
    dim = check_int("dim", dim, 2)
    per_axis = check_int("per_axis", per_axis, 2)
    points = 2 * dim * per_axis ** (dim - 1)
    if points > MAX_GRID_POINTS:  # a hand-made record at d = 7 asked for 9.6 GiB
        raise PruningLimitsError(
            f"a grid certificate in d = {dim} needs {points:.3g} points, above {MAX_GRID_POINTS:.0e}: too large to certify here"
        )
    axis = np.linspace(-1.0, 1.0, per_axis)
    mesh = np.stack(np.meshgrid(*([axis] * (dim - 1)), indexing="ij"), axis=-1).reshape(-1, dim - 1)
    faces = []
    for j in range(dim):
        for sign in (1.0, -1.0):
            faces.append(np.insert(mesh, j, sign, axis=1))
    pts = np.unique(np.vstack(faces), axis=0)
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    h = 2.0 / (per_axis - 1)
    return pts, 0.5 * h * math.sqrt(dim - 1)


def certified_error(
    w: np.ndarray, first: np.ndarray, second: np.ndarray, model: str = "R", *, grid_per_axis: int = 33
) -> tuple[float, str]:
    """An upper bound on the sup error that is certified, and how it was obtained.

    ``d <= 2``: the exact value (:func:`sup_error_exact`), kind ``"exact"``. ``d > 2``, model R
    and one non-zero per kept row (the weight-pruning construction): the closed form of
    :func:`separable_error_bound`, kind ``"separable-bound"``. Otherwise: the maximum over the
    projected cube grid of :func:`cube_grid` plus ``L δ``, ``L = |w| + sum_i |v_i| |u_i|`` a
    Lipschitz constant of the error on ``R^d``, kind ``"grid+lipschitz(per_axis=..)"``.
    """
    w, first, second = _check_network(w, first, second, model)
    d = w.shape[0]
    if d <= 2:
        return sup_error_exact(w, first, second, model).value, "exact"
    if model == "R":
        bound = separable_error_bound(w, first, second)
        if bound is not None:
            return bound, "separable-bound"
    pts, delta = cube_grid(d, grid_per_axis)
    lipschitz = float(np.linalg.norm(w) + np.sum(np.abs(second) * np.linalg.norm(first, axis=1)))
    worst = float(np.max(np.abs(target(pts, w) - network(pts, first, second, model))))
    return worst + lipschitz * delta, f"grid+lipschitz(per_axis={grid_per_axis})"


# ----------------------------------------------------------------------------- weight pruning


def closest_subset_sum(values: np.ndarray, goal: float) -> tuple[float, np.ndarray]:
    """The subset of ``values`` whose sum is closest to ``goal``, exactly, by meet-in-the-middle.

    Returns the sum and a boolean mask. Enumerates ``2^ceil(k/2)`` sums per half and searches the
    sorted second half for each sum of the first: exact for any ``k`` (float64 sums).
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    k = values.shape[0]
    if k > MAX_SUBSET_ITEMS:  # 2^(k/2) sums per half: 2^20 at 40
        raise PruningLimitsError(f"subset-sum search over at most {MAX_SUBSET_ITEMS} values (MAX_SUBSET_ITEMS), got {k}")
    half = k // 2
    a_vals, b_vals = values[:half], values[half:]

    def all_sums(vals: np.ndarray) -> np.ndarray:
        sums = np.zeros(1)
        for v in vals:
            sums = np.concatenate([sums, sums + v])
        return sums  # index bit t set <=> vals[t] used

    sa, sb = all_sums(a_vals), all_sums(b_vals)
    order = np.argsort(sb, kind="stable")
    sb_sorted = sb[order]
    need = goal - sa
    pos = np.searchsorted(sb_sorted, need)
    best_err, best = math.inf, (0, 0)
    for cand in (pos - 1, pos):
        c = np.clip(cand, 0, len(sb_sorted) - 1)
        err = np.abs(need - sb_sorted[c])
        i = int(np.argmin(err))
        if err[i] < best_err:
            best_err, best = float(err[i]), (i, int(order[c[i]]))
    ia, ib = best
    mask = np.zeros(k, dtype=bool)
    mask[:half] = [(ia >> t) & 1 for t in range(half)]
    mask[half:] = [(ib >> t) & 1 for t in range(k - half)]
    return float(np.sum(values[mask])), mask


@functools.lru_cache(maxsize=1 << 14)
def _cached_subset_sum(values: bytes, goal: float) -> tuple[float, bytes]:
    total, mask = closest_subset_sum(np.frombuffer(values, dtype=np.float64), goal)
    return total, mask.tobytes()


def _class_subset_sum(values: np.ndarray, goal: float) -> tuple[float, np.ndarray]:
    """:func:`closest_subset_sum`, cached by the exact float64 values and goal (a pure function of them)."""
    total, mask = _cached_subset_sum(np.ascontiguousarray(values, dtype=np.float64).tobytes(), goal)
    return total, np.frombuffer(mask, dtype=bool)


@dataclass(frozen=True)
class WeightCertificate:
    """A weight-pruned subnetwork of the first ``width`` neurons whose sup error is ``<= ε``.

    Attributes:
        width: stream width ``n`` (the certified upper bound on the width weight pruning needs).
        first_mask: 0/1 mask of the first layer, shape ``(width, d)`` (1 = kept).
        second_mask: 0/1 mask of the second layer, shape ``(width,)``.
        error: the certified sup error of the masked network.
        error_kind: ``"exact"`` (d <= 2) or ``"separable-bound"`` (d > 2).
        construction_bound: the construction's own bound ``sqrt(sum_j max(|w_j - P_j|, |w_j + Q_j|)^2)``.
    """

    width: int
    first_mask: np.ndarray
    second_mask: np.ndarray
    error: float
    error_kind: str
    construction_bound: float


def subset_sum_construction(stream: Stream, width: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Masks of the THEORY §7 construction on the first ``width`` neurons, and its error bound.

    Neuron ``i`` serves coordinate ``j = i mod d`` and is pruned to its single input weight
    ``u_ij``: it computes ``u_ij relu(x_j)`` (``u_ij > 0``) or ``|u_ij| relu(-x_j)``. Among the
    first :data:`MAX_SUBSET_ITEMS` neurons of each (coordinate, sign) class, the subset whose
    ``sum v_i |u_ij|`` is closest to ``w_j`` (positive class, coefficient ``P_j``) or ``-w_j``
    (negative class, ``Q_j``) is kept. The inner sum is then ``<w,x>`` up to
    ``sum_j (w_j - P_j) relu(x_j) - (w_j + Q_j) relu(-x_j)``, whose sup on the sphere is at most
    ``sqrt(sum_j max(|w_j - P_j|, |w_j + Q_j|)^2)`` (returned; non-increasing in ``width``, so
    bisection over the width is exact for the construction).

    A class whose members did not change since an earlier call (same values, same goal) reuses
    that call's search (:func:`_class_subset_sum`, cached): galloping, bisection and the scan
    of :func:`weight_pruning_width` rerun the construction at many widths, and a width adds a
    neuron to one class at most.
    """
    d = stream.dim
    first = stream.first[:width]
    second = stream.second[:width]
    first_mask = np.zeros((width, d), dtype=np.int8)
    second_mask = np.zeros(width, dtype=np.int8)
    dev = np.zeros(d)
    for j in range(d):
        block = np.arange(j, width, d)  # the neurons serving coordinate j
        for sign, goal in ((1.0, stream.w[j]), (-1.0, -stream.w[j])):
            members = block[np.sign(first[block, j]) == sign][:MAX_SUBSET_ITEMS]
            values = second[members] * np.abs(first[members, j])
            total, chosen = _class_subset_sum(values, float(goal))
            dev[j] = max(dev[j], abs(goal - total))
            kept = members[chosen]
            first_mask[kept, j] = 1
            second_mask[kept] = 1
    return first_mask, second_mask, float(np.linalg.norm(dev))


#: The limits a weight cell without a width names in its ``status`` (:class:`WeightUnreachable`).
WEIGHT_LIMITS = ("stream-width-limit", "items-per-class-limit", "certified-error-limit")


class WeightUnreachable(PruningLimitsError):
    """The construction does not reach ε within the stream: a limit of the setting, named in one line.

    Attributes:
        status: the line, starting with one of :data:`WEIGHT_LIMITS`; it names the limit, d and ε.
        stream_width: the width of the stream searched.
        bound: the construction's bound at that width.
    """

    def __init__(self, status: str, stream_width: int, bound: float) -> None:
        super().__init__(status)
        self.status = status
        self.stream_width = stream_width
        self.bound = bound


def saturation_width(stream: Stream) -> int | None:
    """The width from which every (coordinate, sign) class holds :data:`MAX_SUBSET_ITEMS` neurons of ``stream``.

    From that width on :func:`subset_sum_construction` no longer changes (it reads the first
    :data:`MAX_SUBSET_ITEMS` neurons of each class), so a wider stream cannot lower its bound.
    ``None`` when some class holds fewer within the stream.
    """
    d = stream.dim
    full = 0
    for j in range(d):
        block = np.arange(j, stream.width, d)
        for sign in (1.0, -1.0):
            members = block[np.sign(stream.first[block, j]) == sign]
            if len(members) < MAX_SUBSET_ITEMS:
                return None
            full = max(full, int(members[MAX_SUBSET_ITEMS - 1]) + 1)
    return full


def construction_changes(stream: Stream, start: int, stop: int) -> list[int]:
    """The widths ``n`` in ``(start, stop]`` at which :func:`subset_sum_construction` can differ from width ``n - 1``.

    Those where neuron ``n - 1`` joins a (coordinate, sign) class that holds fewer than
    :data:`MAX_SUBSET_ITEMS` neurons of the first ``n - 1``; at any other width the construction
    reads the same members, so its masks are those of width ``n - 1`` with a zero row added, and
    its masked network, bound and certified error are the same. Sorted; none from
    :func:`saturation_width` on.
    """
    d = stream.dim
    out: list[int] = []
    for j in range(d):
        block = np.arange(j, min(stop, stream.width), d)
        for sign in (1.0, -1.0):
            members = block[np.sign(stream.first[block, j]) == sign][:MAX_SUBSET_ITEMS]
            out.extend(int(i) + 1 for i in members if i + 1 > start)
    return sorted(out)


def weight_limit_status(stream: Stream, epsilon: float, bound: float) -> str:
    """The ``status`` of a weight cell whose ε the construction's ``bound`` at the whole stream does not reach.

    ``items-per-class-limit`` when every class already holds its :data:`MAX_SUBSET_ITEMS`
    neurons (:func:`saturation_width`; a wider stream would not help), else
    ``stream-width-limit`` (a wider stream could reach ε).
    """
    d, width, eps = stream.dim, stream.width, epsilon_text(epsilon)
    full = saturation_width(stream)
    if full is None:
        return (
            f"stream-width-limit: in d = {d} the construction's bound with all {width} neurons of the stream is "
            f"{bound!r} > ε = {eps}; some (coordinate, sign) class holds fewer than {MAX_SUBSET_ITEMS} neurons, "
            "so a wider stream could reach ε"
        )
    return (
        f"items-per-class-limit: in d = {d} the construction takes at most {MAX_SUBSET_ITEMS} neurons per "
        f"(coordinate, sign) class, every class holds them from width {full} on, and its bound stops at "
        f"{bound!r} > ε = {eps}; a wider stream would not help"
    )


def weight_pruning_width(stream: Stream, epsilon: float, *, start: int | None = None) -> WeightCertificate:
    """Smallest stream width at which :func:`subset_sum_construction` reaches ``ε`` (bisection), certified.

    The construction's bound is non-increasing in the width, so galloping then bisection finds
    its smallest width exactly. The galloping starts at ``start`` (the width of a larger ε) and
    doubles its step, ``2d`` first: widths grow by about ``2d`` per halving of ε, and a step
    that doubled the width itself ran the construction far past the answer, where its classes
    are fullest and a run costs most (2^20 sums per half at 40 items). It stops at the width
    where every class is full (:func:`saturation_width`): the bound no longer changes there.
    The masked network's error is then computed independently (:func:`certified_error`) and
    must be ``<= ε`` (strictly, the test :func:`check_gap_record` applies). Should rounding put
    it above ε, the next widths at which the construction changes are tried
    (:func:`construction_changes`: at most ``2d`` :data:`MAX_SUBSET_ITEMS` of them, none from
    the saturation width on); at every other width the masked network is the same, and so is
    its error. The certificate's width is that of the last neuron its masks keep (the width
    found, unless float64 ties let the construction keep none of the neurons its last width
    added), so :func:`check_gap_record` can require the last row of the masks to be used.

    Raises:
        WeightUnreachable: no width up to the stream's reaches ``ε``; its ``status`` names the
            limit (:func:`weight_limit_status`; ``certified-error-limit`` when only float64
            rounding of the certified error stands in the way).
        PruningLimitsError: ``ε`` outside ``(0,`` :data:`MAX_EPSILON` ``]``.
    """
    epsilon = check_epsilon(epsilon)
    d = stream.dim
    limit = stream.width

    def bound_at(n: int) -> float:
        return subset_sum_construction(stream, n)[2]

    full = saturation_width(stream)  # from there on the construction, and its bound, stay as they are
    lo = 0  # the construction fails at width 0 (error |w| = 1 > ε)
    hi = min(max(2 * d, start or 2 * d), limit)
    step = 2 * d
    while True:
        bound = bound_at(hi)
        if bound <= epsilon:
            break
        if hi >= limit or (full is not None and hi >= full):  # the bound at the whole stream
            raise WeightUnreachable(weight_limit_status(stream, epsilon, bound), limit, bound)
        lo, hi, step = hi, min(hi + step, limit), 2 * step
    # the first width that works: one past the last that fails in [lo, hi) (ok fails at lo, holds at hi)
    hi = 1 + last_true(lo, hi, lambda n: not bound_at(n) <= epsilon)
    # The certified error is at most the construction's bound up to float64 rounding; the test is
    # the strict ``err <= ε`` of :func:`check_gap_record`. A width whose error rounds above ε is
    # passed over for the next width at which the construction changes; past the last one (the
    # saturation width, or the end of the stream) no width can do better.
    for n in [hi, *construction_changes(stream, hi, limit)]:
        first_mask, second_mask, bound = subset_sum_construction(stream, n)
        if not bound <= epsilon:  # non-increasing: cannot happen past hi
            continue
        err, kind = certified_error(stream.w, stream.first[:n] * first_mask, stream.second[:n] * second_mask, "R")
        if err <= epsilon:
            kept = np.flatnonzero((second_mask != 0) & np.any(first_mask != 0, axis=1))
            used = int(kept[-1]) + 1 if kept.size else n  # the same network on its first `used` neurons
            return WeightCertificate(used, first_mask[:used], second_mask[:used], err, kind, bound)
    # ``bound`` is now the construction's at the last width where it changes, hence at the whole stream
    if full is not None:
        reach = (
            f"up to width {full}, from which every (coordinate, sign) class holds its {MAX_SUBSET_ITEMS} neurons "
            "and the construction no longer changes; a wider stream would not help"
        )
    else:
        reach = f"up to all {limit} neurons of the stream"
    raise WeightUnreachable(
        f"certified-error-limit: in d = {d} the construction's bound reaches ε = {epsilon_text(epsilon)} from width "
        f"{hi} on, but the certified error of its masked network stays above ε (float64 rounding) at every width "
        f"where the construction changes, {reach}",
        limit,
        bound,
    )


#: The range of ε as the error messages state it.
EPSILON_RANGE = "0 < ε <= 1 - 1e-8"


def check_epsilon(epsilon: Any) -> float:
    """ε must be a number with ``0 < ε <=`` :data:`MAX_EPSILON`: the target's own sup is 1, and closer to 1 float64 rounding decides the certificates.

    Raises:
        PruningLimitsError: in one line, stating the range and what came.
    """
    try:
        value = float(epsilon)
    except (TypeError, ValueError):
        raise PruningLimitsError(f"ε must be a number with {EPSILON_RANGE}, got {describe(epsilon)}") from None
    if not (0.0 < value <= MAX_EPSILON) or not math.isfinite(value):
        raise PruningLimitsError(
            f"ε must satisfy {EPSILON_RANGE} (the target's sup is 1; closer to 1, float64 rounding decides "
            f"the certificates), got {value!r}"
        )
    return value


# ----------------------------------------------------------------------------- neuron pruning: LP


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


def has_lower_row(t: Any, r: Any, w_norm: float, epsilon: float) -> Any:
    """Whether model R has the lower row ``h >= t - ε r`` at a point with ``t = <w, x>``, ``r = |x|`` (float64).

    The row holds where ``t > ε r`` exactly; ``t - ε r > LOWER_ROW_MARGIN (|w| + ε) r`` in float64
    implies it, because the rounding of ``t`` and ``ε r`` stays below ``(d + 3) 2^-53 (|w| + ε) r``
    (:data:`LOWER_ROW_MARGIN`). Elementwise on arrays.
    """
    return (t - epsilon * r) > LOWER_ROW_MARGIN * (w_norm + epsilon) * r


def lp_constraints(
    points: np.ndarray, w: np.ndarray, first: np.ndarray, second: np.ndarray, epsilon: float, model: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of the relaxation at ``points``: ``A_up s <= b_up`` and ``A_lo s >= b_lo`` (one row per point each).

    With ``t = <w,x>``, ``r = |x|`` and ``h = A s`` the inner sum:
    model R: ``h <= relu(t) + ε r`` everywhere, and ``h >= t - ε r`` where ``t > ε r`` (there the
    output ReLU must pass ``h`` through); these are exactly ``|f(x) - g(x)| <= ε r``.
    Model L: ``|h - relu(t)| <= ε r`` everywhere. Lower rows that do not apply have ``b_lo = -inf``;
    in model R "``t > ε r``" is decided with the float64 margin :data:`LOWER_ROW_MARGIN`
    (:func:`has_lower_row`).
    """
    points = np.atleast_2d(np.asarray(points, dtype=np.float64))
    r = np.linalg.norm(points, axis=1)
    t = points @ w
    A = relu(points @ first.T) * second[None, :]
    b_up = relu(t) + epsilon * r
    if model == "R":
        b_lo = np.where(has_lower_row(t, r, float(np.linalg.norm(w)), epsilon), t - epsilon * r, -np.inf)
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

    ``scale = sum_g (y_up,g + y_lo,g) (L + ε) |x_g|`` with ``L = |w| + sum_i |v_i| |u_i|``
    (:data:`FARKAS_SCALE`). At a point ``x`` the exact ``|b_g|`` is at most ``(|w| + ε)|x|``
    and ``|A_gi|`` at most ``|v_i| |u_i| |x|``, and the float64 error of each is below
    ``(d + 3) 2^-53`` times that bound, also where ``<u_i, x>`` or ``t - ε r`` cancels (the
    per-entry ``|A_gi|`` does not bound it there). The sums over the ``k`` rows and the ``n``
    units add ``(k + n + 2) 2^-53`` of the same bounds, so the margin's float64 error is below
    about ``(k + n + d + 5) 2^-53 scale``.
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
    return margin, rounding_scale(points, y_up, y_lo, w, first, second, epsilon)


def rounding_scale(
    points: np.ndarray, y_up: np.ndarray, y_lo: np.ndarray, w: np.ndarray, first: np.ndarray, second: np.ndarray, epsilon: float
) -> float:
    """``sum_g (y_up,g + y_lo,g) (L + ε) |x_g|``, ``L = |w| + sum_i |v_i| |u_i|`` (:data:`FARKAS_SCALE`, :func:`farkas_margin`)."""
    lipschitz = float(np.linalg.norm(w) + np.sum(np.abs(second) * np.linalg.norm(first, axis=1)))
    r = np.linalg.norm(np.atleast_2d(points), axis=1)
    return float((np.asarray(y_up) + np.asarray(y_lo)) @ r) * (lipschitz + epsilon)


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
    w: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    epsilon: float,
    model: str,
    *,
    top: int,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Points where the network errs by more than ``ε`` (cutting planes): exact arcs (d <= 2), a random sample (d > 2).

    Args:
        rng: the generator of the sample; needed in ``d > 2`` only.
    """
    d = w.shape[0]
    if d <= 2:
        res = sup_error_exact(w, first, second, model)
        order = np.argsort(-res.arc_values)[:top]
        order = order[res.arc_values[order] > epsilon * (1 + CUT_TOLERANCE)]
        return res.arc_points[order]
    if rng is None:
        raise PruningLimitsError(f"violated_points samples the sphere in d = {d} > 2: pass rng, got None")
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
    margin), so galloping then bisection over "a certificate was found" gives a certified width
    ``n`` and the bound ``n + 1``. That bound is valid but not necessarily the largest one: at a
    width where :meth:`Relaxation.decide` finds no certificate (``None`` means "none found",
    e.g. the cutting planes stopped within :data:`CUT_TOLERANCE`, not "none exists") the search
    turns back, and such widths are not claimed as anything. The search stops at the stream's
    width (:func:`stream_width` in the experiment); a bound that reaches it is valid but capped.
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


# ----------------------------------------------------------------------------- neuron pruning: MILP


@dataclass(frozen=True)
class ExactNeuronWidth:
    """The exact neuron-pruning width where the MILP finished, else ``width = None``.

    Attributes:
        width: the minimum width (``None``: not determined, see ``status``).
        subset: indices of a subset of the first ``width`` neurons with error ``<= ε`` (checkable).
        error: its exact sup error.
        status: ``"exact"``, ``"time-limit"``, ``"undecided"``, ``"round-limit"``,
            ``"above-max-width"``, ``"above-stream-width"`` or ``"not-attempted"``, with the reason.
        upper: the smallest width at which a verified subset was found (an upper bound even
            when ``width`` is None), or None.
        infeasible_up_to: when the search stopped at ``max_width`` (or at the stream's width,
            if that is shorter) without a subset, the width up to which the MILP found every
            width infeasible (a solver verdict, not a certificate).
    """

    width: int | None
    subset: list[int] | None
    error: float | None
    status: str
    upper: int | None = None
    infeasible_up_to: int | None = None


def _milp_feasible(
    stream: Stream, epsilon: float, model: str, width: int, points: list[np.ndarray], deadline: float, max_rounds: int = 60
) -> tuple[str, np.ndarray | None, float | None, str]:
    """MILP at ``width`` with cutting planes: ``(status, subset mask, error, note)``.

    ``status`` is ``"feasible"`` (a subset whose exact error is ``<= ε``), ``"infeasible"`` (the
    MILP's verdict), ``"time-limit"`` (the shared budget ran out), ``"undecided"`` (the MILP
    returned a subset it had already returned and that errs above ε by less than the solver's
    feasibility tolerance: adding points cannot exclude it, so neither answer is given) or
    ``"round-limit"`` (``max_rounds`` cutting-plane rounds without a decision).
    """
    from scipy.optimize import Bounds, LinearConstraint, milp

    w = stream.w
    first, second = stream.first[:width], stream.second[:width]
    if width == 0:
        return "infeasible", None, None, ""
    rejected: set[bytes] = set()
    for _ in range(max_rounds):
        left = deadline - time.monotonic()
        if left <= 0:
            return "time-limit", None, None, "MILP did not finish"
        A, b_up, _, b_lo = lp_constraints(points[0], w, first, second, epsilon, model)
        lower = np.where(np.isfinite(b_lo), b_lo, -np.inf)
        res = milp(
            c=np.ones(width),
            constraints=[LinearConstraint(A, lower, b_up)],
            integrality=np.ones(width),
            bounds=Bounds(0, 1),
            options={"time_limit": left, "presolve": True},
        )
        if res.status == 2:
            return "infeasible", None, None, ""
        if res.status == 1:
            return "time-limit", None, None, "MILP did not finish"
        if res.status != 0 or res.x is None:
            return "undecided", None, None, f"HiGHS returned status {res.status} ({res.message})"
        mask = np.round(res.x).astype(bool)
        err = sup_error_exact(w, first[mask], second[mask], model)
        if err.value <= epsilon:
            return "feasible", mask, err.value, ""
        key = np.packbits(mask).tobytes()
        if key in rejected:
            return (
                "undecided",
                None,
                None,
                f"the MILP returns again a subset erring {err.value:.17g} > ε, within the solver's tolerance",
            )
        rejected.add(key)
        new = violated_points(w, first[mask], second[mask], epsilon, model, top=16)  # d <= 2: exact arcs, no sample
        if len(new) == 0:  # errs by less than CUT_TOLERANCE relative: cut at its worst point anyway
            new = err.point[None, :]
        points[0] = np.vstack([points[0], new])
    return "round-limit", None, None, f"no decision after {max_rounds} cutting-plane rounds"


def milp_exact_width(
    stream: Stream,
    epsilon: float,
    model: str = "R",
    *,
    known_infeasible: int = 0,
    max_width: int = 64,
    time_limit: float = 30.0,
    points: np.ndarray | None = None,
) -> ExactNeuronWidth:
    """The minimum stream width whose neuron subsets reach ``ε`` (d <= 2), by MILP with cutting planes.

    A feasible answer is a subset whose exact sup error is ``<= ε`` (the MILP is re-solved with
    the violated points added until it is). "Infeasible" is HiGHS's MILP verdict on a finite
    point set, which implies infeasibility on the sphere; it is exact but not independently
    checkable. Widths are searched upwards from ``known_infeasible + 1`` by galloping and
    bisection; ``time_limit`` seconds are shared by all MILP solves of the search, and running
    out leaves ``width = None`` (status ``"time-limit"``). A width the MILP cannot decide (it
    keeps returning a subset that errs above ε by less than its feasibility tolerance) leaves
    ``width = None`` with status ``"undecided"``; too many cutting-plane rounds, ``"round-limit"``.
    The search stops at ``max_width`` or at the stream's width, whichever is smaller; finding
    every width infeasible up to it gives ``"above-max-width"`` or ``"above-stream-width"``.
    """
    deadline = time.monotonic() + float(time_limit)
    epsilon = check_epsilon(epsilon)
    if stream.dim > 2:
        return ExactNeuronWidth(None, None, None, "not-attempted: no exact sup error in d > 2")
    cap = check_int("max_width", max_width, 0)
    max_width = min(cap, stream.width)  # the MILP has one column per neuron the stream holds
    pts = [initial_points(stream.dim, 128, stream.seed) if points is None else np.asarray(points)]
    lo = known_infeasible  # proven infeasible (certificate or MILP)
    step = 1
    n = lo + 1
    found: tuple[int, np.ndarray, float] | None = None
    while lo < max_width:
        n = min(n, max_width)
        status, mask, err, note = _milp_feasible(stream, epsilon, model, n, pts, deadline)
        if status not in ("feasible", "infeasible"):
            return ExactNeuronWidth(None, None, None, f"{status}: {note} at width {n}")
        if status == "feasible":
            found = (n, mask, err)  # type: ignore[assignment]
            break
        lo, n, step = n, n + step, 2 * step
    if found is None:
        if max_width < cap:
            status = f"above-stream-width: MILP infeasible at every width up to the stream's {max_width} neurons"
        else:
            status = f"above-max-width: MILP infeasible at every width up to {max_width}"
        return ExactNeuronWidth(None, None, None, status, infeasible_up_to=lo)
    hi, mask, err = found
    while hi - lo > 1:
        mid = (lo + hi) // 2
        status, m2, e2, note = _milp_feasible(stream, epsilon, model, mid, pts, deadline)
        if status not in ("feasible", "infeasible"):
            return ExactNeuronWidth(None, None, None, f"{status}: {note} at width {mid}", upper=hi)
        if status == "feasible":
            hi, mask, err = mid, m2, e2
        else:
            lo = mid
    return ExactNeuronWidth(hi, [int(i) for i in np.flatnonzero(mask)], float(err), "exact", upper=hi)


# ----------------------------------------------------------------------------- the experiment

#: The setting, stated in every record (THEORY §7).
SETTING = {
    "target": "f(x) = relu(<w,x>), w uniform on the unit sphere (seeded)",
    "stream": "u_i ~ N(0, I_d), v_i ~ Uniform[-1, 1]; width n = the first n neurons of the seeded stream",
    "model_R": "g(x) = relu(sum_i v_i relu(<u_i,x>))",
    "model_L": "g(x) = sum_i v_i relu(<u_i,x>)",
    "error": "sup over the unit sphere of |f - g|; at a point x off the sphere the constraint is |f(x) - g(x)| <= eps |x|",
    "weight": "upper bound: subset-sum construction (THEORY §7), masks of both layers; error exact (d <= 2) or the "
    "closed-form separable bound (d > 2)",
    "neuron": "lower bound: the LP relaxation s in [0,1]^n at the listed points is infeasible at width "
    "lower_bound - 1 (Farkas multipliers y_upper on rows A s <= b_up, y_lower on rows A s >= b_lo); "
    "exact: MILP with cutting planes (d <= 2), where it finished",
}


#: What model L's weight fit adds to its ``model`` text: it is fitted to lower bounds.
MODEL_L_WEIGHT_FIT = " (fitted to LP lower bounds, model L)"


def _fit_linear(x: np.ndarray, y: np.ndarray) -> dict[str, float] | None:
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    total = np.sum((y - y.mean()) ** 2)
    # flat values: the total is rounding (1e-31 gave R² = -14.8); a fit of a constant is exact
    r2 = 1.0 - float(np.sum(resid**2) / total) if total > 1e-12 * max(1.0, float(np.sum(y**2))) else 1.0
    return {"slope": float(slope), "intercept": float(intercept), "r2": r2, "points": int(len(x))}


def fit_widths(epsilons: Sequence[float], weight: Sequence[float | None], neuron: Sequence[float | None]) -> dict[str, Any]:
    """Weight widths linear in ``log2(1/ε)`` (slope = neurons per halving, R²); neuron bounds as a power law in ``1/ε``."""
    eps = np.asarray(epsilons, dtype=np.float64)
    out: dict[str, Any] = {}
    ok = np.array([v is not None for v in weight])
    fit = _fit_linear(np.log2(1 / eps[ok]), np.asarray([v for v in weight if v is not None], dtype=np.float64))
    out["weight"] = None if fit is None else {
        "model": "width = slope * log2(1/eps) + intercept",
        "slope_per_halving": fit["slope"],
        "intercept": fit["intercept"],
        "r2": fit["r2"],
        "points": fit["points"],
    }
    ok = np.array([v is not None and v > 0 for v in neuron])
    vals = np.asarray([v for v, k in zip(neuron, ok) if k], dtype=np.float64)
    fit = _fit_linear(np.log(1 / eps[ok]), np.log(vals)) if len(vals) else None
    out["neuron"] = None if fit is None else {
        "model": "lower_bound = prefactor * (1/eps)^exponent",
        "exponent": fit["slope"],
        "prefactor": float(np.exp(fit["intercept"])),
        "r2": fit["r2"],
        "points": fit["points"],
    }
    return out


def _median(values: Sequence[Any]) -> float | None:
    """The median when every value is a number (``None`` if any is missing or not a number, e.g. a forged ``[]``)."""
    vals = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    return float(np.median(vals)) if vals and len(vals) == len(values) else None


def _farkas_json(cert: FarkasCertificate) -> dict[str, Any]:
    return {
        "width": cert.width,
        "points": cert.points.tolist(),
        "y_upper": cert.y_up.tolist(),
        "y_lower": cert.y_lo.tolist(),
        "margin": cert.margin,
        "scale": cert.scale,
    }


def _listed(name: str, values: Any, expected: str) -> list[Any]:
    """``values`` as a list; a single number or a string is a one-line error saying what was expected."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise PruningLimitsError(f"{name} must be {expected}, got {describe(values)}")
    try:
        return list(values)
    except TypeError:  # a 0-d array claims to be iterable
        raise PruningLimitsError(f"{name} must be {expected}, got {describe(values)}") from None


def gap_experiment(
    dim: int,
    epsilons: Sequence[float] = DEFAULT_EPSILONS,
    seeds: Sequence[int] = range(5),
    model: str = "R",
    *,
    neuron: bool = True,
    milp_max_width: int = 48,
    milp_time_limit: float = 10.0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the gap experiment: per ε and seed, certified weight and neuron pruning widths, medians and fits.

    Args:
        dim: input dimension, ``1 <= d <=`` :data:`MAX_DIM`; the stream has :func:`stream_width`
            neurons.
        epsilons: a sequence of tolerances in (0, 1), each used for every seed (default:
            2^-2 ... 2^-12).
        seeds: a sequence of stream seeds (default ``range(5)``; the command line's ``--seeds K``
            is ``range(K)``; a bare number is refused, not read as a count).
        model: ``"R"`` (output ReLU, THEORY §7) or ``"L"`` (linear output, the control; weight
            pruning then gets an LP lower bound over the masked variants of each neuron, d <= 4,
            instead of the construction, which needs the output ReLU).
        neuron: compute the neuron-pruning bounds (off: weight pruning only, e.g. d = 8).
        milp_max_width: attempt the exact MILP width only when the LP bound is at most this.
        milp_time_limit: seconds for all MILP solves of one (ε, seed); running out is reported;
            0 means "do not run the MILP" (status ``not-attempted``).
        progress: called with one line per finished (ε, seed).

    Returns:
        A JSON-serialisable record (see docs/gap.md); :func:`check_gap_record` re-checks it. A
        (ε, seed) whose ε the weight-pruning construction does not reach within the stream gets
        ``weight = {"width": None, "status": ..., "stream_width": ..., "bound_at_stream_width": ...}``
        (:class:`WeightUnreachable`), and the run goes on.

    Raises:
        PruningLimitsError: a bad argument, in one line.
    """
    started = time.monotonic()
    dim = check_int("dim", dim, 1)
    check_choice("model", model, MODELS)
    problem = _dim_problem(dim, model)
    if problem:
        raise PruningLimitsError(problem)
    eps_list = [check_epsilon(e) for e in _listed("epsilons", epsilons, "a sequence of numbers in (0, 1), e.g. [0.25, 0.125]")]
    if not eps_list:
        raise PruningLimitsError("expected at least one ε, got none")
    if len(set(eps_list)) != len(eps_list):  # a repeated row would count twice in the fits
        raise PruningLimitsError(f"epsilons must be distinct, got {eps_list}")
    seed_list = [
        check_seed("seed", s)
        for s in _listed("seeds", seeds, "a sequence of seeds, e.g. range(5) or [0, 3] (the command line's --seeds K is range(K))")
    ]
    if not seed_list:
        raise PruningLimitsError("expected at least one seed, got none")
    if len(set(seed_list)) != len(seed_list):  # its own record check refuses a repeated stream
        raise PruningLimitsError(f"seeds must be distinct, got {seed_list}")
    milp_max_width = check_int("milp_max_width", milp_max_width, 0)
    if isinstance(milp_time_limit, bool) or not (
        isinstance(milp_time_limit, (int, float)) and math.isfinite(milp_time_limit) and milp_time_limit >= 0
    ):
        raise PruningLimitsError(f"milp_time_limit must be a number of seconds >= 0, got {describe(milp_time_limit)}")
    eps_order = sorted(range(len(eps_list)), key=lambda k: -eps_list[k])  # largest ε first: warm starts
    streams = {s: make_stream(dim, s, stream_width(dim)) for s in seed_list}
    used = {s: 0 for s in seed_list}
    cells: dict[tuple[int, int], dict[str, Any]] = {}
    for s in seed_list:
        stream = streams[s]
        prev_weight = prev_neuron = None
        stuck: WeightUnreachable | None = None  # the construction's limit, met at a larger ε
        for k in eps_order:
            eps = eps_list[k]
            cell: dict[str, Any] = {"seed": s}
            if model == "R":
                try:
                    if stuck is not None and stuck.bound > eps:  # a smaller ε is out of reach too
                        raise WeightUnreachable(weight_limit_status(stream, eps, stuck.bound), stuck.stream_width, stuck.bound)
                    wc = weight_pruning_width(stream, eps, start=prev_weight)
                except WeightUnreachable as exc:  # recorded with its limit; the other cells go on
                    stuck = exc
                    cell["weight"] = {
                        "width": None,
                        "status": exc.status,
                        "stream_width": exc.stream_width,
                        "bound_at_stream_width": exc.bound,
                    }
                else:
                    prev_weight = wc.width
                    used[s] = max(used[s], wc.width)
                    cell["weight"] = {
                        "width": wc.width,
                        "first_mask": wc.first_mask.tolist(),
                        "second_mask": wc.second_mask.tolist(),
                        "error": wc.error,
                        "error_kind": wc.error_kind,
                    }
            else:
                lb = lp_lower_bound(stream, eps, model, pruning="weight", start=prev_weight or 4)
                prev_weight = lb.lower_bound
                used[s] = max(used[s], lb.certificate.width)
                cell["weight"] = {"width": None, "lower_bound": lb.lower_bound, "certificate": _farkas_json(lb.certificate)}
            if neuron:
                lb = lp_lower_bound(stream, eps, model, start=max(4, prev_neuron or 4))
                prev_neuron = lb.lower_bound
                used[s] = max(used[s], lb.certificate.width)
                entry: dict[str, Any] = {"lower_bound": lb.lower_bound, "certificate": _farkas_json(lb.certificate)}
                if lb.reached_width is None:
                    entry["capped_at_stream_width"] = True
                if milp_time_limit == 0:
                    ex = ExactNeuronWidth(None, None, None, "not-attempted: MILP time limit 0 (MILP not run)")
                elif dim <= 2 and lb.lower_bound <= milp_max_width:
                    ex = milp_exact_width(
                        stream,
                        eps,
                        model,
                        known_infeasible=lb.lower_bound - 1,
                        max_width=milp_max_width,
                        time_limit=milp_time_limit,
                        points=lb.points,
                    )
                elif dim > 2:
                    ex = ExactNeuronWidth(None, None, None, "not-attempted: no exact sup error in d > 2")
                else:
                    ex = ExactNeuronWidth(None, None, None, f"not-attempted: LP bound above --milp-max-width {milp_max_width}")
                if ex.upper is not None:
                    used[s] = max(used[s], ex.upper)
                entry["exact"] = {"width": ex.width, "subset": ex.subset, "error": ex.error, "status": ex.status}
                if ex.infeasible_up_to is not None:
                    entry["exact"]["milp_infeasible_up_to"] = ex.infeasible_up_to
                if ex.width is not None:  # what proves that one neuron fewer does not suffice
                    entry["exact"]["minimality"] = (
                        "lp-certificate" if ex.width == lb.lower_bound else "milp-verdict (HiGHS, not re-checkable)"
                    )
                cell["neuron"] = entry
            cells[(k, s)] = cell
            if progress is not None:
                if model == "L":
                    wtxt = f">={cell['weight']['lower_bound']}"
                elif cell["weight"]["width"] is None:
                    wtxt = f"not reached ({cell['weight']['status'].split(':')[0]})"
                else:
                    wtxt = str(cell["weight"]["width"])
                ntxt = f", neuron >= {cell['neuron']['lower_bound']}" if neuron else ""
                xtxt = ""
                if neuron and cell["neuron"]["exact"]["width"] is not None:
                    xtxt = f" (exact {cell['neuron']['exact']['width']})"
                progress(f"d={dim} seed={s} eps={epsilon_text(eps)}: weight {wtxt}{ntxt}{xtxt}")
    results = []
    for k, eps in enumerate(eps_list):
        per_seed = [cells[(k, s)] for s in seed_list]
        if model == "R":
            weight_med = _median([c["weight"]["width"] for c in per_seed])
        else:
            weight_med = _median([c["weight"]["lower_bound"] for c in per_seed])
        med: dict[str, Any] = {"weight": weight_med}
        if neuron:
            med["neuron_lower_bound"] = _median([c["neuron"]["lower_bound"] for c in per_seed])
            med["neuron_exact"] = _median([c["neuron"]["exact"]["width"] for c in per_seed])
            if weight_med is not None and med["neuron_lower_bound"] is not None:
                med["ratio"] = med["neuron_lower_bound"] / weight_med
        results.append({"epsilon": eps, "median": med, "seeds": per_seed})
    fits = fit_widths(
        eps_list,
        [r["median"]["weight"] for r in results],
        [r["median"].get("neuron_lower_bound") for r in results] if neuron else [None] * len(eps_list),
    )
    if model == "L" and fits["weight"] is not None:
        fits["weight"]["model"] += MODEL_L_WEIGHT_FIT
    gap_at = [r["epsilon"] for r in results if model == "R" and neuron and r["median"].get("ratio", 0) > 1]
    return {
        "kind": "pruning-gap",
        "dim": dim,
        "model": model,
        "epsilons": eps_list,
        "seeds": seed_list,
        "setting": SETTING,
        "weight_meaning": _weight_meaning(model),
        "farkas_tolerance": FARKAS_TOLERANCE,
        "farkas_scale": FARKAS_SCALE,
        "streams": [
            {
                "seed": s,
                "w": streams[s].w.tolist(),
                "first": streams[s].first[: used[s]].tolist(),
                "second": streams[s].second[: used[s]].tolist(),
            }
            for s in seed_list
        ],
        "results": results,
        "fits": fits,
        "median_neuron_above_weight_at": gap_at,
        "seconds": time.monotonic() - started,
    }


# ----------------------------------------------------------------------------- re-checking a record


@dataclass(frozen=True)
class _Recheck:
    """What :func:`_recheck_farkas` found: ``ok`` and why, and the margin and scales it recomputed."""

    ok: bool
    why: str
    margin: float = math.nan
    scale: float = math.nan  # :data:`FARKAS_SCALE`, the one the test uses
    legacy_scale: float = math.nan  # :data:`LEGACY_FARKAS_SCALE`, what records without ``farkas_scale`` stored


def _recheck_farkas(
    cert: dict[str, Any], w: np.ndarray, first: np.ndarray, second: np.ndarray, epsilon: float, model: str
) -> _Recheck:
    """Re-derive the constraint rows from the points alone and check the multipliers (independent code path)."""
    pts = np.atleast_2d(np.asarray(cert["points"], dtype=np.float64))
    y_up = np.asarray(cert["y_upper"], dtype=np.float64)
    y_lo = np.asarray(cert["y_lower"], dtype=np.float64)
    if pts.shape[0] != y_up.shape[0] or pts.shape[0] != y_lo.shape[0] or pts.shape[1] != w.shape[0]:
        return _Recheck(False, "certificate arrays have inconsistent shapes")
    if np.any(y_up < 0) or np.any(y_lo < 0) or not np.all(np.isfinite(np.concatenate([y_up, y_lo]))):
        return _Recheck(False, "multipliers must be finite and non-negative")
    w_norm = math.sqrt(float(w @ w))
    # the rounding scale's L = |w| + sum_i |v_i| |u_i| (FARKAS_SCALE), written out here
    lipschitz = w_norm + float(np.sum(np.abs(second) * np.sqrt(np.sum(first * first, axis=1))))
    total = 0.0
    scale = 0.0
    legacy = 0.0
    combo = np.zeros(first.shape[0])
    for x, a, b in zip(pts, y_up, y_lo):
        r = math.sqrt(float(x @ x))
        t = float(x @ w)
        row = np.maximum(first @ x, 0.0) * second  # the inner sum is row . s
        size = float(np.sum(np.abs(row)))
        upper = max(t, 0.0) + epsilon * r  # row . s <= upper, for every subset reaching ε
        combo += a * row
        total += a * upper
        scale += (a + b) * (lipschitz + epsilon) * r
        legacy += a * (abs(upper) + size)
        if b > 0:
            lower = (t - epsilon * r) if model == "R" else (max(t, 0.0) - epsilon * r)
            # the output ReLU must pass the sum only where t > ε r, decided with a margin over rounding
            if model == "R" and not (t - epsilon * r) > LOWER_ROW_MARGIN * (w_norm + epsilon) * r:
                return _Recheck(False, "a lower-row multiplier where the output ReLU need not pass the sum")
            combo -= b * row
            total -= b * lower
            legacy += b * (abs(lower) + size)
    # any s in [0,1]^n has combo . s >= -sum(max(0, -combo)), and combo . s <= total
    margin = float(total + np.sum(np.maximum(-combo, 0.0)))
    scale, legacy = float(scale), float(legacy)
    if not (scale > 0 and margin < -FARKAS_TOLERANCE * scale):
        return _Recheck(False, f"margin {margin:.3g} is not below -{FARKAS_TOLERANCE:g} x scale {scale:.3g}", margin, scale, legacy)
    return _Recheck(True, f"margin {margin:.3g}", margin, scale, legacy)


def _check_stored_margin(
    cert: dict[str, Any], found: _Recheck, legacy: bool, where: str, problems: list[str]
) -> None:
    """The certificate's stored ``margin`` and ``scale`` must be the recomputed ones (a record is read by people too).

    The margin within ``1e-9`` times the scale (two summation orders of the same sum); the scale
    within ``1e-9`` relative, in the definition the record states (:data:`FARKAS_SCALE`, or
    :data:`LEGACY_FARKAS_SCALE` for a record without ``farkas_scale``).
    """
    if not (math.isfinite(found.margin) and math.isfinite(found.scale)):
        return  # the certificate itself failed before its margin was computed: reported already
    margin, scale = cert.get("margin"), cert.get("scale")
    if not (_is_number(margin) and abs(float(margin) - found.margin) <= 1e-9 * found.scale):
        problems.append(f"{where} certificate margin {margin!r} is not the recomputed {found.margin!r}")
    expected, name = (found.legacy_scale, "legacy_farkas_scale") if legacy else (found.scale, "farkas_scale")
    if not (_is_number(scale) and _same(float(scale), expected)):
        problems.append(f"{where} certificate scale {scale!r} is not the recomputed {expected!r} (the record's {name})")


def _is_number(value: Any) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _as_int(value: Any, what: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {describe(value)}")
    if minimum is not None and value < minimum:  # reshape(-1, d) would accept a negative width
        raise ValueError(f"{what} must be at least {minimum}, got {value}")
    return value


def _parse_streams(entries: Any, dim: int) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The stored streams as arrays (one-line errors for malformed entries)."""
    if not isinstance(entries, list):
        raise PruningLimitsError(f"not a gap record: 'streams' must be a list, got {describe(entries)}")
    out: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for k, entry in enumerate(entries):
        try:
            if not isinstance(entry, dict):
                raise ValueError(f"expected an object, got {describe(entry)}")
            seed = check_seed("seed", _as_int(entry["seed"], "seed"))
            w = np.asarray(entry["w"], dtype=np.float64)
            second = np.asarray(entry["second"], dtype=np.float64)
            first = np.asarray(entry["first"], dtype=np.float64)
            if first.size == 0:
                first = first.reshape(0, dim)
            if w.shape != (dim,) or second.ndim != 1 or first.shape != (second.shape[0], dim):
                raise ValueError(f"shapes w {w.shape}, first {first.shape}, second {second.shape} do not fit d = {dim}")
            if seed in out:
                raise ValueError(f"seed {seed} appears twice")
        except (KeyError, TypeError, ValueError, PruningLimitsError) as exc:
            text = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            raise PruningLimitsError(f"not a gap record: streams[{k}] is malformed ({text})") from None
        out[seed] = (w, first, second)
    return out


def _check_stream(seed: int, w: np.ndarray, first: np.ndarray, second: np.ndarray, dim: int, problems: list[str]) -> None:
    """The stored stream must be the seeded stream itself, bit for bit, with a unit target."""
    if not abs(float(np.linalg.norm(w)) - 1.0) <= 1e-12:
        problems.append(f"stream seed={seed}: |w| = {float(np.linalg.norm(w))!r} is not 1")
    ref = make_stream(dim, seed, second.shape[0])
    if not (np.array_equal(w, ref.w) and np.array_equal(first, ref.first) and np.array_equal(second, ref.second)):
        problems.append(f"stream seed={seed}: stored weights differ from make_stream({dim}, {seed}, {second.shape[0]})")


@functools.lru_cache(maxsize=8)
def _stream_limit(dim: int, seed: int, width: int) -> tuple[float, bool]:
    """The construction's bound with the whole stream, and whether its classes are full (cached: one run per stream)."""
    stream = make_stream(dim, seed, width)
    return subset_sum_construction(stream, width)[2], saturation_width(stream) is not None


def _check_weight_limit(
    wt: dict[str, Any], eps: float, seed: int, dim: int, where: str, counts: dict[str, int], problems: list[str]
) -> None:
    """Re-derive a weight cell's claim that the construction does not reach ε within the stream.

    The stream of the experiment's width (:func:`stream_width`) is regenerated from its seed and
    the construction run on all of it: its bound must equal ``bound_at_stream_width``, exceed ε
    (for the two stream limits), and the limit named must be the one :func:`saturation_width`
    gives. A ``certified-error-limit`` (bound <= ε, certified error above it by rounding) gets
    the bound re-derived, not the rounding.
    """
    kind = wt["status"].split(":", 1)[0]
    width = _as_int(wt.get("stream_width"), "stream_width", 0)
    if width != stream_width(dim):  # a shorter stream would hide a width the experiment finds
        problems.append(f"{where}: weight limit claimed at a stream of {width} neurons, not the experiment's {stream_width(dim)}")
        return
    bound, saturated = _stream_limit(dim, seed, width)
    counts["weight_limit"] += 1
    if not _same(wt.get("bound_at_stream_width"), bound):
        problems.append(f"{where}: bound_at_stream_width {wt.get('bound_at_stream_width')!r} is not the construction's {bound!r}")
    if kind == "certified-error-limit":  # the bound reaches ε: the search itself must fail on rounding alone
        if not bound <= eps:
            problems.append(f"{where}: weight status {kind!r}, but the construction's bound {bound!r} stays above ε")
            return
        try:
            found = weight_pruning_width(make_stream(dim, seed, width), eps)
        except WeightUnreachable as exc:
            if exc.status.split(":", 1)[0] != kind:
                problems.append(f"{where}: weight status names {kind!r}, but the search ends on {exc.status.split(':', 1)[0]!r}")
            return
        problems.append(f"{where}: weight status {kind!r}, but width {found.width} reaches ε (certified error {found.error!r})")
        return
    if not bound > eps:
        problems.append(f"{where}: weight status {kind!r}, but the construction reaches ε with the stream's {width} neurons")
        return
    named = "items-per-class-limit" if saturated else "stream-width-limit"
    if kind != named:
        problems.append(f"{where}: weight status names {kind!r}, but the limit is {named!r}")


def _check_cell(
    cell: dict[str, Any],
    eps: float,
    streams: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
    dim: int,
    model: str,
    counts: dict[str, int],
    problems: list[str],
    legacy_scale: bool = False,
) -> None:
    """Re-check the certificates of one (ε, seed) entry; append what fails to ``problems``.

    ``legacy_scale``: the record states no ``farkas_scale``, so its stored certificate scales are
    :data:`LEGACY_FARKAS_SCALE` (the certificates are tested against :data:`FARKAS_SCALE` all the same).
    """
    seed = _as_int(cell["seed"], "seed")
    where = f"eps={epsilon_text(eps)} seed={seed}"
    if seed not in streams:
        problems.append(f"{where}: no stored stream for this seed")
        return
    w, first, second = streams[seed]
    wt = cell["weight"]
    if not isinstance(wt, dict):
        raise ValueError(f"'weight' must be an object, got {describe(wt)}")
    if model == "R" and wt.get("width") is not None and wt.get("status") is not None:
        problems.append(f"{where}: weight width {wt['width']!r} given with status {str(wt['status'])[:40]!r}")
    if model == "R" and wt.get("width") is not None:
        n = _as_int(wt["width"], "weight width", 1)  # the target's sup is 1 > ε: no empty network fits
        fm = np.asarray(wt["first_mask"], dtype=np.float64).reshape(n, dim)
        sm = np.asarray(wt["second_mask"], dtype=np.float64).reshape(n)
        if n > first.shape[0] or not np.all(np.isin(fm, (0, 1))) or not np.all(np.isin(sm, (0, 1))):
            problems.append(f"{where}: weight masks malformed or wider than the stored stream")
        else:
            err, kind = certified_error(w, first[:n] * fm, second[:n] * sm, "R")
            counts["weight"] += 1
            if not err <= eps:  # the same strict test as weight_pruning_width
                problems.append(f"{where}: weight subnetwork errs {err!r} > ε")
            kept = np.flatnonzero((sm != 0) & np.any(fm != 0, axis=1))
            if kept.size and kept[-1] + 1 < n:  # masks padded with unused rows: a width above the construction's
                problems.append(
                    f"{where}: weight width {n} overstated: its masks keep no neuron past the first {int(kept[-1]) + 1}"
                )
            if not abs(err - float(wt["error"])) <= 1e-9:
                problems.append(f"{where}: weight error {wt['error']!r} does not match {err!r}")
            if wt.get("error_kind") != kind:
                problems.append(f"{where}: weight error_kind {wt.get('error_kind')!r} is not {kind!r}")
    elif model == "L" and wt.get("lower_bound") is not None:
        if wt.get("width") is not None:  # model L certifies a lower bound only
            problems.append(f"{where}: a model L weight entry has a lower bound and width null, got width {describe(wt['width'])}")
        cert = wt["certificate"]
        n = _as_int(cert["width"], "certificate width", 0)
        if n > first.shape[0]:
            problems.append(f"{where}: weight certificate wider than the stored stream")
        else:
            units = candidates(first[:n], second[:n], "weight")
            found = _recheck_farkas(cert, w, units[0], units[1], eps, model)
            counts["weight"] += 1
            if not found.ok:
                problems.append(f"{where}: weight LP certificate fails: {found.why}")
            _check_stored_margin(cert, found, legacy_scale, f"{where}: weight", problems)
            if _as_int(wt["lower_bound"], "lower_bound") != n + 1:
                problems.append(f"{where}: weight lower_bound {wt['lower_bound']} is not certificate width + 1")
    elif not isinstance(wt.get("status"), str):
        problems.append(f"{where}: weight entry has no certificate and no uncertified status")
    elif model == "R":  # the construction either certifies a width or names the limit that stopped it
        if wt["status"].split(":", 1)[0] in WEIGHT_LIMITS:
            _check_weight_limit(wt, eps, seed, dim, where, counts, problems)
        else:
            problems.append(
                f"{where}: a model R weight entry has a width or one of the limits {', '.join(WEIGHT_LIMITS)}, "
                f"got status {wt['status'][:40]!r}"
            )
    nr = cell.get("neuron")
    if nr is None:
        return
    if not isinstance(nr, dict):
        raise ValueError(f"'neuron' must be an object, got {describe(nr)}")
    lower = nr.get("lower_bound")
    if lower is not None:
        lower = _as_int(lower, "lower_bound")
        cert = nr["certificate"]
        n = _as_int(cert["width"], "certificate width", 0)
        counts["neuron"] += 1
        if n > first.shape[0]:
            problems.append(f"{where}: neuron certificate wider than the stored stream")
        else:
            found = _recheck_farkas(cert, w, first[:n], second[:n], eps, model)
            if not found.ok:
                problems.append(f"{where}: neuron certificate fails: {found.why}")
            _check_stored_margin(cert, found, legacy_scale, f"{where}: neuron", problems)
            if lower != n + 1:
                problems.append(f"{where}: lower_bound {lower} is not certificate width + 1")
    elif not isinstance(nr.get("status"), str):
        problems.append(f"{where}: neuron entry has no certificate and no uncertified status")
    ex = nr.get("exact")
    if ex is None:
        return
    if not isinstance(ex, dict) or not isinstance(ex.get("status"), str):
        problems.append(f"{where}: exact entry without a status")
        return
    if ex["status"] != "exact":
        if ex.get("width") is not None:
            problems.append(f"{where}: exact width {ex['width']} given with status {ex['status'][:40]!r}")
        return
    if ex.get("width") is None:
        problems.append(f"{where}: status 'exact' without a width")
        return
    n = _as_int(ex["width"], "exact width", 1)
    subset = [_as_int(i, "subset index") for i in ex["subset"]]
    counts["exact"] += 1
    if n > first.shape[0] or any(i < 0 or i >= n for i in subset) or len(set(subset)) != len(subset):
        problems.append(f"{where}: exact subset not a set of the first {n} neurons")
        return
    err = sup_error_exact(w, first[subset], second[subset], model).value
    if not err <= eps:
        problems.append(f"{where}: exact subset errs {err!r} > ε")
    elif subset and max(subset) + 1 < n:  # a subset that works shows that fewer neurons suffice
        problems.append(f"{where}: exact width {n} overstated: its subset lies within the first {max(subset) + 1} neurons")
    if not abs(err - float(ex["error"])) <= 1e-9:
        problems.append(f"{where}: exact error {ex['error']!r} does not match {err!r}")
    minimality = ex.get("minimality")
    if lower is not None and n < lower:
        problems.append(f"{where}: exact width {n} below the certified lower bound")
    if minimality == "lp-certificate":
        if lower is None or n != lower:  # only then does the Farkas certificate prove minimality
            problems.append(f"{where}: minimality 'lp-certificate' but exact width {n} != lower bound {lower}")
    elif not (isinstance(minimality, str) and minimality.startswith("milp-verdict")):
        problems.append(f"{where}: exact width without a minimality statement")
    elif lower is not None and n == lower:
        problems.append(f"{where}: minimality is the LP certificate (width = lower bound), not a MILP verdict")


def _same(a: Any, b: Any, rel: float = 1e-9) -> bool:
    """Equal numbers (within ``rel``), both ``None``, or equal lists of those."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, list) or isinstance(b, list):
        if not (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)):
            return False
        return all(_same(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return False
    return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=0.0)


def _check_summaries(record: dict[str, Any], results: list[Any], model: str, problems: list[str]) -> None:
    """Recompute the medians, ratios, fits and "gap first at" from the cells and compare with the record."""
    eps_list: list[float] = []
    weight_meds: list[float | None] = []
    neuron_meds: list[float | None] = []
    has_neuron = any(isinstance(c, dict) and "neuron" in c for r in results for c in r["seeds"])
    gap_at = []
    for res in results:
        eps = float(res["epsilon"])
        cells = res["seeds"]
        where = f"eps={epsilon_text(eps)}"
        if eps in eps_list:  # gap_experiment refuses repeated ε: a repeated row counts twice in the fits
            problems.append(f"{where}: ε appears in more than one result (a repeated row counts twice in the fits)")
        med = res.get("median")
        if not isinstance(med, dict):
            problems.append(f"{where}: no median entry")
            med = {}
        wkey = "width" if model == "R" else "lower_bound"
        weight_med = _median([c["weight"].get(wkey) for c in cells])
        expect: dict[str, Any] = {"weight": weight_med}
        if has_neuron:
            if any("neuron" not in c for c in cells):
                problems.append(f"{where}: some seeds lack a neuron entry")
                continue
            expect["neuron_lower_bound"] = _median([c["neuron"].get("lower_bound") for c in cells])
            expect["neuron_exact"] = _median([(c["neuron"].get("exact") or {}).get("width") for c in cells])
            if weight_med is not None and expect["neuron_lower_bound"] is not None:
                expect["ratio"] = expect["neuron_lower_bound"] / weight_med
        for key, value in expect.items():
            if not _same(med.get(key), value, 1e-12):
                problems.append(f"{where}: median {key} {med.get(key)!r} is not {value!r} (from the cells)")
        for key in set(med) - set(expect):
            problems.append(f"{where}: median {key} {med[key]!r} has no cells behind it")
        eps_list.append(eps)
        weight_meds.append(weight_med)
        neuron_meds.append(expect.get("neuron_lower_bound"))
        if model == "R" and has_neuron and expect.get("ratio", 0) > 1:
            gap_at.append(eps)
    if not _same(record.get("epsilons"), eps_list, 0.0):
        problems.append("'epsilons' does not list the results' ε")
    if "median_neuron_above_weight_at" in record or model == "R":
        if not _same(record.get("median_neuron_above_weight_at"), gap_at, 0.0):
            problems.append(
                f"median_neuron_above_weight_at {record.get('median_neuron_above_weight_at')!r} is not {gap_at!r}"
            )
    if not eps_list:
        return
    fits = fit_widths(eps_list, weight_meds, neuron_meds)
    stored = record.get("fits")
    if not isinstance(stored, dict):
        problems.append("no 'fits' entry")
        return
    for part, fit in fits.items():
        have = stored.get(part)
        if fit is None or have is None:
            if (fit is None) != (have is None):
                problems.append(f"fit {part}: {'stored without data' if fit is None else 'missing'}")
            continue
        if model == "L" and part == "weight":
            fit["model"] += MODEL_L_WEIGHT_FIT
        for key, value in fit.items():
            got = have.get(key) if isinstance(have, dict) else None
            if key == "model":
                if got != value:  # the text says what was fitted to what
                    problems.append(f"fit {part} model {got!r} is not {value!r}")
            elif not _same(got, value):
                problems.append(f"fit {part} {key} {got!r} is not {value!r}")


def _weight_meaning(model: str) -> str:
    """What a record's weight widths are (its ``weight_meaning``)."""
    return "certified upper bound (construction)" if model == "R" else "certified LP lower bound over masked variants"


def _check_header(record: dict[str, Any], model: str, problems: list[str]) -> None:
    """The fields that say what the record is and how its certificates are tested: one problem line each."""
    if record.get("kind") != "pruning-gap":
        problems.append(f"'kind' must be 'pruning-gap', got {describe(record.get('kind'))}")
    tolerance = record.get("farkas_tolerance")
    if not (_is_number(tolerance) and float(tolerance) == FARKAS_TOLERANCE):
        problems.append(
            f"'farkas_tolerance' must be {FARKAS_TOLERANCE!r}, the tolerance the certificates are re-checked with, "
            f"got {describe(tolerance)}"
        )
    if "farkas_scale" in record and record["farkas_scale"] != FARKAS_SCALE:
        problems.append(f"'farkas_scale' must be {FARKAS_SCALE!r} (or absent in older records), got {describe(record['farkas_scale'])}")
    if record.get("weight_meaning") != _weight_meaning(model):
        problems.append(f"'weight_meaning' must be {_weight_meaning(model)!r} for model {model}, got {describe(record.get('weight_meaning'))}")


def check_gap_record(record: dict[str, Any]) -> dict[str, Any]:
    """Re-check every certificate and every derived number of a :func:`gap_experiment` record, from the record alone.

    Streams: each stored stream is regenerated from its seed (:func:`make_stream`) and must
    match bit for bit, with ``|w| = 1``. Weight: the masks applied to the stored weights give a
    network whose certified error (:func:`certified_error`, exact in d <= 2) is ``<= ε`` (the
    strict test :func:`weight_pruning_width` applies) and equals the stored error within 1e-9,
    and the last row of the masks keeps a neuron (padded masks would overstate the width).
    Neuron: the Farkas multipliers are re-checked from their points (rows re-derived here)
    against :data:`FARKAS_SCALE`, their stored ``margin`` and ``scale`` must be the recomputed
    ones (:func:`_check_stored_margin`), and ``lower_bound = width + 1``. ``kind``,
    ``farkas_tolerance``, ``weight_meaning`` and ``farkas_scale`` must be what the experiment
    writes (:func:`_check_header`). Exact: status ``"exact"`` if and only if a width is given; the
    subset's exact error is ``<= ε``; the width is at least the lower bound; ``minimality`` is
    ``"lp-certificate"`` exactly when the width equals the lower bound (otherwise the MILP's
    infeasibility below it is the solver's verdict, not re-checkable). A cell without a
    certificate must say so by an explicit ``status``; a weight status naming a limit of
    :data:`WEIGHT_LIMITS` is re-derived (:func:`_check_weight_limit`: the stream regenerated at
    the experiment's width, the construction's bound there recomputed, ``> ε``, and the limit
    named the right one), and a weight width next to a status is a problem. Medians, ratios,
    fits and ``median_neuron_above_weight_at`` are recomputed from the cells and compared.

    Returns:
        ``{"streams": n, "weight": n, "neuron": n, "exact": n, "weight_limit": n, "problems": [...]}``
        (counts of checked items; ``weight_limit``: weight cells whose "ε not reached within
        the stream" was re-derived).

    Raises:
        PruningLimitsError: not a gap record (one line), a record with nothing to check, or a
            model R weight limit claimed in d > :data:`MAX_DIM` (the experiment records none
            there, and re-deriving one would rerun the construction on the whole stream).
    """
    if not isinstance(record, dict):
        raise PruningLimitsError(f"not a gap record: expected a JSON object, got {describe(record)}")
    missing = [key for key in ("dim", "model", "streams", "results") if key not in record]
    if missing:
        raise PruningLimitsError(f"not a gap record: missing {', '.join(repr(k) for k in missing)}")
    dim, model, results = record["dim"], record["model"], record["results"]
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise PruningLimitsError(f"not a gap record: 'dim' must be an integer >= 1, got {describe(dim)}")
    if model not in MODELS:
        raise PruningLimitsError(f"not a gap record: 'model' must be one of {MODELS}, got {describe(model)}")
    problem = _dim_problem(dim, model, CHECK_MAX_DIM)  # beyond it the streams would not fit in memory either
    if problem:
        raise PruningLimitsError(f"not a gap record: {problem}")
    if not isinstance(results, list):
        raise PruningLimitsError(f"not a gap record: 'results' must be a list, got {describe(results)}")
    for k, res in enumerate(results):
        ok = isinstance(res, dict) and isinstance(res.get("seeds"), list)
        if ok:
            try:
                check_epsilon(res.get("epsilon"))
            except PruningLimitsError:
                ok = False
        if not ok or not all(isinstance(c, dict) and isinstance(c.get("weight"), dict) for c in res["seeds"]):
            raise PruningLimitsError(
                f"not a gap record: results[{k}] needs an 'epsilon' with {EPSILON_RANGE} and a list 'seeds' of objects with 'weight'"
            )
        if model == "R" and dim > MAX_DIM:  # refused before any work: a 5 KB record at d = 192 ran 148 s
            kinds = (str(c["weight"].get("status")).split(":", 1)[0] for c in res["seeds"])
            kind = next((kind for kind in kinds if kind in WEIGHT_LIMITS), None)
            if kind is not None:
                raise PruningLimitsError(
                    f"refused: results[{k}] claims a weight limit ({kind}) in d = {dim}; "
                    f"the experiment records weight limits only for d <= {MAX_DIM}, and re-deriving one reruns the "
                    f"construction on all {stream_width(dim)} neurons of the stream"
                )
    streams = _parse_streams(record["streams"], dim)
    problems: list[str] = []
    counts = {"streams": 0, "weight": 0, "neuron": 0, "exact": 0, "weight_limit": 0}
    _check_header(record, model, problems)
    legacy_scale = "farkas_scale" not in record  # written before the scale was stated (and changed)
    for seed, (w, first, second) in streams.items():
        _check_stream(seed, w, first, second, dim, problems)
        counts["streams"] += 1
    seeds = record.get("seeds")
    if not _same(seeds, sorted(streams), 0.0) and not _same(seeds, list(streams), 0.0):
        problems.append(f"'seeds' {seeds!r} is not the list of stored streams")
    cell_problems = 0
    for res in results:
        eps = float(res["epsilon"])
        if [c.get("seed") for c in res["seeds"]] != seeds:
            problems.append(f"eps={epsilon_text(eps)}: the cells' seeds are not {seeds!r}")
        for cell in res["seeds"]:
            before = len(problems)
            try:
                _check_cell(cell, eps, streams, dim, model, counts, problems, legacy_scale)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                problems.append(f"eps={epsilon_text(eps)}: malformed entry ({type(exc).__name__}: {exc})")
            cell_problems += len(problems) - before
    if counts["weight"] + counts["neuron"] + counts["exact"] + counts["weight_limit"] == 0:
        if not cell_problems:  # no cell holds anything, not even something wrong
            raise PruningLimitsError(f"refused: the record holds no certificate to check ({len(results)} results)")
        problems.append("no certificate of the record could be checked")
    try:
        _check_summaries(record, results, model, problems)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        problems.append(f"medians or fits cannot be recomputed ({type(exc).__name__}: {exc})")
    return {**counts, "problems": problems}


# ----------------------------------------------------------------------------- figure


def gap_figure(record: dict[str, Any]) -> Any:
    """Width against 1/ε on log axes: weight pruning (certified upper bounds), neuron pruning (certified lower bounds, exact).

    A record without any width (every ε out of the construction's reach, weight only) has
    nothing to put on a log scale: its width axis stays linear and the figure says so.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    inv = np.array([1 / r["epsilon"] for r in record["results"]])
    R = record["model"] == "R"

    shown = 0  # widths drawn: a log axis needs at least one

    def series(get: Callable[[dict[str, Any]], Any]) -> tuple[np.ndarray, np.ndarray]:
        nonlocal shown
        xs, ys = [], []
        for x, r in zip(inv, record["results"]):
            for c in r["seeds"]:
                v = get(c)
                if v is not None:
                    xs.append(x)
                    ys.append(v)
        shown += len(ys)
        return np.array(xs), np.array(ys)

    wlabel = "weight pruning, certified upper bound" if R else "weight pruning, LP lower bound (model L)"
    wget = (lambda c: c["weight"]["width"]) if R else (lambda c: c["weight"]["lower_bound"])
    xs, ys = series(wget)
    ax.scatter(xs, ys, s=8, color="tab:blue", alpha=0.3)
    med = [r["median"]["weight"] for r in record["results"]]
    ax.plot(inv, [np.nan if m is None else m for m in med], "o-", color="tab:blue", label=wlabel + " (median)")
    if any("neuron" in c for r in record["results"] for c in r["seeds"]):
        xs, ys = series(lambda c: c["neuron"]["lower_bound"])
        ax.scatter(xs, ys, s=8, color="tab:red", alpha=0.3)
        med = [r["median"].get("neuron_lower_bound") for r in record["results"]]
        ax.plot(inv, [np.nan if m is None else m for m in med], "s-", color="tab:red", label="neuron pruning, certified LP lower bound (median)")
        xs, ys = series(lambda c: c["neuron"]["exact"]["width"])
        if len(xs):
            ax.scatter(xs, ys, s=22, marker="x", color="black", alpha=0.6, label="neuron pruning, exact (MILP)")
            med = [r["median"].get("neuron_exact") for r in record["results"]]
            ax.plot(inv, [np.nan if m is None else m for m in med], "--", color="black", label="exact, median (all seeds finished)")
    ax.set_xscale("log", base=2)
    if shown:
        ax.set_yscale("log", base=2)
    else:  # was "Data cannot be log-scaled" at savefig, after -o was written (a review's --epsilon 1e-15 --plot)
        ax.set_xlim(inv.min() / 2, inv.max() * 2)  # the ε of the record, not matplotlib's default range
        ax.set_yticks([])
        ax.text(
            0.5, 0.5, "no certified widths: the record names the limit of each cell",
            transform=ax.transAxes, ha="center", va="center",
        )
    ax.set_xlabel("1/ε")
    ax.set_ylabel("width of the random network (neurons)")
    ax.set_title(f"d = {record['dim']}, model {record['model']}, {len(record['seeds'])} seeds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig
