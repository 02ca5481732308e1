"""LOMP: l1-regularised training, one-shot pruning sweep, and the measured pruning limit.

LOMP (Zhang et al., "How Sparse Can We Prune A Deep Network", NeurIPS 2024, §5-6) trains
with ``L(w) + λ Σ|w_i|`` over the prunable weights, then prunes once, globally, by magnitude,
with no fine-tuning. :func:`sweep` measures the limit (THEORY §6):

- loss criterion (the theory's own): with ``m`` pruned weights (``k = D - m`` kept),
  ``s = m / D``. The grid is scanned in increasing ``s`` for the *first* point with
  ``L(w^k) > L(w*) + ε`` (``L`` the mean loss on the analysis = training data); bisection over
  the integer ``m`` between the last passing grid point and that first failing one then finds
  ``m`` with ``L(m) ≤ L* + ε < L(m + 1)``, and ``limit_by_loss = m / D`` (1/D resolution).
  When the loss crosses the threshold once inside that grid interval this is the first
  crossing over all ``m``, i.e. the brute-force scan of every ``k``.
- accuracy criterion (the paper's tables): the *largest* grid sparsity whose test accuracy is
  at least the dense test accuracy, then bisection between it and the next grid point (which
  fails) to one weight, as above.

The sweep copies the prunable weights once, writes the pruned weights into the model for each
evaluation, and restores the copy at the end (also on errors): no checkpoint per step.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from ._autograd import with_gradients
from ._checks import PruningLimitsError, check_choice, check_int, check_nonnegative, check_positive, check_seed, describe
from ._search import first_crossing, grid_counts, last_true
from .data import DataBundle, materialize
from .masks import pruning_order, resolve_criterion
from .objective import (
    LossFn,
    batch_std_epsilon,
    eval_mode,
    evaluate_loss,
    logits,
    model_copy,
    model_device_dtype,
    on_model,
    prunable_parameters,
    resolve_loss_fn,
)
from .structures import model_order

#: Default l1 strength λ. The paper used 2e-5 … 1e-4 with SGD on large networks (THEORY §6
#: gives 1e-5 … 1e-3). On the zoo models 5e-4 leaves 40-67 % of the weights below 1e-3 in
#: magnitude and keeps the accuracy targets (digits mlp 96.5 %, cnn 98.0 %, MNIST-1D cnn1d
#: 91.0 %, mlp 61.5 %); 1e-3 sparsifies more but puts MNIST-1D's MLP below 60 % for some seeds.
DEFAULT_L1 = 5e-4
#: Default epochs. Chosen, not measured: half the 200 of every config of the official code
#: (github.com/QiaozheZhang/Global-One-shot-Pruning, ``configs/*.yml`` at commit e7c9590). No
#: comparison with other epoch counts is recorded (docs, git history); the validation suite
#: trains its rows with it (docs/validation.md, whose table's "test acc." is what it reached).
DEFAULT_EPOCHS = 100
#: Default initial learning rate, cosine decay to 0; for SGD with momentum 0.9, and used unchanged
#: for ``optimizer="adam"`` (there is no separate Adam default). Chosen, not measured: no
#: learning-rate sweep is recorded (docs, git history). The official code (configs at e7c9590, as
#: above) uses SGD with momentum 0.9 at 0.01 with a multistep decay (FC, FC12, AlexNet, VGG16 on
#: CIFAR-10) and at 0.1 with cosine decay (ResNet-18/50 on CIFAR-100); 0.05 lies between. The
#: validation suite trains with it (docs/validation.md).
DEFAULT_LR = 0.05
#: Optimizers ``train`` knows.
OPTIMIZERS = ("sgd", "adam")
#: Default optimizer (the paper's choice).
DEFAULT_OPTIMIZER = "sgd"
#: Momentum of the SGD optimizer.
SGD_MOMENTUM = 0.9


@dataclass
class TrainingHistory:
    """Per-epoch record of :func:`train`.

    Attributes:
        loss: mean data loss over the epoch's mini-batches (without the l1 term).
        l1: the penalty ``λ Σ|w|`` at the end of each epoch (over the weights the network runs:
            masked where ``torch.nn.utils.prune`` masks them).
        train_accuracy, test_accuracy: accuracies at the end of each epoch (eval mode);
            ``None`` entries for regression or without test data.
        seconds: wall time of each epoch.
        settings: the training arguments.
    """

    loss: list[float] = field(default_factory=list)
    l1: list[float] = field(default_factory=list)
    train_accuracy: list[float | None] = field(default_factory=list)
    test_accuracy: list[float | None] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy."""
        return {
            "loss": list(self.loss),
            "l1": list(self.l1),
            "train_accuracy": list(self.train_accuracy),
            "test_accuracy": list(self.test_accuracy),
            "seconds": list(self.seconds),
            "settings": dict(self.settings),
        }


