"""Sup error on the unit sphere: exact in d <= 2 (breakpoints), certified bounds in d > 2."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._checks import PruningLimitsError, check_int
from .network import _check_network, network, target


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


def cube_grid(dim: int, per_axis: int) -> tuple[np.ndarray, float]:
    """Points of the cube surface ``{|y|_inf = 1}`` on a grid of ``per_axis`` values per axis, projected to the sphere.

    Returns the unit points and a covering radius ``δ = (h/2) sqrt(d-1)``, ``h = 2/(per_axis-1)``:
    every unit ``x`` lies on a face of the cube after scaling by ``1/|x|_inf``, within
    ``(h/2) sqrt(d-1)`` of a grid point of that face, and the radial projection onto the sphere
    is 1-Lipschitz outside the unit ball.
    """
    dim = check_int("dim", dim, 2)
    per_axis = check_int("per_axis", per_axis, 2)
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
