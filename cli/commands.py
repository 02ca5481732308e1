"""The ``train``, ``spectrum``, ``predict``, ``prune`` and ``validate`` commands.

Thin commands: parse, call the library, serialise. Heavy imports happen inside the command
functions so ``pruning-limit --help`` does not import torch.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click

from . import _pipeline
from ._common import (
    Console,
    absolute_data_spec,
    all_or_none,
    check_hessian_samples,
    check_output_path,
    check_spectrum_settings,
    common_options,
    device_option,
    exact_option,
    given_spec,
    is_main_process,
    json_option,
    load_model_and_data,
    next_step,
    params_option,
    parse_epsilon,
    plot_option,
    seed_option,
    source_options,
    spectrum_options,
    structure_option,
    check_structure,
    data_file,
    recorded_l1,
    refuse_launcher,
    report_selection,
)

#: Default model of ``pruning-limit train``: the zoo MLP with its default widths 64, 32
#: (pruning_limits.models.MLP_DEFAULT_WIDTHS), the demo's model.
DEFAULT_MODEL = "mlp"


def _echo_json(record: Any) -> None:
    from pruning_limits.report import dumps_json

    if is_main_process():  # under torchrun only rank 0 prints
        click.echo(dumps_json(record))


def _command_seconds(record: dict[str, Any], start: float) -> dict[str, Any]:
    """Set a validation record's ``seconds`` to the whole command's wall time (DESIGN "Wave 2")
    and drop its predictions' own (their bound step: 0.001 s beside the command's 7 s in
    ``validate --json``, a review, 2026-12-06). A training record's times stay."""
    entries = [record, *(e for e in record.get("structures") or [] if isinstance(e, dict))]
    for entry in entries:
        for key in ("predicted", "predicted_paper", "exact_predicted"):
            if isinstance(entry.get(key), dict):
                entry[key].pop("seconds", None)
    record["seconds"] = time.perf_counter() - start
    return record


def _training_settings(history: Any, seed: int, data_seed: int | None = None) -> dict[str, Any]:
    """The settings a training run used (from its history) plus the seed its data were loaded
    with (``data_seed``, default ``seed``), as plain values: later commands load the same split."""
    settings = {k: v for k, v in dict(history.settings).items() if v is None or isinstance(v, (bool, int, float, str))}
    settings.setdefault("seed", seed)
    settings["data_seed"] = seed if data_seed is None else int(data_seed)
    return settings


def _data_used(loaded: Any) -> dict[str, Any]:
    """Which data a command on a checkpoint analysed, for its JSON: ``data_spec`` and ``data_seed``,
    the seed their training/test split was drawn with (the one ``train`` stored for the
    checkpoint's own data, else ``--seed``; ``None`` for both where no data were loaded)."""
    return {"data_spec": loaded.data_spec, "data_seed": loaded.data_seed}


def _history_summary(history: Any) -> dict[str, Any]:
    """Final loss and accuracies of a training history, and its total time."""
    summary: dict[str, Any] = {}
    for key in ("loss", "train_accuracy", "test_accuracy"):
        values = getattr(history, key)
        if values and values[-1] is not None:
            summary[f"final_{key}"] = float(values[-1])
    summary["train_seconds"] = float(sum(history.seconds))
    return summary


#: The largest ``--lr``: float32's largest number (torch refused ``1e39`` in a line that named no option).
MAX_LR = 3.4028234663852886e38


def _check_lr(lr: float) -> float:
    """``--lr``: a finite number > 0 that a float32 optimizer step can hold."""
    from pruning_limits._checks import PruningLimitsError, check_positive

    if check_positive("--lr", lr) > MAX_LR:
        raise PruningLimitsError(f"--lr must be at most {MAX_LR:.8g} (float32's largest number), got {lr:g}")
    return lr


def _parse_l1(text: str) -> str | float:
    """``--l1``: ``auto`` (the regularisation path) or a number >= 0."""
    from pruning_limits._checks import check_nonnegative

    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        # a word, not a number: a usage error (exit 2) as click's own "is not a valid float"
        raise click.BadParameter(f"must be 'auto' or a number >= 0, got {text!r}", param_hint="'--l1'") from None
    return check_nonnegative("--l1", value)


def _path_lines(path: dict[str, Any]) -> list[str]:
    """The λ path as ``train`` prints it: one line per λ, the chosen one marked."""
    accuracy = path["metric"] == "accuracy"
    tolerance = f"{100 * path['tolerance']:g} point" if accuracy else f"{path['tolerance']:.3g} (1 point of R²)"
    from pruning_limits.report import hang

    lines = [  # the rule first: train prints this line without -v, as the reason for its λ
        *hang("λ path: ", f"largest λ within {tolerance} of the best validation {path['metric']} "
              f"({path['validation_size']} held-out samples)"),
        f"  {'λ':>8}  {'val. ' + ('acc. %' if accuracy else 'loss'):>10}  {'d ln R/ds at s_ref':>18}",
    ]
    for i, p in enumerate(path["points"]):
        value = f"{100 * p['metric']:.1f}" if accuracy else f"{p['metric']:.4g}"
        mark = "  <- chosen" if i == path["chosen"] else ""
        lines.append(f"  {p['l1']:>8.1e}  {value:>10}  {p['knee_steepness']:>18.1f}{mark}")
    if path.get("stopped_early"):
        lines.append("  (stopped early: the last λ fell beyond 3 tolerances of the best)")
    if path.get("route"):
        # wrapped under its text, as the λ path line above it and the trust lines (it hung at the "(")
        lines += hang("  (", f"path of a fresh network of the same architecture; the checkpoint, which saw the validation "
                      f"split, was then l1 fine-tuned along the grid up to λ = {path['l1']:g})")
    return lines


