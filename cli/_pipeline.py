"""The steps the commands share: spectrum, prediction, and the figures of a prediction or validation.

Orchestration only: every number is computed by the library. Imports happen inside the
functions so that importing the command line stays cheap.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from ._common import Console

#: Settings that choose how the spectrum is computed at scale, not what SLQ does per step.
SCALE_KEYS = ("tolerance", "hessian_samples", "device", "dtype")


@contextlib.contextmanager
def session(settings: dict[str, Any]) -> Iterator[Any]:
    """The compute context of a command: device and, under torchrun, the process group.

    Yields a :class:`pruning_limits.distributed.DistributedContext` (one process without a
    launcher), the one :func:`join` made if the command joined before loading, and leaves the
    group afterwards. After an error a joined group is left by the command's click context once
    the error has been said: a rank other than 0 that tore it down at once made rank 0 stop on
    the broken connection, and torchrun's SIGTERM then cut the line of the rank that had met
    the error (a review, 2026-12-06).
    """
    from pruning_limits.distributed import DistributedContext

    joined = _joined()
    context = joined if joined is not None else DistributedContext(command_device(settings))
    try:
        yield context
    except BaseException:
        if joined is None:
            context.close(wait_for_peers=False)  # a peer may be gone: no barrier
        raise
    context.close()
    _forget_joined()


#: Key of the context :func:`join` made, in the click context's ``meta``.
_JOINED = "pruning_limits.joined_context"


def join(settings: dict[str, Any]) -> None:
    """Under torchrun, join the process group now, before the command loads anything (nothing
    without a launcher): :func:`session` then uses this context.

    A rank that fails while loading then breaks the connection the others wait on in their first
    collective, and they stop at once with one line; joined after loading, they waited in
    torchrun's rendezvous, where SIGTERM cannot reach them, until torchrun killed them 30 s later
    (a review, 2026-12-06). The group is left when the command's click context closes, after
    its error, if any, has been said (``_common._run``), or at the end of its session.
    """
    from pruning_limits.distributed import DistributedContext, launched

    if not launched():
        return
    import click

    ctx = click.get_current_context()
    context = DistributedContext(command_device(settings))
    ctx.meta[_JOINED] = context
    ctx.call_on_close(lambda: (ctx.meta.pop(_JOINED, None), context.close(wait_for_peers=False)))


def _joined() -> Any:
    """The context :func:`join` made for the running command, or ``None``."""
    import click

    ctx = click.get_current_context(silent=True)
    return None if ctx is None else ctx.meta.get(_JOINED)


def _forget_joined() -> None:
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta.pop(_JOINED, None)


def command_device(settings: dict[str, Any]) -> Any:
    """The device a command computes on: ``--device`` (resolved by ``check_spectrum_settings``), else ``auto``'s."""
    from pruning_limits.devices import resolve_device

    return settings.get("device") or resolve_device("auto")


def watched_spectrum(
    model: Any,
    data: Any,
    *,
    settings: dict[str, Any],
    seed: int,
    console: Console,
    epsilons: list[Any],
    structures: Any = ("unstructured",),
    gradient_term: bool = True,
    exact: bool = False,
    answer: bool = True,
) -> tuple[Any, Any, list[float] | None]:
    """The command's spectrum in its :func:`session`: SLQ stops once the answer of each structure
    at each ε has settled (:func:`sparsity_estimate`); ``exact``: the dense spectrum instead.

    Args:
        model, data, settings, seed, console: as for :func:`analysis_spectrum`.
        epsilons: ε values (``"batch-std"`` or numbers) the stop watches.
        structures: the structures whose answers it watches.
        gradient_term: watch the answer with the gradient term (the default) or without.
        exact: the dense float64 spectrum (``--exact``).
        answer: the caller predicts from the gradient and ε too; ``False``: they serve the stop
            alone and are not computed for the dense spectrum.

    Returns:
        ``(spectrum, gradient, epsilons)``: the gradient (``None`` without the gradient term) and
        the numeric ε, both ``None`` when ``exact`` and not ``answer``.
    """
    fixed = "iterations" in settings and "tolerance" not in settings  # a fixed run watches nothing
    with session(settings) as context:  # on the device, data-parallel under torchrun
        analysed = analysis_copy(model, settings, context, exact=exact)
        gradient, values, estimate = None, None, None
        if answer or not (exact or fixed):
            gradient = analysis_gradient(model, data, context=context, analysed=analysed) if gradient_term else None
            values = _watched_epsilons(model, data, epsilons, answer, device=context.device)
            estimate = sparsity_estimate(analysed, values, gradient, structures=structures)
        spectrum = analysis_spectrum(
            model, data, settings=settings, seed=seed, console=console, exact=exact, estimate=estimate,
            context=context, analysed=analysed,
        )
    return spectrum, gradient, values


