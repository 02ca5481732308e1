"""Built-in data sets and user data specs, held in memory as tensors.

Data specs (``load_data``):

- ``digits``: scikit-learn's 8×8 handwritten digits (1 797 images, bundled with scikit-learn,
  no download), pixels scaled to [0, 1] (divided by 16), flattened to 64 features, split by a
  seeded permutation into 1 400 training and 397 test images (the "1 400 samples" of the
  project specification). Options: ``digits:train=1000``.
- ``mnist1d``: MNIST-1D (Greydanus 2020, arXiv 2011.14439) generated locally with the
  ``mnist1d`` package's ``make_dataset`` and its default arguments (5 000 sequences of length
  40, 10 classes, package seed 42, 4 000 train / 1 000 test: the published benchmark), never
  downloaded. Options: ``mnist1d:n=10000,seed=3`` (``seed`` is the generator's seed).
- ``synthetic``: teacher-student regression. Inputs ``x ~ N(0, I_d)``, targets from a random
  tanh teacher MLP ``d → hidden → out`` plus Gaussian noise; MSE loss. Options (defaults)
  ``n=2000,test=500,d=20,hidden=32,out=1,noise=0.1``, e.g. ``synthetic:n=500,d=10``; the
  teacher and the samples are drawn from ``torch.Generator`` seeded by ``seed``.
- ``patterns``: class-conditional colour images for the CIFAR-style ResNets, generated locally.
  Each class has a fixed random template, a 4×4 grid of ``N(0, 1)`` values per channel
  upsampled bilinearly to ``size × size``; a sample of class ``c`` is
  ``a · template_c + noise · N(0, I)`` with a random contrast ``a ~ U(0.5, 1.5)``, in
  ``(channels, size, size)`` layout. Options (defaults)
  ``n=2000,test=500,classes=10,size=32,channels=3,noise=1.0``; drawn from ``seed``.
- ``tokens``: integer token sequences for the ``transformer`` zoo model. Each class has a
  fixed random distribution over ``vocab`` tokens (softmax of ``N(0, 1.5²)`` logits); a sample
  of class ``c`` is ``length`` tokens drawn from it, kept as int64. Options (defaults)
  ``n=2000,test=500,classes=4,vocab=32,length=16``; drawn from ``seed``; ``classes × vocab`` at
  most ``TOKENS_MAX_TABLE`` (2**26: the table of probabilities it draws).
- ``path/to/file.npz`` (``~`` expanded): arrays ``x`` and ``y``, optionally ``x_test`` and
  ``y_test`` (both or neither); other arrays in the file are not read. Images are
  ``(N, C, H, W)``: samples of three dimensions whose last is 1, 3 or 4 and first larger than 4
  get a warning that they look channels-last. Without a test set, a permutation seeded by
  ``seed`` (the CLI's ``--seed``, stored in a bundle and reused by later commands) holds out
  20 % of the samples as test set (at least one sample; not stratified: a rare class can land
  in one part only, which the label warnings below then name); the bundle records
  ``test_source="split"``. Values are used as stored, never scaled: divide uint8 pixels by 255
  (``x / 255.0``) before saving (integer inputs other than int64 reaching 255 get a warning).
  ``x`` needs a dimension per sample beyond the first: one feature is ``(N, 1)`` (``x[:, None]``).
- ``package.module:function`` or ``package.module:function(key=literal, ...)`` (keyword
  arguments parsed as literals, never evaluated: :mod:`pruning_limits.specs`): the function
  is called with those arguments and returns a
  :class:`DataBundle`, an ``(x, y)`` pair, a Dataset or a DataLoader (training data, no test
  set), or a pair ``(train, test)`` of those (``(train, None)``: no test set).

Options are numbers (``noise`` finite); a generator whose tensors exceed memory is one
``MemoryError`` line naming the spec.

Conversions: int64 inputs stay int64 (token indices for an ``nn.Embedding``; every part of
the library moves them to the model's device without casting them); other integer and
floating inputs become float32 tensors (store int64 only for token indices), bool inputs too;
integer targets mean classification (int64 labels in ``[0, num_classes)``, cross-entropy; a column
of labels ``(n, 1)`` is read as ``(n,)``, bool labels as 0/1), floating targets mean
regression (float32, 1-D targets reshaped to ``(n, 1)`` so they match a model with one output
under MSE; 1-D float targets that are exactly ``0, 1, …, K − 1``, and one-hot rows ``(n, K)``,
are read so too, with a warning that says how to get classification). float64 values beyond float32's range are refused, not made
infinite; longdouble arrays are read as float64 first. A number of classes inferred from the
largest label above ``max(MIN_CLASS_LIMIT, 2 × samples)``, or a vocabulary inferred from the
largest int64 token above ``max(MIN_VOCAB_LIMIT, 2 × tokens)``, gets a warning: a stray value
would give a zoo model that many outputs or embeddings (a checkpoint's own head is not
refused for it). An inferred number of classes ``K`` whose classes in ``[0, K)`` are not all
in the training labels gets a warning (each class is an output of the model, and so changes
``D`` and ``s*``): labels that start at 1 (1-based?), integer values with many gaps (ages,
counts: regression targets?), or a class missing from the training part (:func:`make_bundle`).
Training labels of one class are refused whichever label it is, unless ``num_outputs`` is given
or a checkpoint's head decides (``classes_from="model"``, :func:`check_data_fits_model`).
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ._checks import (
    PruningLimitsError,
    UserCodeError,
    check_seed,
    describe,
    error_line,
    message_line,
    reraise_interrupt,
    too_large_for_memory,
)
from .specs import looks_callable
from .objective import check_pair, eval_mode, iter_batches, logits, model_device_dtype
from .specs import parse_callable_spec

BUILTIN_DATA = ("digits", "mnist1d", "synthetic", "patterns", "tokens")

#: Training-set size of ``digits`` (the project specification's "1 400 samples"; 397 remain for test).
DIGITS_TRAIN = 1400
#: Fraction held out as test set when an ``.npz`` file has no ``x_test``/``y_test``.
NPZ_TEST_FRACTION = 0.2
#: The arrays an ``.npz`` data file is read for; other arrays in it are never loaded.
NPZ_ARRAYS = ("x", "y", "x_test", "y_test")

#: A class count inferred from the largest label above ``max(MIN_CLASS_LIMIT, 2 × samples)`` (train
#: and test) gets a warning: a stray label (``3000000`` among ``0..2``) silently built a model with
#: 3 000 001 outputs, and ``10**9`` failed in an allocation. The floor is above the largest common
#: single-label benchmarks (ImageNet-21k: 21 841 classes); above it, a data set holds at least one
#: sample for every second class, or its labels are not class indices. A warning, not a refusal:
#: a checkpoint with its own 100 000-class head analysed on 1 000 samples is legitimate.
MIN_CLASS_LIMIT = 2**16
#: A vocabulary inferred from the largest int64 token above ``max(MIN_VOCAB_LIMIT, 2 × tokens)``
#: (tokens in train and test) gets a warning: a stray token ``2**40`` asked the zoo's transformer
#: for a 140 TB embedding. The floor is four times the largest common tokenizers' vocabularies
#: (about 256 000 ids); hashed ids of a model with its own embedding are legitimate.
MIN_VOCAB_LIMIT = 2**20
#: 1-D float targets that are exactly ``0, 1, …, K − 1`` with ``2 ≤ K ≤`` this many (at most one
#: value per two samples, and for ``K > 2`` each value held by at least ``n / (4K)`` samples, which
#: the thin tails of counts fail) may be class labels stored as floats: a warning says they are read as
#: regression and how to get classification (ratings 1..5 never start at 0, hence "may").
CLASS_LIKE_TARGET_VALUES = 256

_SYNTHETIC_DEFAULTS: dict[str, float] = {
    "n": 2000,
    "test": 500,
    "d": 20,
    "hidden": 32,
    "out": 1,
    "noise": 0.1,
}

_PATTERNS_DEFAULTS: dict[str, float] = {"n": 2000, "test": 500, "classes": 10, "size": 32, "channels": 3, "noise": 1.0}
_TOKENS_DEFAULTS: dict[str, float] = {"n": 2000, "test": 500, "classes": 4, "vocab": 32, "length": 16}
#: Each built-in source's options and their defaults (``same_data_spec`` compares specs with them filled in).
_BUILTIN_DEFAULTS: dict[str, dict[str, float]] = {
    "digits": {"train": DIGITS_TRAIN},
    "mnist1d": {"n": 5000, "seed": 42},
    "synthetic": _SYNTHETIC_DEFAULTS,
    "patterns": _PATTERNS_DEFAULTS,
    "tokens": _TOKENS_DEFAULTS,
}
#: Values of the samples' token distributions ``tokens`` holds at a time (rows × vocab): 64 MiB of float32.
TOKENS_CHUNK_VALUES = 2**24
#: Largest ``classes × vocab`` of ``tokens``: its class-by-vocabulary table of probabilities, drawn
#: in full (256 MiB of float32, a vocabulary of 16 million for 4 classes; ``vocab=1e9`` asked for 16 GB).
TOKENS_MAX_TABLE = 2**26


@dataclass(eq=False)
class DataBundle:
    """Training and test data as tensors, with what a model needs to know about them.

    Attributes:
        x_train, y_train: training (analysis) inputs and targets.
        x_test, y_test: test inputs and targets (``None`` when there is no test set).
        task: ``"classification"`` (int64 labels) or ``"regression"`` (float targets).
        num_outputs: number of classes (classification) or target dimension (regression).
        input_shape: shape of one input sample.
        spec: the data spec the bundle came from (``"<python object>"`` for objects).
        test_source: ``"given"``, ``"split"`` (held out from the training data) or ``"none"``.
        info: extra JSON-serialisable facts (generator settings, image shape).
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor | None
    y_test: Tensor | None
    task: str
    num_outputs: int
    input_shape: tuple[int, ...]
    spec: str = "<python object>"
    test_source: str = "given"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def train(self) -> tuple[Tensor, Tensor]:
        """The training pair ``(x, y)``, usable wherever the library takes data."""
        return self.x_train, self.y_train

    @property
    def test(self) -> tuple[Tensor, Tensor] | None:
        """The test pair ``(x, y)``, or ``None``."""
        if self.x_test is None or self.y_test is None:
            return None
        return self.x_test, self.y_test

    @property
    def vocab_size(self) -> int | None:
        """For int64 (token) inputs, the largest token over train and test plus one; else ``None``."""
        if self.x_train.dtype != torch.int64:
            return None
        high = int(self.x_train.max())
        if self.x_test is not None and len(self.x_test):
            high = max(high, int(self.x_test.max()))
        return high + 1

    @property
    def num_classes(self) -> int | None:
        """Number of classes for classification, ``None`` for regression."""
        return self.num_outputs if self.task == "classification" else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (sizes and settings, not the tensors)."""
        return {
            "spec": self.spec,
            "task": self.task,
            "num_outputs": self.num_outputs,
            "input_shape": list(self.input_shape),
            "train_size": len(self.x_train),
            "test_size": 0 if self.x_test is None else len(self.x_test),
            "test_source": self.test_source,
            **self.info,
        }


# --------------------------------------------------------------------------- conversions


def _as_tensor(value: Any, name: str) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":  # bool, integer, float, complex
            raise PruningLimitsError(f"{name} must be a numeric array, got dtype {value.dtype}")
        if value.dtype.kind == "c" and value.dtype.itemsize > 16:  # torch reads no complex256
            raise PruningLimitsError(f"{name} must be real numbers, got dtype {value.dtype}")
        if value.dtype.kind == "f" and value.dtype.itemsize > 8:  # longdouble, which torch cannot read
            with np.errstate(over="ignore"):
                wide, value = value, value.astype(np.float64)  # the data become float32 in any case
            if np.isfinite(wide).all() and not np.isfinite(value).all():
                largest = np.format_float_scientific(np.abs(wide).max(), precision=2, trim="-")
                raise PruningLimitsError(
                    f"{name} exceed float32's range, which the library computes in: got values up to "
                    f"{largest} in dtype {wide.dtype}"
                )
        # torch reads native byte order only; np.ascontiguousarray would make a 0-d array 1-d (one sample)
        return torch.from_numpy(np.asarray(value.astype(value.dtype.newbyteorder("="), copy=False), order="C"))
    raise PruningLimitsError(f"{name} must be a torch.Tensor or numpy array, got {describe(value)}")


def _normalise_pair(x: Any, y: Any, where: str) -> tuple[Tensor, Tensor, torch.dtype]:
    """``(x, y)`` checked and converted (inputs float32 but int64 tokens, labels int64, float
    targets float32 of ``(n, k)``), and the inputs' dtype as read (bool counted as float32), which
    :func:`_warn_integer_inputs` judges once the parts are known."""
    if isinstance(y, np.ndarray) and y.dtype.kind == "u" and y.dtype.itemsize == 8 and y.size and int(y.max()) >= 2**63:
        # the cast to int64 below would wrap them negative
        raise PruningLimitsError(
            f"{where} data: integer targets (class labels) must be below 2**63, got uint64 labels up to {int(y.max())}"
        )
    x, y = _as_tensor(x, f"{where} inputs"), _as_tensor(y, f"{where} targets")
    try:
        x, y = check_pair(x, y)
    except PruningLimitsError as err:
        raise PruningLimitsError(f"{where} data: {err}") from None
    if x.is_complex() or y.is_complex():
        raise PruningLimitsError(f"{where} data must be real numbers, got {x.dtype} inputs and {y.dtype} targets")
    if x.dtype == torch.bool:  # 0/1 features
        x = x.to(torch.float32)
    if y.dtype == torch.bool:  # 0/1 class labels
        y = y.to(torch.int64)
    source = x.dtype
    if x.dtype == torch.int64:
        if int(x.min()) < 0:
            raise PruningLimitsError(f"{where} data: int64 inputs are token indices and must be >= 0, got {int(x.min())}")
    else:
        x = _to_float32(x, f"{where} data: inputs")
    if y.is_floating_point():
        y = _to_float32(y, f"{where} data: targets")
        if y.ndim == 1:
            y = y[:, None]
    else:
        if y.ndim == 2 and y.shape[1] == 1:  # a column of labels, (n, 1) as Keras stores CIFAR's
            y = y[:, 0]
        if y.ndim != 1:
            one_hot = y.ndim == 2 and bool(((y == 0) | (y == 1)).all()) and bool((y.sum(dim=1) == 1).all())
            raise PruningLimitsError(
                f"{where} data: integer targets (class labels) must be 1-D, got shape {tuple(y.shape)}"
                + ("; one-hot rows? store y.argmax(1)" if one_hot else "")
            )
        y = y.to(torch.int64)
    return x, y, source


#: Integer inputs (other than int64 tokens) reaching this magnitude get a warning that they are used
#: unscaled: uint8 pixels run to 255, which torchvision users expect divided by 255 (training on them
#: diverged, with an error that blamed the learning rate; a review).
UNSCALED_INPUT_WARNING = 255


def _warn_integer_inputs(parts: list[tuple[str, Tensor | None, torch.dtype | None]], stacklevel: int = 3) -> None:
    """Warn, in one line, when a part's integer inputs other than int64 are read as features that
    may not be meant so: values reaching :data:`UNSCALED_INPUT_WARNING` in magnitude (pixels, used
    unscaled), signed integers of shape ``(N, L)`` (int32 token ids, which only int64 keeps as
    tokens), or integers beside the other part's floats (``x / 255`` saved for ``x`` but not for
    ``x_test``, which passed silently; a review).

    Args:
        parts: ``(where, x, source)`` of the training part, then the test part (``x`` ``None``
            for none): the inputs as :func:`_normalise_pair` made them and their dtype as read.
            The first part with something to say speaks; the other is named when it holds floats.
        stacklevel: :func:`warnings.warn`'s, counted from this function: 3 names the caller of
            the function that calls it (:func:`make_bundle`'s, :func:`materialize`'s).

    The values are read on the float32 copy: torch has no max of uint16, uint32, uint64.
    """
    floats = [(where, source) for where, x, source in parts if x is not None and source is not None and source.is_floating_point]
    for where, x, source in parts:
        if x is None or source is None or source.is_floating_point or x.dtype == torch.int64 or not x.numel():
            continue
        low, high = int(x.min()), int(x.max())
        beside = [(other, kind) for other, kind in floats if other != where]
        advice = []
        if x.ndim == 2 and source.is_signed:
            advice.append("token indices? store them as int64 (x.astype(np.int64))")
        if max(high, -low) >= UNSCALED_INPUT_WARNING:
            advice.append("pixels? divide them by 255 (x / 255.0); other features: scale them")
        if beside and not advice:
            advice.append(f"scale them as the {beside[0][0]} inputs are")
        if not advice:
            continue
        name = str(source).removeprefix("torch.")
        company = f", beside {str(beside[0][1]).removeprefix('torch.')} {beside[0][0]} inputs" if beside else ""
        warnings.warn(
            f"the {where} inputs are {name} values from {low} to {high} of shape {tuple(x.shape)}{company}, used as "
            f"stored (float32, not scaled): {'; '.join(advice)}",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
        return


def _to_float32(values: Tensor, name: str) -> Tensor:
    """``values`` as float32, refusing finite values that become infinite (float64 beyond 3.4e38)."""
    cast = values.to(torch.float32)
    if values.dtype != torch.float32 and not torch.isfinite(cast).all():  # the source is finite (check_pair)
        raise PruningLimitsError(
            f"{name} exceed float32's range, which the library computes in: got values up to "
            f"{float(values.abs().max()):.3g}"
        )
    return cast


def _is_samples(data: Any) -> bool:
    """Whether a tuple or list that is no pair can be a data set of samples (each a tuple, list or
    dict); ``(x, y, "extra")`` cannot, and was batched into a ``TypeError`` of torch's."""
    return all(isinstance(item, (tuple, list, dict)) for item in data)


