"""The analysed objective: prunable weights, data batches, the loss and the default ε.

Conventions follow Zhang et al., "How Sparse Can We Prune A Deep Network" (NeurIPS 2024),
section 3: the prunable weights are the ``weight`` tensors of ``nn.Linear`` and
``nn.Conv1d/2d/3d``; biases and normalisation parameters are neither pruned nor counted.
The loss is the mean per-example training loss over the analysis data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ._checks import PruningLimitsError, describe

LossFn = Callable[[Tensor, Tensor], Tensor]
Data = Union[DataLoader, Dataset, "tuple[Tensor, Tensor]"]
ParamSpec = Union[str, Sequence[str]]

PRUNABLE_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

#: Batch size of the default ε (the official code's mini-batch size for its loss statistics).
EPSILON_BATCH_SIZE = 128


def prunable_parameters(model: nn.Module, params: ParamSpec = "prunable") -> list[tuple[str, nn.Parameter]]:
    """Select the parameters the analysis works on, in a fixed order.

    Args:
        model: the network.
        params: ``"prunable"`` (every ``weight`` of ``nn.Linear`` and ``nn.Conv1d/2d/3d``;
            ``weight_orig`` when ``torch.nn.utils.prune`` re-parametrised it), ``"all"``
            (every parameter), or an explicit list of parameter names.

    Returns:
        ``(name, parameter)`` pairs, shared parameters listed once.

    Raises:
        PruningLimitsError: no parameter selected, or an unknown name.
    """
    named = dict(model.named_parameters())
    if isinstance(params, str) and params == "prunable":
        selected = []
        for module_name, module in model.named_modules():
            if isinstance(module, PRUNABLE_LAYERS):
                attr = "weight_orig" if hasattr(module, "weight_orig") else "weight"
                if isinstance(getattr(module, attr, None), nn.Parameter):
                    selected.append(f"{module_name}.{attr}" if module_name else attr)
        if not selected:
            raise PruningLimitsError(
                f"model {type(model).__name__} has no prunable weights: expected nn.Linear or "
                "nn.Conv1d/2d/3d layers"
            )
    elif isinstance(params, str) and params == "all":
        selected = list(named)
    elif isinstance(params, str):
        raise PruningLimitsError(
            f"params must be 'prunable', 'all' or a list of parameter names, got {describe(params)}"
        )
    else:
        selected = list(params)
        unknown = [name for name in selected if name not in named]
        if unknown:
            raise PruningLimitsError(f"unknown parameter names {unknown}; the model has {list(named)}")
    if not selected:
        raise PruningLimitsError("no parameters selected: the model has no parameters")
    seen: set[int] = set()
    result = []
    for name in selected:
        param = named[name]
        if id(param) not in seen:
            seen.add(id(param))
            result.append((name, param))
    return result


def prunable_dim(model: nn.Module, params: ParamSpec = "prunable") -> int:
    """``D``: the number of weights :func:`prunable_parameters` selects."""
    return sum(p.numel() for _, p in prunable_parameters(model, params))


def flat_weights(model: nn.Module, params: ParamSpec = "prunable") -> np.ndarray:
    """The selected weights as one float64 numpy vector (the order of :func:`prunable_parameters`)."""
    tensors = [p.detach().reshape(-1).to("cpu", torch.float64) for _, p in prunable_parameters(model, params)]
    return torch.cat(tensors).numpy()


def model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the model's first parameter (CPU/float32 without any)."""
    for param in model.parameters():
        return param.device, param.dtype
    return torch.device("cpu"), torch.float32


def _to_tensor(array: Any, name: str) -> Tensor:
    if isinstance(array, Tensor):
        return array
    if isinstance(array, np.ndarray):
        return torch.from_numpy(array)
    raise PruningLimitsError(f"{name} must be a torch.Tensor or numpy array, got {describe(array)}")