def _watched_epsilons(model: Any, data: Any, epsilons: list[Any], answer: bool, device: Any = None) -> list[float]:
    """:func:`analysis_epsilons`; where they serve the stop alone (``spectrum``), a batch-std the
    data cannot give (one batch of ``EPSILON_BATCH_SIZE``) is explained with the way around it
    that command has."""
    from pruning_limits.objective import EPSILON_BATCH_SIZE

    if not answer and "batch-std" in epsilons and len(data.x_train) <= EPSILON_BATCH_SIZE:
        from pruning_limits._checks import PruningLimitsError

        raise PruningLimitsError(
            f"the adaptive stop watches s* at epsilon 'batch-std', which needs at least two batches of "
            f"{EPSILON_BATCH_SIZE} training samples, got {len(data.x_train)}: give --iterations N alone for a fixed run"
        )
    return analysis_epsilons(model, data, epsilons, device=device)


def measured_copy(model: Any, settings: dict[str, Any]) -> Any:
    """The model ``validate`` measures and diagnoses (the library follows a model's device): a
    copy on the command's device, in the model's own dtype. The loaded model stays on the CPU,
    where the Taylor products, the gradient and the sweep ran whatever ``--device`` said (a
    review, 2026-12-06)."""
    from pruning_limits.objective import model_copy

    return model_copy(model).to(command_device(settings))


def analysis_copy(model: Any, settings: dict[str, Any], context: Any = None, exact: bool = False) -> Any:
    """The model copy the analysis uses: on the chosen device, in the dtype of ``--dtype``
    (:func:`pruning_limits.devices.analysis_dtype`: ``auto`` is float64 on the CPU for models of
    at most ``devices.FLOAT64_MAX_PARAMETERS`` parameters, float32 above it and on CUDA; float64
    at any size for the dense Hessian of ``--exact``)."""
    from pruning_limits.devices import analysis_dtype
    from pruning_limits.objective import model_copy, model_device_dtype

    device = context.device if context is not None else command_device(settings)
    _, dtype = model_device_dtype(model)
    parameters = sum(p.numel() for p in model.parameters())
    choice = settings.get("dtype", "auto")
    chosen = analysis_dtype(device, dtype, "float64" if exact and choice == "auto" else choice, parameters)
    return model_copy(model).to(device=device, dtype=chosen)


