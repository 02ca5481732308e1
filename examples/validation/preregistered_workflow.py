"""A fourth pre-registered test: the workflow the product recommends, on six new networks.

The third test (``preregistered_auto.py``) checked the command line's defaults alone and failed
on one network of six, which the product itself called *outside the regime*. Since then a
network the λ path leaves outside gets a ``next`` command with a stronger λ and its cost
(``follow_next_step.py`` followed it on the two outside networks: both came in, predicted to
+0.0 points). This test checks the claim a user relies on, on networks none of the earlier
tests used. Everything below was fixed and committed before any of these networks was trained
(see the commit that added this file):

- **The networks** (``NETWORKS``): six, on data generated here with seed ``DATA_SEED`` and never
  used in the suite nor in the three earlier pre-registered tests: ``make_moons``,
  ``make_circles``, ``make_blobs`` (overlapping clusters), ``make_classification`` with six
  classes and 50 features under an MLP of 158 208 weights, ``make_friedman3`` (regression, MSE),
  and a CNN on 12×12 images of oriented gratings drawn here (``gratings``). Each is written as a
  user's ``.npz`` (standardised features), as in ``preregistered_auto.py``.
- **The protocol:** ``pruning-limit train --model M --data F.npz -o net.pt`` and
  ``pruning-limit validate net.pt`` with every default (``--l1 auto``), one thread; when
  ``validate`` says *outside the regime*, its ``next`` command exactly as printed, then
  ``validate`` again (``follow_next_step.follow``). The measured limit is the one-shot limit
  by loss.
- **The rule:** the test passes when (i) every prediction the product marks *in regime*, at
  either stage, is within ``MAX_GAP`` = 3 points of sparsity of the measured limit, and (ii)
  every network is *in regime* after at most one ``next`` step. Test accuracies before and
  after are reported beside it and judged by no rule.
- **What follows:** the verdict is reported in docs/validation.md as it comes; a miss with its
  network and the candidate causes examined one at a time. No default changes because of it,
  and a pass does not undo the third test's failure (that rule was about the defaults alone).

Run from the project root::

    python examples/validation/preregistered_workflow.py
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path

#: (name, model spec, data generator).
NETWORKS = (
    ("moons", "mlp:64,64", "make_moons"),
    ("circles", "mlp:64", "make_circles"),
    ("blobs", "mlp:32", "make_blobs"),
    ("classification-50-wide", "mlp:512,256", "make_classification_50"),
    ("friedman3", "mlp:32", "make_friedman3"),
    ("gratings-cnn", "cnn", "gratings"),
)
MAX_GAP = 3.0  # points of sparsity
DATA_SEED = 2027


def gratings(n: int, rng) -> tuple:
    """12×12 grey images of sinusoidal gratings at four orientations, random phase and frequency, with noise."""
    import numpy as np

    side = 12
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
    y = rng.integers(0, 4, size=n)
    angles = np.array([0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4])
    x = np.empty((n, side, side))
    for i in range(n):
        angle = angles[y[i]] + rng.normal(0.0, 0.15)
        frequency = rng.uniform(0.6, 1.2)
        phase = rng.uniform(0.0, 2 * np.pi)
        x[i] = np.sin(frequency * (np.cos(angle) * xx + np.sin(angle) * yy) + phase) + 0.8 * rng.standard_normal((side, side))
    return x, y


def write_data(generator: str, folder: Path) -> str:
    """Generate the data set ``generator`` (seed ``DATA_SEED``) and write it as an .npz; its path."""
    import numpy as np
    from sklearn import datasets

    rng = np.random.default_rng(DATA_SEED)
    if generator == "make_moons":
        x, y = datasets.make_moons(3000, noise=0.3, random_state=DATA_SEED)
    elif generator == "make_circles":
        x, y = datasets.make_circles(3000, noise=0.15, factor=0.6, random_state=DATA_SEED)
    elif generator == "make_blobs":
        x, y = datasets.make_blobs(3000, n_features=10, centers=5, cluster_std=3.0, random_state=DATA_SEED)
    elif generator == "make_classification_50":
        x, y = datasets.make_classification(5000, 50, n_informative=30, n_classes=6, random_state=DATA_SEED)
    elif generator == "make_friedman3":
        x, y = datasets.make_friedman3(2000, noise=0.1, random_state=DATA_SEED)
    elif generator == "gratings":
        x, y = gratings(3000, rng)
    else:
        raise ValueError(f"unknown generator {generator!r}")
    x = np.asarray(x, dtype=np.float64)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    if np.asarray(y).dtype.kind == "f":
        y = ((y - y.mean()) / y.std()).astype(np.float32)
    else:
        y = np.asarray(y).astype(np.int64)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{generator}.npz"
    np.savez(path, x=x.astype(np.float32), y=y)
    return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", type=int, nargs="*", default=None, help="indices to run (default: all missing)")
    parser.add_argument("--cache", default="examples/validation/cache", help="cache folder")
    args = parser.parse_args(argv)
    follow = runpy.run_path(str(Path(__file__).with_name("follow_next_step.py")))
    folder = Path(args.cache) / "preregistered_workflow"
    registered = {"NETWORKS": NETWORKS, "write_data": write_data}
    indices = range(len(NETWORKS)) if args.networks is None else args.networks
    for i in indices:
        target = folder / f"{i}-{NETWORKS[i][0]}.json"
        if target.exists():
            continue
        print(f"[{NETWORKS[i][0]}] running", file=sys.stderr, flush=True)
        record = follow["follow"](i, folder, registered)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(target)
    records, missing = [], []
    for i, network in enumerate(NETWORKS):
        target = folder / f"{i}-{network[0]}.json"
        if target.exists():
            records.append(json.loads(target.read_text()))
        else:
            missing.append(network[0])
    if not records:
        print("no network has a record yet", file=sys.stderr)
        return 0
    from pruning_limits.report import markdown_table

    rows = []
    for r in records:
        rows.append(follow["row"](r["name"], "λ auto", r["before"]))
        if r["after"] is not None:
            rows.append(follow["row"](r["name"], "after `next`", r["after"]))
    print(markdown_table(["network", "stage", "λ", "test acc.", "predicted", "measured (loss)", "pred − meas",
                          "d ln R/ds at s*", "trust"], rows))
    stages = [s for r in records for s in (r["before"], r["after"]) if s is not None]
    trusted = [abs(100 * (s["predicted"] - s["measured"])) for s in stages if s["trust"] == "in regime"]
    brought_in = all((r["after"] or r["before"])["trust"] == "in regime" for r in records)
    first = not trusted or max(trusted) <= MAX_GAP
    if not (first and brought_in):
        verdict = "fails"
    else:
        verdict = "passes" if not missing else f"undecided ({len(missing)} networks not run: {', '.join(missing)})"
    largest = f"{max(trusted):.1f}" if trusted else "none"
    print(f"\n(i) in-regime predictions within {MAX_GAP:g} points: {'yes' if first else 'no'} "
          f"({len(trusted)} of {len(stages)} predictions in regime, largest |gap| {largest}); "
          f"(ii) every network in regime after at most one next step: {'yes' if brought_in else 'no'}")
    print(f"rule: {verdict} ({len(records)} of {len(NETWORKS)} networks run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