@click.command("train")
@click.option("--model", "model_spec", default=None, callback=given_spec, help=f"Model spec: mlp[:W1,W2,...], fc5, fc12, fc:DEPTH,WIDTH, cnn[:C1,C2], cnn1d[:C], resnet20[:W], resnet18[:W], transformer[:D,L,H[,P]] or package.module:factory[(key=literal, ...)] (default {DEFAULT_MODEL}; with --init: the checkpoint's).")
@click.option("--data", "data_spec", default=None, callback=given_spec, help="Data spec: digits, mnist1d, synthetic, patterns, tokens, FILE.npz or package.module:function[(key=literal, ...)] (default digits; with --init: the one the checkpoint names). A FILE.npz without x_test/y_test holds out 20 % of its samples as test, drawn with --seed (stored for later commands; not stratified); its values are used as stored (divide uint8 pixels by 255).")
@params_option
@click.option("--l1", "l1_text", default="auto", show_default=True, help="l1 penalty λ: 'auto' chooses it on a regularisation path (largest λ within 1 point of validation accuracy, or 1 point of R², of the best), a number pins it.")
@click.option("--init", "init", type=click.Path(readable=False), default=None, help="Start from this trained network (bundle, state_dict with --model, a trusted TorchScript archive or pickled module, or a Hugging Face folder) and l1 fine-tune it.")
@click.option("--trust-checkpoint", is_flag=True, help="Allow --init to read a full pickled model, a TorchScript archive, or a checkpoint that names its own model or data function. Each runs code the file chooses.")
@click.option("--epochs", type=int, default=None, help="Training epochs at the chosen λ (default: the library's, 100).")
@click.option("--lr", type=float, default=None, help="Initial learning rate, cosine decay to 0, for sgd and adam alike (default: the library's, 0.05).")
@click.option("--optimizer", default=None, help="sgd (momentum 0.9) or adam (default: the library's, sgd).")
@click.option("--batch-size", type=int, default=None, help="Mini-batch size (default: the library's, 128).")
# readable=False: an output need not be readable (click refused a write-only file in three lines)
@click.option("-o", "--output", required=True, type=click.Path(readable=False), help="Checkpoint to write: a bundle (.pt), or the --init's own format for a TorchScript, pickled-module or Hugging Face start (a new folder); not .safetensors.")
@device_option
@seed_option
@json_option
@common_options
def train_command(
    model_spec: str | None,
    data_spec: str | None,
    params: str | None,
    l1_text: str,
    init: str | None,
    trust_checkpoint: bool,
    epochs: int | None,
    lr: float | None,
    optimizer: str | None,
    batch_size: int | None,
    output: str,
    device: str,
    seed: int,
    as_json: bool,
    console: Console,
) -> None:
    """Train a model with l1 regularisation (LOMP), λ chosen automatically, and write it.

    With --init CHECKPOINT the run starts from a trained network instead (the route into the
    regime where the prediction holds) and reports its accuracy and loss before and after.
    """
    start = time.perf_counter()  # JSON seconds: the whole command, the library's import included
    refuse_launcher("train")
    from pruning_limits._checks import check_choice, check_int
    from pruning_limits.data import check_data_fits_model, bundle_fingerprint, load_data, materialize
    from pruning_limits.lomp import OPTIMIZERS, accuracy, check_trained, collapsed, constant_prediction_loss, train
    from pruning_limits.models import build_model
    from pruning_limits.objective import evaluate_loss

    # the library checks these too, under its parameter names; here they are named as options
    l1 = _parse_l1(l1_text)
    epochs = None if epochs is None else check_int("--epochs", epochs, 1)
    lr = None if lr is None else _check_lr(lr)
    optimizer = None if optimizer is None else check_choice("--optimizer", optimizer, OPTIMIZERS)
    batch_size = None if batch_size is None else check_int("--batch-size", batch_size, 1)
    _check_train_output(output, init)
    check_output_path(output, inputs={"--init": init, "--data": data_file(data_spec)})  # the file it names, '~' expanded
    from pruning_limits.devices import resolve_device

    where = resolve_device(device)
    before: dict[str, Any] = {}
    source_kind = "bundle"
    data_seed = seed
    if init is not None:
        loaded = load_model_and_data(init, model_spec=model_spec, data_spec=data_spec, trust=trust_checkpoint, seed=seed, console=console, params=params)
        check_output_path(output, inputs={"--init checkpoint's data": data_file(loaded.data_spec)})  # its stored spec, read just now
        model, data, selection = loaded.model, loaded.data, loaded.params
        model_spec, data_spec, source_kind = loaded.model_spec, loaded.data_spec, loaded.checkpoint.kind
        data_seed = seed if loaded.data_seed is None else loaded.data_seed
        before = {"train_loss": evaluate_loss(model, data.train)}
        if data.test is not None:
            before["test_loss"] = evaluate_loss(model, data.test)
            before["test_accuracy"] = accuracy(model, data.test)
        console.log(f"fine-tuning {init} with l1 on {data_spec}", level=1)
    else:
        model_spec = model_spec or DEFAULT_MODEL
        data_spec = data_spec or "digits"
        data = load_data(data_spec, seed=seed)
        model = build_model(model_spec, data, seed=seed)
        check_data_fits_model(model, data)
        if params is not None:  # the l1 penalty, and every later command on the bundle, use this selection
            from pruning_limits.objective import select_parameters

            select_parameters(model, params)
        selection = report_selection(model, console, params)
        console.log(f"training {model_spec} on {data_spec}", level=1)
    start_loss = evaluate_loss(model, data.train) if init is None else before["train_loss"]  # check_trained's reference
    model.to(where)
    given = {"epochs": epochs, "lr": lr, "optimizer": optimizer, "batch_size": batch_size}
    given = {k: v for k, v in given.items() if v is not None}
    path_record = None
    if l1 == "auto":
        from pruning_limits.regpath import train_auto

        console.log("choosing λ on the regularisation path (pruning_limits.regpath)", level=1)
        fresh = None
        if init is not None:
            from pruning_limits.regpath import fresh_copy

            fresh = fresh_copy(model, seed)
            if fresh is None:
                from pruning_limits.report import hang

                console.log("\n".join(hang("note: ", "this checkpoint's layers cannot be re-initialised, so λ is chosen on "
                                            "its own path, whose validation split its training may have seen "
                                            "(pruning_limits.regpath.train_auto)")))
        path, history = train_auto(
            model, data, seed=seed, start=init or "fresh", fresh=fresh, progress=console.progress, test_data=data.test, **given
        )
        path_record = history.settings["l1_path"]
    else:
        history = train(model, data.train, l1=l1, seed=seed, test_data=data.test, progress=console.progress, **given)
    constant_loss = constant_prediction_loss(materialize(data.train)[1])
    final_loss = check_trained(model, data.train, start_loss=start_loss, constant_loss=constant_loss,
                               l1=history.settings["l1"], l1_chosen=path_record is not None)  # nothing is written for a diverged run
    if collapsed(final_loss, constant_loss):
        lam = history.settings["l1"]
        if path_record is not None:
            cause = f"the λ path chose λ = {lam:g}: do the data hold a signal?"
        elif lam > 0:
            cause = f"λ = {lam:g} is too strong: --l1 auto chooses one"
        else:  # no penalty pulled it there: too short or too slow a training, or data without a signal
            cause = "λ = 0: more epochs or another learning rate?"
        console.log(f"warning: the network fits no better than a constant (training loss {final_loss:.4g}, "
                    f"a constant's {constant_loss:.4g}); {cause}")
    from pruning_limits.regpath import SMALL_VALIDATION

    if path_record is not None and path_record.get("validation_size", SMALL_VALIDATION) < SMALL_VALIDATION:
        size = path_record["validation_size"]
        weight = f" (one is {100 / size:.3g} points of accuracy)" if path_record.get("metric") == "accuracy" else ""
        console.log(f"warning: the λ path validated on {size} samples only{weight}: its choice of λ is noisy")
    settings = _training_settings(history, seed, data_seed)
    summary = _history_summary(history)
    after: dict[str, Any] = {}
    if init is not None:
        after = {"train_loss": final_loss}  # check_trained's evaluate_loss of the trained model
        if data.test is not None:
            after["test_loss"] = evaluate_loss(model, data.test)
            after["test_accuracy"] = accuracy(model, data.test)
    training = {**settings, **summary, "train_loss": final_loss, "constant_loss": constant_loss,
                "data_fingerprint": bundle_fingerprint(data)}  # later commands warn when their data differ
    if path_record is not None:
        training["l1_path"] = path_record
        training["path_seconds"] = path_record["seconds"] + path_record.get("route", {}).get("seconds", 0.0)
    if init is not None:
        training["init"] = {"checkpoint": init, "before": before, "after": after}
    model.to("cpu")  # bundles hold CPU tensors, loadable anywhere
    data_spec = absolute_data_spec(data_spec)  # a relative .npz path named other data from another folder
    _write_trained(output, model, source_kind, model_spec, data_spec, training)
    record = {
        "output": output, "model_spec": model_spec, "data_spec": data_spec, "training": settings, **summary,
        "l1": settings.get("l1"), "l1_path": path_record, "init": training.get("init"), "params": selection,
        "train_loss": final_loss, "constant_loss": constant_loss, "data": data.to_dict(),
        "seconds": time.perf_counter() - start,
    }
    if as_json:
        _echo_json(record)
        return
    from pruning_limits.report import format_number, text_table

    def shown(key: str, value: Any) -> str:  # accuracies in percent, as the answer and the λ path print them
        return "-" if value is None else f"{100 * value:.1f} %" if "accuracy" in key else format_number(value)

    # the answer first (what was written, its λ, its accuracy), then the λ rule; the path and the rest behind -v
    answer = f"wrote {output}: λ = {settings.get('l1'):g}" + (" (auto)" if path_record else "")
    if summary.get("final_test_accuracy") is not None:
        answer += f", test accuracy {shown('accuracy', summary['final_test_accuracy'])}"
        if before.get("test_accuracy") is not None:  # an --init's, before the fine-tune
            answer += f" ({shown('accuracy', before['test_accuracy'])} before)"
    elif summary.get("final_loss") is not None:
        answer += f", training loss {format_number(summary['final_loss'])}"
    lines = [answer]
    if path_record is not None:  # the rule (one line, or two wrapped), then under -v the path itself
        path_lines = _path_lines(path_record)
        rule = next(i for i, line in enumerate(path_lines) if line.lstrip().startswith("λ ") and "val." in line)
        lines += path_lines if console.verbose else path_lines[:rule]
    if not console.verbose:
        console.result("\n".join(lines))
        return
    rows = [("model", model_spec or "-"), ("data", data_spec or "-"), ("l1 (λ)", f"{settings.get('l1'):g}" + (" (auto)" if path_record else ""))]
    if data.test_source == "split":  # the .npz's hold-out, which the analysis never sees
        rows.insert(2, ("data split", f"{len(data.x_train)} train / {len(data.x_test)} held out as test (20 %, seed {data_seed})"))
    if init is not None:
        for key, label in (("test_accuracy", "test accuracy"), ("test_loss", "test loss"), ("train_loss", "training loss")):
            if before.get(key) is not None or after.get(key) is not None:  # regression has no accuracy
                rows.append((f"{label} before -> after", f"{shown(key, before[key])} -> {shown(key, after[key])}"))
    rows += [(k.replace("_", " "), shown(k, v)) for k, v in summary.items()]
    if path_record is not None:
        final = summary["train_seconds"]
        spent = training["path_seconds"]
        rows.append(("path time (s)", f"{spent:.1f} ({spent / max(final, 1e-9):.2g}x the final training)"))  # "+2917 %" read as a rise
    rows += [("time (s)", f"{record['seconds']:.1f}"), ("written", output)]
    console.result("\n".join([*lines, text_table(rows)]))


