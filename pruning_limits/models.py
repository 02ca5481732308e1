"""A small model zoo with readable specs; input and output sizes come from the data.

Model specs (``build_model``):

- ``mlp`` / ``mlp:W1,W2,...``: fully connected ReLU network with the given hidden widths
  (default ``64,32``: D = 6 464 prunable weights on digits, small enough for the exact-Hessian
  oracle, which is practical up to D ≈ 10 000). ``mlp:`` with no widths is not allowed; use
  ``mlp:0`` for a linear model (no hidden layer).
- ``fc:depth,width``: ``depth`` linear layers, ``depth - 1`` hidden layers of ``width`` units,
  in the style of the FC5/FC12 networks of Zhang et al. (2024, §6); ``fc5`` = ``fc:5,100`` and
  ``fc12`` = ``fc:12,100`` (width 100 instead of the paper's, to train on two CPU cores).
- ``cnn`` / ``cnn:C1,C2``: for small square images such as the 8×8 digits: two 3×3 Conv2d
  layers (padding 1, ReLU, default 8 and 16 channels), 2×2 max pooling, one linear layer.
  Accepts inputs of shape ``(C, H, W)``, ``(H, W)`` or ``(H·W,)`` with a square ``H·W``.
- ``cnn1d`` / ``cnn1d:C``: the MNIST-1D benchmark CNN of Greydanus (2020, the ``mnist1d``
  package's ``ConvBase``): three Conv1d layers (kernel 5/3/3, stride 2, padding 1, ReLU,
  ``C = 25`` channels) and a linear layer. Accepts ``(C, L)`` or ``(L,)`` inputs.
- ``resnet20`` / ``resnet20:W``: the CIFAR ResNet-20 of He et al. (2016, §4.2): a 3×3
  convolution with ``W`` channels (default 16), three stages of three basic blocks with
  ``W, 2W, 4W`` channels (stride 2 at the start of the second and third), BatchNorm after
  every convolution, identity shortcuts that subsample and pad channels with zeros (the
  paper's option A), global average pooling and one linear layer.
- ``resnet18`` / ``resnet18:W``: the ResNet-18 of torchvision (``torchvision.models.resnet18``:
  four stages of two basic blocks, ``W, 2W, 4W, 8W`` channels, default ``W = 64``, 1×1
  convolution + BatchNorm shortcuts where the shape changes, the same parameter names) with
  the 3×3 stride-1 stem and no max pooling used for 32×32 inputs (Kuang Liu's pytorch-cifar).
  Both ResNets accept ``(C, H, W)``, ``(H, W)`` or square ``(H·W,)`` inputs.
- ``transformer`` / ``transformer:D,L,H[,P]``: a small encoder-only classifier (default
  ``D = 32`` model width, ``L = 2`` layers, ``H = 4`` heads, patch ``P = 4``): tokens are
  embedded (``nn.Embedding`` for int64 token inputs, vocabulary size from the data), or
  formed from float inputs (``(L,)`` sequences cut into patches of ``P`` values, ``(T, F)``
  as ``T`` tokens of ``F`` features, ``(C, H, W)`` images cut into ``P×P`` patches) and
  projected by an ``nn.Linear``; a learned position embedding is added; pre-norm
  ``nn.TransformerEncoderLayer`` s (feed-forward width ``2D``, no dropout); mean over tokens,
  LayerNorm, one linear layer (the ViT recipe of Dosovitskiy et al. 2021, scaled down).
- ``package.module:factory`` or ``package.module:factory(key=literal, ...)`` (arguments
  parsed as literals, never evaluated: :mod:`pruning_limits.specs`): a user model, e.g.
  ``torchvision.models:resnet18(num_classes=10)``. ``factory(input_shape, num_outputs, **kwargs)``
  is called when the factory accepts those two positional arguments, ``factory(**kwargs)``
  otherwise; it must return an ``nn.Module``. The zoo's :func:`resnet20`, :func:`resnet18` and
  :func:`transformer` are such factories too (``pruning_limits.models:resnet18(num_classes=10)``),
  called with the spec's arguments alone: their sizes do not come from the data (the short
  specs ``resnet20:W`` and ``transformer:D,L,H`` take them from it). Filling them in from the
  data was tried on 2026-12-06 and withdrawn the same day: a bundle written before, whose
  stored spec left ``num_classes`` at its default 10, no longer loaded on 3-class data.

Every built model carries its :class:`ModelRecord` (``model_record(model)``) so that a
checkpoint can rebuild it with :func:`rebuild_model` before loading its ``state_dict``.
"""

