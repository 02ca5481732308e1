"""How fast the block Gauss rule resolves ``s*``, against the block anti-Gauss and averaged rules.

One command (from the repository root)::

    python benchmarks/quadrature_rules.py                    # probes 2 and 8, seeds 0-5 and 0-3
    python benchmarks/quadrature_rules.py --probes 2 --seeds 2

On the D = 2 080 oracle MLP of tests/test_adaptive.py (``slq_accuracy.digits_mlp``), fully
re-orthogonalised block Lanczos runs from ``b`` Rademacher probes. At every checkpoint of the
adaptive stop (``spectrum.monitor_checkpoints``) after ``k`` block steps it evaluates ``s*``
(with the gradient term, the default, and the paper's model) on three rules:

* **Gauss**: the block rule of ``k`` steps, what SLQ uses;
* **anti-Gauss**: ``k + 1`` steps with the last coupling block multiplied by √2 (Laurie 1996,
  "Anti-Gaussian quadrature formulas"; the block form: Fenu, Martin, Reichel & Rodriguez 2013),
  whose error on polynomials of degree up to ``2k + 1`` is minus the Gauss rule's;
* **averaged**: the two rules' nodes with half their weights each.

The error is in points of sparsity against the same probes' exact measure (the eigenvectors of
the dense float64 Hessian), so it is the quadrature's alone: the probes' sampling error is
another matter (``spectrum.default_probes``). Printed: for each checkpoint, the largest error of
each rule over the seeds, and half the Gauss − anti-Gauss difference, the usual error estimate.
"""

from __future__ import annotations

import argparse
import os
import runpy
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its pool

import numpy as np  # noqa: E402
import torch  # noqa: E402


def rules(projection: np.ndarray, coordinates: np.ndarray, steps: int, block: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Nodes and per-probe weights of the Gauss, anti-Gauss and averaged rules after ``steps`` block steps.

    ``projection`` must hold at least ``steps + 1`` blocks of ``block`` vectors (no deflation).
    """
    size = steps * block

    def rule(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nodes, vectors = np.linalg.eigh(matrix)
        weights = (coordinates[:, : matrix.shape[0]] @ vectors) ** 2
        return nodes, weights / weights.sum(axis=1, keepdims=True)

    gauss = rule(projection[:size, :size])
    anti = projection[: size + block, : size + block].copy()
    anti[size - block : size, size:] *= np.sqrt(2.0)
    anti[size:, size - block : size] *= np.sqrt(2.0)
    anti_rule = rule(anti)
    averaged = (np.concatenate([gauss[0], anti_rule[0]]), np.concatenate([gauss[1], anti_rule[1]], axis=1) / 2)
    return {"gauss": gauss, "anti": anti_rule, "averaged": averaged}


def measure(block: int, seeds: int, steps: int = 300) -> list[dict[str, Any]]:
    """Rows ``{seed, steps, exact, gauss, anti, averaged}``, each value ``{"gradient": s*, "paper": s*}``."""
    from pruning_limits import batch_std_epsilon, flat_weights, loss_gradient
    from pruning_limits.hessian import HessianOperator
    from pruning_limits.lanczos import block_lanczos, rademacher_probes
    from pruning_limits.limits import sparsity_estimator
    from pruning_limits.spectrum import Spectrum, dense_hessian, monitor_checkpoints

    model, x, y = runpy.run_path(str(Path(__file__).with_name("slq_accuracy.py")))["digits_mlp"]()
    operator = HessianOperator(model, (x, y))
    dim = operator.dim
    eigenvalues, eigenvectors = np.linalg.eigh(dense_hessian(operator))
    weights, epsilon = flat_weights(model), batch_std_epsilon(model, (x, y))
    estimators: dict[str, Callable[[Any], tuple[float, ...]]] = {
        "gradient": sparsity_estimator(weights, [epsilon], gradient=loss_gradient(model, (x, y))),
        "paper": sparsity_estimator(weights, [epsilon]),
    }

    def sparsity(nodes: np.ndarray, probe_weights: np.ndarray) -> dict[str, float]:
        spectrum = Spectrum.from_ragged([(nodes, row) for row in probe_weights], dim, rule="block")
        return {name: estimate(spectrum)[0] for name, estimate in estimators.items()}

    rows = []
    limit = min(steps + 1, int(0.75 * dim / block))  # stay clear of deflation near the whole space
    for seed in range(seeds):
        starts = rademacher_probes(dim, block, seed=seed)
        exact = sparsity(eigenvalues, (starts @ eigenvectors) ** 2 / (starts**2).sum(axis=1, keepdims=True))
        result = block_lanczos(operator.matmat, dim, limit, starts, memory_budget=1 << 34)
        if result.projection.shape[0] != block * result.steps:
            raise RuntimeError(f"seed {seed}: the block shrank (deflation); lower the steps")
        for k in monitor_checkpoints(steps) + [steps]:
            if k + 1 > result.steps:
                break
            found = {name: sparsity(*rule) for name, rule in rules(result.projection, result.start_coordinates, k, block).items()}
            rows.append({"seed": seed, "steps": k, "exact": exact, **found})
    return rows


def report(rows: list[dict[str, Any]], block: int) -> None:
    """One table per model: the largest error of each rule over the seeds at each checkpoint, in points."""
    for model in ("gradient", "paper"):
        print(f"probes {block}, s* {'with the gradient term' if model == 'gradient' else 'of the paper model'}: "
              "largest |error| over the seeds, points (products = probes x steps)")
        print("| steps | products | Gauss | anti-Gauss | averaged | averaged: mean error | (Gauss - anti)/2, largest |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for k in sorted({row["steps"] for row in rows}):
            at = [row for row in rows if row["steps"] == k]
            error = {rule: [100 * (row[rule][model] - row["exact"][model]) for row in at] for rule in ("gauss", "anti", "averaged")}
            half = max(50 * abs(row["gauss"][model] - row["anti"][model]) for row in at)
            print(f"| {k} | {k * block} | {max(map(abs, error['gauss'])):.2f} | {max(map(abs, error['anti'])):.2f} | "
                  f"{max(map(abs, error['averaged'])):.2f} | {np.mean(error['averaged']):+.2f} | {half:.2f} |")
        print(flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", default="2,8", help="comma-separated block sizes (default 2,8)")
    parser.add_argument("--seeds", default=None, type=int, help="seeds 0..N-1 (default 6 for 2 probes, 4 for more)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, torch {torch.__version__}", flush=True)
    for block in (int(b) for b in args.probes.split(",")):
        seeds = args.seeds if args.seeds is not None else (6 if block <= 2 else 4)
        report(measure(block, seeds), block)


if __name__ == "__main__":
    main()
