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

``--evidence`` instead writes the ``flat_knee`` section of ``pruning_limits/evidence.json`` (the
range the trust messages quote for a flat knee) from the cached records of three scripts, run
first with the same ``--cache``:

    python examples/validation/seed_spread.py --fixed-l1 --seeds 0 1 2
    python examples/validation/preregistered.py
    python examples/validation/preregistered_flat_knee.py
    python examples/validation/pooled_preregistered.py --evidence

It pools the distinct l1-trained runs of the three (:func:`flat_knee_section`): the suite's seven
l1 rows at the λ fixed by hand before 2026-12-04 with seeds 0, 1 and 2, the eight networks of the
first test and the ten of the second, whose network 4 repeats the suite's ``mnist1d-mlp`` seed 0
and is counted once, as a suite run. A run is *flagged* when ``d ln R/ds`` at the prediction
``s*`` (the record's ``Prediction.knee_steepness``) is below ``limits.FLAT_KNEE``, the test of
the command line's note. Classifiers below 50 % test accuracy are counted like the others (the
note fires on them too), as the hand-pooled count of 2026-11-22 did. It prints every pooled run
and writes the range of the flagged runs' default − measured (points of sparsity, ε =
batch-std), their number and how many of them are the second test's new networks (blind).
"""

from __future__ import annotations

import argparse
from pathlib import Path

TAYLOR_HOLDS = 1.0  # points of sparsity
#: The seeds of ``seed_spread.py --fixed-l1`` that ``--evidence`` pools.
EVIDENCE_SEEDS = (0, 1, 2)
DEFAULT_CACHE = "examples/validation/cache"


def suite_run(record: dict, name: str) -> dict:
    """A ``run_validation.run_row`` record in the shape of the pre-registered tests' records (the fields pooled)."""
    predicted, measured = record["predicted"], record["measured"]
    return {
        "name": name, "measured": measured["limit_by_loss"], "kinematic": predicted["sparsity"],
        "knee_steepness_at_prediction": predicted["knee_steepness"], "test_accuracy": measured["dense_accuracy"],
    }


def flat_knee_section(suite: list[dict], first: list[dict], second: list[dict], duplicates, level: float) -> dict:
    """The evidence file's ``flat_knee`` section from the three sources' records (without ``written_by``/``date``).

    Args:
        suite: the runs of ``seed_spread.py --fixed-l1`` (:func:`suite_run`'s shape).
        first: the records of ``preregistered.py``.
        second: the records of ``preregistered_flat_knee.py``, in the order of its ``NETWORKS``.
        duplicates: indices into ``second`` that repeat a suite run (counted once, as that suite run).
        level: the flat-knee level (``limits.FLAT_KNEE``); a run is flagged below it.

    Returns:
        ``level``, ``gaps`` (``[low, high]`` of default − measured over the flagged runs, points of
        sparsity, rounded to 0.1), ``runs`` (flagged), ``blind_runs`` (flagged among ``second``'s
        new networks), ``others`` (the same for the runs not flagged), ``pooled_runs`` and
        ``flagged_by_source``.
    """
    from pruning_limits.regime import gap_range

    sources = {
        "seed_spread.py --fixed-l1": suite,
        "preregistered.py": first,
        "preregistered_flat_knee.py": [r for i, r in enumerate(second) if i not in set(duplicates)],
    }

    def flagged(r: dict) -> bool:
        return r["knee_steepness_at_prediction"] < level

    runs = [r for group in sources.values() for r in group]
    sides = {side: [r["kinematic"] - r["measured"] for r in runs if flagged(r) == side] for side in (True, False)}
    return {
        "level": level,
        **gap_range(sides[True]),
        "blind_runs": sum(flagged(r) for r in sources["preregistered_flat_knee.py"]),
        "others": gap_range(sides[False]),
        "pooled_runs": len(runs),
        "flagged_by_source": {name: sum(flagged(r) for r in group) for name, group in sources.items()},
    }