def analysis_spectrum(
    model: Any,
    data: Any,
    *,
    settings: dict[str, Any],
    seed: int,
    console: Console,
    exact: bool = False,
    estimate: Any = None,
    context: Any = None,
    analysed: Any = None,
) -> Any:
    """Hessian spectrum of the training loss at the model's weights, on the analysis copy.

    ``predict_limit`` analyses a float64 copy of the model (docs/theory.md, "Float64
    analysis"); the spectrum given to it must come from the same weights.

    Args:
        model, data, seed, console, exact: the loaded model and data bundle, SLQ seed, output.
        settings: from :func:`cli._common.check_spectrum_settings`.
        estimate: ``spectrum -> values`` to watch (:func:`pruning_limits.limits.sparsity_estimator`):
            SLQ stops once they settle, unless ``--iterations`` was given without ``--tolerance``.
        context: the :func:`session`'s context (data-parallel products under torchrun).
        analysed: the analysis copy if already made (:func:`analysis_copy`).
    """
    from pruning_limits.adaptive import DEFAULT_TOLERANCE, adaptive_slq
    from pruning_limits.hessian import DEFAULT_MEMORY_BUDGET, HessianOperator
    from pruning_limits.spectrum import DEFAULT_ITERATIONS, exact_spectrum
    from pruning_limits.subsets import hessian_subset, subset_record

    analysed = analysis_copy(model, settings, context, exact=exact) if analysed is None else analysed
    start = time.perf_counter()
    if exact:
        if context is not None and context.world_size > 1:
            from pruning_limits._checks import PruningLimitsError

            raise PruningLimitsError(
                f"--exact computes the dense Hessian in one process, got {context.world_size} processes under torchrun: drop one of them"
            )
        console.log("computing the exact Hessian spectrum (dense, float64)", level=1)
        spectrum = exact_spectrum(
            analysed, data.train, memory_budget=settings.get("memory_budget"), progress=console.progress
        )
        log_spectrum(console, spectrum, time.perf_counter() - start)
        return spectrum
    fixed = "iterations" in settings and "tolerance" not in settings
    tolerance = None if fixed or estimate is None else settings.get("tolerance", DEFAULT_TOLERANCE)
    samples = settings.get("hessian_samples")
    from pruning_limits.objective import model_device_dtype, prunable_dim

    subset = subset_record(
        analysed, data.train, samples, prunable_dim(analysed), tolerance=tolerance or DEFAULT_TOLERANCE, seed=seed
    )
    hessian_data = hessian_subset(data.train, samples, seed)
    device, product_dtype = model_device_dtype(analysed)
    dtype_name = str(product_dtype).removeprefix("torch.")
    budget = settings.get("memory_budget") or DEFAULT_MEMORY_BUDGET
    monitor_context = context
    if context is not None and context.world_size > 1:
        from pruning_limits.distributed import ShardedOperator

        local, local_samples, total = context.shard(hessian_data)
        operator: Any = ShardedOperator(
            HessianOperator(analysed, local, memory_budget=budget), local_samples, total, context
        )
    else:
        operator = HessianOperator(analysed, hessian_data, memory_budget=budget)
        monitor_context = None
    from pruning_limits.report import hang

    steps = settings.get("iterations", DEFAULT_ITERATIONS)
    console.log("\n".join(hang(  # within LINE_WIDTH (it was 102 characters), broken after the "; "
        "estimating the Hessian spectrum: ",
        (f"SLQ, {steps} Lanczos steps" if tolerance is None else f"SLQ until s* settles to {100 * tolerance:g} points (at most {steps} steps)")
        + f"; {subset['samples']} of {subset['total']} samples on {device} ({dtype_name} products)"
        + (f", {context.world_size} processes" if context is not None and context.world_size > 1 else ""),
    )), level=1)
    spectrum = adaptive_slq(
        operator,
        estimate if tolerance is not None else None,
        tolerance=tolerance,
        iterations=settings.get("iterations"),
        probes=settings.get("probes"),
        seed=seed,
        memory_budget=settings.get("memory_budget"),  # None: slq's default, which never refuses a run
        progress=console.progress,
        sync=None if monitor_context is None else monitor_context.synced_monitor,
    )
    import dataclasses

    stopping = {
        **(spectrum.stopping or {}),
        "hessian_subset": subset,
        "hessian_methods": dict(getattr(operator, "local", operator).methods),  # auto's rule, recorded
        "device": str(device),
        "dtype": dtype_name,
        "processes": 1 if context is None else context.world_size,
    }
    spectrum = dataclasses.replace(spectrum, num_hvps=operator.num_hvps, stopping=stopping)
    log_spectrum(console, spectrum, time.perf_counter() - start)
    return spectrum


