"""Theory against measurement on real networks: the validation suite behind docs/validation.md.

For every row it trains the network with LOMP (or reuses a cached bundle), predicts the pruning
limit from the Hessian spectrum, measures it by one-shot global magnitude pruning, and writes

- ``docs/validation.json``: every number of every row,
- ``docs/validation/<row>-*.png``: the spectrum and the prediction/measurement figures,
- the table between the ``<!-- BEGIN GENERATED -->`` / ``<!-- END GENERATED -->`` markers of
  ``docs/validation.md`` (the hand-written analysis around it is kept).

Run from the project root::

    python examples/validation/run_validation.py            # all rows (about an hour of one core: docs/validation.md)
    python examples/validation/run_validation.py --quick    # one small row, few Lanczos steps, into examples/validation/cache/quick
    python examples/validation/run_validation.py --rows digits-mlp32,digits-mlp32-nol1 --docs /tmp/validation-part
    python examples/validation/run_validation.py --evidence-from docs/validation.json docs/validation-architectures.json

A run that would leave out rows the ``--docs`` folder's ``validation.json`` holds (``--rows``, or
``--cached-only`` with rows not cached), or replace figures in ``<docs>/validation/`` of rows that
JSON does not hold, stops before any work unless ``--force``: point ``--docs`` at a scratch folder
for such a run (as docs/validation.md's architecture rows do). A run with no row to produce
(``--cached-only`` and nothing cached) writes nothing. ``--cached-only`` counts a row as cached
when its record (with ablations, under ``--ablations``) and, unless ``--no-figures``, its figures
in ``--docs`` are there: it computes nothing.

``--quick`` writes ``validation-quick.json`` and figures named ``<row>-quick-*.png`` into
``examples/validation/cache/quick`` unless ``--docs`` is given (CI passes a temporary folder and
``--no-figures``); it never writes ``validation.md``, and never the suite's figures.

A run of every row with seed 0 also writes the ``suite`` section of
``pruning_limits/evidence.json`` (the ranges the trust messages quote). ``--evidence-from`` writes
that section from JSON files this script wrote before (together every row once, seed 0), without
re-running anything: for a suite assembled from runs of several sessions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

BEGIN, END = "<!-- BEGIN GENERATED -->", "<!-- END GENERATED -->"


@dataclass(frozen=True)
class Row:
    """One network of the suite: what to train and how."""

    name: str
    model: str
    data: str
    l1: float | str  # a number pins λ; "auto": chosen on the regularisation path (pruning_limits.regpath)
    epochs: int = 100
    lr: float = 0.05
    exact: bool = False  # also predict from the exact (dense) spectrum
    init: str | None = None  # start from this row's trained network (``train --init``) instead of a fresh one


def is_l1(row: dict | Row) -> bool:
    """Whether a row (or a record's row) is l1-trained: λ auto or a number > 0."""
    l1 = row["l1"] if isinstance(row, dict) else row.l1
    return l1 == "auto" or float(l1) > 0


# λ of the l1 rows: "auto", the library's default (``train --l1 auto``): the largest λ on the
# regularisation path whose validation accuracy (loss for regression) is within the rule's tolerance
# of the best (pruning_limits.regpath). Until 2026-12-04 the λ were fixed by hand: 1e-3, and 5e-4
# for fc5 (which collapsed at 1e-3). Every family has a λ = 0 control, and every control is also
# taken through ``train --init`` (the "-init" rows: the control's weights, l1 fine-tuned along the path).
_FAMILIES = (
    ("digits-mlp32", "mlp:32", "digits", True),
    ("digits-mlp256x128", "mlp:256,128", "digits", False),
    ("digits-cnn", "cnn", "digits", False),
    ("digits-fc5", "fc5", "digits", False),
    ("mnist1d-mlp", "mlp", "mnist1d", True),
    ("mnist1d-cnn1d", "cnn1d", "mnist1d", False),
    ("synthetic-mlp", "mlp", "synthetic", False),
)
ROWS = tuple(
    row
    for name, model, data, exact in _FAMILIES
    for row in (
        Row(name, model, data, "auto", exact=exact),
        Row(f"{name}-nol1", model, data, 0.0, exact=exact),
        Row(f"{name}-init", model, data, "auto", exact=exact, init=f"{name}-nol1"),
    )
)
# real architectures (issue 19), on data generated locally, λ = 1e-3 fixed beforehand (they were
# added before λ auto became the default and ran with it): a CIFAR-style ResNet-20 with BatchNorm
# (first-stage width 4, 16×16 colour images so that a row runs in minutes on one core) and a
# two-layer transformer on token sequences. docs/validation.md ("Real architectures") quotes them
# from runs of their own; the ResNet's with --iterations 100 --probes 4 (a product costs 1.3 s of
# CPU there).
ROWS += (
    Row("patterns-resnet20", "resnet20:4", "patterns:n=600,test=200,size=16", 1e-3),
    Row("tokens-transformer", "transformer:16,2,2", "tokens:n=1000,test=250", 1e-3),
)

BY_NAME = {row.name: row for row in ROWS}

#: The reduced row CI runs (tests/test_validation.py): trains in seconds, fewer Lanczos steps.
QUICK_ROW = "digits-mlp256x128"
QUICK_ITERATIONS, QUICK_PROBES = 100, 2
#: Where ``--quick`` writes without ``--docs`` (ignored by git, beside the cache), and the suffix of
#: its figure names, so that it never replaces the suite's figures.
QUICK_DOCS = "examples/validation/cache/quick"
QUICK_FIGURE_SUFFIX = "-quick"
FIGURE_KINDS = ("spectrum", "prediction")


def cache_key(row: Row, seed: int) -> str:
    from pruning_limits import __version__

    text = json.dumps({**asdict(row), "seed": seed, "version": __version__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def bundle_path(row: Row, seed: int, cache: Path) -> Path:
    """Where the trained network of ``row`` and ``seed`` is cached."""
    return cache / f"{row.name}-{cache_key(row, seed)}.pt"


def trained_model(row: Row, data, cache: Path | None, seed: int, log) -> tuple[object, dict]:
    """Train ``row`` (λ pinned, or chosen on the path; from a fresh start or from ``row.init``), or load its cached bundle."""
    from pruning_limits.checkpoint import build_from_checkpoint, read_checkpoint, save_bundle
    from pruning_limits.lomp import accuracy, train
    from pruning_limits.models import build_model
    from pruning_limits.objective import evaluate_loss
    from pruning_limits.regpath import train_auto

    path = None if cache is None else bundle_path(row, seed, cache)
    if path is not None and path.exists():
        checkpoint = read_checkpoint(path)
        log(f"[{row.name}] reusing {path}")
        return build_from_checkpoint(checkpoint, data=data), dict(checkpoint.training)
    start = time.perf_counter()
    settings: dict = {"epochs": row.epochs, "lr": row.lr, "seed": seed}
    if row.init is not None:
        model, _ = trained_model(BY_NAME[row.init], data, cache, seed, log)
        settings.update(
            init=row.init,
            init_test_accuracy=accuracy(model, data.test),
            init_test_loss=evaluate_loss(model, data.test),
            init_train_loss=evaluate_loss(model, data.train),
        )
        start = time.perf_counter()
    else:
        model = build_model(row.model, data, seed=seed)
    if row.l1 == "auto":
        from pruning_limits.regpath import fresh_copy

        fresh = None if row.init is None else fresh_copy(model, seed)
        l1_path, history = train_auto(
            model, data, seed=seed, epochs=row.epochs, lr=row.lr, start=row.init or "fresh", fresh=fresh
        )
        record = history.settings["l1_path"]
        seconds = l1_path.seconds + record.get("route", {}).get("seconds", 0.0)
        settings.update(l1=l1_path.l1, l1_path=record, path_seconds=seconds)
        log(f"[{row.name}] λ chosen on the path: {l1_path.l1:g} ({l1_path.seconds:.0f} s)")
    else:
        history = train(model, data, l1=row.l1, epochs=row.epochs, lr=row.lr, seed=seed)
        settings["l1"] = row.l1
    settings["train_seconds"] = time.perf_counter() - start
    import torch

    # the float rounding of training depends on these (docs/validation.md, 2026-12-06: the λ = 0 controls)
    settings["threads"], settings["torch"] = torch.get_num_threads(), str(torch.__version__)  # a TorchVersion fails weights_only
    settings["final_test_accuracy"] = history.to_dict().get("test_accuracy", [None])[-1]
    settings["final_test_loss"] = evaluate_loss(model, data.test) if data.test is not None else None
    log(f"[{row.name}] trained in {settings['train_seconds']:.0f} s")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_bundle(path, model, model_spec=row.model, data_spec=row.data, training=settings)
    return model, settings


def record_paths(row: Row, seed: int, cache: Path, *, iterations: int, probes: int, with_ablations: bool = False) -> list[Path]:
    """Cached record files that can serve a run, preferred first.

    A record with ablations holds everything a record without them does, so it also serves a
    run without them. "auto" is the SLQ rule of ``slq(rule="auto")``: rows cached with the
    earlier per-probe rule are redone.
    """
    settings = f"{iterations}x{probes}-auto"
    stem = f"{row.name}-{cache_key(row, seed)}-{settings}"
    ablations = cache / f"{stem}-ablations.json"
    return [ablations] if with_ablations else [cache / f"{stem}.json", ablations]


def cached_record(
    row: Row, seed: int, cache: Path, *, iterations: int, probes: int, with_ablations: bool = False
) -> dict | None:
    """The cached record of ``row`` and ``seed`` that :func:`run_row` would reuse, or None.

    With ``with_ablations`` only a record with ablations counts (``run_row`` recomputes a row whose
    record lacks them); without, either does.
    """
    for path in record_paths(row, seed, cache, iterations=iterations, probes=probes, with_ablations=with_ablations):
        if path.exists():
            return json.loads(path.read_text())
    return None


def figure_paths(figures: Path | None, name: str) -> list[Path]:
    """The figure files :func:`run_row` writes for figure name ``name`` into ``figures`` (none without figures)."""
    return [] if figures is None else [figures / f"{name}-{kind}.png" for kind in FIGURE_KINDS]


def run_row(
    row: Row, *, iterations: int, probes: int, seed: int, cache: Path | None, figures: Path | None, log, with_ablations: bool = False,
    figure_name: str | None = None,
) -> dict:
    """Train (or reuse), predict, measure; the row's record (reused from the cache when complete).

    The figures are ``<figures>/<figure_name>-{spectrum,prediction}.png`` (``figure_name``: the row's name unless given).
    """
    from pruning_limits.checkpoint import atomic_write
    from pruning_limits.data import load_data
    from pruning_limits.report import dumps_json
    from pruning_limits.validation import validate

    candidates = (
        [] if cache is None
        else record_paths(row, seed, cache, iterations=iterations, probes=probes, with_ablations=with_ablations)
    )
    saved = candidates[0] if candidates else None
    figure_name = row.name if figure_name is None else figure_name
    pictures = figure_paths(figures, figure_name)
    for candidate in candidates:
        if candidate.exists() and all(p.exists() for p in pictures):
            log(f"[{row.name}] reusing {candidate}")
            record = json.loads(candidate.read_text())
            predicted = record.get("predicted")
            if predicted is not None and "knee_steepness" not in predicted and bundle_path(row, seed, cache).exists():
                # records written before Prediction.knee_steepness existed: the cached network has it
                from pruning_limits.limits import knee_steepness
                from pruning_limits.masks import distance_curve

                model, _ = trained_model(row, load_data(row.data, seed=seed), cache, seed, log)
                predicted["knee_steepness"] = knee_steepness(distance_curve(model), predicted["sparsity"])
            return record

    data = load_data(row.data, seed=seed)
    model, training = trained_model(row, data, cache, seed, log)
    result = validate(model, data, iterations=iterations, probes=probes, seed=seed, exact=row.exact)
    record = {"row": asdict(row), "training": training, **result.to_dict()}
    if with_ablations:
        record["ablations"] = ablations(model, data, result, probes=probes, seed=seed, cheap_products=row.exact)
        log(f"[{row.name}] ablations: " + ", ".join(f"{k} {100 * (p - m):+.1f}" for k, (p, m) in record["ablations"].items()))
    log(
        f"[{row.name}] D={result.prediction.dim} predicted {result.prediction.sparsity:.4f} "
        f"(paper's model {result.paper_prediction.sparsity:.4f}) measured {result.sweep.limit_by_loss:.4f} "
        f"(difference {result.difference:+.4f}, paper's model {result.paper_difference:+.4f}) in {result.seconds:.0f} s"
    )
    if figures is not None:
        from pruning_limits.report import write_validation_figures

        figures.mkdir(parents=True, exist_ok=True)
        write_validation_figures(
            figures / figure_name, weights=result.weights, spectrum=result.spectrum,
            prediction=result.prediction, sweep=result.sweep, gradient=result.gradient, title=row.name,
        )
    if saved is not None:
        atomic_write(saved, dumps_json(record))
    return record



#: Rows up to this D whose products are cheap (the rows with an exact spectrum) re-estimate the
#: spectrum with other Lanczos step counts in the ablations.
ABLATION_MAX_DIM_FOR_STEPS = 10_000


def ablations(model, data, result, *, probes: int, seed: int, cheap_products: bool) -> dict:
    """Re-predict a row changing one assumption at a time; ``{variant: (predicted, measured)}``.

    The candidate causes of a miss (issue 6): the neglected gradient term, the treatment of
    negative eigenvalues, the zero atom, the choice of ε (re-measured at the same ε), and the
    number of Lanczos steps near zero.
    """
    import copy

    import numpy as np
    import torch

    from pruning_limits.limits import predict_from_spectrum
    from pruning_limits.lomp import sweep
    from pruning_limits.spectrum import estimate_spectrum

    analysed = copy.deepcopy(model).to(torch.float64)
    weights, gradient = result.weights, result.gradient  # of the float64 copy, as validate computed them
    eps = result.prediction.epsilon
    spec = result.spectrum
    nodes, quad = spec.nodes, spec.weights
    floor = 1e-4 * float(np.abs(nodes).max())
    measured = result.sweep.limit_by_loss

    def predicted(spectrum, epsilon=eps, **kw) -> float:
        return predict_from_spectrum(weights, spectrum, epsilon, **kw).sparsity

    out = {
        "paper's model": (predicted(spec), measured),
        "gradient term": (predicted(spec, gradient=gradient), measured),
        "negative λ clipped to 0": (predicted(replace(spec, nodes=np.maximum(nodes, 0.0))), measured),
        "small λ floored at 1e-4·λmax (no zero atom)": (
            predicted(replace(spec, nodes=np.where(np.abs(nodes) < floor, floor, nodes))),
            measured,
        ),
    }
    for factor in (0.5, 2.0):
        measured_at = sweep(model, data.train, test_data=data.test, epsilon=factor * eps).limit_by_loss
        out[f"ε × {factor:g}"] = (predicted(spec, factor * eps), measured_at)
    if spec.dim <= ABLATION_MAX_DIM_FOR_STEPS and cheap_products:
        for steps in (100, 600):
            other = estimate_spectrum(analysed, data.train, iterations=steps, probes=probes, seed=seed)
            out[f"{steps} Lanczos steps"] = (predicted(other), measured)
    return out


def ablation_table(records: list[dict]) -> str:
    """predicted − measured (points of sparsity) per row and variant."""
    from pruning_limits.report import markdown_table

    variants = list(dict.fromkeys(v for r in records for v in r.get("ablations", {})))
    rows = []
    for r in records:
        cells = [r["row"]["name"]]
        for variant in variants:
            pair = r.get("ablations", {}).get(variant)
            cells.append("–" if pair is None else f"{100 * (pair[0] - pair[1]):+.1f}")
        rows.append(cells)
    return markdown_table(["row", *variants], rows)


def pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def table(records: list[dict]) -> str:
    """The Markdown table of the suite (sparsities in percent)."""
    from pruning_limits.report import markdown_table

    header = [
        "row", "D", "λ", "ε", "test acc.", "predicted s* [interval] ± probe spread", "trace bound",
        "measured (loss)", "measured (acc.)", "pred − meas", "d ln R/ds at s*", "paper's model (pred − meas)",
        "Taylor one-shot (pred − meas)", "spectral one-shot (pred − meas)", "exact agrees", "time (s)", "HVPs",
    ]
    rows = []
    for r in records:
        p, m = r["predicted"], r["measured"]
        low, high = p["interval"]
        exact = r["exact_agrees"]
        exact_text = "–" if exact is None else f"{'yes' if exact else 'no'} ({pct(r['exact_predicted']['sparsity'])})"
        rows.append([
            r["row"]["name"], p["dim"], l1_text(r), f"{p['epsilon']:.3g}", pct(m["dense_accuracy"]),
            f"{pct(p['sparsity'])} [{pct(low)}, {pct(high)}] ± {pct(p['probe_spread'])}", pct(p["trace_bound"]),
            pct(m["limit_by_loss"]), pct(m["limit_by_accuracy"]), f"{100 * r['difference']:+.1f}",
            "–" if p.get("knee_steepness") is None else f"{p['knee_steepness']:.0f}",
            f"{pct(r['predicted_paper']['sparsity'])} ({100 * r['difference_paper']:+.1f})", taylor_text(r),
            one_shot_text(r), exact_text,
            f"{r['seconds'] + r['training'].get('train_seconds', 0.0):.0f}", r["num_hvps"],
        ])
    return markdown_table(header, rows)


def l1_text(record: dict) -> str:
    """λ of a record's network: the number, with "auto" when the path chose it."""
    l1 = record["training"].get("l1", record["row"]["l1"])
    return f"{l1:g} (auto)" if record["row"]["l1"] == "auto" else f"{l1:g}"


def groups(records: list[dict]) -> dict[str, list[dict]]:
    """The suite's records by kind: fresh l1 rows, λ = 0 controls, controls taken through ``train --init``."""
    return {
        "l1": [r for r in records if is_l1(r["row"]) and not r["row"].get("init")],
        "controls": [r for r in records if not is_l1(r["row"])],
        "init": [r for r in records if r["row"].get("init")],
    }


def path_table(records: list[dict]) -> str:
    """The λ path of every auto row: chosen λ, points, time of the path against the final training."""
    from pruning_limits.report import markdown_table

    rows = []
    for r in records:
        t = r["training"]
        path = t.get("l1_path")
        if path is None:
            continue
        pts = path["points"]
        final = t["train_seconds"] - t["path_seconds"]
        before = "–" if t.get("init_test_accuracy") is None else pct(t["init_test_accuracy"])
        rows.append([
            r["row"]["name"], f"{path['l1']:g}",
            " ".join(f"{p['l1']:.0e}:{(100 * p['metric']) if path['metric'] == 'accuracy' else p['metric']:.3g}" for p in pts),
            f"{pts[path['chosen']]['knee_steepness']:.0f}", f"{t['path_seconds']:.0f}", f"{final:.0f}",
            f"{100 * t['path_seconds'] / max(final, 1e-9):.0f} %", before, pct(t.get("final_test_accuracy")),
        ])
    return markdown_table(
        ["row", "chosen λ", "path (λ:validation metric)", "d ln R/ds at s_ref (chosen)", "path (s)", "final training (s)",
         "overhead", "test acc. before (init)", "test acc. after"],
        rows,
    )


def taylor_difference(record: dict) -> float:
    return record["taylor_one_shot"]["sparsity"] - record["measured"]["limit_by_loss"]


def taylor_text(record: dict) -> str:
    return f"{pct(record['taylor_one_shot']['sparsity'])} ({100 * taylor_difference(record):+.1f})"


def one_shot_difference(record: dict) -> float | None:
    """Spectral one-shot model minus measured-by-loss; None for records written before the model."""
    model = record.get("spectral_one_shot")
    return None if model is None else model["sparsity"] - record["measured"]["limit_by_loss"]


def one_shot_text(record: dict) -> str:
    gap = one_shot_difference(record)
    return "–" if gap is None else f"{pct(record['spectral_one_shot']['sparsity'])} ({100 * gap:+.1f})"


def summary(records: list[dict]) -> str:
    import numpy as np

    lines = []
    kinds = groups(records)
    for kind, label in (("l1", "l1-trained rows (λ auto)"), ("init", "λ = 0 controls after `train --init` (λ auto)")):
        chosen = kinds[kind]
        for key, model in (("difference", "default (gradient term)"), ("difference_paper", "paper's model")):
            gaps = [abs(r[key]) for r in chosen]
            if gaps:
                lines.append(
                    f"{label}, {model}: |predicted − measured| max {100 * max(gaps):.1f}, median "
                    f"{100 * float(np.median(gaps)):.1f} points of sparsity ({len(gaps)} rows)."
                )
    taylor = [abs(taylor_difference(r)) for r in kinds["l1"]]
    if taylor:
        lines.append(
            f"l1-trained rows, Taylor one-shot model (a diagnostic, not a prediction from the spectrum): "
            f"|model − measured| max {100 * max(taylor):.1f}, median {100 * float(np.median(taylor)):.1f} points."
        )
    one_shot = [abs(one_shot_difference(r)) for r in kinds["l1"] if one_shot_difference(r) is not None]
    if one_shot:
        lines.append(
            f"l1-trained rows, spectral one-shot model (a candidate, not the default; docs/theory.md §6b): "
            f"|model − measured| max {100 * max(one_shot):.1f}, median {100 * float(np.median(one_shot)):.1f} points."
        )
    controls = [r["difference"] for r in kinds["controls"]]
    if controls:
        lines.append(
            f"λ = 0 controls: predicted − measured from {100 * min(controls):+.1f} to {100 * max(controls):+.1f} points."
        )
    return "\n\n".join(lines)


def evidence_section(records: list[dict], settings: dict) -> dict:
    """What the suite shows, by trust verdict (pruning_limits.regime), for the evidence file the messages quote."""
    from pruning_limits.regime import gap_range, trust_level

    by_level: dict[str, list[float]] = {"in regime": [], "outside the regime": []}
    for r in records:
        if not is_l1(r["row"]):
            continue
        predicted = r["predicted"]
        steep = predicted.get("knee_steepness")
        level = trust_level(  # as the commands classify (cli/commands.py, _network_trusts): with s* and s₀
            float("nan") if steep is None else steep, r["training"].get("l1"), evidence={},
            sparsity=predicted["sparsity"], zero_fraction=predicted.get("zero_fraction", 0.0),  # older records lack s₀: 0
        ).level
        by_level[level].append(r["difference"])
    return {
        "in_regime": gap_range(by_level["in regime"]),
        "outside_l1": gap_range(by_level["outside the regime"]),
        "controls": gap_range([r["difference"] for r in groups(records)["controls"]]),
        "what": "predicted minus measured one-shot limit by loss (points of sparsity, eps = batch-std), the suite's rows "
                "split by the trust verdict; controls: the λ = 0 rows",
        "written_by": settings["command"],
        "not_run": settings.get("not_run", []),
        "date": settings["date"],
    }


def evidence_from(paths: list[Path], argv: list[str]) -> int:
    """Write the evidence file's ``suite`` section from JSON files this script wrote (every row, seed 0 in all).

    A file is either one run (``{"settings", "rows"}``, e.g. ``docs/validation.json``) or several
    (``{"runs": [...]}``, e.g. ``docs/validation-architectures.json``).
    """
    from pruning_limits.regime import write_evidence_section

    records, runs = [], []
    for path in paths:
        try:
            content = json.loads(path.read_text())
            parts = content["runs"] if "runs" in content else [content]
            for part in parts:
                runs.append(part["settings"])
                records += [r for r in part["rows"] if r["row"]["name"] in BY_NAME]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"--evidence-from: {path} is not a validation JSON written by this script ({exc})") from None
    names = [r["row"]["name"] for r in records]
    missing = [n for n in BY_NAME if n not in names]
    repeated = sorted({n for n in names if names.count(n) > 1})
    seeds = sorted({run.get("seed") for run in runs}, key=str)
    if missing or repeated or seeds != [0] or any(run.get("not_run") for run in runs):
        raise SystemExit(
            f"--evidence-from: the files must hold every row once, with seed 0; missing {missing or 'none'}, "
            f"repeated {repeated or 'none'}, seeds {seeds}"
        )
    command = "python examples/validation/run_validation.py " + " ".join(argv)
    dates = sorted({day for run in runs for day in str(run.get("date")).split(" and ")})
    settings = {"command": f"{command} (the records of those files)", "date": " and ".join(dates), "not_run": []}
    section = evidence_section(records, settings)
    target = write_evidence_section("suite", section)
    print(f"wrote the suite section of {target}: {json.dumps(section, ensure_ascii=False)}")
    return 0


def write_markdown(path: Path, records: list[dict], settings: dict, figures: Path | None) -> None:
    from pruning_limits.checkpoint import atomic_write

    block = [BEGIN, "", f"Generated by `{settings['command']}` ({settings['date']}, {settings['threads']} threads).", ""]
    block += [table(records), "", summary(records), ""]
    if settings.get("not_run"):
        block += [f"Not run in this assembly (no cached record, or its figures missing): {', '.join(settings['not_run'])}.", ""]
    if any("l1_path" in r["training"] for r in records):
        block += ["The λ path of the auto rows (validation metric: accuracy in %, loss for regression):", "", path_table(records), ""]
    if any("ablations" in r for r in records):
        block += [
            "Candidate causes, one at a time: predicted − measured-by-loss in points of sparsity "
            "(the ε rows re-measure at the changed ε).",
            "",
            ablation_table(records),
            "",
        ]
    if figures is not None:
        for r in records:
            name = r["row"]["name"]
            rel = figures.relative_to(path.parent).as_posix()
            block.append(f"![{name}: prediction and measurement]({rel}/{name}-prediction.png)")
        block.append("")
    block.append(END)
    generated = "\n".join(block)
    text = path.read_text() if path.exists() else "# Validation\n\n" + BEGIN + "\n" + END + "\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + generated + tail
    else:
        text = text.rstrip() + "\n\n" + generated + "\n"
    atomic_write(path, text)


def rows_held(path: Path) -> list[str] | None:
    """Row names of the validation JSON at ``path`` ([] when there is none; None: not such a JSON)."""
    if not path.exists():
        return []
    try:
        return [r["row"]["name"] for r in json.loads(path.read_text())["rows"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def figures_of_others(path: Path, names: list[str], figures: Path | None, figure_names: dict[str, str]) -> list[Path]:
    """Figures a run of ``names`` would replace although the validation JSON at ``path`` does not hold their rows.

    Such figures belong to another run (e.g. the suite's, beside docs/validation.json, when the
    run writes another JSON): the JSON that will sit beside them would not describe them.
    """
    held = rows_held(path) or []
    return [p for n in names if n not in held for p in figure_paths(figures, figure_names[n]) if p.exists()]


def rows_left_out(path: Path, names: list[str]) -> list[str] | None:
    """Rows of the validation JSON at ``path`` that a run of ``names`` would not write again (None: not such a JSON)."""
    held = rows_held(path)
    return None if held is None else [n for n in held if n not in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", help="comma-separated row names (default: all)")
    parser.add_argument("--quick", action="store_true", help=f"only {QUICK_ROW}, {QUICK_ITERATIONS} Lanczos steps, {QUICK_PROBES} probes")
    parser.add_argument("--iterations", type=int, default=None, help="Lanczos steps (default: predict_limit's)")
    parser.add_argument("--probes", type=int, default=None, help="SLQ probes (default: predict_limit's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", default="examples/validation/cache", help="bundle cache folder ('' disables)")
    parser.add_argument("--docs", default=None,
                        help=f"folder for validation.md, validation.json and figures (default: docs; with --quick: {QUICK_DOCS})")
    parser.add_argument("--force", action="store_true",
                        help="write into --docs even when its validation.json holds rows this run leaves out (they are "
                             "dropped) or the run would replace figures of rows that JSON does not hold")
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--ablations", action="store_true", help="re-predict each row changing one assumption at a time")
    parser.add_argument("--cached-only", action="store_true", help="assemble from the rows with a cached record; list the others as not run")
    parser.add_argument("--evidence-from", type=Path, nargs="+", default=None, metavar="JSON",
                        help="only write the evidence file's suite section from these JSON files of earlier runs "
                             "(together every row once, seed 0)")
    args = parser.parse_args(argv)
    if args.evidence_from is not None:
        return evidence_from(args.evidence_from, argv if argv is not None else sys.argv[1:])

    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from pruning_limits.spectrum import DEFAULT_ITERATIONS, DEFAULT_PROBES
    from pruning_limits.report import write_json

    torch.set_num_threads(args.threads)
    by_name = BY_NAME
    names = [QUICK_ROW] if args.quick else (args.rows.split(",") if args.rows else list(by_name))
    unknown = [n for n in names if n not in by_name]
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {', '.join(by_name)}")
    iterations = args.iterations or (QUICK_ITERATIONS if args.quick else DEFAULT_ITERATIONS)
    probes = args.probes or (QUICK_PROBES if args.quick else DEFAULT_PROBES)
    docs = Path(args.docs if args.docs is not None else QUICK_DOCS if args.quick else "docs")
    figures = None if args.no_figures else docs / "validation"
    cache = Path(args.cache) if args.cache else None
    # --quick's figures get names of their own: a quick run never replaces the suite's figures
    figure_names = {n: f"{n}{QUICK_FIGURE_SUFFIX}" if args.quick else n for n in names}

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log(f"threads: torch.set_num_threads({args.threads}), OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; "
        f"SLQ {probes} probes x {iterations} steps")
    missing = []
    if args.cached_only:
        if cache is None:
            parser.error("--cached-only needs --cache")
        # a row counts as cached when run_row would reuse it: its record (with ablations under --ablations) and its
        # figures; anything else would be computed
        for n in names:
            if cached_record(by_name[n], args.seed, cache, iterations=iterations, probes=probes,
                             with_ablations=args.ablations) is None:
                log(f"[{n}] not assembled: no cached record{' with ablations' if args.ablations else ''}")
                missing.append(n)
            elif not all(p.exists() for p in figure_paths(figures, figure_names[n])):
                log(f"[{n}] not assembled: its figures are not in {figures} (pass --no-figures to assemble without them)")
                missing.append(n)
        names = [n for n in names if n not in missing]
        if not names:
            what = "a cached record" + (" with ablations" if args.ablations else "") + ("" if figures is None else f" and figures in {figures}")
            parser.error(f"no row has {what} (seed {args.seed}, {probes} probes x {iterations} steps): "
                         f"{', '.join(missing)}; nothing to assemble, nothing written")
    target = docs / ("validation-quick.json" if args.quick else "validation.json")
    dropped = rows_left_out(target, names)
    if dropped != [] and not args.force:  # checked before any work: a row's run also rewrites its figures in --docs
        also = "" if args.quick else f" and replace the table of {docs / 'validation.md'}"
        held = "is no validation JSON of this script" if dropped is None else f"holds rows this run leaves out ({', '.join(dropped)})"
        parser.error(f"{target} {held}; writing would replace it{also}. Point --docs at a scratch folder, or pass --force")
    others = figures_of_others(target, names, figures, figure_names)
    if others and not args.force:  # figures of rows the JSON this run writes does not hold: another run's
        parser.error(f"this run would replace {', '.join(str(p) for p in others)}, figures of rows {target} does not "
                     "hold (another run's). Point --docs at a scratch folder, pass --no-figures, or pass --force")
    records = [
        run_row(
            by_name[n], iterations=iterations, probes=probes, seed=args.seed, cache=cache, figures=figures, log=log,
            with_ablations=args.ablations, figure_name=figure_names[n],
        )
        for n in names
    ]
    settings = {
        "command": "python examples/validation/run_validation.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "threads": args.threads,
        "iterations": iterations,
        "probes": probes,
        "seed": args.seed,
        "not_run": missing,
    }
    docs.mkdir(parents=True, exist_ok=True)
    write_json(target, {"settings": settings, "rows": records})
    if not args.quick:
        write_markdown(docs / "validation.md", records, settings, figures)
    if names == list(BY_NAME) and args.seed == 0:  # the whole suite: the evidence the trust messages quote
        from pruning_limits.regime import write_evidence_section

        write_evidence_section("suite", evidence_section(records, settings))
    print(table(records))
    print()
    print(summary(records))
    if args.ablations:
        print()
        print(ablation_table(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
