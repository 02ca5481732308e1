"""The analysed objective: prunable weights, data batches, the loss and the default ε.

Conventions follow Zhang et al., "How Sparse Can We Prune A Deep Network" (NeurIPS 2024),
section 3: the prunable weights are the ``weight`` tensors of ``nn.Linear`` and
``nn.Conv1d/2d/3d``, here also the input projections of ``nn.MultiheadAttention``; biases,
embeddings and normalisation parameters are neither pruned nor counted unless chosen
(:func:`prunable_parameters`, :func:`select_parameters`). The loss is the mean per-example
training loss over the analysis data.

Model outputs (:func:`logits`): a tensor is used as it is; otherwise the ``"logits"`` entry of
a dict, the ``.logits`` attribute of an object (a Hugging Face ``ModelOutput``), or the first
element of a tuple or list. Every loss, the default or a given one, receives that tensor.
Integer inputs (int64 token indices, or any other integer dtype) are never cast to the model's
floating dtype: the data loader (:func:`pruning_limits.data.load_data`) makes non-int64 integer
inputs float32, but data passed to the API goes to the model as it is.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor, fx, nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    WeightedRandomSampler,
)
from torch.utils.data.distributed import DistributedSampler

from ._autograd import with_gradients
from ._checks import PruningLimitsError, check_int, describe, error_line, message_line, reraise_interrupt

LossFn = Callable[[Tensor, Tensor], Tensor]
Data = Union[DataLoader, Dataset, "tuple[Tensor, Tensor]"]
ParamSpec = Union[str, Sequence[str]]

PRUNABLE_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
#: Prunable input projections of ``nn.MultiheadAttention`` (packed, or separate when kdim/vdim differ).
ATTENTION_WEIGHTS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")

_SELECTION_ATTR = "_pruning_limits_params"

#: Batch size of the default ε (the official code's mini-batch size for its loss statistics).
EPSILON_BATCH_SIZE = 128


def _is_candidate_layer_weight(module: nn.Module, attr: str) -> bool:
    return isinstance(getattr(module, attr, None), nn.Parameter)


def _reparametrization(module: nn.Module, attr: str) -> tuple[str, str] | None:
    """How ``module.attr`` is computed from other parameters, as ``(what, what to do)``; ``None``
    for a plain parameter or a ``torch.nn.utils.prune`` mask (``*_orig``, analysed folded:
    :func:`model_copy`).

    Recognised: ``torch.nn.utils.parametrize`` (``parametrizations.weight_norm``,
    ``spectral_norm``, ``orthogonal`` and ``register_parametrization``) and the legacy hooks
    ``torch.nn.utils.weight_norm`` (``weight_g``, ``weight_v``) and ``spectral_norm``
    (``weight_orig``). A weight norm can only be removed: torch's fused ``_weight_norm``
    (torch 2.13, CPU) has a wrong second derivative (on a 5×4 weight its Hessian over ``g`` and
    ``v`` was asymmetric by 0.70 and 0.73 off that of ``g·v/‖v‖`` in the largest entry), so its
    ``g`` and ``v`` cannot be analysed.
    """
    from torch.nn.utils import parametrizations, parametrize
    from torch.nn.utils.spectral_norm import SpectralNorm
    from torch.nn.utils.weight_norm import WeightNorm

    params = "or choose the underlying parameters with --params / params="
    if parametrize.is_parametrized(module, attr):
        kinds = list(module.parametrizations[attr])
        fused = any(isinstance(p, getattr(parametrizations, "_WeightNorm", ())) for p in kinds)
        remove = f"remove it first (torch.nn.utils.parametrize.remove_parametrizations(module, {attr!r}))"
        names = ", ".join(type(p).__name__ for p in kinds)
        return f"a parametrization ({names})", remove if fused else f"{remove} {params}"
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, WeightNorm) and hook.name == attr:
            return "torch.nn.utils.weight_norm", "remove it first (torch.nn.utils.remove_weight_norm(module))"
        if isinstance(hook, SpectralNorm) and hook.name == attr:
            return "torch.nn.utils.spectral_norm", f"remove it first (torch.nn.utils.remove_spectral_norm(module)) {params}"
    return None


def _default_prunable(model: nn.Module, refuse_reparametrized: bool = True) -> list[str]:
    """Names of the default prunable weights in module order (``*_orig`` after torch pruning).

    Raises:
        PruningLimitsError: a layer weight computed by a parametrization or a weight-norm or
            spectral-norm hook (with ``refuse_reparametrized``; otherwise it is listed under
            its base name, ``0.weight``): it is no parameter of its own, and was silently left
            out of ``D`` (or raised a raw ``KeyError``) before 2026-12-05.
    """
    selected = []
    for module_name, module in model.named_modules():
        if isinstance(module, PRUNABLE_LAYERS):
            attrs: tuple[str, ...] = ("weight",)
        elif isinstance(module, nn.MultiheadAttention):
            attrs = ATTENTION_WEIGHTS
        else:
            continue
        for base in attrs:
            how = _reparametrization(module, base)
            if how is not None:
                if not refuse_reparametrized:  # named as the layer's weight (output_weight's use)
                    selected.append(f"{module_name}.{base}" if module_name else base)
                    continue
                prefix = f"{module_name}." if module_name else ""
                own = [prefix + name for name, _ in module.named_parameters() if base in name]
                raise PruningLimitsError(
                    f"expected plain weight tensors in the default selection, got {type(module).__name__} "
                    f"'{module_name or type(module).__name__}' whose {base} is computed by {how[0]} from "
                    f"{', '.join(own[:4])}: {how[1]}"
                )
            attr = f"{base}_orig" if hasattr(module, f"{base}_orig") else base
            if _is_candidate_layer_weight(module, attr):
                selected.append(f"{module_name}.{attr}" if module_name else attr)
    return selected


def output_weight(model: nn.Module) -> str | None:
    """Name of the weight whose rows are the model's outputs (``weight``, not ``weight_orig``),
    whatever weights are selected; ``None`` when the model has no Linear, convolution or
    attention weight.

    That is the last default prunable weight the forward uses on the way to its logits (the
    output, or the first element of a tuple, the ``"logits"`` entry of a dict: :func:`logits`),
    in the order of its ``torch.fx`` symbolic trace (no data needed): a head registered before
    the body it follows is still the output, and a second head returned after the logits is not.
    Where the forward does not trace (control flow on tensor values, TorchScript, most Hugging
    Face models), the last one in module order.
    """
    _check_module(model)
    names = _default_prunable(model, refuse_reparametrized=False)
    if not names:
        return None
    return _base_name(_last_used(model, names) or names[-1])


def _last_used(model: nn.Module, names: list[str]) -> str | None:
    """The last of ``names`` (default prunable weights) that ``model``'s traced forward uses to
    compute its logits, as a leaf module's call or as a weight read by name; ``None`` where the
    forward does not trace or its logits use none of them."""
    by_module = {name.rpartition(".")[0]: name for name in names}  # a module's last weight
    by_weight = {name: name for name in names} | {_base_name(name): name for name in names}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = fx.Tracer().trace(model)
    except Exception as err:  # noqa: BLE001 - whatever a forward does on proxies: not traceable
        reraise_interrupt(err)
        return None
    result = next((node.args[0] for node in graph.nodes if node.op == "output"), None)
    fields = getattr(result.target, "_fields", None) if isinstance(result, fx.Node) and result.op == "call_function" else None
    if isinstance(fields, tuple) and fields:  # a namedtuple built in forward: .logits, else its first field
        name = "logits" if "logits" in fields else fields[0]
        position = fields.index(name)
        result = result.kwargs[name] if name in result.kwargs else result.args[position] if position < len(result.args) else None
    elif isinstance(result, (tuple, list)) and result:  # the rule of logits(): a tuple's first element
        result = result[0]
    elif isinstance(result, dict):
        result = result.get("logits")
    if not isinstance(result, fx.Node):
        return None
    needed: set[fx.Node] = set()  # the nodes the logits are computed from

    def add(start: fx.Node) -> None:
        pending = [start]
        while pending:
            node = pending.pop()
            if node not in needed:
                needed.add(node)
                pending.extend(node.all_input_nodes)

    add(result)
    order = {node: i for i, node in enumerate(graph.nodes)}
    writes = [node for node in graph.nodes if _writes_in_place(node) and node.args and isinstance(node.args[0], fx.Node)]
    grown = True
    while grown:  # a write into a tensor the logits read afterwards (out.add_(head(h)), through a view too) is needed too
        grown = False
        for node in writes:
            if node in needed:
                continue
            written = _view_base(node.args[0])
            read_later = written is _view_base(result) or any(
                order[user] > order[node] and any(_view_base(i) is written for i in user.all_input_nodes) for user in needed
            )
            if read_later:
                add(node)
                grown = True
    last = None
    for node in graph.nodes:
        if node not in needed:
            continue
        if node.op == "call_module" and node.target in by_module:
            last = by_module[node.target]
        elif node.op == "get_attr" and node.target in by_weight:
            last = by_weight[node.target]
    return last


def _call_name(node: fx.Node) -> str:
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "") if node.op == "call_function" else ""
    return name if isinstance(name, str) else ""


def _writes_in_place(node: fx.Node) -> bool:
    """Whether a traced call writes into its first argument: ``x.add_(…)``, ``torch.relu_(x)``
    (``x[i] = …`` does not trace: such a forward keeps module order)."""
    name = _call_name(node)
    return name.endswith("_") and not name.startswith("_")


#: Calls whose result shares its first argument's memory: a write into it is a write into that.
_VIEWS = frozenset({"view", "view_as", "reshape", "narrow", "transpose", "permute", "squeeze", "unsqueeze", "flatten",
                    "expand", "t", "getitem", "select", "unflatten"})


def _view_base(node: fx.Node) -> fx.Node:
    """The tensor ``node`` is a view of, through view-like calls (itself otherwise)."""
    while _call_name(node) in _VIEWS and node.args and isinstance(node.args[0], fx.Node):
        node = node.args[0]
    return node


def _base_name(name: str) -> str:
    """``"0.weight"`` for ``"0.weight_orig"`` (the name torch.nn.utils.prune gives a pruned weight)."""
    return name[: -len("_orig")] if name.endswith("_orig") else name


def _split_patterns(params: str | Sequence[str]) -> list[str]:
    if not isinstance(params, (str, list, tuple)):
        raise PruningLimitsError(
            f"params must be 'prunable', 'all', or parameter names and glob patterns, got {describe(params)}"
        )
    items = [params] if isinstance(params, str) else list(params)
    patterns = []
    for item in items:
        if not isinstance(item, str):
            raise PruningLimitsError(f"parameter names and patterns must be strings, got {describe(item)}")
        patterns += [part.strip() for part in item.split(",") if part.strip()]
    return patterns


def _select_by_patterns(model: nn.Module, patterns: list[str]) -> list[str]:
    """Parameter names chosen by names and glob patterns (rule in :func:`prunable_parameters`).

    Every name of a shared (tied) parameter selects it: the name the default selection lists
    for a head tied to an embedding (``head.weight``) was refused until 2026-12-06, as
    ``named_parameters()`` gives each tensor under its first name only.
    """
    named = dict(model.named_parameters(remove_duplicate=False))
    by_base = {_base_name(name): name for name in named}
    chosen: set[str] = set()
    for pattern in patterns:
        if pattern in named or pattern in by_base:  # a full name: that parameter, whatever its kind
            chosen.add(pattern if pattern in named else by_base[pattern])
            continue
        if not any(char in pattern for char in "*?["):
            shown = list(by_base)
            more = f", ... ({len(shown)} in all)" if len(shown) > 8 else ""
            raise PruningLimitsError(
                f"unknown parameter names [{pattern!r}]; the model has {', '.join(shown[:8])}{more} "
                "(or give a glob pattern such as 'encoder.*weight')"
            )
        matches = [
            name for name, p in named.items()
            if p.ndim >= 2 and (fnmatch.fnmatchcase(_base_name(name), pattern) or fnmatch.fnmatchcase(name, pattern))
        ]
        if not matches:
            shown = [_base_name(n) for n, p in named.items() if p.ndim >= 2]
            more = f", ... ({len(shown)} in all)" if len(shown) > 8 else ""
            raise PruningLimitsError(
                f"parameter pattern {pattern!r} matches no parameter with at least two dimensions; "
                f"they are {', '.join(shown[:8])}{more}"
            )
        chosen.update(matches)
    return [name for name in named if name in chosen]


def select_parameters(model: nn.Module, params: ParamSpec | None) -> nn.Module:
    """Make ``params`` the model's prunable weights for every later step, and return the model.

    The selection is stored on the model (and kept by ``copy.deepcopy``, ``.to()`` and bundles
    written by :func:`pruning_limits.checkpoint.save_bundle`), so the Hessian, the weights, the
    masks, the sweeps, the l1 penalty of training, ``prune`` and ``predict`` all work on the
    same tensors. ``None`` or ``"prunable"`` restores the default selection.

    Args:
        model: the network.
        params: names and glob patterns as for :func:`prunable_parameters` (a string may hold
            several, separated by commas), ``"all"``, ``"prunable"`` or ``None``.

    Raises:
        PruningLimitsError: a pattern that matches nothing, or an unknown name.
    """
    if params is None or (isinstance(params, str) and params == "prunable"):
        if hasattr(model, _SELECTION_ATTR):
            delattr(model, _SELECTION_ATTR)
        return model
    patterns = ["all"] if isinstance(params, str) and params == "all" else _split_patterns(params)
    if not patterns:
        raise PruningLimitsError(f"params selects nothing: give parameter names or glob patterns, got {describe(params)}")
    if patterns != ["all"]:
        _select_by_patterns(model, patterns)  # check now: errors at selection, not later
    setattr(model, _SELECTION_ATTR, tuple(patterns))
    return model


def parameter_selection(model: nn.Module) -> list[str] | None:
    """The names and patterns :func:`select_parameters` stored on ``model`` (``None``: the default)."""
    stored = getattr(model, _SELECTION_ATTR, None)
    return None if stored is None else list(stored)


def prunable_parameters(model: nn.Module, params: ParamSpec = "prunable") -> list[tuple[str, nn.Parameter]]:
    """Select the parameters the analysis works on, in a fixed order.

    What is prunable by default (Zhang et al. 2024, §3, extended to attention): the ``weight``
    of every ``nn.Linear`` and ``nn.Conv1d/2d/3d`` (the output projection of attention is an
    ``nn.Linear``) and the input projections of every ``nn.MultiheadAttention``
    (``in_proj_weight``, or ``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight`` when the
    key and value sizes differ). Biases, embeddings and normalisation layers are not.
    ``weight_orig`` stands for ``weight`` when ``torch.nn.utils.prune`` re-parametrised it.

    Args:
        model: the network.
        params: ``"prunable"`` (the default above, or the selection stored on the model by
            :func:`select_parameters`), ``"all"`` (every parameter), or parameter names and
            glob patterns (a list, or one string with commas). A full parameter name selects
            that parameter whatever it is (``"embed.weight"``, ``"0.bias"``); a pattern with
            ``*``, ``?`` or ``[...]`` (:mod:`fnmatch`, ``*`` also matches dots) selects the
            parameters with at least two dimensions whose name matches (weight matrices,
            kernels, attention projections and embeddings, not biases or norm scales), e.g.
            ``"encoder.*weight"``. Parameters keep the model's order.

    Returns:
        ``(name, parameter)`` pairs, shared parameters listed once.

    Raises:
        PruningLimitsError: no parameter selected, or a name or pattern that selects nothing.
    """
    _check_module(model)
    # every name, a shared (tied) parameter's too: the default selection walks the modules and
    # meets it under each; it is kept once below, under its first name (named_parameters' own)
    named = dict(model.named_parameters(remove_duplicate=False))
    if isinstance(params, str) and params == "prunable":
        stored = parameter_selection(model)
        if stored is not None:
            return prunable_parameters(model, stored if stored != ["all"] else "all")
        selected = _default_prunable(model)
        if not selected:
            raise PruningLimitsError(
                f"model {type(model).__name__} has no prunable weights: expected nn.Linear, "
                "nn.Conv1d/2d/3d or nn.MultiheadAttention layers (or choose parameters with --params)"
            )
    elif isinstance(params, str) and params == "all":
        selected = list(named)
    else:
        patterns = _split_patterns(params)
        if not patterns:
            raise PruningLimitsError(f"params selects nothing: give parameter names or glob patterns, got {describe(params)}")
        selected = _select_by_patterns(model, patterns)
    if not selected:
        raise PruningLimitsError("no parameters selected: the model has no parameters")
    seen: set[int] = set()
    result = []
    for name in selected:
        param = named.get(name)
        if param is None:  # a tensor attribute that is no parameter of the model's (never a KeyError)
            raise PruningLimitsError(
                f"expected parameters of the model, got {name!r}, which is not one of its named_parameters(): "
                "choose parameters with --params / params="
            )
        if id(param) not in seen:
            seen.add(id(param))
            result.append((name, param))
    normed = _weight_norm_parameters(model)
    chosen = [name for name, param in result if id(param) in normed]
    if chosen:
        raise PruningLimitsError(
            f"expected parameters with an exact second derivative, got {chosen[0]!r}, a weight norm's g or v (torch's "
            "fused _weight_norm has a wrong one): remove the weight norm first, or leave its parameters out of --params"
        )
    return result


def _weight_norm_parameters(model: nn.Module) -> set[int]:
    """``id`` of every parameter a weight norm computes a weight from (its ``g`` and ``v``; see
    :func:`_reparametrization` for why they cannot be analysed)."""
    from torch.nn.utils import parametrizations, parametrize
    from torch.nn.utils.weight_norm import WeightNorm

    fused = getattr(parametrizations, "_WeightNorm", ())
    found: set[int] = set()
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for plist in module.parametrizations.values():
                if any(isinstance(p, fused) for p in plist):
                    found.update(id(p) for p in plist.parameters(recurse=False))
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, WeightNorm):
                found.update(id(getattr(module, hook.name + suffix)) for suffix in ("_g", "_v"))
    return found


def pruning_masks(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(module, tensor name)`` of every ``torch.nn.utils.prune`` re-parametrisation of ``model``."""
    from torch.nn.utils import prune

    return [
        (module, hook._tensor_name) for module in model.modules()
        for hook in module._forward_pre_hooks.values() if isinstance(hook, prune.BasePruningMethod)
    ]


