"""Structured pruning limits on the suite's l1-trained rows: predicted against measured (THEORY §8).

For every l1-trained row of ``run_validation.ROWS`` (seed 0 unless told) this loads or trains
the network (the bundle cache of ``run_validation.py``), estimates the Hessian spectrum once
(SLQ on a float64 copy, the suite's settings) and, with that one spectrum, predicts and
measures every structure of ``pruning_limits.validation.ALL_STRUCTURES``: the unstructured,
layer-wise, neuron and channel limits (predicted ``s*`` with the gradient term, the default;
measured by a one-shot sweep over each structure's allowed points) and the 2:4 pattern
(predicted feasibility at ε and the ε it needs; measured loss rise of the 2:4-pruned network).
It writes

- ``docs/validation-structures.json``: every number of every row,
- ``docs/validation/<row>-structures.png``: the R(s) curves of all structures and the limits,
- the tables between ``<!-- BEGIN STRUCTURES -->`` and ``<!-- END STRUCTURES -->`` in
  ``docs/validation.md``.

Spectra and row records are cached beside the bundles, so a re-run after a change of the
calculator reuses the spectra. ``--diagnose`` adds the candidate causes of a miss, tried one at
a time (:func:`diagnose`). The JSON and the page's tables are always written together, from the
rows of this run: a run that would leave out rows, or the diagnostics, that the ``--docs``
folder's ``validation-structures.json`` holds (``--rows``, or no ``--diagnose``) stops before
any work unless ``--force``; point ``--docs`` at a scratch folder for it (a folder without
``validation.md`` gets a page of the tables alone). Run from the project root::

    python examples/validation/structures.py --threads 1 --probes 2 --diagnose
    python examples/validation/structures.py --rows digits-mlp32,synthetic-mlp --docs /tmp/structures-part
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

BEGIN, END = "<!-- BEGIN STRUCTURES -->", "<!-- END STRUCTURES -->"
#: Curve structures of the tables (the order of ``ALL_STRUCTURES`` without the pattern).
CURVES = ("unstructured", "layerwise", "neuron", "channel")


def cached_spectrum(row, seed: int, cache: Path, iterations: int, probes: int, analysed, data, log):
    """The row's SLQ spectrum (float64 copy), from ``cache`` or computed and cached as .npz."""
    import numpy as np

    from pruning_limits.checkpoint import atomic_open
    from pruning_limits.spectrum import Spectrum, estimate_spectrum
    from run_validation import cache_key

    path = cache / f"{row.name}-{cache_key(row, seed)}-{iterations}x{probes}-spectrum.npz"
    if path.exists():
        with np.load(path) as f:
            log(f"[{row.name}] reusing {path}")
            return Spectrum(f["nodes"], f["weights"], int(f["dim"]), num_hvps=int(f["num_hvps"]), rule=str(f["rule"]), steps=int(f["steps"]))
    start = time.perf_counter()
    spectrum = estimate_spectrum(analysed, data.train, iterations=iterations, probes=probes, seed=seed)
    log(f"[{row.name}] spectrum: {spectrum.num_hvps} products in {time.perf_counter() - start:.0f} s")
    with atomic_open(path, "wb") as handle:
        np.savez(handle, nodes=spectrum.nodes, weights=spectrum.weights, dim=spectrum.dim, num_hvps=spectrum.num_hvps,
                 rule=spectrum.rule, steps=spectrum.steps or 0)
    return spectrum


