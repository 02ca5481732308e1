"""Is the pruned direction a random direction? The orientation assumption of the prediction, measured.

The statistical-dimension step (docs/theory.md §4) treats the pruned subspace as randomly
oriented with respect to the Hessian. One number tests that: the curvature of the actual pruned
direction ``d = w^k − w*`` at the measured limit, relative to the mean curvature,

    ρ = (dᵀHd / |d|²) / (tr H / D),

which is 1 on average for a random direction of the same length. ``ρ_diag`` replaces ``dᵀHd``
by ``Σ_i d_i² H_ii`` (the pruned coordinates' own curvature, estimated with random sign flips
of ``d``, ``E_s[(s⊙d)ᵀH(s⊙d)] = Σ d_i² H_ii``), separating "stiff coordinates" from "signs that
line up with the curvature". For every row of ``docs/validation.json`` (models from the bundle
cache of ``run_validation.py``, trained when missing), with ``tr H`` from the row's SLQ record:

    python examples/validation/orientation.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


#: Weights at most this large count as zeros in the last column (l1 training with SGD leaves
#: the weights it removes at about this size, not at exactly 0).
ZERO = 1e-6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default="docs/validation.json", help="records written by run_validation.py")
    parser.add_argument("--cache", default="examples/validation/cache", help="bundle cache of run_validation.py")
    parser.add_argument("--flips", type=int, default=8, help="random sign flips for ρ_diag")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import numpy as np
    import torch

    from pruning_limits import HessianOperator, flat_weights, load_data, loss_gradient
    from pruning_limits.masks import pruning_order
    from run_validation import ROWS, trained_model

    torch.set_num_threads(args.threads)
    records = json.loads(Path(args.json).read_text())["rows"]
    by_name = {row.name: row for row in ROWS}
    rng = np.random.default_rng(args.seed)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    print(f"{'row':24s} {'λ':>7s} {'D':>6s} {'measured':>8s} {'|d|²':>9s} {'ρ':>6s} {'ρ_diag':>7s} "
          f"{'½dᵀHd/ε':>8s} {'gᵀd/ε':>6s} {'zeros':>6s}")
    for record in records:
        row = by_name[record["row"]["name"]]
        data = load_data(row.data, seed=args.seed)
        model, _ = trained_model(row, data, Path(args.cache), args.seed, log)
        analysed = model.to(torch.float64).eval()
        operator = HessianOperator(analysed, data.train)
        w = flat_weights(analysed)
        dim = w.size
        pruned = pruning_order(analysed)[: round(record["measured"]["limit_by_loss"] * dim)]
        if pruned.size == 0:
            log(f"[{row.name}] measured limit 0: no pruned direction")
            continue
        d = np.zeros(dim)
        d[pruned] = -w[pruned]
        norm2 = float(d @ d)
        mean_curvature = record["spectrum"]["trace"] / dim
        curvature = float(d @ np.asarray(operator.matvec(d)))  # dᵀHd
        rho = curvature / norm2 / mean_curvature
        signs = rng.choice([-1.0, 1.0], size=(args.flips, dim))
        flipped = signs * d
        diag = np.mean([float(v @ np.asarray(operator.matvec(v))) for v in flipped]) / norm2 / mean_curvature
        first = float(loss_gradient(analysed, data.train) @ d)
        epsilon = record["measured"]["epsilon"]
        print(f"{row.name:24s} {str(row.l1):>7s} {dim:6d} {100 * pruned.size / dim:8.1f} {norm2:9.3g} {rho:6.2f} "
              f"{diag:7.2f} {0.5 * curvature / epsilon:8.2f} {first / epsilon:6.2f} {100 * np.mean(np.abs(w) <= ZERO):6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