def check_pair(x: Any, y: Any) -> tuple[Tensor, Tensor]:
    """Validate an ``(inputs, targets)`` pair: tensors, same non-zero length, finite inputs."""
    x, y = _to_tensor(x, "inputs"), _to_tensor(y, "targets")
    if x.ndim == 0 or y.ndim == 0:
        raise PruningLimitsError(
            f"inputs and targets need a leading sample dimension, got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if len(x) != len(y):
        raise PruningLimitsError(f"inputs and targets differ in length: {len(x)} inputs, {len(y)} targets")
    if len(x) == 0:
        raise PruningLimitsError("the data set is empty: expected at least one sample")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise PruningLimitsError("inputs contain NaN or infinite values")
    if y.is_floating_point() and not torch.isfinite(y).all():
        raise PruningLimitsError("targets contain NaN or infinite values")
    return x, y


def iter_batches(data: Data, batch_size: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(inputs, targets)`` batches from a DataLoader, a Dataset or an ``(x, y)`` pair.

    A DataLoader is iterated as it is (its own batch size); a Dataset is batched in order with
    ``batch_size`` (default 128); an ``(x, y)`` pair is split into chunks of ``batch_size``
    (default: one batch with all samples).
    """
    if isinstance(data, DataLoader):
        source: Any = data
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = check_pair(*data)
        step = len(x) if batch_size is None else batch_size
        for start in range(0, len(x), step):
            yield x[start : start + step], y[start : start + step]
        return
    elif isinstance(data, Dataset) or (
        hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, (str, bytes, dict))
    ):
        if len(data) == 0:
            raise PruningLimitsError("the data set is empty: expected at least one sample")
        source = DataLoader(data, batch_size=batch_size or EPSILON_BATCH_SIZE, shuffle=False)
    else:
        raise PruningLimitsError(
            f"data must be a DataLoader, a Dataset or an (inputs, targets) pair, got {describe(data)}"
        )
    count = 0
    for batch in source:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise PruningLimitsError(
                f"each batch must be an (inputs, targets) pair, got {describe(batch)}"
            )
        count += 1
        yield check_pair(batch[0], batch[1])
    if count == 0:
        raise PruningLimitsError("the data set is empty: expected at least one batch")


def default_loss_fn(targets: Tensor) -> LossFn:
    """Cross-entropy for integer targets, mean squared error otherwise (both mean-reduced)."""
    if targets.is_floating_point():
        return nn.functional.mse_loss
    return nn.functional.cross_entropy


def resolve_loss_fn(loss_fn: LossFn | None, data: Data) -> LossFn:
    """``loss_fn`` itself, or the default for the targets of the first batch of ``data``."""
    if loss_fn is not None:
        return loss_fn
    _, targets = next(iter_batches(data))
    return default_loss_fn(targets)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore each module's mode afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def batch_losses(
    model: nn.Module,
    data: Data,
    loss_fn: LossFn | None = None,
    batch_size: int | None = EPSILON_BATCH_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """Loss of each batch (eval mode, no gradient) and the batch sizes.

    Returns:
        ``(losses, sizes)``, float64 and int64 arrays with one entry per batch.
    """
    loss_fn = resolve_loss_fn(loss_fn, data)
    device, dtype = model_device_dtype(model)
    losses, sizes = [], []
    with eval_mode(model), torch.no_grad():
        for x, y in iter_batches(data, batch_size):
            x = x.to(device, dtype) if x.is_floating_point() else x.to(device)
            y = y.to(device, dtype) if y.is_floating_point() else y.to(device)
            losses.append(float(loss_fn(model(x), y)))
            sizes.append(len(x))
    return np.asarray(losses, dtype=np.float64), np.asarray(sizes, dtype=np.int64)


def evaluate_loss(
    model: nn.Module, data: Data, loss_fn: LossFn | None = None, batch_size: int | None = 1024
) -> float:
    """Mean per-example loss over all of ``data`` (batches weighted by their size)."""
    losses, sizes = batch_losses(model, data, loss_fn, batch_size)
    return float(np.dot(losses, sizes) / sizes.sum())


def batch_std_epsilon(
    model: nn.Module, data: Data, loss_fn: LossFn | None = None, batch_size: int = EPSILON_BATCH_SIZE
) -> float:
    """The default loss tolerance ε ("batch-std").

    The standard deviation (``ddof=0``) over the mini-batches of ``data`` (batch 128, fixed
    order, no augmentation) of the batch loss at the current weights, the choice of the
    official code of Zhang et al. (2024). A DataLoader keeps its own batches.

    Raises:
        PruningLimitsError: fewer than two batches, or every batch has the same loss (ε = 0).
    """
    losses, _ = batch_losses(model, data, loss_fn, batch_size)
    if len(losses) < 2:
        raise PruningLimitsError(
            f"epsilon 'batch-std' needs at least two batches of {batch_size} samples, got {len(losses)}; "
            "give epsilon as a number"
        )
    eps = float(np.std(losses))
    if not eps > 0:
        raise PruningLimitsError("epsilon 'batch-std' is 0 (all batch losses equal); give epsilon as a number")
    return eps


def loss_gradient(
    model: nn.Module,
    data: Data,
    loss_fn: LossFn | None = None,
    params: ParamSpec = "prunable",
    batch_size: int | None = 1024,
) -> np.ndarray:
    """Gradient of the mean per-example loss over all of ``data`` w.r.t. the selected parameters.

    Eval mode (as for the Hessian), batches weighted by their size; a float64 numpy vector in the
    order of :func:`flat_weights`. At an l1-regularised optimum this is ``−λ·sign(w)`` on the
    non-zero weights, the first-order term the quadratic model of Zhang et al. (2024) neglects.
    """
    loss_fn = resolve_loss_fn(loss_fn, data)
    device, dtype = model_device_dtype(model)
    selected = [p for _, p in prunable_parameters(model, params)]
    total = [torch.zeros_like(p, dtype=torch.float64) for p in selected]
    count = 0
    with eval_mode(model):
        for x, y in iter_batches(data, batch_size):
            x = x.to(device, dtype) if x.is_floating_point() else x.to(device)
            y = y.to(device, dtype) if y.is_floating_point() else y.to(device)
            grads = torch.autograd.grad(loss_fn(model(x), y), selected, allow_unused=True)
            for acc, grad in zip(total, grads):
                if grad is not None:
                    acc += grad.detach().to(torch.float64) * len(x)
            count += len(x)
    return torch.cat([acc.reshape(-1) for acc in total]).cpu().numpy() / count
