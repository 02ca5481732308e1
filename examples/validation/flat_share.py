"""Does the pruned direction avoid the flat eigenspace? The premise of the spectral one-shot model, measured.

``pruning_limits.taylor.spectral_one_shot_limit`` (docs/theory.md §6b) assumes that the direction
``d = w^k − w*`` of one-shot pruning near its limit lies in the non-flat eigenspace of the
Hessian. On the suite's rows small enough for a dense float64 Hessian (the rows of
``run_validation.py`` with ``exact=True``), this prints, at the measured limit by loss:

- ``flat share``: ``‖P_flat d‖² / ‖d‖²``, the share of ``d`` in the eigenspace with
  ``|λ| ≤ 1e-6·max|λ|`` (the model's threshold); the flat fraction ``p₀`` is what a uniformly
  random direction would put there;
- ``dᵀ|H|d / ‖d‖²`` against the model's ``κ = tr|H| / (D (1 − p₀))`` and the all-directions mean
  ``tr|H| / D``.

Run from the project root after ``run_validation.py`` (it reads the records and networks of its
cache):

    python examples/validation/flat_share.py
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", default="examples/validation/cache", help="cache of run_validation.py")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import copy
    import sys

    import numpy as np
    import torch

    from pruning_limits.data import load_data
    from pruning_limits.hessian import HessianOperator
    from pruning_limits.masks import pruning_order
    from pruning_limits.objective import flat_weights
    from pruning_limits.report import markdown_table
    from pruning_limits.spectrum import DEFAULT_ITERATIONS, DEFAULT_PROBES, dense_hessian
    from pruning_limits.taylor import DEFAULT_ATOM_TOL
    from run_validation import ROWS, bundle_path, cached_record, trained_model

    torch.set_num_threads(args.threads)
    print(f"threads: torch.set_num_threads({args.threads}), OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}",
          file=sys.stderr)
    cache = Path(args.cache)
    rows = []
    for row in ROWS:
        if not row.exact:
            continue
        record = cached_record(row, 0, cache, iterations=DEFAULT_ITERATIONS, probes=DEFAULT_PROBES)
        if record is None or not bundle_path(row, 0, cache).exists():
            parser.error(f"expected the cached record and network of {row.name} (run run_validation.py first)")
        data = load_data(row.data, seed=0)
        model, _ = trained_model(row, data, cache, 0, lambda message: None)
        analysed = copy.deepcopy(model).to(torch.float64)
        weights = flat_weights(analysed)
        eigenvalues, vectors = np.linalg.eigh(dense_hessian(HessianOperator(analysed, data.train)))
        magnitudes = np.abs(eigenvalues)
        flat = magnitudes <= DEFAULT_ATOM_TOL * magnitudes.max()
        dim = weights.size
        pruned = int(round(record["measured"]["limit_by_loss"] * dim))
        removed = pruning_order(analysed)[:pruned]
        d = np.zeros(dim)
        d[removed] = -weights[removed]
        coordinates = vectors.T @ d
        norm2 = float(d @ d)
        p0 = float(flat.mean())
        mean_abs = float(magnitudes.mean())
        rows.append([
            row.name, dim, f"{100 * record['measured']['limit_by_loss']:.1f}", f"{p0:.2f}",
            f"{float(np.sum(coordinates[flat] ** 2)) / norm2:.3f}",
            f"{float(np.sum(magnitudes * coordinates**2)) / norm2:.3g}", f"{mean_abs / (1 - p0):.3g}", f"{mean_abs:.3g}",
        ])
    print(markdown_table(
        ["row", "D", "measured (loss)", "p₀ (exact)", "flat share of d", "dᵀ|H|d/‖d‖²", "κ = tr|H|/(D(1−p₀))", "tr|H|/D"],
        rows,
    ))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