def _check_train_output(output: str, init: str | None) -> None:
    """Refuse, before any work, an ``-o`` that no command would read back as ``train`` writes it: a
    ``.safetensors`` name (train writes a bundle or the --init's own format), or, for a Hugging Face
    --init (written as a new folder), a name that exists already, file or folder."""
    from pruning_limits._checks import PruningLimitsError

    if output.strip().lower().endswith(".safetensors"):
        raise PruningLimitsError(
            f"train writes a bundle (.pt), or a TorchScript, pickled-module or Hugging Face --init in its own format, "
            f"not a safetensors file, got -o {output!r}: name a .pt file (prune -o NAME.safetensors writes one)"
        )
    if init is not None:
        _refuse_existing_folder_output(output, init, "a Hugging Face --init is written as a new folder")


def _refuse_existing_folder_output(output: str, checkpoint: str, how: str, extra: str = "") -> None:
    """Refuse, before any work, an ``-o`` that exists (file or folder) where ``checkpoint`` is a
    Hugging Face folder, which is written as a new folder (``how`` says by which command)."""
    from pruning_limits._checks import PruningLimitsError
    from pruning_limits.checkpoint import is_huggingface_folder

    if is_huggingface_folder(checkpoint) and os.path.lexists(output):
        raise PruningLimitsError(
            f"-o {output!r} exists ({'a folder' if os.path.isdir(output) else 'a file'}): {how}, so a new folder name "
            f"is expected{extra}"
        )


def _write_trained(output: str, model: Any, kind: str, model_spec: str | None, data_spec: str | None, training: dict[str, Any]) -> None:
    """A bundle when the specs are known (fresh, bundle or state_dict start), else the source's format,
    whose training record then carries the data spec (a bundle stores it beside the record)."""
    from pruning_limits import checkpoint as ckpt

    carried = {**training, "data_spec": data_spec} if data_spec else training
    if kind == "torchscript" and not model_spec:
        ckpt.save_torchscript(output, model, training=carried)  # the record and the selection travel as extra files
    elif kind == "module" and not model_spec:
        ckpt.save_module(output, model, training=carried)  # pickled with the module
    elif kind == "huggingface":  # a folder again: a bundle of it could not be rebuilt (no spec builds it)
        ckpt.save_huggingface(output, model, training=carried)
    else:
        ckpt.save_bundle(output, model, model_spec=model_spec or "", data_spec=data_spec or "", training=training)


@click.command("spectrum")
@click.argument("checkpoint", type=click.Path(readable=False))  # read_checkpoint says "not readable" in one line
@source_options
@spectrum_options
@exact_option
@seed_option
@plot_option
@json_option
@common_options
def spectrum_command(
    checkpoint: str,
    model_spec: str | None,
    data_spec: str | None,
    trust_checkpoint: bool,
    params: str | None,
    iterations: int | None,
    probes: int | None,
    memory_budget: float | None,
    tolerance: float | None,
    hessian_samples: int | None,
    device: str,
    analysis_dtype: str,
    exact: bool,
    seed: int,
    plot_path: str | None,
    as_json: bool,
    console: Console,
) -> None:
    """Estimate the Hessian spectrum of the training loss at CHECKPOINT's weights.

    SLQ stops once the predicted limit (ε = batch-std, with the gradient term, as predict's
    default) has settled, unless --iterations is given alone.
    """
    start = time.perf_counter()
    settings = check_spectrum_settings(
        iterations, probes, memory_budget, tolerance=tolerance, hessian_samples=hessian_samples, device=device,
        dtype=analysis_dtype, exact=exact,
    )
    check_output_path(plot_path, figure=True, inputs={"CHECKPOINT": checkpoint, "--data": data_file(data_spec)})
    _pipeline.join(settings)  # under torchrun: a rank that fails while loading stops the others at once
    loaded = load_model_and_data(checkpoint, model_spec=model_spec, data_spec=data_spec, trust=trust_checkpoint, seed=seed, console=console, exact=exact, params=params)
    check_hessian_samples(settings, loaded.data)
    spectrum, _, _ = _pipeline.watched_spectrum(
        loaded.model, loaded.data, settings=settings, seed=seed, console=console, epsilons=["batch-std"], exact=exact,
        answer=False,
    )
    from pruning_limits import report

    if plot_path and is_main_process():
        report.save_figure(report.spectrum_figure(spectrum), plot_path)
        console.log(f"wrote {plot_path}")
    if as_json:
        _echo_json({"checkpoint": checkpoint, **_data_used(loaded), **spectrum.to_dict(), "params": loaded.params, "seconds": time.perf_counter() - start})
        return
    summary = spectrum.summary()
    method = f"SLQ: {summary['probes']} probes x {summary['iterations']} steps, {summary['rule']} rule"
    if spectrum.reorthogonalization == "none":
        method += " without re-orthogonalisation"
    stop = spectrum.stopping or {}
    if stop.get("adaptive"):  # after "; ": the row wraps there (report.text_table) past LINE_WIDTH
        method += {
            "settled": "; settled",
            "breakdown": "; exact (invariant Krylov space)",
            "dimension": "; NOT settled (D allows no more steps)",
        }.get(stop.get("ended", ""), "; NOT settled (step limit)")
    rows = [
        ("D (prunable weights)", report.format_number(summary["dim"])),
        ("method", "exact (eigvalsh)" if summary["exact"] else method),
        ("lambda_max", report.format_number(summary["lambda_max"])),
        ("lambda_min", report.format_number(summary["lambda_min"])),
        ("trace", report.format_number(summary["trace"]) + (  # exact or one probe: no standard error ("+- -")
            "" if report.format_number(summary.get("trace_stderr")) == "-" else f" ± {report.format_number(summary['trace_stderr'])}")),
        ("atom at zero (mass)", report.format_number(summary["atom_at_zero"])),
        ("Hessian-vector products", report.format_number(summary["num_hvps"])),
    ]
    console.result(report.text_table(rows))


