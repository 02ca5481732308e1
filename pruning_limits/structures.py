"""Structures: which supports a pruning may keep, their nearest allowed points and ``R(s)``.

THEORY §8 (after Zhang et al. 2024, §3-4, whose formulas hold for any criterion once its
``R(s)`` is known). A *structure* is a family of allowed supports; this module gives, for the
prunable weights ``w*`` of a model (the flat order of
:func:`~pruning_limits.objective.flat_weights`), a *nested removal order* (a permutation of the
``D`` weights, first pruned first) and the numbers of pruned weights at which that order sits
on an allowed point. ``R_k² = ‖w* − w^k‖²`` along the order is the structure's distance curve.

Structures (:func:`parse_structure`):

- ``unstructured`` (default; aliases ``magnitude``, ``global``): global magnitude pruning,
  smallest ``|w|`` first, ties by lower flat index. Every count is allowed; the point with ``m``
  pruned weights is the nearest point with at least ``m`` zeros (THEORY §3).
- ``layerwise``: every layer loses the same fraction. Weights are ranked inside their layer by
  ``|w|`` and ordered globally by ``(rank + 1)/n_layer`` (ties by layer, then rank), so after
  ``m`` removals there is a common ``t`` with every layer of ``n_l`` weights having lost a
  fraction in ``[t − 1/n_l, t]``: the layers' fractions differ by less than one weight of the
  layer (layer-wise magnitude pruning, Han et al. 2015). The counts are not always within one
  of the quota ``m n_l/D`` (sizes 28, 6, 4, 4 at ``m = 3``: 3, 0, 0, 0 against 2, 0.43, 0.29,
  0.29). Every count is allowed; given the per-layer counts the point is the nearest one (the
  smallest of each layer go).
- ``neuron``: whole rows (dimension 0) of every 2-D prunable tensor: ``nn.Linear`` weights,
  attention in-projections and any 2-D tensor chosen with ``--params`` (an ``nn.Embedding``'s
  rows are its vocabulary entries; a weight stored ``(in, out)`` loses inputs); ``channel``:
  those rows and the dimension-0 slices of tensors of three or more dimensions (a convolution's
  output channels; a ``(1, L, d)`` position embedding is one slice). The output rows of the
  model's output layer (the last Linear or convolution weight its forward uses, whatever
  ``--params`` selects: :func:`pruning_limits.objective.output_weight`) are the network's outputs: removing one deletes a class, so by default they stay dense and are listed
  in :attr:`StructuredOrder.dense_layers`; ``neuron+outputs`` and ``channel+outputs`` include
  them. Only the *weights* of a row are pruned, never its bias (the prunable weights are the
  weights, THEORY §8): a removed neuron outputs the constant ``act(b_i)``, and prediction,
  measurement (:mod:`pruning_limits.validation`) and ``prune`` all keep that bias. To shrink the
  matrices for deployment the constant goes into the next layer's bias,
  ``b_next += W_next[:, i] · act(b_i)``, which leaves the network's function unchanged when the
  next layer is an ``nn.Linear`` (for a next convolution with zero padding it is exact only
  away from the borders). Groups are removed in
  increasing order of squared norm per weight (THEORY §8), ties by group index; inside the
  group in progress the smallest ``|w|`` go first, so the curve is defined at every count, but
  only the ends of groups are allowed points. Exchange argument: the greedy point after ``j``
  groups is the nearest allowed point among *all* unions of whole groups with at least as many
  weights (any other such union swaps greedy groups for groups of no smaller squared norm per
  weight and no fewer weights). Between those counts the nearest allowed point with at least
  ``m`` zeros is a covering-knapsack problem and may differ from the next greedy point when
  groups differ in size; this module never reports such counts as allowed.
- ``N:M`` (``1 ≤ N < M``): in every run of ``M`` consecutive weights along the input dimension
  (the last dimension of a Linear weight; ``in_channels × kh × kw`` flattened for a
  convolution) at most ``N`` are non-zero (2:4 is what sparse tensor cores run). For a
  convolution that flattened run is *not* the layout NVIDIA's sparse tensor cores accelerate
  (ASP / cuSPARSELt take runs of input channels at a fixed kernel position, the weight
  permuted to ``(out, kh, kw, in)``); ``N:M+cl`` (channels last) takes those runs and needs
  ``in_channels`` to be a multiple of ``M``; on Linear layers both are the same. The order
  removes, in round ``r = 1 … M``, the ``r``-th smallest ``|w|`` of every run (rounds in
  increasing ``|w|``); the end of round ``M − N`` is the pattern: in each run the ``M − N``
  smallest go, which is the nearest point with at most ``N`` non-zeros per run.

Layers a structure does not apply to (tensors of three or more dimensions, convolutions among
them, under ``neuron``; the model's output layer, its last Linear or convolution weight, and
tensors of one dimension under ``neuron``/``channel``; layers whose input size, or
``in_channels`` for ``+cl``, is not a multiple of ``M`` under ``N:M``; transposed convolutions,
transformers' ``Conv1D`` (GPT-2's ``(in, out)`` weights) and zero-size tensors under all three) stay dense: they come last in the order, beyond every
allowed count, and :attr:`StructuredOrder.dense_layers` names them with their sizes so callers
can report the share of weights they hold. A model with no layer the structure applies to is
refused.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ._checks import PruningLimitsError, describe
from .geometry import delta_fraction, share_reached
from .objective import output_weight, prunable_parameters

#: Structure names besides ``N:M`` (THEORY §8, DESIGN "Wave 2").
STRUCTURES = ("unstructured", "layerwise", "neuron", "channel")
#: Old criterion names of :mod:`pruning_limits.masks`, kept as aliases of ``unstructured``.
ALIASES = {"magnitude": "unstructured", "global": "unstructured"}
#: What a structure spec may be, for error messages.
EXPECTED = (
    "unstructured, layerwise, neuron, channel or N:M with 1 <= N < M (e.g. 2:4; suffixes neuron+outputs, "
    "channel+outputs, N:M+cl)"
)
#: Suffix that lets ``neuron``/``channel`` prune the rows of the output layer (:attr:`Layer.output`).
OUTPUTS = "+outputs"
#: Suffix of ``N:M`` taking runs along input channels at a fixed kernel position (channels last).
CHANNELS_LAST = "+cl"

_PATTERN = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*(\+\s*cl)?\s*$", re.ASCII)  # no full-width digits
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class Structure:
    """A parsed structure.

    Attributes:
        kind: ``"unstructured"``, ``"layerwise"``, ``"neuron"``, ``"channel"`` or ``"n:m"``.
        n, m: the ``N`` and ``M`` of an ``N:M`` pattern (0 otherwise).
        outputs: ``neuron``/``channel`` also prune the rows of the output layer
            (``+outputs``; default False: they stay dense).
        channels_last: ``N:M`` runs along input channels at a fixed kernel position of a
            convolution (``+cl``; default False: along ``in_channels × kernel`` flattened).
    """

    kind: str
    n: int = 0
    m: int = 0
    outputs: bool = False
    channels_last: bool = False

    @property
    def name(self) -> str:
        """The spec as a user writes it (``"2:4"`` for a pattern, ``"neuron+outputs"``)."""
        if self.kind == "n:m":
            return f"{self.n}:{self.m}" + (CHANNELS_LAST if self.channels_last else "")
        return self.kind + (OUTPUTS if self.outputs else "")

    @property
    def is_pattern(self) -> bool:
        """True for ``N:M``: the sparsity is fixed by the pattern, not chosen."""
        return self.kind == "n:m"

    def __str__(self) -> str:
        return self.name


def parse_structure(spec: Any) -> Structure:
    """A :class:`Structure` from its spec (``"neuron"``, ``"2:4"``, ...) or a Structure.

    Raises:
        PruningLimitsError: an unknown name, or ``N:M`` with ``N ≥ M``, ``N < 1`` or ``M < 2``.
    """
    if isinstance(spec, Structure):
        return spec
    if not isinstance(spec, str):
        raise PruningLimitsError(f"structure must be {EXPECTED}, got {describe(spec)}")
    text = spec.strip().lower()
    text = ALIASES.get(text, text)
    if text in STRUCTURES:
        return Structure(text)
    base, plus, suffix = text.partition("+")
    if base.strip() in ("neuron", "channel") and plus and suffix.strip() == OUTPUTS[1:]:
        return Structure(base.strip(), outputs=True)
    match = _PATTERN.match(text)
    if match is None:
        raise PruningLimitsError(f"structure must be {EXPECTED}, got {spec!r}")
    n, m = int(match.group(1)), int(match.group(2))
    if m < 2 or not 1 <= n < m:
        raise PruningLimitsError(f"structure N:M needs M >= 2 and 1 <= N < M, got {spec.strip()!r}")
    return Structure("n:m", n, m, channels_last=match.group(3) is not None)


@dataclass(frozen=True)
class Layer:
    """One prunable weight tensor in the flat vector.

    Attributes:
        name: module-qualified weight name (``"features.0.weight"``), the name of the pruned
            view ``weight`` also when ``torch.nn.utils.prune`` stores ``weight_orig``.
        kind: ``"linear"``, ``"conv"`` or ``"transposed"`` (a transposed convolution or
            transformers' ``Conv1D``, whose weight is ``(in, out, ...)``: neuron, channel and N:M
            leave it dense); other modules by dimension, 2-D weights are linear.
        shape: the weight's shape (output dimension first).
        start: offset of its first weight in the flat vector.
        output: whether its rows are the model's outputs (:func:`pruning_limits.objective.output_weight`);
            ``None`` (a layout made by hand): the last layer of the layout is taken to be.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    start: int
    output: bool | None = None

    @property
    def size(self) -> int:
        """Number of weights."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def rows(self) -> int:
        """Output rows (Linear) or output channels (convolution); 1 for a scalar."""
        return int(self.shape[0]) if self.shape else 1

    @property
    def fan_in(self) -> int:
        """Weights per row: the input size (``in_channels × kernel`` for a convolution)."""
        return int(np.prod(self.shape[1:], dtype=np.int64))


def _is_hf_conv1d(module: nn.Module, attr: str, param: torch.Tensor) -> bool:
    """Whether ``param`` is the weight of transformers' ``Conv1D`` (GPT-2's attention and MLP):
    stored ``(in_features, out_features)`` (``nf`` outputs) and computing ``x @ W``, a Linear's
    transpose."""
    return (
        type(module).__name__ == "Conv1D" and attr == "weight" and param.dim() == 2
        and isinstance(getattr(module, "nf", None), int) and int(param.shape[1]) == module.nf
    )


def layer_layout(model: nn.Module) -> list[Layer]:
    """The :class:`Layer` of every prunable weight, in the flat order.

    The output layer is the model's, not the selection's: the last Linear or convolution weight
    its forward uses (:func:`pruning_limits.objective.output_weight`), or the last selected tensor of a model
    without one; with ``--params`` that leave it out, no selected layer is the output.
    """
    layers, start = [], 0
    outputs = output_weight(model)
    output_tensor = None
    if outputs is not None:  # by the tensor too: an output weight shared with an earlier layer is that layer's
        module_name, _, attr = outputs.rpartition(".")
        owner = model.get_submodule(module_name) if module_name else model
        output_tensor = getattr(owner, f"{attr}_orig", None)
        output_tensor = getattr(owner, attr) if output_tensor is None else output_tensor
    for param_name, param in prunable_parameters(model):
        module_name, _, attr = param_name.rpartition(".")
        attr = attr.removesuffix("_orig")
        module = model.get_submodule(module_name) if module_name else model
        if isinstance(module, nn.Linear):
            kind = "linear"
        elif isinstance(module, _CONV):
            kind = "conv"
        elif isinstance(module, nn.modules.conv._ConvTransposeNd) or _is_hf_conv1d(module, attr, param):
            kind = "transposed"  # (in, out, ...): its rows are inputs; structures leave it dense
        else:
            kind = "linear" if param.dim() == 2 else "conv"
        name = f"{module_name}.{attr}" if module_name else attr
        layers.append(Layer(name, kind, tuple(int(d) for d in param.shape), start, name == outputs or param is output_tensor))
        start += param.numel()
    if outputs is None and layers:
        layers[-1] = dataclasses.replace(layers[-1], output=True)
    return layers


def effective_weights(model: nn.Module) -> np.ndarray:
    """The effective prunable weights (``module.weight``, pruned entries as zeros), float64."""
    parts = []
    for layer in layer_layout(model):
        module_name, _, attr = layer.name.rpartition(".")
        module = model.get_submodule(module_name) if module_name else model
        parts.append(getattr(module, attr).detach().reshape(-1).to("cpu", torch.float64))
    return torch.cat(parts).numpy()


@dataclass(frozen=True, eq=False)
class StructuredOrder:
    """The nested removal order of a structure on given weights.

    Attributes:
        structure: the structure.
        order: int64 permutation of ``0..D-1``; the first ``m`` entries are the pruned weights
            of the order's point with ``m`` pruned.
        allowed: ascending int64 numbers of pruned weights at which that point is allowed
            (0 first; the pattern ``N:M`` at ``pattern_count``).
        covered: number of weights the structure can prune (``D`` minus the dense layers).
        dense_layers: ``(name, size)`` of the layers left dense: those the structure does not apply to
            and, for ``neuron``/``channel`` without ``+outputs``, the output layer.
        pattern_count: for ``N:M`` the number of pruned weights of the pattern, else ``None``.
    """

    structure: Structure
    order: np.ndarray
    allowed: np.ndarray
    covered: int
    dense_layers: tuple[tuple[str, int], ...]
    pattern_count: int | None = None

    @property
    def dim(self) -> int:
        """``D``."""
        return int(self.order.size)

    @property
    def dense_share(self) -> float:
        """Fraction of the prunable weights in layers the structure leaves dense."""
        return 1.0 - self.covered / self.dim

    @property
    def max_sparsity(self) -> float:
        """The largest allowed sparsity (for ``N:M``, the pattern's: ``pattern_count / dim``)."""
        if self.pattern_count is not None:
            return self.pattern_count / self.dim
        return float(self.allowed[-1]) / self.dim

    def allowed_at_most(self, count: int) -> int:
        """The largest allowed number of pruned weights ``≤ count``."""
        return int(self.allowed[np.searchsorted(self.allowed, count, side="right") - 1])

    def allowed_at_least(self, count: int) -> int:
        """The smallest allowed number of pruned weights ``≥ count``.

        Raises:
            PruningLimitsError: ``count`` exceeds what the structure can prune.
        """
        i = int(np.searchsorted(self.allowed, count, side="left"))
        if i == self.allowed.size:
            most = int(self.allowed[-1])
            raise PruningLimitsError(
                f"structure {self.structure} can prune at most {most} of {self.dim} weights, asked for {count}"
                f"{self._dense_note()}: use a sparsity of at most {_floor_digits(most / self.dim):g}"
            )
        return int(self.allowed[i])

    def _dense_note(self) -> str:
        if not self.dense_layers:
            return ""
        names = [name for name, _ in self.dense_layers]
        return f" ({', '.join(names)} {'is' if len(names) == 1 else 'are'} left dense)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (without the order).

        ``allowed_points`` counts the allowed points and ``max_sparsity`` is the largest one's
        sparsity. A curve structure's points include the dense one (0 pruned); an ``N:M``
        pattern has one, the pattern at ``pattern_sparsity`` (the ends of the order's other
        rounds are not the pattern).
        """
        return {
            "structure": self.structure.name,
            "dim": self.dim,
            "covered": self.covered,
            "dense_layers": [{"name": n, "size": s} for n, s in self.dense_layers],
            "dense_share": self.dense_share,
            "max_sparsity": self.max_sparsity,
            "allowed_points": 1 if self.pattern_count is not None else int(self.allowed.size),
            "pattern_count": self.pattern_count,
            "pattern_sparsity": None if self.pattern_count is None else self.pattern_count / self.dim,
        }


def _floor_digits(value: float, digits: int = 4) -> float:
    """``value > 0`` rounded *down* to ``digits`` significant digits (a sparsity one may ask for)."""
    scale = 10.0 ** (digits - 1 - math.floor(math.log10(value)))
    return math.floor(value * scale) / scale


def structured_order(weights: Any, layout: list[Layer], structure: Any) -> StructuredOrder:
    """The nested removal order of ``structure`` on flat ``weights`` laid out as ``layout``.

    Args:
        weights: flat array of the ``D`` prunable weights.
        layout: the layers of the flat vector (:func:`layer_layout`), covering it in order.
        structure: a spec or :class:`Structure` (:func:`parse_structure`).

    Returns:
        :class:`StructuredOrder`.

    Raises:
        PruningLimitsError: no layer the structure applies to, or a layout that does not fit.
    """
    structure = parse_structure(structure)
    flat = np.asarray(weights, dtype=np.float64).ravel()
    if sum(layer.size for layer in layout) != flat.size or any(
        a.start + a.size != b.start for a, b in zip(layout[:-1], layout[1:])
    ) or (layout and layout[0].start != 0):
        raise PruningLimitsError(f"layout of {len(layout)} layers does not cover {flat.size} weights in order")
    dim = flat.size
    magnitude = np.abs(flat)
    if structure.kind == "unstructured":
        return StructuredOrder(structure, np.argsort(magnitude, kind="stable").astype(np.int64), index_all(dim), dim, ())
    if structure.kind == "layerwise":
        fraction = np.empty(dim, dtype=np.float64)
        layer_id = np.empty(dim, dtype=np.int64)
        for i, layer in enumerate(layout):
            part = slice(layer.start, layer.start + layer.size)
            ranks = np.empty(layer.size, dtype=np.int64)
            ranks[np.argsort(magnitude[part], kind="stable")] = np.arange(layer.size)
            fraction[part] = (ranks + 1) / layer.size
            layer_id[part] = i
        order = np.lexsort((magnitude, layer_id, fraction)).astype(np.int64)
        return StructuredOrder(structure, order, index_all(dim), dim, ())
    if structure.kind in ("neuron", "channel"):
        kinds = ("linear",) if structure.kind == "neuron" else ("linear", "conv")
        hand_made = all(layer.output is None for layer in layout)
        outputs = {layout[-1].name} if hand_made and layout else {layer.name for layer in layout if layer.output}

        def rows_apply(layer: Layer) -> bool:
            # a 1-D tensor (a bias, a norm scale under --params all) has no rows of inputs
            return layer.kind in kinds and len(layer.shape) >= 2 and (structure.outputs or layer.name not in outputs)

        return _group_order(structure, flat, layout, rows_apply, _row_groups)
    return _group_order(
        structure, flat, layout,
        lambda layer: layer.kind != "transposed" and _run_length(layer, structure) % structure.m == 0, _run_groups,
    )


def index_all(dim: int) -> np.ndarray:
    """Every count ``0..D`` (the allowed counts of a structure that allows them all)."""
    return np.arange(dim + 1, dtype=np.int64)


def _row_groups(layer: Layer, structure: Structure) -> np.ndarray:
    """Group label of every weight of ``layer``: its output row."""
    return np.repeat(np.arange(layer.rows, dtype=np.int64), layer.fan_in)


def _run_length(layer: Layer, structure: Structure) -> int:
    """The length the ``N:M`` runs tile: the fan-in, or ``in_channels`` of a convolution for ``+cl``."""
    if structure.channels_last and layer.kind == "conv" and len(layer.shape) > 2:
        return int(layer.shape[1])
    return layer.fan_in


def _run_groups(layer: Layer, structure: Structure) -> np.ndarray:
    """Group label of every weight of ``layer``: its run of ``M`` inputs of a row.

    Runs are ``M`` consecutive entries of the flattened row, or for ``+cl`` on a convolution
    ``M`` consecutive input channels at one kernel position (the ``(out, kh, kw, in)`` layout).
    """
    if _run_length(layer, structure) == layer.fan_in:
        return np.arange(layer.size, dtype=np.int64) // structure.m
    out, channels = int(layer.shape[0]), int(layer.shape[1])
    kernel = layer.size // (out * channels)
    o, c, k = np.meshgrid(np.arange(out), np.arange(channels), np.arange(kernel), indexing="ij")
    runs = channels // structure.m
    return ((o * kernel + k) * runs + c // structure.m).reshape(-1).astype(np.int64)


def _group_order(structure: Structure, flat: np.ndarray, layout: list[Layer], applies, labels) -> StructuredOrder:
    dim = flat.size

    def covers(layer: Layer) -> bool:  # a zero-size tensor (nn.Linear(0, 8)) has no group to remove: dense
        return layer.size > 0 and applies(layer)

    covered_layers = [layer for layer in layout if covers(layer)]
    if not covered_layers:
        outputs = "" if structure.outputs else f" besides the output layer (its rows are the outputs; {structure.kind}{OUTPUTS} prunes them)"
        what = {
            "neuron": f"an nn.Linear layer or other 2-D weight{outputs}",
            "channel": f"an nn.Linear, convolution or other weight of 2 or more dimensions{outputs}",
        }.get(
            structure.kind,
            f"a layer whose input size ({'in_channels' if structure.channels_last else 'in_channels x kernel'} "
            f"for a convolution) is a multiple of {structure.m}",
        )
        shapes = ", ".join(f"{layer.name} {list(layer.shape)}" for layer in layout)
        raise PruningLimitsError(f"structure {structure} needs {what}; the model's prunable weights are {shapes}")
    group = np.full(dim, -1, dtype=np.int64)
    next_group = 0
    for layer in covered_layers:
        part = labels(layer, structure)
        group[layer.start : layer.start + layer.size] = part + next_group
        next_group += int(part.max()) + 1
    covered_mask = group >= 0
    magnitude = np.abs(flat)
    with np.errstate(over="ignore"):  # |w| above 1.3e154: an infinite group score (ties broken by index);
        squares = flat**2  # the predictions refuse such weights in one line (distance_curve)
    index = np.arange(dim, dtype=np.int64)
    dense_layers = tuple((layer.name, layer.size) for layer in layout if not covers(layer))
    covered = int(covered_mask.sum())
    cov_index = index[covered_mask]
    cov_group = group[covered_mask]
    if structure.kind == "n:m":
        # rank inside the run by |w| (ties by index); round r removes every run's rank-r weight
        by_run = np.lexsort((cov_index, magnitude[cov_index], cov_group))
        rank = np.empty(covered, dtype=np.int64)
        rank[by_run] = np.arange(covered) % structure.m  # runs are contiguous blocks of M in by_run
        cov_order = cov_index[np.lexsort((cov_index, magnitude[cov_index], rank))]
        per_round = covered // structure.m
        allowed = per_round * np.arange(structure.m + 1, dtype=np.int64)
        pattern = per_round * (structure.m - structure.n)
    else:
        sizes = np.bincount(cov_group)
        score = np.bincount(cov_group, weights=squares[cov_index]) / sizes  # squared norm per weight
        group_rank = np.empty(sizes.size, dtype=np.int64)
        group_rank[np.lexsort((np.arange(sizes.size), score))] = np.arange(sizes.size)
        cov_order = cov_index[np.lexsort((cov_index, magnitude[cov_index], group_rank[cov_group]))]
        allowed = np.concatenate([[0], np.cumsum(sizes[np.argsort(group_rank)])]).astype(np.int64)
        pattern = None
    dense_index = index[~covered_mask]
    dense_order = dense_index[np.argsort(magnitude[dense_index], kind="stable")]
    order = np.concatenate([cov_order, dense_order]).astype(np.int64)
    return StructuredOrder(structure, order, allowed, covered, dense_layers, pattern)


def model_order(model: nn.Module, structure: Any = "unstructured") -> StructuredOrder:
    """:func:`structured_order` of ``model``'s effective prunable weights."""
    return structured_order(effective_weights(model), layer_layout(model), structure)


def distance_curve(weights: Any, order: np.ndarray) -> np.ndarray:
    """``R_k² = ‖w* − w^k‖²`` for ``k = 0..D`` kept weights along a removal order (THEORY §3).

    ``w^k`` keeps the last ``k`` entries of ``order``; float64 cumulative sums of the squared
    weights, so the curve is non-increasing in ``k`` also in floating point, ``R_D² = 0``.

    Raises:
        PruningLimitsError: finite weights whose ``Σ w²`` overflows float64, in the one line of
            :func:`pruning_limits.limits.magnitude_distance_curve` (rescale them), without numpy's
            overflow warning.
    """
    from .limits import refuse_overflowing_squares

    flat = np.asarray(weights, dtype=np.float64).ravel()
    with np.errstate(over="ignore"):  # an overflow is refused below, in one line
        pruned = np.concatenate([[0.0], np.cumsum(flat[order] ** 2)])
    if np.isfinite(flat).all():  # NaN or inf weights: refused by the caller's checks, as before
        refuse_overflowing_squares(float(pruned[-1]), flat)
    return pruned[::-1].copy()


def keep_mask(dim: int, order: np.ndarray, num_pruned: int) -> np.ndarray:
    """Flat bool mask (True = kept) pruning the first ``num_pruned`` entries of ``order``."""
    keep = np.ones(dim, dtype=bool)
    keep[order[:num_pruned]] = False
    return keep


def allowed_count(plan: StructuredOrder, num_pruned: int | None) -> int:
    """The allowed number of pruned weights a request maps to.

    ``N:M`` takes no amount (``None``): the pattern. Other structures take the smallest allowed
    count ``≥ num_pruned`` (whole groups for ``neuron``/``channel``, as
    ``torch.nn.utils.prune.ln_structured`` prunes whole channels).
    """
    if plan.structure.is_pattern:
        if num_pruned is not None:
            raise PruningLimitsError(
                f"structure {plan.structure} fixes the sparsity at 1 - {plan.structure.n}/{plan.structure.m}: "
                "give no amount (--sparsity) with it"
            )
        return int(plan.pattern_count)  # type: ignore[arg-type]
    if num_pruned is None:
        raise PruningLimitsError(f"structure {plan.structure} needs an amount to prune (a count or a fraction)")
    return plan.allowed_at_least(int(num_pruned))


# ---------------------------------------------------------------------------------------------
# Predicted limits of a structure (the calculator of pruning_limits.limits on its R(s))
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatternPrediction:
    """The prediction for an ``N:M`` pattern, whose sparsity is fixed (THEORY §8).

    Attributes:
        structure: the pattern (``"2:4"``).
        sparsity: the sparsity the pattern reaches over all ``D`` weights (``1 − N/M`` of the
            covered weights; the dense layers keep all theirs).
        density: ``1 − sparsity``.
        pruned: number of pruned weights.
        dim: ``D``.
        epsilon: the loss tolerance ε the feasibility refers to.
        eta: failure probability of the kinematic interval.
        feasible: ``sparsity ≤ δ(R; ε − c)/D`` (and ``ε > c``): the prediction says yes.
        feasible_interval: the same test with ``δ/D − a_η/√D`` and ``δ/D + a_η/√D``: yes at the
            pessimistic end, yes at the optimistic end.
        delta_fraction: ``δ(R; ε − c)/D`` (0 when ``ε ≤ c``).
        needed_epsilon: the smallest ε for which the prediction says yes: ``c + ε₀`` with
            ``δ(R; ε₀)/D = sparsity`` (``δ`` grows with ε); ``inf`` if none.
        needed_epsilon_interval: the same with ``δ/D ± a_η/√D`` (optimistic end first).
        probe_needed_epsilons: ``needed_epsilon`` on each SLQ probe alone.
        distance: ``R``, the distance from ``w*`` to the pattern's point.
        first_order_cost: ``c`` at the pattern (0 without the gradient term).
        gradient_term: whether ``c`` was subtracted.
        margin: ``a_η/√D``.
        dense_layers: ``(name, size)`` of the layers left dense.
        dense_share: their share of the prunable weights.
        spectrum: :meth:`Spectrum.summary` of the spectrum used.
        seconds: wall-clock time (the whole :func:`pruning_limits.pipeline.predict_limit` where
            it came from there; 0 from :func:`predict_structured` alone).
    """

    structure: str
    sparsity: float
    density: float
    pruned: int
    dim: int
    epsilon: float
    eta: float
    feasible: bool
    feasible_interval: tuple[bool, bool]
    delta_fraction: float
    needed_epsilon: float
    needed_epsilon_interval: tuple[float, float]
    probe_needed_epsilons: tuple[float, ...]
    distance: float
    first_order_cost: float
    gradient_term: bool
    margin: float
    dense_layers: tuple[tuple[str, int], ...]
    dense_share: float
    spectrum: dict[str, Any]
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record (``interval`` is ``None``: the uncertainty is in ε here)."""
        from ._jsonable import to_jsonable

        return to_jsonable(
            {
                "structure": self.structure,
                "sparsity": self.sparsity,
                "density": self.density,
                "interval": None,
                "pruned": self.pruned,
                "dim": self.dim,
                "epsilon": self.epsilon,
                "eta": self.eta,
                "feasible": self.feasible,
                "feasible_interval": list(self.feasible_interval),
                "delta_fraction": self.delta_fraction,
                "needed_epsilon": self.needed_epsilon,
                "needed_epsilon_interval": list(self.needed_epsilon_interval),
                "probe_needed_epsilons": list(self.probe_needed_epsilons),
                "distance": self.distance,
                "first_order_cost": self.first_order_cost,
                "gradient_term": self.gradient_term,
                "margin": self.margin,
                "dense_layers": [{"name": n, "size": s} for n, s in self.dense_layers],
                "dense_share": self.dense_share,
                "spectrum": self.spectrum,
                "seconds": self.seconds,
            }
        )


def needed_epsilon(
    nodes: np.ndarray, weights: np.ndarray, sparsity: float, squared_distance: float, *, cost: float = 0.0, offset: float = 0.0
) -> float:
    """Smallest ε with ``sparsity ≤ clip(δ(R; ε − c)/D + offset, 0, 1)`` (THEORY §8).

    ``δ(R; ε₀)/D = ∫ 2ε₀/(2ε₀ + |λ|R²) dμ`` grows with ε₀ from the mass at λ = 0 (ε₀ → 0) to 1,
    so the set of feasible ε is ``(c + ε₀*, ∞)`` or ``[c + ε₀*, ∞)``; this returns its lower end
    ``c + ε₀*`` (bisection on ``log ε₀`` to a relative 1e-12), ``max(c, 0)`` when every ``ε > c``
    works, and ``inf`` when none does.
    """
    target = sparsity - offset
    if target <= 0.0:
        return max(cost, 0.0)
    if target >= 1.0:  # δ/D = 1 only where every direction with weight has |λ|R² = 0
        flat = bool(np.all((weights == 0) | (np.abs(nodes) * squared_distance == 0)))
        return max(cost, 0.0) if flat and target == 1.0 else math.inf

    def enough(eps0: float) -> bool:
        return share_reached(sparsity, delta_fraction(nodes, weights, eps0, squared_distance) + offset)

    high = 1.0
    while not enough(high):
        high *= 2.0**16
        if high > 1e300:
            return math.inf
    low = high
    while enough(low):
        low /= 2.0**16
        if low < 1e-300:
            return max(cost, 0.0)
    while high / low - 1.0 > 1e-12:
        mid = math.sqrt(low * high)
        if enough(mid):
            high = mid
        else:
            low = mid
    return cost + high


def pattern_cost(weights: Any, gradient: Any, plan: StructuredOrder) -> float:
    """First-order cost ``c = max(0, −Σ_{i pruned} g_i w_i)`` of an ``N:M`` pattern's own step.

    The pattern is one step from ``w*``; the rounds of the removal order before it are partial
    patterns in no meaningful order, so their costs do not enter (unlike the running maximum
    of :func:`~pruning_limits.limits.first_order_curve`). The maximum with 0 (the cost at
    ``w*``) never credits a first-order loss decrease, as for the curves.
    """
    w = np.asarray(weights, dtype=np.float64).ravel()
    g = np.asarray(gradient, dtype=np.float64).ravel()
    if g.shape != w.shape:
        raise PruningLimitsError(f"gradient must have one entry per weight ({w.size}), got shape {g.shape}")
    if not np.isfinite(g).all():
        raise PruningLimitsError("gradient contains NaN or infinite values")
    step = plan.order[: int(plan.pattern_count)]  # type: ignore[arg-type]
    return max(0.0, float(-np.sum(g[step] * w[step])))


def structured_estimator(
    weights: Any, epsilons: Any, plan: StructuredOrder, *, gradient: Any = None
) -> Any:
    """``spectrum -> values`` that an adaptive SLQ stop watches for a structure (``pruning_limits.adaptive``).

    For unstructured, ``layerwise``, ``neuron`` and ``channel``: ``s*`` at each ε on the
    structure's distance curve, before :func:`predict_structured` moves it down to an allowed
    point. The allowed points of ``neuron``/``channel`` lie a whole group apart, so the moved
    value jumps by a group whenever ``s*`` crosses a group's end and would not settle to a
    fraction of a group; the value it is moved from settles, and the move is exact. For ``N:M``:
    ``δ(R; ε − c)/D`` at the pattern's sparsity, the number the pattern's feasibility compares
    with that sparsity (0 where ``ε ≤ c``).

    Args:
        weights: flat prunable weights.
        epsilons: the ε values (> 0).
        plan: :func:`structured_order` of these weights.
        gradient: data-loss gradient (the gradient term), or ``None``.
    """
    from .limits import sparsity_estimator

    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.size != plan.dim:
        raise PruningLimitsError(f"weights ({w.size}) and structure order ({plan.dim}) differ in length")
    eps_values = [float(e) for e in np.atleast_1d(np.asarray(epsilons, dtype=np.float64))]
    if plan.structure.kind == "unstructured":
        return sparsity_estimator(w, eps_values, gradient=gradient)
    r2 = distance_curve(w, plan.order)
    if not plan.structure.is_pattern:
        return sparsity_estimator(w, eps_values, gradient=gradient, criterion=r2, order=plan.order, allowed=plan.allowed)
    kept = plan.dim - int(plan.pattern_count)  # type: ignore[arg-type]
    cost = 0.0 if gradient is None else pattern_cost(w, gradient, plan)

    def estimate(spectrum: Any) -> tuple[float, ...]:
        return tuple(delta_fraction(spectrum.nodes, spectrum.weights, e - cost, float(r2[kept])) for e in eps_values)

    return estimate


def predict_structured(
    weights: Any,
    spectrum: Any,
    epsilon: float,
    plan: StructuredOrder,
    *,
    eta: float | None = None,
    gradient: Any = None,
) -> Any:
    """The predicted limit of a structure from a spectrum: pure maths, no model.

    Curve structures (``unstructured``, ``layerwise``, ``neuron``, ``channel``) go through
    :func:`pruning_limits.limits.predict_from_spectrum` with the structure's ``R_k²`` curve
    (and its first-order cost along the same order when ``gradient`` is given, a running maximum
    over the structure's allowed counts only). ``N:M`` uses the cost of its own step
    (:func:`pattern_cost`). ``δ(R(s))/D − s``
    decreases along the order, so the largest feasible *allowed* point is the largest allowed
    sparsity not above the curve's ``s*``: ``s*``, the interval ends, the per-probe values and
    the trace bound are moved down to allowed points (whole groups for ``neuron``/``channel``).
    ``N:M`` gives a :class:`PatternPrediction`.

    Args:
        weights: flat prunable weights (length ``spectrum.dim``).
        spectrum: the Hessian's spectral measure.
        epsilon: ε > 0.
        plan: :func:`structured_order` of these weights.
        eta: failure probability of the kinematic interval (default ``limits.DEFAULT_ETA``).
        gradient: data-loss gradient at the weights (the gradient term), or ``None``.

    Returns:
        :class:`~pruning_limits.limits.Prediction` (``criterion`` is the structure's name,
        ``"magnitude"`` for unstructured) or :class:`PatternPrediction`.
    """
    from dataclasses import replace

    from .geometry import kinematic_margin
    from .limits import DEFAULT_ETA, first_order_curve, knee_steepness, predict_from_spectrum

    eta = DEFAULT_ETA if eta is None else eta
    if not isinstance(plan, StructuredOrder):
        raise PruningLimitsError(f"plan must be a StructuredOrder (structured_order, model_order), got {describe(plan)}")
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.size != plan.dim:
        raise PruningLimitsError(f"weights ({w.size}) and structure order ({plan.dim}) differ in length")
    structure = plan.structure
    if structure.kind == "unstructured":
        return predict_from_spectrum(w, spectrum, epsilon, eta=eta, gradient=gradient)
    r2 = distance_curve(w, plan.order)
    if structure.is_pattern:
        prediction = predict_from_spectrum(w, spectrum, epsilon, eta=eta)  # checks the inputs
        dim = plan.dim
        pruned = int(plan.pattern_count)  # type: ignore[arg-type]
        kept = dim - pruned
        cost = 0.0 if gradient is None else pattern_cost(w, gradient, plan)
        sparsity = pruned / dim
        margin = kinematic_margin(prediction.eta) / math.sqrt(dim)
        nodes, quad = spectrum.nodes, spectrum.weights
        eps = prediction.epsilon
        frac = delta_fraction(nodes, quad, eps - cost, float(r2[kept]))

        def yes(offset: float) -> bool:
            return eps > cost and share_reached(sparsity, frac + offset)

        def need(offset: float, rows: slice = slice(None)) -> float:
            return needed_epsilon(nodes[rows], quad[rows], sparsity, float(r2[kept]), cost=cost, offset=offset)

        return PatternPrediction(
            structure=structure.name,
            sparsity=sparsity,
            density=kept / dim,
            pruned=pruned,
            dim=dim,
            epsilon=eps,
            eta=prediction.eta,
            feasible=yes(0.0),
            feasible_interval=(yes(-margin), yes(+margin)),
            delta_fraction=frac,
            needed_epsilon=need(0.0),
            needed_epsilon_interval=(need(+margin), need(-margin)),
            probe_needed_epsilons=tuple(need(0.0, slice(j, j + 1)) for j in range(nodes.shape[0])),
            distance=math.sqrt(float(r2[kept])),
            first_order_cost=cost,
            gradient_term=gradient is not None,
            margin=margin,
            dense_layers=plan.dense_layers,
            dense_share=plan.dense_share,
            spectrum=spectrum.summary(),
        )
    prediction = predict_from_spectrum(
        w, spectrum, epsilon, eta=eta, criterion=r2, gradient=gradient, order=plan.order, allowed=plan.allowed
    )
    dim = plan.dim

    def down(sparsity: float) -> float:
        pruned = int(round(sparsity * dim))
        return plan.allowed_at_most(pruned) / dim

    sparsity = down(prediction.sparsity)
    kept = dim - int(round(sparsity * dim))
    probes = tuple(down(s) for s in prediction.probe_sparsities)
    cost = 0.0 if gradient is None else float(first_order_curve(w, gradient, plan.order, plan.allowed)[kept])
    return replace(
        prediction,
        criterion=structure.name,
        sparsity=sparsity,
        density=kept / dim,
        kept=kept,
        interval=(down(prediction.interval[0]), down(prediction.interval[1])),
        distance=math.sqrt(float(r2[kept])),
        probe_sparsities=probes,
        probe_spread=float(np.std(probes, ddof=1)) if len(probes) > 1 else float("nan"),
        trace_bound=down(prediction.trace_bound),
        first_order_cost=cost,
        first_order_limit=down(prediction.first_order_limit),
        knee_steepness=knee_steepness(r2, sparsity),
    )