def run_row(row, *, seed: int, cache: Path, iterations: int, probes: int, figures: Path | None, log) -> dict:
    import copy

    import torch

    from pruning_limits.checkpoint import atomic_write
    from pruning_limits.data import load_data
    from pruning_limits.report import dumps_json, save_figure, structures_figure
    from pruning_limits.validation import validate_structures
    from run_validation import cache_key, trained_model

    saved = cache / f"{row.name}-{cache_key(row, seed)}-{iterations}x{probes}-structures.json"
    picture = None if figures is None else figures / f"{row.name}-structures.png"
    if saved.exists() and (picture is None or picture.exists()):
        log(f"[{row.name}] reusing {saved}")
        return json.loads(saved.read_text())
    data = load_data(row.data, seed=seed)
    model, training = trained_model(row, data, cache, seed, log)
    spectrum = cached_spectrum(row, seed, cache, iterations, probes, copy.deepcopy(model).to(torch.float64), data, log)
    from pruning_limits._checks import PruningLimitsError
    from pruning_limits.structures import model_order
    from pruning_limits.validation import ALL_STRUCTURES

    applicable, left_out = [], {}
    for name in ALL_STRUCTURES:  # e.g. 2:4 on a network without an input size that is a multiple of 4
        try:
            model_order(model, name)
            applicable.append(name)
        except PruningLimitsError as exc:
            left_out[name] = str(exc)
            log(f"[{row.name}] left out {name}: {exc}")
    result = validate_structures(model, data, applicable, seed=seed, spectrum=spectrum)
    record = {"row": asdict(row), "training": training, "iterations": iterations, "probes": probes, **result.to_dict(),
              "left_out": left_out}
    for entry in record["structures"]:
        p, m = entry["predicted"], entry["measured"]
        if entry["pattern"]:
            log(f"[{row.name}] {entry['structure']}: predicted feasible {p['feasible']} (needs ε ≥ {p['needed_epsilon']:.3g}), "
                f"measured loss rise {m['loss_rise']:.3g} vs ε {result.epsilon:.3g}")
        else:
            log(f"[{row.name}] {entry['structure']}: predicted {p['sparsity']:.4f} measured {m['limit_by_loss']:.4f} "
                f"({100 * entry['difference']:+.1f})")
    if picture is not None:
        figures.mkdir(parents=True, exist_ok=True)
        save_figure(structures_figure(record, title=row.name), picture)
    atomic_write(saved, dumps_json(record))
    return record


