"""The figure of the gap experiment: width against 1/ε on log axes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def gap_figure(record: dict[str, Any]) -> Any:
    """Width against 1/ε on log axes: weight pruning (certified upper bounds), neuron pruning (certified lower bounds, exact)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    inv = np.array([1 / r["epsilon"] for r in record["results"]])
    R = record["model"] == "R"

    def series(get: Callable[[dict[str, Any]], Any]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for x, r in zip(inv, record["results"]):
            for c in r["seeds"]:
                v = get(c)
                if v is not None:
                    xs.append(x)
                    ys.append(v)
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
    ax.set_yscale("log", base=2)
    ax.set_xlabel("1/ε")
    ax.set_ylabel("width of the random network (neurons)")
    ax.set_title(f"d = {record['dim']}, model {record['model']}, {len(record['seeds'])} seeds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig
