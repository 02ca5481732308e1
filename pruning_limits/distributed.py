"""Data-parallel Hessian-vector products over ``torch.distributed`` (gloo on CPU, NCCL on GPU).

Under ``torchrun --standalone --nproc-per-node=N -m pruning_limits predict CKPT`` every rank
holds the whole model and a contiguous shard of the (possibly subsampled) analysis data. The
Hessian of the mean loss is the sample-weighted sum of the shards' Hessians,

    H·v = Σ_r (n_r / N) H_r·v,

so each rank scales its local product by ``n_r/N`` and the products are summed with
``all_reduce`` (shared THEORY.md §10). ``DistributedDataParallel``'s hooks do not fire for
``torch.autograd.grad``, so the reduction is explicit. Every rank then holds the same float64
product, runs the same Lanczos recurrence from the same seeded probes and reaches the same
spectrum; a monitor's stop decision is taken on rank 0 and broadcast, so that no rank can wait
for a product the others will not compute. Only rank 0 prints and writes (the command line's
``Console`` and file outputs check :attr:`DistributedContext.is_main`).

A rank that fails ends its process; the others see the broken connection in their next
collective and stop with one line (:class:`ProcessGroupError`), before anything is written.
Under ``torchrun`` the launcher also stops them (SIGTERM) and prints its own report. The command
line joins the group before it loads the checkpoint and the data (``cli._pipeline.join``), so
this holds for a rank that fails while loading too. A rank that fails before it has joined
(its options are refused on every rank alike, and rank 0 says them) leaves any other that did
join in the rendezvous, where SIGTERM cannot reach it, until torchrun kills it (30 s later).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ._checks import PruningLimitsError, message_line
from .objective import check_pair, loader_dataset, loader_over

#: Seconds a rank waits in a collective before giving up (a peer that hangs, not one that dies:
#: a dead peer breaks the connection at once). Hessian-vector products of large models on one
#: rank can take minutes, hence the generous default.
DEFAULT_TIMEOUT = 1800


class ProcessGroupError(PruningLimitsError):
    """The process group failed on this rank (a peer died, or the group could not be joined).

    Unlike other errors, which every rank meets alike, only some ranks see this one, so each
    says which rank it is."""


def _environment_int(name: str, default: int) -> int:
    text = os.environ.get(name, str(default))
    try:
        return int(text)
    except ValueError:
        raise PruningLimitsError(f"the launcher's {name} must be an integer, got {text!r}") from None


def launched() -> bool:
    """True when this process was started by ``torchrun`` (or another launcher) with WORLD_SIZE > 1."""
    return _environment_int("WORLD_SIZE", 1) > 1


def environment_rank() -> int:
    """This process's rank from the launcher's environment (0 when not launched)."""
    return _environment_int("RANK", 0)


def _cuda_index() -> int:
    """The GPU of this process under a launcher (its ``LOCAL_RANK``), refused in one line when this
    node's processes outnumber the GPUs this process sees.

    With ``LOCAL_WORLD_SIZE`` (torchrun sets it) every process of the node refuses alike, so that
    rank 0 says it once; torch's own error on the ranks past the count was a multi-sentence
    ``invalid device ordinal`` while rank 0 waited in the rendezvous (a review, 2026-12-06).
    """
    local = _environment_int("LOCAL_RANK", 0)
    per_node = max(_environment_int("LOCAL_WORLD_SIZE", local + 1), local + 1)
    count = torch.cuda.device_count()
    if per_node > count:
        raise PruningLimitsError(
            f"under torchrun each process takes the GPU of its LOCAL_RANK, so {per_node} processes on this node need "
            f"{per_node} GPUs, but this process sees {count} CUDA device(s): start at most {count} "
            f"process{'' if count == 1 else 'es'} per node (--nproc-per-node)"
        )
    return local


class DistributedContext:
    """The process group of this run (or a single process), with the helpers the pipeline needs.

    Args:
        device: the device of the analysis (``cuda`` picks ``cuda:LOCAL_RANK`` under a launcher,
            where a ``cuda:i`` is refused).
        timeout: seconds for a collective (default :data:`DEFAULT_TIMEOUT`).

    Attributes:
        rank, world_size: of this process (0 and 1 without a launcher).
        backend: ``"gloo"``, ``"nccl"`` or ``None`` (single process).
        device: the device this rank computes on.
    """

    def __init__(self, device: torch.device, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.rank, self.world_size, self.backend = 0, 1, None
        self.device = device
        self._owns_group = False
        if not launched():
            return
        import torch.distributed as dist

        if device.type == "cuda" and device.index is not None:  # every rank on one GPU: NCCL refuses that
            raise PruningLimitsError(
                f"under torchrun each process takes the GPU of its LOCAL_RANK: give --device cuda, got {device}"
            )
        if device.type == "cuda":
            self.device = torch.device("cuda", _cuda_index())
            torch.cuda.set_device(self.device)
        self.backend = "nccl" if self.device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            try:
                dist.init_process_group(self.backend, timeout=datetime.timedelta(seconds=timeout))
            except Exception as exc:  # noqa: BLE001 - reported in one line
                raise ProcessGroupError(
                    f"rank {environment_rank()}: could not join the torchrun process group ({self.backend}): {message_line(exc)}"
                ) from None
            self._owns_group = True
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that prints and writes."""
        return self.rank == 0

    @property
    def _reduce_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")

    def shard(self, data: Any) -> tuple[Any, int, int]:
        """This rank's contiguous share of ``data`` with its sample count and the total.

        Args:
            data: an ``(x, y)`` pair or a Dataset (a DataLoader's dataset is sharded, its
                batch size and collate function kept: :func:`pruning_limits.objective.loader_over`).

        Returns:
            ``(local_data, local_samples, total_samples)``; without a launcher ``data`` itself.

        Raises:
            PruningLimitsError: fewer samples than ranks.
        """
        from torch.utils.data import DataLoader, Subset

        from .subsets import check_indexable, num_samples

        total = num_samples(data)
        if self.world_size == 1:
            return data, total, total
        check_indexable(data, "data-parallel shards split the samples")  # a raw NotImplementedError from the fingerprint before
        if total < self.world_size:
            raise PruningLimitsError(
                f"the Hessian data must have at least one sample per process ({self.world_size}), got {total} "
                "(raise --hessian-samples or start fewer processes)"
            )
        self.check_same("data", data_fingerprint(data, total))
        bounds = np.linspace(0, total, self.world_size + 1).round().astype(int)
        start, stop = int(bounds[self.rank]), int(bounds[self.rank + 1])
        if isinstance(data, (tuple, list)):
            x, y = check_pair(*data)
            return (x[start:stop], y[start:stop]), stop - start, total
        if isinstance(data, DataLoader):
            return loader_over(data, Subset(loader_dataset(data), range(start, stop))), stop - start, total
        return Subset(data, range(start, stop)), stop - start, total

    def all_reduce(self, array: np.ndarray) -> np.ndarray:
        """Sum of ``array`` over all ranks (float64), the same on every rank."""
        if self.world_size == 1:
            return array
        import torch.distributed as dist

        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64)).to(self._reduce_device)
        try:
            dist.all_reduce(tensor)
        except Exception as exc:  # noqa: BLE001 - a peer died or timed out
            raise ProcessGroupError(f"rank {self.rank}: another process stopped ({_reason(exc)}); nothing was written") from None
        return tensor.cpu().numpy()

    def check_same(self, what: str, fingerprint: np.ndarray) -> None:
        """Refuse, on every rank alike, a run whose ranks hold different ``what`` (by a fingerprint).

        Each rank shards its own copy of the data: a data function that shuffles without a seed
        (or another checkpoint file on another machine) gave ranks the same samples in another
        order, shards that overlap and miss, and a spectrum 2 % off with no warning (a review's
        2-rank run, 2026-12-05).

        Raises:
            PruningLimitsError: some rank's fingerprint is not rank 0's (the same line on every rank).
        """
        if self.world_size == 1:
            return
        import torch.distributed as dist

        mine = torch.from_numpy(np.ascontiguousarray(fingerprint, dtype=np.float64)).to(self._reduce_device)
        first = mine.clone()
        try:
            dist.broadcast(first, src=0)
        except Exception as exc:  # noqa: BLE001
            raise ProcessGroupError(f"rank {self.rank}: another process stopped ({_reason(exc)}); nothing was written") from None
        same = bool(torch.allclose(mine, first, rtol=1e-9, atol=0.0))
        differ = self.all_reduce(np.array([0.0 if same else 1.0]))[0]
        if differ:
            raise PruningLimitsError(
                f"the {what} differ between processes ({int(differ)} of {self.world_size} ranks against rank 0): every "
                "rank must load the same samples in the same order and the same weights (seed any shuffling)"
            )

    def agree(self, decision: bool) -> bool:
        """Rank 0's ``decision`` on every rank (broadcast)."""
        if self.world_size == 1:
            return bool(decision)
        import torch.distributed as dist

        flag = torch.tensor([1.0 if decision else 0.0], dtype=torch.float64, device=self._reduce_device)
        try:
            dist.broadcast(flag, src=0)
        except Exception as exc:  # noqa: BLE001
            raise ProcessGroupError(f"rank {self.rank}: another process stopped ({_reason(exc)}); nothing was written") from None
        return bool(flag.item() > 0.5)

    def synced_monitor(self, monitor: Callable[[Any], bool] | None) -> Callable[[Any], bool] | None:
        """``monitor`` whose stop decision is rank 0's on every rank (keeps ``status``)."""
        if monitor is None or self.world_size == 1:
            return monitor
        return _SyncedMonitor(monitor, self)

    def close(self, *, wait_for_peers: bool = True) -> None:
        """Leave the process group this context created.

        Args:
            wait_for_peers: meet the other ranks at a barrier first (a run that ended normally),
                so that no rank tears its connections down while a peer is still in its last
                collective; gloo's teardown then aborted a rank now and then (SIGABRT,
                "terminate called without an active exception": about 1 run of the
                distributed tests in 4 on a loaded machine). ``False`` after an error, where a
                peer may be gone.
        """
        if self._owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                if wait_for_peers and self.world_size > 1:
                    try:  # NCCL: on this rank's GPU (without device_ids it warns that it guesses)
                        dist.barrier(device_ids=[self.device.index]) if self.backend == "nccl" else dist.barrier()
                    except Exception:  # noqa: BLE001 - a peer already gone: leave all the same
                        pass
                dist.destroy_process_group()
            self._owns_group = False


