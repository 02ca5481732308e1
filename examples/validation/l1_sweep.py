"""How the agreement between predicted and measured limits depends on the l1 strength λ.

Trains one network per λ with the library's LOMP recipe and validates each (default SLQ
settings), printing the test accuracy, both predictions, the measured limit and how sharp the
knee of ``R(s)`` is there (``d ln R/ds``, ``pruning_limits.limits.knee_steepness``):

    python examples/validation/l1_sweep.py --model mlp:32 --data digits --l1 5e-4 1e-3 2e-3 4e-3
"""

from __future__ import annotations

import argparse
import os


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mlp:32")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--l1", type=float, nargs="+", default=[5e-4, 1e-3, 2e-3, 4e-3])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from pruning_limits import build_model, load_data, train, validate
    from pruning_limits.masks import distance_curve
    from pruning_limits.report import markdown_table
    from pruning_limits.limits import knee_steepness

    torch.set_num_threads(args.threads)
    print(f"threads: torch.set_num_threads({args.threads}), OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    data = load_data(args.data, seed=args.seed)
    rows = []
    for l1 in args.l1:
        model = build_model(args.model, data, seed=args.seed)
        train(model, data, l1=l1, seed=args.seed)
        result = validate(model, data, seed=args.seed)
        accuracy = result.sweep.dense_accuracy
        rows.append([
            f"{l1:g}",
            "–" if accuracy is None else f"{100 * accuracy:.1f}",
            f"{100 * result.prediction.sparsity:.1f}",
            f"{100 * result.paper_prediction.sparsity:.1f}",
            f"{100 * result.sweep.limit_by_loss:.1f}",
            f"{100 * result.difference:+.1f}",
            f"{100 * result.paper_difference:+.1f}",
            f"{knee_steepness(distance_curve(model), result.sweep.limit_by_loss):.0f}",
        ])
    header = ["λ", "test acc.", "predicted", "paper's model", "measured (loss)", "pred − meas", "paper − meas", "d ln R/ds"]
    print(f"{args.model} on {args.data} (sparsities in percent)")
    print(markdown_table(header, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
