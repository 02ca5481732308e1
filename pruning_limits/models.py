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
- ``package.module:factory``: a user model. ``factory(input_shape, num_outputs)`` is called
  when the factory accepts two positional arguments, ``factory()`` otherwise; it must return
  an ``nn.Module``.

Every built model carries its :class:`ModelRecord` (``model_record(model)``) so that a
checkpoint can rebuild it with :func:`rebuild_model` before loading its ``state_dict``.
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ._checks import PruningLimitsError, describe, is_callable_spec, resolve_callable

BUILTIN_MODELS = ("mlp", "fc", "fc5", "fc12", "cnn", "cnn1d")

#: Hidden widths of ``mlp`` without options.
MLP_DEFAULT_WIDTHS = (64, 32)
#: Channels of ``cnn`` without options.
CNN_DEFAULT_CHANNELS = (8, 16)
#: Channels of ``cnn1d`` without options (``mnist1d`` package, ``ConvBase(channels=25)``).
CNN1D_DEFAULT_CHANNELS = 25
#: Width of ``fc5`` and ``fc12``.
FC_DEFAULT_WIDTH = 100

_RECORD_ATTR = "_pruning_limits_record"


@dataclass(frozen=True)
class ModelRecord:
    """What is needed to rebuild a zoo model: its spec and the data sizes it was built for."""

    spec: str
    input_shape: tuple[int, ...]
    num_outputs: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (``input_shape`` as a list)."""
        record = asdict(self)
        record["input_shape"] = list(self.input_shape)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ModelRecord:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(str(record["spec"]), tuple(int(v) for v in record["input_shape"]), int(record["num_outputs"]))
        except (KeyError, TypeError, ValueError) as err:
            raise PruningLimitsError(
                f"a model record needs spec, input_shape and num_outputs, got {describe(record)} ({err})"
            ) from None


def _parse_ints(spec: str, text: str, minimum: int, what: str) -> list[int]:
    values = []
    for item in text.split(","):
        item = item.strip()
        if not re.fullmatch(r"\d+", item) or int(item) < minimum:
            raise PruningLimitsError(
                f"model spec {spec!r}: {what} must be integers >= {minimum} separated by commas, got {item!r}"
            )
        values.append(int(item))
    return values


def _mlp(in_features: int, widths: list[int], outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    previous = in_features
    for width in widths:
        layers += [nn.Linear(previous, width), nn.ReLU()]
        previous = width
    layers.append(nn.Linear(previous, outputs))
    return nn.Sequential(*layers)


def _cnn(input_shape: tuple[int, ...], channels: list[int], outputs: int, spec: str) -> nn.Sequential:
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


def _user_factory(spec: str, input_shape: tuple[int, ...], outputs: int) -> nn.Module:
    factory = resolve_callable(spec, "model spec")
    try:
        signature = inspect.signature(factory)
        signature.bind(input_shape, outputs)
        args: tuple[Any, ...] = (input_shape, outputs)
    except (TypeError, ValueError):
        args = ()
    try:
        model = factory(*args)
    except Exception as err:  # noqa: BLE001
        raise PruningLimitsError(f"model factory {spec!r} failed: {type(err).__name__}: {err}") from None
    if not isinstance(model, nn.Module):
        raise PruningLimitsError(f"model factory {spec!r} must return an nn.Module, got {describe(model)}")
    return model


def _construct(spec: str, input_shape: tuple[int, ...], outputs: int) -> nn.Module:
    name, sep, options = spec.partition(":")
    in_features = math.prod(input_shape)
    if name == "mlp":
        if not sep:
            return _mlp(in_features, list(MLP_DEFAULT_WIDTHS), outputs)
        widths = _parse_ints(spec, options, 0, "hidden widths")
        if widths == [0]:
            widths = []
        elif 0 in widths:
            raise PruningLimitsError(f"model spec {spec!r}: hidden widths must be >= 1 (use mlp:0 for a linear model)")
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
        return _mlp(in_features, [width] * (depth - 1), outputs)
    if name == "cnn":
        channels = _parse_ints(spec, options, 1, "channels") if sep else list(CNN_DEFAULT_CHANNELS)
        if len(channels) != 2:
            raise PruningLimitsError(f"model spec {spec!r}: expected cnn:C1,C2 (two channel counts)")
        return _cnn(input_shape, channels, outputs, spec)
    if name == "cnn1d":
        channels = _parse_ints(spec, options, 1, "channels") if sep else [CNN1D_DEFAULT_CHANNELS]
        if len(channels) != 1:
            raise PruningLimitsError(f"model spec {spec!r}: expected cnn1d:C (one channel count)")
        return _cnn1d(input_shape, channels[0], outputs, spec)
    if is_callable_spec(spec):
        return _user_factory(spec, input_shape, outputs)
    raise PruningLimitsError(
        f"unknown model spec {spec!r}: expected mlp[:W1,W2,...], fc:depth,width, fc5, fc12, cnn[:C1,C2], "
        "cnn1d[:C] or package.module:factory"
    )


def _sizes(data: Any) -> tuple[tuple[int, ...], int]:
    if isinstance(data, ModelRecord):
        return data.input_shape, data.num_outputs
    if isinstance(data, dict):
        record = ModelRecord.from_dict({"spec": "", **data})
        return record.input_shape, record.num_outputs
    shape, outputs = getattr(data, "input_shape", None), getattr(data, "num_outputs", None)
    if shape is None or outputs is None:
        raise PruningLimitsError(
            f"build_model needs a DataBundle (or input_shape and num_outputs), got {describe(data)}"
        )
    return tuple(int(v) for v in shape), int(outputs)


def build_model(spec: str, data: Any, *, seed: int = 0) -> nn.Module:
    """Build the model named by ``spec`` for the sizes of ``data``, initialised from ``seed``.

    Args:
        spec: a model spec (see the module docstring).
        data: a :class:`~pruning_limits.data.DataBundle`, a :class:`ModelRecord`, or a dict
            with ``input_shape`` and ``num_outputs``.
        seed: seed of the parameter initialisation (PyTorch's default initialisers, drawn
            inside ``torch.random.fork_rng`` so the global generator is left as it was).

    Returns:
        The float32 model in training mode; :func:`model_record` gives its record.

    Raises:
        PruningLimitsError: an invalid or unknown spec, or sizes the model cannot take.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise PruningLimitsError(f"model spec must be a non-empty string, got {describe(spec)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PruningLimitsError(f"seed must be an integer, got {describe(seed)}")
    spec = spec.strip()
    input_shape, outputs = _sizes(data)
    if outputs < 1 or not input_shape or min(input_shape) < 1:
        raise PruningLimitsError(f"cannot build a model for input shape {input_shape} and {outputs} outputs")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _construct(spec, input_shape, outputs)
    setattr(model, _RECORD_ATTR, ModelRecord(spec, input_shape, outputs))
    return model


def model_record(model: nn.Module) -> ModelRecord | None:
    """The :class:`ModelRecord` of a model made by :func:`build_model` (``None`` otherwise)."""
    record = getattr(model, _RECORD_ATTR, None)
    return record if isinstance(record, ModelRecord) else None


def rebuild_model(record: ModelRecord | dict[str, Any], *, seed: int = 0) -> nn.Module:
    """Build the model a record describes (load the checkpoint's ``state_dict`` into it next)."""
    if isinstance(record, dict):
        record = ModelRecord.from_dict(record)
    return build_model(record.spec, record, seed=seed)
