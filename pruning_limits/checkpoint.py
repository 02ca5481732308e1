"""Checkpoints: bundles written by ``pruning-limit train``, plain state_dicts, TorchScript archives,
``.safetensors`` state_dicts and Hugging Face model folders.

Loading never unpickles arbitrary objects: every pickle is read with
``torch.load(weights_only=True)`` (PyTorch's restricted unpickler, which only rebuilds tensors
and plain containers), and a full pickled ``nn.Module`` or a TorchScript archive (whose
``torch.jit.load`` and forward run the code stored in it, a ``__setstate__`` among it) is read
only when the caller passes ``trust=True`` (the command line's ``--trust-checkpoint``). See the
PyTorch serialization notes ("torch.load with weights_only=True") for why a pickle must never
be loaded from an untrusted source.

A ``.safetensors`` file (Hugging Face's format: a JSON header and raw tensor bytes, no code)
is read with ``safetensors.torch.load`` as a plain state_dict, which needs ``--model``. A
folder with ``config.json`` and ``model.safetensors`` is a Hugging Face model: when the
optional ``transformers`` package is installed (``pip install pruning-limits[hf]``), the
class named in the config's ``architectures`` is looked up in ``transformers`` itself (a
config that asks for custom code, ``auto_map``, or for an attention kernel from the Hub is
refused), built from the config alone (random initialisation, nothing downloaded; first on the
meta device, so weights of other shapes are refused before memory is taken) and given the
folder's weights.

Every result file of the project is written through :func:`atomic_open` (temporary file in the
target's directory, ``fsync``, ``os.replace``), so an interrupted run never leaves a
half-written file behind.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import pickle
import re
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from ._checks import PruningLimitsError, check_seed, describe, error_line, exception_chain, message_line
from ._version import __version__

#: Value of the ``"format"`` key of a bundle.
BUNDLE_FORMAT = "pruning-limits-bundle"
#: Version of the bundle layout this module writes and reads.
BUNDLE_VERSION = 1

#: The kinds of checkpoint :func:`read_checkpoint` recognises.
KINDS = ("bundle", "state_dict", "torchscript", "module", "huggingface")

#: The extra file of a TorchScript archive written by ``train --init`` that holds its training
#: record (λ, the λ path, the data spec and data seed), as a bundle's ``training`` and
#: ``data_spec`` do: ``predict`` reads its λ, its data and their split from it.
TORCHSCRIPT_TRAINING = "pruning_limits_training.json"
#: The extra file of a TorchScript archive written by ``train`` or ``prune`` that holds its
#: parameter selection (``--params``), as a bundle stores it (names of the library's eager view).
TORCHSCRIPT_PARAMS = "pruning_limits_params.json"
#: The attribute under which a pickled module written by ``train`` or ``prune`` carries its
#: training record (its selection travels as ``objective``'s own attribute); removed on reading.
MODULE_TRAINING_ATTR = "_pruning_limits_training"
#: Weights file of a Hugging Face model folder (``save_pretrained`` with safetensors).
HF_WEIGHTS = "model.safetensors"
#: Index of a sharded weights file: which shard (a ``.safetensors`` file beside it) holds each tensor.
HF_INDEX = "model.safetensors.index.json"
HF_CONFIG = "config.json"
#: The training record a Hugging Face folder written by ``train`` or ``prune`` carries (as a
#: TorchScript archive carries :data:`TORCHSCRIPT_TRAINING`): its λ places it in the regime.
HF_TRAINING = TORCHSCRIPT_TRAINING
#: The parameter selection (``--params``) a Hugging Face folder written by ``train`` or ``prune``
#: carries, as a bundle stores it: the tensors its λ penalised and its analysis takes.
HF_PARAMS = "pruning_limits_params.json"
#: What ``transformers`` reads as an attention kernel to fetch from the Hub and run (its
#: ``integrations.hub_kernels.is_kernel``: ``org/repo[@revision][:function]``, also after a
#: ``wrapper|`` prefix): a name with a ``/``. Its own implementations (``eager``, ``sdpa``,
#: ``flash_attention_4``, ``paged|eager``, ... whichever the installed version has) have none.
HF_KERNEL_MARK = "/"
#: The config keys (also in sub-configs) that name an attention implementation.
_HF_ATTENTION_KEYS = ("attn_implementation", "_attn_implementation", "_attn_implementation_internal")


def output_target(path: str | os.PathLike[str]) -> Path:
    """The file a write to ``path`` replaces: the file a symbolic link names (the link is kept)."""
    target = Path(path)
    return Path(os.path.realpath(target)) if target.is_symlink() else target


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync it and rename it onto ``path``.

    If the block raises, the temporary file is removed and ``path`` is left as it was
    (``os.replace`` is atomic on POSIX and Windows when both names are in one directory). A
    file that is replaced keeps its permission bits (where the filesystem allows ``chmod``); a
    symbolic link keeps pointing at the file it names, which is the one replaced. An ``OSError``
    that names no file (a write error: a full disk) becomes a ``PruningLimitsError`` naming
    ``path``; one that names a file (the block's own) is passed on as it was.

    Args:
        path: the file to create or replace.
        mode: ``"wb"`` or ``"w"``.
        encoding: text encoding for ``mode="w"`` (default UTF-8).

    Raises:
        PruningLimitsError: the directory does not exist or is not writable, or writing failed
            (a full disk): naming ``path``.
    """
    if mode not in ("wb", "w"):
        raise PruningLimitsError(f"atomic_open mode must be 'wb' or 'w', got {describe(mode)}")
    target = output_target(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise PruningLimitsError(f"cannot write {str(target)!r}: directory {str(directory)!r} does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise PruningLimitsError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, mode, encoding=(encoding or "utf-8") if mode == "w" else None) as handle:
            _copy_permissions(handle, tmp_name, target)
            try:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as exc:
                if exc.filename is not None:  # an error about another file the block used: passed on as it was
                    raise
                # a write error (a full disk: ENOSPC) names no file; say which one could not be written
                raise PruningLimitsError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from exc
        try:
            os.replace(tmp_name, target)
        except OSError as exc:  # e.g. a directory of that name: name the target, not the temporary file
            raise PruningLimitsError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def _copy_permissions(handle: IO[Any], tmp_name: str, target: Path) -> None:
    """Give the temporary file the mode of the file it replaces, or else the one ``open()`` would
    (0666 less the umask): ``mkstemp`` makes it private (0600). Best effort: a filesystem that
    refuses ``chmod`` (some network, FUSE or FAT mounts) keeps the file as it is, as ``open()`` would."""
    try:
        permissions = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        permissions = 0o666 & ~_umask()
    with contextlib.suppress(OSError):
        if hasattr(os, "fchmod"):
            os.fchmod(handle.fileno(), permissions)
        else:  # Windows before Python 3.13
            os.chmod(tmp_name, permissions)


def atomic_write(path: str | os.PathLike[str], content: str | bytes) -> Path:
    """Write ``content`` (text as UTF-8, or bytes) to ``path`` atomically; return the path."""
    with atomic_open(path, "w" if isinstance(content, str) else "wb") as handle:
        handle.write(content)
    return Path(path)


@dataclass
class Checkpoint:
    """What a checkpoint file holds, before a model is built from it.

    Attributes:
        path: the file it was read from.
        kind: one of :data:`KINDS`.
        state_dict: tensors by name (``bundle`` and ``state_dict`` kinds).
        module: the loaded model (``torchscript`` and ``module`` kinds).
        model_spec: model spec stored in a bundle.
        data_spec: data spec stored in a bundle, or carried in the training record (``data_spec``)
            of a TorchScript archive, a pickled module or a Hugging Face folder written by ``train``.
        model_record: input shape and output count the bundle's zoo model was built for
            (:class:`pruning_limits.models.ModelRecord`), so it can be rebuilt without data.
        training: training settings stored in a bundle.
        pruning: pruning record stored in a bundle written by ``prune``.
        library_version: version of pruning-limits that wrote the bundle.
        params: the parameter selection stored in a bundle or a Hugging Face folder (:data:`HF_PARAMS`)
            (:func:`pruning_limits.objective.select_parameters`), ``None`` for the default.
        format: ``"torch"``, ``"safetensors"`` or ``"huggingface"`` (the file format).
        dtypes: the file's dtype of each floating tensor by name (state dicts and Hugging Face
            folders; a :class:`FileDtypes` that also holds the file's values a model may round),
            so a pruned model is written back in them (:func:`restore_dtypes`).
    """

    path: str
    kind: str
    state_dict: dict[str, Any] | None = None
    module: Any = None
    model_spec: str | None = None
    data_spec: str | None = None
    model_record: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    pruning: dict[str, Any] = field(default_factory=dict)
    library_version: str | None = None
    params: list[str] | None = None
    format: str = "torch"
    dtypes: dict[str, torch.dtype] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.state_dict and not self.dtypes:
            self.dtypes = _floating_dtypes(self.state_dict)
        if self.data_spec is None and self.kind != "bundle":  # a record carried by another format names its data
            self.data_spec = _carried_data_spec(self.path, self.training)


class FileDtypes(dict):
    """The dtype of each floating tensor of a checkpoint file, by name (a ``dict`` of them), and
    in :attr:`originals` the file's own tensors where a model's dtype may not hold their values
    exactly (a float64 file loaded into a float32 model), so that :func:`restore_dtypes` writes
    the weights pruning kept back bit for bit.

    Attributes:
        originals: the file's tensors by name (for a state_dict the tensors it holds anyway; for
            a Hugging Face folder only those its model's dtype rounds).
    """

    def __init__(self, dtypes: Mapping[str, torch.dtype] | None = None, originals: Mapping[str, torch.Tensor] | None = None) -> None:
        super().__init__(dtypes or {})
        self.originals: dict[str, torch.Tensor] = dict(originals or {})


def _floating_dtypes(state: Mapping[str, Any], model: nn.Module | None = None) -> FileDtypes:
    """The dtype of each floating tensor of a state_dict, by name, with the tensors themselves as
    :attr:`FileDtypes.originals`; given the ``model`` they were loaded into, only those whose
    values its dtype does not hold exactly (the others need no memory of their own)."""
    floating = {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()}
    originals = floating
    if model is not None:
        loaded = model.state_dict()
        originals = {
            k: v for k, v in floating.items()
            if k in loaded and loaded[k].dtype != v.dtype and not torch.equal(v.to(loaded[k].dtype).to(v.dtype), v)
        }
    return FileDtypes({k: v.dtype for k, v in floating.items()}, originals)


def restore_dtypes(model: nn.Module, dtypes: Mapping[str, torch.dtype]) -> list[str]:
    """Give the floating tensors of ``model``'s state_dict the dtypes of the file they came from
    (a float16 checkpoint loads into a float32 model), so the output keeps the input's dtypes
    and size.

    Where ``dtypes`` holds the file's tensor (:attr:`FileDtypes.originals`, as a checkpoint's
    ``dtypes`` does) and the model's values are that tensor's, rounded to the model's dtype,
    with some entries set to zero (what pruning does), the file's tensor is written back with
    those zeros: the kept weights of a float64 file stay bit for bit what they were (a cast back
    from float32 changed them by up to 4e-12). Values changed otherwise (e.g. by training) are
    cast to the file's dtype, which rounds them where it is narrower than the model's.

    Args:
        model: the loaded (and pruned) model; its tensors are replaced in place.
        dtypes: the file's dtype of each floating tensor by name (a checkpoint's ``dtypes``).

    Returns:
        the names whose dtype was changed.
    """
    originals = getattr(dtypes, "originals", {})
    changed = []
    for name, tensor in model.state_dict(keep_vars=True).items():
        dtype = dtypes.get(name)
        if dtype is None or not tensor.is_floating_point() or tensor.dtype == dtype:
            continue
        tensor.data = _written_back(tensor.data, dtype, originals.get(name))
        changed.append(name)
    return changed


def _written_back(current: torch.Tensor, dtype: torch.dtype, original: torch.Tensor | None) -> torch.Tensor:
    """``current`` in ``dtype``: the file's ``original`` with ``current``'s zeros where ``current``
    is ``original`` rounded with only entries zeroed (the kept ones bit-exact), else a cast."""
    if original is not None and original.dtype == dtype and original.shape == current.shape:
        original = original.to(current.device)
        kept = current != 0
        if torch.equal(current[kept], original.to(current.dtype)[kept]):
            return torch.where(kept, original, current.to(dtype))
    return current.to(dtype)


def _is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive; a damaged zip is not (``torch.load`` then says why in one line)."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name or name.endswith("constants.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, ValueError, NotImplementedError):  # a bad name's encoding, a multi-disk zip
        return False


def _is_tensor_mapping(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    )


def is_huggingface_folder(path: str | os.PathLike[str]) -> bool:
    """Whether :func:`read_checkpoint` reads ``path`` as a Hugging Face model folder (a folder
    holding :data:`HF_CONFIG`), and ``train``/``prune`` write such a checkpoint as a new folder."""
    folder = Path(path)
    return folder.is_dir() and (folder / HF_CONFIG).is_file()


def read_checkpoint(path: str | os.PathLike[str], *, trust: bool = False) -> Checkpoint:
    """Read a checkpoint file without building a model.

    Recognised contents: a bundle written by :func:`save_bundle`; a plain state_dict (a mapping
    of names to tensors, also under a ``"state_dict"``, ``"model_state_dict"`` or ``"model"`` key),
    in a PyTorch or a ``.safetensors`` file; a Hugging Face model folder
    (:func:`read_huggingface`); a TorchScript archive or a full pickled ``nn.Module`` (each only
    with ``trust=True``).

    Args:
        path: the checkpoint file or Hugging Face folder.
        trust: allow unpickling arbitrary objects (a full pickled model) and loading a
            TorchScript archive. Only for files from a trusted source: either can run any code.

    Raises:
        PruningLimitsError: missing, empty, damaged or unreadable file, not a checkpoint (a NumPy
            data archive among them), or a pickled object or TorchScript archive that needs
            ``trust=True`` (refused before anything is loaded).
    """
    file = Path(path)
    if not file.exists():
        raise PruningLimitsError(f"checkpoint {str(file)!r} does not exist")
    if is_huggingface_folder(file):
        return read_huggingface(file)
    if not file.is_file():
        raise PruningLimitsError(
            f"checkpoint {str(file)!r} is not a file (a Hugging Face model folder needs {HF_CONFIG} and {HF_WEIGHTS} or {HF_INDEX})"
        )
    if not os.access(file, os.R_OK):
        raise PruningLimitsError(f"checkpoint {str(file)!r} is not readable")
    if file.suffix.lower() == ".safetensors" or _is_safetensors(file):
        return Checkpoint(str(file), "state_dict", state_dict=read_safetensors(file), format="safetensors")
    if _is_torchscript(file):
        if not trust:
            raise PruningLimitsError(
                f"{str(file)!r} is a TorchScript archive, whose loading and calling run the code stored in it; "
                "refusing it. Pass --trust-checkpoint if you trust the file's source"
            )
        extra = {TORCHSCRIPT_TRAINING: "", TORCHSCRIPT_PARAMS: ""}
        try:
            module = torch.jit.load(str(file), map_location="cpu", _extra_files=extra)
        except (RuntimeError, OSError) as exc:
            raise PruningLimitsError(f"{str(file)!r} is a damaged TorchScript archive: {message_line(exc)}") from exc
        return Checkpoint(str(file), "torchscript", module=module, training=_training_record(str(file), extra[TORCHSCRIPT_TRAINING]),
                          params=_carried_params(str(file), extra[TORCHSCRIPT_PARAMS]))
    try:
        content = torch.load(str(file), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Weights only load failed" in text and ("Unsupported global" in text or "GLOBAL" in text):
            if not trust:
                raise PruningLimitsError(
                    f"{str(file)!r} holds pickled Python objects (e.g. a full nn.Module), which can run "
                    "arbitrary code when loaded; refusing it. Save a state_dict instead, or pass "
                    "--trust-checkpoint if you trust the file's source"
                ) from exc
            return _read_trusted(file)
        raise PruningLimitsError(_not_torch(file) or f"{str(file)!r} is not a PyTorch checkpoint") from exc
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # torch's reader seeking past the end of a cut-off archive
            raise PruningLimitsError(f"{str(file)!r} is a damaged or truncated checkpoint (torch.load: {exc.strerror})") from exc
        raise PruningLimitsError(f"cannot read checkpoint {str(file)!r}: {exc.strerror or exc}") from exc
    except Exception as exc:  # torch raises KeyError/RuntimeError/EOFError on foreign files
        raise PruningLimitsError(
            _not_torch(file) or f"{str(file)!r} is not a PyTorch checkpoint (torch.load: {error_line(exc)})"
        ) from exc
    return _from_content(str(file), content)


def _not_torch(file: Path) -> str | None:
    """What a file ``torch.load`` refused is, in words, when that is plainer than torch's error:
    empty, a zip archive cut short (torch gave a 300-character paragraph on it), or a NumPy data
    archive (``.npz``: a zip of ``.npy`` members) given as the checkpoint; else ``None``."""
    try:
        if file.stat().st_size == 0:
            return f"{str(file)!r} is empty (0 bytes)"
        with file.open("rb") as handle:
            if handle.read(4) != b"PK\x03\x04":
                return None
        if not zipfile.is_zipfile(file):  # no end-of-archive record: the file was cut off
            return f"{str(file)!r} is a damaged or truncated checkpoint (a zip archive cut short)"
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    if names and all(name.endswith(".npy") for name in names):
        return f"{str(file)!r} is a NumPy archive (data): give it with --data; CHECKPOINT is the model file"
    return None


def _stored_mapping(path: str, content: Mapping, key: str) -> dict[str, Any]:
    """A bundle's ``key`` record as a dict (absent: empty); anything but a mapping is refused."""
    value = content.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        label = key.removesuffix("_record").replace("_", " ")
        raise PruningLimitsError(f"{path!r} stores a {label} record that is not a mapping, got {describe(value)}")
    return dict(value)


def _stored_spec(path: str, content: Mapping, key: str) -> str | None:
    """A bundle's ``model_spec`` or ``data_spec``: a string, or ``None`` when absent."""
    value = content.get(key)
    if value is not None and not isinstance(value, str):
        label = key.replace("_", " ")
        raise PruningLimitsError(f"{path!r} stores a {label} that is not a string, got {describe(value)}")
    return value


def _stored_training(path: str, content: Mapping) -> dict[str, Any]:
    """A bundle's training record, whose ``data_seed`` (the split later commands load) must be a seed."""
    training = _stored_mapping(path, content, "training")
    if "data_seed" in training:
        try:
            check_seed("data_seed", training["data_seed"])
        except PruningLimitsError:
            raise PruningLimitsError(
                f"{path!r} stores a data seed that is not an integer in [0, 2**64), got {describe(training['data_seed'])}"
            ) from None
    return training


def _training_record(path: str, text: str | bytes) -> dict[str, Any]:
    """The training record a TorchScript archive or a Hugging Face folder carries
    (:data:`TORCHSCRIPT_TRAINING`, :data:`HF_TRAINING`; ``{}`` without one)."""
    if not text:
        return {}
    try:
        record = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: arrays nested too deep for the decoder
        raise PruningLimitsError(f"{path!r} carries a training record ({TORCHSCRIPT_TRAINING}) that is not JSON") from None
    return _stored_training(path, {"training": record})


def _carried_data_spec(path: str, training: Mapping[str, Any]) -> str | None:
    """The data spec a carried training record names (``None`` without one: older archives and folders)."""
    spec = training.get("data_spec") if training else None
    if spec is None or spec == "":
        return None
    if not isinstance(spec, str):
        raise PruningLimitsError(f"{path!r} carries a data spec that is not a string, got {describe(spec)}")
    return spec


def _carried_params(path: str, text: str | bytes) -> list[str] | None:
    """The parameter selection a TorchScript archive or a Hugging Face folder carries
    (:data:`TORCHSCRIPT_PARAMS`, :data:`HF_PARAMS`; ``None`` without one: the default selection)."""
    if not text:
        return None
    try:
        stored = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise PruningLimitsError(f"{path!r} carries a parameter selection ({TORCHSCRIPT_PARAMS}) that is not JSON (a list of names)") from None
    return _stored_params(path, stored)


def _stored_params(path: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise PruningLimitsError(f"{path!r} stores a parameter selection that is not a list of names, got {describe(value)}")
    return list(value)


def _is_safetensors(file: Path) -> bool:
    """A safetensors file starts with an 8-byte little-endian header length and a JSON object."""
    try:
        with open(file, "rb") as handle:
            head = handle.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= file.stat().st_size - 8


def _looks_like_torch_file(data: bytes) -> bool:
    """Whether ``data`` starts as ``torch.save`` or ``torch.jit.save`` writes: a pickle (the
    legacy format), or a zip archive with an ``ARCHIVE/data.pkl`` member (a ``.npz`` is a zip too).
    A zip cut short, without its directory, is judged by its first member's name."""
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):  # pickle protocol 2 to 5
        return True
    if data[:4] != b"PK\x03\x04":
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        length = int.from_bytes(data[26:28], "little")  # the first local file header's name
        names = [data[30 : 30 + length].decode("utf-8", "replace")]
    return any(re.fullmatch(r"[^/]+/data(\.pkl|/[0-9]+)", name) for name in names)


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file (read fully into memory; no code runs).

    Raises:
        PruningLimitsError: unreadable file, damaged header or data, a dtype torch has no type
            for (safetensors' ``F4``, ``F6_E2M3``, ``F8_E8M0``, ...), or no tensors.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise PruningLimitsError(f"cannot read {str(file)!r}: {exc.strerror or exc}") from None
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        hint = " (it looks like a PyTorch file: rename it .pt)" if _looks_like_torch_file(data) else ""
        raise PruningLimitsError(
            f"{str(file)!r} is not a readable safetensors file: {message_line(exc)}{hint}"
        ) from None
    except KeyError as exc:  # a dtype safetensors knows and torch has no type for (F4, F6_E2M3, F8_E8M0, ...)
        dtype = exc.args[0] if exc.args else "?"
        names = _tensors_of_dtype(data, dtype)
        raise PruningLimitsError(
            f"{str(file)!r} holds tensors of dtype {dtype!r} ({_short_list(names, 3)}), which torch {torch.__version__} "
            "has no type for: expected dtypes torch can hold (such as F32, F16 or BF16); convert them first"
        ) from None
    if not tensors:
        raise PruningLimitsError(f"{str(file)!r} holds no tensors")
    return dict(tensors)


def _tensors_of_dtype(data: bytes, dtype: str) -> list[str]:
    """The names of the tensors of dtype ``dtype`` in a safetensors file's header (``data``: the
    whole file, whose header ``safetensors`` has checked already)."""
    try:
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    except (ValueError, UnicodeDecodeError, RecursionError):
        return []
    if not isinstance(header, dict):
        return []
    return [repr(k) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict) and v.get("dtype") == dtype]


def save_safetensors(path: str | os.PathLike[str], model: nn.Module) -> Path:
    """Write the model's state_dict as a ``.safetensors`` file, atomically.

    Tensors that share memory (tied weights) are written as separate copies, as safetensors requires.
    """
    from safetensors.torch import save

    if hasattr(model, "to_scripted"):  # a TorchScript view: the archive's own names and buffers, not the view's
        model = model.to_scripted()
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    return atomic_write(path, save(state))


def read_huggingface(folder: str | os.PathLike[str]) -> Checkpoint:
    """Build a Hugging Face model from ``config.json`` and load ``model.safetensors``; no download, no custom code.

    Sharded weights (``model.safetensors.index.json`` and the ``.safetensors`` shards it names in
    the folder) are read as well. The model is built with the Hub's offline mode on, so a config
    that needs other files from the Hub (e.g. a backbone named by its repository) is refused
    instead of downloading them. Tensors that ``from_pretrained`` drops quietly (the class's
    ``_keys_to_ignore_on_load_unexpected``, old ``position_ids`` buffers) are dropped as well.

    Raises:
        PruningLimitsError: ``transformers`` missing, an unreadable or custom-code config, an
            attention implementation that is not ``transformers``' own (a Hub kernel's code), an
            architecture ``transformers`` does not know, a config that needs the Hub or asks for
            more labels than the weights can hold, a damaged weights file or index, or weights
            that do not fit the model.
    """
    import json

    folder = Path(folder)
    try:
        config_dict = json.loads((folder / HF_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: arrays nested too deep for the decoder
        raise PruningLimitsError(f"cannot read {str(folder / HF_CONFIG)!r} as JSON: {message_line(exc)}") from None
    if not isinstance(config_dict, dict):
        raise PruningLimitsError(f"{str(folder / HF_CONFIG)!r} must hold a JSON object, got {describe(config_dict)}")
    if "auto_map" in config_dict:
        raise PruningLimitsError(
            f"{str(folder / HF_CONFIG)!r} asks for custom model code (auto_map), which pruning-limits never runs"
        )
    _check_attention_implementations(folder / HF_CONFIG, config_dict)
    architectures = config_dict.get("architectures") or []
    model_type = config_dict.get("model_type")
    if (
        not isinstance(architectures, list) or not architectures or not isinstance(architectures[0], str)
        or not isinstance(model_type, str)
    ):
        raise PruningLimitsError(
            f"{str(folder / HF_CONFIG)!r} must name model_type and architectures (as save_pretrained writes them)"
        )
    try:
        import transformers
    except ImportError:
        raise PruningLimitsError(
            f"{str(folder)!r} is a Hugging Face model folder: install the optional extra "
            "(pip install 'pruning-limits[hf]') to read it"
        ) from None
    try:
        cls = getattr(transformers, architectures[0], None)
    except Exception as exc:  # noqa: BLE001 - transformers imports model code lazily; any failure there
        cause = exc.__cause__ or exc
        raise PruningLimitsError(
            f"transformers cannot import {architectures[0]}: {error_line(cause)} (a torchvision or other optional "
            "package that does not match this torch breaks transformers' imports: uninstall it or install the matching build)"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise PruningLimitsError(f"transformers {transformers.__version__} has no model class {architectures[0]!r}")
    if model_type not in transformers.CONFIG_MAPPING:  # its own error lists every model type (12 000 characters)
        raise PruningLimitsError(
            f"{str(folder / HF_CONFIG)!r} names model_type {model_type[:60]!r}, which transformers {transformers.__version__} "
            "does not know"
        )
    state = _huggingface_weights(folder)
    _check_label_count(folder / HF_CONFIG, config_dict, state)
    try:
        with _hub_offline():
            config = transformers.AutoConfig.for_model(model_type, **{k: v for k, v in config_dict.items() if k != "model_type"})
            sketch = _on_meta(lambda: cls(config))
            if sketch is not None:  # the weights' shapes are checked before the model is built at the config's size
                state = _renamed_as_transformers_loads(sketch, state)
                _fit_huggingface_state(sketch, state)
            model = cls(config)
            if sketch is None:
                state = _renamed_as_transformers_loads(model, state)
    except PruningLimitsError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of transformers to build from this config
        if _needs_the_hub(exc):
            raise PruningLimitsError(
                f"{str(folder / HF_CONFIG)!r} needs files from the Hugging Face Hub to build {architectures[0]}; "
                "pruning-limits never downloads"
            ) from None
        line = error_line(exc)  # transformers' own can run to thousands of characters (a list of every model type)
        raise PruningLimitsError(
            f"cannot build {architectures[0]} from {str(folder / HF_CONFIG)!r}: {line if len(line) <= 200 else line[:197] + '...'}"
        ) from None
    tied = _fit_huggingface_state(model, state)
    model.load_state_dict(state, strict=False)
    if tied and hasattr(model, "tie_weights"):
        model.tie_weights()
    model.eval()
    dtypes = _floating_dtypes(state, model)  # a float64 file's values, which the float32 model rounds
    record, selection = folder / HF_TRAINING, folder / HF_PARAMS
    try:
        training = _training_record(str(folder), record.read_bytes()) if record.is_file() else {}
        params = _carried_params(str(folder), selection.read_bytes()) if selection.is_file() else None
    except OSError as exc:
        raise PruningLimitsError(f"cannot read the records of {str(folder)!r}: {message_line(exc)}") from None
    return Checkpoint(str(folder), "huggingface", module=model, format="huggingface", dtypes=dtypes, training=training,
                      params=params)


def _check_attention_implementations(config_file: Path, config_dict: Mapping[str, Any]) -> None:
    """Refuse an attention implementation (in the config or a sub-config, also one per sub-config)
    that names a kernel on the Hub (:data:`HF_KERNEL_MARK`): ``transformers`` fetches and runs
    that repository's code with the ``kernels`` package. Its own implementations pass (an
    allow-list refused ``flash_attention_4`` and ``paged|eager`` of transformers 5.25; a review).

    Raises:
        PruningLimitsError: naming the key (its path through the sub-configs) and its value.
    """
    pending: list[tuple[str, Any]] = [("", config_dict)]
    while pending:
        prefix, value = pending.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                name = prefix + (key if isinstance(key, str) and key.isidentifier() else repr(key))  # one line, whatever the key
                if key not in _HF_ATTENTION_KEYS:
                    pending.append((f"{name}.", item))
                    continue
                choices = [(f"{name}.{sub}", choice) for sub, choice in item.items()] if isinstance(item, dict) else [(name, item)]
                for asked, choice in choices:
                    if isinstance(choice, str) and HF_KERNEL_MARK in choice:
                        raise PruningLimitsError(
                            f"{str(config_file)!r} asks for {asked}={choice!r}, an attention kernel from the Hugging Face "
                            "Hub, whose code pruning-limits never runs: set transformers' own (eager or sdpa)"
                        )
        elif isinstance(value, list):
            pending.extend((prefix, item) for item in value)


def _on_meta(build: Callable[[], nn.Module]) -> nn.Module | None:
    """``build()`` on the meta device (its tensors have shapes and no memory), or ``None`` where
    it fails there (a constructor that reads tensor values): the caller then builds as before."""
    try:
        with torch.device("meta"):
            return build()
    except Exception:  # noqa: BLE001 - whatever fails on meta fails, or not, in the real build
        return None


def _renamed_as_transformers_loads(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with its keys renamed as ``from_pretrained`` renames them (transformers 5 renames
    e.g. ViT's ``encoder.layer.N.attention.attention.query`` to ``layers.N.attention.q_proj`` at
    load, and ``save_pretrained`` writes the old names). ``state`` as it is where transformers has
    no such renaming (before 5).

    Raises:
        PruningLimitsError: the class's weights are converted at load (tensors merged or split),
            which is not supported, or two keys get one name.
    """
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightRenaming, rename_source_key
    except ImportError:
        return state
    transforms = get_model_conversion_mapping(model)
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if not isinstance(t, WeightRenaming)]
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        new, converted = rename_source_key(key, renamings, converters)
        if converted is not None:
            raise PruningLimitsError(
                f"the checkpoint keys of {type(model).__name__} are converted by transformers at load ({key!r}: "
                "tensors merged or split), which pruning-limits does not support yet"
            )
        if new in renamed:
            raise PruningLimitsError(f"the checkpoint of {type(model).__name__} holds two weights named {new!r} once transformers renames them")
        renamed[new] = tensor
    return renamed


def _fit_huggingface_state(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Check that ``state`` fits ``model`` (built for real or on the meta device) as
    ``from_pretrained`` loads it: the keys it drops quietly are removed from ``state``, and the
    tied weights ``save_pretrained`` leaves out may be missing. Returns those tied keys.

    Raises:
        PruningLimitsError: what :func:`check_state_dict_fits` raises.
    """
    expected = model.state_dict()
    for key in _ignored_unexpected(model, state, expected):
        del state[key]
    tied = [k for k in expected if k not in state and _is_tied(model, k)]
    # a stand-in of the tied weight's shape and dtype that holds no memory (and is no meta tensor),
    # where no name the model ties it to is in the file (such a name stands for it already)
    covered = {name for names in tied_groups(model) if any(n in state for n in names) for name in names}
    stand_ins = {k: torch.zeros((), dtype=expected[k].dtype).expand(expected[k].shape) for k in tied if k not in covered}
    check_state_dict_fits(model, {**state, **stand_ins})
    return tied


def save_huggingface(path: str | os.PathLike[str], model: nn.Module, *, training: Mapping[str, Any] | None = None) -> Path:
    """Write a Hugging Face model as a folder (``save_pretrained``: config.json + model.safetensors).

    The folder is written beside ``path`` under a temporary name and renamed onto it, so an
    interrupted run leaves nothing half-written; it and its files get the permissions ``mkdir``
    and ``open`` give (0777 and 0666 less the umask), not the temporary folder's private 0700.
    ``training``: a training record to carry (:data:`HF_TRAINING`), as a bundle does.

    Raises:
        PruningLimitsError: ``path`` exists, or its parent folder does not.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.exists():
        raise PruningLimitsError(f"cannot write the Hugging Face folder {str(target)!r}: it exists already")
    if not parent.is_dir():
        raise PruningLimitsError(f"cannot write {str(target)!r}: directory {str(parent)!r} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    try:
        with _no_transformers_progress_bar():  # its one-shard "Writing model shards" bar: the caller reports
            model.save_pretrained(str(tmp), safe_serialization=True)
        if training:
            (tmp / HF_TRAINING).write_text(json.dumps(_plain(dict(training), "training")), encoding="utf-8")
        from .objective import parameter_selection

        selection = parameter_selection(model)
        if selection is not None:
            (tmp / HF_PARAMS).write_text(json.dumps(list(selection)), encoding="utf-8")
        _give_default_permissions(tmp)
        os.replace(tmp, target)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


@contextlib.contextmanager
def _no_transformers_progress_bar() -> Iterator[None]:
    """transformers' progress bars off for the block, then as they were."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _huggingface_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The tensors of a Hugging Face folder: its ``model.safetensors``, or else the shards its
    ``model.safetensors.index.json`` names (plain ``.safetensors`` file names in the folder itself).

    Raises:
        PruningLimitsError: no safetensors weights, an unreadable index, a shard name that is not
            a file name in the folder, a missing or damaged shard, or an index that does not
            match its shards.
    """
    single, index = folder / HF_WEIGHTS, folder / HF_INDEX
    if single.is_file() or not index.is_file():
        if not single.is_file():
            raise PruningLimitsError(
                f"Hugging Face folder {str(folder)!r} has no {HF_WEIGHTS} or {HF_INDEX} (only safetensors weights are read)"
            )
        return read_safetensors(single)
    try:
        content = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise PruningLimitsError(f"cannot read {str(index)!r} as JSON: {message_line(exc)}") from None
    weight_map = content.get("weight_map") if isinstance(content, dict) else None
    if (
        not isinstance(weight_map, dict) or not weight_map
        or not all(isinstance(v, str) for v in weight_map.values())
    ):
        raise PruningLimitsError(
            f"{str(index)!r} must map tensor names to shard files under \"weight_map\" (as save_pretrained writes it), "
            f"got {describe(weight_map if isinstance(content, dict) else content)}"
        )
    state: dict[str, torch.Tensor] = {}
    holder: dict[str, str] = {}
    for name in dict.fromkeys(weight_map.values()):
        if Path(name).name != name or name in (".", "..") or "\\" in name or not name.endswith(".safetensors"):
            raise PruningLimitsError(
                f"{str(index)!r} names the shard {name!r}: a .safetensors file name in the folder itself was expected"
            )
        shard = folder / name
        if not shard.is_file():
            raise PruningLimitsError(f"{str(index)!r} names the shard {name!r}, which is not a file in {str(folder)!r}")
        tensors = read_safetensors(shard)
        twice = [k for k in tensors if k in state]
        if twice:
            raise PruningLimitsError(f"shard {str(shard)!r} holds tensors another shard holds too: {_short_list(twice)}")
        state.update(tensors)
        holder.update(dict.fromkeys(tensors, name))
    absent = [k for k, name in weight_map.items() if holder.get(k) != name]
    if absent:
        raise PruningLimitsError(f"{str(index)!r} lists tensors that are not in the shard it names: {_short_list(absent)}")
    return state


def _check_label_count(config_file: Path, config_dict: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> None:
    """Refuse a ``num_labels`` (in the config or a sub-config) larger than every dimension of the
    weights: ``transformers`` builds an ``id2label`` entry per label before any weight, so a huge
    count would fill the memory, and a classifier over N labels has a weight with N rows.

    Raises:
        PruningLimitsError: naming the count and the bound.
    """
    largest = max((max(t.shape, default=1) for t in state.values()), default=1)
    pending: list[Any] = [config_dict]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            labels = value.get("num_labels")
            if isinstance(labels, int) and not isinstance(labels, bool) and labels > largest:
                raise PruningLimitsError(
                    f"{str(config_file)!r} asks for num_labels={labels}, more than any dimension of its weights "
                    f"(at most {largest}): a classifier over {labels} labels has a weight with {labels} rows"
                )
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """The Hugging Face Hub's offline mode for the block (restored afterwards): a request to the
    Hub raises ``OfflineModeIsEnabled`` before it reaches the network, and files are only looked
    up in the local cache."""
    from huggingface_hub import constants
    from transformers.utils import hub

    # older transformers 4.x read their own copy of the flag (_is_offline_mode), taken at import
    flags = ((constants, "HF_HUB_OFFLINE"), (hub, "_is_offline_mode"))
    copies = [(module, name) for module, name in flags if hasattr(module, name)]
    before = [getattr(module, name) for module, name in copies]
    for module, name in copies:
        setattr(module, name, True)
    try:
        yield
    finally:
        for (module, name), value in zip(copies, before):
            setattr(module, name, value)


def _needs_the_hub(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) is the Hub's offline mode refusing a request or a download."""
    from huggingface_hub import errors

    kinds = tuple(getattr(errors, name) for name in ("OfflineModeIsEnabled", "LocalEntryNotFoundError") if hasattr(errors, name))
    return any(isinstance(current, kinds) for current in exception_chain(exc))


def _ignored_unexpected(model: nn.Module, state: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """The keys of ``state`` that ``model`` lacks and ``from_pretrained`` drops quietly, as
    transformers does: the class's ``_keys_to_ignore_on_load_unexpected`` (regular expressions
    searched in the key), and the ``position_ids`` and ``rotary_emb.inv_freq`` buffers older
    checkpoints stored where the model now has them as non-persistent buffers."""
    patterns = {p for p in (getattr(model, "_keys_to_ignore_on_load_unexpected", None) or []) if isinstance(p, str)}
    buffers = [name for name, _ in model.named_buffers()]
    if any(name.endswith("rotary_emb.inv_freq") for name in buffers):
        patterns.add(r"rotary_emb\.inv_freq")
    if any(name.endswith("position_ids") for name in buffers):
        patterns.add(r"(^|\.)position_ids$")
    compiled = []
    for pattern in patterns:
        with contextlib.suppress(re.error):
            compiled.append(re.compile(pattern))
    return [k for k in state if k not in expected and any(p.search(k) for p in compiled)]


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _give_default_permissions(folder: Path) -> None:
    """Give a folder ``mkdtemp`` made (0700) and what it holds the permissions ``mkdir`` and
    ``open`` would: 0777 and 0666 less the umask. Symbolic links are left alone."""
    umask = _umask()
    for root, dirs, files in os.walk(folder):
        for name, mode in [(d, 0o777) for d in dirs] + [(f, 0o666) for f in files]:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, mode & ~umask)
    os.chmod(folder, 0o777 & ~umask)


def _is_tied(model: nn.Module, key: str) -> bool:
    """Whether ``key`` is a tied weight that ``save_pretrained`` leaves out (e.g. a decoder tied to
    embeddings): one the config ties, not any the class could tie (``tie_word_embeddings=False``
    keeps GPT-2's ``lm_head.weight`` its own, and a file without it lacks a weight)."""
    expanded = getattr(model, "get_expanded_tied_weights_keys", None)  # transformers 5: {target: source} the configs tie
    if callable(expanded):
        try:
            return key in expanded(all_submodels=True)
        except Exception:  # noqa: BLE001 - a class's own tying patterns that do not expand: read them as below
            pass
    if not getattr(getattr(model, "config", None), "tie_word_embeddings", True):
        return False
    tied = getattr(model, "_tied_weights_keys", None) or []
    names = list(tied) if isinstance(tied, (list, tuple, dict)) else []
    return any(re.fullmatch(str(name), key) or key == name for name in names)


def _read_trusted(file: Path) -> Checkpoint:
    try:
        content = torch.load(str(file), map_location="cpu", weights_only=False)
    except Exception as exc:  # anything the pickle raises while rebuilding foreign objects
        raise PruningLimitsError(f"cannot load {str(file)!r}: {message_line(exc)}") from exc
    if isinstance(content, nn.Module):
        record = content.__dict__.pop(MODULE_TRAINING_ATTR, None)  # the module is handed on without it
        training = _stored_training(str(file), {"training": record}) if record is not None else {}
        return Checkpoint(str(file), "module", module=content, training=training)
    return _from_content(str(file), content)


#: Keys under which a saved mapping holds its state_dict (training loops' checkpoints).
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")


def _from_content(path: str, content: Any) -> Checkpoint:
    if isinstance(content, Mapping) and content.get("format") == BUNDLE_FORMAT:
        version = content.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version != BUNDLE_VERSION:
            shown = repr(version) if isinstance(version, int) and not isinstance(version, bool) else describe(version)
            writer = content.get("library_version")
            newer = isinstance(version, int) and not isinstance(version, bool) and version > BUNDLE_VERSION
            by = f" (written by pruning-limits {writer})" if isinstance(writer, str) and re.fullmatch(r"[\w.+!-]{1,40}", writer) else ""
            raise PruningLimitsError(
                f"{path!r} is a pruning-limits bundle of version {shown}{by}; this release reads version {BUNDLE_VERSION}"
                + (": upgrade pruning-limits to read it" if newer else "")
            )
        state = content.get("state_dict")
        if not _is_tensor_mapping(state):
            raise PruningLimitsError(f"{path!r} is a bundle without a state_dict of tensors")
        return Checkpoint(
            path,
            "bundle",
            state_dict=dict(state),
            model_spec=_stored_spec(path, content, "model_spec"),
            data_spec=_stored_spec(path, content, "data_spec"),
            model_record=_stored_mapping(path, content, "model_record"),
            training=_stored_training(path, content),
            pruning=_stored_mapping(path, content, "pruning"),
            library_version=content.get("library_version"),
            params=_stored_params(path, content.get("params")),
        )
    if _is_tensor_mapping(content):
        return Checkpoint(path, "state_dict", state_dict=dict(content))
    if isinstance(content, Mapping):
        for key in STATE_DICT_KEYS:
            if _is_tensor_mapping(content.get(key)):
                return Checkpoint(path, "state_dict", state_dict=dict(content[key]))
        others = [k for k, v in content.items() if not isinstance(v, torch.Tensor)]
        nested = [str(k) for k, v in content.items() if _is_tensor_mapping(v)]
        if nested:  # a training checkpoint: say where the weights are
            raise PruningLimitsError(
                f"{path!r} holds state_dicts under {nested[:3]}, not under {list(STATE_DICT_KEYS)}: "
                f"save that state_dict alone (torch.save(checkpoint[{nested[0]!r}], ...))"
            )
        if others and len(others) < len(content):  # tensors beside a stray entry such as an epoch count
            raise PruningLimitsError(
                f"{path!r} is a state_dict with entries that are not tensors ({[str(k) for k in others[:3]]}): "
                "save model.state_dict() alone"
            )
    raise PruningLimitsError(
        f"{path!r} is not a model checkpoint: expected a bundle, a state_dict or a TorchScript archive, "
        f"got {describe(content)}"
    )


#: TorchScript ``original_name`` of the layers whose shells count as prunable (THEORY §1).
_SHELL_CLASSES = ("Linear", "Conv1d", "Conv2d", "Conv3d")


def _shell(original_name: str, params: dict[str, nn.Parameter]) -> nn.Module:
    """An empty module of the eager class a scripted layer came from, holding ``params`` (the
    view's own copies of its parameters; a tensor the archive shares is one object in every shell)."""
    cls = getattr(nn, original_name) if original_name in _SHELL_CLASSES else nn.Module
    shell = cls.__new__(cls)
    nn.Module.__init__(shell)
    for name, value in params.items():
        shell.register_parameter(name, value)
    if "weight" in params and original_name == "Linear":
        shell.out_features, shell.in_features = params["weight"].shape
    shell.extra_repr = lambda: "scripted " + original_name  # the eager constructor's fields are unknown
    return shell


def _tensor_identity(value: torch.Tensor) -> tuple[Any, ...]:
    """What makes two tensors of a scripted module one tensor: the same object, or the same
    memory seen the same way (an empty tensor shares with nothing)."""
    if value.numel() == 0 or value.device.type == "meta":
        return ("object", id(value))
    return (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape), tuple(value.stride()),
            value.dtype, value.device)


def _shell_keys(paths: list[str]) -> list[str]:
    """Collision-free :class:`ScriptedModel` layer names for submodule paths: dots become
    ``__`` (the names selections and archives store). A name is its path's own where the path
    has no dot; a dotted path whose name another path has (``a.0`` and an attribute ``a__0``:
    until 2026-12 one of the two layers was dropped), or a name of an ``nn.ModuleDict``
    attribute, gets the first free ``__N`` suffix."""
    reserved = nn.ModuleDict()  # a name such as "update" is a method of the dict the shells live in
    taken = {path for path in paths if path and "." not in path and not hasattr(reserved, path)}
    keys = []
    for path in paths:
        base = path.replace(".", "__") or "_root"
        if path in taken:
            keys.append(path)
            continue
        key, number = base, 2
        while key in taken or hasattr(reserved, key):
            key, number = f"{base}__{number}", number + 1
        taken.add(key)
        keys.append(key)
    return keys


class ScriptedModel(nn.Module):
    """Eager view of a TorchScript module, so the library can analyse and prune it.

    ``torch.func.functional_call`` and ``torch.nn.utils.prune`` do not work on scripted
    modules. This view keeps every parameter in an eager "shell" module of the original class
    (so ``nn.Linear``/``nn.Conv*`` weights are found as prunable weights) and, on each call,
    writes the current shell tensors (masked, if ``torch.nn.utils.prune`` re-parametrised
    them) into the scripted module before running it; autograd flows through the written
    tensors. A tensor the archive shares between submodules (tied weights) is one parameter,
    held by the shell of each (as an eager model holds it), so it counts once and is written
    back shared (:meth:`to_scripted`). A shell is named by its submodule's path with dots as
    ``__`` (:func:`_shell_keys`: names that would collide get a suffix). Buffers stay in the
    scripted module, and ``.to()``/``.train()`` reach it.
    """

    def __init__(self, scripted: Any) -> None:
        super().__init__()
        object.__setattr__(self, "scripted", scripted)  # hidden from the module tree
        targets: dict[str, Any] = {}
        self.layers = nn.ModuleDict()
        holders = [(path, sub) for path, sub in scripted.named_modules() if dict(sub.named_parameters(recurse=False))]
        copies: dict[tuple[Any, ...], nn.Parameter] = {}  # one copy per tensor: tied weights stay tied
        for key, (_, sub) in zip(_shell_keys([path for path, _ in holders]), holders):
            params = {}
            for name, value in sub.named_parameters(recurse=False):
                identity = _tensor_identity(value)
                if identity not in copies:
                    copies[identity] = nn.Parameter(value.detach().clone(), requires_grad=value.requires_grad)
                params[name] = copies[identity]
            targets[key] = sub
            self.layers[key] = _shell(getattr(sub, "original_name", ""), params)
        object.__setattr__(self, "targets", targets)

    def _slots(self) -> Iterator[tuple[Any, str, nn.Parameter, torch.Tensor | None]]:
        """``(scripted submodule, tensor name, the shell's parameter, its mask or None)`` of every
        parameter slot of the scripted module (``weight_orig`` and ``weight_mask`` where
        ``torch.nn.utils.prune`` re-parametrised the shell's ``weight``)."""
        for key, shell in self.layers.items():
            for name, value in shell.named_parameters(recurse=False):
                base = name[: -len("_orig")] if name.endswith("_orig") else name
                mask = getattr(shell, base + "_mask", None) if name.endswith("_orig") else None
                yield self.targets[key], base, value, mask

    def _current(self) -> Iterator[tuple[Any, str, torch.Tensor, bool]]:
        for target, name, value, mask in self._slots():
            yield target, name, value if mask is None else value * mask, value.requires_grad

    def forward(self, *args: Any) -> Any:
        slots = list(self._current())
        for target, name, value, _ in slots:
            if torch._C._functorch.is_functorch_wrapped_tensor(value):
                # TorchScript drops forward-mode tangents silently: fail loudly instead, so a
                # Hessian engine falls back to reverse-over-reverse products.
                raise RuntimeError("a TorchScript model supports reverse-mode autograd only, not torch.func transforms")
            setattr(target, name, value)
        try:
            return self.scripted(*args)
        finally:
            # the graph of this call keeps the tensors it read; the module keeps plain copies
            for target, name, value, _ in slots:
                setattr(target, name, value.detach())

    def train(self, mode: bool = True) -> ScriptedModel:
        self.scripted.train(mode)
        return super().train(mode)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> ScriptedModel:
        self.scripted._apply(fn)
        return super()._apply(fn, *args, **kwargs)

    def to_scripted(self) -> Any:
        """The scripted module with the current (e.g. pruned) weights as its parameters; a
        tensor the view shares between layers (tied weights) is one parameter in every place.

        A shared tensor that ``torch.nn.utils.prune`` masks (``weight_orig``, not folded) stays
        one parameter where every use has an equal mask (:func:`~pruning_limits.masks.prune_model`
        masks all uses alike): the masked values are written once. Uses whose masks differ (or
        one masked, another not) run different weights, and get a parameter each. (Until
        2026-12-06 every masked use got its own parameter: a review.)
        """
        # id(underlying parameter) -> [(mask or None, the parameter written)]; the underlying
        # parameter is held by the view's shells, so its id is its own for the whole loop
        written: dict[int, list[tuple[torch.Tensor | None, nn.Parameter]]] = {}
        for target, name, param, mask in self._slots():
            uses = written.setdefault(id(param), [])
            kept = next((out for seen, out in uses if _same_mask(seen, mask)), None)
            if kept is None:
                value = param if mask is None else param * mask
                kept = nn.Parameter(value.detach().clone(), requires_grad=param.requires_grad)
                uses.append((mask, kept))
            setattr(target, name, kept)
        return self.scripted


def _same_mask(first: torch.Tensor | None, second: torch.Tensor | None) -> bool:
    """Whether two uses of one tensor run the same weights: both unmasked, or equal masks."""
    if first is None or second is None:
        return first is second
    return first is second or (first.shape == second.shape and torch.equal(first, second))


def scripted_view(scripted: Any) -> ScriptedModel:
    """Wrap a loaded TorchScript module in a :class:`ScriptedModel`."""
    return ScriptedModel(scripted)


def _dtype_kind(dtype: torch.dtype) -> str:
    """What values a dtype holds: ``"floating-point"``, ``"complex"``, ``"boolean"`` or ``"integer"``."""
    if dtype.is_complex:
        return "complex"
    if dtype.is_floating_point:
        return "floating-point"
    return "boolean" if dtype == torch.bool else "integer"


def tied_groups(model: nn.Module) -> list[list[str]]:
    """The names of ``model.state_dict()`` that share one tensor (tied weights), in groups of two or more."""
    groups: dict[int, list[str]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        groups.setdefault(id(tensor), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def check_state_dict_fits(model: nn.Module, state_dict: Mapping[str, Any], spec: str | None = None) -> None:
    """Check that ``state_dict`` has exactly the keys and shapes of ``model.state_dict()``, and
    tensors of the model's kind for every key, in the dense strided layout and not on the meta
    device: real floating-point ones where the model has them (``load_state_dict`` would cast
    integer weights silently and drop an imaginary part with a warning), integer ones where it
    has integers (a float ``num_batches_tracked`` of 0.7 was cast to 0).

    Names the model ties to one tensor (tied weights) are one key: the file may hold one of
    them (``safetensors.torch.save_model`` writes a shared tensor once) or several with equal
    values; different values under them are refused (loading kept the last one silently).

    Args:
        model: the model the weights are for.
        state_dict: the weights.
        spec: the model spec ``model`` was built from, which the error names (the model's
            class where there is none).

    Raises:
        PruningLimitsError: naming the missing, unexpected, mis-shaped and mis-typed keys and
            the tied keys whose values differ.
    """
    expected = model.state_dict()
    tied = tied_groups(model)
    covered = {name for names in tied if any(n in state_dict for n in names) for name in names}
    missing = [k for k in expected if k not in state_dict and k not in covered]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    mistyped: dict[str, list[str]] = {}
    for k in expected:
        given = state_dict.get(k)
        if given is None:
            continue
        kind = _dtype_kind(expected[k].dtype)
        if _dtype_kind(given.dtype) != kind or given.layout != torch.strided or given.is_meta:
            mistyped.setdefault(kind, []).append(
                f"{k} {given.dtype}" + ("" if given.layout == torch.strided else f" {given.layout}") + (" on meta" if given.is_meta else "")
            )
    differing = []
    for names in tied:
        present = [n for n in names if n in state_dict]
        if len(present) < 2:
            continue
        first, *others = (state_dict[n] for n in present)
        comparable = all(v.layout == torch.strided and not v.is_meta and v.shape == first.shape for v in [first, *others])
        # (not comparable: named above); equal values in two dtypes are equal either way round
        if comparable and any(not (torch.equal(v.to(first.dtype), first) and torch.equal(first.to(v.dtype), v)) for v in others):
            differing.append("/".join(present))
    problems = [f"{kind} tensors expected, got {_short_list(items)}" for kind, items in mistyped.items()]
    if missing:
        problems.append(f"missing keys {_short_list(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_short_list(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped (checkpoint vs model) {_short_list(misshaped)}")
    if differing:
        problems.append(f"different values under names the model ties to one tensor {_short_list(differing)}")
    if problems:
        raise PruningLimitsError(
            f"the state_dict does not fit model {repr(spec) if spec else type(model).__name__}: "
            + "; ".join(problems)
            + _key_hint(expected, state_dict)
        )


def with_tied_keys(model: nn.Module, state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """``state_dict`` with every name of a tied group the model ties filled in from a name of it
    that is there (``safetensors.torch.save_model`` writes a shared tensor once), so that a strict
    ``load_state_dict`` takes it."""
    filled = dict(state_dict)
    for names in tied_groups(model):
        present = next((n for n in names if n in filled), None)
        if present is not None:
            for name in names:
                filled.setdefault(name, filled[present])
    return filled


#: Key prefixes wrappers add to a state_dict, and how to save it without them.
WRAPPER_PREFIXES = {
    "module.": "DistributedDataParallel/DataParallel: save model.module.state_dict()",
    "_orig_mod.": "torch.compile: save the original model's state_dict()",
}


def _key_hint(expected: Mapping[str, Any], state_dict: Mapping[str, Any]) -> str:
    """What a mismatch of keys most likely is: a wrapper's prefix, or torch.nn.utils.prune's masks."""
    for prefix, advice in WRAPPER_PREFIXES.items():
        if state_dict and all(k.startswith(prefix) for k in state_dict) and {k[len(prefix):] for k in state_dict} == set(expected):
            return f" (every key starts with {prefix!r}, as {advice})"
    if any(k.endswith("_orig") or k.endswith("_mask") for k in state_dict):
        return " (weight_orig/weight_mask: a model pruned with torch.nn.utils.prune; call prune.remove on it before saving)"
    return ""


def _short_list(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        return f"[{shown}, ... ({len(items)} in all)]"
    return f"[{shown}]"


def check_model(model: nn.Module) -> None:
    """Check a loaded model: finite parameters and buffers, and at least one prunable weight.

    Raises:
        PruningLimitsError: naming the first non-finite tensor, or saying there is nothing to prune.
    """
    from .objective import _default_prunable, prunable_parameters

    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise PruningLimitsError(f"the model's {name} contains NaN or infinite values")
    try:
        prunable_parameters(model)
    except PruningLimitsError:
        # a parametrized layer (spectral norm) is refused by the default selection, but --params,
        # applied after loading, may choose around it: that selection is checked then
        if not _default_prunable(model, refuse_reparametrized=False):
            raise


def check_stored_spec(checkpoint: Checkpoint, spec: str | None, what: str, *, trust: bool = False) -> None:
    """Refuse to import and call a ``package.module:function`` spec read from a checkpoint file.

    A bundle is plain data, but a callable spec stored in it would make loading the file call
    any importable function. Such a spec runs only when the caller trusts the file or names the
    spec itself (``--model``/``--data``).

    Raises:
        PruningLimitsError: the stored spec is callable and ``trust`` is False.
    """
    from .models import calls_user_code
    from .specs import looks_callable, parse_callable_spec

    if spec and looks_callable(spec):
        parse_callable_spec(spec, f"{what} spec stored in {checkpoint.path!r}")  # literal arguments only
    if not trust and spec and calls_user_code(spec):
        import shlex

        option = "--model" if what == "model" else "--data"
        raise PruningLimitsError(  # the option as a shell takes it: a spec with arguments holds ( and spaces
            f"{checkpoint.path!r} names the {what} function {spec!r}, which loading would import and call; "
            f"give it yourself with {option} {shlex.quote(spec.strip())} or pass --trust-checkpoint if you trust the file"
        )


def build_from_checkpoint(
    checkpoint: Checkpoint,
    *,
    model_spec: str | None = None,
    data: Any = None,
    seed: int = 0,
    trust: bool = False,
) -> nn.Module:
    """Build the model a checkpoint describes and load its weights, with every check applied.

    Args:
        checkpoint: from :func:`read_checkpoint`.
        model_spec: overrides the bundle's model spec; required for a plain state_dict.
        data: the ``DataBundle`` used to size zoo models (input shape, classes); ignored for
            a bundle that records its model's sizes, unless ``model_spec`` overrides the spec.
        seed: initialisation seed of the model before its weights are replaced.
        trust: allow a ``package.module:factory`` model spec stored in the bundle
            (:func:`check_stored_spec`).

    Returns:
        the model in eval mode, on the CPU.

    Raises:
        PruningLimitsError: an untrusted stored factory spec, no model spec for a state_dict, a state_dict that does not fit
            the model, non-finite weights, or no prunable weights.
    """
    if model_spec and checkpoint.kind in ("torchscript", "module", "huggingface"):
        # it holds its own architecture: a --model beside it was ignored, and train --init then
        # wrote a bundle of the view's parameter names under that spec, which no command could load
        kind = {"torchscript": "a TorchScript archive", "module": "a pickled module", "huggingface": "a Hugging Face model folder"}
        raise PruningLimitsError(
            f"{checkpoint.path!r} is {kind[checkpoint.kind]}, which holds its own architecture: drop --model {model_spec}"
        )
    if checkpoint.kind == "torchscript":
        model = scripted_view(checkpoint.module)
    elif checkpoint.kind in ("module", "huggingface"):
        model = checkpoint.module
    else:
        spec = model_spec or checkpoint.model_spec
        if not spec:
            raise PruningLimitsError(
                f"{checkpoint.path!r} is a plain state_dict: give the architecture with --model SPEC "
                "(and --data to size it)"
            )
        if not model_spec:
            check_stored_spec(checkpoint, spec, "model", trust=trust)
        from .models import build_model, calls_user_code

        sizes: Any = data
        if checkpoint.model_record and spec == checkpoint.model_spec:
            # the bundle's own sizes: data given on top is then checked against the model
            sizes = {
                k: checkpoint.model_record[k]
                for k in ("input_shape", "num_outputs", "vocab_size")
                if k in checkpoint.model_record
            }
        if sizes is None:
            raise PruningLimitsError(f"building model {spec!r} needs data to size it: give --data SPEC")
        assert checkpoint.state_dict is not None
        # the weights' shapes are checked before the model is built at the size the file declares (a
        # user's factory is called once, as before)
        sketch = None if calls_user_code(spec) else _on_meta(lambda: build_model(spec, sizes, seed=seed))
        if sketch is not None:
            check_state_dict_fits(sketch, checkpoint.state_dict, spec)
        model = build_model(spec, sizes, seed=seed)
        check_state_dict_fits(model, checkpoint.state_dict, spec)
        model.load_state_dict(with_tied_keys(model, checkpoint.state_dict))
    if checkpoint.params is not None:  # a bundle's or a Hugging Face folder's stored selection
        from .objective import select_parameters

        try:
            select_parameters(model, checkpoint.params)
        except PruningLimitsError as exc:
            raise PruningLimitsError(f"{checkpoint.path!r} stores the parameter selection {checkpoint.params}: {exc}") from None
    model.eval()
    check_model(model)
    return model


def save_bundle(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    model_spec: str,
    data_spec: str,
    training: Mapping[str, Any] | None = None,
    pruning: Mapping[str, Any] | None = None,
) -> Path:
    """Write a bundle (state_dict + specs + settings) atomically.

    The bundle holds only strings, numbers, lists, dicts and tensors, so it loads with
    ``torch.load(weights_only=True)``.

    Raises:
        PruningLimitsError: settings that are not plain str/int/float/bool/None containers.
    """
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    bundle: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "state_dict": state,
        "model_spec": str(model_spec),
        "data_spec": str(data_spec),
        "training": _plain(dict(training or {}), "training"),
        "model_record": _model_record(model),
        "library_version": __version__,
    }
    from .objective import parameter_selection

    selection = parameter_selection(model)
    if selection is not None:
        bundle["params"] = list(selection)
    if pruning:
        bundle["pruning"] = _plain(dict(pruning), "pruning")
    with atomic_open(path, "wb") as handle:
        torch.save(bundle, handle)
    return Path(path)


def _model_record(model: nn.Module) -> dict[str, Any]:
    from .models import model_record

    record = model_record(model)
    return {} if record is None else _plain(record.to_dict(), "model record")


def save_torchscript(path: str | os.PathLike[str], module: Any, *, training: Mapping[str, Any] | None = None) -> Path:
    """Write a TorchScript module (or the scripted module of a :func:`scripted_view`) atomically.

    ``training``: a training record to carry (:data:`TORCHSCRIPT_TRAINING`), as a bundle does.
    A parameter selection of the view (``--params``) travels as :data:`TORCHSCRIPT_PARAMS`.
    """
    from .objective import parameter_selection

    selection = parameter_selection(module)
    if hasattr(module, "to_scripted"):
        module = module.to_scripted()
    extra = {TORCHSCRIPT_TRAINING: json.dumps(_plain(dict(training), "training"))} if training else {}
    if selection is not None:
        extra[TORCHSCRIPT_PARAMS] = json.dumps(list(selection))
    with atomic_open(path, "wb") as handle:
        torch.jit.save(module, handle, _extra_files=extra)
    return Path(path)


def save_module(path: str | os.PathLike[str], module: nn.Module, *, training: Mapping[str, Any] | None = None) -> Path:
    """Write a full pickled module atomically (only for models loaded with ``trust=True``).

    ``training``: a training record to carry, as a bundle does, pickled with the module under
    :data:`MODULE_TRAINING_ATTR` (removed from ``module`` again after writing, and by
    :func:`read_checkpoint`); a parameter selection travels as the module's own attribute.
    """
    record = _plain(dict(training), "training") if training else None
    if record is not None:
        module.__dict__[MODULE_TRAINING_ATTR] = record
    try:
        with atomic_open(path, "wb") as handle:
            torch.save(module, handle)
    finally:
        module.__dict__.pop(MODULE_TRAINING_ATTR, None)
    return Path(path)


def _plain(value: Any, name: str) -> Any:
    """Convert numpy scalars and tuples to plain types; refuse anything weights_only cannot load.

    Subclasses of the plain types become those types: ``np.float64`` (a ``float``) and torch's
    ``TorchVersion`` (a ``str``) were stored as they were, and the bundle's own reader refused
    the file (a validation script's cache, 2026-12-06)."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    for plain in (bool, int, float, str):  # bool first: it is an int
        if isinstance(value, plain):
            return plain(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _plain(v, name) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, name) for v in value]
    raise PruningLimitsError(f"{name} settings must be plain numbers, strings, lists or dicts, got {describe(value)}")