def materialize(data: Any, where: str = "training") -> tuple[Tensor, Tensor]:
    """All of ``data`` (DataLoader, Dataset or ``(x, y)`` pair) as one ``(x, y)`` tensor pair.

    The samples are held in memory, in the order the data yields them.

    Integer inputs other than int64 that look unscaled get a warning (:func:`_warn_integer_inputs`).

    Raises:
        PruningLimitsError: unsupported type, empty data, mismatched lengths, non-finite values.
        UserCodeError: reading the data failed (a Dataset's ``__getitem__``, a collate function).
    """
    x, y, source = _read_pair(data, where)
    _warn_integer_inputs([(where, x, source)])
    return x, y


def _read_pair(data: Any, where: str) -> tuple[Tensor, Tensor, torch.dtype]:
    """:func:`materialize`'s pair, and the inputs' dtype as read (:func:`_normalise_pair`)."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and not _is_data_source(data[0]):
        return _normalise_pair(data[0], data[1], where)
    if isinstance(data, (tuple, list)) and not _is_samples(data):
        raise PruningLimitsError(
            f"{where} data must be an (x, y) pair or a sequence of (x, y) samples, got a {type(data).__name__} of {len(data)}"
        )
    try:
        batches = list(iter_batches(data))
    except PruningLimitsError as err:
        raise PruningLimitsError(f"{where} data: {err}") from None
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's Dataset, sampler or collate function
        reraise_interrupt(err)
        raise UserCodeError(f"reading the {where} data failed: {error_line(err)}") from err
    xs = [b[0] for b in batches]
    ys = [b[1] for b in batches]
    try:
        x, y = torch.cat([torch.as_tensor(v) for v in xs]), torch.cat([torch.as_tensor(v) for v in ys])
    except (RuntimeError, TypeError) as err:
        raise PruningLimitsError(f"{where} data: batches of different shapes cannot be joined ({err})") from None
    return _normalise_pair(x, y, where)


def _is_data_source(value: Any) -> bool:
    return isinstance(value, (DataLoader, Dataset, DataBundle)) or (
        isinstance(value, (tuple, list)) and len(value) == 2
    )


def _check_labels(bundle: DataBundle) -> None:
    if bundle.task != "classification":
        return
    for name, y in (("training", bundle.y_train), ("test", bundle.y_test)):
        if y is None:
            continue
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= bundle.num_outputs:
            raise PruningLimitsError(
                f"{name} labels must lie in [0, {bundle.num_outputs}), got labels from {low} to {high}"
            )


def _check_label_signs(y: Tensor, y_test: Tensor | None) -> None:
    """Refuse negative class labels in one line (the range ``[0, largest + 1)`` the message named
    before was circular: labels {-1, 0} read "must lie in [0, 1)"); PyTorch's ignore index -100
    is named, since it is not skipped here."""
    for name, labels in (("training", y), ("test", y_test)):
        if labels is None or not labels.numel() or int(labels.min()) >= 0:
            continue
        low, high = int(labels.min()), int(labels.max())
        ignore = "; -100 (PyTorch's ignore_index) is not skipped here: drop those samples" if bool((labels == -100).any()) else ""
        raise PruningLimitsError(
            f"{name} labels must lie in [0, K): integer targets are class indices 0, 1, ..., K − 1 and must be >= 0, "
            f"got labels from {low} to {high}{ignore}"
        )


def _warn_missing_classes(y: Tensor, y_test: Tensor | None, classes: int, split: bool) -> None:
    """Warn when classes in ``[0, classes)``, the number inferred from the largest label, hold no
    training sample: each is an output of the model all the same, which changes ``D`` and ``s*``
    (1-based labels {1, 2} gave a 3-output network, integer ages 18..73 a 74-class one; a review).

    Labels of both parts that run without a gap from ``lo > 0`` are named as 1-based (and the
    classes only the test part holds); other gaps only when the training part has at least
    ``classes`` samples (a small subset of ImageNet's labels cannot hold every class): many
    missing classes (at least 3, and more than a quarter) as integer values that may be
    regression targets, a few by their numbers, with those the test part holds (a class in the
    test part alone, a rare class the hold-out took: ``split``).
    """
    present = torch.unique(y)
    missing = classes - len(present)
    if missing <= 0:
        return
    low, high = int(present[0]), int(present[-1])
    every = present if y_test is None else torch.unique(torch.cat([y, y_test]))
    first = int(every[0])
    held = torch.zeros(classes, dtype=torch.bool)
    held[present] = True
    absent_classes = torch.nonzero(~held).flatten().tolist()
    in_test = set() if y_test is None else set(torch.unique(y_test).tolist())
    test_holds = [c for c in absent_classes if c in in_test]

    def named(numbers: list[int]) -> str:
        return ", ".join(str(c) for c in numbers[:10]) + (", ..." if len(numbers) > 10 else "")

    if first > 0 and len(every) == classes - first:  # both parts' labels run first..classes-1 without a gap
        absent = "class 0 has no sample but gets an output" if first == 1 else f"classes 0..{first - 1} have no sample but get outputs"
        subject = "the training labels" if low == first else "the labels"
        shift = f"y - {first}" if y_test is None else f"y - {first}, y_test - {first}"
        only = ""
        if test_holds:
            only = f"; class{'es' if len(test_holds) > 1 else ''} {named(test_holds)} only in the test part"
        message = (
            f"{subject} start at {first}: {absent} of the model ({classes} classes), which changes D and s*; "
            f"1-based labels? subtract {first} ({shift}){only}"
        )
    elif len(y) < classes:
        return
    elif missing >= 3 and 4 * missing > classes:
        message = (
            f"{len(present)} distinct integer labels from {low} to {high} leave {missing} of the {classes} classes without "
            "a training sample, yet each gets an output of the model: integer values (ages, counts)? store float targets "
            "for regression; else number the classes 0..K-1 (np.unique(y, return_inverse=True))"
        )
    else:
        where = ""
        if test_holds:
            which = (
                ("them" if missing > 1 else "it") if len(test_holds) == missing
                else f"class{'es' if len(test_holds) > 1 else ''} {named(test_holds)}"
            )
            where = f" (the test part holds {which}" + ("; the 20 % hold-out is not stratified" if split else "") + ")"
        message = (
            f"class{'es' if missing > 1 else ''} {named(absent_classes)} of the {classes} ha{'ve' if missing > 1 else 's'} no training "
            f"sample{where}, yet {'each gets' if missing > 1 else 'it gets'} an output of the model that training never fits"
        )
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def _warn_class_like(y: Tensor, y_test: Tensor | None) -> None:
    """Warn when 1-D float targets are exactly ``0, 1, …, K − 1`` (:data:`CLASS_LIKE_TARGET_VALUES`):
    class labels stored as floats, or counts; several targets per sample are never labels."""
    values = y if y_test is None else torch.cat([y, y_test])
    if values.shape[1:] != (1,):
        return
    distinct, counts = torch.unique(values, return_counts=True)
    k = len(distinct)
    if (
        2 <= k <= min(CLASS_LIKE_TARGET_VALUES, len(values) // 2)
        and torch.equal(distinct, torch.arange(k, dtype=distinct.dtype))
        and (k == 2 or int(counts.min()) * 4 * k >= len(values))  # 0/1 labels, or every value well represented (counts have thin tails)
    ):
        warnings.warn(
            f"the float targets are exactly 0, 1, ..., {k - 1}: read as regression (one output, MSE); "
            f"if they are class labels, store them as integers",
            RuntimeWarning,
            stacklevel=4,
        )


def _warn_one_hot(y: Tensor, y_test: Tensor | None) -> None:
    """Warn when float targets of ``(n, K)``, ``K >= 2``, are one-hot rows (one 1, else 0):
    class labels, read as ``K``-output regression under MSE."""
    values = y if y_test is None else torch.cat([y, y_test])
    if values.ndim != 2 or values.shape[1] < 2:
        return
    if bool(((values == 0) | (values == 1)).all()) and bool((values.sum(dim=1) == 1).all()):
        warnings.warn(
            f"the float targets are one-hot rows of {values.shape[1]} values: read as regression ({values.shape[1]} "
            "outputs, MSE); if they are class labels, store integer labels (y.argmax(1))",
            RuntimeWarning,
            stacklevel=4,
        )


def _warn_channels_last(x: Tensor) -> None:
    """Warn when floating image samples look channels-last, ``(H, W, C)``: the last of their three
    dimensions is 1, 3 or 4 and the first larger than 4; they are read as ``(C, H, W)``."""
    if x.ndim == 4 and x.is_floating_point() and x.shape[3] in (1, 3, 4) and x.shape[1] > 4:
        warnings.warn(
            f"the inputs have sample shape {tuple(x.shape[1:])}, which looks channels-last: images are read as "
            f"(N, C, H, W), here {x.shape[1]} channels; transpose to (N, C, H, W) (numpy: x.transpose(0, 3, 1, 2); "
            "torch: x.permute(0, 3, 1, 2))",
            RuntimeWarning,
            stacklevel=4,
        )


#: Where :func:`make_bundle`'s number of classes comes from: the ``"labels"`` (the largest plus one,
#: which sizes a zoo model: classes without a training sample get a warning, a single class is
#: refused), or a checkpoint's ``"model"`` head (:func:`check_data_fits_model` checks the labels
#: against it, and refuses a single class only for a head of fewer than two outputs).
CLASSES_FROM = ("labels", "model")


def make_bundle(
    train: Any,
    test: Any = None,
    *,
    num_outputs: int | None = None,
    spec: str = "<python object>",
    test_source: str | None = None,
    info: dict[str, Any] | None = None,
    classes_from: str = "labels",
) -> DataBundle:
    """Turn Python data objects into a validated :class:`DataBundle`.

    Args:
        train: training data: a DataLoader, a Dataset or an ``(x, y)`` pair (tensors or
            numpy arrays), or already a :class:`DataBundle` (returned as it is when ``test``
            is ``None``).
        test: optional test data of the same kinds.
        num_outputs: number of classes (classification) or target dimension; inferred when
            ``None`` (largest label + 1 over train and test, or the target width). An inferred
            number of classes some of which hold no training sample gets a warning (1-based
            labels, integer regression values, a class missing from the training part).
        spec: recorded data spec.
        test_source: recorded origin of the test set (default ``"given"`` or ``"none"``).
        info: extra JSON-serialisable facts to record.
        classes_from: with ``num_outputs`` inferred, ``"labels"`` (default) sizes the classes
            by the labels: training labels that are all one class are refused, whichever the
            class, and classes without a training sample get a warning; ``"model"`` leaves both to
            a checkpoint's head (:func:`check_data_fits_model`; the command line's analyses of a
            checkpoint). A given ``num_outputs >= 2`` keeps a single class.

    Raises:
        PruningLimitsError: any invalid input, explained in one line.
    """
    if isinstance(train, DataBundle):
        if test is None:
            return train
        train = train.train
    x, y, source = _read_pair(train, "training")
    x_test = y_test = source_test = None
    if test is not None:
        x_test, y_test, source_test = _read_pair(test, "test")
    _warn_integer_inputs([("training", x, source), ("test", x_test, source_test)])
    return _assemble(
        x, y, x_test, y_test, num_outputs=num_outputs, spec=spec,
        test_source=test_source or ("given" if test is not None else "none"), info=info, classes_from=classes_from,
    )


def _assemble(
    x: Tensor,
    y: Tensor,
    x_test: Tensor | None,
    y_test: Tensor | None,
    *,
    num_outputs: int | None,
    spec: str,
    test_source: str,
    info: dict[str, Any] | None,
    classes_from: str = "labels",
) -> DataBundle:
    """:func:`make_bundle`'s checks and inferences on pairs :func:`_normalise_pair` has produced
    already (the ``.npz`` hold-out passes its parts here, not through another validation pass)."""
    if classes_from not in CLASSES_FROM:
        raise PruningLimitsError(f"classes_from must be one of {', '.join(CLASSES_FROM)}, got {describe(classes_from)}")
    if x.ndim == 1:  # the zoo failed later: "cannot build a model for input shape ()"
        raise PruningLimitsError(
            f"training inputs of shape {tuple(x.shape)} hold one value per sample: store x as (N, 1) (x[:, None]), "
            "one feature per sample"
        )
    if x_test is not None and y_test is not None:
        if x_test.shape[1:] != x.shape[1:]:
            raise PruningLimitsError(
                f"test inputs have sample shape {tuple(x_test.shape[1:])}, training inputs {tuple(x.shape[1:])}"
            )
        if y_test.dtype != y.dtype or y_test.shape[1:] != y.shape[1:]:
            raise PruningLimitsError(
                f"test targets ({y_test.dtype}, sample shape {tuple(y_test.shape[1:])}) do not match "
                f"training targets ({y.dtype}, sample shape {tuple(y.shape[1:])})"
            )
    samples = len(x) + (0 if x_test is None else len(x_test))
    _warn_channels_last(x)
    tokens = [t for t in (x, x_test) if t is not None and t.dtype == torch.int64 and t.numel()]
    if tokens:
        vocab, count = max(int(t.max()) for t in tokens) + 1, sum(t.numel() for t in tokens)
        limit = max(MIN_VOCAB_LIMIT, 2 * count)
        if vocab > limit:
            warnings.warn(
                f"int64 inputs are token indices: the largest, {vocab - 1}, implies a vocabulary of {vocab} for "
                f"{count} tokens (more than max({MIN_VOCAB_LIMIT}, 2 × tokens)), which a zoo model would embed: a stray token?",
                RuntimeWarning,
                stacklevel=3,
            )
    single = None  # the class of training labels that hold one
    if y.is_floating_point():
        task = "regression"
        inferred = int(np.prod(y.shape[1:]))
        _warn_class_like(y, y_test)
        _warn_one_hot(y, y_test)
    else:
        task = "classification"
        _check_label_signs(y, y_test)
        inferred = int(max(int(y.max()), -1 if y_test is None else int(y_test.max()))) + 1
        single = int(y[0]) if bool((y == y[0]).all()) else None
        limit = max(MIN_CLASS_LIMIT, 2 * samples)
        if num_outputs is None and inferred > limit:
            warnings.warn(
                f"the largest label, {inferred - 1}, implies {inferred} classes for {samples} samples (more than "
                f"max({MIN_CLASS_LIMIT}, 2 × samples)), which a zoo model would get as outputs: a stray label?",
                RuntimeWarning,
                stacklevel=3,
            )
        elif num_outputs is None and single is None and classes_from == "labels":
            _warn_missing_classes(y, y_test, inferred, test_source == "split")
    given = num_outputs is not None
    if num_outputs is None:
        num_outputs = inferred
    elif isinstance(num_outputs, bool) or not isinstance(num_outputs, int) or num_outputs < 1:
        raise PruningLimitsError(f"num_outputs must be an integer >= 1, got {describe(num_outputs)}")
    elif task == "regression" and num_outputs != inferred:
        raise PruningLimitsError(f"num_outputs is {num_outputs} but the regression targets have {inferred} values")
    if single is not None and (num_outputs < 2 if given else classes_from == "labels"):
        # one class, whichever its label (all 1 passed with a 2-output head before, all 0 was refused)
        if spec == "<python object>":
            outputs = f"num_outputs {num_outputs}" if given else f"num_outputs not given (inferred {num_outputs})"
            raise PruningLimitsError(
                f"classification needs at least two classes, got the training labels all {single} and {outputs}: one "
                "class; give num_outputs >= 2 to use them with a model of more outputs, or float targets for regression"
            )
        raise PruningLimitsError(  # a spec's data: the command line has no num_outputs
            f"classification needs at least two classes, got the training labels of {spec!r} all {single}: one class; "
            "store labels of at least two classes, or float targets for regression"
        )
    bundle = DataBundle(
        x_train=x,
        y_train=y,
        x_test=x_test,
        y_test=y_test,
        task=task,
        num_outputs=int(num_outputs),
        input_shape=tuple(x.shape[1:]),
        spec=spec,
        test_source=test_source,
        info=dict(info or {}),
    )
    _check_labels(bundle)
    return bundle


# --------------------------------------------------------------------------- specs


#: The largest integer a data option takes (sizes, counts, seeds): torch's sizes and numpy's
#: seeds overflow above int64 with a traceback (``n=1e20``); below it a size too large for memory
#: is the one-line out-of-memory error.
MAX_INT_OPTION = 2**63 - 1


def _parse_options(name: str, text: str, allowed: dict[str, float]) -> dict[str, float]:
    options: dict[str, float] = {}
    if not text:
        return options
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            raise PruningLimitsError(
                f"data spec '{name}' takes options {', '.join(f'{k}=...' for k in allowed)}, got {item!r}"
            )
        try:
            number = float(value)
        except ValueError:
            raise PruningLimitsError(f"data option {key} must be a number, got {value!r}") from None
        if not math.isfinite(number):  # noise=nan gave NaN targets, noise=inf infinite inputs
            raise PruningLimitsError(f"data option {key} of '{name}' must be a finite number, got {value!r}")
        if isinstance(allowed[key], int) and not number.is_integer():
            raise PruningLimitsError(f"data option {key} must be an integer, got {value!r}")
        if isinstance(allowed[key], int) and abs(number) > MAX_INT_OPTION and key != "seed":  # n=1e20 overflowed in torch
            # (a seed's range is its loader's to check: mnist1d's [0, 2**32))
            raise PruningLimitsError(f"data option {key} must be at most {MAX_INT_OPTION}, got {value!r}")
        if key in options:
            raise PruningLimitsError(f"data option {key} is given twice in {text!r}")
        options[key] = int(number) if isinstance(allowed[key], int) else number
    return options


def _seeded_permutation(n: int, seed: int) -> Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))


def _load_digits(options: dict[str, float], seed: int, spec: str) -> DataBundle:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(digits.data.astype(np.float32) / 16.0)
    y = torch.from_numpy(digits.target.astype(np.int64))
    n_train = int(options.get("train", DIGITS_TRAIN))
    if not 1 <= n_train < len(x):
        raise PruningLimitsError(f"digits:train must be between 1 and {len(x) - 1}, got {n_train}")
    perm = _seeded_permutation(len(x), seed)
    tr, te = perm[:n_train], perm[n_train:]
    return make_bundle(
        (x[tr], y[tr]), (x[te], y[te]), num_outputs=10, spec=spec, info={"image_shape": [1, 8, 8]}
    )


def _load_mnist1d(options: dict[str, float], spec: str) -> DataBundle:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    if "n" in options:
        if options["n"] < 20:
            raise PruningLimitsError(f"mnist1d:n must be at least 20, got {options['n']}")
        args.num_samples = int(options["n"])
    if "seed" in options:
        if not 0 <= options["seed"] < 2**32:  # numpy's legacy seeding, which make_dataset uses
            raise PruningLimitsError(f"mnist1d:seed must be an integer in [0, 2**32), got {options['seed']}")
        args.seed = int(options["seed"])
    # make_dataset seeds numpy's and Python's global generators: keep the caller's state.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        raw = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return make_bundle(
        (raw["x"], raw["y"].astype(np.int64)),
        (raw["x_test"], raw["y_test"].astype(np.int64)),
        num_outputs=10,
        spec=spec,
        info={"generator_seed": int(args.seed), "sequence_length": int(args.final_seq_length)},
    )


def _load_synthetic(options: dict[str, float], seed: int, spec: str) -> DataBundle:
    opts = {**_SYNTHETIC_DEFAULTS, **options}
    for key in ("n", "test", "d", "hidden", "out"):
        if opts[key] < 1:
            raise PruningLimitsError(f"synthetic:{key} must be an integer >= 1, got {opts[key]}")
    if opts["noise"] < 0:
        raise PruningLimitsError(f"synthetic:noise must be >= 0, got {opts['noise']}")
    n, n_test, d, hidden, out = (int(opts[k]) for k in ("n", "test", "d", "hidden", "out"))
    gen = torch.Generator().manual_seed(int(seed))
    w1 = torch.randn(d, hidden, generator=gen) / d**0.5
    w2 = torch.randn(hidden, out, generator=gen) / hidden**0.5
    x = torch.randn(n + n_test, d, generator=gen)
    y = torch.tanh(x @ w1) @ w2 + opts["noise"] * torch.randn(n + n_test, out, generator=gen)
    return make_bundle(
        (x[:n], y[:n]),
        (x[n:], y[n:]),
        spec=spec,
        info={key: opts[key] for key in _SYNTHETIC_DEFAULTS},
    )


def _check_counts(name: str, opts: dict[str, float], keys: tuple[str, ...], minimum: int = 1) -> None:
    for key in keys:
        if opts[key] < minimum:
            raise PruningLimitsError(f"{name}:{key} must be an integer >= {minimum}, got {opts[key]}")


def _load_patterns(options: dict[str, float], seed: int, spec: str) -> DataBundle:
    opts = {**_PATTERNS_DEFAULTS, **options}
    _check_counts("patterns", opts, ("n", "test", "size", "channels"))
    _check_counts("patterns", opts, ("classes",), 2)
    if opts["noise"] < 0:
        raise PruningLimitsError(f"patterns:noise must be >= 0, got {opts['noise']}")
    n, n_test, classes, size, channels = (int(opts[k]) for k in ("n", "test", "classes", "size", "channels"))
    gen = torch.Generator().manual_seed(int(seed))
    grid = torch.randn(classes, channels, 4, 4, generator=gen)
    templates = nn.functional.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)
    y = torch.randint(classes, (n + n_test,), generator=gen)
    contrast = 0.5 + torch.rand(n + n_test, 1, 1, 1, generator=gen)
    x = contrast * templates[y] + opts["noise"] * torch.randn(n + n_test, channels, size, size, generator=gen)
    with warnings.catch_warnings():  # (channels, size, size) by construction, whatever the sizes
        warnings.filterwarnings("ignore", message="the inputs have sample shape .* looks channels-last", category=RuntimeWarning)
        return make_bundle(
            (x[:n], y[:n]), (x[n:], y[n:]), num_outputs=classes, spec=spec,
            info={key: opts[key] for key in _PATTERNS_DEFAULTS},
        )


def _load_tokens(options: dict[str, float], seed: int, spec: str) -> DataBundle:
    opts = {**_TOKENS_DEFAULTS, **options}
    _check_counts("tokens", opts, ("n", "test", "length"))
    _check_counts("tokens", opts, ("classes", "vocab"), 2)
    if opts["classes"] * opts["vocab"] > TOKENS_MAX_TABLE:  # vocab=1e9 drew a 16 GB table for 10 samples
        raise PruningLimitsError(
            f"tokens: classes × vocab must be at most {TOKENS_MAX_TABLE} (its table of token probabilities, "
            f"{TOKENS_MAX_TABLE * 4 // 2**20} MiB of float32), got {opts['classes']} × {opts['vocab']}"
        )
    n, n_test, classes, vocab, length = (int(opts[k]) for k in ("n", "test", "classes", "vocab", "length"))
    gen = torch.Generator().manual_seed(int(seed))
    probabilities = torch.softmax(1.5 * torch.randn(classes, vocab, generator=gen), dim=1)
    y = torch.randint(classes, (n + n_test,), generator=gen)
    # the samples' distributions a chunk of rows at a time (all at once: samples × vocab floats, 10 GB for
    # vocab=1e6); multinomial draws row after row, so the tokens are those of one call
    rows = max(1, TOKENS_CHUNK_VALUES // vocab)
    x = torch.cat([
        torch.multinomial(probabilities[y[start : start + rows]], length, replacement=True, generator=gen)
        for start in range(0, n + n_test, rows)
    ]).to(torch.int64)
    with warnings.catch_warnings():  # a large vocabulary asked for is no stray token
        warnings.filterwarnings("ignore", message="int64 inputs are token indices", category=RuntimeWarning)
        return make_bundle(
            (x[:n], y[:n]), (x[n:], y[n:]), num_outputs=classes, spec=spec,
            info={key: opts[key] for key in _TOKENS_DEFAULTS},
        )


def _npz_array(archive: Any, key: str, path: str) -> np.ndarray:
    """Array ``key`` of an open ``.npz`` archive; an object array is named, never unpickled."""
    _check_npz_member_size(archive, key, path)
    try:
        return archive[key]
    except ValueError as err:
        if "allow_pickle" not in str(err):  # numpy's "Object arrays cannot be loaded when allow_pickle=False"
            raise
        raise PruningLimitsError(
            f"array {key} of {path!r} must be a numeric array, got dtype object (Python objects, never loaded)"
        ) from None


def _check_npz_member_size(archive: Any, key: str, path: str) -> None:
    """Refuse a member whose ``.npy`` header declares more data than the member holds: numpy
    allocates the declared array before it reads a byte (a 64-byte member declaring shape
    ``(10**12, 8)`` asked for 29 TiB). Members that are no ``.npy`` file of version 1 or 2,
    and object arrays, are left to numpy.

    Raises:
        PruningLimitsError: naming the declared shape and size and the member's.
    """
    names = archive.zip.namelist()
    name = f"{key}.npy" if f"{key}.npy" in names else key
    info = archive.zip.getinfo(name)
    with archive.zip.open(info) as member:
        magic = member.read(len(np.lib.format.MAGIC_PREFIX) + 2)
        if not magic.startswith(np.lib.format.MAGIC_PREFIX) or magic[-2:] not in (b"\x01\x00", b"\x02\x00"):
            return
        read_header = np.lib.format.read_array_header_1_0 if magic[-2] == 1 else np.lib.format.read_array_header_2_0
        try:
            shape, _, dtype = read_header(member)
        except ValueError as err:  # numpy's "Header info length (10166) is large and may not be safe to load securely"
            if "max_header_size" not in str(err):
                raise
            raise PruningLimitsError(
                f"array {key} of {path!r} must be a numeric array, got a .npy header too large to read safely "
                "(a structured dtype of many fields?)"
            ) from None
        if dtype.hasobject:
            return
        declared = math.prod(shape) * dtype.itemsize
        held = info.file_size - member.tell()
    if declared > held:
        raise PruningLimitsError(
            f"array {key} of {path!r} declares shape {shape} of {dtype}, {declared} bytes, "
            f"but its member holds {held} bytes of data"
        )


def _load_npz(path: str, seed: int, spec: str, classes_from: str = "labels") -> DataBundle:
    if not os.path.exists(path):
        raise PruningLimitsError(f"data file {path!r} does not exist")
    if not os.path.isfile(path):
        raise PruningLimitsError(f"data file {path!r} is not a file")
    try:
        with open(path, "rb") as file:  # opened here so that a read error is reported as one
            is_zip = zipfile.is_zipfile(file)
        if is_zip:  # else np.load would read it as a pickle or a bare .npy
            with np.load(path, allow_pickle=False) as archive:
                names = list(archive.files)
                arrays = {key: _npz_array(archive, key, path) for key in NPZ_ARRAYS if key in names}  # others unread
    except PruningLimitsError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise PruningLimitsError(f"cannot read {path!r} as an .npz archive: {err}") from None
    if not is_zip:
        raise PruningLimitsError(f"{path!r} is not an .npz archive or is damaged (expected a zip file written by numpy.savez)")
    missing = [key for key in ("x", "y") if key not in arrays]
    if missing:
        positional = " (saved without names: save with np.savez(path, x=x, y=y))" if names and all(n.startswith("arr_") for n in names) else ""
        raise PruningLimitsError(
            f"{path!r} lacks array(s) {missing}; expected x and y (optional x_test, y_test), found {sorted(names)}{positional}"
        )
    has_test = [key in arrays for key in ("x_test", "y_test")]
    if any(has_test) and not all(has_test):
        raise PruningLimitsError(f"{path!r} must hold both x_test and y_test or neither, found {sorted(names)}")
    if all(has_test):
        return make_bundle((arrays["x"], arrays["y"]), (arrays["x_test"], arrays["y_test"]), spec=spec, classes_from=classes_from)
    x, y, source = _normalise_pair(arrays.pop("x"), arrays.pop("y"), "training")
    if len(x) < 2:
        raise PruningLimitsError(f"{path!r} has {len(x)} sample(s) and no test set: need at least 2 to split")
    n_test = max(1, int(round(NPZ_TEST_FRACTION * len(x))))
    perm = _seeded_permutation(len(x), seed)
    # one permuted copy, whose two parts are views (x[perm[n_test:]] and x[perm[:n_test]], as before,
    # in the same order), and the file's arrays released after it. The peak is here: the file's x and
    # this copy, plus the freed chunks of check_pair's finiteness test that the allocator keeps
    # (float32 x of 95 MiB: 225 to 241 MiB above the resident size before load_data; of 39 MiB: 113)
    x, y = x[perm], y[perm]
    del arrays, perm
    _warn_integer_inputs([("training", x[n_test:], source), ("test", x[:n_test], source)], stacklevel=4)  # load_data's caller
    return _assemble(  # validated by _normalise_pair already
        x[n_test:], y[n_test:], x[:n_test], y[:n_test], num_outputs=None, spec=spec, test_source="split", info=None,
        classes_from=classes_from,
    )


def _load_callable(spec: str, classes_from: str = "labels") -> DataBundle:
    parsed = parse_callable_spec(spec, "data spec")
    func = parsed.resolve("data spec")
    try:
        result = func(**parsed.kwargs)
    except Exception as err:  # noqa: BLE001
        reraise_interrupt(err)
        raise UserCodeError(f"data function {spec!r} failed: {type(err).__name__}: {err}") from None
    expected = (
        f"data function {spec!r} must return a DataBundle, an (x, y) pair, a Dataset or a DataLoader "
        "(or a (train, test) pair of those, test None for none)"
    )
    if isinstance(result, (tuple, list)) and len(result) != 2 and not _is_samples(result):  # (x, y, "extra")
        raise PruningLimitsError(f"{expected}, got a {type(result).__name__} of {len(result)}")
    if not isinstance(result, (DataBundle, tuple, list, DataLoader, Dataset)):
        raise PruningLimitsError(f"{expected}, got {describe(result)}")
    try:
        if isinstance(result, DataBundle):
            return make_bundle(result.train, result.test, num_outputs=result.num_outputs, spec=spec,
                               test_source=result.test_source, info=result.info)
        if isinstance(result, (tuple, list)) and len(result) == 2 and all(_is_data_source(part) for part in result):
            return make_bundle(result[0], result[1], spec=spec, classes_from=classes_from)
        if isinstance(result, (tuple, list)) and len(result) == 2 and result[1] is None and _is_data_source(result[0]):
            return make_bundle(result[0], spec=spec, classes_from=classes_from)  # (train, None): no test set
        return make_bundle(result, spec=spec, classes_from=classes_from)
    except UserCodeError as err:  # the returned Dataset or DataLoader failed while it was read
        raise UserCodeError(f"data function {spec!r}: {err}") from err.__cause__


def load_data(spec: str, *, seed: int = 0, classes_from: str = "labels") -> DataBundle:
    """Load the data named by ``spec`` (see the module docstring for the forms).

    Args:
        spec: ``digits``, ``mnist1d``, ``synthetic``, ``patterns``, ``tokens`` (each with optional ``:key=value,...``),
            a path ending in ``.npz`` (``~`` expanded), or ``package.module:function``.
        seed: an integer in ``[0, 2**64)``, seed of the ``digits`` split, of the ``synthetic``, ``patterns`` and ``tokens`` draws and of the ``.npz``
            hold-out split. ``mnist1d`` ignores it (its own ``seed`` option sets the generator).
        classes_from: for a file's or a function's integer labels, ``"labels"`` or ``"model"``
            (data for a checkpoint, whose head decides): :func:`make_bundle`.

    Raises:
        PruningLimitsError: unknown spec, bad options or seed, unreadable file, failing import, invalid data.
        MemoryError: a built-in generator's tensors exceed memory (one line naming the spec).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise PruningLimitsError(f"data spec must be a non-empty string, got {describe(spec)}")
    seed = check_seed("seed", seed)  # 2**64 was a raw ValueError of torch's, -1 was taken
    spec = spec.strip()
    name, _, options = spec.partition(":")
    if name == "digits":
        return _load_digits(_parse_options(name, options, _BUILTIN_DEFAULTS["digits"]), seed, spec)
    if name == "mnist1d":
        return _load_mnist1d(_parse_options(name, options, _BUILTIN_DEFAULTS["mnist1d"]), spec)
    if name == "synthetic":
        allowed = {k: (int(v) if k != "noise" else float(v)) for k, v in _SYNTHETIC_DEFAULTS.items()}
        with too_large_for_memory(f"data spec {spec!r}"):
            return _load_synthetic(_parse_options(name, options, allowed), seed, spec)
    if name == "patterns":
        allowed = {k: (int(v) if k != "noise" else float(v)) for k, v in _PATTERNS_DEFAULTS.items()}
        with too_large_for_memory(f"data spec {spec!r}"):
            return _load_patterns(_parse_options(name, options, allowed), seed, spec)
    if name == "tokens":
        allowed = {k: int(v) for k, v in _TOKENS_DEFAULTS.items()}
        with too_large_for_memory(f"data spec {spec!r}"):
            return _load_tokens(_parse_options(name, options, allowed), seed, spec)
    if classes_from not in CLASSES_FROM:
        raise PruningLimitsError(f"classes_from must be one of {', '.join(CLASSES_FROM)}, got {describe(classes_from)}")
    if spec.lower().endswith(".npz"):
        spec = os.path.expanduser(spec)  # a quoted '~/x.npz' reaches here unexpanded
        return _load_npz(spec, seed, spec, classes_from)
    if looks_callable(spec):
        return _load_callable(spec, classes_from)
    hint = ""
    if spec.lower().endswith(".npy"):
        hint = "; a .npy file holds one array: put x and y in an .npz (np.savez(path, x=x, y=y))"
    elif spec.lower().endswith((".csv", ".txt", ".tsv")):
        hint = "; read it into arrays and save them as an .npz (np.savez(path, x=x, y=y))"
    raise PruningLimitsError(
        f"unknown data spec {spec!r}: expected one of {', '.join(BUILTIN_DATA)}, a .npz file, "
        f"or package.module:function[(key=literal, ...)]{hint}"
    )


