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
    "objective": ("prunable_parameters", "flat_weights", "evaluate_loss", "batch_std_epsilon"),
    # spectral measures
    "spectrum": ("Spectrum", "Estimate"),
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