def diagnose(row, record: dict, *, seed: int, cache: Path, iterations: int, probes: int, log) -> dict:
    """Candidate causes of a structured miss, changed one at a time; ``{structure: {cause: value}}``.

    For every curve structure: the paper's model (no gradient term), the quadratic one-shot
    limit (the loss model alone, from the record), the knee's sharpness at ``s*``, how much
    curvature the pruned direction meets (``dᵀHd/‖d‖²`` at the measured limit over ``tr|H|/D``,
    what a random direction meets on average: the kinematic formula treats the kept subspace as
    random), and prediction against measurement at ε × 0.5 and ε × 2.
    """
    import copy

    import numpy as np
    import torch

    from pruning_limits.checkpoint import atomic_write
    from pruning_limits.data import load_data
    from pruning_limits.hessian import HessianOperator
    from pruning_limits.lomp import sweep
    from pruning_limits.objective import flat_weights, loss_gradient
    from pruning_limits.report import dumps_json
    from pruning_limits.structures import layer_layout, predict_structured, structured_order
    from run_validation import cache_key, trained_model

    saved = cache / f"{row.name}-{cache_key(row, seed)}-{iterations}x{probes}-structures-diagnostics.json"
    if saved.exists():
        return json.loads(saved.read_text())
    data = load_data(row.data, seed=seed)
    model, _ = trained_model(row, data, cache, seed, log)
    analysed = copy.deepcopy(model).to(torch.float64)
    spectrum = cached_spectrum(row, seed, cache, iterations, probes, analysed, data, log)
    weights = flat_weights(analysed)
    gradient = loss_gradient(analysed, data.train)
    operator = HessianOperator(analysed, data.train)
    random_curvature = spectrum.abs_trace().value / spectrum.dim
    eps = record["epsilon"]
    out: dict = {}
    for name in (n for n in CURVES if n in by_structure(record)):  # neuron: not on the CNNs
        entry = by_structure(record)[name]
        plan = structured_order(weights, layer_layout(analysed), name)
        count = int(round(entry["measured"]["limit_by_loss"] * plan.dim))
        step = np.zeros(plan.dim)
        step[plan.order[:count]] = -weights[plan.order[:count]]
        norm2 = float(step @ step)
        rayleigh = float(step @ np.asarray(operator.matvec(step))) / norm2 if norm2 > 0 else float("nan")
        causes = {
            "default": entry["difference"],
            "paper's model": predict_structured(weights, spectrum, eps, plan).sparsity - entry["measured"]["limit_by_loss"],
            "quadratic one-shot": None if entry.get("quadratic_one_shot") is None
            else entry["quadratic_one_shot"] - entry["measured"]["limit_by_loss"],
            "knee d ln R/ds": entry["predicted"]["knee_steepness"],
            "curvature met / random": rayleigh / random_curvature,
        }
        for factor in (0.5, 2.0):
            predicted = predict_structured(weights, spectrum, factor * eps, plan, gradient=gradient).sparsity
            measured = sweep(model, data.train, epsilon=factor * eps, criterion=name, allowed=plan.allowed).limit_by_loss
            causes[f"ε × {factor:g}"] = predicted - measured
        out[name] = causes
        log(f"[{row.name}] {name}: " + ", ".join(f"{k} {v:.3g}" for k, v in causes.items() if v is not None))
    # the 2:4 pattern: the needed ε under each change, against the measured loss rise
    from dataclasses import replace

    if "2:4" not in by_structure(record):
        atomic_write(saved, dumps_json(out))
        return out
    entry = by_structure(record)["2:4"]
    plan = structured_order(weights, layer_layout(analysed), "2:4")
    count = int(plan.pattern_count)
    step = np.zeros(plan.dim)
    step[plan.order[:count]] = -weights[plan.order[:count]]
    nodes = spectrum.nodes
    floor = 1e-4 * float(np.abs(nodes).max())
    no_atom = replace(spectrum, nodes=np.where(np.abs(nodes) < floor, floor, nodes))
    out["2:4"] = {
        "measured loss rise": entry["measured"]["loss_rise"],
        "default": entry["predicted"]["needed_epsilon"],
        "paper's model": predict_structured(weights, spectrum, eps, plan).needed_epsilon,
        "no zero atom": predict_structured(weights, no_atom, eps, plan, gradient=gradient).needed_epsilon,
        "quadratic model": entry["measured"].get("quadratic_loss_rise"),
        "first-order cost": entry["predicted"]["first_order_cost"],
        "atom at zero": float(spectrum.summary().get("atom_at_zero", float("nan"))),
        "curvature met / random": float(step @ np.asarray(operator.matvec(step))) / float(step @ step) / random_curvature,
    }
    log(f"[{row.name}] 2:4: " + ", ".join(f"{k} {v:.3g}" for k, v in out["2:4"].items() if v is not None))
    atomic_write(saved, dumps_json(out))
    return out


#: Re-fit of the kept weights: epochs and learning rate of SGD (momentum 0.9, cosine decay), data loss only.
REFIT_EPOCHS, REFIT_LR = 20, 0.01