def same_data_spec(a: str, b: str) -> bool:
    """Whether two data specs name the same data: equal once stripped, one ``.npz`` file under two
    paths, or one built-in source with the same options, its defaults filled in, in any order and
    spelling of numbers (``digits:train=1400`` is ``digits``)."""
    a, b = a.strip(), b.strip()
    if a == b:
        return True
    if a.lower().endswith(".npz") and b.lower().endswith(".npz"):
        try:
            return os.path.samefile(os.path.expanduser(a), os.path.expanduser(b))
        except OSError:
            return False
    (name_a, _, options_a), (name_b, _, options_b) = a.partition(":"), b.partition(":")
    if name_a != name_b or name_a not in BUILTIN_DATA:
        return False

    def options(text: str) -> dict[str, float] | None:
        try:
            items = [item.partition("=") for item in text.split(",")] if text.strip() else []
            return {**_BUILTIN_DEFAULTS[name_a], **{key.strip(): float(value) for key, _, value in items}}
        except ValueError:
            return None

    return options(options_a) is not None and options(options_a) == options(options_b)


#: Relative difference of a training part's float64 sums under which data whose bytes differ from
#: those recorded by :func:`bundle_fingerprint` still count as the same: a generator's float32
#: rounding on another CPU or torch build (tanh, matrix products) moves values by an ulp.
FINGERPRINT_RTOL = 1e-5
#: Values of a tensor converted to float64 at a time by :func:`bundle_fingerprint` (cache-sized:
#: 0.15 s for 50 000 CIFAR images, against 0.75 s with 2**20).
_SUM_CHUNK = 2**16


