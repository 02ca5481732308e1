"""Neuron pruning, exact minimum width in d <= 2: a MILP with cutting planes (scipy.optimize.milp)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .error import sup_error_exact
from .network import Stream, check_epsilon
from .relaxation import initial_points, lp_constraints, violated_points


@dataclass(frozen=True)
class ExactNeuronWidth:
    """The exact neuron-pruning width where the MILP finished, else ``width = None``.

    Attributes:
        width: the minimum width (``None``: not determined, see ``status``).
        subset: indices of a subset of the first ``width`` neurons with error ``<= ε`` (checkable).
        error: its exact sup error.
        status: ``"exact"``, ``"time-limit"``, ``"above-max-width"`` or ``"not-attempted"``, with the reason.
        upper: the smallest width at which a verified subset was found (an upper bound even
            when ``width`` is None), or None.
        infeasible_up_to: when the search stopped at ``max_width`` without a subset, the width up
            to which the MILP found every width infeasible (a solver verdict, not a certificate).
    """

    width: int | None
    subset: list[int] | None
    error: float | None
    status: str
    upper: int | None = None
    infeasible_up_to: int | None = None


def _milp_feasible(
    stream: Stream, epsilon: float, model: str, width: int, points: list[np.ndarray], deadline: float, max_rounds: int = 60
) -> tuple[str, np.ndarray | None, float | None]:
    """MILP at ``width`` with cutting planes: ("feasible", subset mask, error) / ("infeasible", ..) / ("unknown", ..)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    w = stream.w
    first, second = stream.first[:width], stream.second[:width]
    if width == 0:
        return "infeasible", None, None
    for _ in range(max_rounds):
        left = deadline - time.monotonic()
        if left <= 0:
            return "unknown", None, None
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
            return "infeasible", None, None
        if res.status != 0 or res.x is None:
            return "unknown", None, None
        mask = np.round(res.x).astype(bool)
        err = sup_error_exact(w, first[mask], second[mask], model)
        if err.value <= epsilon:
            return "feasible", mask, err.value
        new = violated_points(w, first[mask], second[mask], epsilon, model, rng=np.random.default_rng(0), top=16)
        points[0] = np.vstack([points[0], new])
    return "unknown", None, None


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
    out leaves ``width = None`` (status ``"time-limit"``).
    """
    deadline = time.monotonic() + float(time_limit)
    epsilon = check_epsilon(epsilon)
    if stream.dim > 2:
        return ExactNeuronWidth(None, None, None, "not-attempted: no exact sup error in d > 2")
    pts = [initial_points(stream.dim, 128, stream.seed) if points is None else np.asarray(points)]
    lo = known_infeasible  # proven infeasible (certificate or MILP)
    step = 1
    n = lo + 1
    found: tuple[int, np.ndarray, float] | None = None
    while lo < max_width:
        n = min(n, max_width)
        status, mask, err = _milp_feasible(stream, epsilon, model, n, pts, deadline)
        if status == "unknown":
            return ExactNeuronWidth(None, None, None, f"time-limit: MILP did not finish at width {n}")
        if status == "feasible":
            found = (n, mask, err)  # type: ignore[assignment]
            break
        lo, n, step = n, n + step, 2 * step
    if found is None:
        return ExactNeuronWidth(
            None, None, None, f"above-max-width: MILP infeasible at every width up to {max_width}", infeasible_up_to=lo
        )
    hi, mask, err = found
    while hi - lo > 1:
        mid = (lo + hi) // 2
        status, m2, e2 = _milp_feasible(stream, epsilon, model, mid, pts, deadline)
        if status == "unknown":
            return ExactNeuronWidth(None, None, None, f"time-limit: MILP did not finish at width {mid}", upper=hi)
        if status == "feasible":
            hi, mask, err = mid, m2, e2
        else:
            lo = mid
    return ExactNeuronWidth(hi, [int(i) for i in np.flatnonzero(mask)], float(err), "exact", upper=hi)
