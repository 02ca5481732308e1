"""Theory against measurement on one trained network: predict the limit, then prune and look.

The prediction (Zhang et al. 2024, §4; :func:`pruning_limits.limits.predict_limit`) and the
measured LOMP limits (§6; :func:`pruning_limits.lomp.sweep`) use the same analysis data and the
same ε, so the difference ``predicted − measured-by-loss`` is the error of the theory.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ._checks import PruningLimitsError, check_positive, describe
from .limits import DEFAULT_ETA, Prediction, predict_from_spectrum, predict_limit
from .lomp import SweepResult, sweep
from .objective import flat_weights, loss_gradient
from .hessian import DEFAULT_MEMORY_BUDGET, HessianOperator
from .spectrum import DEFAULT_ITERATIONS, DEFAULT_PROBES, Spectrum, operator_exact_spectrum, slq
from .taylor import SpectralOneShot, TaylorOneShot, spectral_one_shot_limit, taylor_one_shot_limit

#: Predictions from SLQ and from the exact spectrum "agree" within this many sparsity units
#: (the acceptance of issue 3: 0.5 points of sparsity).
EXACT_AGREEMENT = 0.005


@dataclass(frozen=True, eq=False)
class Validation:
    """A prediction and the measured limits of the same network.

    Attributes:
        prediction: the predicted limit from the SLQ spectrum, with the first-order (gradient)
            term subtracted from ε (the default of :func:`~pruning_limits.limits.predict_limit`).
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
) -> Validation:
    """Predict the pruning limit of ``model`` and measure it by one-shot global magnitude pruning.

    The spectrum is computed on a float64 copy of the model (the default of
    :func:`~pruning_limits.limits.predict_limit`); the sweep prunes the model as it is. Beside
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
        exact: also predict from the exact spectrum (dense Hessian; small models only).
        spectrum: a precomputed spectrum of the float64 copy (skips SLQ).
        memory_budget: bytes for the Hessian engine's caches and for the stored Lanczos basis
            (default 1 GiB; see :func:`~pruning_limits.spectrum.slq` for the quadrature rule
            it selects).
        progress: progress bars on stderr.

    Returns:
        The :class:`Validation` record.
    """
    start = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise PruningLimitsError(f"model must be a torch.nn.Module, got {describe(model)}")
    train_pair = getattr(data, "train", data)
    if test_data is None:
        test_data = getattr(data, "test", None)
    analysed = copy.deepcopy(model).to(torch.float64)
    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else check_positive("memory_budget", memory_budget)
    operator = HessianOperator(analysed, train_pair, memory_budget=budget)  # one engine for SLQ and the Taylor model
    if spectrum is None:
        spectrum = slq(operator, iterations=iterations, probes=probes, seed=seed, memory_budget=budget, progress=progress)
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
