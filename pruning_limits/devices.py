"""Where the analysis runs: ``--device auto|cpu|cuda[:i]`` and the dtype of Hessian-vector products.

The library follows the model: every product, loss and gradient is computed on the device and
in the dtype of the model's parameters. The analysis copies the model to the chosen device:

- on the CPU in float64 (docs/theory.md, "Float64 analysis": float32 products carry noise of
  about ``1e-7·λ_max``, which fakes small eigenvalues where ``φ_R`` changes);
- on CUDA in the model's own dtype (float32 for most models): float64 arithmetic runs at a
  fraction of float32 speed on most GPUs. The Lanczos vectors and the recurrence stay float64
  (:mod:`pruning_limits.lanczos` converts every product), so only the products carry float32
  rounding, about ``1e-7·λ_max`` per entry. This is far below the transition ``2ε/R²`` of
  the networks measured so far (``7·10⁻⁵`` to ``1.7·10⁻⁴`` of ``λ_max``, docs/theory.md) but not
  zero: ``dtype="float64"`` (``--dtype float64``) restores float64 products on the GPU.
"""

from __future__ import annotations

import torch

from ._checks import PruningLimitsError

#: Choices of ``--device``.
DEVICE_HELP = "auto (CUDA when available), cpu, cuda or cuda:INDEX"

#: Choices of ``--dtype``.
DTYPES = ("auto", "float64", "float32")


def resolve_device(text: str | torch.device | None = "auto") -> torch.device:
    """The torch device for ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:i"``.

    Raises:
        PruningLimitsError: an unknown name, CUDA requested without CUDA, or an index out of range.
    """
    if isinstance(text, torch.device):
        text = str(text)
    name = "auto" if text is None else str(text).strip().lower()
    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        index = name.partition(":")[2]
        if index and not index.isdigit():
            raise PruningLimitsError(f"device must be {DEVICE_HELP}, got {text!r}")
        if not torch.cuda.is_available():
            raise PruningLimitsError(
                f"device {text!r} needs CUDA, which this torch ({torch.__version__}) cannot use on this machine: "
                "use --device cpu"
            )
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise PruningLimitsError(f"device {text!r}: this machine has {count} CUDA device(s), indices 0-{count - 1}")
        return torch.device(name)
    raise PruningLimitsError(f"device must be {DEVICE_HELP}, got {text!r}")


def analysis_dtype(device: torch.device, model_dtype: torch.dtype, choice: str = "auto") -> torch.dtype:
    """Dtype of the analysed copy: float64 on the CPU, the model's on CUDA (``choice`` overrides).

    Args:
        device: where the analysis runs.
        model_dtype: the model's floating dtype.
        choice: ``"auto"``, ``"float64"`` or ``"float32"``.
    """
    if choice not in DTYPES:
        raise PruningLimitsError(f"dtype must be one of {', '.join(DTYPES)}, got {choice!r}")
    if choice == "float64":
        return torch.float64
    if choice == "float32":
        return torch.float32
    if device.type == "cuda" and model_dtype.is_floating_point:
        return model_dtype
    return torch.float64