def read_evidence_records(cache: Path) -> tuple[list[dict], list[dict], list[dict], list[Path]]:
    """The cached records ``--evidence`` pools, read from ``cache`` without running anything.

    Returns:
        The runs of ``seed_spread.py --fixed-l1`` (:func:`suite_run`'s shape, rows in ``ROWS`` order,
        seeds :data:`EVIDENCE_SEEDS`), the records of ``preregistered.py`` and of
        ``preregistered_flat_knee.py``, and the files read.

    Raises:
        SystemExit: one line naming every record missing (or too old to hold the knee at ``s*``).
    """
    import json

    import preregistered
    import preregistered_flat_knee
    from preregistered import record_name
    from pruning_limits.spectrum import DEFAULT_ITERATIONS, DEFAULT_PROBES
    from run_validation import record_paths
    from seed_spread import fixed_l1_rows

    missing, files, suite = [], [], []
    for name, row in fixed_l1_rows().items():
        absent = []
        for seed in EVIDENCE_SEEDS:
            paths = [p for p in record_paths(row, seed, cache, iterations=DEFAULT_ITERATIONS, probes=DEFAULT_PROBES)
                     if p.exists()]
            if not paths:
                absent.append(str(seed))
                continue
            record = json.loads(paths[0].read_text())
            if "knee_steepness" not in record.get("predicted", {}):
                raise SystemExit(f"--evidence: expected a record with predicted.knee_steepness in {paths[0]}, found an "
                                 f"older one; delete it and run seed_spread.py --fixed-l1 --rows {name} --seeds {seed}")
            suite.append(suite_run(record, f"{name} seed {seed}"))
            files.append(paths[0])
        if absent:
            missing.append(f"seed_spread.py --fixed-l1 {name} seeds {' '.join(absent)}")
    tests = []
    for module in (preregistered, preregistered_flat_knee):
        folder = cache / module.__name__
        paths = [folder / record_name(i, module.NETWORKS) for i in range(len(module.NETWORKS))]
        absent = [i for i, p in enumerate(paths) if not p.exists()]
        if absent:
            missing.append(f"{module.__name__}.py networks {' '.join(map(str, absent))}")
        tests.append(paths)
    if missing:
        raise SystemExit(f"--evidence: expected every record in {cache}; missing: {'; '.join(missing)} "
                         "(run those scripts first with the same --cache)")
    first, second = (preregistered.read_records(module.NETWORKS, cache / module.__name__)
                     for module in (preregistered, preregistered_flat_knee))
    return suite, first, second, files + tests[0] + tests[1]


