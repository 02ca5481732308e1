"""The target, the seeded stream of random neurons and the two output models (THEORY §7)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import PruningLimitsError, check_choice, check_int, check_seed, describe

#: Output models: "R" has an output ReLU (THEORY §7), "L" a linear output (the control).
MODELS = ("R", "L")

#: Largest stream width searched by the bisections (a search that needs more says so).
MAX_WIDTH = 4096


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


@dataclass(frozen=True)
class Stream:
    """The target and the first ``width`` neurons of one seeded stream.

    Attributes:
        seed: the seed of the stream.
        w: target direction, shape ``(d,)``, unit norm.
        first: first-layer rows ``u_i``, shape ``(width, d)``.
        second: second-layer weights ``v_i``, shape ``(width,)``.
    """

    seed: int
    w: np.ndarray
    first: np.ndarray
    second: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.w.shape[0])

    @property
    def width(self) -> int:
        return int(self.second.shape[0])


def make_stream(dim: int, seed: int, width: int) -> Stream:
    """Draw the target and the first ``width`` neurons of the stream ``seed`` (THEORY §7).

    Three independent generators (``numpy.random.SeedSequence(seed).spawn(3)``) draw ``w``, the
    rows ``u_i`` and the weights ``v_i``; each draws its values in order, so the stream of width
    ``m < n`` is the first ``m`` neurons of the stream of width ``n``.
    """
    dim = check_int("dim", dim, 1)
    seed = check_seed("seed", seed)
    width = check_int("width", width, 0)
    rng_w, rng_u, rng_v = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    w = rng_w.standard_normal(dim)
    w /= np.linalg.norm(w)
    first = rng_u.standard_normal((width, dim))
    second = rng_v.uniform(-1.0, 1.0, width)
    return Stream(seed=seed, w=w, first=first, second=second)


def network(x: np.ndarray, first: np.ndarray, second: np.ndarray, model: str = "R") -> np.ndarray:
    """The two-layer network at points ``x`` (rows): ``relu(relu(x U^T) v)`` (R) or without the outer relu (L)."""
    inner = relu(np.atleast_2d(x) @ np.asarray(first).T) @ np.asarray(second)
    return relu(inner) if model == "R" else inner


def target(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return relu(np.atleast_2d(x) @ np.asarray(w))


def _check_network(w: Any, first: Any, second: Any, model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    check_choice("model", model, MODELS)
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64).reshape(-1)
    if first.ndim != 2 or first.shape[1] != w.shape[0] or first.shape[0] != second.shape[0]:
        raise PruningLimitsError(
            f"expected first-layer rows of length d = {w.shape[0]} and one second-layer weight per row, "
            f"got shapes {first.shape} and {second.shape}"
        )
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(first)) and np.all(np.isfinite(second))):
        raise PruningLimitsError("network weights must be finite")
    return w, first, second


def check_epsilon(epsilon: Any) -> float:
    """ε must be a number in the open interval (0, 1): the target's own sup is 1."""
    try:
        value = float(epsilon)
    except (TypeError, ValueError):
        raise PruningLimitsError(f"ε must be a number in (0, 1), got {describe(epsilon)}") from None
    if not (0.0 < value < 1.0) or not math.isfinite(value):
        raise PruningLimitsError(f"ε must be in (0, 1) (the target's sup is 1), got {value:g}")
    return value
