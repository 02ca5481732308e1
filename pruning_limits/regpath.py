"""The regularisation path: choosing the l1 strength λ of LOMP training automatically.

shared/THEORY.md §9 (docs/theory.md): the kinematic prediction holds for networks trained with an
l1 penalty strong enough that ``R(s)`` has a sharp knee; λ decides whether the theory applies.
As glmnet does for the lasso (Friedman, Hastie & Tibshirani 2010, "Regularization paths for
generalized linear models via coordinate descent", J. Stat. Softw. 33), :func:`l1_path` trains
along a geometric grid of λ with warm starts and scores each λ on a validation split carved
from the *training* data (the test set stays untouched); :func:`choose_l1` then picks the
largest λ whose validation metric is within a tolerance, fixed in advance, of the best on the
path (the spirit of the lasso's one-standard-error rule, Hastie, Tibshirani & Friedman, ESL
§7.10). The rule sees validation metrics only: never a prediction or a measured limit.

The recipe (every default is a module constant, documented in docs/usage.md):

- grid: :data:`GRID_START` × :data:`GRID_FACTOR`^i, i < :data:`GRID_SIZE` (1e-4 … 1.28e-2; the
  paper used 2e-5 … 1e-4 on large networks, docs/validation.md's λ sweep 5e-4 … 4e-3 on digits);
  the path runs from the smallest λ upwards, each point warm-started from the previous one (the
  l1 penalty then shrinks a trained network further, the route :func:`l1_path` also takes from a
  user's checkpoint);
- the first point trains :data:`WARMUP_EPOCHS` epochs from the starting weights, every further
  point :data:`PATH_EPOCHS` (each a cosine cycle of ``lomp.train``);
- validation split: :data:`VALIDATION_FRACTION` of the training samples, chosen by a permutation
  seeded with ``seed``;
- metric: accuracy (classification) or mean loss (regression) on the validation split;
- tolerance: :data:`ACCURACY_TOLERANCE` (1 point of accuracy) or, for regression,
  :data:`LOSS_TOLERANCE` × the variance of the validation targets (1 point of explained
  variance R², the regression analogue of a point of accuracy); both absolute;
- the path stops early once a point is worse than the best by more than :data:`STOP_FACTOR`
  tolerances (larger λ, warm-started from there, only shrink further; they could not be chosen);
- knee sharpness per point: ``d ln R/ds`` (``limits.knee_steepness``) at the reference sparsity
  ``s_ref`` where the pruned weights hold :data:`KNEE_REFERENCE_SHARE` (1 %) of ``‖w‖²``, a point
  defined by the weights alone (no spectrum, no prediction). It is recorded for the reader and
  the report, never used by the rule.

The final network is trained afterwards at the chosen λ on the whole training data with the
ordinary recipe (``lomp.train``, all its epochs), warm-started from the path's weights at that λ.
Not from a fresh initialisation: a strong λ applied from the start can kill a network that the
path, shrinking a trained network step by step, keeps alive (measured on this machine: MNIST-1D
``mlp`` at λ = 3.2e-3 reached 46.5 % test accuracy from scratch and 61.9 % warm-started; digits
``fc5`` 7.8 % and 94.7 %). ``--l1 X`` (``lomp.train`` alone) is unchanged.
"""

from __future__ import annotations

import inspect
import math
import sys
import time
from dataclasses import dataclass, field
from collections.abc import Mapping
from numbers import Real
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._autograd import with_gradients
from ._checks import PruningLimitsError, check_fraction, check_int, check_positive, check_seed, describe
from .data import DataBundle, materialize
from .limits import knee_steepness, magnitude_distance_curve
from .objective import LossFn, evaluate_loss, flat_weights, model_copy, resolve_loss_fn

#: Smallest λ of the grid.
GRID_START = 1e-4
#: Ratio of consecutive λ (glmnet spaces its grid geometrically too).
GRID_FACTOR = 2.0
#: Number of λ on the grid: 1e-4 … 1.28e-2.
GRID_SIZE = 8
#: Fraction of the training samples held out as the validation split.
VALIDATION_FRACTION = 0.2
#: Epochs of the first path point (from the starting weights).
WARMUP_EPOCHS = 20
#: Epochs of every further path point (warm-started from the previous one).
PATH_EPOCHS = 10
#: Classification: a λ is acceptable when its validation accuracy is at least the best minus this.
ACCURACY_TOLERANCE = 0.01
#: Regression: a λ is acceptable when its validation loss is at most the best plus this times the
#: variance of the validation targets (1 point of R²).
LOSS_TOLERANCE = 0.01
#: Below this many validation samples one sample weighs more than the 1-point tolerance
#: (:data:`ACCURACY_TOLERANCE`), and the choice of λ is close to the arg-max of a noisy metric:
#: the command line warns.
SMALL_VALIDATION = 100
#: The path stops once a point is worse than the best by more than this many tolerances.
STOP_FACTOR = 3.0
#: The knee sharpness of a path point is taken where the pruned weights hold this share of ‖w‖².
KNEE_REFERENCE_SHARE = 0.01
#: ``start`` of the path :func:`train_auto` chooses λ on when given a fresh network (``train --init``).
FRESH_START = "fresh (to choose λ)"


def default_grid() -> np.ndarray:
    """The default λ grid: ``GRID_START · GRID_FACTOR**i``, ``i = 0 … GRID_SIZE − 1``."""
    return GRID_START * GRID_FACTOR ** np.arange(GRID_SIZE, dtype=np.float64)


def tolerance_for(targets: Tensor) -> float:
    """The rule's tolerance on validation ``targets``: 1 point of accuracy, or 1 point of R² (regression).

    Classification (integer targets): :data:`ACCURACY_TOLERANCE`. Regression: :data:`LOSS_TOLERANCE`
    times the mean squared deviation of the targets from their mean (summed over output columns
    and averaged as ``mse_loss`` averages, so a loss of ``variance`` means R² = 0).
    """
    if not targets.is_floating_point():
        return ACCURACY_TOLERANCE
    t = targets.double()
    return LOSS_TOLERANCE * float(((t - t.mean(dim=0)) ** 2).mean())


