"""The Hessian over a seeded random subset of the training data, and the rank hazard of doing so.

A Hessian-vector product costs about two passes over its data, so a subset of ``n`` samples
makes every product ``N/n`` times cheaper. The loss tolerance ε (batch-std) and the gradient
term stay on the full training data: only the curvature is subsampled.

The hazard (shared THEORY.md §10): the Gauss-Newton part of a Hessian over ``n`` samples with
``C`` outputs has rank at most ``n·r``, ``r = C − 1`` for cross-entropy (the softmax Hessian
annihilates the all-ones direction) and ``r = C`` for a squared loss. When ``n·r`` is below
``D``, the subset manufactures zero eigenvalues; ``φ_R(0) = 1``, so every unit of spurious
zero mass can raise the predicted sparsity by up to that much. :func:`rank_hazard` is the drop
of that rank cap from the full data to the subset: the extra zero mass when every sample adds
its ``r`` independent directions (samples in general position). It is not a bound: samples that
repeat, or add fewer directions, leave the subset with less rank and more zero mass; the
residual part of the Hessian can fill some of the directions, leaving less.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset

from ._checks import PruningLimitsError, check_int, check_seed
from .objective import check_pair, describe_data, loader_dataset, loader_over


def num_samples(data: Any) -> int:
    """Samples in an ``(x, y)`` pair, a Dataset or a DataLoader's dataset (the part its sampler's
    ``indices`` pick: :func:`pruning_limits.objective.loader_dataset`); an IterableDataset's (or a
    DataLoader over one) are counted by reading it once. A pair of tensors is counted without
    another validation pass over its values (a bundle's are validated when loaded)."""
    if _tensor_pair(data):
        return len(data[0])
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return len(check_pair(*data)[0])
    source = data.dataset if isinstance(data, DataLoader) else data
    if isinstance(source, IterableDataset) or _holds_batches(data):
        from .objective import iter_batches

        return sum(len(x) for x, _ in iter_batches(data))
    if isinstance(data, DataLoader):
        return len(loader_dataset(data))  # type: ignore[arg-type]
    if isinstance(data, Dataset) and hasattr(data, "__len__"):
        return len(data)  # type: ignore[arg-type]
    raise PruningLimitsError(f"data must be an (inputs, targets) pair, a Dataset or a DataLoader, got {describe_data(data)}")


def _tensor_pair(data: Any) -> bool:
    """Whether ``data`` is an ``(x, y)`` pair of tensors of the same non-zero length: counted and
    indexed as it is (:func:`check_pair`'s scan for NaN is left to the passes that read the values)."""
    return (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(part, torch.Tensor) and part.ndim >= 1 and not part.is_inference() for part in data)
        and len(data[0]) == len(data[1]) > 0
    )


def _holds_batches(data: Any) -> bool:
    """Whether ``data`` is a DataLoader whose dataset's items are whole batches (``batch_size=None``
    and no batch sampler): an index picks a batch there, not a sample."""
    return isinstance(data, DataLoader) and data.batch_size is None and data.batch_sampler is None


def check_indexable(data: Any, purpose: str = "a Hessian subset draws samples") -> None:
    """Refuse data whose samples cannot be picked by index: an IterableDataset, a DataLoader over
    one, or a DataLoader whose items are batches already (``batch_size=None``: an index picked a
    batch, and the subset and the shards' weights counted batches; a review, 2026-12-06).

    Args:
        data: the data.
        purpose: what needs the index, for the message (``shard`` says data-parallel shards).

    Raises:
        PruningLimitsError: naming the data.
    """
    source = data.dataset if isinstance(data, DataLoader) else data
    if isinstance(source, IterableDataset):
        raise PruningLimitsError(
            f"{purpose} by index: the data must be an (x, y) pair or a Dataset with a length, "
            f"got the IterableDataset {type(source).__name__}"
        )
    if _holds_batches(data):
        raise PruningLimitsError(
            f"{purpose} by index: got a DataLoader whose items are batches already (batch_size=None); "
            "give its dataset of samples with a batch size, or an (x, y) pair"
        )


def subset_indices(total: int, samples: int, seed: int) -> torch.Tensor:
    """``samples`` distinct indices of ``range(total)``, drawn with ``torch.randperm`` from ``seed``, sorted."""
    total = check_int("total", total, 1)
    samples = check_int("hessian_samples", samples, 1)
    seed = check_seed("seed", seed)  # -1 was taken, 2**64 a raw ValueError of torch's
    if samples > total:
        raise PruningLimitsError(f"hessian_samples must be at most the {total} training samples, got {samples}")
    generator = torch.Generator().manual_seed(seed)
    return torch.sort(torch.randperm(total, generator=generator)[:samples]).values