@click.command("predict")
@click.argument("checkpoint", type=click.Path(readable=False))  # read_checkpoint says "not readable" in one line
@source_options
@click.option(
    "--epsilon",
    "epsilons",
    multiple=True,
    help="Loss tolerance ε: 'batch-std' (default: std of the loss over batches of 128) or a number > 0. "
    "Repeat for a curve of the limit against ε.",
)
@click.option("--eta", type=float, default=None, help="Failure probability of the kinematic interval (default 0.05).")
@click.option(
    "--gradient-term/--no-gradient-term",
    default=True,
    show_default=True,
    help="Subtract the first-order cost of pruning from ε (--no-gradient-term: the paper's model).",
)
@structure_option()
@spectrum_options
@exact_option
@seed_option
@plot_option
@json_option
@common_options(detail=True)
def predict_command(
    checkpoint: str,
    model_spec: str | None,
    data_spec: str | None,
    trust_checkpoint: bool,
    params: str | None,
    epsilons: tuple[str, ...],
    eta: float | None,
    gradient_term: bool,
    structure: str,
    iterations: int | None,
    probes: int | None,
    memory_budget: float | None,
    tolerance: float | None,
    hessian_samples: int | None,
    device: str,
    analysis_dtype: str,
    exact: bool,
    seed: int,
    plot_path: str | None,
    as_json: bool,
    console: Console,
) -> None:
    """Predict how sparse CHECKPOINT can be pruned before its training loss rises by ε.

    Prints the limit with its interval and a trust level: 'in regime' (l1-trained, sharp knee of
    R(s) at the limit) or 'outside the regime', with the reason, the evidence and, outside, the
    train --init command that brings the network in. -v for the detail.

    With --structure the answer is the structure's, with the network's trust verdict; for N:M
    the sparsity is fixed (1 - N/M): it says whether the pattern is feasible at ε and the
    smallest ε for which it is.
    SLQ spends Hessian-vector products until s* has settled (--tolerance), unless --iterations
    is given alone. Runs data-parallel under torchrun (docs/usage.md, 'Large models').
    """
    start = time.perf_counter()
    parsed = check_structure(structure)
    eps_values = [parse_epsilon(text) for text in epsilons] or ["batch-std"]
    asked = list(eps_values)  # before watched_spectrum makes them numbers: which one is batch-std
    settings = check_spectrum_settings(
        iterations, probes, memory_budget, tolerance=tolerance, hessian_samples=hessian_samples, device=device,
        dtype=analysis_dtype, exact=exact,
    )
    check_output_path(plot_path, figure=True, inputs={"CHECKPOINT": checkpoint, "--data": data_file(data_spec)})
    if eta is not None:
        from pruning_limits._checks import check_fraction

        check_fraction("--eta", eta, open_low=True, open_high=True)
    _pipeline.join(settings)  # under torchrun: a rank that fails while loading stops the others at once
    loaded = load_model_and_data(checkpoint, model_spec=model_spec, data_spec=data_spec, trust=trust_checkpoint, seed=seed, console=console, exact=exact, params=params)
    check_hessian_samples(settings, loaded.data)
    check_structure(structure, loaded.model)  # a model the structure does not apply to: before any work
    spectrum, gradient, eps_values = _pipeline.watched_spectrum(
        loaded.model, loaded.data, settings=settings, seed=seed, console=console, epsilons=eps_values,
        structures=[parsed.name], gradient_term=gradient_term, exact=exact,
    )
    predictions = [
        _pipeline.predict(loaded.model, loaded.data, spectrum, epsilon=eps, eta=eta, seed=seed, gradient=gradient, structure=parsed.name)
        for eps in eps_values
    ]
    if parsed.kind != "unstructured":
        _emit_structured_predictions(
            predictions, loaded, spectrum, gradient, parsed, checkpoint, plot_path, as_json, console, start=start,
        )
        return
    at_batch_std = next((p for e, p in zip(asked, predictions) if e == "batch-std"), None)
    trusts = _network_trusts(
        recorded_l1(loaded), [(p.epsilon, p.knee_steepness, p.sparsity, p.zero_fraction) for p in predictions],
        lambda: (at_batch_std.epsilon, at_batch_std.knee_steepness, at_batch_std.sparsity) if at_batch_std is not None
        else _batch_std_point(loaded.model, loaded.data, spectrum, gradient, eta),
    )
    next_command, next_reason = next_step(loaded, checkpoint)
    from pruning_limits import report
    from pruning_limits.objective import flat_running_weights

    if plot_path and is_main_process():
        if len(predictions) == 1:
            first = predictions[0]
            # the weights the prediction used: a torch prune mask applied (flat_weights(loaded.model) read
            # weight_orig), read without copying the model
            fixed_point = report.fixed_point_record(flat_running_weights(loaded.model), spectrum, first, gradient)
            figure = report.prediction_figure(first.to_dict(), fixed_point, trust=trusts[0])
        else:
            figure = report.limit_curve_figure([p.to_dict() for p in predictions], trusts=trusts)
        report.save_figure(figure, plot_path)
        console.log(f"wrote {plot_path}")
    records = [{**p.to_dict(), "trust": t} for p, t in zip(predictions, trusts)]
    for record in records:  # the whole command, not the bound step alone
        record["seconds"] = time.perf_counter() - start
    inside = all(t["in_regime"] for t in trusts)
    retrain = any(t["retrain"] for t in trusts)  # outside only at ε whose knee is sharp at batch-std: no fine-tune
    advice = {"next": next_command if retrain else None, "next_reason": next_reason if retrain else None}
    if len(records) == 1:
        if as_json:
            _echo_json({**records[0], "checkpoint": checkpoint, **_data_used(loaded), "params": loaded.params, **advice})
            return
        console.result("\n".join(report.answer_lines(records[0], trusts[0], next_command=advice["next"], next_reason=next_reason)))
        if console.verbose:
            console.result(report.text_table(report.prediction_rows(records[0])))
        return
    if as_json:
        _echo_json(
            {
                "checkpoint": checkpoint,
                **_data_used(loaded),
                "dim": records[0]["dim"],
                "epsilon": [r["epsilon"] for r in records],
                "sparsity": [r["sparsity"] for r in records],
                "density": [r["density"] for r in records],
                "interval": [r["interval"] for r in records],
                "predictions": records,
                "params": loaded.params,
                "seconds": time.perf_counter() - start,
                **advice,
            }
        )
        return
    rows = [
        [r["epsilon"], f"{r['sparsity']:.4f}", report.format_interval(r["interval"]), f"{r['density']:.4f}", r["trust"]["level"]]
        for r in records
    ]
    console.result(report.markdown_table(["epsilon", "predicted sparsity s*", "kinematic interval", "density", "trust"], rows))
    console.result(f"D = {records[0]['dim']} prunable weights")
    if retrain:  # the prose alone, then the next step as predict with one ε prints it (a 161-character line)
        console.result("\n".join(["outside the regime, not a pruning limit, where marked",
                                   *report.next_lines(next_command, next_reason)]))
    elif not inside:
        console.result("outside the regime, not a pruning limit, where marked:\n"
                       "the knee is sharp at ε = batch-std, where the prediction holds")