def _split_data(data: Any, test_data: Any) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor] | None]:
    if isinstance(data, DataBundle):
        train = data.train
        if test_data is None:
            test_data = data.test
    else:
        train = materialize(data, "training")
    if isinstance(test_data, DataBundle):
        test_data = test_data.test
    test = None if test_data is None else materialize(test_data, "test")
    return train, test


@contextlib.contextmanager
def _seeded_random_layers(seed: int, device: torch.device) -> Any:
    """Torch's global generator (CPU, and ``device``'s when CUDA) seeded with ``seed`` for the
    block, as it was after: dropout and other random layers draw from it, so a training run is
    reproducible for its seed and the caller's random state is left alone."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


def accuracy(model: nn.Module, data: Any, batch_size: int = 1024) -> float | None:
    """Fraction of samples whose arg-max output equals the integer label (eval mode).

    Returns ``None`` for floating (regression) targets.
    """
    x, y = data if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], Tensor) else materialize(data)
    if y.is_floating_point():
        return None
    device, dtype = model_device_dtype(model)
    correct = 0
    with eval_mode(model), torch.no_grad():
        for start in range(0, len(x), batch_size):
            out = logits(model(on_model(x[start : start + batch_size], device, dtype)))
            correct += int((out.argmax(dim=1).cpu() == y[start : start + batch_size]).sum())
    return correct / len(x)


def _l1_term(params: list[nn.Parameter], masks: list[Tensor | None] | None = None) -> Tensor:
    """``Σ|w|`` over ``params``, each times its mask where ``masks`` gives one (:func:`_l1_masks`)."""
    if masks is None:
        return torch.stack([p.abs().sum() for p in params]).sum()
    return torch.stack([(p if m is None else p * m).abs().sum() for p, m in zip(params, masks)]).sum()


def _l1_masks(model: nn.Module, params: list[nn.Parameter]) -> list[Tensor | None] | None:
    """The masks that make the l1 penalty cover the weights the network runs, one per parameter of
    ``params`` (``None``: the parameter as it is), or ``None`` where the model has no
    ``torch.nn.utils.prune`` mask.

    A pruned module computes ``weight = weight_orig * weight_mask``, and ``weight_orig`` is what
    :func:`~pruning_limits.objective.prunable_parameters` selects: penalised as it is, the pruned
    entries, which the network never reads, counted in ``λ Σ|w|`` and drew the l1 shrinkage
    (until 2026-12-06, a review: ``history.l1`` recorded 7.004 λ for an effective 5.737 λ).
    A tensor read by several modules is masked by the union of their masks (an entry any use
    reads counts), and not at all where one use reads it unmasked.
    """
    from .objective import _parameter_uses, pruning_masks

    if not params or not pruning_masks(model):
        return None
    uses = _parameter_uses(model)
    masks: list[Tensor | None] = []
    for param in params:
        found = [mask for _, _, mask in uses.get(id(param), [])]
        if not found or any(mask is None for mask in found):
            masks.append(None)
            continue
        union = found[0]
        for mask in found[1:]:
            if mask is not union and not torch.equal(mask, union):
                union = torch.maximum(union, mask.to(union.device))
        masks.append(union.detach().to(param.device, param.dtype))
    return masks


def mini_batches(perm: Tensor, batch_size: int) -> list[Tensor]:
    """The mini-batches of one epoch: ``perm`` cut into runs of ``batch_size`` indices, a last run of
    one sample folded into the one before it.

    A batch of one sample fails a BatchNorm layer in training mode ("Expected more than 1 value per
    channel"), which ``n ≡ 1 (mod batch_size)`` training samples produced in every epoch; the
    folded batch holds ``batch_size + 1`` samples. Any other run is left as it is (and every run
    at ``batch_size`` 1), so a training run whose sizes never leave one sample over draws exactly
    the batches it always drew.
    """
    batches = list(torch.split(perm, batch_size))
    if batch_size > 1 and len(batches) > 1 and len(batches[-1]) == 1:  # batch_size 1: every batch is one sample
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def batches_per_epoch(n: int, batch_size: int) -> int:
    """The number of :func:`mini_batches` of an epoch over ``n`` samples (the steps of the cosine schedule)."""
    steps = math.ceil(n / batch_size)
    return steps - 1 if batch_size > 1 and steps > 1 and n % batch_size == 1 else steps


def check_finite_weights(model: nn.Module, hint: str, where: str = "") -> None:
    """Refuse a model whose training left NaN or infinite parameters, naming the first, ``where``
    (e.g. ``" at λ = 0.0001 of the λ path"``) and ``hint`` (what to lower):
    ``training diverged<where>: <name> holds NaN or infinite values; <hint>``.

    Raises:
        PruningLimitsError: some parameter holds NaN or infinite values.
    """
    broken = [name for name, p in model.named_parameters() if not bool(torch.isfinite(p.detach()).all())]
    if broken:
        raise PruningLimitsError(f"training diverged{where}: {broken[0]} holds NaN or infinite values; {hint}")


def divergence_hint(l1: float | None = None, *, chosen: bool = False) -> str:
    """What to lower after a diverged training at λ = ``l1``: the learning rate, and λ unless it is 0
    (``None``: λ unknown, both are named). ``chosen``: the λ path chose ``l1`` (``--l1 auto``),
    so a smaller λ is pinned with ``--l1 X`` rather than lowered."""
    if l1 is not None and not l1 > 0:
        return "lower the learning rate (--lr)"
    if chosen and l1 is not None:
        return f"lower the learning rate (--lr), or pin a λ below the path's {l1:g} with --l1 X"
    return "lower the learning rate (--lr) or λ (--l1" + ("" if l1 is None else f", here {l1:g}") + ")"


@with_gradients
def train(
    model: nn.Module,
    data: Any,
    *,
    l1: float = DEFAULT_L1,
    epochs: int = DEFAULT_EPOCHS,
    lr: float = DEFAULT_LR,
    optimizer: str = DEFAULT_OPTIMIZER,
    batch_size: int = 128,
    weight_decay: float = 0.0,
    seed: int = 0,
    test_data: Any = None,
    loss_fn: LossFn | None = None,
    progress: bool = False,
) -> TrainingHistory:
    """Train ``model`` in place with the LOMP objective ``L(w) + λ Σ|w_i|``.

    The penalty covers the prunable weights only (:func:`~pruning_limits.objective.prunable_parameters`),
    as the network runs them: a weight masked with ``torch.nn.utils.prune`` counts as
    ``weight_orig * weight_mask``, so its pruned entries are neither penalised nor recorded.
    Mini-batches are drawn by a ``torch.Generator`` seeded with ``seed``, and random layers
    (dropout) by torch's global generator seeded with ``seed`` for the run and restored after
    (the initialisation is seeded by :func:`~pruning_limits.models.build_model`), so a run is
    reproducible. The
    learning rate follows a cosine decay to 0 over all steps (Loshchilov & Hutter 2017), which
    lets the l1 subgradient settle the small weights near zero.

    Args:
        model: the network (trained in place, left in eval mode).
        data: a :class:`~pruning_limits.data.DataBundle` (its test set is used when
            ``test_data`` is None), a DataLoader, a Dataset or an ``(x, y)`` pair.
        l1: λ ≥ 0; the paper used 2e-5 … 1e-4 (SGD, 200 epochs); default :data:`DEFAULT_L1`.
        epochs: passes over the training data (default :data:`DEFAULT_EPOCHS`).
        lr: initial learning rate, for either optimizer (default :data:`DEFAULT_LR`, chosen for
            SGD and used unchanged for Adam).
        optimizer: ``"sgd"`` (momentum 0.9, the paper's choice) or ``"adam"``.
        batch_size: mini-batch size (128, the ``batch_size`` of every config of the official
            code, github.com/QiaozheZhang/Global-One-shot-Pruning ``configs/*.yml`` at commit
            e7c9590); a last batch of one sample is folded into the one before it
            (:func:`mini_batches`: BatchNorm cannot train on one).
        weight_decay: l2 coefficient passed to the optimizer (default 0).
        seed: seed of the shuffling and of random layers.
        test_data: optional test data for the per-epoch test accuracy.
        loss_fn: loss ``(outputs, targets) -> scalar``; default cross-entropy for integer
            targets, MSE otherwise.
        progress: show a tqdm bar on stderr.

    Returns:
        The :class:`TrainingHistory`.
    """
    l1 = check_nonnegative("l1", l1)
    weight_decay = check_nonnegative("weight_decay", weight_decay)
    epochs = check_int("epochs", epochs, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    lr = check_positive("lr", lr)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    seed = check_seed("seed", seed)
    (x, y), test = _split_data(data, test_data)
    loss_fn = resolve_loss_fn(loss_fn, (x[:1], y[:1]))
    device, dtype = model_device_dtype(model)
    l1_params = [p for _, p in prunable_parameters(model)] if l1 > 0 else []  # λ = 0 penalises nothing: no selection needed
    l1_masks = _l1_masks(model, l1_params)  # None without torch.nn.utils.prune masks: the plain sum
    if not any(p.requires_grad for p in model.parameters()):
        raise PruningLimitsError("every parameter of the model is frozen (requires_grad=False): nothing to train")
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(), lr=lr, momentum=SGD_MOMENTUM, weight_decay=weight_decay
        )
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = batches_per_epoch(len(x), batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    history = TrainingHistory(
        settings={
            "l1": float(l1),
            "epochs": epochs,
            "lr": lr,
            "optimizer": optimizer,
            "momentum": SGD_MOMENTUM if optimizer == "sgd" else None,
            "schedule": "cosine",
            "batch_size": batch_size,
            "weight_decay": float(weight_decay),
            "seed": seed,
        }
    )
    with _seeded_random_layers(seed, device):
        bar = tqdm(range(epochs), desc="train", file=sys.stderr, disable=not progress, leave=False)
        for _ in bar:
            start_time = time.perf_counter()
            model.train()
            perm = torch.randperm(len(x), generator=generator)
            total, count = 0.0, 0
            for index in mini_batches(perm, batch_size):
                xb, yb = on_model(x[index], device, dtype), on_model(y[index], device, dtype)
                data_loss = loss_fn(model(xb), yb)
                objective = data_loss + l1 * _l1_term(l1_params, l1_masks) if l1 > 0 else data_loss
                opt.zero_grad(set_to_none=True)
                objective.backward()
                opt.step()
                schedule.step()
                total += float(data_loss.detach()) * len(index)
                count += len(index)
            with torch.no_grad():
                history.l1.append(float(l1 * _l1_term(l1_params, l1_masks)) if l1_params else 0.0)
            history.loss.append(total / count)
            history.train_accuracy.append(accuracy(model, (x, y)))
            history.test_accuracy.append(None if test is None else accuracy(model, test))
            history.seconds.append(time.perf_counter() - start_time)
            if progress:
                bar.set_postfix(loss=f"{history.loss[-1]:.4f}", test_acc=history.test_accuracy[-1])
    model.eval()
    return history


#: ``check_trained`` calls a run diverged when its training loss ends above this many times the
#: larger of the loss it started from and a constant prediction's loss: l1 training can pull a
#: network down to a constant prediction (biases are not penalised), not beyond it.
DIVERGED_SLACK = 1.1


def check_trained(
    model: nn.Module,
    data: Any,
    *,
    start_loss: float | None = None,
    constant_loss: float | None = None,
    l1: float | None = None,
    l1_chosen: bool = False,
) -> float:
    """The training loss of a trained ``model``, refused where training diverged.

    A learning rate too large (or λ beyond float range) leaves weights or a loss that are NaN or
    infinite, or a loss above both the loss training started from and that of the best constant
    prediction (the labels' entropy for classes, the targets' variance for regression), by more
    than :data:`DIVERGED_SLACK`. An l1 penalty, however strong, pulls a network towards a constant
    prediction and no further, so a larger loss is divergence. Such a network has no pruning limit
    to predict, and a bundle of it would mislead every later command.

    Args:
        model: the trained network.
        data: its training data (an ``(x, y)`` pair, Dataset or DataLoader; integer targets are
            classes, float targets regression, as for the default losses).
        start_loss: the training loss before training (fresh or from ``--init``), if known.
        constant_loss: :func:`constant_prediction_loss` of ``data``'s targets, if the caller has
            it already (computed here otherwise).
        l1: the λ it was trained at, named in the message (:func:`divergence_hint`; ``None``: unknown).
        l1_chosen: λ was chosen by the λ path (``--l1 auto``), not given.

    Returns:
        The training loss (:func:`~pruning_limits.objective.evaluate_loss`).

    Raises:
        PruningLimitsError: as above.
    """
    hint = divergence_hint(l1, chosen=l1_chosen)
    check_finite_weights(model, hint)
    loss = evaluate_loss(model, data)
    if not math.isfinite(loss):
        raise PruningLimitsError(f"training diverged: the training loss is {loss}; {hint}")
    reference = constant_prediction_loss(materialize(data)[1]) if constant_loss is None else float(constant_loss)
    if start_loss is not None and math.isfinite(start_loss):
        reference = max(reference, start_loss)
    if loss > DIVERGED_SLACK * reference:
        raise PruningLimitsError(
            f"training diverged: the training loss rose to {loss:.4g}, above {reference:.4g} (where it started, or a "
            f"constant prediction's); {hint}"
        )
    return loss


#: ``collapsed`` calls a trained network a constant prediction when its training loss is above this
#: fraction of the best constant prediction's: it has learned less than 5 % of what a constant
#: leaves to learn, as a λ too strong leaves it (``--l1 0.5`` on digits: 2.302 against 2.303).
COLLAPSE_FRACTION = 0.95


def collapsed(train_loss: float, constant_loss: float) -> bool:
    """Whether a network with ``train_loss`` predicts no better than a constant (:data:`COLLAPSE_FRACTION`).

    Args:
        train_loss: the trained network's training loss (:func:`check_trained`).
        constant_loss: the best constant prediction's loss on the same data
            (:func:`constant_prediction_loss`).

    Returns:
        ``True`` when both are finite and ``train_loss >= COLLAPSE_FRACTION * constant_loss``.
    """
    train_loss, constant_loss = float(train_loss), float(constant_loss)
    if not (math.isfinite(train_loss) and math.isfinite(constant_loss)) or constant_loss <= 0.0:
        return False
    return train_loss >= COLLAPSE_FRACTION * constant_loss


def constant_prediction_loss(targets: Tensor) -> float:
    """The loss of the best constant prediction: the labels' entropy, or the targets' variance."""
    if targets.is_floating_point():
        t = targets.double().reshape(len(targets), -1)
        return float(t.var(dim=0, unbiased=False).mean())
    labels = targets.reshape(-1)
    labels = labels[labels >= 0]  # cross-entropy's ignore_index (-100) has no class
    if labels.numel() == 0:
        return math.inf
    p = torch.bincount(labels).double() / labels.numel()
    p = p[p > 0]
    return float(-(p * p.log()).sum())


@dataclass
class SweepResult:
    """Pruning sweep of a trained model and the measured limits (THEORY §6).

    Attributes:
        sparsities: evaluated grid sparsities ``m / D`` (ascending).
        num_pruned: the pruned counts ``m`` of the grid.
        train_loss, test_loss, test_accuracy: curves on the grid (``test_*`` are ``None``
            without test data; ``test_accuracy`` is ``None`` for regression).
        dense_loss, dense_test_loss, dense_accuracy: values of the unpruned model.
        epsilon: the loss tolerance ε.
        dim: number of prunable weights ``D``.
        criterion: the pruning criterion.
        limit_by_loss: ``s = m / D`` with ``L(m) ≤ L* + ε < L(m + 1)``, found by bisection
            between the first failing grid point and the one before (1/D resolution): the first
            crossing wherever the loss crosses once within that grid step (module docstring).
        limit_by_accuracy: the same refinement after the last grid point keeping the dense test
            accuracy (``None`` without test labels).
        evaluations: number of pruned models evaluated (grid + bisection).
    """

    sparsities: np.ndarray
    num_pruned: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray | None
    test_accuracy: np.ndarray | None
    dense_loss: float
    dense_test_loss: float | None
    dense_accuracy: float | None
    epsilon: float
    dim: int
    criterion: str
    limit_by_loss: float
    limit_by_accuracy: float | None
    evaluations: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy (arrays as lists)."""

        def as_list(a: np.ndarray | None) -> list[float] | None:
            return None if a is None else [float(v) for v in a]

        return {
            "sparsities": as_list(self.sparsities),
            "num_pruned": [int(v) for v in self.num_pruned],
            "train_loss": as_list(self.train_loss),
            "test_loss": as_list(self.test_loss),
            "test_accuracy": as_list(self.test_accuracy),
            "dense_loss": self.dense_loss,
            "dense_test_loss": self.dense_test_loss,
            "dense_accuracy": self.dense_accuracy,
            "epsilon": self.epsilon,
            "dim": self.dim,
            "criterion": self.criterion,
            "limit_by_loss": self.limit_by_loss,
            "limit_by_accuracy": self.limit_by_accuracy,
            "evaluations": self.evaluations,
        }


class _PrunedEvaluator:
    """Writes ``w*`` with the first ``m`` weights of an order zeroed into a working model."""

    def __init__(self, model: nn.Module, criterion: str) -> None:
        self.model = model_copy(model)
        self.params = [p for _, p in prunable_parameters(self.model)]
        self.original = [p.detach().clone() for p in self.params]
        self.sizes = [p.numel() for p in self.params]
        self.dim = sum(self.sizes)
        self.plan = model_order(model, criterion)
        self.order = torch.from_numpy(self.plan.order)

    def set_pruned(self, m: int) -> None:
        keep = torch.ones(self.dim, dtype=torch.bool)
        keep[self.order[:m]] = False
        with torch.no_grad():
            for p, w0, part in zip(self.params, self.original, torch.split(keep, self.sizes)):
                p.copy_(w0 * part.reshape(w0.shape).to(w0.device, w0.dtype))


def sweep(
    model: nn.Module,
    data: Any,
    *,
    test_data: Any = None,
    epsilon: float | str,
    sparsities: Any = None,
    criterion: str = "global",
    loss_fn: LossFn | None = None,
    progress: bool = False,
    allowed: Any = None,
) -> SweepResult:
    """One-shot pruning sweep of a trained model and its measured pruning limits.

    Args:
        model: the trained network (not modified: a working copy is pruned).
        data: the analysis (training) data: a DataBundle (its test set is used when
            ``test_data`` is None), a DataLoader, a Dataset or an ``(x, y)`` pair.
        test_data: optional test data for test loss and accuracy.
        epsilon: the loss tolerance ε > 0, or ``"batch-std"`` (THEORY §1).
        sparsities: grid of sparsities in [0, 1] (sorted, 0 added); default 41 points
            0, 0.025, …, 1. Each becomes ``m = round(s · D)`` pruned weights.
        criterion: ``"global"``/``"magnitude"`` or any structure of
            :mod:`pruning_limits.structures` (``"layerwise"``, ``"neuron"``, ``"channel"``, ...).
        loss_fn: loss ``(outputs, targets) -> scalar``; default cross-entropy / MSE.
        progress: show a tqdm bar on stderr.
        allowed: ascending numbers of pruned weights the sweep may evaluate (0 included);
            grid counts are moved down to the nearest allowed count and the bisection runs
            over the allowed counts. Default: the criterion's own,
            :attr:`~pruning_limits.structures.StructuredOrder.allowed` (every count for
            global and layerwise, whole groups for neuron and channel, the rounds of N:M).

    Returns:
        The :class:`SweepResult`.
    """
    criterion = resolve_criterion(criterion)
    (x, y), test = _split_data(data, test_data)
    train_pair = (x, y)
    loss_fn = resolve_loss_fn(loss_fn, (x[:1], y[:1]))
    if isinstance(epsilon, str):
        if epsilon != "batch-std":
            raise PruningLimitsError(f"epsilon must be a number > 0 or 'batch-std', got {epsilon!r}")
        epsilon = batch_std_epsilon(model, train_pair, loss_fn)
    epsilon = check_positive("epsilon", epsilon)
    evaluator = _PrunedEvaluator(model, criterion)
    dim = evaluator.dim
    counts = grid_counts(sparsities, dim)
    points = None
    if allowed is None and evaluator.plan.allowed.size != dim + 1:  # a structure that stops at whole groups
        allowed = evaluator.plan.allowed
    if allowed is not None:  # search over indices into the allowed counts
        points = np.unique(np.asarray(allowed, dtype=np.int64))
        if points.size == 0 or points[0] != 0 or points[-1] > dim:
            raise PruningLimitsError(f"allowed must hold counts in [0, {dim}] starting at 0, got {points[:3]}...")
        counts = np.unique(np.searchsorted(points, counts, side="right") - 1)
    work = evaluator.model
    memo: dict[int, tuple[float, float | None, float | None]] = {}

    def evaluate(m: int) -> tuple[float, float | None, float | None]:
        if points is not None:
            m = int(points[m])
        if m not in memo:
            evaluator.set_pruned(m)
            train_loss = evaluate_loss(work, train_pair, loss_fn)
            test_loss = None if test is None else evaluate_loss(work, test, loss_fn)
            test_acc = None if test is None else accuracy(work, test)
            memo[m] = (train_loss, test_loss, test_acc)
        return memo[m]

    rows = [evaluate(int(m)) for m in tqdm(counts, desc="sweep", file=sys.stderr, disable=not progress, leave=False)]
    dense_loss, dense_test_loss, dense_acc = rows[0]
    if not math.isfinite(dense_loss):
        raise PruningLimitsError(
            f"the unpruned model's training loss is {dense_loss} in its dtype ({next(work.parameters()).dtype}): "
            "nothing can be measured against it; check the weights and the data for overflow"
        )
    threshold = dense_loss + epsilon

    def loss_ok(m: int) -> bool:
        return evaluate(m)[0] <= threshold

    m_loss = first_crossing(counts, loss_ok)

    m_acc: int | None = None
    if dense_acc is not None:
        def acc_ok(m: int) -> bool:
            return evaluate(m)[2] >= dense_acc  # type: ignore[operator]

        last = max(i for i, row in enumerate(rows) if row[2] >= dense_acc)  # type: ignore[operator]
        m_acc = int(counts[last]) if last == len(rows) - 1 else last_true(int(counts[last]), int(counts[last + 1]), acc_ok)

    if points is not None:  # back from indices to counts
        counts, m_loss = points[counts], int(points[m_loss])
        m_acc = None if m_acc is None else int(points[m_acc])

    def column(j: int) -> np.ndarray | None:
        values = [row[j] for row in rows]
        return None if any(v is None for v in values) else np.asarray(values, dtype=np.float64)

    return SweepResult(
        sparsities=counts / dim,
        num_pruned=counts,
        train_loss=column(0),  # type: ignore[arg-type]
        test_loss=column(1),
        test_accuracy=column(2),
        dense_loss=dense_loss,
        dense_test_loss=dense_test_loss,
        dense_accuracy=dense_acc,
        epsilon=epsilon,
        dim=dim,
        criterion=criterion,
        limit_by_loss=m_loss / dim,
        limit_by_accuracy=None if m_acc is None else m_acc / dim,
        evaluations=len(memo),
    )


#: Fine-tuning recipe of :func:`retrained_limit` (fixed, documented in docs/usage.md): SGD with
#: momentum 0.9 (as :func:`train`), initial learning rate 0.01 with cosine decay to 0, batch 128,
#: no l1, no weight decay. The learning rate is chosen, not measured: commit fee1909 added it with
#: no comparison of rates. It is a fifth of :data:`DEFAULT_LR` (the kept weights start trained)
#: and the official code's training rate for its CIFAR-10 networks (configs at e7c9590, see
#: :data:`DEFAULT_LR`). It stays 0.01 whatever rate or optimizer trained the network.
#: docs/validation.md's re-trained limits ("Where the kinematic number of a λ = 0 network sits")
#: used it.
RETRAIN_LR = 0.01
#: :func:`retrained_limit` bisects until the bracket is at most this wide (half a point of sparsity).
RETRAIN_RESOLUTION = 0.005


@dataclass
class RetrainResult:
    """The limit after pruning and re-training the kept weights with the mask fixed.

    Attributes:
        limit: the largest tried sparsity whose re-trained network keeps ``L ≤ L* + ε``.
        failed_at: the smallest tried sparsity that did not (the bracket's upper end).
        epochs: fine-tuning epochs per tried sparsity.
        tried: ``[(sparsity, training loss after re-training, passed)]`` in the order tried.
        dense_loss, epsilon: ``L*`` and ``ε``.
        settings: the recipe.
    """

    limit: float
    failed_at: float
    epochs: int
    tried: list[tuple[float, float, bool]]
    dense_loss: float
    epsilon: float
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy."""
        return {
            "limit": self.limit,
            "failed_at": self.failed_at,
            "epochs": self.epochs,
            "tried": [[s, loss, ok] for s, loss, ok in self.tried],
            "dense_loss": self.dense_loss,
            "epsilon": self.epsilon,
            "settings": dict(self.settings),
        }


@with_gradients
def finetune_masked(
    model: nn.Module,
    data: Any,
    keep: Tensor,
    *,
    epochs: int,
    lr: float = RETRAIN_LR,
    batch_size: int = 128,
    seed: int = 0,
    loss_fn: LossFn | None = None,
) -> None:
    """Train ``model`` in place with its pruned weights held at zero (``keep``: flat boolean mask over the prunable weights).

    The pruned weights are zeroed before training and after every step (their gradients too,
    so momentum never moves them); everything else trains as in :func:`train` with ``l1=0``
    (the same :func:`mini_batches`).

    Raises:
        PruningLimitsError: ``epochs`` or ``batch_size`` is not an integer ≥ 1, ``lr`` not a
            finite number > 0, ``seed`` not in [0, 2**64), or ``keep`` not one entry per
            prunable weight.
    """
    epochs = check_int("epochs", epochs, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    lr = check_positive("lr", lr)
    seed = check_seed("seed", seed)
    (x, y), _ = _split_data(data, None)
    loss_fn = resolve_loss_fn(loss_fn, (x[:1], y[:1]))
    device, dtype = model_device_dtype(model)
    params = [p for _, p in prunable_parameters(model)]
    size = sum(p.numel() for p in params)
    if not isinstance(keep, Tensor) or keep.shape != (size,):
        shape = f"shape {tuple(keep.shape)}" if isinstance(keep, Tensor) else describe(keep)
        raise PruningLimitsError(f"keep must be a flat mask of {size} entries, one per prunable weight, got {shape}")
    masks = [part.reshape(p.shape).to(p.device, p.dtype) for p, part in zip(params, torch.split(keep, [p.numel() for p in params]))]

    def clamp() -> None:
        with torch.no_grad():
            for p, m in zip(params, masks):
                p.mul_(m)

    clamp()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=SGD_MOMENTUM)
    steps = epochs * batches_per_epoch(len(x), batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    with _seeded_random_layers(seed, device):
        generator = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            model.train()
            perm = torch.randperm(len(x), generator=generator)
            for index in mini_batches(perm, batch_size):
                loss = loss_fn(model(on_model(x[index], device, dtype)), on_model(y[index], device, dtype))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                for p, m in zip(params, masks):
                    if p.grad is not None:
                        p.grad.mul_(m)
                opt.step()
                schedule.step()
                clamp()
    model.eval()


@with_gradients
def retrained_limit(
    model: nn.Module,
    data: Any,
    *,
    epsilon: float,
    epochs: int,
    seed: int = 0,
    resolution: float = RETRAIN_RESOLUTION,
    loss_fn: LossFn | None = None,
    progress: bool = False,
) -> RetrainResult:
    """The pruning limit when the kept weights may be re-trained (mask fixed): bisection over sparsity.

    For a sparsity ``s`` the ``⌊sD⌉`` smallest weights (global magnitude, as :func:`sweep`) are
    pruned, the rest fine-tuned with :func:`finetune_masked` for ``epochs`` epochs from the trained
    values, and ``s`` passes when the training loss is at most ``L* + ε`` (``L*`` the unpruned
    model's). The bracket starts at ``[0, 1]`` (``s = 0`` passes by definition, pruning every
    weight is assumed to fail) and is halved until narrower than ``resolution``; like
    :func:`sweep` it assumes a single crossing. This is what the one-shot limit ignores: it
    answers "how far can I prune if I fine-tune afterwards", the other end of the bracket in
    which the kinematic number of a network outside the regime sits (THEORY §9).

    Args:
        model: the trained network (not modified).
        data: the analysis (training) data (DataBundle or pair).
        epsilon: ε > 0 (use the prediction's).
        epochs: fine-tuning epochs per tried sparsity (≥ 1).
        seed: seed of the fine-tuning shuffles.
        resolution: width of the final bracket.
        loss_fn: loss; default cross-entropy / MSE.
        progress: a tqdm bar over the bisection steps.
    """
    epochs = check_int("epochs", epochs, 1)
    epsilon = check_positive("epsilon", epsilon)
    resolution = check_positive("resolution", resolution)
    (x, y), _ = _split_data(data, None)
    pair = (x, y)
    loss_fn = resolve_loss_fn(loss_fn, (x[:1], y[:1]))
    order = torch.from_numpy(pruning_order(model, "magnitude"))
    dim = int(order.numel())
    dense = evaluate_loss(model, pair, loss_fn)
    tried: list[tuple[float, float, bool]] = []

    def passes(s: float) -> bool:
        work = model_copy(model)
        keep = torch.ones(dim, dtype=torch.bool)
        keep[order[: int(round(s * dim))]] = False
        finetune_masked(work, pair, keep, epochs=epochs, seed=seed, loss_fn=loss_fn)
        loss = evaluate_loss(work, pair, loss_fn)
        tried.append((s, loss, loss <= dense + epsilon))
        return loss <= dense + epsilon

    low, high = 0.0, 1.0
    steps = max(1, math.ceil(math.log2(1.0 / resolution)))
    for _ in tqdm(range(steps), desc="retrain", file=sys.stderr, disable=not progress, leave=False):
        if high - low <= resolution:
            break
        mid = 0.5 * (low + high)
        if passes(mid):
            low = mid
        else:
            high = mid
    return RetrainResult(
        low, high, epochs, tried, dense, epsilon,
        settings={"optimizer": "sgd", "momentum": SGD_MOMENTUM, "lr": RETRAIN_LR, "schedule": "cosine", "batch_size": 128, "resolution": resolution},
    )