def refit(row, record: dict, *, seed: int, cache: Path, iterations: int, probes: int, log) -> dict:
    """Loss rise (over ε) at each structure's *predicted* point after re-fitting the kept weights.

    The kinematic question asks whether the kept support holds *some* point of the sublevel
    set; one-shot pruning tests one point. Re-training the kept weights (masks fixed, data loss
    only, :data:`REFIT_EPOCHS` epochs at :data:`REFIT_LR`) finds a point of that support whose
    loss is an upper bound of the best: a rise ≤ ε shows the predicted point is feasible in the
    formula's own sense. ``{structure: {"one_shot": rise/ε, "refit": rise/ε}}``, with the unpruned
    network re-fitted the same way as a control (``"dense (control)"``: l1 training leaves the data
    loss above its minimum, so the re-fit alone lowers it).
    """
    import copy

    from pruning_limits.checkpoint import atomic_write
    from pruning_limits.data import load_data
    from pruning_limits.lomp import train
    from pruning_limits.masks import apply_masks, compute_masks, make_permanent
    from pruning_limits.objective import evaluate_loss
    from pruning_limits.report import dumps_json
    from run_validation import cache_key, trained_model

    saved = cache / f"{row.name}-{cache_key(row, seed)}-{iterations}x{probes}-structures-refit.json"
    if saved.exists():
        return json.loads(saved.read_text())
    data = load_data(row.data, seed=seed)
    model, _ = trained_model(row, data, cache, seed, log)
    dense = evaluate_loss(model, data.train)
    eps = record["epsilon"]
    control = copy.deepcopy(model)  # the same re-fit of the unpruned network: how far the recipe alone moves the loss
    train(control, data, l1=0.0, epochs=REFIT_EPOCHS, lr=REFIT_LR, seed=seed)
    out = {"dense (control)": {"sparsity": 0.0, "one_shot": 0.0, "refit": (evaluate_loss(control, data.train) - dense) / eps, "mask_kept": True}}
    for entry in record["structures"]:
        name = entry["structure"]
        p = entry["predicted"]
        amount = None if entry["pattern"] else int(round(p["sparsity"] * p["dim"]))
        masks = compute_masks(model, amount, "magnitude" if name == "unstructured" else name)
        pruned = copy.deepcopy(model)
        apply_masks(pruned, masks)
        one_shot = evaluate_loss(pruned, data.train) - dense
        train(pruned, data, l1=0.0, epochs=REFIT_EPOCHS, lr=REFIT_LR, seed=seed)
        make_permanent(pruned)
        kept_zero = all(bool((module_weight(pruned, k)[~m] == 0).all()) for k, m in masks.items())
        out[name] = {"sparsity": p["sparsity"], "one_shot": one_shot / eps, "refit": (evaluate_loss(pruned, data.train) - dense) / eps,
                     "mask_kept": kept_zero}
        log(f"[{row.name}] re-fit at the predicted {name} point: loss rise/ε one-shot {out[name]['one_shot']:.2f}, "
            f"re-fitted {out[name]['refit']:.2f}")
    atomic_write(saved, dumps_json(out))
    return out


def module_weight(model, name: str):
    module_name, _, attr = name.rpartition(".")
    return getattr(model.get_submodule(module_name) if module_name else model, attr).detach()


def refit_table(records: list[dict], refits: list[dict]) -> str:
    """Loss rise over ε at the predicted point: one-shot against re-fitted kept weights."""
    from pruning_limits.report import markdown_table

    names = list(dict.fromkeys(n for f in refits for n in f))
    header = ["row", *[f"{n}: one-shot / re-fit" for n in names]]
    rows = []
    for r, f in zip(records, refits):
        rows.append([r["row"]["name"], *[
            "–" if n not in f else f"{f[n]['one_shot']:.2f} / {f[n]['refit']:.2f}" for n in names
        ]])
    return markdown_table(header, rows)


def diagnostics_table(records: list[dict], diagnostics: list[dict]) -> str:
    """predicted − measured (points) under each change, and the two structural readings."""
    from pruning_limits.report import markdown_table

    header = ["row", "structure", "default", "paper's model", "quadratic one-shot − meas.", "ε × 0.5", "ε × 2",
              "d ln R/ds at s*", "curvature met / random"]
    rows = []
    for r, d in zip(records, diagnostics):
        for name in (n for n in CURVES if n in d):
            c = d[name]

            def points(key):
                return "–" if c.get(key) is None else f"{100 * c[key]:+.1f}"

            rows.append([r["row"]["name"], name, points("default"), points("paper's model"), points("quadratic one-shot"),
                         points("ε × 0.5"), points("ε × 2"),
                         "–" if c["knee d ln R/ds"] is None else f"{c['knee d ln R/ds']:.0f}",
                         "–" if c["curvature met / random"] is None else f"{c['curvature met / random']:.2g}"])
    return markdown_table(header, rows)


def pattern_diagnostics_table(records: list[dict], diagnostics: list[dict]) -> str:
    """The ε the 2:4 pattern needs: measured, predicted, and predicted with one change at a time."""
    from pruning_limits.report import markdown_table

    header = ["row", "measured loss rise", "quadratic model gᵀd + ½dᵀHd", "needed ε predicted (default)",
              "of it first-order cost c", "paper's model (no c)", "no zero atom", "atom at zero", "curvature met / random"]
    rows = []
    for r, d in zip(records, diagnostics):
        if "2:4" not in d:
            continue
        c = d["2:4"]

        def num(key):
            return "–" if c.get(key) is None else f"{c[key]:.3g}"

        rows.append([r["row"]["name"], num("measured loss rise"), num("quadratic model"), num("default"), num("first-order cost"),
                     num("paper's model"), num("no zero atom"), num("atom at zero"), num("curvature met / random")])
    return markdown_table(header, rows)