def write_evidence(cache: Path) -> int:
    """``--evidence``: print the pooling and every pooled run, and write the evidence file's ``flat_knee`` section.

    The section's ``date`` is the UTC day (or days) the records were written.
    """
    from datetime import datetime, timezone

    import numpy as np

    import preregistered_flat_knee
    from preregistered import gap
    from pruning_limits.limits import FLAT_KNEE
    from pruning_limits.regime import write_evidence_section
    from pruning_limits.report import markdown_table

    suite, first, second, files = read_evidence_records(cache)
    duplicates = preregistered_flat_knee.SUITE_DUPLICATES
    section = flat_knee_section(suite, first, second, duplicates, FLAT_KNEE)
    low, high = section["gaps"]
    others = section["others"]
    print(f"{section['runs']} of the {section['pooled_runs']} distinct l1-trained runs have d ln R/ds at s* < "
          f"{FLAT_KNEE:g} ({section['blind_runs']} of them blind):\n"
          f"default − measured {low:+.1f} to {high:+.1f} points; the {others['runs']} others "
          f"{others['gaps'][0]:+.1f} to {others['gaps'][1]:+.1f}")
    minimum = preregistered_flat_knee.MIN_ACCURACY
    table = []
    for source, records in (("seed_spread.py --fixed-l1", suite), ("preregistered.py", first),
                            ("preregistered_flat_knee.py", second)):
        for i, r in enumerate(records):
            name = r.get("name") or f"{i}: {r['model']} on {r['data']}, λ = {r['l1']:g}"
            accuracy = r["test_accuracy"]
            repeated = source == "preregistered_flat_knee.py" and i in duplicates
            shown = "–" if accuracy is None else f"{100 * accuracy:.1f}" + (" (collapsed)" if accuracy < minimum else "")
            table.append([
                source, name, shown,
                f"{r['knee_steepness_at_prediction']:.0f}", f"{gap(r, 'kinematic'):+.1f}",
                f"counted as the suite's {duplicates[i]} seed 0" if repeated
                else "yes" if r["knee_steepness_at_prediction"] < FLAT_KNEE else "no",
            ])
    print(markdown_table(["script", "run", "test acc.", "d ln R/ds at s*", "default − measured", "flagged"], table))
    for index, name in duplicates.items():
        twin = next(r for r in suite if r["name"] == f"{name} seed 0")
        same = np.isclose(gap(twin, "kinematic"), gap(second[index], "kinematic"), rtol=0, atol=1e-9)
        print(f"network {index} of preregistered_flat_knee.py repeats the suite's {name} seed 0:\n"
              f"default − measured {gap(second[index], 'kinematic'):+.2f} and {gap(twin, 'kinematic'):+.2f} points "
              f"({'the same' if same else 'they differ; the suite run is the one pooled'})")
    option = "" if str(cache) == DEFAULT_CACHE else f" --cache {cache}"
    repeats = ", ".join(f"its network {i} repeats the suite's {name} seed 0" for i, name in duplicates.items())
    days = sorted({datetime.fromtimestamp(p.stat().st_mtime, timezone.utc).date().isoformat() for p in files})
    section.update(
        what=f"l1-trained runs whose d ln R/ds at s* (the record's Prediction.knee_steepness) was below the level: "
             f"range of the default prediction minus the measured one-shot limit by loss (points of sparsity, "
             f"eps = batch-std), over the {section['pooled_runs']} distinct runs of seed_spread.py --fixed-l1 "
             f"(the suite's {len(suite) // len(EVIDENCE_SEEDS)} l1 rows at the λ fixed before 2026-12-04, seeds "
             f"{' '.join(map(str, EVIDENCE_SEEDS))}), preregistered.py ({len(first)}) and preregistered_flat_knee.py "
             f"({len(second)}; {repeats}, counted once as the suite's run); classifiers below {100 * minimum:.0f} % "
             "test accuracy counted like the others; "
             "blind_runs: the flagged among preregistered_flat_knee.py's new networks; others: the runs not flagged",
        written_by=f"python examples/validation/pooled_preregistered.py --evidence{option}, from the cached records of "
                   f"python examples/validation/seed_spread.py --fixed-l1 --seeds 0 1 2{option}, "
                   f"python examples/validation/preregistered.py{option} and "
                   f"python examples/validation/preregistered_flat_knee.py{option}",
        date=" and ".join(days),
    )
    target = write_evidence_section("flat_knee", section)
    shown = target.relative_to(Path.cwd()) if target.is_relative_to(Path.cwd()) else target
    print(f"wrote the flat_knee section of {shown} (records of {section['date']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    import preregistered
    import preregistered_flat_knee
    from preregistered import gap, read_records
    from pruning_limits.report import markdown_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="cache folder of the tests (and of seed_spread.py)")
    parser.add_argument("--evidence", action="store_true",
                        help="write the flat_knee section of pruning_limits/evidence.json from the records of "
                             "seed_spread.py --fixed-l1 --seeds 0 1 2, preregistered.py and preregistered_flat_knee.py")
    args = parser.parse_args(argv)
    if args.evidence:
        return write_evidence(Path(args.cache))
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
