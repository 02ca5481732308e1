"""Theory against measurement on one trained network: predict the limit, then prune and look.

The prediction (Zhang et al. 2024, §4; :func:`pruning_limits.pipeline.predict_limit`) and the
measured LOMP limits (§6; :func:`pruning_limits.lomp.sweep`) use the same analysis data and the
same ε, so the difference ``predicted − measured-by-loss`` is the error of the theory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ._autograd import with_gradients
from ._checks import PruningLimitsError, check_positive
from .limits import DEFAULT_ETA, Prediction, predict_from_spectrum
from .pipeline import predict_limit
from .lomp import SweepResult, sweep
from .objective import check_model_takes_data, flat_weights, loss_gradient, model_copy
from .hessian import DEFAULT_MEMORY_BUDGET, HessianOperator
from .spectrum import DEFAULT_ITERATIONS, DEFAULT_PROBES, Spectrum, exact_spectrum, operator_exact_spectrum, slq
from .taylor import SpectralOneShot, TaylorOneShot, spectral_one_shot_limit, taylor_one_shot_limit

#: Predictions from SLQ and from the exact spectrum "agree" within this many sparsity units
#: (the acceptance of issue 3: 0.5 points of sparsity).
EXACT_AGREEMENT = 0.005


@dataclass(frozen=True, eq=False)
class Validation:
    """A prediction and the measured limits of the same network.

    Attributes:
        prediction: the predicted limit from the SLQ spectrum, with the first-order (gradient)
            term subtracted from ε (the default of :func:`~pruning_limits.pipeline.predict_limit`).
        paper_prediction: the same in the paper's model, which neglects the gradient term.
        sweep: the one-shot pruning sweep with the measured limits.
        spectrum: the spectrum the prediction used.
        exact_prediction: the paper's-model prediction from the exact spectrum, when computed
            (the paper's model isolates the spectrum: the gradient term does not depend on it).
        seconds: wall time of the whole validation.
        weights: the flat prunable weights (float64) the predictions used.
        gradient: the data-loss gradient at those weights (the gradient term's input).
        taylor: the second-order Taylor model of one-shot pruning (``gᵀd + ½dᵀHd`` along the
            magnitude path, :mod:`pruning_limits.taylor`): a diagnostic that separates the
            quadratic model from the geometric step of the prediction.
        spectral_one_shot: the same one-shot model with its curvature term from the spectrum
            alone (:func:`~pruning_limits.taylor.spectral_one_shot_limit`, docs/theory.md §6b): a
            candidate prediction of one-shot pruning, not the default.
    """

    prediction: Prediction
    paper_prediction: Prediction
    sweep: SweepResult
    spectrum: Spectrum
    exact_prediction: Prediction | None
    seconds: float
    weights: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    gradient: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    taylor: TaylorOneShot | None = None
    spectral_one_shot: SpectralOneShot | None = None

    @property
    def difference(self) -> float:
        """Predicted minus measured-by-loss sparsity (positive: the theory promises too much)."""
        return self.prediction.sparsity - self.sweep.limit_by_loss

    @property
    def paper_difference(self) -> float:
        """The same difference for the paper's model."""
        return self.paper_prediction.sparsity - self.sweep.limit_by_loss

    @property
    def exact_agrees(self) -> bool | None:
        """Whether SLQ and exact-spectrum predictions (paper's model) agree within :data:`EXACT_AGREEMENT`."""
        if self.exact_prediction is None:
            return None
        return abs(self.paper_prediction.sparsity - self.exact_prediction.sparsity) <= EXACT_AGREEMENT

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record: ``predicted``, ``measured``, ``difference`` and details."""
        return {
            "predicted": self.prediction.to_dict(),
            "measured": {
                "limit_by_loss": self.sweep.limit_by_loss,
                "limit_by_accuracy": self.sweep.limit_by_accuracy,
                "dense_loss": self.sweep.dense_loss,
                "dense_accuracy": self.sweep.dense_accuracy,
                "epsilon": self.sweep.epsilon,
                "criterion": self.sweep.criterion,
            },
            "difference": self.difference,
            "predicted_paper": self.paper_prediction.to_dict(),
            "difference_paper": self.paper_difference,
            "exact_predicted": None if self.exact_prediction is None else self.exact_prediction.to_dict(),
            "exact_agrees": self.exact_agrees,
            "taylor_one_shot": None if self.taylor is None else self.taylor.to_dict(),
            "spectral_one_shot": None if self.spectral_one_shot is None else self.spectral_one_shot.to_dict(),
            "spectrum": self.spectrum.summary(),
            "sweep": self.sweep.to_dict(),
            "num_hvps": int(self.spectrum.num_hvps),  # of the spectrum; the Taylor model's are its own
            "seconds": self.seconds,
        }


@with_gradients
def validate(
    model: nn.Module,
    data: Any,
    *,
    test_data: Any = None,
    epsilon: float | str = "batch-std",
    iterations: int = DEFAULT_ITERATIONS,
    probes: int = DEFAULT_PROBES,
    seed: int = 0,
    eta: float = DEFAULT_ETA,
    exact: bool = False,
    spectrum: Spectrum | None = None,
    memory_budget: int | None = None,
    progress: bool = False,
    structure: Any = "unstructured",
) -> Validation:
    """Predict the pruning limit of ``model`` and measure it by one-shot global magnitude pruning.

    The spectrum is computed on a float64 copy of the model (the default of
    :func:`~pruning_limits.pipeline.predict_limit`); the sweep prunes the model as it is. Beside
    the prediction it evaluates the Taylor one-shot diagnostic on the float64 copy (about 50
    Hessian-vector products; :func:`~pruning_limits.taylor.taylor_one_shot_limit`) and the
    spectral one-shot model (no products; :func:`~pruning_limits.taylor.spectral_one_shot_limit`).

    Args:
        model: the trained network (not modified).
        data: the analysis data, or a :class:`~pruning_limits.data.DataBundle` whose training
            pair is the analysis data and whose test pair is the test data.
        test_data: test data for the accuracy criterion (default: the bundle's test pair).
        epsilon: ε > 0 or ``"batch-std"`` (THEORY §1).
        iterations: Lanczos steps per probe (default of ``predict_limit``).
        probes: SLQ probes (default of ``predict_limit``).
        seed: seed of the SLQ probes.
        eta: failure probability of the kinematic interval.
        exact: also predict from the exact spectrum (dense Hessian; small models only); for
            another structure, predict from it instead of SLQ (as ``validate --structure S
            --exact``), which a ``spectrum`` given as well contradicts.
        spectrum: a precomputed spectrum of the float64 copy (skips SLQ).
        memory_budget: bytes (default 1 GiB) that the Hessian engine's caches and, apart, the
            Lanczos arrays are each held to (together up to about twice it; see
            :func:`~pruning_limits.spectrum.slq` for the quadrature rule it selects).
        progress: progress bars on stderr.
        structure: ``"unstructured"`` (default, this function's record) or another structure of
            :mod:`pruning_limits.structures`, which returns
            :func:`validate_structures` of that one structure (its own record type).

    Returns:
        The :class:`Validation` record (a :class:`StructuresValidation` for another structure).
    """
    from .structures import parse_structure

    if parse_structure(structure).kind != "unstructured":
        if exact:  # one spectrum serves every structure: the dense one replaces SLQ's
            if spectrum is not None:
                raise PruningLimitsError(
                    f"exact=True computes the spectrum for structure {structure!r}: give exact or spectrum, got both"
                )
            train_pair = getattr(data, "train", data)
            check_model_takes_data(model, train_pair)
            spectrum = exact_spectrum(
                model_copy(model).to(torch.float64), train_pair, memory_budget=memory_budget, progress=progress
            )
        return validate_structures(  # type: ignore[return-value]
            model, data, [structure], test_data=test_data, epsilon=epsilon, iterations=iterations, probes=probes,
            seed=seed, eta=eta, spectrum=spectrum, memory_budget=memory_budget, progress=progress,
        )
    start = time.perf_counter()
    train_pair = getattr(data, "train", data)
    check_model_takes_data(model, train_pair)
    if test_data is None:
        test_data = getattr(data, "test", None)
    analysed = model_copy(model).to(torch.float64)
    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else check_positive("memory_budget", memory_budget)
    operator = HessianOperator(analysed, train_pair, memory_budget=budget)  # one engine for SLQ and the Taylor model
    if spectrum is None:
        spectrum = slq(operator, iterations=iterations, probes=probes, seed=seed, memory_budget=memory_budget, progress=progress)
    paper = predict_limit(model, train_pair, epsilon=epsilon, eta=eta, spectrum=spectrum, gradient_term=False)
    weights = flat_weights(analysed)
    gradient = loss_gradient(analysed, train_pair)
    prediction = predict_from_spectrum(weights, spectrum, paper.epsilon, eta=eta, gradient=gradient)
    exact_prediction = None
    if exact:
        exact_spec = operator_exact_spectrum(operator, progress=progress)
        exact_prediction = predict_from_spectrum(weights, exact_spec, paper.epsilon, eta=eta)
    taylor = taylor_one_shot_limit(weights, gradient, operator, prediction.epsilon)
    one_shot = spectral_one_shot_limit(weights, gradient, spectrum, prediction.epsilon)
    measured = sweep(model, train_pair, test_data=test_data, epsilon=prediction.epsilon, progress=progress)
    return Validation(
        prediction, paper, measured, spectrum, exact_prediction, time.perf_counter() - start, weights, gradient, taylor,
        one_shot,
    )


# ---------------------------------------------------------------------------------------------
# Structures side by side (THEORY §8)
# ---------------------------------------------------------------------------------------------

#: What ``--structure all`` compares: every structure kind and the 2:4 pattern sparse tensor cores run.
ALL_STRUCTURES = ("unstructured", "layerwise", "neuron", "channel", "2:4")

#: Points of each ``R(s)`` curve kept for records and figures (allowed points, evenly thinned).
CURVE_POINTS = 400


@dataclass(frozen=True, eq=False)
class StructureResult:
    """Predicted and measured limit of one structure.

    Attributes:
        structure: the structure's name.
        plan: its removal order and allowed points on the trained weights.
        prediction: :class:`~pruning_limits.limits.Prediction`, or for ``N:M`` a
            :class:`~pruning_limits.structures.PatternPrediction`.
        sweep: the one-shot sweep over the allowed points (curve structures), else ``None``.
        pattern: for ``N:M``: the measured loss rise and accuracy of the pruned network, and
            the quadratic model's loss rise ``gᵀd + ½dᵀHd`` at the same point (a diagnostic).
        curve_sparsity, curve_distance: ``R(s)`` at (up to :data:`CURVE_POINTS`) allowed points.
        quadratic_limit: curve structures with the gradient term: where the quadratic model
            ``gᵀd + ½dᵀHd`` of one-shot pruning along the structure first exceeds ε
            (:func:`quadratic_one_shot_limit`), a diagnostic of the loss model.
    """

    structure: str
    plan: Any
    prediction: Any
    sweep: SweepResult | None
    pattern: dict[str, Any] | None
    curve_sparsity: np.ndarray = field(repr=False)
    curve_distance: np.ndarray = field(repr=False)
    quadratic_limit: float | None = None

    @property
    def difference(self) -> float | None:
        """Predicted minus measured-by-loss sparsity (curve structures)."""
        return None if self.sweep is None else self.prediction.sparsity - self.sweep.limit_by_loss

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record."""
        measured: dict[str, Any]
        if self.sweep is not None:
            measured = {
                "limit_by_loss": self.sweep.limit_by_loss,
                "limit_by_accuracy": self.sweep.limit_by_accuracy,
                "dense_loss": self.sweep.dense_loss,
                "dense_accuracy": self.sweep.dense_accuracy,
                "evaluations": self.sweep.evaluations,
            }
        else:
            measured = dict(self.pattern or {})
        return {
            "structure": self.structure,
            "pattern": self.sweep is None,
            "predicted": self.prediction.to_dict(),
            "measured": measured,
            "difference": self.difference,
            "quadratic_one_shot": self.quadratic_limit,
            "support": self.plan.to_dict(),
            "curve": {"sparsity": self.curve_sparsity.tolist(), "distance": self.curve_distance.tolist()},
        }


@dataclass(frozen=True, eq=False)
class StructuresValidation:
    """Every requested structure predicted and measured on one network, from one spectrum.

    ``network_knee_steepness``: ``d ln R/ds`` of the magnitude curve at the unstructured answer
    from the same spectrum, ``network_sparsity`` that answer's ``s*`` and ``network_zero_fraction``
    its ``s₀`` (:attr:`~pruning_limits.limits.Prediction.zero_fraction`), which place the network
    in or outside the regime (:func:`pruning_limits.regime.trust_level`) for every structure.
    """

    results: tuple[StructureResult, ...]
    epsilon: float
    spectrum: Spectrum
    gradient_term: bool
    seconds: float
    network_knee_steepness: float = float("nan")
    network_sparsity: float = float("nan")
    network_zero_fraction: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record: ``structures`` (one entry each), ``epsilon``, ``spectrum``."""
        return {
            "epsilon": self.epsilon,
            "gradient_term": self.gradient_term,
            "network_knee_steepness": self.network_knee_steepness,
            "network_sparsity": self.network_sparsity,
            "network_zero_fraction": self.network_zero_fraction,
            "structures": [r.to_dict() for r in self.results],
            "spectrum": self.spectrum.summary(),
            "num_hvps": int(self.spectrum.num_hvps),
            "seconds": self.seconds,
        }


def _thinned_curve(weights: np.ndarray, plan: Any) -> tuple[np.ndarray, np.ndarray]:
    from .structures import distance_curve

    r2 = distance_curve(weights, plan.order)
    allowed = plan.allowed
    if allowed.size > CURVE_POINTS:
        allowed = allowed[np.unique(np.linspace(0, allowed.size - 1, CURVE_POINTS).round().astype(np.int64))]
    return allowed / plan.dim, np.sqrt(r2[plan.dim - allowed])


def quadratic_one_shot_limit(weights: np.ndarray, gradient: np.ndarray, operator: Any, plan: Any, epsilon: float) -> float:
    """First crossing of ε by ``q = gᵀd + ½dᵀHd`` along a structure's allowed points (a diagnostic).

    The structured counterpart of :func:`~pruning_limits.taylor.taylor_one_shot_limit`: ``d``
    prunes the first ``a`` weights of ``plan.order`` at each allowed count ``a``; the crossing is
    searched on a 41-point grid of the allowed counts, then by bisection over them.
    """
    from ._search import first_crossing, grid_counts

    allowed = plan.allowed
    grid = np.unique(np.searchsorted(allowed, grid_counts(None, plan.dim), side="right") - 1)

    def within(i: int) -> bool:
        count = int(allowed[i])
        step = np.zeros(plan.dim)
        step[plan.order[:count]] = -weights[plan.order[:count]]
        if count == 0:
            return True
        return float(gradient @ step) + 0.5 * float(step @ np.asarray(operator.matvec(step))) <= epsilon

    return int(allowed[first_crossing(grid, within)]) / plan.dim


@with_gradients
def validate_structures(
    model: nn.Module,
    data: Any,
    structures: Any = ALL_STRUCTURES,
    *,
    test_data: Any = None,
    epsilon: float | str = "batch-std",
    iterations: int = DEFAULT_ITERATIONS,
    probes: int = DEFAULT_PROBES,
    seed: int = 0,
    eta: float = DEFAULT_ETA,
    gradient_term: bool = True,
    spectrum: Spectrum | None = None,
    memory_budget: int | None = None,
    progress: bool = False,
) -> StructuresValidation:
    """Predict and measure the pruning limit of several structures, from one spectrum (THEORY §8).

    The spectrum, ε and the gradient are computed once on a float64 copy of the model (as
    :func:`validate` does) and every structure reuses them. Curve structures are measured by a
    one-shot sweep over their allowed points (:func:`~pruning_limits.lomp.sweep` with
    ``allowed``); an ``N:M`` pattern by the loss rise of the pattern-pruned network, which is the
    ε it needs (the prediction's needed ε is :attr:`PatternPrediction.needed_epsilon`).

    Args:
        model: the trained network (not modified).
        data: analysis data or a :class:`~pruning_limits.data.DataBundle` (as :func:`validate`).
        structures: structure specs (default :data:`ALL_STRUCTURES`).
        test_data, epsilon, iterations, probes, seed, eta, spectrum, memory_budget, progress:
            as in :func:`validate`.
        gradient_term: subtract the first-order cost of pruning from ε (default True, as
            :func:`~pruning_limits.pipeline.predict_limit`).

    Returns:
        :class:`StructuresValidation`.
    """
    from .masks import apply_masks, make_permanent, masks_from_order
    from .lomp import accuracy
    from .objective import batch_std_epsilon, evaluate_loss
    from .structures import layer_layout, parse_structure, predict_structured, structured_order

    start = time.perf_counter()
    train_pair = getattr(data, "train", data)
    check_model_takes_data(model, train_pair)
    if isinstance(structures, str):
        structures = [structures]
    parsed = [parse_structure(s) for s in structures]
    if not parsed:
        raise PruningLimitsError("structures must name at least one structure")
    if test_data is None:
        test_data = getattr(data, "test", None)
    analysed = model_copy(model).to(torch.float64)
    layout = layer_layout(analysed)
    weights = flat_weights(analysed)
    plans = [structured_order(weights, layout, s) for s in parsed]  # refuses unfit structures before any work
    if isinstance(epsilon, str):
        if epsilon != "batch-std":
            raise PruningLimitsError(f"epsilon must be a number > 0 or 'batch-std', got {epsilon!r}")
        eps = batch_std_epsilon(analysed, train_pair)
    else:
        eps = check_positive("epsilon", epsilon)
    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else check_positive("memory_budget", memory_budget)
    operator = HessianOperator(analysed, train_pair, memory_budget=budget)  # SLQ and the diagnostics' few products
    if spectrum is None:
        spectrum = slq(operator, iterations=iterations, probes=probes, seed=seed, memory_budget=memory_budget, progress=progress)
    gradient = loss_gradient(analysed, train_pair) if gradient_term else None
    # whether the network is in the regime is read off its unstructured answer (regime.trust_level)
    network = predict_from_spectrum(weights, spectrum, eps, eta=eta, gradient=gradient)
    results = []
    for structure, plan in zip(parsed, plans):
        prediction = predict_structured(weights, spectrum, eps, plan, eta=eta, gradient=gradient)
        curve_s, curve_r = _thinned_curve(weights, plan)
        if structure.is_pattern:
            pruned = model_copy(model)
            apply_masks(pruned, masks_from_order(pruned, plan.order, int(plan.pattern_count)))
            make_permanent(pruned)
            dense_loss = evaluate_loss(model, train_pair)
            loss = evaluate_loss(pruned, train_pair)
            dense_acc = None if test_data is None else accuracy(model, test_data)
            acc = None if test_data is None else accuracy(pruned, test_data)
            # the quadratic model at the pattern's point, gᵀd + ½dᵀHd (one Hessian-vector product):
            # separates the loss model from the geometric (kinematic) step of the prediction
            step = np.zeros(plan.dim)
            step[plan.order[: int(plan.pattern_count)]] = -weights[plan.order[: int(plan.pattern_count)]]
            curvature = float(step @ np.asarray(operator.matvec(step)))
            slope = float(step @ (gradient if gradient is not None else loss_gradient(analysed, train_pair)))
            pattern = {
                "quadratic_loss_rise": slope + 0.5 * curvature,
                "first_order_loss_rise": slope,
                "sparsity": plan.pattern_count / plan.dim,
                "dense_loss": dense_loss,
                "loss": loss,
                "loss_rise": loss - dense_loss,
                "feasible": loss - dense_loss <= eps,
                "needed_epsilon": max(loss - dense_loss, 0.0),
                "dense_accuracy": dense_acc,
                "accuracy": acc,
                "keeps_accuracy": None if acc is None else acc >= dense_acc,
            }
            results.append(StructureResult(structure.name, plan, prediction, None, pattern, curve_s, curve_r))
        else:
            measured = sweep(
                model, train_pair, test_data=test_data, epsilon=eps, criterion=structure.name, allowed=plan.allowed,
                progress=progress,
            )
            quadratic = None
            if gradient is not None:
                quadratic = quadratic_one_shot_limit(weights, gradient, operator, plan, eps)
            results.append(StructureResult(structure.name, plan, prediction, measured, None, curve_s, curve_r, quadratic))
    return StructuresValidation(
        tuple(results), eps, spectrum, gradient_term, time.perf_counter() - start,
        network.knee_steepness, network.sparsity, network.zero_fraction,
    )