def by_structure(record: dict) -> dict:
    return {entry["structure"]: entry for entry in record["structures"]}


def pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def curve_table(records: list[dict]) -> str:
    """Predicted and measured limits of the curve structures, one line per row and structure."""
    from pruning_limits.report import markdown_table

    header = ["row", "D", "ε", "structure", "dense share", "predicted s* [interval]", "measured (loss)", "measured (acc.)", "pred − meas"]
    rows = []
    for r in records:
        for name in CURVES:
            if name not in by_structure(r):
                rows.append([r["row"]["name"], "–", f"{r['epsilon']:.3g}", name, "100.0", "not applicable", "–", "–", "–"])
                continue
            e = by_structure(r)[name]
            p, m = e["predicted"], e["measured"]
            low, high = p["interval"]
            rows.append([
                r["row"]["name"], p["dim"], f"{r['epsilon']:.3g}", name, pct(e["support"]["dense_share"]),
                f"{pct(p['sparsity'])} [{pct(low)}, {pct(high)}]", pct(m["limit_by_loss"]), pct(m["limit_by_accuracy"]),
                f"{100 * e['difference']:+.1f}",
            ])
    return markdown_table(header, rows)


def pattern_table(records: list[dict], name: str = "2:4") -> str:
    """The pattern's feasibility and needed ε, predicted against measured."""
    from pruning_limits.report import markdown_table

    header = [
        "row", "ε", "sparsity", "dense layers (share)", "predicted feasible [at −/+ margin]", "needed ε predicted [interval]",
        "measured loss rise (= needed ε)", "measured feasible", "predicted / measured needed ε", "test acc. dense → pruned",
    ]
    rows = []
    for r in records:
        if name not in by_structure(r):
            rows.append([r["row"]["name"], f"{r['epsilon']:.3g}", "–", "all (no input size is a multiple of 4)"] + ["not applicable"] + ["–"] * 5)
            continue
        e = by_structure(r)[name]
        p, m = e["predicted"], e["measured"]
        low, high = p["needed_epsilon_interval"]
        dense = ", ".join(d["name"] for d in e["support"]["dense_layers"]) or "none"
        ratio = "–" if not m["needed_epsilon"] else f"{p['needed_epsilon'] / m['needed_epsilon']:.2f}"
        yes = {True: "yes", False: "no"}
        rows.append([
            r["row"]["name"], f"{r['epsilon']:.3g}", pct(p["sparsity"]), f"{dense} ({pct(e['support']['dense_share'])})",
            f"{yes[p['feasible']]} [{yes[p['feasible_interval'][0]]}, {yes[p['feasible_interval'][1]]}]",
            f"{p['needed_epsilon']:.3g} [{low:.3g}, {high:.3g}]", f"{m['loss_rise']:.3g}", yes[m["feasible"]], ratio,
            "–" if m["accuracy"] is None else f"{pct(m['dense_accuracy'])} → {pct(m['accuracy'])}",
        ])
    return markdown_table(header, rows)


def gap_table(records: list[dict]) -> str:
    """How many points of sparsity structure costs: unstructured minus structured limits."""
    from pruning_limits.report import markdown_table

    header = ["row", "unstructured (meas.)", "layerwise cost meas. (pred.)", "neuron cost meas. (pred.)", "channel cost meas. (pred.)", "R(neuron)/R(unstructured) at the unstructured limit"]
    rows = []
    for r in records:
        s = by_structure(r)
        base = s["unstructured"]
        cells = [r["row"]["name"], pct(base["measured"]["limit_by_loss"])]
        for name in ("layerwise", "neuron", "channel"):
            if name not in s:
                cells.append("not applicable")
                continue
            meas = base["measured"]["limit_by_loss"] - s[name]["measured"]["limit_by_loss"]
            pred = base["predicted"]["sparsity"] - s[name]["predicted"]["sparsity"]
            cells.append(f"{100 * meas:+.1f} ({100 * pred:+.1f})")
        at = base["measured"]["limit_by_loss"]
        if "neuron" in s:
            cells.append(f"{distance_at(s['neuron'], at) / max(distance_at(base, at), 1e-300):.1f}")
        else:
            cells.append("–")
        rows.append(cells)
    return markdown_table(header, rows)