class _SyncedMonitor:
    def __init__(self, monitor: Callable[[Any], bool], context: DistributedContext) -> None:
        self.monitor, self.context = monitor, context

    def __call__(self, spectrum: Any) -> bool:
        return self.context.agree(bool(self.monitor(spectrum)))

    @property
    def status(self) -> str:
        return str(getattr(self.monitor, "status", ""))


class ShardedOperator:
    """``H·v`` of the whole data from the local operator of each rank's shard.

    Args:
        local: the rank's operator (e.g. :class:`~pruning_limits.hessian.HessianOperator` of
            its shard: the mean-loss Hessian of the shard).
        local_samples, total_samples: ``n_r`` and ``N``.
        context: the :class:`DistributedContext`.

    Attributes:
        dim, dtype, device: of the local operator.
        num_hvps: products of this operator (each one is one product on every rank).
    """

    def __init__(self, local: Any, local_samples: int, total_samples: int, context: DistributedContext) -> None:
        weights = getattr(local, "_w0", None)
        if weights is not None:  # the analysed weights, and the fixed parameters and buffers, which shape H too
            fixed = getattr(local, "_fixed", {})
            sizes = [float(weights.numel()), float(len(fixed)), float(sum(t.numel() for t in fixed.values()))]
            context.check_same("weights", np.array(sizes))  # first: the fingerprints below have one length on every rank
            context.check_same("weights", weights_fingerprint(weights, fixed))
        self.local = local
        self.weight = local_samples / total_samples
        self.context = context
        self.dim = int(local.dim)
        self.dtype = getattr(local, "dtype", None)
        self.device = getattr(local, "device", None)
        self.num_hvps = 0

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """The all-reduced product with one float64 vector."""
        out = _float64(self.local.matvec(np.asarray(v, dtype=np.float64)))
        self.num_hvps += 1
        return self.context.all_reduce(out * self.weight)

    def matmat(self, V: np.ndarray) -> np.ndarray:
        """The all-reduced product with the columns of a float64 ``(dim, k)`` array."""
        out = _float64(self.local.matmat(np.asarray(V, dtype=np.float64)))
        self.num_hvps += V.shape[1]
        return self.context.all_reduce(out * self.weight)