def _batch_std_point(model: Any, data: Any, spectrum: Any, gradient: Any, eta: float | None) -> tuple[float, float, float] | None:
    """``(ε, d ln R/ds, s*)`` of the unstructured answer at ε = batch-std from this spectrum (no new
    products; one pass over the training data for ε), or ``None`` where the data cannot give batch-std."""
    import torch

    from pruning_limits._checks import PruningLimitsError
    from pruning_limits.limits import DEFAULT_ETA, predict_from_spectrum
    from pruning_limits.objective import flat_weights, model_copy

    try:
        (eps,) = _pipeline.analysis_epsilons(model, data, ["batch-std"])
    except PruningLimitsError:
        return None
    weights = flat_weights(model_copy(model).to(torch.float64))
    point = predict_from_spectrum(weights, spectrum, eps, eta=DEFAULT_ETA if eta is None else eta, gradient=gradient)
    return point.epsilon, point.knee_steepness, point.sparsity


def _network_trusts(
    l1: float | None, knees: list[tuple[float, float, float, float]], batch_std: Any, *, knee_at: str = "s*",
) -> list[dict[str, Any]]:
    """The trust verdicts (``regime.trust_level``) at each ``(ε, d ln R/ds, s*, s₀)``, ``s₀`` the
    fraction of weights already zero (``Prediction.zero_fraction``, from which the small-``s*``
    guard counts); where one is outside for its knee alone, ``batch_std()`` gives the knee at
    ε = batch-std (computed only then) so that a network in the regime there is not sent to an l1
    fine-tune."""
    from pruning_limits.regime import trust_level

    trusts = [trust_level(k, l1, knee_at=knee_at, sparsity=s, epsilon=e, zero_fraction=z) for e, k, s, z in knees]
    if any(not t.in_regime and not (t.l1 is not None and t.l1 <= 0) for t in trusts):
        reference = batch_std()
        if reference is not None:
            trusts = [
                trust_level(k, l1, knee_at=knee_at, sparsity=s, epsilon=e, batch_std=reference, zero_fraction=z)
                for e, k, s, z in knees
            ]
    return [t.to_dict() for t in trusts]


def _emit_structured_predictions(
    predictions: list[Any], loaded: Any, spectrum: Any, gradient: Any, structure: Any, checkpoint: str,
    plot_path: str | None, as_json: bool, console: Console, *, start: float,
) -> None:
    """Print (and plot) the predictions of a structure: limits, or N:M feasibility and needed ε,
    each with the network's trust verdict (its λ and the knee at its unstructured answer from the
    same spectrum, as ``validate --structure`` reads it) and, outside the regime, the next step."""
    import torch

    from pruning_limits import report
    from pruning_limits.limits import predict_from_spectrum
    from pruning_limits.objective import flat_weights, model_copy
    from pruning_limits.structures import layer_layout, structured_order

    model, params = loaded.model, loaded.params
    analysed = model_copy(model).to(torch.float64)
    weights = flat_weights(analysed)
    plan = structured_order(weights, layer_layout(analysed), structure)
    support = plan.to_dict()
    unstructured = [predict_from_spectrum(weights, spectrum, p.epsilon, eta=p.eta, gradient=gradient) for p in predictions]
    trusts = [  # the network's verdict at each ε; its evidence (docs/validation.md) is of unstructured answers: ""
        {**t, "evidence": ""}
        for t in _network_trusts(
            recorded_l1(loaded), [(u.epsilon, u.knee_steepness, u.sparsity, u.zero_fraction) for u in unstructured],
            lambda: _batch_std_point(loaded.model, loaded.data, spectrum, gradient, predictions[0].eta), knee_at="the unstructured s*",
        )
    ]
    retrain = any(t["retrain"] for t in trusts)
    next_command, next_reason = next_step(loaded, checkpoint) if retrain else (None, None)
    if plot_path and is_main_process():  # under torchrun only rank 0 writes
        first = predictions[0]
        if structure.is_pattern:  # one curve against ε: every ε asked is marked on it
            figure = report.pattern_figure(spectrum, first.to_dict(), marked=[p.epsilon for p in predictions])
        elif len(predictions) > 1:  # as for the unstructured limit: the curve against ε
            figure = report.limit_curve_figure(
                [p.to_dict() for p in predictions], title=f"predicted {structure.name} limit against ε", trusts=trusts,
            )
        else:
            from pruning_limits.structures import distance_curve

            fixed_point = report.fixed_point_record(
                weights, spectrum, first, gradient, criterion=distance_curve(weights, plan.order), order=plan.order,
                allowed=plan.allowed,
            )
            figure = report.prediction_figure(first.to_dict(), fixed_point, trust=trusts[0])
        report.save_figure(figure, plot_path)
        console.log(f"wrote {plot_path}")
    records = [{**p.to_dict(), "structure": structure.name, "support": support, "trust": t} for p, t in zip(predictions, trusts)]
    for record in records:  # the whole command (DESIGN "Wave 2")
        record["seconds"] = time.perf_counter() - start
    advice = {"next": next_command, "next_reason": next_reason}
    if as_json:
        if len(records) == 1:
            _echo_json({**records[0], "checkpoint": checkpoint, **_data_used(loaded), "params": params, **advice})
        else:
            _echo_json({"checkpoint": checkpoint, **_data_used(loaded), "structure": structure.name, "dim": records[0]["dim"],
                        "epsilon": [r["epsilon"] for r in records], "sparsity": [r["sparsity"] for r in records],
                        "density": [r["density"] for r in records], "interval": [r["interval"] for r in records],
                        "predictions": records, "params": params, "seconds": time.perf_counter() - start, **advice})
        return
    # one next step for the network: with several ε it follows them all, once (it was repeated after each)
    each = next_command if len(records) == 1 else None
    for i, record in enumerate(records):
        if i:
            console.result("")
        if structure.is_pattern:  # a feasibility answer, not a limit: the answer in a line, the verdict, the rows behind -v
            console.result("\n".join(report.pattern_answer_lines(record, next_command=each, next_reason=next_reason)))
            if console.verbose:
                console.result(report.text_table(report.pattern_prediction_rows(record)))
            continue
        lines = report.answer_lines(record, record["trust"], next_command=each, next_reason=next_reason, structure=structure.name)
        if len(records) > 1:  # which ε each block answers (the blocks read alike, a review); N:M's answer names it
            # "... not a pruning limit" without "for this network": within LINE_WIDTH (it was 105 characters)
            lines[0] = f"at ε = {report.format_number(record['epsilon'])}: {lines[0].removesuffix(' for this network')}"
        console.result("\n".join(lines))
        rows = report.structure_support_rows(support)
        if console.verbose:
            # the knee row is the structure's own s*, not the unstructured one the verdict reads (a review)
            rows = report.prediction_rows(record, knee_at=f"the {structure.name} s*") + rows
            rows.insert(1, ("structure", f"{structure.name} ({support['allowed_points'] - 1} allowed steps up to s = {support['max_sparsity']:.4f})"))
        if rows:
            console.result(report.text_table(rows))
    if next_command and not each:
        console.result("\n" + "\n".join(report.next_lines(next_command, next_reason)))