def hessian_subset(data: Any, samples: int | None, seed: int = 0) -> Any:
    """The data restricted to a seeded random subset of ``samples`` samples (``None``: all of it).

    Args:
        data: an ``(x, y)`` pair, a Dataset or a DataLoader (its batch size is kept).
        samples: subset size, at most the number of samples; ``None`` returns ``data`` itself.
        seed: seed of the draw (the same seed draws the same subset on every process).

    Returns:
        Data of the same kind.

    Raises:
        PruningLimitsError: ``samples`` is not a positive integer or exceeds the data.
    """
    if samples is None:
        return data
    check_indexable(data)
    total = num_samples(data)
    index = subset_indices(total, samples, seed)
    if isinstance(data, (tuple, list)):
        x, y = data if _tensor_pair(data) else check_pair(*data)
        return x[index], y[index]
    if isinstance(data, DataLoader):
        return loader_over(data, Subset(loader_dataset(data), index.tolist()))
    return Subset(data, index.tolist())


def rank_per_sample(outputs: int, classification: bool) -> int:
    """Largest rank one sample adds to the Gauss-Newton part: ``C − 1`` for cross-entropy, ``C`` otherwise."""
    outputs = check_int("outputs", outputs, 1)
    return max(outputs - 1, 1) if classification else outputs


def rank_hazard(samples: int, total: int, per_sample: int, dim: int) -> float:
    """Drop of the Gauss-Newton rank cap from all samples to a subset: ``(min(N r, D) − min(n r, D)) / D``.

    With ``n`` of ``N`` samples, ``r`` rank per sample and ``D`` weights. It is the zero-eigenvalue
    mass the subset adds when every sample adds ``r`` independent directions, and 0 when the
    subset still spans as much as the full data could (``n·r ≥ min(N·r, D)``). Not a bound:
    repeated or degenerate samples add fewer directions, so a subset of them adds more zero mass
    (the module docstring); the residual part of the Hessian can fill some of the directions,
    usually with small eigenvalues, which ``φ_R`` treats much like zeros.
    """
    cap = min(int(total) * int(per_sample), int(dim))
    sub = min(int(samples) * int(per_sample), int(dim))
    return max(cap - sub, 0) / int(dim)


def subset_record(
    model: Any, data: Any, samples: int | None, dim: int, *, tolerance: float, seed: int | None = None
) -> dict[str, Any]:
    """Facts about a Hessian subset, with a ``RuntimeWarning`` when its rank hazard exceeds ``tolerance``.

    Args:
        model: the network (one forward pass on one sample gives the number of outputs).
        data: the full training data.
        samples: the subset size (``None``: all samples, no hazard).
        dim: number of weights ``D``.
        tolerance: largest acceptable :func:`rank_hazard` (sparsity units; the adaptive SLQ
            tolerance, :data:`pruning_limits.adaptive.DEFAULT_TOLERANCE`, by default).
        seed: the seed :func:`hessian_subset` draws the subset from (the command line's
            ``--seed``, which draws the SLQ probes too), recorded when given: a saved result
            names the subset it used.

    Returns:
        ``{"samples", "total", "rank_per_sample", "rank_hazard"}``, and ``"seed"`` when given.
    """
    import warnings

    from .objective import eval_mode, iter_batches, logits, model_device_dtype

    drawn = {} if seed is None else {"seed": check_seed("seed", seed)}
    total = num_samples(data)
    if samples is None:
        return {"samples": total, "total": total, "rank_per_sample": None, "rank_hazard": 0.0, **drawn}
    subset_indices(total, samples, 0)  # checks the size
    x, y = data if _tensor_pair(data) else next(iter_batches(data))
    device, dtype = model_device_dtype(model)
    with torch.no_grad(), eval_mode(model):
        sample = x[:1].to(device, dtype) if x.is_floating_point() else x[:1].to(device)
        outputs = int(logits(model(sample)).reshape(1, -1).shape[1])  # a ModelOutput's .logits, a tuple's first
    per_sample = rank_per_sample(outputs, classification=not y.is_floating_point())
    hazard = rank_hazard(samples, total, per_sample, dim)
    if hazard > tolerance:
        warnings.warn(
            f"the Gauss-Newton part of the Hessian over {samples} of {total} samples has rank ≤ {samples * per_sample} "
            f"(all: {min(total * per_sample, dim)}, D = {dim}): {100 * hazard:.1f} points of spurious zero eigenvalue mass "
            f"can raise s* as much; {_enough(total, per_sample, dim, tolerance)} samples keep it within "
            f"{100 * tolerance:g} points",
            RuntimeWarning,
            stacklevel=2,
        )
    return {"samples": samples, "total": total, "rank_per_sample": per_sample, "rank_hazard": hazard, **drawn}


def _enough(total: int, per_sample: int, dim: int, tolerance: float) -> int:
    """Fewest samples whose :func:`rank_hazard` is at most ``tolerance`` (``total`` at most)."""
    import math

    cap = min(total * per_sample, dim)
    samples = min(total, max(1, math.ceil((cap - tolerance * dim) / per_sample)))
    # the ceiling's floating-point rounding can miss by one either way: settle on rank_hazard itself
    while samples < total and rank_hazard(samples, total, per_sample, dim) > tolerance:
        samples += 1
    while samples > 1 and rank_hazard(samples - 1, total, per_sample, dim) <= tolerance:
        samples -= 1
    return samples
