"""Where the analysis runs: ``--device auto|cpu|cuda[:i]`` and the dtype of Hessian-vector products.

The library follows the model: every product, loss and gradient is computed on the device and
in the dtype of the model's parameters. The analysis copies the model to the chosen device, in
the dtype :func:`analysis_dtype` picks (``--dtype auto``):

- on the CPU, float64 for models of at most :data:`FLOAT64_MAX_PARAMETERS` parameters
  (docs/theory.md, "Float64 analysis": float32 products carry noise of about ``1e-7·λ_max``,
  which fakes small eigenvalues where ``φ_R`` changes; on small models float64 costs little);
- on the CPU above that size, and on CUDA, in float32 (float64 when the model itself is
  float64): float64 products cost 1.6 times the time of float32 on the 1.07 M-weight MLP and
  7.5 times on a ResNet-20 (oneDNN convolutions exist for float32 only), and float64 arithmetic
  runs at a fraction of float32 speed on most GPUs, while on the 1.07 M-weight MLP the float32
  prediction was 0.03 points from the float64 reference (docs/benchmarks.md, "Float32 products").

The Lanczos recurrence stays float64 (:mod:`pruning_limits.lanczos` converts every product);
the stored basis of float32 products is float32 (``block_lanczos(basis_dtype=...)``, as
rounded as the products themselves), so only the products' float32 rounding, about
``1e-7·λ_max`` per entry, enters.
This is far below the transition ``2ε/R²`` of the networks measured so far (``7·10⁻⁵`` to
``1.7·10⁻⁴`` of ``λ_max``, docs/theory.md) but not zero: ``--dtype float64`` restores float64
products at any size.
"""

from __future__ import annotations

import torch

from ._checks import PruningLimitsError, is_device_name

#: Choices of ``--device``.
DEVICE_HELP = "auto (CUDA when available), cpu, cuda or cuda:INDEX"

#: Choices of ``--dtype``.
DTYPES = ("auto", "float64", "float32")


def resolve_device(text: str | torch.device | None = "auto") -> torch.device:
    """The torch device for ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:i"``.

    Args:
        text: one of those names, ``None`` (``"auto"``), or a ``torch.device`` of type ``cpu``
            (any index: there is one CPU device) or ``cuda``.

    Raises:
        PruningLimitsError: an unknown name, CUDA requested without CUDA, or an index out of range.
    """
    if isinstance(text, torch.device):  # by type and index: str(torch.device("cpu", 0)) is "cpu:0", no device name
        text = text.type if text.index is None or text.type == "cpu" else f"{text.type}:{text.index}"
    name = "auto" if text is None else str(text).strip().lower()
    if not is_device_name(name):
        raise PruningLimitsError(f"device must be {DEVICE_HELP}, got {text!r}")
    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    index = name.partition(":")[2]  # "cuda" or "cuda:INDEX"
    if not torch.cuda.is_available():
        raise PruningLimitsError(
            f"device {text!r} needs CUDA, which this torch ({torch.__version__}) cannot use on this machine: "
            "use --device cpu"
        )
    count = torch.cuda.device_count()
    if index and int(index) >= count:
        raise PruningLimitsError(f"device {text!r}: this machine has {count} CUDA device(s), indices 0-{count - 1}")
    return torch.device("cuda", int(index)) if index else torch.device("cuda")  # 'cuda:01' is cuda:1 (torch refuses the name)


#: ``--dtype auto`` analyses models of at most this many parameters in float64 on the CPU, larger
#: ones in float32 (module docstring; docs/benchmarks.md, "Float32 products"). The same size as
#: ``hessian.AUTO_TIMING_MAX_DIM``: below it a product costs well under a second on two cores.
FLOAT64_MAX_PARAMETERS = 100_000


def analysis_dtype(
    device: torch.device, model_dtype: torch.dtype, choice: str = "auto", parameters: int | None = None
) -> torch.dtype:
    """Dtype of the analysed copy (module docstring): ``choice`` ``"float64"``/``"float32"`` decides;
    ``"auto"`` is float64 on the CPU up to :data:`FLOAT64_MAX_PARAMETERS` parameters, else the
    model's dtype (float32 unless the model is float64).

    Args:
        device: where the analysis runs.
        model_dtype: the model's floating dtype.
        choice: ``"auto"``, ``"float64"`` or ``"float32"``.
        parameters: the model's parameter count (``None``: treated as small).
    """
    if choice not in DTYPES:
        raise PruningLimitsError(f"dtype must be one of {', '.join(DTYPES)}, got {choice!r}")
    if choice == "float64":
        return torch.float64
    if choice == "float32":
        return torch.float32
    large = parameters is not None and parameters > FLOAT64_MAX_PARAMETERS
    if device.type == "cuda" or large:
        return torch.float64 if model_dtype == torch.float64 else torch.float32
    return torch.float64