@click.command("prune")
@click.argument("checkpoint", type=click.Path(readable=False))  # read_checkpoint says "not readable" in one line
@click.option("--sparsity", type=float, default=None, help="Fraction of prunable weights to set to zero, in [0, 1] (not with --structure N:M).")
@structure_option()
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(readable=False),  # an output need not be readable (click refused a write-only file in three lines)
    help="Pruned checkpoint to write: NAME.safetensors writes a safetensors state_dict, a Hugging Face "
    "folder input writes a new folder, anything else the input's kind (a plain state_dict or safetensors input: a bundle).",
)
@source_options
@device_option
@seed_option
@json_option
@common_options
def prune_command(
    checkpoint: str,
    sparsity: float | None,
    structure: str,
    output: str,
    model_spec: str | None,
    data_spec: str | None,
    trust_checkpoint: bool,
    params: str | None,
    device: str,
    seed: int,
    as_json: bool,
    console: Console,
) -> None:
    """Prune CHECKPOINT once by weight magnitude: to --sparsity (globally, or within --structure:
    whole groups are rounded up), or to an N:M pattern (--structure 2:4)."""
    start = time.perf_counter()  # JSON seconds: the whole command
    refuse_launcher("prune")
    from pruning_limits._checks import check_fraction

    parsed = check_structure(structure)
    if parsed.is_pattern and sparsity is not None:  # conflicting options: a usage error (exit 2), as a missing one
        raise click.UsageError(
            f"--sparsity cannot be given with --structure {parsed.name}: the pattern fixes it at 1 - {parsed.n}/{parsed.m}"
        )
    if not parsed.is_pattern and sparsity is None:  # a missing option: a usage error (exit 2), as click's own
        given = click.get_current_context().get_parameter_source("structure") != click.core.ParameterSource.DEFAULT
        raise click.UsageError(
            f"--sparsity is required with --structure {parsed.name} (only N:M fixes the sparsity)" if given
            else "missing --sparsity S (the fraction of weights to prune, in [0, 1]) or --structure N:M"
        )
    sparsity = None if sparsity is None else check_fraction("--sparsity", sparsity)
    if not output.strip().lower().endswith(".safetensors"):
        _refuse_existing_folder_output(output, checkpoint, "a Hugging Face folder is pruned into a new folder",
                                       " (or NAME.safetensors for a state_dict)")
    check_output_path(output, inputs={"CHECKPOINT": checkpoint, "--data": data_file(data_spec)})
    from pruning_limits.devices import resolve_device

    where = resolve_device(device)
    loaded = load_model_and_data(
        checkpoint, model_spec=model_spec, data_spec=data_spec, trust=trust_checkpoint, seed=seed, console=console, need_data=False,
        params=params,
    )
    check_output_path(output, inputs={"checkpoint's data": data_file(loaded.data_spec)})  # its stored spec, read just now
    check_structure(structure, loaded.model)
    from pruning_limits import checkpoint as ckpt
    from pruning_limits.masks import prune_model
    from pruning_limits.objective import evaluate_loss, flat_weights
    from pruning_limits.structures import model_order

    model = loaded.model.to(where)  # the losses are evaluated there
    support = model_order(model, parsed).to_dict()
    loss_before = evaluate_loss(model, loaded.data.train) if loaded.data is not None else None
    prune_model(model, sparsity, "magnitude" if parsed.kind == "unstructured" else parsed.name, permanent=True)
    weights = flat_weights(model)
    zeros = int((weights == 0).sum())
    record: dict[str, Any] = {
        "checkpoint": checkpoint,
        **_data_used(loaded),
        "output": output,
        "structure": parsed.name,
        "dense_layers": support["dense_layers"],
        "requested_sparsity": sparsity,
        "sparsity": zeros / weights.size,
        "pruned": zeros,
        "dim": int(weights.size),
        "loss_before": loss_before,
        "loss_after": evaluate_loss(model, loaded.data.train) if loaded.data is not None else None,
        "params": loaded.params,
    }
    model.to("cpu")  # written with CPU tensors, loadable anywhere
    source = loaded.checkpoint
    ckpt.restore_dtypes(model, source.dtypes)  # a float16 file stays float16
    if output.lower().endswith(".safetensors"):
        ckpt.save_safetensors(output, model)
    elif source.kind == "huggingface":
        ckpt.save_huggingface(output, model, training=source.training)
    elif source.kind == "torchscript":
        ckpt.save_torchscript(output, model, training=source.training)
    elif source.kind == "module":
        ckpt.save_module(output, model, training=source.training)
    else:
        ckpt.save_bundle(
            output,
            model,
            model_spec=loaded.model_spec or "",
            data_spec=absolute_data_spec(loaded.data_spec) or loaded.checkpoint.data_spec or "",  # kept where it is gone
            training=source.training,
            pruning={
                "sparsity": record["sparsity"], "requested_sparsity": sparsity, "source": checkpoint,
                "criterion": "global magnitude" if parsed.kind == "unstructured" else parsed.name, "structure": parsed.name,
            },
        )
    record["seconds"] = time.perf_counter() - start  # written output included
    if as_json:
        _echo_json(record)
        return
    from pruning_limits.report import format_number, text_table

    rows = [
        ("sparsity", f"{record['sparsity']:.4f} ({zeros} of {weights.size} weights zero)"),
        *([] if parsed.kind == "unstructured" else [("structure", parsed.name)]),
        *(
            [("left dense", ", ".join(d["name"] for d in support["dense_layers"]) + f" ({100 * support['dense_share']:.1f} % of weights)")]
            if support["dense_layers"] else []
        ),
        ("training loss before", format_number(record["loss_before"])),
        ("training loss after", format_number(record["loss_after"])),
        ("written", output),
    ]
    console.result(text_table(rows))


def _one_epsilon(values: tuple[str, ...]) -> str:
    """The one ``--epsilon`` of validate: click kept the last of several without a word."""
    if len(values) > 1:
        raise click.BadParameter(
            f"validate takes one ε, got {len(values)} ({', '.join(values)}); predict takes several", param_hint="'--epsilon'"
        )
    return values[0] if values else "batch-std"


