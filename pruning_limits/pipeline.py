"""The model-level pipeline: (model, data, settings) -> :class:`~pruning_limits.limits.Prediction`.

The top of the library's house (DESIGN "Wave 2"): it takes a network and its data, computes ε,
the Hessian spectrum (:mod:`pruning_limits.adaptive`, :mod:`pruning_limits.spectrum`) and the
data-loss gradient, and hands arrays to the calculator (:mod:`pruning_limits.limits`) or to a
structure (:mod:`pruning_limits.structures`). The calculator itself never sees a model.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import torch

from ._autograd import with_gradients
from ._checks import PruningLimitsError, check_choice, check_int, check_positive, check_seed, describe, reraise_interrupt
from .limits import DEFAULT_ETA, Prediction, predict_from_spectrum, sparsity_estimator
from .spectrum import DEFAULT_ITERATIONS, DEFAULT_PROBES, Spectrum


@with_gradients
def predict_limit(
    model: Any,
    data: Any,
    *,
    epsilon: float | str = "batch-std",
    iterations: int = DEFAULT_ITERATIONS,
    probes: int | None = DEFAULT_PROBES,
    seed: int = 0,
    eta: float = DEFAULT_ETA,
    loss_fn: Any = None,
    params: Any = "prunable",
    spectrum: Spectrum | None = None,
    dtype: torch.dtype | None = torch.float64,
    gradient_term: bool = True,
    gradient: Any = None,
    memory_budget: int | None = None,
    progress: bool = False,
    structure: Any = "unstructured",
    tolerance: float | None = None,
    hessian_samples: int | None = None,
) -> Prediction:
    """The whole pipeline on a model: ε, Hessian spectrum by SLQ, weights, pruning limit.

    Args:
        model: trained network (not modified).
        data: analysis data (DataLoader, Dataset or ``(x, y)`` pair), normally the training data.
        epsilon: ε > 0, or ``"batch-std"``: the std of the loss over mini-batches of 128 in fixed
            order (the official code's choice, :func:`pruning_limits.objective.batch_std_epsilon`).
        iterations: Lanczos steps per probe (default 300, see docs/theory.md "SLQ settings").
        probes: SLQ probe vectors (default 8, see docs/theory.md "SLQ settings").
        seed: seed of the SLQ probes.
        eta: failure probability of the kinematic interval (default 0.05).
        loss_fn: per-batch mean loss ``loss_fn(outputs, targets)``, the mean of per-sample
            losses (no class weights, no ``reduction='sum'``, no ignored labels: refused by
            :func:`~pruning_limits.objective.check_model_takes_data`); default cross-entropy
            for integer targets, MSE otherwise. An ``nn.Module`` loss is analysed as a copy
            converted to ``dtype`` and the model's device, with the model.
        params: ``"prunable"``, ``"all"`` or a list of parameter names.
        spectrum: a precomputed spectrum of the Hessian (skips SLQ).
        dtype: dtype of the analysed copy of the model, ``torch.float64`` (default) or
            ``torch.float32`` (``None`` analyses the model as it is, or a copy with the masks of
            ``torch.nn.utils.prune`` folded in (:func:`~pruning_limits.objective.model_copy`);
            half precision is refused). Float32 Hessian-vector products
            carry noise of ~1e-7·λ_max, which fakes small eigenvalues exactly where ``φ_R``
            changes (docs/theory.md, "Float64 analysis").
        gradient_term: subtract the first-order cost of pruning from ε (one full-data
            gradient; :func:`predict_from_spectrum`'s ``gradient``). Default True: after l1
            training the data-loss gradient is ``−λ·sign(w)``, and neglecting it made every
            row of docs/validation.md promise more sparsity than pruning delivered. False is
            the paper's model (Zhang et al. 2024, which neglects the term).
        gradient: a precomputed data-loss gradient at the weights (flat, in the order of
            :func:`~pruning_limits.objective.flat_weights`; skips its computation, as ``spectrum``
            skips SLQ). Only with ``gradient_term=True``.
        memory_budget: bytes (default 1 GiB) that the Hessian engine's caches and, apart, the
            Lanczos arrays are each held to, so the two together may use up to about twice it,
            beside the model and the data. SLQ uses the block Gauss rule, fully
            re-orthogonalised when all probes' bases, the projected matrix and the working
            blocks fit, otherwise
            without re-orthogonalisation (:func:`pruning_limits.spectrum.slq`).
        progress: show a tqdm progress bar on stderr.
        structure: the allowed supports (:mod:`pruning_limits.structures`, THEORY §8):
            ``"unstructured"`` (default, global magnitude), ``"layerwise"``, ``"neuron"``,
            ``"channel"`` or ``"N:M"``. Checked, with the model, before any work.
        tolerance: stop SLQ once ``s*`` (with ``structure``, the structure's own number:
            :func:`~pruning_limits.structures.structured_estimator`) has settled to this many sparsity units
            (:mod:`pruning_limits.adaptive`; its default is
            :data:`~pruning_limits.adaptive.DEFAULT_TOLERANCE`); ``iterations`` is then the
            most steps per probe and ``probes=None`` picks
            :func:`~pruning_limits.spectrum.default_probes`. ``None`` (default): a fixed run.
        hessian_samples: the Hessian over a seeded (``seed``) random subset of this many
            samples (:mod:`pruning_limits.subsets`); ε and the gradient term stay on all of
            ``data``. Warns when the subset's rank hazard exceeds the tolerance. ``None``: all.

    Returns:
        :class:`Prediction` with ``num_hvps`` and ``seconds`` of the whole pipeline (for a
        structure: its limit at its allowed points, ``criterion`` its name); for ``N:M`` a
        :class:`~pruning_limits.structures.PatternPrediction` (feasible at ε, needed ε).
    """
    from .objective import batch_std_epsilon, check_model_takes_data, flat_weights, loss_gradient, prunable_parameters

    start = time.perf_counter()
    if hessian_samples is not None:  # before any pass over the data
        from .subsets import check_indexable

        check_indexable(data)
    prunable_parameters(model, params)  # a selection the copy would not fix is named first (a weight norm)
    analysed, loss_fn = _analysis_pair(model, loss_fn, dtype)
    check_model_takes_data(analysed, data, loss_fn)  # the pair that is analysed, in its dtype
    # the settings are checked whether they are used or not (spectrum= skips SLQ): a wrong value is
    # a wrong call either way, and 'no' for gradient_term was truthy
    if not isinstance(gradient_term, bool):
        raise PruningLimitsError(f"gradient_term must be True or False, got {describe(gradient_term)}")
    iterations = check_int("iterations", iterations, 1)
    probes = None if probes is None else check_int("probes", probes, 1)
    seed = check_seed("seed", seed)
    tolerance = None if tolerance is None else check_positive("tolerance", tolerance)
    hessian_samples = None if hessian_samples is None else check_int("hessian_samples", hessian_samples, 1)
    memory_budget = None if memory_budget is None else check_positive("memory_budget", memory_budget)
    if gradient is not None and not gradient_term:
        raise PruningLimitsError("gradient was given with gradient_term=False; pass one or the other")
    if isinstance(epsilon, str):
        check_choice("epsilon", epsilon, ("batch-std",))
    else:
        eps = check_positive("epsilon", epsilon)
    # the structure, with the model, before any pass over the data (ε's is the first): until
    # 2026-12-06 an unknown structure was refused after the batch-std ε had read all the data
    weights = flat_weights(analysed, params)
    plan = None
    if structure != "unstructured":
        from .structures import layer_layout, parse_structure, structured_order

        if parse_structure(structure).kind != "unstructured":
            if params != "prunable":
                raise PruningLimitsError(f"structure {structure} needs params='prunable' (the layers it groups)")
            plan = structured_order(weights, layer_layout(analysed), structure)
    if isinstance(epsilon, str):
        eps = batch_std_epsilon(analysed, data, loss_fn)
    if gradient_term and gradient is None:
        gradient = loss_gradient(analysed, data, loss_fn, params)
    if spectrum is None:
        from .adaptive import DEFAULT_TOLERANCE, adaptive_slq
        from .hessian import DEFAULT_MEMORY_BUDGET, HessianOperator
        from .subsets import hessian_subset, subset_record

        watch = tolerance
        subset = subset_record(
            analysed, data, hessian_samples, weights.size, tolerance=DEFAULT_TOLERANCE if watch is None else watch,
            seed=seed,
        )
        operator = HessianOperator(
            analysed,
            hessian_subset(data, hessian_samples, seed),
            loss_fn=loss_fn,
            params=params,
            memory_budget=DEFAULT_MEMORY_BUDGET if memory_budget is None else memory_budget,
        )
        if watch is None:
            estimate = None
        elif plan is not None:  # the stop watches the structure's own number, not the unstructured s*
            from .structures import structured_estimator

            estimate = structured_estimator(weights, [eps], plan, gradient=gradient)
        else:
            estimate = sparsity_estimator(weights, [eps], gradient=gradient)
        spectrum = adaptive_slq(
            operator,
            estimate,
            tolerance=watch,
            iterations=iterations,
            probes=probes,
            seed=seed,
            memory_budget=memory_budget,
            progress=progress,
        )
        stopping = {**spectrum.stopping, "hessian_subset": subset, "hessian_methods": dict(operator.methods)}
        spectrum = replace(spectrum, num_hvps=operator.num_hvps, stopping=stopping)
    if plan is not None:
        from .structures import predict_structured

        structured = predict_structured(weights, spectrum, eps, plan, eta=eta, gradient=gradient)
        return replace(structured, seconds=time.perf_counter() - start)
    prediction = predict_from_spectrum(weights, spectrum, eps, eta=eta, gradient=gradient)
    return replace(prediction, seconds=time.perf_counter() - start)


def _analysis_pair(model: Any, loss_fn: Any, dtype: torch.dtype | None) -> tuple[Any, Any]:
    """The model and loss the pipeline analyses: copies in ``dtype`` (see :func:`predict_limit`).

    A loss that is an ``nn.Module`` is deep-copied and converted with the model: its tensors
    (a class-weight, a cost matrix, a buffer) would otherwise keep the caller's dtype and meet
    float64 outputs. Until 2026-12-05 a float32 one crashed deep in the ε computation with a
    raw ``RuntimeError`` and a float64 one was refused as "the model and loss do not take the
    data", since the check ran on the caller's float32 model. The caller's model and loss are
    left as they are.

    Raises:
        PruningLimitsError: not an ``nn.Module``, or a dtype other than float32, float64 or None.
    """
    import copy

    from torch import nn

    from .objective import model_copy, model_device_dtype, pruning_masks

    device, _ = model_device_dtype(model)  # refuses a model that is no nn.Module (or on the meta device)
    if dtype is None:
        # torch.nn.utils.prune's weight_orig * weight_mask: analyse the network that runs
        return (model_copy(model) if pruning_masks(model) else model), loss_fn
    if dtype not in (torch.float32, torch.float64):
        raise PruningLimitsError(f"dtype must be torch.float32, torch.float64 or None, got {describe(dtype)}")
    if isinstance(loss_fn, nn.Module):
        try:
            loss_fn = copy.deepcopy(loss_fn).to(device=device, dtype=dtype)
        except Exception as err:  # noqa: BLE001 - a loss holding a non-leaf tensor cannot be copied: used as given
            reraise_interrupt(err)
    return model_copy(model).to(dtype), loss_fn
