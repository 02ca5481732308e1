"""Masks the ``torch.nn.utils.prune`` way, from a structure's removal order; ``R_k²`` curves.

A criterion is a *structure* of :mod:`pruning_limits.structures` (``"unstructured"`` with the
aliases ``"magnitude"``/``"global"``, ``"layerwise"``, ``"neuron"``, ``"channel"``, ``"N:M"``):
it ranks the prunable weights (in the flat order of :func:`~pruning_limits.objective.flat_weights`)
from first-to-prune to last-to-prune, so the supports are nested and the distance
``R_k² = ‖w* − w^k‖²`` (Zhang et al. 2024, §3; THEORY §3, §8) is defined for every number ``k``
of kept weights. On weights without ties the ``unstructured`` masks equal
``torch.nn.utils.prune.global_unstructured(..., pruning_method=L1Unstructured)``.

:func:`compute_masks` and :func:`prune_model` always land on an allowed point of the structure:
``amount`` (int = count, float = fraction, as ``torch.nn.utils.prune``) is rounded *up* to the
next allowed count (whole rows or channels for ``neuron``/``channel``, which leave every
bias, and unless ``+outputs`` the output layer's rows, in place); ``N:M`` takes no amount
(its sparsity is fixed). The lower-level :func:`masks_from_order` prunes any count of an order.
The amount counts all ``D`` prunable weights, also on a model pruned before: it is the sparsity
of this call's masks (``prune_model(net, 0.5)`` twice leaves 50 %), where ``torch.nn.utils.prune``
applies a second amount to the weights still unpruned (``global_unstructured`` at 0.5 twice
leaves 75 %): a limit is a sparsity, so the amount is one too. Masks of another structure on
top of earlier ones combine (a 2:4 model pruned ``neuron`` at 0.3 ends at 66 %): the model's
zeros, not the amount, are its sparsity.

Masks are ``dict`` of module-qualified weight names (``"0.weight"``) to bool tensors, True =
kept, as in ``torch.nn.utils.prune``; they are applied with ``prune.custom_from_mask`` and made
permanent with ``prune.remove``. The importance of a weight is its *effective* value
(``module.weight``, which is ``weight_orig * weight_mask`` after an earlier pruning), like
``global_unstructured`` does. A tensor shared by several modules (a head tied to its input
embedding) is one weight, listed once and masked in every module that uses it, so
``permanent=True`` and the masks give the same network.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from ._checks import PruningLimitsError, describe
from .objective import _parameter_uses, _untie_unlike_masks, fold_pruning, prunable_parameters, pruning_masks
from .structures import STRUCTURES, allowed_count, effective_weights, model_order, parse_structure

#: Criterion names (every ``N:M`` with ``1 <= N < M`` is accepted too).
CRITERIA = ("magnitude", "global", *STRUCTURES)


def prunable_weights(model: nn.Module) -> list[tuple[str, nn.Module, Tensor]]:
    """``(name, module, effective weight)`` of every prunable weight, in the flat order.

    ``name`` is module-qualified (``"features.0.weight"``) and refers to the pruned view
    ``weight`` even when ``torch.nn.utils.prune`` stores ``weight_orig``.
    """
    result = []
    for param_name, _ in prunable_parameters(model):
        module_name, _, attr = param_name.rpartition(".")
        attr = attr.removesuffix("_orig")
        module = model.get_submodule(module_name) if module_name else model
        name = f"{module_name}.{attr}" if module_name else attr
        result.append((name, module, getattr(module, attr)))
    return result


def effective_flat_weights(model: nn.Module) -> np.ndarray:
    """The effective prunable weights (pruned entries as zeros) as one float64 vector."""
    return effective_weights(model)


def resolve_criterion(criterion: str) -> str:
    """Validate ``criterion`` (a structure spec) and return its canonical name.

    ``"unstructured"`` and its aliases ``"global"``/``"magnitude"`` give ``"magnitude"`` (the
    name the calculator and earlier records use); other structures give their own name.
    """
    structure = parse_structure(criterion)
    return "magnitude" if structure.kind == "unstructured" else structure.name


def pruning_order(model: nn.Module, criterion: str = "magnitude") -> np.ndarray:
    """Flat indices of the prunable weights in the order the criterion removes them.

    Args:
        model: the network (its effective prunable weights are ranked).
        criterion: a structure spec (module docstring; :mod:`pruning_limits.structures`).

    Returns:
        int64 permutation of ``0..D-1``; the first entry is pruned first.
    """
    return model_order(model, criterion).order


def num_to_prune(amount: Any, dim: int) -> int:
    """Number of weights to prune, as ``torch.nn.utils.prune`` counts it.

    An int is a count (``0 <= amount <= dim``); a float is a fraction in [0, 1] and gives
    ``round(amount * dim)`` computed as ``prune._compute_nparams_toprune`` computes it: in the
    amount's own type, so a ``numpy.float32`` fraction is multiplied and rounded in float32
    (``np.float32(0.3)`` of 35 weights is 10, as torch prunes, where float64 gave 11 until
    2026-12-06). Where that product overflows (a ``numpy.float16`` fraction of more than 65 504
    weights, which torch cannot count) it is taken in float64, and a count that float32
    rounding puts above ``dim`` (more than 2²⁴ weights) is ``dim``.

    Args:
        amount: an int count or a real fraction (Python, numpy or ``fractions.Fraction``).
        dim: the number of prunable weights.

    Returns:
        The number of weights to prune, in ``[0, dim]``.

    Raises:
        PruningLimitsError: no real number (a bool, a string, a tensor), a count outside
            ``[0, dim]``, or a fraction outside ``[0, 1]`` or not finite.
    """
    if isinstance(amount, bool) or not isinstance(amount, Real):
        raise PruningLimitsError(f"amount must be an int count or a float fraction, got {describe(amount)}")
    if isinstance(amount, Integral):
        if not 0 <= int(amount) <= dim:
            raise PruningLimitsError(f"amount as a count must lie in [0, {dim}] (the prunable weights), got {amount}")
        return int(amount)
    if not (math.isfinite(float(amount)) and 0.0 <= float(amount) <= 1.0):
        raise PruningLimitsError(f"amount as a fraction must lie in [0, 1], got {amount}")
    with np.errstate(over="ignore"):
        product = amount * dim  # torch's arithmetic, in the amount's type
    if not math.isfinite(float(product)):
        product = float(amount) * dim
    return min(int(round(product)), dim)


def masks_from_order(model: nn.Module, order: np.ndarray, num_pruned: int) -> dict[str, Tensor]:
    """Masks (True = kept) that prune the first ``num_pruned`` entries of ``order``."""
    weights = prunable_weights(model)
    keep = np.ones(sum(w.numel() for _, _, w in weights), dtype=bool)
    keep[order[:num_pruned]] = False
    masks, start = {}, 0
    for name, _, w in weights:
        stop = start + w.numel()
        masks[name] = torch.from_numpy(keep[start:stop].copy()).reshape(w.shape).to(w.device)
        start = stop
    return masks


def compute_masks(model: nn.Module, amount: Any = None, criterion: str = "magnitude") -> dict[str, Tensor]:
    """Masks (True = kept) of the allowed point of ``criterion`` that prunes at least ``amount``.

    Args:
        model: the network (not modified).
        amount: int = number of weights to prune, float = fraction (``torch.nn.utils.prune``'s
            rule), rounded up to the structure's next allowed count; ``None`` for ``N:M``.
        criterion: a structure spec: ``"magnitude"``/``"global"``/``"unstructured"``,
            ``"layerwise"``, ``"neuron"``, ``"channel"`` or ``"N:M"``.

    Returns:
        ``{module-qualified weight name: bool tensor}`` in the flat order.
    """
    plan = model_order(model, criterion)
    wanted = None if amount is None else num_to_prune(amount, plan.dim)
    return masks_from_order(model, plan.order, allowed_count(plan, wanted))


def global_magnitude_masks(model: nn.Module, amount: Any) -> dict[str, Tensor]:
    """One-shot global magnitude masks (:func:`compute_masks` with ``"magnitude"``)."""
    return compute_masks(model, amount, "magnitude")


def apply_masks(model: nn.Module, masks: dict[str, Tensor]) -> nn.Module:
    """Apply masks the PyTorch way (``prune.custom_from_mask``) and return the model.

    Masks combine with an earlier pruning of the same weight (PyTorch's PruningContainer). A
    weight shared by several modules (a head tied to an input embedding) is one weight of the
    analysis (:func:`~pruning_limits.objective.prunable_parameters` counts it once), so its mask
    is applied to every module that uses it: the network is the same before and after
    :func:`make_permanent` (until 2026-12-06 only the listed module was masked, the embedding
    read the dense tensor, and ``make_permanent`` then pruned it too and changed the outputs).

    Args:
        model: the network; modified in place.
        masks: ``{module-qualified weight name: bool tensor}`` (True = kept), names as
            :func:`compute_masks` gives them.

    Returns:
        ``model``.

    Raises:
        PruningLimitsError: a name that is no prunable weight, or a mask of another shape.
    """
    by_name = {
        name: (module, name.rpartition(".")[2], param)
        for (name, module, _), (_, param) in zip(prunable_weights(model), prunable_parameters(model))
    }
    unknown = [name for name in masks if name not in by_name]
    if unknown:
        raise PruningLimitsError(f"masks name unknown weights {unknown}; prunable weights are {list(by_name)}")
    uses = _parameter_uses(model)
    for name, mask in masks.items():
        module, attr, param = by_name[name]
        weight = getattr(module, attr)
        if tuple(mask.shape) != tuple(weight.shape):
            raise PruningLimitsError(
                f"mask for {name} has shape {tuple(mask.shape)}, the weight has {tuple(weight.shape)}"
            )
        for user, user_attr, _ in uses.get(id(param), [(module, attr, None)]):
            prune.custom_from_mask(user, user_attr, mask.to(weight.device))
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold every ``torch.nn.utils.prune`` mask into its weight (``prune.remove``), in place.

    The network computes what it computed before. ``prune.remove`` writes ``weight_orig *
    weight_mask`` into the tensor itself, so a tensor shared by several modules keeps its tie
    only when every module that uses it is masked alike (as :func:`apply_masks` masks it);
    otherwise (``torch.nn.utils.prune`` applied to one of them, say a head tied to an embedding)
    each masked use gets its own copy first, as :func:`~pruning_limits.objective.model_copy`
    analyses it, and the other uses keep the unpruned tensor.

    Returns:
        ``model``.
    """
    _untie_unlike_masks(model)
    return fold_pruning(model)


def prune_model(
    model: nn.Module, amount: Any = None, criterion: str = "magnitude", *, permanent: bool = False
) -> dict[str, Tensor]:
    """Prune ``model`` in place by ``criterion`` and return the masks.

    Args:
        model: the network; modified in place.
        amount: int count or float fraction of the prunable weights (``torch.nn.utils.prune``
            rule), rounded up to the structure's next allowed count; ``None`` for ``N:M``.
        criterion: a structure spec (:func:`compute_masks`).
        permanent: fold the masks into the weights (:func:`make_permanent`) instead of keeping
            ``weight_orig`` and ``weight_mask``; the network computes the same either way.

    Returns:
        The masks applied (:func:`compute_masks`).
    """
    masks = compute_masks(model, amount, criterion)
    apply_masks(model, masks)
    if permanent:
        make_permanent(model)
    return masks


def distance_curve(model: nn.Module, criterion: str = "magnitude") -> np.ndarray:
    """``R_k² = ‖w* − w^k‖²`` for ``k = 0..D`` kept weights (THEORY §3) along the criterion's order.

    ``w^k`` keeps the last ``k`` weights of :func:`pruning_order`; ``R_0²`` is ``‖w*‖²`` and
    ``R_D² = 0``. Sums are float64 cumulative sums of the squared effective weights. For a
    structure only its allowed counts are allowed points (:mod:`pruning_limits.structures`).

    Returns:
        float64 array of length ``D + 1``, non-increasing in ``k``.
    """
    from .structures import distance_curve as along_order

    plan = model_order(model, criterion)
    return along_order(effective_weights(model), plan.order)
