"""The spectral one-shot model against one-shot pruning: the suite's runs and networks outside it.

``pruning_limits.taylor.spectral_one_shot_limit`` predicts where one-shot magnitude pruning
first raises the loss by ε from the gradient, the weights and the spectrum alone: the Taylor
model ``gᵀd + ½dᵀ|H|d`` with ``½dᵀ|H|d`` replaced by ``½R² tr|H| / (D (1 − p₀))`` (a random
direction in the non-flat eigenspace). It was written after the orientation analysis of
docs/validation.md, so this script checks it twice:

1. On every cached run of the suite (the rows of ``run_validation.py``, seeds 0-2 of
   ``seed_spread.py`` where cached), from the model ``validate`` wrote into each record (``κ``
   from the spectrum's ``tr|H|``). A record older than the model is skipped with a message;
   deleting it and re-running ``run_validation.py`` (or ``seed_spread.py``) re-validates the
   cached network.
2. On networks outside the suite, not used in the orientation analysis that led to it (four of
   them were measured in the docs before it was written: see ``OUTSIDE_SUITE``), trained
   here with the library's recipe and validated with the default SLQ; here the model uses the
   spectrum itself (``tr|H|``) at three thresholds of ``p₀`` (1e-8, 1e-6, 1e-4).

Run from the project root (part 1 needs the suite's cache; both parts take about 1.5 minutes on
2 threads):

    python examples/validation/one_shot_model.py
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

#: Networks outside the suite: (model spec, data spec, λ), all with the library's training recipe.
#: The first four were measured in the docs before the model was written (the λ sweep of
#: ``l1_sweep.py`` and the demo's network); the last three are new.
OUTSIDE_SUITE = (
    ("mlp:32", "digits", 5e-4),
    ("mlp:32", "digits", 2e-3),
    ("mlp:32", "digits", 4e-3),
    ("mlp", "digits", 5e-4),
    ("mlp:16", "digits", 1e-3),
    ("mlp", "synthetic", 5e-4),
    ("mlp:64", "mnist1d", 5e-4),
)
TOLERANCES = (1e-8, 1e-6, 1e-4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", default="examples/validation/cache", help="cache of run_validation.py")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the suite's runs")
    parser.add_argument("--suite-only", action="store_true", help="only part 1 (the cached suite runs)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import numpy as np
    import torch

    from pruning_limits import build_model, load_data, train, validate
    from pruning_limits.report import markdown_table
    from pruning_limits.spectrum import DEFAULT_ITERATIONS, DEFAULT_PROBES
    from pruning_limits.taylor import spectral_one_shot_limit
    from run_validation import ROWS, cached_record, is_l1

    torch.set_num_threads(args.threads)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log(f"threads: torch.set_num_threads({args.threads}), OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    cache = Path(args.cache)
    rows, gaps = [], {}  # gaps: (λ > 0, seed) -> list of |model − measured| in points
    for row in ROWS:
        for seed in args.seeds:
            record = cached_record(row, seed, cache, iterations=DEFAULT_ITERATIONS, probes=DEFAULT_PROBES)
            if record is None:
                continue
            summary, measured = record["spectrum"], record["measured"]["limit_by_loss"]
            if not record.get("spectral_one_shot"):
                log(f"[{row.name} seed {seed}] skipped: its record predates the spectral one-shot model (delete it and re-run its validation)")
                continue
            model_sparsity = record["spectral_one_shot"]["sparsity"]
            model_gap = 100 * (model_sparsity - measured)
            gaps.setdefault((is_l1(row), seed), []).append(abs(model_gap))
            rows.append([
                row.name, seed, f"{record['training'].get('l1', row.l1):g}", f"{100 * measured:.1f}", f"{100 * record['difference']:+.1f}",
                f"{100 * (record['taylor_one_shot']['sparsity'] - measured):+.1f}", f"{summary['atom_at_zero']:.2f}",
                f"{model_gap:+.1f}",
            ])
    print("1. The suite's cached runs: predicted − measured-by-loss, points of sparsity")
    print(markdown_table(
        ["row", "seed", "λ", "measured (loss)", "kinematic (default)", "Taylor one-shot", "p₀", "spectral one-shot"],
        rows,
    ))
    print()
    print(markdown_table(
        ["runs", "seed", "max |model − measured|", "median", "within 2 points"],
        [
            ["l1-trained" if trained else "λ = 0 controls", seed, f"{max(v):.1f}", f"{np.median(v):.1f}", f"{sum(x <= 2 for x in v)}/{len(v)}"]
            for (trained, seed), v in sorted(gaps.items(), key=lambda item: (not item[0][0], item[0][1]))
        ],
    ))
    if args.suite_only:
        return 0

    held = []
    for model_spec, data_spec, l1 in OUTSIDE_SUITE:
        data = load_data(data_spec, seed=0)
        model = build_model(model_spec, data, seed=0)
        train(model, data, l1=l1, seed=0)
        result = validate(model, data, seed=0)
        measured, eps = result.sweep.limit_by_loss, result.prediction.epsilon
        cells = []
        for tol in TOLERANCES:
            estimate = spectral_one_shot_limit(result.weights, result.gradient, result.spectrum, eps, atom_tol=tol)
            cells.append(f"{100 * (estimate.sparsity - measured):+.1f} (p₀ {estimate.flat_fraction:.2f})")
        accuracy = result.sweep.dense_accuracy
        held.append([
            model_spec, data_spec, f"{l1:g}", result.prediction.dim, "–" if accuracy is None else f"{100 * accuracy:.1f}",
            f"{100 * measured:.1f}", f"{100 * result.difference:+.1f}",
            f"{100 * (result.taylor.sparsity - measured):+.1f}", *cells,
        ])
        log(f"[{model_spec} on {data_spec}, λ = {l1:g}] done")
    print()
    print("2. Networks outside the suite (seed 0): predicted − measured-by-loss, points of sparsity")
    print(markdown_table(
        ["model", "data", "λ", "D", "test acc.", "measured (loss)", "kinematic (default)", "Taylor one-shot",
         *[f"spectral one-shot, p₀ at {tol:g}" for tol in TOLERANCES]],
        held,
    ))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