def bundle_fingerprint(bundle: DataBundle) -> dict[str, Any]:
    """What identifies a bundle's data later: the split sizes and a fingerprint of the training part.

    Args:
        bundle: the data a model is trained on.

    Returns:
        ``{"train_size", "test_size", "train_sha256", "train_sums"}``: ``train_sha256`` over the
        dtypes, shapes and bytes of ``x_train`` and ``y_train``; ``train_sums`` their float64 sums
        and sums of squares (``[Σx, Σx², Σy, Σy²]``), which tell rounding from other data.
    """
    return {
        "train_size": len(bundle.x_train),
        "test_size": 0 if bundle.x_test is None else len(bundle.x_test),
        "train_sha256": _train_digest(bundle),
        "train_sums": _train_sums(bundle),
    }


def _train_digest(bundle: DataBundle) -> str:
    digest = hashlib.sha256()
    for tensor in (bundle.x_train, bundle.y_train):
        array = np.ascontiguousarray(tensor.detach().cpu().numpy())
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.reshape(-1).view(np.uint8))
    return digest.hexdigest()


def _train_sums(bundle: DataBundle) -> list[float]:
    """``[Σ c_k x_k, Σ x_k², Σ c_k y_k, Σ y_k²]`` over the flattened training inputs and targets,
    ``c_k = cos(0.7548776662 k + 0.5)`` (the weights of :mod:`pruning_limits.distributed`'s
    fingerprint): the weighted sums move when samples are reordered, labels re-paired with other
    inputs or values moved within a sample, which plain sums did not see (a review's digits with
    shuffled labels passed as the same data)."""
    sums: list[float] = []
    for tensor in (bundle.x_train, bundle.y_train):
        flat, total, squares = tensor.detach().cpu().reshape(-1), 0.0, 0.0
        for start in range(0, flat.numel(), _SUM_CHUNK):
            part = flat[start : start + _SUM_CHUNK].to(torch.float64)
            index = torch.arange(start, start + part.numel(), dtype=torch.float64)
            total += float(torch.cos(0.7548776662 * index + 0.5).dot(part))
            squares += float(part.dot(part))
        sums += [total, squares]
    return sums