def distance_at(entry: dict, sparsity: float) -> float:
    import numpy as np

    return float(np.interp(sparsity, entry["curve"]["sparsity"], entry["curve"]["distance"]))


def summary(records: list[dict]) -> str:
    import numpy as np

    lines = []
    for name in CURVES:
        gaps = [100 * by_structure(r)[name]["difference"] for r in records if name in by_structure(r)]
        if not gaps:
            continue
        within = sum(abs(g) <= 3.0 for g in gaps)
        lines.append(
            f"{name}: |predicted − measured| max {max(abs(g) for g in gaps):.1f}, median {float(np.median(np.abs(gaps))):.1f} "
            f"points; {within} of {len(gaps)} rows within 3 points"
            + ("." if len(gaps) == len(records) else f" (the {len(gaps)} rows it applies to).")
        )
    with_pattern = [by_structure(r)["2:4"] for r in records if "2:4" in by_structure(r)]
    agree = sum(e["predicted"]["feasible"] == e["measured"]["feasible"] for e in with_pattern)
    lines.append(f"2:4: predicted and measured feasibility at ε agree on {agree} of the {len(with_pattern)} rows it applies to.")
    return "\n\n".join(lines)


def write_markdown(
    path: Path, records: list[dict], settings: dict, figures: Path | None, diagnostics: list[dict] | None = None,
    refits: list[dict] | None = None,
) -> None:
    from pruning_limits.checkpoint import atomic_write

    block = [BEGIN, "", f"Generated by `{settings['command']}` ({settings['date']}, {settings['threads']} thread(s), "
             f"SLQ {settings['probes']} probes × {settings['iterations']} steps, seed {settings['seed']}).", ""]
    block += ["Curve structures (sparsities in percent):", "", curve_table(records), "", summary(records), ""]
    block += ["The 2:4 pattern:", "", pattern_table(records), ""]
    block += ["What structure costs (unstructured minus structured limit, points of sparsity; measured, predicted in brackets):",
              "", gap_table(records), ""]
    if diagnostics:
        block += ["Candidate causes of a miss, one at a time: predicted − measured-by-loss in points of sparsity (the ε "
                  "columns re-measure at the changed ε; quadratic one-shot: the loss model gᵀd + ½dᵀHd along the "
                  "structure's own path, minus the measured limit), the knee's sharpness at s*, and the curvature the "
                  "pruned direction meets at the measured limit (dᵀHd/‖d‖²) over the mean |λ| a random direction meets.",
                  "", diagnostics_table(records, diagnostics), "",
                  "The ε the 2:4 pattern needs, measured and predicted, with one change at a time (no zero atom: "
                  "eigenvalues below 1e-4·λmax floored there; curvature met: dᵀHd/‖d‖² of the 2:4 direction over tr|H|/D).",
                  "", pattern_diagnostics_table(records, diagnostics), ""]
    if refits:
        block += [f"Loss rise over ε at each structure's predicted point: one-shot, and after re-fitting the kept weights "
                  f"(masks fixed, data loss only, {REFIT_EPOCHS} epochs of SGD at lr {REFIT_LR}). Below 1 the point lies "
                  "in the sublevel set.", "", refit_table(records, refits), ""]
    if figures is not None:
        rel = figures.relative_to(path.parent).as_posix()
        for r in records:
            name = r["row"]["name"]
            block.append(f"![{name}: R(s) and limits by structure]({rel}/{name}-structures.png)")
        block.append("")
    block.append(END)
    generated = "\n".join(block)
    # a --docs folder without the page (a scratch folder): the generated tables alone, as run_validation.py does
    text = path.read_text() if path.exists() else "# Structured pruning limits\n\n" + BEGIN + "\n" + END + "\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + generated + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + generated + "\n"
    atomic_write(path, text)