def acceptable(metrics: Any, *, higher_is_better: bool, tolerance: float) -> np.ndarray:
    """Which path points are within ``tolerance`` of the best on the path.

    Args:
        metrics: validation metric per λ (NaN entries are never acceptable).
        higher_is_better: True for accuracy (``metric ≥ best − tolerance``), False for a loss
            (``metric ≤ best + tolerance``).
        tolerance: ≥ 0, in the metric's units (``inf``: every finite metric is acceptable).

    Returns:
        A boolean array.

    Raises:
        PruningLimitsError: ``tolerance`` is not a number ≥ 0, or ``metrics`` is empty, not 1-D
            or has no finite value.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, Real) or not tolerance >= 0:  # NaN fails >= 0
        raise PruningLimitsError(f"tolerance must be a number >= 0 (inf allowed), got {describe(tolerance)}")
    m = np.asarray(metrics, dtype=np.float64)
    if m.ndim != 1 or m.size == 0:
        raise PruningLimitsError(f"metrics must be a non-empty 1-D array, got shape {m.shape}")
    if not np.isfinite(m).any():
        raise PruningLimitsError("metrics has no finite value: no λ of the path can be chosen")
    if higher_is_better:
        return np.isfinite(m) & (m >= np.nanmax(m) - tolerance)
    return np.isfinite(m) & (m <= np.nanmin(m) + tolerance)


def choose_l1(l1s: Any, metrics: Any, *, higher_is_better: bool, tolerance: float) -> int:
    """Index of the largest λ whose validation metric is within ``tolerance`` of the best.

    A pure function on arrays (THEORY §9): it never sees a prediction or a measured limit.

    Args:
        l1s: the λ of the path (any order, all ≥ 0).
        metrics: the validation metric of each λ.
        higher_is_better: accuracy (True) or loss (False).
        tolerance: ≥ 0, in the metric's units (``inf``: the largest λ with a finite metric).

    Returns:
        The index into ``l1s`` of the chosen λ.

    Raises:
        PruningLimitsError: as :func:`acceptable`, or ``l1s`` and ``metrics`` differ in shape.
    """
    lam = np.asarray(l1s, dtype=np.float64)
    ok = acceptable(metrics, higher_is_better=higher_is_better, tolerance=tolerance)
    if lam.shape != ok.shape:
        raise PruningLimitsError(f"l1s and metrics differ in shape: {lam.shape} and {ok.shape}")
    candidates = np.flatnonzero(ok)
    return int(candidates[np.argmax(lam[candidates])])


def stronger_l1(path: Mapping[str, Any]) -> tuple[float, str]:
    """A λ above the path's choice, for a network the path left outside the regime, and why in words.

    The rule (:func:`choose_l1`) stops where the validation metric falls by more than its
    tolerance; on some data the knee of ``R(s)`` sharpens only past that point
    (docs/validation.md, "A third pre-registered test": ``make_hastie_10_2`` and
    ``make_gaussian_quantiles``), so running the path again would not bring the network in. This
    names the trade-off from the path's own record instead: the smallest trained λ above the
    chosen one whose knee at ``s_ref`` is sharp (at least ``limits.FLAT_KNEE``), else the grid's
    next λ after the largest one trained, with the validation metric it cost. It reads the path
    only (no prediction, no measured limit) and is advice to the user, never applied by ``train``.
    It errs on the strong side: the threshold is the verdict's, set for the knee at ``s*``, which
    runs well above the knee at ``s_ref`` (the demo's network: 145 against 13.9 at the chosen λ,
    a review), so a weaker λ may already suffice; no out-of-regime network has measured by how much.

    Args:
        path: a :meth:`RegularisationPath.to_dict` record.

    Returns:
        ``(λ, reason)``: the λ to pin with ``--l1`` and a clause on its cost.

    Raises:
        PruningLimitsError: ``path`` is not such a record (a damaged or hand-edited bundle).
    """
    from .limits import FLAT_KNEE

    points, chosen, grid = check_path_record(path)
    accuracy = path["metric"] == "accuracy"

    def metric(point: Mapping[str, Any]) -> str:
        return f"{100 * point['metric']:.1f} %" if accuracy else f"{point['metric']:.3g}"

    best = max(points, key=lambda p: p["metric"]) if accuracy else min(points, key=lambda p: p["metric"])
    name = f"validation {path['metric']}"
    above = [p for p in points if p["l1"] > chosen["l1"]]
    sharp = [p for p in above if math.isfinite(p["knee_steepness"]) and p["knee_steepness"] >= FLAT_KNEE]
    if sharp:
        target = min(sharp, key=lambda p: p["l1"])
        return target["l1"], f"the λ path's knee turns sharp there at a cost: {name} {metric(target)}, best {metric(best)}"
    last = max(points, key=lambda p: p["l1"])
    following = [lam for lam in grid if lam > last["l1"]]
    lam = min(following) if following else last["l1"] * GRID_FACTOR
    cost = "a lower accuracy" if accuracy else "a higher loss"
    ended = "stopped" if following else "ended"  # stopped early (STOP_FACTOR), or ran to the grid's end
    return lam, (
        f"past the λ path, which {ended} at λ = {last['l1']:g} ({name} {metric(last)}, best {metric(best)}) "
        f"before its knee turned sharp: expect {cost}"
    )


def stronger_fixed_l1(l1: float) -> tuple[float, str] | None:
    """A λ above a fixed one that left a network outside the regime, and why; ``None`` below the grid.

    A fine-tune with λ auto might choose a weaker λ than the one the network was trained with
    (its path starts at :data:`GRID_START`), and the next step would lead round in a circle; this
    names twice the λ instead, the path's own spacing (:data:`GRID_FACTOR`). Below :data:`GRID_START` the
    path itself goes higher, and the plain fine-tune is the next step.
    """
    l1 = float(l1)
    if not (math.isfinite(l1) and l1 >= GRID_START):
        return None
    return l1 * GRID_FACTOR, f"trained at a fixed λ = {l1:g} that left it outside the regime: expect a worse fit"


def check_path_record(path: Any, *, report: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any], list[float]]:
    """The points (numbers as floats), the chosen point and the grid of a recorded λ path.

    Checks what :func:`stronger_l1` reads: ``points`` (``l1``, ``metric``, ``knee_steepness``),
    ``chosen`` (an index), ``grid`` and ``metric``; with ``report``, also what the validation
    report's path summary and figure read: ``tolerance``, ``l1`` and ``validation_size``.

    Raises:
        PruningLimitsError: ``path`` is not a :meth:`RegularisationPath.to_dict` record (a
            damaged or hand-edited bundle).
    """
    try:
        points = [dict(p, l1=float(p["l1"]), metric=float(p["metric"]), knee_steepness=float(p["knee_steepness"]))
                  for p in path["points"]]
        index = path["chosen"]
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(points):
            raise ValueError(f"chosen = {index!r} is no index of its {len(points)} points")
        grid = [float(lam) for lam in path["grid"]]
        if report:
            float(path["tolerance"]), float(path["l1"]), int(path["validation_size"])
        if not isinstance(path["metric"], str):
            raise TypeError(f"metric = {path['metric']!r} is not a name")
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise PruningLimitsError(f"the recorded λ path is not a RegularisationPath record: {exc!r}") from None
    return points, points[index], grid


def reference_sparsity(distance_squared: Any, share: float = KNEE_REFERENCE_SHARE) -> float:
    """The largest sparsity whose pruned weights hold at most ``share`` of ``‖w‖²``.

    Args:
        distance_squared: ``R_k²`` for ``k = 0 … D`` kept weights (``R_0² = ‖w‖²``).
        share: fraction of ``‖w‖²`` in (0, 1).
    """
    r2 = np.asarray(distance_squared, dtype=np.float64)
    dim = r2.size - 1
    total = float(r2[0])
    if total <= 0.0:
        return 0.0
    # r2 is non-increasing in k; the smallest k with R_k² <= share·total prunes the most
    kept = int(np.searchsorted(-r2, -share * total, side="left"))
    return 1.0 - kept / dim


def knee_at_reference(weights: Any, share: float = KNEE_REFERENCE_SHARE) -> tuple[float, float]:
    """``(s_ref, d ln R/ds at s_ref)`` of a flat weight vector (see :func:`reference_sparsity`)."""
    r2 = magnitude_distance_curve(weights)
    s_ref = reference_sparsity(r2, share)
    return s_ref, knee_steepness(r2, s_ref)


@dataclass
class PathPoint:
    """One λ of the path and what was measured there.

    ``seconds``: the point's training epochs, timed as ``lomp.train`` times those of the final
    training (``TrainingHistory.seconds``), plus its scoring (validation metric and knee). A
    process's one-off start-up (the first optimizer it builds imports for a second or two) counts
    in neither, so the two compare.
    """

    l1: float
    metric: float
    validation_loss: float
    reference_sparsity: float
    knee_steepness: float
    epochs: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy."""
        return dict(self.__dict__)


