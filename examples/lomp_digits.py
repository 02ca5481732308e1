"""LOMP on scikit-learn's digits: l1 training, one-shot global magnitude pruning sweep.

Trains a zoo model on ``digits`` with the l1 penalty of Zhang et al. (NeurIPS 2024, LOMP),
prunes it once at increasing sparsity (no fine-tuning), and prints the measured pruning
limits under the loss criterion (the theory's, with ε = "batch-std" unless given) and the
accuracy criterion (the paper's tables).

Run (about 10 s on one CPU core)::

    python examples/lomp_digits.py
    python examples/lomp_digits.py --model cnn --l1 0      # without l1, for comparison
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from pruning_limits.data import load_data
from pruning_limits.lomp import DEFAULT_EPOCHS, DEFAULT_L1, sweep, train
from pruning_limits.models import build_model
from pruning_limits.objective import flat_weights


def run(model_spec: str, l1: float, epochs: int, epsilon: float | str, seed: int, progress: bool) -> dict:
    """Train, sweep, and return a JSON-serialisable summary."""
    data = load_data("digits", seed=seed)
    model = build_model(model_spec, data, seed=seed)
    start = time.perf_counter()
    history = train(model, data, l1=l1, epochs=epochs, seed=seed, progress=progress)
    seconds = time.perf_counter() - start
    weights = np.abs(flat_weights(model))
    result = sweep(model, data, epsilon=epsilon, progress=progress)
    return {
        "model": model_spec,
        "l1": l1,
        "epochs": epochs,
        "train_seconds": round(seconds, 2),
        "dim": result.dim,
        "test_accuracy": result.dense_accuracy,
        "fraction_abs_w_below_1e-3": float(np.mean(weights < 1e-3)),
        "epsilon": result.epsilon,
        "dense_loss": result.dense_loss,
        "limit_by_loss": result.limit_by_loss,
        "limit_by_accuracy": result.limit_by_accuracy,
        "curve": {
            "sparsity": [round(float(s), 4) for s in result.sparsities],
            "train_loss": [round(float(v), 5) for v in result.train_loss],
            "test_accuracy": [round(float(v), 4) for v in result.test_accuracy],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp", help="zoo model spec (default: mlp)")
    parser.add_argument("--l1", type=float, default=DEFAULT_L1, help=f"l1 strength (default {DEFAULT_L1})")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"epochs (default {DEFAULT_EPOCHS})")
    parser.add_argument("--epsilon", default="batch-std", help="loss tolerance: a number or batch-std")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the full summary as JSON")
    parser.add_argument("--progress", action="store_true", help="progress bars on stderr")
    args = parser.parse_args()
    epsilon = args.epsilon if args.epsilon == "batch-std" else float(args.epsilon)
    summary = run(args.model, args.l1, args.epochs, epsilon, args.seed, args.progress)
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"digits {summary['model']}: D = {summary['dim']} prunable weights, l1 = {summary['l1']}, "
          f"{summary['epochs']} epochs in {summary['train_seconds']} s")
    print(f"  test accuracy {summary['test_accuracy']:.4f}, "
          f"fraction of |w| < 1e-3: {summary['fraction_abs_w_below_1e-3']:.3f}")
    print(f"  epsilon {summary['epsilon']:.5f} (dense training loss {summary['dense_loss']:.5f})")
    print(f"  measured limit, loss criterion:     sparsity {summary['limit_by_loss']:.4f}")
    print(f"  measured limit, accuracy criterion: sparsity {summary['limit_by_accuracy']:.4f}")
    print("  sparsity  train loss  test accuracy")
    curve = summary["curve"]
    for s, loss, acc in zip(curve["sparsity"], curve["train_loss"], curve["test_accuracy"]):
        if round(s * 40) % 4 == 0:
            print(f"  {s:8.3f}  {loss:10.5f}  {acc:13.4f}")


if __name__ == "__main__":
    main()
