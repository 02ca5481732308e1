"""The steps the commands share: spectrum, prediction, and the figures of a prediction or validation.

Orchestration only: every number is computed by the library. Imports happen inside the
functions so that importing the command line stays cheap.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ._common import Console


def analysis_spectrum(model: Any, data: Any, *, settings: dict[str, int], seed: int, console: Console, exact: bool = False) -> Any:
    """Hessian spectrum of the training loss at the model's weights, on a float64 copy.

    ``predict_limit`` analyses a float64 copy of the model (docs/theory.md, "Float64
    analysis"); the spectrum given to it must come from the same copy.
    """
    import copy

    import torch

    from pruning_limits.limits import DEFAULT_ITERATIONS, DEFAULT_PROBES
    from pruning_limits.spectrum import estimate_spectrum, exact_spectrum

    analysed = copy.deepcopy(model).to(torch.float64)
    start = time.perf_counter()
    if exact:
        console.log("computing the exact Hessian spectrum (dense, float64)", level=1)
        spectrum = exact_spectrum(analysed, data.train, progress=console.progress)
    else:
        iterations = settings.get("iterations", DEFAULT_ITERATIONS)
        probes = settings.get("probes", DEFAULT_PROBES)
        console.log(f"estimating the Hessian spectrum: SLQ, {probes} probes x {iterations} Lanczos steps", level=1)
        spectrum = estimate_spectrum(
            analysed, data.train, iterations=iterations, probes=probes, seed=seed, progress=console.progress
        )
    console.log(f"spectrum: D = {spectrum.dim}, {spectrum.num_hvps} Hessian-vector products, {time.perf_counter() - start:.1f} s", level=1)
    return spectrum


def predict(model: Any, data: Any, spectrum: Any, *, epsilon: Any, eta: float | None, seed: int) -> Any:
    """``predict_limit`` with a precomputed spectrum."""
    from pruning_limits.limits import DEFAULT_ETA, predict_limit

    return predict_limit(
        model, data.train, epsilon=epsilon, eta=DEFAULT_ETA if eta is None else eta, seed=seed, spectrum=spectrum
    )


def fixed_point(model: Any, spectrum: Any, prediction: Any) -> dict[str, Any]:
    """The δ(R(s))/D curve of a prediction, in the form :func:`report.prediction_figure` takes."""
    import numpy as np

    from pruning_limits.limits import fixed_point_curve
    from pruning_limits.objective import flat_weights

    curve = fixed_point_curve(flat_weights(model), spectrum, prediction.epsilon, eta=prediction.eta)
    frac = np.asarray(curve.delta_fraction)
    return {
        "sparsity": np.asarray(curve.sparsity),
        "delta_over_dim": frac,
        "lower": frac - curve.margin,
        "upper": frac + curve.margin,
    }


def sweep_record(result: Any) -> dict[str, Any]:
    """The measured curves and limits of a sweep, in the form :mod:`pruning_limits.report` takes."""
    record = result.to_dict()
    return {
        "sparsity": record["sparsities"],
        "loss": record["train_loss"],
        "accuracy": record.get("test_accuracy"),
        "dense_loss": record.get("dense_loss"),
        "dense_accuracy": record.get("dense_accuracy"),
        "limit_by_loss": record.get("limit_by_loss"),
        "limit_by_accuracy": record.get("limit_by_accuracy"),
    }


def write_validation_figures(
    stem: Path, *, model: Any, spectrum: Any, prediction: Any, sweep_result: Any | None
) -> dict[str, Path]:
    """Write ``<stem>-spectrum.png`` and ``<stem>-prediction.png``; return caption -> path."""
    from pruning_limits import report

    paths = {
        "Hessian spectrum (smoothed for display)": stem.with_name(stem.name + "-spectrum.png"),
        "Predicted limit (left) and measured loss and accuracy (right)": stem.with_name(stem.name + "-prediction.png"),
    }
    spectrum_path, prediction_path = paths.values()
    report.save_figure(report.spectrum_figure(spectrum), spectrum_path)
    sweep = sweep_record(sweep_result) if sweep_result is not None else None
    figure = report.prediction_figure(prediction.to_dict(), fixed_point(model, spectrum, prediction), sweep)
    report.save_figure(figure, prediction_path)
    return paths