def weights_fingerprint(weights: torch.Tensor, fixed: dict[str, torch.Tensor]) -> np.ndarray:
    """Numbers that change when the analysed ``weights`` (flat) or the ``fixed`` tensors (the
    other parameters and the buffers of a :class:`~pruning_limits.hessian.HessianOperator`:
    biases, norms, running statistics) change: three for the weights, then three for each fixed
    tensor, by name (float64). Each tensor has its own, so that a large one (a mask) does not
    swallow a change in a small one (a bias).

    Before 2026-12-06 only the analysed weights were compared (a review: a bias that differs
    between ranks changed each shard's Hessian unseen).
    """
    parts = [_positional_sums(_comparable(weights))]
    parts += [_positional_sums(_comparable(fixed[name])) for name in sorted(fixed)]  # one at a time: no copy of the model
    return np.concatenate(parts)


def _comparable(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` as one float64 row whose sums stay finite: an attention mask's ``-inf`` (or a
    float64 ``finfo.min``, whose square overflows) would make every rank's sums NaN, and NaN is
    equal to nothing: identical models would be refused."""
    values = tensor.detach().to("cpu", torch.float64).reshape(1, -1)
    return torch.nan_to_num(values, nan=0.5, posinf=1e100, neginf=-1e100).clamp(-1e100, 1e100)


#: Samples of a Dataset that :func:`data_fingerprint` reads (evenly spaced): a few loads, where
#: reading every sample on every rank would cost a pass over the data.
FINGERPRINT_SAMPLES = 16


def data_fingerprint(data: Any, total: int) -> np.ndarray:
    """Numbers that change when the samples of ``data`` or their order change (float64).

    For an ``(x, y)`` pair every sample counts (read in chunks: a float64 copy of all of ``x``
    would take twice a float32 data set again on every rank); for a Dataset or a DataLoader's
    dataset, :data:`FINGERPRINT_SAMPLES` evenly spaced samples, whatever they hold (tensors of
    any size, tuples, dicts: a padding ``collate_fn``'s items are not stacked).
    """
    from torch.utils.data import DataLoader

    if isinstance(data, (tuple, list)):
        x, y = check_pair(*data)
        sums = np.zeros(6)
        for start in range(0, len(x), FINGERPRINT_CHUNK):
            for j, t in enumerate((x, y)):
                rows = t[start : start + FINGERPRINT_CHUNK].detach().to("cpu", torch.float64).reshape(-1, max(1, t[0].numel()))
                sums[3 * j : 3 * j + 3] += _positional_sums(rows, offset=start)
        return np.concatenate([[float(total)], sums])
    dataset = loader_dataset(data) if isinstance(data, DataLoader) else data  # a sampler's indices: its part
    picks = np.linspace(0, total - 1, min(total, FINGERPRINT_SAMPLES)).round().astype(int)
    values = [_flat_values(dataset[int(i)]) for i in picks]
    return np.concatenate([[float(total)], *[_positional_sums(v.reshape(1, -1), offset=k) for k, v in enumerate(values)]])


#: Samples of an ``(x, y)`` pair :func:`data_fingerprint` converts to float64 at a time.
FINGERPRINT_CHUNK = 1024


def _flat_values(item: Any) -> torch.Tensor:
    """Every number of one sample (tensors, arrays and numbers, in tuples, lists and dicts), flat, float64."""
    if isinstance(item, dict):
        parts = [_flat_values(item[k]) for k in sorted(item, key=str)]
    elif isinstance(item, (tuple, list)):
        parts = [_flat_values(v) for v in item]
    else:
        try:
            return torch.as_tensor(np.asarray(item, dtype=np.float64)).reshape(-1)
        except (TypeError, ValueError):  # a string or another object: it cannot be compared this way
            return torch.zeros(0, dtype=torch.float64)
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def _positional_sums(rows: torch.Tensor, *, offset: int = 0) -> np.ndarray:
    """Sums of each row and of its squares, weighted by position (rows from ``offset``, then columns): order-sensitive."""
    index = torch.arange(offset, offset + rows.shape[0], dtype=torch.float64)
    weights = torch.cos(0.7548776662 * index + 0.5)
    columns = torch.cos(0.5698402910 * torch.arange(rows.shape[1], dtype=torch.float64) + 0.25)
    return np.array([float(weights @ (rows @ columns)), float(weights @ (rows**2).sum(1)), float(rows.sum())])


def _float64(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64).numpy()
    return np.asarray(value, dtype=np.float64)


def _reason(exc: BaseException) -> str:
    """The cause of a failed collective in a few words: gloo's first sentence, without its source location and peer address."""
    import re

    text = re.sub(r"^\[[^\]]*:\d+\]\s*", "", message_line(exc))  # "[.../pair.cc:553] "
    text = re.sub(r"\s*\[[0-9a-fA-F.:]+\]:\d+", "", text)  # " [127.0.0.1]:32470"
    text = text.split(". ")[0].rstrip(".")
    return text if len(text) <= 80 else text[:77] + "..."
