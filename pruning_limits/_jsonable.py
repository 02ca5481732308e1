"""Plain JSON values from the library's records (numpy, torch scalars, tuples, paths, ``to_dict``).

The bottom of the house: the calculator (:mod:`pruning_limits.limits`), the structures and the
reports all serialise their records with :func:`to_jsonable`, so it lives below all of them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._checks import PruningLimitsError, describe


def to_jsonable(value: Any) -> Any:
    """Convert numpy arrays/scalars, tuples, paths and objects with ``to_dict()`` to JSON types.

    Non-finite floats become ``None`` (``null``): strict JSON has no NaN or infinity.
    """
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return to_jsonable(value.to_dict())
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, (str, type(None))):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # torch scalar tensors
        return to_jsonable(value.item())
    raise PruningLimitsError(f"cannot serialise {describe(value)} to JSON")
