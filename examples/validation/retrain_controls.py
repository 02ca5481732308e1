"""Where the kinematic number of a λ = 0 network sits: one-shot limit, prediction, re-trained limit.

THEORY §9: for a network outside the LOMP regime the kinematic prediction is neither the one-shot
limit nor the limit after re-training. This script measures both ends on the suite's λ = 0
controls (their cached networks and records from ``run_validation.py``): the one-shot limit by
loss (the suite's), and ``lomp.retrained_limit`` — prune globally by magnitude, fine-tune the kept
weights with the mask fixed for ``EPOCHS`` epochs (SGD, momentum 0.9, lr 0.01 cosine, batch 128),
accept when the training loss is at most ``L* + ε`` (the prediction's ε), bisect over sparsity to
half a point. The same as ``pruning-limit validate CKPT --retrain 20``. Run from the project root
after the suite:

    python examples/validation/retrain_controls.py --rows digits-mlp32-nol1,synthetic-mlp-nol1
    python examples/validation/retrain_controls.py            # every control with a cached record
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EPOCHS = 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", help="comma-separated control rows (default: all controls)")
    parser.add_argument("--cache", default="examples/validation/cache")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch

    from run_validation import BY_NAME, ROWS, bundle_path, cached_record, is_l1
    from pruning_limits.checkpoint import build_from_checkpoint, read_checkpoint
    from pruning_limits.data import load_data
    from pruning_limits.lomp import retrained_limit
    from pruning_limits.report import markdown_table, write_json
    from pruning_limits.spectrum import DEFAULT_ITERATIONS, DEFAULT_PROBES

    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    names = args.rows.split(",") if args.rows else [r.name for r in ROWS if not is_l1(r)]
    out = cache / "retrain"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        row = BY_NAME[name]
        target = out / f"{name}-{EPOCHS}.json"
        record = cached_record(row, 0, cache, iterations=DEFAULT_ITERATIONS, probes=DEFAULT_PROBES)
        if record is None or not bundle_path(row, 0, cache).exists():
            print(f"[{name}] no cached record or network: run run_validation.py first", file=sys.stderr)
            continue
        if target.exists():
            result = json.loads(target.read_text())
        else:
            data = load_data(row.data, seed=0)
            model = build_from_checkpoint(read_checkpoint(bundle_path(row, 0, cache)), data=data)
            result = retrained_limit(model, data, epsilon=record["predicted"]["epsilon"], epochs=EPOCHS, seed=0).to_dict()
            write_json(target, result)  # atomic: an interrupted run leaves no half-written cache file
            print(f"[{name}] re-trained limit {result['limit']:.4f}", file=sys.stderr, flush=True)
        one_shot, predicted, retrained = record["measured"]["limit_by_loss"], record["predicted"]["sparsity"], result["limit"]
        where = (predicted - one_shot) / max(retrained - one_shot, 1e-12)
        rows.append([name, f"{100 * one_shot:.1f}", f"{100 * predicted:.1f}", f"{100 * retrained:.1f}",
                     f"{100 * (predicted - retrained):+.1f}", f"{where:.2f}"])
    print(markdown_table(["control", "one-shot limit", "predicted s*", f"re-trained limit ({EPOCHS} epochs)",
                          "predicted − re-trained", "position (0 = one-shot, 1 = re-trained)"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