def log_spectrum(console: Console, spectrum: Any, seconds: float | None = None) -> None:
    """The ``-v`` line on a finished spectrum: D, products, quadrature rule (and time), and how it stopped."""
    rule = {"block": ", block Gauss rule", "gauss": ", one Gauss rule per probe"}.get(spectrum.rule, "")
    if spectrum.reorthogonalization == "none":
        rule += " without re-orthogonalisation (bounded memory)"
    took = "" if seconds is None else f", {seconds:.1f} s"
    stop = spectrum.stopping or {}
    settled = ""
    if stop.get("adaptive"):
        settled = f"; {stop.get('ended', '?')} at {spectrum.steps} steps"
    from pruning_limits.report import hang

    # within LINE_WIDTH, broken after the "; " (an adaptive run's line took 95 characters)
    console.log("\n".join(hang("spectrum: ", f"D = {spectrum.dim}, {spectrum.num_hvps} Hessian-vector products{rule}{settled}{took}")),
                level=1)


def analysis_gradient(model: Any, data: Any, *, settings: dict[str, Any] | None = None, context: Any = None, analysed: Any = None) -> Any:
    """The data-loss gradient at the weights of the analysis copy (the gradient term's input).

    Under torchrun each rank takes the gradient of its shard, weighted by its share of the
    samples, and the shards are summed (all ranks hold the same result).
    """
    from pruning_limits.objective import loss_gradient

    analysed = analysis_copy(model, settings or {}, context) if analysed is None else analysed
    if context is None or context.world_size == 1:
        return loss_gradient(analysed, data.train)
    local, local_samples, total = context.shard(data.train)
    return context.all_reduce(loss_gradient(analysed, local) * (local_samples / total))


def analysis_epsilons(model: Any, data: Any, epsilons: list[Any], *, analysed: Any = None, device: Any = None) -> list[float]:
    """Numeric ε values: ``"batch-std"`` from the float64 analysis of the full training data
    (as :func:`pruning_limits.pipeline.predict_limit` computes it) on ``device`` (default the
    CPU; the command's device: ``--device cuda`` ran this pass on the CPU, a review, 2026-12-06),
    numbers as given."""
    import torch

    from pruning_limits.objective import batch_std_epsilon, model_copy

    values = []
    for eps in epsilons:
        if eps == "batch-std":
            float64 = model_copy(model).to(device or "cpu", torch.float64) if analysed is None else analysed
            values.append(batch_std_epsilon(float64, data.train))
        else:
            values.append(float(eps))
    return values


def sparsity_estimate(model: Any, epsilons: list[float], gradient: Any, structures: Any = ("unstructured",)) -> Any:
    """``spectrum -> values`` for the adaptive stop: the answer of each structure at each ε
    (:func:`pruning_limits.structures.structured_estimator`; unstructured: ``s*``)."""
    from pruning_limits.limits import sparsity_estimator
    from pruning_limits.objective import flat_weights

    weights = flat_weights(model)
    if list(structures) == ["unstructured"]:
        return sparsity_estimator(weights, epsilons, gradient=gradient)
    from pruning_limits.structures import layer_layout, structured_estimator, structured_order

    layout = layer_layout(model)
    parts = [structured_estimator(weights, epsilons, structured_order(weights, layout, name), gradient=gradient) for name in structures]
    return lambda spectrum: tuple(value for part in parts for value in part(spectrum))


def predict(
    model: Any, data: Any, spectrum: Any, *, epsilon: Any, eta: float | None, seed: int, gradient: Any = None,
    structure: str = "unstructured",
) -> Any:
    """``predict_limit`` with a precomputed spectrum and gradient (``None``: the paper's model) for a structure."""
    from pruning_limits.limits import DEFAULT_ETA
    from pruning_limits.pipeline import predict_limit

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