from __future__ import annotations

import inspect
import math
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ._checks import PruningLimitsError, UserCodeError, describe, reraise_interrupt, too_large_for_memory
from .specs import looks_callable, parse_callable_spec

BUILTIN_MODELS = ("mlp", "fc", "fc5", "fc12", "cnn", "cnn1d", "resnet20", "resnet18", "transformer")

#: Hidden widths of ``mlp`` without options.
MLP_DEFAULT_WIDTHS = (64, 32)
#: Channels of ``cnn`` without options.
CNN_DEFAULT_CHANNELS = (8, 16)
#: Channels of ``cnn1d`` without options (``mnist1d`` package, ``ConvBase(channels=25)``).
CNN1D_DEFAULT_CHANNELS = 25
#: Width of ``fc5`` and ``fc12``.
FC_DEFAULT_WIDTH = 100
#: First-stage channels of ``resnet20`` (He et al. 2016, §4.2) and ``resnet18`` (torchvision).
RESNET20_DEFAULT_WIDTH = 16
RESNET18_DEFAULT_WIDTH = 64
#: ``transformer`` without options: model width, layers, heads, patch size.
TRANSFORMER_DEFAULTS = (32, 2, 4, 4)

_RECORD_ATTR = "_pruning_limits_record"


@dataclass(frozen=True)
class ModelRecord:
    """What is needed to rebuild a zoo model: its spec and the data sizes it was built for."""

    spec: str
    input_shape: tuple[int, ...]
    num_outputs: int
    vocab_size: int | None = None  # for int64 token inputs

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (``input_shape`` as a list; ``vocab_size`` only when set)."""
        record = asdict(self)
        record["input_shape"] = list(self.input_shape)
        if self.vocab_size is None:
            del record["vocab_size"]
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ModelRecord:
        """Inverse of :meth:`to_dict`."""
        try:
            vocab = record.get("vocab_size")
            return cls(
                str(record["spec"]),
                tuple(int(v) for v in record["input_shape"]),
                int(record["num_outputs"]),
                None if vocab is None else int(vocab),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise PruningLimitsError(
                f"a model record needs spec, input_shape and num_outputs, got {describe(record)} ({err})"
            ) from None


def _is_size(item: str, minimum: int) -> bool:
    """Whether ``item`` is ASCII digits of a value from ``minimum`` to 2**31 - 1 (int() reads "٣"
    as 3, but the record keeps the spec as typed; larger: no tensor has that size)."""
    return re.fullmatch(r"[0-9]+", item) is not None and minimum <= int(item) < 2**31


def _parse_ints(spec: str, text: str, minimum: int, what: str) -> list[int]:
    values = []
    for item in text.split(","):
        item = item.strip()
        if not _is_size(item, minimum):
            raise PruningLimitsError(
                f"model spec {spec!r}: {what} must be integers from {minimum} to 2**31 - 1 separated by commas, got {item!r}"
            )
        values.append(int(item))
    return values


def _parse_int(spec: str, text: str, minimum: int, what: str) -> int:
    """The one value of an option that takes one (``resnet20:W``, ``cnn1d:C``)."""
    item = text.strip()
    if not _is_size(item, minimum):
        raise PruningLimitsError(
            f"model spec {spec!r}: {what} must be one integer from {minimum} to 2**31 - 1, got {item!r}"
        )
    return int(item)


#: Bytes of Python objects a built layer takes at least, beside its parameters: an ``nn.Linear``
#: with its ``nn.ReLU`` measured 4.5 KiB, a transformer encoder layer 25 KiB (CPython 3.11, 2026-12-06).
_LAYER_BYTES = 4096


#: Files that hold the memory limit of the control group this process runs in, as a container
#: sees its own: cgroup v2 (``max`` where there is none), then cgroup v1 (a number near 2**63
#: where there is none).
_CGROUP_MEMORY_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def _cgroup_memory_limit() -> int | None:
    """Bytes of the control group's memory limit: the smallest of :data:`_CGROUP_MEMORY_FILES`
    that hold a number (``None``: no file, ``max``, or nothing readable)."""
    limits = []
    for path in _CGROUP_MEMORY_FILES:
        try:
            with open(path, encoding="ascii") as handle:
                text = handle.read().strip()
        except (OSError, UnicodeDecodeError):  # no such file (no cgroup, another OS) or unreadable
            continue
        if text.isdigit():  # "max" (v2: no limit) and anything else say nothing
            limits.append(int(text))
    return min(limits) if limits else None


def _machine_memory() -> int | None:
    """Bytes of memory this process may use: the smaller of the machine's physical memory and the
    memory limit of its control group (:func:`_cgroup_memory_limit`; a container's limit, which
    the physical memory, the host's, does not show). ``None`` where neither is known.

    Until 2026-12-06 the physical memory alone was read, the host's in a container, so a model too
    large for the container's limit passed the check (a review's finding, by reading: its
    container had no limit to reproduce it with).
    """
    try:
        physical: int | None = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        physical = None
    known = [value for value in (physical, _cgroup_memory_limit()) if value is not None]
    return min(known) if known else None


def _check_fits_memory(spec: str, parameters: int, layers: int) -> None:
    """Refuse, before building, a model whose float32 parameters and layers exceed the memory this
    process may use (:func:`_machine_memory`: physical memory, or a container's smaller limit).

    A width too large fails at its first allocation (:func:`~pruning_limits._checks.too_large_for_memory`),
    but a depth too large builds small layers one by one until memory runs out, for hours.

    Args:
        spec: the spec named in the error.
        parameters: the model's parameter count.
        layers: its count of layers (``nn.Linear`` or encoder layers).

    Raises:
        MemoryError: ``model spec ... is too large``, one line.
    """
    memory = _machine_memory()
    on_meta = torch.empty(0).is_meta  # a sketch under torch.device("meta") holds no parameters, only its layers
    needed = (0 if on_meta else 4 * parameters) + _LAYER_BYTES * layers  # float32, at least _LAYER_BYTES a layer
    if memory is not None and needed > memory:
        raise MemoryError(
            f"model spec {spec!r} is too large: its {layers} layers and {parameters:.3g} parameters need at least "
            f"{needed / 2**30:.3g} GiB, more than this machine's {memory / 2**30:.3g} GiB of memory"
        )


def _dense_parameters(in_features: int, widths: list[int], outputs: int) -> int:
    """Parameters of ``_mlp(in_features, widths, outputs)`` (weights and biases)."""
    sizes = [in_features, *widths, outputs]
    return sum((n_in + 1) * n_out for n_in, n_out in zip(sizes, sizes[1:]))


def _mlp(in_features: int, widths: list[int], outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    previous = in_features
    for width in widths:
        layers += [nn.Linear(previous, width), nn.ReLU()]
        previous = width
    layers.append(nn.Linear(previous, outputs))
    return nn.Sequential(*layers)


def _image_layout(input_shape: tuple[int, ...], spec: str) -> tuple[list[nn.Module], int, int, int]:
    """Layers that turn ``(H·W,)`` or ``(H, W)`` samples into ``(1, H, W)`` images, and ``C, H, W``."""
    layers: list[nn.Module] = []
    if len(input_shape) == 1:
        side = math.isqrt(input_shape[0])
        if side * side != input_shape[0]:
            raise PruningLimitsError(
                f"model {spec!r} needs square images: {input_shape[0]} input features are not a square number"
            )
        layers.append(nn.Unflatten(1, (1, side, side)))
        c, h, w = 1, side, side
    elif len(input_shape) == 2:
        layers.append(nn.Unflatten(1, (1, input_shape[0])))  # (N, H, W) -> (N, 1, H, W)
        c, (h, w) = 1, input_shape
    elif len(input_shape) == 3:
        c, h, w = input_shape
    else:
        raise PruningLimitsError(f"model {spec!r} needs images (C, H, W), got input shape {input_shape}")
    if h < 2 or w < 2:
        raise PruningLimitsError(f"model {spec!r} needs images of at least 2×2 pixels, got {h}×{w}")
    return layers, c, h, w


def _cnn(input_shape: tuple[int, ...], channels: list[int], outputs: int, spec: str) -> nn.Sequential:
    layers, c, h, w = _image_layout(input_shape, spec)
    layers += [
        nn.Conv2d(c, channels[0], 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels[0], channels[1], 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(channels[1] * (h // 2) * (w // 2), outputs),
    ]
    return nn.Sequential(*layers)


def _cnn1d(input_shape: tuple[int, ...], channels: int, outputs: int, spec: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    if len(input_shape) == 1:
        layers.append(nn.Unflatten(1, (1, input_shape[0])))
        c, length = 1, input_shape[0]
    elif len(input_shape) == 2:
        c, length = input_shape
    else:
        raise PruningLimitsError(f"model {spec!r} needs sequences (C, L) or (L,), got input shape {input_shape}")
    convs = [(c, channels, 5), (channels, channels, 3), (channels, channels, 3)]
    for c_in, c_out, kernel in convs:
        new_length = (length + 2 - kernel) // 2 + 1
        if new_length < 1:
            raise PruningLimitsError(f"model {spec!r}: sequences of length {input_shape[-1]} are too short")
        layers += [nn.Conv1d(c_in, c_out, kernel, stride=2, padding=1), nn.ReLU()]
        length = new_length
    layers += [nn.Flatten(), nn.Linear(channels * length, outputs)]
    return nn.Sequential(*layers)


#: Factories of this module a stored spec may name without --trust-checkpoint: they build
#: networks and nothing else, whatever literal arguments the spec passes.
ZOO_FACTORIES = ("resnet20", "resnet18", "transformer")


def is_zoo_factory_spec(spec: str) -> bool:
    """Whether ``spec`` is ``pruning_limits.models:<zoo factory>(...)`` (safe to call from a stored spec)."""
    try:
        parsed = parse_callable_spec(spec)
    except PruningLimitsError:
        return False
    return parsed.module == __name__ and parsed.name in ZOO_FACTORIES


def calls_user_code(spec: str | None) -> bool:
    """Whether building ``spec`` imports and calls a function other than the zoo's own factories:
    a stored spec does so only when trusted (``--trust-checkpoint``, ``trust=True``)."""
    return bool(spec) and looks_callable(spec) and not is_zoo_factory_spec(spec)  # type: ignore[arg-type]


def _user_factory(spec: str, input_shape: tuple[int, ...], outputs: int) -> nn.Module:
    parsed = parse_callable_spec(spec, "model spec")
    factory = parsed.resolve("model spec")
    try:
        signature = inspect.signature(factory)
        signature.bind(input_shape, outputs, **parsed.kwargs)
        args: tuple[Any, ...] = (input_shape, outputs)
    except (TypeError, ValueError):
        args = ()
    try:
        model = factory(*args, **parsed.kwargs)
    except Exception as err:  # noqa: BLE001
        reraise_interrupt(err)
        raise UserCodeError(f"model factory {spec!r} failed: {type(err).__name__}: {err}") from None
    if not isinstance(model, nn.Module):
        raise PruningLimitsError(f"model factory {spec!r} must return an nn.Module, got {describe(model)}")
    return model


def _construct(spec: str, input_shape: tuple[int, ...], outputs: int, vocab_size: int | None = None) -> nn.Module:
    name, sep, options = spec.partition(":")
    in_features = math.prod(input_shape)
    if name == "mlp":
        if not sep:
            return _mlp(in_features, list(MLP_DEFAULT_WIDTHS), outputs)
        if not options.strip():
            raise PruningLimitsError(
                f"model spec {spec!r}: give hidden widths after 'mlp:' (mlp:64,32), 'mlp' for the default, or 'mlp:0' for a linear model"
            )
        widths = _parse_ints(spec, options, 0, "hidden widths")
        if widths == [0]:
            widths = []
        elif 0 in widths:
            raise PruningLimitsError(f"model spec {spec!r}: hidden widths must be >= 1 (use mlp:0 for a linear model)")
        _check_fits_memory(spec, _dense_parameters(in_features, widths, outputs), len(widths) + 1)
        return _mlp(in_features, widths, outputs)
    if name in ("fc", "fc5", "fc12"):
        if name == "fc":
            values = _parse_ints(spec, options, 1, "depth and width") if sep else []
            if len(values) != 2:
                raise PruningLimitsError(f"model spec {spec!r}: expected fc:depth,width, e.g. fc:5,100")
            depth, width = values
        elif sep:
            raise PruningLimitsError(f"model spec {spec!r}: {name} takes no options (use fc:depth,width)")
        else:
            depth, width = (5 if name == "fc5" else 12), FC_DEFAULT_WIDTH
        # the parameters of _mlp(in_features, [width] * (depth - 1), outputs), before that list is made
        parameters = _dense_parameters(in_features, [width] * min(depth - 1, 1), outputs)
        parameters += max(depth - 2, 0) * (width + 1) * width
        _check_fits_memory(spec, parameters, depth)
        return _mlp(in_features, [width] * (depth - 1), outputs)
    if name == "cnn":
        channels = _parse_ints(spec, options, 1, "channels") if sep else list(CNN_DEFAULT_CHANNELS)
        if len(channels) != 2:
            raise PruningLimitsError(f"model spec {spec!r}: expected cnn:C1,C2 (two channel counts)")
        return _cnn(input_shape, channels, outputs, spec)
    if name == "cnn1d":
        channels = _parse_int(spec, options, 1, "the channel count C of cnn1d:C") if sep else CNN1D_DEFAULT_CHANNELS
        return _cnn1d(input_shape, channels, outputs, spec)
    if name in ("resnet20", "resnet18"):
        default = RESNET20_DEFAULT_WIDTH if name == "resnet20" else RESNET18_DEFAULT_WIDTH
        width = _parse_int(spec, options, 1, f"the first-stage width W of {name}:W") if sep else default
        prefix, c, h, w = _image_layout(input_shape, spec)
        net = (resnet20 if name == "resnet20" else resnet18)(num_classes=outputs, in_channels=c, width=width)
        return nn.Sequential(*prefix, net) if prefix else net
    if name == "transformer":
        values = _parse_ints(spec, options, 1, "D,L,H[,P]") if sep else list(TRANSFORMER_DEFAULTS)
        if len(values) not in (3, 4):
            raise PruningLimitsError(f"model spec {spec!r}: expected transformer:D,L,H or transformer:D,L,H,P")
        d_model, layers, heads = values[:3]
        patch = values[3] if len(values) == 4 else TRANSFORMER_DEFAULTS[3]
        return transformer(
            input_shape=input_shape, num_classes=outputs, vocab_size=vocab_size, d_model=d_model,
            layers=layers, heads=heads, patch=patch, spec=spec,
        )
    if looks_callable(spec):
        return _user_factory(spec, input_shape, outputs)
    raise PruningLimitsError(
        f"unknown model spec {spec!r}: expected mlp[:W1,W2,...], fc:depth,width, fc5, fc12, cnn[:C1,C2], "
        "cnn1d[:C], resnet20[:W], resnet18[:W], transformer[:D,L,H[,P]] or package.module:factory[(key=literal, ...)]"
    )


def _sizes(data: Any) -> tuple[tuple[int, ...], int, int | None]:
    if isinstance(data, ModelRecord):
        return data.input_shape, data.num_outputs, data.vocab_size
    if isinstance(data, dict):
        record = ModelRecord.from_dict({"spec": "", **data})
        return record.input_shape, record.num_outputs, record.vocab_size
    shape, outputs = getattr(data, "input_shape", None), getattr(data, "num_outputs", None)
    if shape is None or outputs is None:
        raise PruningLimitsError(
            f"build_model needs a DataBundle (or input_shape and num_outputs), got {describe(data)}"
        )
    vocab = getattr(data, "vocab_size", None)
    return tuple(int(v) for v in shape), int(outputs), None if vocab is None else int(vocab)


def build_model(spec: str, data: Any, *, seed: int = 0) -> nn.Module:
    """Build the model named by ``spec`` for the sizes of ``data``, initialised from ``seed``.

    Args:
        spec: a model spec (see the module docstring).
        data: a :class:`~pruning_limits.data.DataBundle`, a :class:`ModelRecord`, or a dict
            with ``input_shape`` and ``num_outputs`` (and ``vocab_size`` for token inputs).
        seed: seed of the parameter initialisation (PyTorch's default initialisers, drawn
            inside ``torch.random.fork_rng`` so the global generator is left as it was).

    Returns:
        The float32 model in training mode; :func:`model_record` gives its record.

    Raises:
        PruningLimitsError: an invalid or unknown spec, or sizes the model cannot take.
        MemoryError: ``model spec ... is too large``: a zoo model's parameters and layers exceed
            this machine's memory (checked before building), or a tensor fails to allocate.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise PruningLimitsError(f"model spec must be a non-empty string, got {describe(spec)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PruningLimitsError(f"seed must be an integer, got {describe(seed)}")
    spec = spec.strip()
    input_shape, outputs, vocab_size = _sizes(data)
    if outputs < 1 or not input_shape or min(input_shape) < 1:
        raise PruningLimitsError(f"cannot build a model for input shape {input_shape} and {outputs} outputs")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with too_large_for_memory(f"model spec {spec!r}"):  # torch's allocator: one line that names the spec
            model = _construct(spec, input_shape, outputs, vocab_size)
    setattr(model, _RECORD_ATTR, ModelRecord(spec, input_shape, outputs, vocab_size))
    return model


def model_record(model: nn.Module) -> ModelRecord | None:
    """The :class:`ModelRecord` of a model made by :func:`build_model` (``None`` otherwise)."""
    record = getattr(model, _RECORD_ATTR, None)
    return record if isinstance(record, ModelRecord) else None


def rebuild_model(record: ModelRecord | dict[str, Any], *, seed: int = 0, trust: bool = False) -> nn.Module:
    """Build the model a record describes (load the checkpoint's ``state_dict`` into it next).

    A record read from a file is data: a ``package.module:function`` spec in it (not one of the
    zoo's own factories) is imported and called only with ``trust=True``, as
    ``--trust-checkpoint`` for a bundle (:func:`pruning_limits.checkpoint.check_stored_spec`).

    Raises:
        PruningLimitsError: a callable spec without ``trust``, or what :func:`build_model` raises.
    """
    if isinstance(record, dict):
        record = ModelRecord.from_dict(record)
    if not trust and calls_user_code(record.spec):
        raise PruningLimitsError(
            f"the model record names the function {record.spec!r}, which rebuilding would import and call; "
            "pass trust=True if you trust where the record came from, or build_model(spec, ...) with the spec yourself"
        )
    return build_model(record.spec, record, seed=seed)


# --------------------------------------------------------------------------- ResNets


class _BasicBlock(nn.Module):
    """Two 3×3 conv + BatchNorm layers with a shortcut (He et al. 2016, Fig. 2 left).

    ``shortcut="A"``: identity, subsampled and zero-padded in channels when the shape changes
    (the paper's CIFAR option A, no parameters); ``"B"``: 1×1 conv + BatchNorm projection
    where the shape changes (torchvision's ``downsample``).
    """

    def __init__(self, c_in: int, c_out: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride, self.pad = stride, c_out - c_in
        self.downsample: nn.Module | None = None
        if shortcut == "B" and (stride != 1 or c_in != c_out):
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        if self.downsample is not None:
            identity = self.downsample(x)
        else:
            identity = x[:, :, :: self.stride, :: self.stride] if self.stride != 1 else x
            if self.pad:
                identity = nn.functional.pad(identity, (0, 0, 0, 0, 0, self.pad))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A ResNet of basic blocks for small images (3×3 stem, no max pooling).

    Args:
        blocks: basic blocks per stage.
        widths: channels per stage (stride 2 at the start of every stage but the first).
        num_classes: outputs of the final linear layer.
        in_channels: input channels.
        shortcut: ``"A"`` (zero-padding identity) or ``"B"`` (projection), see :class:`_BasicBlock`.
    """

    def __init__(
        self, blocks: tuple[int, ...], widths: tuple[int, ...], num_classes: int, in_channels: int, shortcut: str
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        previous = widths[0]
        for index, (count, width) in enumerate(zip(blocks, widths), start=1):
            stage = []
            for block in range(count):
                stride = 2 if index > 1 and block == 0 else 1
                stage.append(_BasicBlock(previous, width, stride, shortcut))
                previous = width
            self.add_module(f"layer{index}", nn.Sequential(*stage))
        self.num_stages = len(blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(previous, num_classes)
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for index in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{index}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _check_factory_ints(name: str, **values: Any) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PruningLimitsError(f"{name}: {key} must be an integer >= 1, got {describe(value)}")


def resnet20(*, num_classes: int = 10, in_channels: int = 3, width: int = RESNET20_DEFAULT_WIDTH) -> ResNet:
    """CIFAR ResNet-20 (He et al. 2016, §4.2): 3 stages × 3 basic blocks, widths ``W, 2W, 4W``, option-A shortcuts."""
    _check_factory_ints("resnet20", num_classes=num_classes, in_channels=in_channels, width=width)
    return ResNet((3, 3, 3), (width, 2 * width, 4 * width), num_classes, in_channels, "A")


def resnet18(*, num_classes: int = 10, in_channels: int = 3, width: int = RESNET18_DEFAULT_WIDTH) -> ResNet:
    """ResNet-18 of torchvision's shape and parameter names with a 3×3 stride-1 stem for 32×32 inputs."""
    _check_factory_ints("resnet18", num_classes=num_classes, in_channels=in_channels, width=width)
    return ResNet((2, 2, 2, 2), (width, 2 * width, 4 * width, 8 * width), num_classes, in_channels, "B")


# --------------------------------------------------------------------------- transformer


class TransformerClassifier(nn.Module):
    """Encoder-only transformer classifier (see ``transformer`` in the module docstring)."""

    def __init__(
        self,
        tokens: nn.Module,
        num_tokens: int,
        d_model: int,
        layers: int,
        heads: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.tokens = tokens
        self.position = nn.Parameter(0.02 * torch.randn(1, num_tokens, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=2 * d_model, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.tokens(x) + self.position)
        return self.head(self.norm(h.mean(dim=1)))


class _Patches(nn.Module):
    """``(N, L)`` → ``(N, L/P, P)``, ``(N, T, F)`` unchanged, ``(N, C, H, W)`` → ``(N, HW/P², C·P²)``."""

    def __init__(self, ndim: int, patch: int) -> None:
        super().__init__()
        self.ndim, self.patch = ndim, patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.ndim == 1:
            return x.reshape(x.shape[0], -1, self.patch)
        if self.ndim == 2:
            return x
        patches = nn.functional.unfold(x, self.patch, stride=self.patch)  # (N, C·P², blocks)
        return patches.transpose(1, 2)


def _check_transformer_fits_memory(
    spec: str, token_parameters: int, num_tokens: int, d_model: int, layers: int, num_classes: int
) -> None:
    """:func:`_check_fits_memory` for a :class:`TransformerClassifier`, before any layer is built.

    Args:
        spec: the spec named in the error.
        token_parameters: parameters of the token embedding or projection.
        num_tokens, d_model, layers, num_classes: as the classifier takes them.
    """
    # per encoder layer: attention 4D² + 4D, feed-forward (width 2D) 4D² + 3D, two LayerNorms 4D
    per_layer = 8 * d_model**2 + 11 * d_model
    parameters = token_parameters + num_tokens * d_model + layers * per_layer + 2 * d_model + (d_model + 1) * num_classes
    _check_fits_memory(spec, parameters, layers)


def transformer(
    *,
    input_shape: tuple[int, ...] | list[int],
    num_classes: int,
    vocab_size: int | None = None,
    d_model: int = TRANSFORMER_DEFAULTS[0],
    layers: int = TRANSFORMER_DEFAULTS[1],
    heads: int = TRANSFORMER_DEFAULTS[2],
    patch: int = TRANSFORMER_DEFAULTS[3],
    spec: str = "transformer",
) -> TransformerClassifier:
    """The zoo's transformer classifier for token, sequence or image inputs of ``input_shape``.

    Args:
        input_shape: shape of one sample: ``(L,)`` tokens (with ``vocab_size``) or values,
            ``(T, F)`` feature sequences, or ``(C, H, W)`` images.
        num_classes: outputs.
        vocab_size: number of token ids for int64 inputs (``None``: float inputs).
        d_model, layers, heads: width, depth and attention heads (``d_model % heads == 0``).
        patch: patch length (1-D values) or side (images).
        spec: the spec named in error messages.

    Raises:
        PruningLimitsError: sizes that do not fit together (width and heads, input shape and patch).
        MemoryError: ``model spec ... is too large``: the parameters and layers exceed this
            machine's memory (checked before any layer is built).
    """
    _check_factory_ints(spec, num_classes=num_classes, d_model=d_model, layers=layers, heads=heads, patch=patch)
    if vocab_size is not None:
        _check_factory_ints(spec, vocab_size=vocab_size)
    shape = tuple(int(v) for v in input_shape)
    if d_model % heads:
        raise PruningLimitsError(f"model spec {spec!r}: the width D = {d_model} must be a multiple of the heads H = {heads}")
    if vocab_size is not None:
        if len(shape) != 1:
            raise PruningLimitsError(f"model spec {spec!r}: token inputs must be sequences (L,), got shape {shape}")
        _check_transformer_fits_memory(spec, vocab_size * d_model, shape[0], d_model, layers, num_classes)
        return TransformerClassifier(nn.Embedding(vocab_size, d_model), shape[0], d_model, layers, heads, num_classes)
    if len(shape) == 1:
        if shape[0] % patch:
            raise PruningLimitsError(f"model spec {spec!r}: sequence length {shape[0]} is not a multiple of the patch {patch}")
        count, features = shape[0] // patch, patch
    elif len(shape) == 2:
        count, features = shape
    elif len(shape) == 3:
        c, h, w = shape
        if h % patch or w % patch:
            raise PruningLimitsError(f"model spec {spec!r}: images of {h}×{w} pixels are not a multiple of the patch {patch}")
        count, features = (h // patch) * (w // patch), c * patch * patch
    else:
        raise PruningLimitsError(f"model spec {spec!r} needs (L,), (T, F) or (C, H, W) inputs, got shape {shape}")
    _check_transformer_fits_memory(spec, (features + 1) * d_model, count, d_model, layers, num_classes)
    tokens = nn.Sequential(_Patches(len(shape), patch), nn.Linear(features, d_model))
    return TransformerClassifier(tokens, count, d_model, layers, heads, num_classes)