def fold_pruning(model: nn.Module) -> nn.Module:
    """Fold every ``torch.nn.utils.prune`` mask into its weight (``prune.remove``), in place."""
    from torch.nn.utils import prune

    for module, name in pruning_masks(model):
        prune.remove(module, name)
    return model


def model_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` for analysis, with any ``torch.nn.utils.prune`` masks folded in.

    A pruned module's ``weight`` is computed (``weight_orig * weight_mask``), a tensor
    ``copy.deepcopy`` refuses; the copy holds the effective weights, zeros included, as plain
    parameters, so its weights and its Hessian are those of the network that runs (on
    ``weight_orig`` the weights would be the unpruned ones and the Hessian masked). ``model``
    itself is left as it was.
    """
    computed = pruning_masks(model)
    if not computed:
        return _deepcopy(model)
    saved = [(module, name, module.__dict__[name]) for module, name in computed if name in module.__dict__]
    try:
        for module, name, value in saved:
            module.__dict__[name] = value.detach()
        copied = _deepcopy(model)
    finally:
        for module, name, value in saved:
            module.__dict__[name] = value
    if parameter_selection(model) is not None:  # names such as 'weight_orig' are gone once folded:
        # the same tensors, named as the copy names them
        setattr(copied, _SELECTION_ATTR, tuple(_base_name(name) for name, _ in prunable_parameters(model)))
    _untie_unlike_masks(copied)
    return fold_pruning(copied)


def _parameter_uses(model: nn.Module) -> dict[int, list[tuple[nn.Module, str, Tensor | None]]]:
    """``id(parameter)`` -> ``(module, weight name, mask or None)`` of every module that reads it.

    The weight name is the one the module computes (``weight``, not ``weight_orig``, where
    ``torch.nn.utils.prune`` re-parametrised it; the mask is then its ``weight_mask``).
    """
    pruned = {(id(module), name) for module, name in pruning_masks(model)}
    uses: dict[int, list[tuple[nn.Module, str, Tensor | None]]] = {}
    for module in model.modules():
        for attr, param in module._parameters.items():
            if param is None:
                continue
            base = attr.removesuffix("_orig")
            if base != attr and (id(module), base) in pruned:
                uses.setdefault(id(param), []).append((module, base, module._buffers[f"{base}_mask"]))
            else:
                uses.setdefault(id(param), []).append((module, attr, None))
    return uses


def _untie_unlike_masks(model: nn.Module) -> None:
    """Give each masked use of a shared tensor its own copy, in place, unless every use is masked alike.

    ``torch.nn.utils.prune`` may mask one use of a tensor (a head tied to an embedding: the head
    computes ``weight_orig * weight_mask``, the embedding reads ``weight_orig``), and
    ``prune.remove`` writes the product into the shared tensor, which would prune the other use
    too (until 2026-12-06 the analysed copy of such a model was another network than the one that
    runs; a review). Masked alike in every use (:func:`~pruning_limits.masks.prune_model`), the
    tie stays: folding writes the same product for every use.
    """
    for group in _parameter_uses(model).values():
        masks = [mask for _, _, mask in group]
        if len(group) < 2 or all(mask is None for mask in masks):
            continue
        if all(mask is not None and torch.equal(mask, masks[0]) for mask in masks):
            continue  # folding writes the same product for every use: the tie stays
        for module, attr, mask in group:
            if mask is not None:
                orig = module._parameters[f"{attr}_orig"]
                module._parameters[f"{attr}_orig"] = nn.Parameter(orig.detach().clone(), requires_grad=orig.requires_grad)


def _deepcopy(model: nn.Module) -> nn.Module:
    """``copy.deepcopy(model)``, or one line where torch refuses (a legacy weight norm's computed
    ``weight`` after a forward pass: "Only Tensors created explicitly by the user ...")."""
    try:
        return copy.deepcopy(model)
    except RuntimeError as err:
        reraise_interrupt(err)
        first = message_line(err).split(". ")[0]
        raise PruningLimitsError(
            f"expected a model that copy.deepcopy can copy (the analysis works on a copy), got RuntimeError: {first[:200]}"
        ) from None


def selection_summary(model: nn.Module, params: ParamSpec = "prunable") -> dict[str, Any]:
    """Which tensors are analysed and pruned, and how many weights: a JSON-serialisable record."""
    selected = prunable_parameters(model, params)
    if isinstance(params, str) and params == "prunable":
        stored = parameter_selection(model)
        selection = "default" if stored is None else ",".join(stored)
    else:
        selection = params if isinstance(params, str) else ",".join(params)
    return {
        "selection": selection,
        "tensors": {_base_name(name): int(p.numel()) for name, p in selected},
        "weights": int(sum(p.numel() for _, p in selected)),
    }


def prunable_dim(model: nn.Module, params: ParamSpec = "prunable") -> int:
    """``D``: the number of weights :func:`prunable_parameters` selects."""
    return sum(p.numel() for _, p in prunable_parameters(model, params))


def flat_weights(model: nn.Module, params: ParamSpec = "prunable") -> np.ndarray:
    """The selected weights as one float64 numpy vector (the order of :func:`prunable_parameters`)."""
    tensors = [p.detach().reshape(-1).to("cpu", torch.float64) for _, p in prunable_parameters(model, params)]
    return torch.cat(tensors).numpy()


def flat_running_weights(model: nn.Module) -> np.ndarray:
    """The selected weights as the network runs them, one float64 vector: ``flat_weights(model_copy(model))``
    without the copy.

    A ``torch.nn.utils.prune`` re-parametrised weight is read as ``weight_orig * weight_mask`` of
    its own module (:func:`_parameter_uses`), computed here on the CPU in float64, which equals
    the folded float32 product converted (a 0/1 mask multiplies exactly); not ``module.weight``,
    which is the product of the last forward pass or prune call, stale after a ``load_state_dict``.
    Without masks it is :func:`flat_weights`. The selection is the model's
    (:func:`prunable_parameters`, a stored ``--params`` selection included). A tensor shared by
    uses masked unlike (prune applied to one of them) is read from :func:`model_copy`, which gives
    each masked use its own tensor: the one case this still copies.

    ``validate --structure`` and ``predict --plot`` count the zeros ``s₀`` of the network here;
    they deep-copied the whole model for it, on its device (a review).
    """
    if not pruning_masks(model):
        return flat_weights(model)
    selected = prunable_parameters(model)
    uses = _parameter_uses(model)
    parts = []
    for name, param in selected:
        group = uses.get(id(param), [])
        masks = [mask for _, _, mask in group]
        masked_alike = all(mask is not None and torch.equal(mask, masks[0]) for mask in masks)
        if len(group) > 1 and any(mask is not None for mask in masks) and not masked_alike:
            return flat_weights(model_copy(model))  # untied there: _untie_unlike_masks
        module_name, _, attr = name.rpartition(".")
        module = model.get_submodule(module_name) if module_name else model
        base = attr.removesuffix("_orig")
        mask = next((mask for user, user_attr, mask in group if user is module and user_attr == base), None)
        weight = param.detach().reshape(-1).to("cpu", torch.float64)
        if mask is not None:
            weight = weight * mask.detach().reshape(-1).to("cpu", torch.float64)
        parts.append(weight)
    return torch.cat(parts).numpy()


def model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the model's first parameter (CPU/float32 without any).

    Raises:
        PruningLimitsError: not an ``nn.Module``, or parameters on the ``meta`` device (no values).
    """
    _check_module(model)
    for param in model.parameters():
        if param.is_meta:
            raise PruningLimitsError("the model's parameters are on the meta device (shapes without values): load its weights first")
        return param.device, param.dtype
    return torch.device("cpu"), torch.float32


def _check_module(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise PruningLimitsError(f"model must be a torch.nn.Module, got {describe(model)}")


def _to_tensor(array: Any, name: str) -> Tensor:
    if isinstance(array, Tensor):
        return array
    if isinstance(array, np.ndarray):
        return torch.from_numpy(array)
    raise PruningLimitsError(f"{name} must be a torch.Tensor or numpy array, got {describe(array)}")


#: Elements :func:`check_pair` tests for NaN and infinity at a time: ``torch.isfinite`` of the whole
#: tensor made a bool copy of it (30 MB for 10 000 CIFAR images); a chunk's is at most this many
#: bytes, or one sample's where a sample is larger.
FINITE_CHECK_ELEMENTS = 2**22


def _all_finite(tensor: Tensor) -> bool:
    """Whether a floating tensor holds no NaN or infinity, read in chunks of whole samples of at
    most :data:`FINITE_CHECK_ELEMENTS` elements (one sample where a sample holds more)."""
    per_sample = max(1, tensor[0].numel()) if tensor.ndim else 1
    rows = max(1, FINITE_CHECK_ELEMENTS // per_sample)
    return all(bool(torch.isfinite(part).all()) for part in tensor.split(rows))


def check_pair(x: Any, y: Any) -> tuple[Tensor, Tensor]:
    """Validate an ``(inputs, targets)`` pair: tensors, same non-zero length, finite inputs
    (tested in chunks: :data:`FINITE_CHECK_ELEMENTS`)."""
    x, y = _to_tensor(x, "inputs"), _to_tensor(y, "targets")
    if x.is_inference() or y.is_inference():  # made under torch.inference_mode(): autograd cannot save them
        with torch.inference_mode(False):
            x, y = x.clone(), y.clone()
    if x.ndim == 0 or y.ndim == 0:
        raise PruningLimitsError(
            f"inputs and targets need a leading sample dimension, got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if len(x) != len(y):
        raise PruningLimitsError(f"inputs and targets differ in length: {len(x)} inputs, {len(y)} targets")
    if len(x) == 0:
        raise PruningLimitsError("the data set is empty: expected at least one sample")
    if x.is_floating_point() and not _all_finite(x):
        raise PruningLimitsError("inputs contain NaN or infinite values")
    if y.is_floating_point() and not _all_finite(y):
        raise PruningLimitsError("targets contain NaN or infinite values")
    return x, y


def iter_batches(data: Data, batch_size: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(inputs, targets)`` batches from a DataLoader, a Dataset or an ``(x, y)`` pair.

    A DataLoader stands for its dataset, read at its batch size with its collate function: one
    whose plain batch sampler shuffles, samples or drops its last batch is read as
    :func:`loader_over` its dataset, every sample once, in order (a loader that drops a shuffled
    last batch would analyse a different loss in every pass, and one process a different loss
    from shards under torchrun), or the part of it a sampler's ``indices`` pick
    (:func:`loader_dataset`); a custom batch sampler is taken as it is.
    A Dataset, an IterableDataset too, is batched in order with ``batch_size`` (default 128); an
    ``(x, y)`` pair is split into chunks of ``batch_size`` (default: one batch with all samples).
    """
    if batch_size is not None:  # -5 gave NaN losses silently, 0 a range() error
        batch_size = check_int("batch_size", batch_size, 1)
    if isinstance(data, DataLoader):
        source: Any = data if _reads_every_sample_in_order(data) else loader_over(data, loader_dataset(data))
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = check_pair(*data)
        step = len(x) if batch_size is None else batch_size
        for start in range(0, len(x), step):
            yield x[start : start + step], y[start : start + step]
        return
    elif isinstance(data, IterableDataset):  # no len(): an empty one is found by counting its batches
        source = DataLoader(data, batch_size=batch_size or EPSILON_BATCH_SIZE)
    elif isinstance(data, Dataset) or (
        hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, (str, bytes, dict))
    ):
        if len(data) == 0:
            raise PruningLimitsError("the data set is empty: expected at least one sample")
        source = DataLoader(data, batch_size=batch_size or EPSILON_BATCH_SIZE, shuffle=False)
    else:
        raise PruningLimitsError(
            f"data must be a DataLoader, a Dataset or an (inputs, targets) pair, got {describe_data(data)}"
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


def describe_data(data: Any) -> str:
    """:func:`describe` of data a function refuses; a ``DataBundle`` (whose repr ran into its tensors)
    is told to pass its training pair."""
    if type(data).__name__ == "DataBundle" and hasattr(data, "train"):  # by name: data.py imports this module
        return "a DataBundle: pass bundle.train, its (x, y) training pair"
    return describe(data)


def loader_dataset(loader: DataLoader) -> Any:
    """The samples a DataLoader stands for: its dataset, or the part of it its sampler draws from.

    A sampler with a finite ``indices`` sequence (``SubsetRandomSampler``, which a loader over a
    training split of a larger dataset uses) stands for ``Subset(dataset, sorted(indices))``, read
    in order. A ``SequentialSampler``, the random samplers (``RandomSampler``,
    ``WeightedRandomSampler``: shuffling and random draws, of any count, are not used, as
    documented since 2026-12-05) and a ``DistributedSampler`` (torchrun's shards are the library's
    own) stand for the whole dataset, as does any other sampler that draws as many samples per
    pass as the dataset holds; another sampler that draws another number is refused. A loader over an ``IterableDataset``
    or with a custom batch sampler (taken as it is) gives its dataset.

    Raises:
        PruningLimitsError: indices outside the dataset, or another sampler that draws another
            number of samples per pass than the dataset holds (naming both counts).
    """
    dataset = loader.dataset
    if isinstance(dataset, IterableDataset) or type(loader.batch_sampler) is not BatchSampler:
        return dataset
    sampler = loader.batch_sampler.sampler
    indices = getattr(sampler, "indices", None)
    if isinstance(indices, (Sequence, Tensor, np.ndarray)) and not isinstance(indices, (str, bytes)):
        picked = sorted(int(i) for i in indices)
        if picked and (picked[0] < 0 or picked[-1] >= len(dataset)):
            raise PruningLimitsError(
                f"the DataLoader's sampler ({type(sampler).__name__}) has indices from {picked[0]} to {picked[-1]}, "
                f"expected indices in [0, {len(dataset)}) of its dataset"
            )
        from torch.utils.data import Subset

        return Subset(dataset, picked)
    if not isinstance(sampler, (SequentialSampler, RandomSampler, WeightedRandomSampler, DistributedSampler)):
        try:
            drawn = len(sampler)  # type: ignore[arg-type]
        except TypeError:  # no length: nothing to compare
            return dataset
        if drawn != len(dataset):
            raise PruningLimitsError(
                f"the DataLoader's sampler ({type(sampler).__name__}) draws {drawn} samples per pass from a dataset of "
                f"{len(dataset)}, expected all of them: the analysis reads every sample once, in order; give a Subset "
                "of the samples to analyse, or a sampler with an indices sequence"
            )
    return dataset


def loader_over(loader: DataLoader, dataset: Any) -> DataLoader:
    """A DataLoader over ``dataset`` (``loader``'s, a subset or a shard of it) that batches it as ``loader`` does.

    Kept: the batch size (a ``batch_sampler``'s own when the loader has none), the collate
    function, the workers and pinned memory. Not kept: the sampler, shuffling and ``drop_last``:
    the analysis reads every sample of ``dataset`` once, in order.
    """
    batch_size = loader.batch_size or getattr(loader.batch_sampler, "batch_size", None) or EPSILON_BATCH_SIZE
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=False, collate_fn=loader.collate_fn,
        num_workers=loader.num_workers, pin_memory=loader.pin_memory,
    )


def _reads_every_sample_in_order(loader: DataLoader) -> bool:
    """Whether ``loader`` is read as it is: every loader but one whose plain ``BatchSampler``
    shuffles, samples or drops its last batch. An iterable dataset, one whose items are batches
    already (``batch_size=None``) and a custom batch sampler (bucketing by length, whose collate
    needs its batches) are taken as they are."""
    if isinstance(loader.dataset, IterableDataset) or type(loader.batch_sampler) is not BatchSampler:
        return True
    return isinstance(loader.sampler, SequentialSampler) and not loader.batch_sampler.drop_last


def logits(output: Any) -> Tensor:
    """The tensor the loss sees from a model's ``output`` (the rule of the module docstring).

    Raises:
        PruningLimitsError: no usable tensor (e.g. a dict without ``"logits"``, a string).
    """
    if isinstance(output, Tensor):
        return output
    if isinstance(output, Mapping):
        if isinstance(output.get("logits"), Tensor):
            return output["logits"]
        raise PruningLimitsError(
            f"the model returns a {type(output).__name__} without a 'logits' tensor (keys {list(output)[:6]}): "
            "return a tensor, a tuple whose first element is the logits, or a dict with 'logits'"
        )
    if isinstance(getattr(output, "logits", None), Tensor):
        return output.logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    raise PruningLimitsError(
        f"the model returns {describe(output)}, which has no usable logits: return a tensor, a tuple whose "
        "first element is the logits, a dict with 'logits', or an object with a .logits tensor"
    )


def on_logits(loss_fn: LossFn) -> LossFn:
    """``loss_fn`` applied to :func:`logits` of the model's output (idempotent)."""
    if getattr(loss_fn, "_on_logits", False):
        return loss_fn

    def loss(output: Any, target: Tensor) -> Tensor:
        return loss_fn(logits(output), target)

    loss._on_logits = True  # type: ignore[attr-defined]
    loss.__doc__ = getattr(loss_fn, "__doc__", None)
    loss.__name__ = getattr(loss_fn, "__name__", "loss")
    return loss


def default_loss_fn(targets: Tensor) -> LossFn:
    """Cross-entropy for integer targets, mean squared error otherwise (both mean-reduced).

    The squared error takes targets of the output's shape; targets with as many values per
    sample in another shape (``(N,)`` against a model's ``(N, 1)``) are reshaped to it, where
    ``mse_loss`` would broadcast them into an ``(N, N)`` difference with only a warning.
    """
    if targets.is_floating_point():
        return _squared_error
    return nn.functional.cross_entropy


def _squared_error(output: Tensor, target: Tensor) -> Tensor:
    if output.shape != target.shape:
        if output.numel() != target.numel():
            raise PruningLimitsError(
                f"the model returns shape {tuple(output.shape)} for targets of shape {tuple(target.shape)}: "
                "expected one output per target value"
            )
        target = target.reshape(output.shape)
    return nn.functional.mse_loss(output, target)


def resolve_loss_fn(loss_fn: LossFn | None, data: Data) -> LossFn:
    """``loss_fn``, or the default for the targets of the first batch of ``data``, on :func:`logits`."""
    if loss_fn is not None:
        if not callable(loss_fn):
            raise PruningLimitsError(f"loss_fn must be a callable (outputs, targets) -> scalar, got {describe(loss_fn)}")
        return on_logits(loss_fn)
    _, targets = next(iter_batches(data))
    return on_logits(default_loss_fn(targets))


def on_model(tensor: Tensor, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``tensor`` on the model's device, floating tensors in its dtype (labels and tokens keep theirs)."""
    return tensor.to(device, dtype) if tensor.is_floating_point() else tensor.to(device)


def check_model_takes_data(model: nn.Module, data: Data, loss_fn: LossFn | None = None) -> LossFn:
    """One forward pass and loss on two samples of the first batch, to name in one line a model
    that does not take the data, a loss that is no scalar, (for an ``(x, y)`` pair) class
    labels beyond the model's logits, or outputs that mix the samples of a batch, before any
    work (a raw torch error deep in the first product, or a Hessian that depends on the
    chunking, otherwise). Also refused, as their Hessian too depends on the chunking: targets
    of the first batch equal to the loss's ``ignore_index`` (:func:`check_no_ignored_targets`)
    and a loss that is not the mean of per-sample losses (:func:`_check_per_sample_mean`, on
    :data:`LOSS_CHECK_SAMPLES` samples).

    Returns:
        The loss the data are analysed with (:func:`resolve_loss_fn`).

    Raises:
        PruningLimitsError: as above; not a :class:`torch.nn.Module`.
    """
    _check_module(model)
    first_x, first_y = next(iter_batches(data))  # an (x, y) pair's first batch is all of it
    loss = resolve_loss_fn(loss_fn, (first_x[:1], first_y[:1]))
    x, y = first_x[:2], first_y[:2]
    device, dtype = model_device_dtype(model)
    x, y = on_model(x, device, dtype), on_model(y, device, dtype)
    try:
        with torch.no_grad(), eval_mode(model):
            output = logits(model(x))
            value = loss(output, y)
    except PruningLimitsError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever the model or the loss raise on these inputs
        reraise_interrupt(err)  # a Ctrl-C inside a scripted model comes back as a RuntimeError
        raise PruningLimitsError(
            f"the model and loss do not take the data (inputs {tuple(x.shape[1:])} {x.dtype} and targets "
            f"{tuple(y.shape[1:])} {y.dtype} per sample): {error_line(err)}"
        ) from None
    if not isinstance(value, Tensor) or value.numel() != 1:
        raise PruningLimitsError(
            f"the loss must return one number (a mean over the batch), got {describe(value) if not isinstance(value, Tensor) else f'a tensor of shape {tuple(value.shape)}'}"
        )
    _check_samples_independent(model, x, output)
    check_no_ignored_targets(first_y, loss_fn)
    _check_mean_reduction(loss_fn, first_y)
    _check_per_sample_mean(model, loss, loss_fn, *_first_samples(data, first_x, first_y))
    if loss_fn is None and isinstance(data, (tuple, list)) and not y.is_floating_point() and output.dim() == 2:
        # the default cross-entropy's classes (its ignore_index -100 was refused above)
        labels = first_y
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= output.shape[1]):
            raise PruningLimitsError(
                f"class labels must lie in [0, {output.shape[1]}) for a model with {output.shape[1]} logits, "
                f"got labels from {int(labels.min())} to {int(labels.max())}"
            )
    return loss


#: Samples of the first batch on which :func:`check_model_takes_data` compares the loss with
#: the mean of their single-sample losses: the first of each label (negative labels first)
#: where targets are class labels, so that class weights and an ignored label show, then the
#: first samples.
LOSS_CHECK_SAMPLES = 4


def ignore_index(loss_fn: LossFn | None, targets: Tensor) -> int | None:
    """The target value ``loss_fn`` leaves out of its mean, for integer ``targets``: ``-100`` for
    the default cross-entropy (``None``), ``F.cross_entropy`` and ``F.nll_loss`` (torch's
    default ``ignore_index``), a loss module's or a ``functools.partial``'s own ``ignore_index``,
    and ``-100`` for any other loss of integer targets (a function around ``F.cross_entropy``
    does not say; a review found token losses with -100 padding accepted); ``None`` for
    floating targets."""
    import functools

    if targets.is_floating_point():
        return None
    functional = (nn.functional.cross_entropy, nn.functional.nll_loss)
    if isinstance(loss_fn, functools.partial):
        if "ignore_index" in loss_fn.keywords:
            value = loss_fn.keywords["ignore_index"]
        else:
            value = -100 if loss_fn.func in functional else None
    elif loss_fn is None or loss_fn in functional:
        value = -100
    else:  # a loss that does not say (a lambda around F.cross_entropy): torch's default
        value = getattr(loss_fn, "ignore_index", -100)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def check_no_ignored_targets(targets: Tensor, loss_fn: LossFn | None) -> None:
    """Refuse integer targets equal to the loss's ``ignore_index`` (:func:`ignore_index`).

    The loss of a batch is then a mean over its counted samples only, while chunks are weighted
    by their sample count: the Hessian depends on how the data are chunked (54 % off on 37
    samples with a third labelled -100 and chunks of 20 and 17, before 2026-12-05).

    Raises:
        PruningLimitsError: as above.
    """
    index = ignore_index(loss_fn, targets)
    if index is None:
        return
    ignored = int((targets == index).sum())
    if ignored:
        raise PruningLimitsError(
            f"expected every target counted by the loss (chunks are weighted by their sample count), got {ignored} "
            f"of the {targets.numel()} targets of a batch equal to its ignore_index {index}: drop those samples from "
            "the analysis data"
        )


#: Batches :func:`_first_samples` reads at most to gather :data:`LOSS_CHECK_SAMPLES` samples.
LOSS_CHECK_BATCHES = 16


def _first_samples(data: Data, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """The first batch ``(x, y)``, joined with the next ones (of the same per-sample shapes, at most
    :data:`LOSS_CHECK_BATCHES`) until it holds :data:`LOSS_CHECK_SAMPLES` samples: a loader of
    batch size 1 left the per-sample-mean check one sample, and ``reduction='sum'`` passed."""
    if len(x) >= LOSS_CHECK_SAMPLES:
        return x, y
    xs, ys, count = [x], [y], len(x)
    for i, (bx, by) in enumerate(iter_batches(data)):
        if i == 0:
            continue
        if i >= LOSS_CHECK_BATCHES or bx.shape[1:] != x.shape[1:] or by.shape[1:] != y.shape[1:]:
            break
        xs.append(bx)
        ys.append(by)
        count += len(bx)
        if count >= LOSS_CHECK_SAMPLES:
            break
    return torch.cat(xs), torch.cat(ys)


def _check_mean_reduction(loss_fn: LossFn | None, targets: Tensor) -> None:
    """Refuse, by its settings, a loss module or ``functools.partial`` whose ``reduction`` is no
    mean (``'mean'``, or ``'batchmean'``, a mean over samples) or that weights classes (a
    ``weight`` tensor that is not constant, for integer targets): the numeric check sees only a
    few samples, which a class-sorted dataset gives of one class (a review's repro)."""
    reduction, weight = _loss_settings(loss_fn)
    if reduction not in ("mean", "batchmean") or (
        isinstance(weight, Tensor) and not targets.is_floating_point() and weight.numel() > 1
        and not bool((weight == weight.reshape(-1)[0]).all())
    ):
        raise PruningLimitsError(
            "expected a loss that is the mean of per-sample losses (chunks are weighted by their sample count: "
            f"reduction='mean', no class weights), got {_loss_name(loss_fn)}"
        )


def _loss_settings(loss_fn: LossFn | None) -> tuple[Any, Any]:
    """``(reduction, weight)`` of a loss: a ``functools.partial``'s keywords, else its attributes
    (a loss module's settings; ``("mean", None)`` for a function, whose settings cannot be read)."""
    import functools

    if isinstance(loss_fn, functools.partial):
        return loss_fn.keywords.get("reduction", "mean"), loss_fn.keywords.get("weight")
    return getattr(loss_fn, "reduction", "mean"), getattr(loss_fn, "weight", None)


def _loss_name(loss_fn: LossFn | None) -> str:
    """The loss for a message: its name, a non-mean reduction and class weights."""
    if loss_fn is None:
        return "the default loss"
    name = type(loss_fn).__name__ if isinstance(loss_fn, nn.Module) else getattr(loss_fn, "__name__", type(loss_fn).__name__)
    details = []
    reduction, weight = _loss_settings(loss_fn)
    if reduction != "mean":
        details.append(f"reduction={reduction!r}")
    if isinstance(weight, Tensor):
        values = [round(float(v), 4) for v in weight.reshape(-1)[:4]]
        details.append(f"weight={values}{'...' if weight.numel() > 4 else ''}")
    return f"{name}({', '.join(details)})" if details else name


def _check_per_sample_mean(model: nn.Module, loss: LossFn, loss_fn: LossFn | None, x: Tensor, y: Tensor) -> None:
    """Refuse a loss that is not the mean of per-sample losses.

    The engine weights each chunk's loss by its share of the samples (``len(x)/N``), as
    :func:`loss_gradient` and :func:`evaluate_loss` weight batches; that sum is the full-data
    loss only for a per-sample mean. A class-weighted cross-entropy, ``reduction='sum'`` or an
    ignored label gave a Hessian that moved with the memory budget (λ_max 0.6572 against 0.7376
    and 20.68 against 124.18 on one MLP, before 2026-12-05). The outputs of up to
    :data:`LOSS_CHECK_SAMPLES` samples are computed once and ``loss(outputs, targets)`` is
    compared with the mean of ``loss(outputs[i:i+1], targets[i:i+1])``, to ``sqrt(eps)`` of the
    loss's dtype (rounding of a mean is about ``eps``). Not checked where the outputs or the
    targets have no leading sample dimension, a loss takes no single sample, or the loss is not
    finite (named elsewhere).
    """
    index = torch.arange(len(x))
    if not y.is_floating_point() and y.dim() == 1:  # the first of each label, negative ones first
        # in torch, not a Python loop: an (x, y) pair's first batch is all of it (a million labels)
        values, inverse = torch.unique(y, return_inverse=True)
        firsts = torch.full((len(values),), len(y), dtype=torch.long)
        firsts = firsts.scatter_reduce(0, inverse.reshape(-1), torch.arange(len(y)), reduce="amin")
        chosen = [i for _, i in sorted(zip((values >= 0).tolist(), firsts.tolist()))][:LOSS_CHECK_SAMPLES]
        rest = [i for i in range(min(len(y), 2 * LOSS_CHECK_SAMPLES)) if i not in chosen]  # holds what is missing
        index = torch.tensor(sorted(chosen + rest[: LOSS_CHECK_SAMPLES - len(chosen)]))
    index = index[:LOSS_CHECK_SAMPLES]
    if len(index) < 2:
        return
    device, dtype = model_device_dtype(model)
    xs, ys = x[index], y[index]
    xs, ys = on_model(xs, device, dtype), on_model(ys, device, dtype)
    try:
        with torch.no_grad(), eval_mode(model):
            output = logits(model(xs))
            together = loss(output, ys)
            if not isinstance(output, Tensor) or output.dim() == 0 or len(output) != len(xs):
                return
            alone = torch.stack([loss(output[i : i + 1], ys[i : i + 1]).reshape(()) for i in range(len(xs))])
    except Exception as err:  # noqa: BLE001 - a loss that takes no single sample: not checked this way
        reraise_interrupt(err)
        return
    if not together.is_floating_point() or not bool(torch.isfinite(together).all()):
        return
    value, mean = float(together), float(alone.double().mean())
    scale = max(abs(value), float(alone.double().abs().mean()))
    tol = math.sqrt(torch.finfo(together.dtype).eps) * scale + torch.finfo(together.dtype).tiny
    if math.isfinite(mean) and abs(value - mean) <= tol:
        return
    raise PruningLimitsError(
        f"expected a loss that is the mean of per-sample losses (chunks are weighted by their sample count: "
        f"reduction='mean', no class weights), got {value:.6g} on {len(xs)} samples against {mean:.6g} for the "
        f"mean of their single-sample losses with {_loss_name(loss_fn)}"
    )


#: Relative difference (to the largest output) between a batch's outputs and each sample's alone
#: above which :func:`check_model_takes_data` calls a model batch-dependent. Far above rounding,
#: TF32 convolutions on a GPU included (about 1e-3 relative, and kernels may differ by batch
#: size); a batch statistic in eval mode moves the outputs by their own size.
BATCH_DEPENDENCE_TOLERANCE = 1e-2


def _check_samples_independent(model: nn.Module, x: Tensor, output: Tensor) -> None:
    """Refuse a model whose eval-mode output for one sample depends on the rest of its batch.

    The loss is then no mean of per-sample losses, and its Hessian depends on how the data are
    cut into batches and chunks (e.g. by the memory budget): a BatchNorm without running
    statistics uses the batch's statistics even in eval mode. Checked on ``x``'s first two
    samples against each alone, where the model takes a single sample.

    Best effort: a forward that depends on the batch in a way two samples do not show passes,
    e.g. Python code that branches on the batch size above two (``if len(x) > 4``); its Hessian
    then depends on ``memory_budget``, which sets the chunks.
    """
    batch_norms = [
        name or type(model).__name__
        for name, module in model.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is None
    ]
    if batch_norms:
        reason = f"module '{batch_norms[0]}' is a BatchNorm without running statistics; give it track_running_stats=True"
    elif _batch_changes_output(model, x, output):
        reason = "the first two samples give other outputs together than each alone"
    else:
        return
    raise PruningLimitsError(
        f"the model's output for one sample depends on the rest of its batch in eval mode ({reason}): "
        "the Hessian would depend on how the data are cut into batches"
    )


def _batch_changes_output(model: nn.Module, x: Tensor, output: Tensor) -> bool:
    """Whether ``model``'s outputs on the two samples of ``x`` differ from theirs alone
    (by more than :data:`BATCH_DEPENDENCE_TOLERANCE` of the largest output)."""
    if len(x) != 2 or not isinstance(output, Tensor) or not output.is_floating_point() or output.dim() == 0:
        return False
    if len(output) != 2:
        return False
    try:
        with torch.no_grad(), eval_mode(model):
            alone = [logits(model(x[i : i + 1])) for i in range(2)]
            again = logits(model(x))
    except Exception as err:  # noqa: BLE001 - a model that takes no batch of one: not checked this way
        reraise_interrupt(err)
        return False
    if not all(isinstance(a, Tensor) and a.shape == output[i : i + 1].shape for i, a in enumerate(alone)):
        return False
    scale = max(float(output.abs().max()), 1.0) if output.numel() else 1.0
    tol = BATCH_DEPENDENCE_TOLERANCE * scale

    def differs(a: Tensor) -> bool:
        return not isinstance(a, Tensor) or a.shape != output.shape or float((a - output).abs().max()) > tol

    # a random forward differs from itself: HessianOperator's determinism check names that
    return not differs(again) and differs(torch.cat(alone))


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
            x, y = on_model(x, device, dtype), on_model(y, device, dtype)
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
    losses, sizes = batch_losses(model, data, loss_fn, batch_size)
    if len(losses) < 2:
        raise PruningLimitsError(
            f"epsilon 'batch-std' needs at least two batches of {batch_size} samples, got {len(losses)} "
            f"batch{'' if len(losses) == 1 else 'es'} ({int(sizes.sum())} samples); give epsilon as a number (--epsilon X)"
        )
    if not np.isfinite(losses).all():
        raise PruningLimitsError(
            "epsilon 'batch-std': the loss is NaN or infinite on some batches; check the model's weights and the data"
        )
    eps = float(np.std(losses))
    if not eps > 0:
        raise PruningLimitsError("epsilon 'batch-std' is 0 (all batch losses equal); give epsilon as a number (--epsilon X)")
    return eps


@with_gradients
def loss_gradient(
    model: nn.Module,
    data: Data,
    loss_fn: LossFn | None = None,
    params: ParamSpec = "prunable",
    batch_size: int | None = EPSILON_BATCH_SIZE,
) -> np.ndarray:
    """Gradient of the mean per-example loss over all of ``data`` w.r.t. the selected parameters.

    Eval mode (as for the Hessian), batches weighted by their size; a float64 numpy vector in the
    order of :func:`flat_weights`. At an l1-regularised optimum this is ``−λ·sign(w)`` on the
    non-zero weights, the first-order term the quadratic model of Zhang et al. (2024) neglects.
    ``batch_size`` (default :data:`EPSILON_BATCH_SIZE`, 128: the batches ε is measured on, so the
    gradient's graph needs no more memory than a training step) splits an ``(x, y)`` pair or a
    Dataset; a DataLoader keeps its own. Until 2026-12-05 it was 1 024, and on the ResNet-18 of
    docs/benchmarks.md (1 000 CIFAR-shaped images) that one graph was the run's peak: 5.1 GiB,
    against 1.3 GiB with 128 (and 20 s instead of 25 s).
    """
    loss_fn = resolve_loss_fn(loss_fn, data)
    device, dtype = model_device_dtype(model)
    # leaves of their own (torch.func.functional_call): frozen weights (requires_grad=False) have
    # a gradient too, and the model's own parameters and flags are left alone
    leaves = {name: p.detach().requires_grad_(True) for name, p in prunable_parameters(model, params)}
    selected = list(leaves.values())
    total = [torch.zeros_like(p, dtype=torch.float64) for p in selected]
    count = 0
    with eval_mode(model):
        for x, y in iter_batches(data, batch_size):
            x, y = on_model(x, device, dtype), on_model(y, device, dtype)
            output = torch.func.functional_call(model, leaves, (x,))
            grads = torch.autograd.grad(loss_fn(output, y), selected, allow_unused=True)
            for acc, grad in zip(total, grads):
                if grad is not None:
                    acc += grad.detach().to(torch.float64) * len(x)
            count += len(x)
    return torch.cat([acc.reshape(-1) for acc in total]).cpu().numpy() / count