def data_drift(recorded: Any, bundle: DataBundle) -> str | None:
    """How ``bundle`` differs from the data a :func:`bundle_fingerprint` record describes, or ``None``.

    Args:
        recorded: a training record's fingerprint (anything else, e.g. an older bundle's missing
            one, gives ``None``: nothing to compare).
        bundle: the data loaded now.

    Returns:
        ``None`` when they are the same (equal bytes; for a built-in generated source, whose
        float32 values may round otherwise on another machine, weighted sums equal up to
        :data:`FINGERPRINT_RTOL`), else the difference in words, e.g. ``"64 training samples,
        training used 40"``. A file or a function's data must match byte for byte.
    """
    if not isinstance(recorded, dict) or not isinstance(recorded.get("train_size"), int):
        return None
    train_size, test_size = len(bundle.x_train), 0 if bundle.x_test is None else len(bundle.x_test)
    if train_size != recorded["train_size"]:
        return f"{train_size} training samples, training used {recorded['train_size']}"
    if isinstance(recorded.get("test_size"), int) and test_size != recorded["test_size"]:
        return f"{test_size} test samples, training had {recorded['test_size']}"
    old = recorded.get("train_sums")
    if not (isinstance(old, list) and len(old) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in old)):
        return None
    if _train_digest(bundle) == recorded.get("train_sha256"):
        return None
    if bundle.spec.strip().partition(":")[0] not in BUILTIN_DATA:  # a file's bytes do not round
        return f"the same {train_size} training samples in number, other values"
    now = _train_sums(bundle)
    for j, tensor in enumerate((bundle.x_train, bundle.y_train)):  # a sum's rounding: a relative ulp of Σ|v| <= sqrt(count · Σv²)
        total, squares = now[2 * j : 2 * j + 2]
        if not (abs(total - old[2 * j]) <= FINGERPRINT_RTOL * math.sqrt(tensor.numel() * max(squares, 0.0))
                and abs(squares - old[2 * j + 1]) <= FINGERPRINT_RTOL * squares):
            return f"the same {train_size} training samples in number, other values"
    return None


