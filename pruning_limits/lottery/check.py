"""Re-checking every certificate of a gap record from the record alone."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._checks import PruningLimitsError
from .error import certified_error, sup_error_exact
from .relaxation import FARKAS_TOLERANCE, candidates


def _recheck_farkas(
    cert: dict[str, Any], w: np.ndarray, first: np.ndarray, second: np.ndarray, epsilon: float, model: str
) -> tuple[bool, str]:
    """Re-derive the constraint rows from the points alone and check the multipliers (independent code path)."""
    pts = np.atleast_2d(np.asarray(cert["points"], dtype=np.float64))
    y_up = np.asarray(cert["y_upper"], dtype=np.float64)
    y_lo = np.asarray(cert["y_lower"], dtype=np.float64)
    if pts.shape[0] != y_up.shape[0] or pts.shape[0] != y_lo.shape[0] or pts.shape[1] != w.shape[0]:
        return False, "certificate arrays have inconsistent shapes"
    if np.any(y_up < 0) or np.any(y_lo < 0) or not np.all(np.isfinite(np.concatenate([y_up, y_lo]))):
        return False, "multipliers must be finite and non-negative"
    total = 0.0
    scale = 0.0
    combo = np.zeros(first.shape[0])
    for x, a, b in zip(pts, y_up, y_lo):
        r = math.sqrt(float(x @ x))
        t = float(x @ w)
        row = np.maximum(first @ x, 0.0) * second  # the inner sum is row . s
        size = float(np.sum(np.abs(row)))
        upper = max(t, 0.0) + epsilon * r  # row . s <= upper, for every subset reaching ε
        combo += a * row
        total += a * upper
        scale += a * (abs(upper) + size)
        if b > 0:
            lower = (t - epsilon * r) if model == "R" else (max(t, 0.0) - epsilon * r)
            if model == "R" and not t > epsilon * r:
                return False, "a lower-row multiplier where the output ReLU need not pass the sum"
            combo -= b * row
            total -= b * lower
            scale += b * (abs(lower) + size)
    # any s in [0,1]^n has combo . s >= -sum(max(0, -combo)), and combo . s <= total
    margin = total + float(np.sum(np.maximum(-combo, 0.0)))
    if not (scale > 0 and margin < -FARKAS_TOLERANCE * scale):
        return False, f"margin {margin:.3g} is not below -{FARKAS_TOLERANCE:g} x scale {scale:.3g}"
    return True, f"margin {margin:.3g}"


def _check_cell(
    cell: dict[str, Any], eps: float, streams: dict[int, Any], dim: int, model: str, counts: dict[str, int], problems: list[str]
) -> None:
    """Re-check the certificates of one (ε, seed) entry; append what fails to ``problems``."""
    seed = int(cell["seed"])
    st = streams[seed]
    w = np.asarray(st["w"], dtype=np.float64)
    first = np.asarray(st["first"], dtype=np.float64).reshape(-1, dim)
    second = np.asarray(st["second"], dtype=np.float64)
    where = f"eps={eps:g} seed={seed}"
    wt = cell.get("weight")
    if wt is not None and wt.get("width") is not None:
        n = int(wt["width"])
        fm = np.asarray(wt["first_mask"], dtype=np.float64).reshape(n, dim)
        sm = np.asarray(wt["second_mask"], dtype=np.float64).reshape(n)
        if n > first.shape[0] or not np.all(np.isin(fm, (0, 1))) or not np.all(np.isin(sm, (0, 1))):
            problems.append(f"{where}: weight masks malformed or wider than the stored stream")
        else:
            err, _ = certified_error(w, first[:n] * fm, second[:n] * sm, "R")
            counts["weight"] += 1
            if not err <= eps:
                problems.append(f"{where}: weight subnetwork errs {err!r} > ε")
            if abs(err - float(wt["error"])) > 1e-9:
                problems.append(f"{where}: weight error {wt['error']!r} does not match {err!r}")
    elif wt is not None and wt.get("certificate") is not None:
        cert = wt["certificate"]
        n = int(cert["width"])
        units = candidates(first[:n], second[:n], "weight")
        ok, why = _recheck_farkas(cert, w, units[0], units[1], eps, model)
        counts["weight"] += 1
        if not ok or int(wt["lower_bound"]) != n + 1 or n > first.shape[0]:
            problems.append(f"{where}: weight LP certificate fails: {why}")
    nr = cell.get("neuron")
    if nr is None:
        return
    if nr.get("lower_bound") is not None:
        cert = nr["certificate"]
        n = int(cert["width"])
        counts["neuron"] += 1
        if n > first.shape[0]:
            problems.append(f"{where}: neuron certificate wider than the stored stream")
        else:
            ok, why = _recheck_farkas(cert, w, first[:n], second[:n], eps, model)
            if not ok:
                problems.append(f"{where}: neuron certificate fails: {why}")
            if int(nr["lower_bound"]) != n + 1:
                problems.append(f"{where}: lower_bound {nr['lower_bound']} is not certificate width + 1")
    ex = nr.get("exact")
    if ex is not None and ex.get("width") is not None:
        n = int(ex["width"])
        subset = [int(i) for i in ex["subset"]]
        counts["exact"] += 1
        if n > first.shape[0] or any(i < 0 or i >= n for i in subset):
            problems.append(f"{where}: exact subset outside the first {n} neurons")
        else:
            err = sup_error_exact(w, first[subset], second[subset], model).value
            if not err <= eps:
                problems.append(f"{where}: exact subset errs {err!r} > ε")
            if nr.get("lower_bound") is not None and n < int(nr["lower_bound"]):
                problems.append(f"{where}: exact width {n} below the certified lower bound")


def check_gap_record(record: dict[str, Any]) -> dict[str, Any]:
    """Re-check every certificate of a :func:`gap_experiment` record from the record alone.

    Weight: the masks applied to the stored weights give a network whose certified error
    (:func:`certified_error`, exact in d <= 2) is ``<= ε`` and equals the stored error within
    1e-9. Neuron: the Farkas multipliers are re-checked from their points (rows re-derived
    here) and ``lower_bound = width + 1``. Exact: the subset's exact error is ``<= ε`` and the
    exact width is at least the lower bound (the MILP's infeasibility below it is not
    re-checkable: it is the solver's verdict).

    Returns:
        ``{"weight": n, "neuron": n, "exact": n, "problems": [...]}`` (counts of checked items).
    """
    try:
        dim = int(record["dim"])
        model = record["model"]
        streams = {int(s["seed"]): s for s in record["streams"]}
        results = record["results"]
    except (KeyError, TypeError, ValueError) as exc:
        raise PruningLimitsError(f"not a gap record: missing or malformed {exc}") from None
    problems: list[str] = []
    counts = {"weight": 0, "neuron": 0, "exact": 0}
    for res in results:
        try:
            eps = float(res["epsilon"])
            cells = list(res["seeds"])
        except (KeyError, TypeError, ValueError):
            problems.append("a result without epsilon or seeds")
            continue
        for cell in cells:
            try:
                _check_cell(cell, eps, streams, dim, model, counts, problems)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                problems.append(f"eps={eps:g}: malformed entry ({type(exc).__name__}: {exc})")
    return {**counts, "problems": problems}