@click.command("validate")
@click.argument("checkpoint", type=click.Path(readable=False))  # read_checkpoint says "not readable" in one line
@source_options
@click.option(
    "--epsilon",
    multiple=True,
    callback=lambda _ctx, _param, values: _one_epsilon(values),
    help="Loss tolerance ε: 'batch-std' (default) or a number > 0; one value (predict draws a curve over several).",
)
@click.option("--eta", type=float, default=None, help="Failure probability of the kinematic interval (default 0.05).")
@structure_option(allow_all=True)
@spectrum_options
@click.option(
    "--exact",
    is_flag=True,
    help="Also predict from the exact spectrum (dense float64 Hessian, D <= 10 000); with --structure, "
    "predict from it instead of SLQ.",
)
@seed_option
@plot_option
# readable=False: an output, as -o and --plot, need not be readable (click refused a write-only file in three lines)
@click.option("--report", "report_path", type=click.Path(readable=False), default=None, help="Write a Markdown report (figures beside it; with the λ path of a bundle trained with --l1 auto).")
@click.option("--retrain", type=int, default=None, metavar="EPOCHS", help="Also measure the limit after re-training the kept weights (mask fixed) for EPOCHS epochs per tried sparsity (lomp.retrained_limit).")
@json_option
@common_options(detail=True)
def validate_command(
    checkpoint: str,
    model_spec: str | None,
    data_spec: str | None,
    trust_checkpoint: bool,
    params: str | None,
    epsilon: str,
    eta: float | None,
    structure: str,
    iterations: int | None,
    probes: int | None,
    memory_budget: float | None,
    tolerance: float | None,
    hessian_samples: int | None,
    device: str,
    analysis_dtype: str,
    exact: bool,
    seed: int,
    plot_path: str | None,
    report_path: str | None,
    retrain: int | None,
    as_json: bool,
    console: Console,
) -> None:
    """Predict the limit of CHECKPOINT and measure it with a one-shot magnitude pruning sweep.

    Prints prediction, measurement, difference and the trust level; -v for the full table.

    Also reports the Taylor one-shot diagnostic: where g'd + d'Hd/2 along the pruning path
    first exceeds ε (the quadratic model itself, without the geometric step), and the spectral
    one-shot model, a candidate that estimates d'|H|d from the spectrum (docs/theory.md 6b).

    --structure S predicts and measures S instead (N:M: feasibility and the ε it needs);
    --structure all compares every structure side by side from one spectrum.
    """
    start = time.perf_counter()
    parsed = check_structure(structure, allow_all=True)
    eps = parse_epsilon(epsilon)
    structured = parsed is None or parsed.kind != "unstructured"
    settings = check_spectrum_settings(
        iterations, probes, memory_budget, tolerance=tolerance, hessian_samples=hessian_samples, device=device,
        dtype=analysis_dtype, exact=exact, exact_replaces_slq=exact and structured,  # unstructured: SLQ beside the dense one
    )
    inputs = {"CHECKPOINT": checkpoint, "--data": data_file(data_spec)}  # the file it names, '~' expanded
    check_output_path(plot_path, figure=True, inputs=inputs)
    check_output_path(report_path, inputs=inputs, outputs={"--plot": plot_path})
    if report_path is not None and Path(report_path).suffix.lower() not in (".md", ".markdown"):
        from pruning_limits._checks import PruningLimitsError  # Markdown went into r.png without a word; '.md' was a hidden name

        raise PruningLimitsError(f"--report writes Markdown: give a name ending in .md (or .markdown), got {report_path!r}")
    if report_path is not None:  # and the figures written beside it
        from pruning_limits.report import REPORT_FIGURES, report_figure_path

        for name in REPORT_FIGURES:
            figure = str(report_figure_path(report_path, name))
            check_output_path(figure, figure=True, inputs=inputs, outputs={"--plot": plot_path}, what="the report's figure")
    if retrain is not None:
        from pruning_limits._checks import check_int

        retrain = check_int("--retrain", retrain, 1)
    if eta is not None:
        from pruning_limits._checks import check_fraction

        check_fraction("--eta", eta, open_low=True, open_high=True)
    _pipeline.join(settings)  # under torchrun: a rank that fails while loading stops the others at once
    loaded = load_model_and_data(checkpoint, model_spec=model_spec, data_spec=data_spec, trust=trust_checkpoint, seed=seed, console=console, exact=exact, params=params)
    check_hessian_samples(settings, loaded.data)
    if structured:
        if retrain is not None:
            from pruning_limits._checks import PruningLimitsError

            raise PruningLimitsError(f"--retrain measures the unstructured limit only; drop it or use --structure unstructured, got --structure {structure}")
        _validate_structures(
            loaded, parsed, epsilon=eps, eta=eta, settings=settings, seed=seed, console=console, plot_path=plot_path,
            report_path=report_path, as_json=as_json, exact=exact,
            facts={"checkpoint": checkpoint, "model_spec": loaded.model_spec, **_data_used(loaded), "params": loaded.params},
            start=start,
        )
        return
    record = run_validation(
        loaded.model,
        loaded.data,
        epsilon=eps,
        eta=eta,
        settings=settings,
        seed=seed,
        console=console,
        plot_path=plot_path,
        report_path=report_path,
        exact=exact,
        facts={"checkpoint": checkpoint, "model_spec": loaded.model_spec, **_data_used(loaded), "params": loaded.params, "training": dict(loaded.checkpoint.training or {})},
        start=start,
        l1=recorded_l1(loaded),
        next_command=next_step(loaded, checkpoint),
        retrain=retrain,
    )
    if record is not None:  # None on the ranks other than 0 under torchrun
        emit_validation(record, as_json=as_json, console=console)


def run_validation(
    model: Any,
    data: Any,
    *,
    epsilon: Any,
    eta: float | None,
    settings: dict[str, int],
    seed: int,
    console: Console,
    plot_path: str | None,
    report_path: str | None,
    facts: dict[str, Any],
    start: float,
    exact: bool = False,
    l1: float | None = None,
    next_command: tuple[str, str] | None = None,
    retrain: int | None = None,
    announce: bool = True,
) -> dict[str, Any] | None:
    """Predict, measure (``pruning_limits.validation.validate``), judge the trust, write figures and report; return the record
    (``None`` on the ranks other than 0 under torchrun: their share ends with the spectrum's products).

    ``announce``: say on stderr which files were written (the demo says it once, for all its files)."""
    from pruning_limits import report
    from pruning_limits.validation import validate

    console.log("predicting the limit (SLQ spectrum) and measuring it (one-shot magnitude sweep)", level=1)
    # not watched_spectrum: --exact here keeps SLQ's spectrum (validate adds the dense one) on the float64 copy
    with _pipeline.session(settings) as context:  # the spectrum: adaptive, on the device, data-parallel
        analysed = _pipeline.analysis_copy(model, settings, context, exact=exact)
        gradient = _pipeline.analysis_gradient(model, data, context=context, analysed=analysed)
        eps = _pipeline.analysis_epsilons(model, data, [epsilon], device=context.device)
        spectrum = _pipeline.analysis_spectrum(
            model, data, settings=settings, seed=seed, console=console, estimate=_pipeline.sparsity_estimate(analysed, eps, gradient),
            context=context, analysed=analysed,
        )
    if not is_main_process():  # under torchrun the others' share was the products: rank 0 measures, writes, prints
        return None
    plain = {k: v for k, v in settings.items() if k not in _pipeline.SCALE_KEYS}
    result = validate(_pipeline.measured_copy(model, settings), data, epsilon=epsilon, seed=seed, exact=exact, spectrum=spectrum, progress=console.progress, **plain, **({} if eta is None else {"eta": eta}))
    spectrum, prediction, sweep = result.spectrum, result.prediction, result.sweep
    record = {**result.to_dict(), **facts}
    (record["trust"],) = _network_trusts(
        l1, [(prediction.epsilon, prediction.knee_steepness, prediction.sparsity, prediction.zero_fraction)],
        lambda: None if epsilon == "batch-std" else _batch_std_point(model, data, spectrum, result.gradient, eta),
    )
    outside = record["trust"]["retrain"] and next_command is not None
    record["next"], record["next_reason"] = next_command if outside else (None, None)
    if retrain:
        from pruning_limits.lomp import retrained_limit

        console.log(f"measuring the limit after re-training the kept weights ({retrain} epochs per sparsity, mask fixed)", level=1)
        record["retrained"] = retrained_limit(model, data, epsilon=prediction.epsilon, epochs=retrain, seed=seed, progress=console.progress).to_dict()
    _command_seconds(record, start)
    with all_or_none(plot_path, report_path):
        _write_validation_outputs(record, result, spectrum, prediction, sweep, plot_path, report_path, console, announce=announce)
    _command_seconds(record, start)  # the whole command, figures and report included
    return record