def _forward_hint(model: nn.Module, x: Tensor, err: BaseException) -> str:
    """What to do about a forward failure on ``x``: a Hugging Face config's missing pad token or
    too few positions, or that int64 inputs are token indices; ``""`` for none."""
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "pad_token_id", 0) is None and "padding token" in str(err):
        return "; set pad_token_id in config.json (a token id the inputs do not hold: each sequence's last token is classified)"
    if x.dtype != torch.int64:
        return ""
    for key in ("n_positions", "max_position_embeddings"):  # GPT-2 maps the second to its config.json key, the first
        positions = getattr(config, key, None) if config is not None else None
        if isinstance(positions, int) and not isinstance(positions, bool) and x.dim() >= 2 and 0 < positions < x.shape[-1]:
            return f"; the sequences have {x.shape[-1]} tokens, more than config.json's {key} {positions}"
    return "; int64 inputs are kept as token indices (store floats for a model without an embedding)"


def _warn_pad_tokens(model: nn.Module, bundle: DataBundle) -> None:
    """Warn when token inputs hold a Hugging Face model's ``config.pad_token_id``: no attention mask
    is passed, so padded positions are attended to like any token. The built-in ``tokens`` source
    pads nothing (its token 0 is BERT's pad id by chance) and is not checked."""
    pad = getattr(getattr(model, "config", None), "pad_token_id", None)
    if not isinstance(pad, int) or isinstance(pad, bool) or bundle.x_train.is_floating_point():
        return
    if bundle.spec.strip().partition(":")[0] in BUILTIN_DATA:
        return
    held = [where for where, x in (("training", bundle.x_train), ("test", bundle.x_test)) if x is not None and bool((x == pad).any())]
    if held:
        warnings.warn(
            f"the {' and '.join(held)} inputs hold the model's pad token {pad}: no attention mask is passed, so padded "
            "positions are attended to like other tokens; use equal-length sequences without padding",
            RuntimeWarning,
            stacklevel=3,
        )


