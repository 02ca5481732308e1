"""The gap experiment: certified widths per ε and seed, medians, fits, one JSON record."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._checks import PruningLimitsError, check_choice, check_int, check_seed
from .milp import ExactNeuronWidth, milp_exact_width
from .network import MAX_WIDTH, MODELS, check_epsilon, make_stream
from .relaxation import FARKAS_TOLERANCE, FarkasCertificate, lp_lower_bound
from .weight import weight_pruning_width

#: Default ε ladder of ``pruning-limit gap``: halvings 2^-2 ... 2^-12 (THEORY §7 prototype:
#: neuron bounds 2^-3 ... 2^-12; the gap shows below 2^-9 in d = 2).
DEFAULT_EPSILONS = tuple(2.0**-k for k in range(2, 13))

#: Default ε ladder for model L (the control): 2^-2 ... 2^-8; its widths grow like 1/ε, so the
#: LPs at 2^-12 would need thousands of neurons.
DEFAULT_EPSILONS_L = tuple(2.0**-k for k in range(2, 9))

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


def _fit_linear(x: np.ndarray, y: np.ndarray) -> dict[str, float] | None:
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    total = np.sum((y - y.mean()) ** 2)
    r2 = 1.0 - float(np.sum(resid**2) / total) if total > 0 else 1.0
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


def _median(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
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
        dim: input dimension ``d >= 1``.
        epsilons: tolerances in (0, 1), each used for every seed (default: 2^-2 ... 2^-12).
        seeds: stream seeds (default 0..4).
        model: ``"R"`` (output ReLU, THEORY §7) or ``"L"`` (linear output, the control; weight
            pruning then gets an LP lower bound over the masked variants of each neuron, d <= 4,
            instead of the construction, which needs the output ReLU).
        neuron: compute the neuron-pruning bounds (off: weight pruning only, e.g. d = 8).
        milp_max_width: attempt the exact MILP width only when the LP bound is at most this.
        milp_time_limit: seconds for all MILP solves of one (ε, seed); running out is reported.
        progress: called with one line per finished (ε, seed).

    Returns:
        A JSON-serialisable record (see docs/gap.md); :func:`check_gap_record` re-checks it.
    """
    started = time.monotonic()
    dim = check_int("dim", dim, 1)
    check_choice("model", model, MODELS)
    eps_list = [check_epsilon(e) for e in epsilons]
    if not eps_list:
        raise PruningLimitsError("expected at least one ε, got none")
    seed_list = [check_seed("seed", s) for s in seeds]
    if not seed_list:
        raise PruningLimitsError("expected at least one seed, got none")
    if model == "L" and dim > 4:
        raise PruningLimitsError(f"model L bounds weight pruning over 2^d - 1 masks per neuron: d <= 4, got d = {dim}")
    milp_max_width = check_int("milp_max_width", milp_max_width, 0)
    eps_order = sorted(range(len(eps_list)), key=lambda k: -eps_list[k])  # largest ε first: warm starts
    streams = {s: make_stream(dim, s, MAX_WIDTH) for s in seed_list}
    used = {s: 0 for s in seed_list}
    cells: dict[tuple[int, int], dict[str, Any]] = {}
    for s in seed_list:
        stream = streams[s]
        prev_weight = prev_neuron = None
        for k in eps_order:
            eps = eps_list[k]
            cell: dict[str, Any] = {"seed": s}
            if model == "R":
                wc = weight_pruning_width(stream, eps, start=prev_weight)
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
                if dim <= 2 and lb.lower_bound <= milp_max_width:
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
                wtxt = cell["weight"]["width"] if model == "R" else f">={cell['weight']['lower_bound']}"
                ntxt = f", neuron >= {cell['neuron']['lower_bound']}" if neuron else ""
                xtxt = ""
                if neuron and cell["neuron"]["exact"]["width"] is not None:
                    xtxt = f" (exact {cell['neuron']['exact']['width']})"
                progress(f"d={dim} seed={s} eps=2^{math.log2(eps):.3g}: weight {wtxt}{ntxt}{xtxt}")
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
        fits["weight"]["model"] += " (fitted to LP lower bounds, model L)"
    gap_at = [r["epsilon"] for r in results if model == "R" and neuron and r["median"].get("ratio", 0) > 1]
    return {
        "kind": "pruning-gap",
        "dim": dim,
        "model": model,
        "epsilons": eps_list,
        "seeds": seed_list,
        "setting": SETTING,
        "weight_meaning": "certified upper bound (construction)" if model == "R" else "certified LP lower bound over masked variants",
        "farkas_tolerance": FARKAS_TOLERANCE,
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
