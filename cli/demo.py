"""``pruning-limit demo``: train, predict, measure and report on the digits data, in minutes on a CPU."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import click

from ._common import (
    Console,
    all_or_none,
    check_output_path,
    check_hessian_samples,
    check_spectrum_settings,
    common_options,
    given_folder,
    json_option,
    seed_option,
    refuse_launcher,
    spectrum_options,
    train_next_step,
)

#: The demo's model and data: an MLP with the zoo's default widths (64, 32; D = 6 464 prunable
#: weights) on scikit-learn's 8×8 digits (1 400 training images).
DEMO_MODEL = "mlp"
DEMO_DATA = "digits"


@click.command("demo")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, readable=False),  # a folder to write in need not be readable
    default="pruning-limit-demo",
    show_default=True,
    callback=given_folder,  # '' wrote into the current folder, over a model.pt there
    help="Folder for the model, the figures, the report and the JSON record.",
)
@click.option("--epochs", type=int, default=None, help="Training epochs (default: the library's, 100).")
@spectrum_options
@seed_option
@json_option
@common_options(detail=True)
def demo_command(
    out_dir: str,
    epochs: int | None,
    iterations: int | None,
    probes: int | None,
    memory_budget: float | None,
    tolerance: float | None,
    hessian_samples: int | None,
    device: str,
    analysis_dtype: str,
    seed: int,
    as_json: bool,
    console: Console,
) -> None:
    """Train an l1-regularised MLP on digits (λ auto), predict its pruning limit, measure it, report.

    Writes model.pt, report.md, report-spectrum.png, report-prediction.png, report-l1-path.png and
    result.json to --out.
    """
    start = time.perf_counter()  # JSON seconds: the whole command, the library's import included
    refuse_launcher("demo")
    from pruning_limits._checks import PruningLimitsError, check_int
    from pruning_limits.data import load_data

    settings_slq = check_spectrum_settings(
        iterations, probes, memory_budget, tolerance=tolerance, hessian_samples=hessian_samples, device=device,
        dtype=analysis_dtype,
    )
    given: dict[str, Any] = {"seed": seed}
    if epochs is not None:
        given["epochs"] = check_int("--epochs", epochs, 1)
    data = load_data(DEMO_DATA, seed=seed)
    check_hessian_samples(settings_slq, data)
    out = Path(out_dir)
    created = _new_folder(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PruningLimitsError(f"cannot create the output folder {out_dir!r}: {exc.strerror or exc}") from exc
    from pruning_limits.report import REPORT_FIGURES, report_figure_path

    outputs = [out / "model.pt", out / "result.json", out / "report.md"]
    outputs += [report_figure_path(out / "report.md", name) for name in REPORT_FIGURES]
    try:
        for path in outputs:  # a file the demo cannot write is refused before the training
            check_output_path(str(path), figure=path.suffix == ".png", what=f"the demo's {path.name}")
        with all_or_none(None, None, *outputs):  # a failure puts back what the folder held
            _run_demo(out, data, given, settings_slq, seed=seed, as_json=as_json, console=console, start=start)
    except BaseException:  # a failed or interrupted demo leaves no folder it made behind
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise


def _new_folder(out: Path) -> Path | None:
    """The outermost folder of ``out`` that does not exist yet (what ``mkdir(parents=True)`` creates)."""
    missing = None
    for folder in (out, *out.parents):
        if folder.exists():
            break
        missing = folder
    return missing


def _run_demo(
    out: Path, data: Any, given: dict[str, Any], settings_slq: dict[str, Any], *, seed: int, as_json: bool,
    console: Console, start: float,
) -> None:
    """Train, validate and write into ``out``: the demo's work once its inputs are checked."""
    from pruning_limits.checkpoint import save_bundle
    from pruning_limits.models import build_model
    from pruning_limits.regpath import train_auto
    from pruning_limits.report import REPORT_FIGURES, plural, report_figure_path, write_json

    from ._pipeline import command_device
    from .commands import _history_summary, _training_settings, emit_validation, run_validation

    model = build_model(DEMO_MODEL, data, seed=seed)
    console.log(f"[1/2] training {DEMO_MODEL} on {DEMO_DATA} with l1 (LOMP), λ from a regularisation path")
    model.to(command_device(settings_slq))  # trained where --device says, as train does (it trained on the CPU always)
    path, history = train_auto(model, data, test_data=data.test, progress=console.progress, **given)
    model.to("cpu")  # the bundle holds CPU tensors; the analysis makes its own copies on the device
    settings = _training_settings(history, seed)
    training = {**settings, **_history_summary(history), "l1_path": history.settings["l1_path"]}
    save_bundle(out / "model.pt", model, model_spec=DEMO_MODEL, data_spec=DEMO_DATA, training=training)
    # one step, as run_validation does both (it said "[2/3] ..., [3/3] ..." in one line before both)
    console.log("[2/2] predicting the limit from the Hessian spectrum, then measuring it by pruning")
    record = run_validation(
        model,
        data,
        epsilon="batch-std",
        eta=None,
        settings=settings_slq,
        seed=seed,
        console=console,
        plot_path=None,
        report_path=str(out / "report.md"),
        facts={"checkpoint": str(out / "model.pt"), "model_spec": DEMO_MODEL, "data_spec": DEMO_DATA, "data_seed": seed,
               "training": training},
        start=start,
        l1=path.l1,
        next_command=train_next_step(str(out / "model.pt"), training),
        announce=False,  # one line below names every file the demo wrote
    )
    assert record is not None  # None only on ranks other than 0, and demo refuses a launcher
    record["seconds"] = time.perf_counter() - start
    record["out"] = str(out)
    write_json(out / "result.json", record)
    emit_validation(record, as_json=as_json, console=console)
    # one line for every file written (two said it, and the second left out model.pt and result.json);
    # the figures by their pattern, which report.md names one by one (the six names took 112 characters)
    figures = [path for path in (report_figure_path(out / "report.md", name) for name in REPORT_FIGURES) if path.is_file()]
    shown = f" and its {plural(len(figures), 'figure')} (report-*.png)" if figures else ""
    console.log(f"wrote {out}/: model.pt, result.json, report.md{shown}")