def check_data_fits_model(model: nn.Module, data: Any) -> None:
    """Run a forward pass on one training sample (and on two) and explain a mismatch in one line.

    Token inputs (integers) also run the training and test samples holding the largest token,
    so a token beyond the model's vocabulary is named here, not by an ``IndexError`` later.

    Args:
        model: the network.
        data: a :class:`DataBundle`, or data accepted by :func:`make_bundle`, read with
            ``classes_from="model"``: the model's head, not the labels, decides the classes.

    Raises:
        PruningLimitsError: the model rejects the inputs, or its output does not fit the
            targets (at least as many class logits as classes for classification, and at least
            two: a data set may lack the last classes; the target shape for regression).

    Training labels of one class (left to the model by ``classes_from="model"``, or kept by a
    given ``num_outputs``) get a one-line warning when the head has two outputs or more.
    """
    bundle = data if isinstance(data, DataBundle) else make_bundle(data, classes_from="model")  # the head decides
    device, dtype = model_device_dtype(model)
    samples = [("one sample", bundle.x_train[:1])]
    if not bundle.x_train.is_floating_point():
        for where, inputs in (("training", bundle.x_train), ("test", bundle.x_test)):
            if inputs is not None and inputs.numel():
                top = int(inputs.reshape(len(inputs), -1).max(dim=1).values.argmax())
                samples.append((f"the {where} sample with the largest token, {int(inputs[top].max())},", inputs[top : top + 1]))
    if len(bundle.x_train) >= 2:  # batches hold more than one (GPT-2's classifier refuses them without a pad token)
        samples.append(("two samples", bundle.x_train[:2]))
    name = type(model).__name__
    _warn_pad_tokens(model, bundle)
    outputs = []
    for what, x in samples:
        x = x.to(device, dtype) if x.is_floating_point() else x.to(device)
        with eval_mode(model), torch.no_grad():
            try:
                outputs.append(model(x))
            except Exception as err:  # noqa: BLE001 - explain any forward failure
                reraise_interrupt(err)
                hint = _forward_hint(model, x, err)
                raise PruningLimitsError(
                    f"model {name} does not accept inputs of shape {tuple(x.shape)} ({what} of "
                    f"{bundle.spec}): {message_line(err)}{hint}"
                ) from None
    out = logits(outputs[0])
    single = None
    if bundle.task == "classification":
        y = bundle.y_train
        single = int(y[0]) if len(y) and bool((y == y[0]).all()) else None
        classes = max(bundle.num_outputs, 2)
        fits = out.dim() == 2 and out.shape[0] == 1 and out.shape[1] >= classes
        expected, what = f"(1, C) with C >= {classes}", f"{bundle.num_outputs} classes"
        if single is not None:
            what = f"one class, the training labels all {single},"
    else:
        fits = tuple(out.shape) == (1, *bundle.y_train.shape[1:])
        expected, what = str((1, *bundle.y_train.shape[1:])), f"targets of shape {tuple(bundle.y_train.shape[1:])}"
    if not fits:
        hint = ""
        if out.dim() == 3 and not bundle.x_train.is_floating_point() and bundle.x_train.dim() == 2 and out.shape[1] == bundle.x_train.shape[1]:
            hint = "; per-token (language-model) losses are not supported by the command line (the Python API takes a loss_fn)"
        raise PruningLimitsError(
            f"model {name} returns shape {tuple(out.shape)} for one sample, expected {expected} ({what} of {bundle.spec}){hint}"
        )
    if single is not None:
        warnings.warn(
            f"the training labels of {bundle.spec} are all {single}: one class, analysed with the model's "
            f"{out.shape[1]} outputs",
            RuntimeWarning,
            stacklevel=2,
        )