def left_out(path: Path, names: list[str], diagnose: bool) -> list[str] | None:
    """What a run of ``names`` would drop from the structures JSON at ``path``: its other rows, and its
    diagnostics when the run has none ([] when nothing or no file; None: not such a JSON)."""
    if not path.exists():
        return []
    try:
        content = json.loads(path.read_text())
        held = [r["row"]["name"] for r in content["rows"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    dropped = [n for n in held if n not in names]
    if not diagnose and (content.get("diagnostics") or content.get("refit")):
        dropped.append("the diagnostics and refit (run without --diagnose)")
    return dropped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", help="comma-separated l1-trained row names (default: all of them)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=None, help="Lanczos steps (default: the suite's)")
    parser.add_argument("--probes", type=int, default=None, help="SLQ probes (default: the suite's)")
    parser.add_argument("--cache", default="examples/validation/cache", help="cache folder of run_validation.py")
    parser.add_argument("--docs", default="docs", help="folder of validation.md, the JSON and the figures")
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--diagnose", action="store_true", help="try the candidate causes of a miss one at a time")
    parser.add_argument("--force", action="store_true",
                        help="write into --docs even when its validation-structures.json holds rows or diagnostics this run "
                             "leaves out (they are dropped, from the JSON and from validation.md's tables)")
    args = parser.parse_args(argv)

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from pruning_limits.report import write_json
    from pruning_limits.spectrum import DEFAULT_ITERATIONS, DEFAULT_PROBES
    from run_validation import ROWS, is_l1

    torch.set_num_threads(args.threads)
    trained = {row.name: row for row in ROWS if is_l1(row) and not row.init}
    names = args.rows.split(",") if args.rows else list(trained)
    unknown = [n for n in names if n not in trained]
    if unknown:
        parser.error(f"expected l1-trained rows of run_validation.ROWS, got {unknown}; known: {', '.join(trained)}")
    iterations = args.iterations or DEFAULT_ITERATIONS
    probes = args.probes or DEFAULT_PROBES
    docs = Path(args.docs)
    figures = None if args.no_figures else docs / "validation"
    cache = Path(args.cache)
    target = docs / "validation-structures.json"
    dropped = left_out(target, names, args.diagnose)
    if dropped != [] and not args.force:  # before any work: a row's run also rewrites its figure in --docs
        held = "is no structures JSON of this script" if dropped is None else f"holds what this run leaves out ({', '.join(dropped)})"
        parser.error(f"{target} {held}; writing would replace it and the tables of {docs / 'validation.md'}. "
                     "Point --docs at a scratch folder, or pass --force")
    cache.mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    records = [
        run_row(trained[n], seed=args.seed, cache=cache, iterations=iterations, probes=probes, figures=figures, log=log)
        for n in names
    ]
    settings = {
        "command": "python examples/validation/structures.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "threads": args.threads,
        "iterations": iterations,
        "probes": probes,
        "seed": args.seed,
    }
    diagnostics = None
    if args.diagnose:
        diagnostics = [
            diagnose(trained[n], r, seed=args.seed, cache=cache, iterations=iterations, probes=probes, log=log)
            for n, r in zip(names, records)
        ]
    refits = None
    if args.diagnose:
        refits = [
            refit(trained[n], r, seed=args.seed, cache=cache, iterations=iterations, probes=probes, log=log)
            for n, r in zip(names, records)
        ]
    docs.mkdir(parents=True, exist_ok=True)
    write_json(target, {"settings": settings, "rows": records, "diagnostics": diagnostics, "refit": refits})
    write_markdown(docs / "validation.md", records, settings, figures, diagnostics, refits)
    print(curve_table(records))
    print()
    print(summary(records))
    print()
    print(pattern_table(records))
    print()
    print(gap_table(records))
    if diagnostics:
        print()
        print(diagnostics_table(records, diagnostics))
        print()
        print(pattern_diagnostics_table(records, diagnostics))
        print()
        print(refit_table(records, refits))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
