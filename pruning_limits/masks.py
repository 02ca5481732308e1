"""Pruning criteria as orders of removal, masks, and the distance curve R_k².

A criterion ranks the prunable weights (in the flat order of
:func:`~pruning_limits.objective.flat_weights`) from first-to-prune to last-to-prune; pruning
``m`` weights removes the first ``m`` of that order, so the supports are nested and the
distance ``R_k² = ‖w* − w^k‖²`` (Zhang et al. 2024, §3; THEORY §3) is defined for every number
``k`` of kept weights. Criteria:

- ``"magnitude"`` (alias ``"global"``): global magnitude pruning, smallest ``|w|`` first,
  ties broken by the lower flat index first. On weights without ties the masks equal
  ``torch.nn.utils.prune.global_unstructured(..., pruning_method=L1Unstructured)``.
- ``"layerwise"``: every layer loses the same fraction: weights are ranked inside their layer
  by ``|w|`` (ties by index) and ordered globally by ``(rank + 1) / n_layer`` (ties by layer
  order), so after ``m`` removals each layer of ``n_l`` weights has lost ``⌈m·n_l/D⌉`` or
  ``⌊m·n_l/D⌋`` of them (layer-wise magnitude pruning, Han et al. 2015).
- ``"neuron"``: structured pruning of whole output rows (a row of an ``nn.Linear`` weight, an
  output channel of a convolution): groups are removed in increasing order of their mean
  squared weight (the increase of R² per removed weight), inside a group smallest ``|w|``
  first. Shows the neuron-vs-weight gap of THEORY §7 as a larger ``R(s)``.

Masks are ``dict`` of module-qualified weight names (``"0.weight"``) to bool tensors, True =
kept, as in ``torch.nn.utils.prune``; they are applied with ``prune.custom_from_mask`` and made
permanent with ``prune.remove``. The importance of a weight is its *effective* value
(``module.weight``, which is ``weight_orig * weight_mask`` after an earlier pruning), like
``global_unstructured`` does.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from ._checks import PruningLimitsError, check_choice, describe
from .objective import prunable_parameters

CRITERIA = ("magnitude", "global", "layerwise", "neuron")


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
    return torch.cat(
        [w.detach().reshape(-1).to("cpu", torch.float64) for _, _, w in prunable_weights(model)]
    ).numpy()


def resolve_criterion(criterion: str) -> str:
    """Validate ``criterion`` and map the alias ``"global"`` to ``"magnitude"``."""
    check_choice("criterion", criterion, CRITERIA)
    return "magnitude" if criterion == "global" else criterion


def pruning_order(model: nn.Module, criterion: str = "magnitude") -> np.ndarray:
    """Flat indices of the prunable weights in the order the criterion removes them.

    Args:
        model: the network (its effective prunable weights are ranked).
        criterion: ``"magnitude"``/``"global"``, ``"layerwise"`` or ``"neuron"`` (module docstring).

    Returns:
        int64 permutation of ``0..D-1``; the first entry is pruned first.
    """
    criterion = resolve_criterion(criterion)
    weights = prunable_weights(model)
    flat = effective_flat_weights(model)
    magnitude = np.abs(flat)
    if criterion == "magnitude":
        return np.argsort(magnitude, kind="stable").astype(np.int64)
    sizes = [w.numel() for _, _, w in weights]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    if criterion == "layerwise":
        fraction = np.empty(flat.size, dtype=np.float64)
        layer = np.empty(flat.size, dtype=np.int64)
        for i, (start, stop) in enumerate(zip(offsets[:-1], offsets[1:])):
            ranks = np.empty(stop - start, dtype=np.int64)
            ranks[np.argsort(magnitude[start:stop], kind="stable")] = np.arange(stop - start)
            fraction[start:stop] = (ranks + 1) / (stop - start)
            layer[start:stop] = i
        # lexsort: last key is primary; exact rational ties are broken by layer, then rank.
        return np.lexsort((magnitude, layer, fraction)).astype(np.int64)
    # neuron: groups are output rows (dim 0 of every weight tensor).
    group_score = np.empty(flat.size, dtype=np.float64)
    group_id = np.empty(flat.size, dtype=np.int64)
    next_group = 0
    for (_, _, w), start in zip(weights, offsets[:-1]):
        rows = w.shape[0]
        per_row = w.numel() // rows
        block = flat[start : start + w.numel()].reshape(rows, per_row)
        score = (block**2).mean(axis=1)
        group_score[start : start + w.numel()] = np.repeat(score, per_row)
        group_id[start : start + w.numel()] = np.repeat(np.arange(next_group, next_group + rows), per_row)
        next_group += rows
    index = np.arange(flat.size)
    return np.lexsort((index, magnitude, group_id, group_score)).astype(np.int64)


def num_to_prune(amount: Any, dim: int) -> int:
    """Number of weights to prune, exactly as ``torch.nn.utils.prune``.

    An int is a count (``0 <= amount <= dim``); a float is a fraction in [0, 1] and gives
    ``round(amount * dim)`` (Python's round, as ``prune._compute_nparams_toprune``).
    """
    if isinstance(amount, bool) or not isinstance(amount, Real):
        raise PruningLimitsError(f"amount must be an int count or a float fraction, got {describe(amount)}")
    if isinstance(amount, Integral):
        if not 0 <= int(amount) <= dim:
            raise PruningLimitsError(f"amount as a count must lie in [0, {dim}] (the prunable weights), got {amount}")
        return int(amount)
    if not (np.isfinite(amount) and 0.0 <= float(amount) <= 1.0):
        raise PruningLimitsError(f"amount as a fraction must lie in [0, 1], got {amount}")
    return int(round(float(amount) * dim))


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


def compute_masks(model: nn.Module, amount: Any, criterion: str = "magnitude") -> dict[str, Tensor]:
    """Masks (True = kept) that prune ``amount`` prunable weights by ``criterion``.

    Args:
        model: the network (not modified).
        amount: int = number of weights to prune, float = fraction (``torch.nn.utils.prune``'s rule).
        criterion: ``"magnitude"``/``"global"``, ``"layerwise"`` or ``"neuron"``.

    Returns:
        ``{module-qualified weight name: bool tensor}`` in the flat order.
    """
    order = pruning_order(model, criterion)
    return masks_from_order(model, order, num_to_prune(amount, order.size))


def global_magnitude_masks(model: nn.Module, amount: Any) -> dict[str, Tensor]:
    """One-shot global magnitude masks (:func:`compute_masks` with ``"magnitude"``)."""
    return compute_masks(model, amount, "magnitude")


def apply_masks(model: nn.Module, masks: dict[str, Tensor]) -> nn.Module:
    """Apply masks the PyTorch way (``prune.custom_from_mask``) and return the model.

    Masks combine with an earlier pruning of the same weight (PyTorch's PruningContainer).
    """
    by_name = {name: (module, name.rpartition(".")[2]) for name, module, _ in prunable_weights(model)}
    unknown = [name for name in masks if name not in by_name]
    if unknown:
        raise PruningLimitsError(f"masks name unknown weights {unknown}; prunable weights are {list(by_name)}")
    for name, mask in masks.items():
        module, attr = by_name[name]
        weight = getattr(module, attr)
        if tuple(mask.shape) != tuple(weight.shape):
            raise PruningLimitsError(
                f"mask for {name} has shape {tuple(mask.shape)}, the weight has {tuple(weight.shape)}"
            )
        prune.custom_from_mask(module, attr, mask.to(weight.device))
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold every ``torch.nn.utils.prune`` mask into its weight (``prune.remove``)."""
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)
    return model


def prune_model(
    model: nn.Module, amount: Any, criterion: str = "magnitude", *, permanent: bool = False
) -> dict[str, Tensor]:
    """Prune ``model`` in place by ``criterion`` and return the masks.

    Args:
        model: the network; modified in place.
        amount: int count or float fraction of the prunable weights (``torch.nn.utils.prune`` rule).
        criterion: ``"magnitude"``/``"global"``, ``"layerwise"`` or ``"neuron"``.
        permanent: fold the masks into the weights (``prune.remove``) instead of keeping
            ``weight_orig`` and ``weight_mask``.
    """
    masks = compute_masks(model, amount, criterion)
    apply_masks(model, masks)
    if permanent:
        make_permanent(model)
    return masks


def distance_curve(model: nn.Module, criterion: str = "magnitude") -> np.ndarray:
    """``R_k² = ‖w* − w^k‖²`` for ``k = 0..D`` kept weights (THEORY §3).

    ``w^k`` keeps the last ``k`` weights of :func:`pruning_order`; ``R_0²`` is ``‖w*‖²`` and
    ``R_D² = 0``. Sums are float64 cumulative sums of the squared effective weights.

    Returns:
        float64 array of length ``D + 1``, non-increasing in ``k``.
    """
    flat = effective_flat_weights(model)
    order = pruning_order(model, criterion)
    pruned = np.concatenate([[0.0], np.cumsum(flat[order] ** 2)])
    return pruned[::-1].copy()
