"""The steps the commands share: spectrum, prediction, and the figures of a prediction or validation.

Orchestration only: every number is computed by the library. Imports happen inside the
functions so that importing the command line stays cheap.
"""

from __future__ import annotations

import time
from typing import Any

from ._common import Console


def analysis_spectrum(model: Any, data: Any, *, settings: dict[str, int], seed: int, console: Console, exact: bool = False) -> Any:
    """Hessian spectrum of the training loss at the model's weights, on a float64 copy.

    ``predict_limit`` analyses a float64 copy of the model (docs/theory.md, "Float64
    analysis"); the spectrum given to it must come from the same copy.
    """
    import copy

    import torch

    from pruning_limits.spectrum import DEFAULT_ITERATIONS, DEFAULT_PROBES
    from pruning_limits.spectrum import estimate_spectrum, exact_spectrum

    analysed = copy.deepcopy(model).to(torch.float64)
    start = time.perf_counter()
    if exact:
        console.log("computing the exact Hessian spectrum (dense, float64)", level=1)
        spectrum = exact_spectrum(
            analysed, data.train, memory_budget=settings.get("memory_budget"), progress=console.progress
        )
    else:
        iterations = settings.get("iterations", DEFAULT_ITERATIONS)
        probes = settings.get("probes", DEFAULT_PROBES)
        console.log(f"estimating the Hessian spectrum: SLQ, {probes} probes x {iterations} Lanczos steps", level=1)
        spectrum = estimate_spectrum(
            analysed,
            data.train,
            iterations=iterations,
            probes=probes,
            seed=seed,
            memory_budget=settings.get("memory_budget"),
            progress=console.progress,
        )
    log_spectrum(console, spectrum, time.perf_counter() - start)
    return spectrum


def log_spectrum(console: Console, spectrum: Any, seconds: float | None = None) -> None:
    """The ``-v`` line on a finished spectrum: D, products, quadrature rule (and time)."""
    rule = {"block": ", block Gauss rule", "gauss": ", one Gauss rule per probe"}.get(spectrum.rule, "")
    took = "" if seconds is None else f", {seconds:.1f} s"
    console.log(f"spectrum: D = {spectrum.dim}, {spectrum.num_hvps} Hessian-vector products{rule}{took}", level=1)


def analysis_gradient(model: Any, data: Any) -> Any:
    """The data-loss gradient at the weights of a float64 copy (the gradient term's input)."""
    import copy

    import torch

    from pruning_limits.objective import loss_gradient

    return loss_gradient(copy.deepcopy(model).to(torch.float64), data.train)


def predict(
    model: Any, data: Any, spectrum: Any, *, epsilon: Any, eta: float | None, seed: int, gradient: Any = None,
    structure: str = "unstructured",
) -> Any:
    """``predict_limit`` with a precomputed spectrum and gradient (``None``: the paper's model) for a structure."""
    from pruning_limits.limits import DEFAULT_ETA, predict_limit

    return predict_limit(
        model,
        data.train,
        epsilon=epsilon,
        eta=DEFAULT_ETA if eta is None else eta,
        seed=seed,
        spectrum=spectrum,
        gradient_term=gradient is not None,
        gradient=gradient,
        structure=structure,
    )