def _write_validation_outputs(
    record: dict[str, Any], result: Any, spectrum: Any, prediction: Any, sweep: Any, plot_path: str | None,
    report_path: str | None, console: Console, *, announce: bool = True,
) -> None:
    """``validate``'s ``--plot`` and ``--report`` with its figures (inside :func:`all_or_none`)."""
    from pruning_limits import report

    if plot_path:
        fixed_point = report.fixed_point_record(result.weights, spectrum, prediction, result.gradient)
        figure = report.prediction_figure(prediction.to_dict(), fixed_point, report.sweep_record(sweep), trust=record.get("trust"))
        report.save_figure(figure, plot_path)
        console.log(f"wrote {plot_path}")
    if report_path:
        from pruning_limits._checks import PruningLimitsError
        from pruning_limits.regpath import check_path_record

        target = Path(report_path)
        l1_path = (record.get("training") or {}).get("l1_path")
        reported = record
        if l1_path:
            try:
                check_path_record(l1_path, report=True)
            except PruningLimitsError as err:  # a damaged bundle: the rest of the report stands
                console.log(f"warning: {err}; the report leaves the λ path out")
                l1_path = None
                reported = {**record, "training": {k: v for k, v in record["training"].items() if k != "l1_path"}}
        figures = report.write_validation_figures(
            target,
            weights=result.weights,
            spectrum=spectrum,
            prediction=prediction,
            sweep=sweep,
            gradient=result.gradient,
            trust=record.get("trust"),
        )
        if l1_path:
            path_png = report.report_figure_path(target, "l1-path")
            flat_knee = (record.get("trust") or {}).get("flat_knee")
            report.save_figure(report.path_figure(l1_path, knee_at_s_star=prediction.knee_steepness, flat_knee=flat_knee), path_png)
            figures["Regularisation path: validation metric and knee sharpness against λ"] = path_png
        relative = {caption: path.name for caption, path in figures.items()}
        report.atomic_write(target, report.validation_markdown(reported, relative))
        _remove_stale_figures(target, figures.values(), console)
        record["report"] = str(target)
        if announce:
            console.log(f"wrote {target} and its figures")


def _remove_stale_figures(report_path: Path, written: Any, console: Console) -> None:
    """Remove the figures an earlier report of this name left that this one does not link (an
    l1-path figure beside a report of a fixed-λ network, a review, 2026-12-06). Those names are
    this command's outputs (checked before any work); inside :func:`all_or_none` a failure
    puts them back."""
    from pruning_limits.report import REPORT_FIGURES, report_figure_path

    kept = {Path(path).resolve() for path in written}
    for name in REPORT_FIGURES:
        figure = report_figure_path(report_path, name)
        if figure.is_file() and figure.resolve() not in kept:
            figure.unlink()
            console.log(f"removed {figure}, an earlier report's figure that this report does not show")


def emit_validation(record: dict[str, Any], *, as_json: bool, console: Console) -> None:
    """Print a validation record: one JSON object, or the table."""
    if as_json:
        _echo_json(record)
        return
    from pruning_limits import report

    lines = report.answer_lines(
        record["predicted"], record["trust"], measured=record["measured"]["limit_by_loss"], next_command=record.get("next"),
        next_reason=record.get("next_reason"),
    )
    if record.get("retrained"):
        lines.insert(1, f"after re-training the kept weights: {100 * record['retrained']['limit']:.1f} % sparsity "
                        f"({report.plural(record['retrained']['epochs'], 'epoch')} per sparsity, mask fixed)")
    console.result("\n".join(lines))
    if console.verbose:
        console.result(report.text_table(report.validation_rows(record)))


def _validate_structures(
    loaded: Any, structure: Any, *, epsilon: Any, eta: float | None, settings: dict[str, int], seed: int, console: Console,
    plot_path: str | None, report_path: str | None, as_json: bool, exact: bool, facts: dict[str, Any], start: float,
) -> None:
    """``validate --structure S|all``: predict and measure each structure from one spectrum; print, plot, report."""
    from pruning_limits import report
    from pruning_limits._checks import PruningLimitsError
    from pruning_limits.validation import ALL_STRUCTURES, validate_structures

    names = list(ALL_STRUCTURES) if structure is None else [structure.name]
    if structure is None:  # 'all': leave out, with a note, what does not apply to this model
        fitting = []
        for name in names:
            try:
                check_structure(name, loaded.model)
                fitting.append(name)
            except PruningLimitsError as exc:
                console.log("\n".join(report.hang("note: ", f"left out {name}: {exc}")))
        names = fitting
    else:  # one line naming what the structure needs, before any work
        check_structure(structure.name, loaded.model)
    # the answer needs ε, so a batch-std the data cannot give is refused with --epsilon's hint
    # (spectrum's '--iterations N alone' led to a second error here)
    spectrum, gradient, _ = _pipeline.watched_spectrum(
        loaded.model, loaded.data, settings=settings, seed=seed, console=console, epsilons=[epsilon], structures=names,
        exact=exact,
    )
    if not is_main_process():  # under torchrun the others' share was the products: rank 0 measures, writes, prints
        return
    console.log(f"predicting and measuring {', '.join(names)} (one spectrum)", level=1)
    result = validate_structures(
        _pipeline.measured_copy(loaded.model, settings), loaded.data, names, epsilon=epsilon, seed=seed, spectrum=spectrum, progress=console.progress,
        memory_budget=settings.get("memory_budget"),  # its Hessian engine's caches (it took the 1 GiB default, a review)
        **({} if eta is None else {"eta": eta}),
    )
    # --exact here replaces SLQ (one spectrum for every structure); the record says which it was
    record = _command_seconds({**result.to_dict(), **facts, "spectrum_source": "exact" if exact else "slq"}, start)
    # the regime is the network's (its λ, the knee at its unstructured answer): one verdict for every
    # structure, an N:M pattern's feasibility answer included (it rests on the same bound)
    # s₀ as the unstructured answer saw it (validate_structures' copy: the stored --params selection,
    # a torch prune mask applied), in the record as network_zero_fraction
    (network,) = _network_trusts(
        recorded_l1(loaded),
        [(result.epsilon, result.network_knee_steepness, result.network_sparsity, result.network_zero_fraction)],
        lambda: None if epsilon == "batch-std" else _batch_std_point(loaded.model, loaded.data, result.spectrum, gradient, eta),
        knee_at="the unstructured s*",
    )
    network["evidence"] = ""  # as predict --structure: the evidence of docs/validation.md is of unstructured answers
    record["trust"] = network
    for entry in record["structures"]:
        entry["trust"] = network
    next_command, next_reason = next_step(loaded, facts["checkpoint"]) if network["retrain"] else (None, None)
    record["next"], record["next_reason"] = next_command, next_reason
    with all_or_none(plot_path, report_path):
        if plot_path:
            report.save_figure(report.structures_figure(record), plot_path)
            console.log(f"wrote {plot_path}")
        if report_path:
            target = Path(report_path)
            figure = report.report_figure_path(target, "structures")
            report.save_figure(report.structures_figure(record), figure)
            report.atomic_write(target, report.structures_markdown(record, figure.name))
            _remove_stale_figures(target, [figure], console)
            record["report"] = str(target)
            console.log(f"wrote {target} and {figure}")
    _command_seconds(record, start)  # the whole command, figures and report included
    if as_json:
        _echo_json(record)
        return
    # the answer first, then the verdict with its reason (one for every structure: the network's),
    # each structure's answer, the next step; the table is the detail, behind -v (as validate's)
    console.result("\n".join(report.structures_answer_lines(record)))
    if console.verbose:
        console.result(report.structures_rows(record))
