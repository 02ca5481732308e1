"""Both pre-registered tests together, split by whether the local quadratic model holds (post hoc).

Not part of either test's rule, and chosen after both were run: a description, not a test. It
reads the records of ``preregistered.py`` and ``preregistered_flat_knee.py`` (run those first),
leaves out classifiers below 50 % test accuracy (the second test's rule) and the second test's
network that repeats a suite row (``SUITE_DUPLICATES``, found after the run), and splits the
networks by the Taylor one-shot diagnostic: within 1 point of the measured limit (the quadratic
expansion at ``w*`` describes one-shot pruning) or further off (it does not). For each group it
prints max and median |model − measured| and how many networks lie within 2 points, for the
default (kinematic) prediction, the spectral one-shot candidate and the Taylor diagnostic.
Run from the project root (seconds):

    python examples/validation/pooled_preregistered.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

TAYLOR_HOLDS = 1.0  # points of sparsity


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    import preregistered
    import preregistered_flat_knee
    from preregistered import gap, read_records
    from pruning_limits.report import markdown_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", default="examples/validation/cache", help="cache folder of the two tests")
    args = parser.parse_args(argv)
    records = []
    for module, folder in ((preregistered, "preregistered"), (preregistered_flat_knee, "preregistered_flat_knee")):
        found = read_records(module.NETWORKS, Path(args.cache) / folder)
        if found is None:  # read_records has said how many are missing
            parser.error(f"run examples/validation/{module.__name__}.py first")
        if module is preregistered_flat_knee:  # a suite row found among its networks after the run
            found = [r for i, r in enumerate(found) if i not in module.SUITE_DUPLICATES]
        records += found
    minimum = preregistered_flat_knee.MIN_ACCURACY
    judged = [r for r in records if r["test_accuracy"] is None or r["test_accuracy"] >= minimum]
    groups = (
        ("all", judged),
        (f"Taylor within {TAYLOR_HOLDS:g} point", [r for r in judged if abs(gap(r, "taylor")) <= TAYLOR_HOLDS]),
        (f"Taylor off by more than {TAYLOR_HOLDS:g}", [r for r in judged if abs(gap(r, "taylor")) > TAYLOR_HOLDS]),
    )

    def cell(group: list[dict], key: str) -> str:
        gaps = np.abs([gap(r, key) for r in group])
        return f"{gaps.max():.1f} / {np.median(gaps):.1f} / {int((gaps <= 2).sum())}"

    print(f"The {len(judged)} new networks of both pre-registered tests (post hoc; "
          f"{len(records) - len(judged)} below {100 * minimum:.0f} % test accuracy left out): "
          "max / median |model − measured| / networks within 2 points")
    print(markdown_table(
        ["networks", "n", "kinematic (default)", "spectral one-shot (candidate)", "Taylor one-shot (diagnostic)"],
        [[label, len(group), cell(group, "kinematic"), cell(group, "one_shot"), cell(group, "taylor")]
         for label, group in groups if group],
    ))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
