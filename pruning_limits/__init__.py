"""pruning-limits: how sparse can a trained PyTorch network be pruned?

Predicts the pruning limit of a trained network from its Hessian spectrum and weights
(Zhang et al., "How Sparse Can We Prune A Deep Network", NeurIPS 2024) and checks the
prediction against one-shot magnitude pruning.

Public names are imported lazily, so ``import pruning_limits`` (and the command line's
``--help``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__

# Grouped public API: module -> names it exports.
_EXPORTS: dict[str, tuple[str, ...]] = {
    # errors and the analysed objective
    "_checks": ("PruningLimitsError",),
    "objective": ("prunable_parameters", "prunable_dim", "flat_weights", "evaluate_loss", "loss_gradient", "batch_std_epsilon",
                  "select_parameters", "selection_summary", "logits", "model_copy", "check_model_takes_data"),
    # Hessian products and spectra
    "hessian": ("HessianOperator",),
    "lanczos": (
        "lanczos",
        "gauss_quadrature",
        "block_lanczos",
        "block_gauss_quadrature",
        "rademacher_probes",
        "LanczosResult",
        "BlockLanczosResult",
    ),
    "spectrum": ("Spectrum", "Estimate", "slq", "estimate_spectrum", "exact_spectrum", "dense_hessian"),
    # convex geometry
    "geometry": (
        "kinematic_margin",
        "ellipsoid_width_bounds",
        "ellipsoid_width_mc",
        "subspace_statistical_dimension",
        "orthant_statistical_dimension",
        "circular_cone_statistical_dimension",
        "circular_cone_statistical_dimension_approx",
        "statistical_dimension_mc",
        "projected_ellipsoid_dimension",
        "spectral_statistical_dimension",
    ),
    # the bound calculator
    "limits": (
        "Prediction",
        "predict_from_spectrum",
        "limit_curve",
        "fixed_point_curve",
        "LimitCurve",
        "FixedPointCurve",
        "magnitude_distance_curve",
        "magnitude_first_order_curve",
        "first_order_curve",
        "first_order_limit",
        "knee_steepness",
    ),
    # the model-level pipeline (model, data, settings -> Prediction)
    "pipeline": ("predict_limit",),
    # data, models, pruning and LOMP
    "data": ("DataBundle", "load_data", "make_bundle", "check_data_fits_model"),
    "models": ("build_model", "ModelRecord", "model_record", "rebuild_model", "resnet18", "resnet20", "transformer"),
    "specs": ("parse_callable_spec",),
    "masks": ("compute_masks", "global_magnitude_masks", "apply_masks", "make_permanent", "prune_model", "distance_curve"),
    "structures": (
        "Structure",
        "StructuredOrder",
        "PatternPrediction",
        "parse_structure",
        "structured_order",
        "model_order",
        "predict_structured",
    ),
    "lomp": ("train", "TrainingHistory", "sweep", "SweepResult", "retrained_limit"),
    "regpath": ("l1_path", "train_auto", "choose_l1", "RegularisationPath"),
    "regime": ("trust_level", "Trust"),
    # theory against measurement
    "validation": ("validate", "Validation", "validate_structures", "StructuresValidation", "StructureResult"),
    "taylor": ("taylor_one_shot_limit", "TaylorOneShot", "spectral_one_shot_limit", "SpectralOneShot"),
    "lottery": ("gap_experiment", "check_gap_record", "make_stream", "sup_error_exact", "certified_error", "weight_pruning_width", "lp_lower_bound", "milp_exact_width"),
    # files
    "checkpoint": ("Checkpoint", "read_checkpoint", "build_from_checkpoint", "save_bundle", "save_safetensors",
                   "save_huggingface", "save_torchscript", "atomic_write"),
    # reports and figures
    "report": (
        "spectrum_figure",
        "prediction_figure",
        "limit_curve_figure",
        "write_validation_figures",
        "save_figure",
        "validation_markdown",
        "structures_figure",
        "structures_table",
        "dumps_json",
        "write_json",
    ),
}

__all__ = ["__version__"] + [name for names in _EXPORTS.values() for name in names]

_NAME_TO_MODULE = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _NAME_TO_MODULE.get(name)
    if module is None:
        raise AttributeError(f"module 'pruning_limits' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