@dataclass
class RegularisationPath:
    """The path, the rule's settings and its choice.

    Attributes:
        points: the trained path points, in the order trained (increasing λ).
        grid: the whole grid (points past an early stop are not trained).
        metric_name: ``"accuracy"`` or ``"loss"``.
        tolerance: the rule's tolerance, in the metric's units.
        chosen: index into ``points`` of the chosen λ.
        validation_size, seed: the split.
        start: ``"fresh"`` or the checkpoint the path started from; :data:`FRESH_START` for the
            fresh network's path on which :func:`train_auto` chooses λ for a checkpoint.
        stopped_early: whether the path stopped before the end of the grid.
        seconds: the time of the whole path, the sum of its points' :attr:`PathPoint.seconds`
            (timed as the final training is, so ``train``'s "% of the final training" compares like
            with like).
        start_loss: the training loss of the starting weights on the path's training part.
        state: the weights (``state_dict``) at the chosen λ, the one point whose weights a caller
            needs (``None`` when :func:`l1_path` was told not to keep them): the path keeps no
            copy of the others.
        settings: the recipe's constants.
    """

    points: list[PathPoint]
    grid: list[float]
    metric_name: str
    tolerance: float
    chosen: int
    validation_size: int
    seed: int
    start: str
    stopped_early: bool
    seconds: float
    start_loss: float = math.nan
    state: dict[str, Tensor] | None = field(default=None, repr=False)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def l1(self) -> float:
        """The chosen λ."""
        return self.points[self.chosen].l1

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy."""
        return {
            "l1": self.l1,
            "points": [p.to_dict() for p in self.points],
            "grid": list(self.grid),
            "metric": self.metric_name,
            "tolerance": self.tolerance,
            "chosen": self.chosen,
            "validation_size": self.validation_size,
            "seed": self.seed,
            "start": self.start,
            "stopped_early": self.stopped_early,
            "seconds": self.seconds,
            "start_loss": self.start_loss,
            "settings": dict(self.settings),
        }


def validation_split(n: int, seed: int, fraction: float = VALIDATION_FRACTION) -> tuple[Tensor, Tensor]:
    """Indices ``(train, validation)`` of a seeded split of ``n`` samples (at least one each)."""
    n = check_int("number of training samples", n, 2)
    fraction = check_fraction("validation fraction", fraction, open_low=True, open_high=True)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    size = min(n - 1, max(1, int(round(fraction * n))))
    return perm[size:], perm[:size]


def _metric(model: nn.Module, pair: tuple[Tensor, Tensor], loss_fn: LossFn, classification: bool) -> tuple[float, float]:
    from .lomp import accuracy

    loss = evaluate_loss(model, pair, loss_fn)
    return (float(accuracy(model, pair)) if classification else loss), loss


@with_gradients
def l1_path(
    model: nn.Module,
    data: Any,
    *,
    grid: Any = None,
    seed: int = 0,
    lr: float | None = None,
    optimizer: str | None = None,
    batch_size: int = 128,
    warmup_epochs: int = WARMUP_EPOCHS,
    path_epochs: int = PATH_EPOCHS,
    validation_fraction: float = VALIDATION_FRACTION,
    tolerance: float | None = None,
    loss_fn: LossFn | None = None,
    start: str = "fresh",
    progress: bool = False,
    keep_state: bool = True,
) -> RegularisationPath:
    """Train a working copy of ``model`` along the λ grid and choose λ (module docstring).

    ``model`` is not modified. Reproducible for a seed: the split, every shuffle and hence every
    metric are seeded. Memory: the working copy, and one copy of the weights, those of the point
    chosen so far (a new point is either chosen or leaves the choice where it was: it is the
    largest λ yet, and it moves the best metric only when it is the best, and then chosen).

    Args:
        model: the starting network (a fresh initialisation or a user's trained weights).
        data: a DataBundle (its training part is used) or an ``(x, y)`` pair.
        grid: increasing λ > 0 (default :func:`default_grid`).
        seed: seed of the split and of the shuffling (point ``i`` shuffles with ``(seed + i) mod 2**64``).
        lr, optimizer, batch_size: as ``lomp.train`` (``None``: its defaults).
        warmup_epochs, path_epochs: epochs of the first and of every further point.
        validation_fraction: share of the training samples held out.
        tolerance: the rule's tolerance (default :func:`tolerance_for` the validation targets).
        loss_fn: loss; default cross-entropy for integer targets, MSE otherwise.
        start: a label for the record (``"fresh"`` or the checkpoint's path).
        progress: tqdm bars of the path's training runs.
        keep_state: keep the weights at the chosen λ (:attr:`RegularisationPath.state`); a path
            run for its choice of λ alone needs no copy.

    Returns:
        The :class:`RegularisationPath`.

    Raises:
        PruningLimitsError: fewer than 2 training samples (no validation split can be held out),
            or a point whose training left NaN or infinite weights (named with its λ).
    """
    from .lomp import DEFAULT_LR, DEFAULT_OPTIMIZER, check_finite_weights, train

    seed = check_seed("seed", seed)
    warmup_epochs = check_int("warmup_epochs", warmup_epochs, 1)
    path_epochs = check_int("path_epochs", path_epochs, 1)
    try:
        lams = default_grid() if grid is None else np.asarray(grid, dtype=np.float64)
    except (TypeError, ValueError):
        raise PruningLimitsError(f"grid must be increasing positive numbers, got {describe(grid)}") from None
    if lams.ndim != 1 or lams.size == 0 or not np.all(np.isfinite(lams)) or np.any(lams <= 0) or np.any(np.diff(lams) <= 0):
        raise PruningLimitsError(f"grid must be increasing positive numbers, got {np.asarray(grid).tolist()!r}")
    x, y = data.train if isinstance(data, DataBundle) else materialize(data, "training")
    classification = not y.is_floating_point()
    if len(x) < 2:
        raise PruningLimitsError(
            f"the λ path (--l1 auto) holds out {100 * validation_fraction:.0f} % of the training samples to validate "
            f"each λ and needs at least 2 training samples, got {len(x)}: pin λ with --l1 X instead"
        )
    train_idx, val_idx = validation_split(len(x), seed, validation_fraction)
    fit, held = (x[train_idx], y[train_idx]), (x[val_idx], y[val_idx])
    if tolerance is None:
        tolerance = tolerance_for(held[1])
    elif tolerance != math.inf:  # inf: no choice, the path runs to the end of its grid (train_auto's route)
        tolerance = check_positive("tolerance", tolerance)
    loss_fn = resolve_loss_fn(loss_fn, (x[:1], y[:1]))
    work = model_copy(model)
    lr = DEFAULT_LR if lr is None else lr
    optimizer = DEFAULT_OPTIMIZER if optimizer is None else optimizer
    points: list[PathPoint] = []
    state: dict[str, Tensor] | None = None
    chosen_so_far: int | None = None
    start_loss = evaluate_loss(work, fit, loss_fn)
    stopped = False
    for i, lam in enumerate(lams):
        epochs = warmup_epochs if i == 0 else path_epochs
        history = train(work, fit, l1=float(lam), epochs=epochs, lr=lr, optimizer=optimizer, batch_size=batch_size,
                        seed=(seed + i) % 2**64, loss_fn=loss_fn, progress=progress)  # a seed check_seed takes
        scored = time.perf_counter()
        check_finite_weights(work, "lower the learning rate (--lr), or pin a smaller λ with --l1 X",
                             where=f" at λ = {lam:g} of the λ path (--l1 auto)")
        metric, val_loss = _metric(work, held, loss_fn, classification)
        s_ref, steep = knee_at_reference(flat_weights(work))
        seconds = sum(history.seconds) + time.perf_counter() - scored  # PathPoint: epochs timed as lomp.train times them
        points.append(PathPoint(float(lam), metric, val_loss, s_ref, steep, epochs, seconds))
        if math.isfinite(metric):
            now = choose_l1([p.l1 for p in points], [p.metric for p in points], higher_is_better=classification,
                            tolerance=tolerance)
            if now != chosen_so_far:  # the new point (the module docstring's rule never moves the choice back)
                chosen_so_far = now
                state = {k: v.detach().clone() for k, v in work.state_dict().items()} if keep_state else None
        values = np.array([p.metric for p in points])
        best = np.nanmax(values) if classification else np.nanmin(values)
        if not math.isfinite(metric):
            stopped = i < lams.size - 1
            break
        gap = best - metric if classification else metric - best
        if gap > STOP_FACTOR * tolerance and i < lams.size - 1:
            stopped = True
            break
    metrics = np.array([p.metric for p in points])
    chosen = choose_l1([p.l1 for p in points], metrics, higher_is_better=classification, tolerance=tolerance)
    return RegularisationPath(
        points=points,
        grid=[float(v) for v in lams],
        metric_name="accuracy" if classification else "loss",
        tolerance=tolerance,
        chosen=chosen,
        validation_size=int(len(val_idx)),
        seed=seed,
        start=start,
        stopped_early=stopped,
        seconds=sum(p.seconds for p in points),
        start_loss=start_loss,
        state=state,
        settings={
            "validation_fraction": validation_fraction,
            "warmup_epochs": warmup_epochs,
            "path_epochs": path_epochs,
            "stop_factor": STOP_FACTOR,
            "knee_reference_share": KNEE_REFERENCE_SHARE,
            "lr": lr,
            "optimizer": optimizer,
            "batch_size": batch_size,
        },
    )


def fresh_copy(model: nn.Module, seed: int) -> nn.Module | None:
    """A freshly initialised network of ``model``'s architecture (seeded), or None.

    In order of preference:

    1. a model built from a spec (``models.build_model``: the zoo's, a bundle's, a state_dict's
       ``--model``) is built again from that spec with ``seed``, as ``train --model SPEC --seed``
       would start it (the zoo's ``transformer`` holds a raw position parameter no method resets);
    2. a Hugging Face model (``transformers.PreTrainedModel``) is built again from its config,
       which initialises it as ``from_config`` does (GPT-2's ``Conv1D`` layers have no
       ``reset_parameters``);
    3. otherwise (also where 1 or 2 gives other names or shapes than ``model``'s: a model
       changed after it was built) a copy whose every module with parameters of its own is
       reset by its ``reset_parameters`` or, as ``nn.MultiheadAttention``, ``_reset_parameters``
       (after its submodules' own, as at construction).

    The fresh network has ``model``'s parameter selection, device and floating dtype. None when
    some module with parameters of its own can be reset by neither (a custom layer; any layer of a
    TorchScript module, which keeps only its compiled methods, no ``reset_parameters``): then no
    fresh start of the same architecture can be made.
    """
    from .models import build_model, model_record
    from .objective import model_device_dtype, parameter_selection, select_parameters

    record = model_record(model)
    transformers = sys.modules.get("transformers")
    hf_class = getattr(transformers, "PreTrainedModel", None) if transformers is not None else None
    fresh = None
    if record is not None:
        fresh = build_model(record.spec, record, seed=seed)
    elif hf_class is not None and isinstance(model, hf_class):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = type(model)(model.config)
    if fresh is not None and not _same_shapes(fresh, model):  # changed after it was built: its spec is not its architecture
        fresh = None
    if fresh is None:
        return _reset_copy(model, seed)  # model_copy keeps the selection, the device and the dtype
    select_parameters(fresh, parameter_selection(model))
    fresh.train(model.training)
    device, dtype = model_device_dtype(model)
    return fresh.to(device=device, dtype=dtype) if dtype.is_floating_point else fresh.to(device)


def _same_shapes(a: nn.Module, b: nn.Module) -> bool:
    """Whether two networks hold the same state_dict names with the same shapes."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape for k in sa)


def _reset_copy(model: nn.Module, seed: int) -> nn.Module | None:
    """A copy of ``model`` whose every module with parameters of its own is reset (seeded), or None.

    A module reset by ``_reset_parameters`` (``nn.MultiheadAttention``) re-initialises only part of
    what it holds, after its submodules' construction: their resets run first, then its own (which
    zeroes ``out_proj.bias`` as a new one has it), and they are not reset again.
    """
    fresh = model_copy(model)
    resets, covered = [], set()
    for module in fresh.modules():
        if id(module) in covered or not list(module.parameters(recurse=False)):
            continue
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            resets.append(reset)
            continue
        reset = getattr(module, "_reset_parameters", None)
        if not callable(reset):
            return None
        for sub in list(module.modules())[1:]:
            own = getattr(sub, "reset_parameters", None)
            if list(sub.parameters(recurse=False)) and callable(own):
                resets.append(own)
                covered.add(id(sub))
        resets.append(reset)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for reset in resets:
            reset()
    return fresh


@with_gradients
def train_auto(
    model: nn.Module,
    data: Any,
    *,
    seed: int = 0,
    start: str = "fresh",
    fresh: nn.Module | None = None,
    progress: bool = False,
    path_kwargs: dict[str, Any] | None = None,
    **train_kwargs: Any,
) -> tuple[RegularisationPath, Any]:
    """Choose λ on the path, then train ``model`` in place at that λ (``lomp.train``).

    From a fresh initialisation (``fresh`` None): the path starts from ``model``, and the final
    training from the path's weights at the chosen λ (module docstring).

    From a user's trained weights (``train --init``) pass ``fresh``, a freshly initialised network
    of the same architecture: a checkpoint has normally been trained on *all* its training data,
    validation split included, so a path started from it scores λ on samples it memorised (the
    suite's MNIST-1D λ = 0 control: 78 % validation accuracy on the path against 60 % on the test
    set), which favours the smallest λ. So λ is chosen on the path of ``fresh`` (whose metrics are
    honest), and ``model`` is then l1 fine-tuned along the same grid up to that λ (warm starts,
    the same epochs), then trained at it. The second path is recorded as ``route``.

    Args:
        model: the starting network (trained in place at the chosen λ).
        data: a DataBundle (test set used for the history) or an ``(x, y)`` pair.
        seed: seed of the split, the path and the final training.
        start: label of the starting weights for the record.
        fresh: a fresh network of ``model``'s architecture to choose λ on (see above), or None.
        progress: tqdm bars.
        path_kwargs: extra arguments of :func:`l1_path` (not ``seed``, ``start``, ``progress``
            or ``keep_state``, which train_auto sets); they override those it takes from
            ``train_kwargs``. With ``fresh``, ``tolerance`` applies to the path that chooses λ;
            the route runs along the same ``grid`` up to the chosen λ, every point accepted.
        **train_kwargs: arguments of ``lomp.train`` (``epochs``, ``lr``, ``optimizer``,
            ``batch_size``, ``test_data``, ``loss_fn``); ``lr``, ``optimizer``, ``batch_size``
            and ``loss_fn`` also set the path's recipe.

    Returns:
        ``(path, history)``; ``history.settings["l1_path"]`` holds the record of the path that
        chose λ (with ``fresh``: the fresh network's, its ``start`` :data:`FRESH_START`, and
        ``route``, the fine-tuning path, whose ``start`` is ``start``).

    Raises:
        PruningLimitsError: ``path_kwargs`` names an argument :func:`l1_path` does not take or
            train_auto sets, or as :func:`l1_path` and ``lomp.train``.
    """
    from .lomp import train

    owned = ("model", "data", "seed", "start", "progress", "keep_state")  # train_auto's to set
    allowed = [k for k in inspect.signature(l1_path).parameters if k not in owned]
    for key in path_kwargs or {}:
        if key not in allowed:
            raise PruningLimitsError(f"path_kwargs takes {', '.join(allowed)} (seed, start, progress and "
                                     f"keep_state are train_auto's to set), got {key!r}")
    extra = {**{k: train_kwargs[k] for k in ("lr", "optimizer", "batch_size", "loss_fn") if k in train_kwargs},
             **(path_kwargs or {})}  # the path's own recipe overrides the final training's
    if fresh is None:
        path = l1_path(model, data, seed=seed, start=start, progress=progress, **extra)
        state = path.state
        record = path.to_dict()
    else:
        path = l1_path(fresh, data, seed=seed, start=FRESH_START, progress=progress, keep_state=False, **extra)
        for key in ("grid", "tolerance"):  # they chose λ; the route runs along that grid up to it, every point accepted
            extra.pop(key, None)
        route_grid = [v for v in path.grid if v <= path.l1]
        route = l1_path(model, data, seed=seed, start=start, progress=progress, grid=route_grid, tolerance=math.inf,
                        **extra)
        state = route.state  # its last point: every point is acceptable at an infinite tolerance
        record = path.to_dict()  # its start stays FRESH_START: its points are the fresh network's
        record["route"] = route.to_dict()
    model.load_state_dict(state)
    history = train(model, data, l1=path.l1, seed=seed, progress=progress, **train_kwargs)
    history.settings["l1_path"] = record
    return path, history
