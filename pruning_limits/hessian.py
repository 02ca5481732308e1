"""Matrix-free Hessian of the mean training loss over the prunable weights.

:class:`HessianOperator` computes ``H·v`` and ``H·V`` for ``H = ∇²L(w*)``, the Hessian of the
mean per-example loss over the analysis data with respect to the selected (by default the
prunable) weights; every other parameter and every buffer stays fixed at its value when the
operator is built (Zhang et al., NeurIPS 2024, §3; shared THEORY.md §1-2).

Two exact products are implemented (Pearlmutter 1994, "Fast exact multiplication by the
Hessian"):

* ``"double-backward"``: reverse-over-reverse, ``∂(∇L·v)/∂w`` with ``torch.autograd.grad``
  twice. The graph of ``∇L`` does not depend on ``v``, so the engine builds it once and keeps
  it when it fits the memory budget; each product is then one backward pass through it.
  ``matmat`` runs one backward pass per column through the shared graph (a vmap-ed pass,
  ``is_grads_batched``, was slower per vector on every zoo model measured and was removed).
* ``"forward-over-reverse"``: ``jvp`` of ``torch.func.grad`` (the form recommended by the
  ``torch.func`` docs). When the data are cached and the budget allows, the engine linearizes
  the gradient once per chunk (as ``torch.func.linearize`` does: trace the ``jvp`` with
  ``make_fx`` and fold every node that does not depend on the tangent into a constant), so each
  product runs only the tangent part of the traced graph, without the autograd engine; before
  folding, additions of zeros (a ``zeros_like`` emitted by the derivative formula of e.g.
  ``threshold_backward``, the ReLU's backward, or a first layer's product with the input's zero
  tangent) are removed (:mod:`pruning_limits._fx_passes`). Otherwise the ``jvp`` is recomputed
  for every product and ``vmap``-ed over several vectors for ``matmat``.

``method="auto"`` picks by a fixed rule, the same for every build of one model and data (it
timed both methods until 2026-12-05, and timing noise sent builds of one model to different
methods, whose rounding SLQ without re-orthogonalisation amplified to 0.34 points of s*): the
linearized forward-over-reverse for a model with a convolution (:data:`AUTO_LINEARIZED_LAYERS`)
when the data and the graph can be cached and ``D`` is at most :data:`AUTO_TIMING_MAX_DIM`,
the cached double-backward otherwise; a model that cannot be linearized (an op without a
forward-mode derivative, an untraceable forward, constants over the budget) gets the
double-backward too. :attr:`HessianOperator.methods` records the choice.

The model is evaluated in eval mode (BatchNorm uses its running statistics, which never
change here) and its modes are restored afterwards. A model whose output is random even in
eval mode (e.g. ``F.dropout(x, training=True)``) is refused: two evaluations of the same
product are compared once at construction. So is one whose output for a sample depends on
the rest of its batch (a BatchNorm without running statistics), whose Hessian would depend on
the chunks (:func:`pruning_limits.objective.check_model_takes_data`).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterator
from numbers import Real
from typing import Any

import numpy as np
import torch
from torch import Tensor, fx, nn
from torch.autograd import forward_ad
from torch.func import functional_call
from torch.fx.experimental import const_fold
from torch.fx.experimental.proxy_tensor import make_fx

from ._autograd import check_twice_differentiable, explain_missing_derivatives, second_order_context, with_gradients
from ._checks import PruningLimitsError, check_choice, check_int, describe, error_line, reraise_interrupt
from ._fx_passes import copy_written_constants, drop_zero_additions
from .objective import (
    Data,
    LossFn,
    ParamSpec,
    check_model_takes_data,
    check_no_ignored_targets,
    eval_mode,
    iter_batches,
    prunable_parameters,
)

METHODS = ("auto", "double-backward", "forward-over-reverse")

#: Default memory budget (bytes) for cached data, cached gradient graphs and batched products:
#: 1 GiB, chosen, not measured (the same number as Lanczos's own budget,
#: :data:`pruning_limits.lanczos.DEFAULT_MEMORY_BUDGET`; each is held to it apart).
DEFAULT_MEMORY_BUDGET = 1 << 30

#: Default number of vectors per batched (vmap) product in ``matmat``: chosen, not measured.
DEFAULT_BLOCK_SIZE = 16

#: The construction check (two products) and the gradient graph's bytes per sample run on at
#: most this many samples of the first chunk, so that a large batch (an ``(x, y)`` pair of
#: 10 000 CIFAR images is one batch) cannot exhaust memory before the data is chunked to the
#: budget: that pair's gradient graph of a ResNet-20 would take about 57 GiB (5.8 MiB per image
#: in float32; the process was killed at 24 GiB before, docs/benchmarks.md). The number 64 is
#: chosen, not measured: enough samples to average a graph's bytes over, few enough to be cheap.
MEASURE_SAMPLES = 64

#: ``method="auto"`` linearizes the forward-over-reverse product (traces and folds it) for a
#: model with one of these layers, and uses the cached double-backward for every other model:
#: measured on the zoo (float64, one thread, docs/theory.md "Product method"), the linearized
#: product took 0.71× the double-backward's time on ``cnn`` (digits, and patterns of 32×32×3),
#: 0.79× on ``resnet20:4`` and 0.85× on ``cnn1d`` (mnist1d), against 0.93-1.16× on ``mlp``,
#: ``fc5`` and ``transformer`` (tokens, patterns), whose tracing also costs 2-9 s of building.
AUTO_LINEARIZED_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)

#: Above this many weights ``auto`` never traces and uses the cached double-backward:
#: building must cost about a product (docs/benchmarks.md, "Building the
#: operator"). On the 1.07 M-weight MLP on digits the old ``auto`` took 146 s to build and chose
#: a product of 1.36 s; the double-backward builds in 3.3 s and multiplies in 0.66 s. On a
#: CIFAR-style ResNet-20 (268 336 weights, 256 images, float64, two threads, idle machine) the
#: old ``auto`` took 452 s to build and chose the double-backward (9.3 s per product); the
#: double-backward alone builds in 24.5 s (10.5 s per product; forward-over-reverse: 160 s and
#: 10.9 s). An earlier figure of 258 s per double-backward product on that network came from a
#: machine loaded about ten-fold and did not reproduce (18.7 s with 512 images).
AUTO_TIMING_MAX_DIM = 100_000


class HessianOperator:
    """Matrix-free Hessian of the mean loss over ``data`` with respect to selected weights.

    The operator is a snapshot: it uses the weights, buffers and data as they are when it is
    built. Data too large to cache (a quarter of ``memory_budget``) are read again for every
    product, so their first batch is read twice at construction and must come back bitwise the
    same (no random transforms, no unseeded shuffling). Batches are weighted by their size, so
    an uneven last batch still gives the exact full-data Hessian; internally batches may be
    concatenated into larger chunks (the loss must be the mean of per-sample losses, as the
    default losses are: checked by :func:`~pruning_limits.objective.check_model_takes_data`,
    and targets equal to the loss's ``ignore_index`` are refused in every batch).

    Args:
        model: the network (any ``nn.Module``; evaluated in eval mode, modes restored).
        data: a DataLoader, a Dataset or an ``(inputs, targets)`` pair
            (see :func:`pruning_limits.objective.iter_batches`).
        loss_fn: ``loss_fn(output, target)``, the mean of per-sample losses (no class weights,
            no ``reduction='sum'``); default cross-entropy for integer targets and MSE otherwise
            (:func:`~pruning_limits.objective.resolve_loss_fn`).
        params: ``"prunable"`` (default), ``"all"`` or a list of parameter names
            (:func:`~pruning_limits.objective.prunable_parameters`).
        method: ``"auto"``, ``"double-backward"`` or ``"forward-over-reverse"``.
        memory_budget: bytes the engine may spend on cached data, cached gradient graphs and
            batched products, a whole number ``>= 1`` (default 1 GiB; a float of whole value
            such as ``1e9`` is taken). Batches whose gradient graph would exceed half
            of it are split into chunks (the graph's bytes per sample are measured on
            :data:`MEASURE_SAMPLES` samples at construction). The engine's own: the Lanczos
            arrays are held to a budget of their own (:func:`~pruning_limits.spectrum.slq`),
            and :func:`~pruning_limits.spectrum.estimate_spectrum` and
            :func:`~pruning_limits.pipeline.predict_limit` give both the same number, so a run
            may use up to about twice it, beside the model and the data.
        block_size: vectors per batched product in ``matmat`` (default 16).
        check_determinism: ``True`` (default) or ``False``: compare two evaluations of one
            product at construction and refuse a random model.

    Attributes:
        dim: number of selected weights ``D``.
        dtype, device: of the model's selected weights; products are computed in this dtype.
        num_hvps: single-vector products done so far (a ``matmat`` of ``k`` columns counts ``k``).
        methods: the method used for ``matvec`` and for ``matmat`` (``"auto"`` resolved by its
            rule; recorded in the spectrum's ``stopping`` by
            :func:`~pruning_limits.pipeline.predict_limit`).

    Raises:
        PruningLimitsError: bad arguments, empty data, a non-deterministic model, a loss that is
            no per-sample mean or ignores some targets, or streamed data that change between
            reads.
    """

    @with_gradients
    def __init__(
        self,
        model: nn.Module,
        data: Data,
        *,
        loss_fn: LossFn | None = None,
        params: ParamSpec = "prunable",
        method: str = "auto",
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        block_size: int = DEFAULT_BLOCK_SIZE,
        check_determinism: bool = True,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise PruningLimitsError(f"model must be a torch.nn.Module, got {describe(model)}")
        method = check_choice("method", method, METHODS)
        self._budget = _check_budget(memory_budget)
        self._block = check_int("block_size", block_size, 1)
        if not isinstance(check_determinism, (bool, np.bool_)):  # 'no' was taken as True
            raise PruningLimitsError(f"check_determinism must be True or False, got {describe(check_determinism)}")
        self._model = model
        self._loss_fn = check_model_takes_data(model, data, loss_fn)

        selected = prunable_parameters(model, params)
        self.names = [name for name, _ in selected]
        self._shapes = [p.shape for _, p in selected]
        self._numels = [p.numel() for _, p in selected]
        self.dim = int(sum(self._numels))
        first = selected[0][1]
        self.dtype: torch.dtype = first.dtype
        self.device: torch.device = first.device
        if self.dtype not in (torch.float32, torch.float64):
            # half precision: products carry ~1e-3 relative error, and Lanczos's breakdown test
            # (spectrum.BREAKDOWN_ULPS) would end a bfloat16 run after a few steps
            raise PruningLimitsError(
                f"Hessian products need float32 or float64 weights, got {self.dtype}: analyse a float32 copy (model.float())"
            )
        chosen = {id(p) for _, p in selected}
        self._w0 = torch.cat([p.detach().reshape(-1) for _, p in selected]).to(self.dtype).clone()
        self._fixed: dict[str, Tensor] = {
            name: p.detach().clone() for name, p in model.named_parameters() if id(p) not in chosen
        }
        self._fixed.update({name: b.detach().clone() for name, b in model.named_buffers()})
        self.num_hvps = 0

        self._data = data
        self._raw_loss_fn = loss_fn  # its ignore_index, checked on every batch as the data are counted
        self._chunks, self.num_samples, first_read = self._load_data(data)
        self._graph: Tensor | None = None  # cached full-data gradient with its graph
        self._leaf: Tensor | None = None
        self._linearized: list[fx.GraphModule] | None = None  # per chunk: v -> H_chunk v, primal folded
        self._chunk_samples: int | None = None  # most samples per chunk, once measured

        x, y = next(self._iter_chunks())
        if first_read is not None:  # streamed: every product reads the data again
            _check_same_reads(first_read, (x, y))
        del first_read
        with explain_missing_derivatives():  # one line naming an op without a second derivative
            per_sample = self._check_and_measure((x[:MEASURE_SAMPLES], y[:MEASURE_SAMPLES]), bool(check_determinism))
        self._per_sample = per_sample
        self._cache_ok = self._chunks is not None and per_sample * self.num_samples <= self._budget // 2
        self.methods = self._choose_methods(method)  # auto: a rule by model, size and budget
        # a chunk's gradient graph and the products through it stay within half the budget:
        # one vector at a time for single backward passes, a block for vmap-ed products;
        # larger batches are split
        single = set(self.methods.values()) == {"double-backward"}
        self._chunk_samples = max(1, int(self._budget // (2 * (1 if single else self._block) * per_sample)))
        if self._chunks is not None:
            self._chunks = _regroup(self._chunks, self._chunk_samples)
        graph_bytes = 0
        if "double-backward" in self.methods.values() and self._cache_ok:
            self._build_graph()
            graph_bytes = int(per_sample * self.num_samples)
        if "forward-over-reverse" in self.methods.values():
            self._build_linearized(self._budget // 2 - graph_bytes)
            if self._linearized is None and self._auto_linearized:
                # auto's linearized product does not trace, run or fit: use the cached graph
                self.methods = {
                    name: "double-backward" if m == "forward-over-reverse" else m for name, m in self.methods.items()
                }
                if self._graph is None:
                    self._build_graph()

    # ------------------------------------------------------------------ public products

    @with_gradients
    def matvec(self, v: Any) -> Any:
        """``H·v`` for a vector of length ``dim`` (torch tensor or numpy array; same kind back)."""
        vec, restore = self._to_internal(v, ndim=1)
        out = self._product(vec.reshape(-1, 1), self.methods["matvec"]).reshape(-1)
        self.num_hvps += 1
        return restore(out)

    @with_gradients
    def matmat(self, V: Any) -> Any:
        """``H·V`` for a ``(dim, k)`` matrix whose columns are vectors (same kind back)."""
        mat, restore = self._to_internal(V, ndim=2)
        if mat.shape[1] == 0:
            return restore(mat.clone())
        out = torch.cat(
            [
                self._product(mat[:, start : start + self._block], self.methods["matmat"])
                for start in range(0, mat.shape[1], self._block)
            ],
            dim=1,
        )
        self.num_hvps += mat.shape[1]
        return restore(out)

    def __matmul__(self, other: Any) -> Any:
        ndim = other.ndim if hasattr(other, "ndim") else np.ndim(other)
        return self.matvec(other) if ndim == 1 else self.matmat(other)

    @property
    def shape(self) -> tuple[int, int]:
        """``(dim, dim)``."""
        return (self.dim, self.dim)

    def to_linear_operator(self) -> Any:
        """This operator as a ``scipy.sparse.linalg.LinearOperator`` (float64 numpy in and out),
        for scipy's solvers and ``eigsh``. ``aslinearoperator(op)`` itself fails: scipy reads
        ``.dtype``, here a torch dtype (the products' precision, which the Lanczos code reads).

        Its ``dtype`` is float64, what scipy computes in (ARPACK, ``eigsh``); its
        ``product_dtype`` is :attr:`dtype`, the precision of the products, which
        :func:`pruning_limits.spectrum.slq` reads before ``dtype``: a float32 model's operator
        gets the float32 basis, breakdown tolerance and symmetry tolerance that the operator
        itself gets (with ``dtype`` alone, the float64 symmetry tolerance refused the symmetric
        float32 Hessian, a review's repro)."""
        return _linear_operator_type()(self)

    def __repr__(self) -> str:
        return (
            f"HessianOperator(dim={self.dim}, samples={self.num_samples}, dtype={self.dtype}, "
            f"methods={self.methods}, cached_graph={self._graph is not None}, "
            f"linearized={self._linearized is not None})"
        )

    # ------------------------------------------------------------------ data

    def _convert(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        x = x.to(self.device, self.dtype) if x.is_floating_point() else x.to(self.device)
        y = y.to(self.device, self.dtype) if y.is_floating_point() else y.to(self.device)
        return x, y

    def _load_data(
        self, data: Data
    ) -> tuple[list[tuple[Tensor, Tensor]] | None, int, tuple[Tensor, Tensor] | None]:
        """Read the data once: count samples and keep them (in chunks) if they fit a quarter of the budget.

        Returns:
            ``(chunks or None, samples, first batch or None)``: the first batch (converted)
            only when the data are not kept and are no ``(x, y)`` pair (the same tensors on
            every read), for :func:`_check_same_reads`.
        """
        pair = isinstance(data, (tuple, list))
        batches: list[tuple[Tensor, Tensor]] | None = []
        first: tuple[Tensor, Tensor] | None = None
        total, stored = 0, 0
        for x, y in iter_batches(data):
            total += len(x)
            if batches is not None:
                x, y = self._convert(x, y)
                if first is None and not pair:
                    first = (x, y)
                stored += x.element_size() * x.numel() + y.element_size() * y.numel()
                if stored > self._budget // 4:
                    batches = None
                else:
                    batches.append((x, y))
            check_no_ignored_targets(y, self._raw_loss_fn)
        if batches is None:
            return None, total, first
        return batches, total, None

    def _iter_chunks(self) -> Iterator[tuple[Tensor, Tensor]]:
        if self._chunks is not None:
            yield from self._chunks
        else:
            for x, y in iter_batches(self._data):
                x, y = self._convert(x, y)
                step = len(x) if self._chunk_samples is None else self._chunk_samples
                for start in range(0, len(x), step):
                    yield x[start : start + step], y[start : start + step]

    # ------------------------------------------------------------------ the loss

    def _loss(self, w: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """Mean loss of the chunk ``(x, y)`` at the flat weights ``w`` (others fixed)."""
        params = {
            name: piece.view(shape)
            for name, piece, shape in zip(self.names, torch.split(w, self._numels), self._shapes)
        }
        with second_order_context():  # attention through its twice-differentiable math backend
            output = functional_call(self._model, {**self._fixed, **params}, (x,))
        return self._loss_fn(output, y)

    # ------------------------------------------------------------------ products

    def _grad_with_graph(self, x: Tensor, y: Tensor, leaf: Tensor, check: bool = False) -> Tensor:
        with eval_mode(self._model):
            loss = self._loss(leaf, x, y) * (len(x) / self.num_samples)
            if check:  # a @once_differentiable Function: no error from torch, a silently wrong Hessian
                check_twice_differentiable(loss)
            (grad,) = torch.autograd.grad(loss, leaf, create_graph=True)
        return grad

    def _backward(self, grad: Tensor, leaf: Tensor, V: Tensor, retain: bool) -> Tensor:
        """``∂(grad·v)/∂w`` for each column of ``V`` through an existing gradient graph."""
        if not grad.requires_grad:  # the gradient does not depend on w: H = 0
            return torch.zeros_like(V)
        if V.shape[1] == 1:
            (out,) = torch.autograd.grad(grad, leaf, V[:, 0], retain_graph=retain, allow_unused=True)
            return torch.zeros_like(V) if out is None else out.reshape(-1, 1)
        columns = []
        for j in range(V.shape[1]):
            (out,) = torch.autograd.grad(grad, leaf, V[:, j], retain_graph=True, allow_unused=True)
            columns.append(torch.zeros_like(V[:, j]) if out is None else out)
        return torch.stack(columns, dim=1)

    def _double_backward_chunk(self, x: Tensor, y: Tensor, V: Tensor) -> Tensor:
        leaf = self._w0.clone().requires_grad_(True)
        grad = self._grad_with_graph(x, y, leaf)
        return self._backward(grad, leaf, V, retain=False)

    def _forward_over_reverse_chunk(self, x: Tensor, y: Tensor, V: Tensor) -> Tensor:
        scale = len(x) / self.num_samples
        grad_fn = torch.func.grad(lambda w: self._loss(w, x, y))

        def hvp(v: Tensor) -> Tensor:
            return torch.func.jvp(grad_fn, (self._w0,), (v,))[1]

        with eval_mode(self._model):
            if V.shape[1] == 1:
                return hvp(V[:, 0]).reshape(-1, 1) * scale
            return torch.func.vmap(hvp)(V.T.contiguous()).T * scale

    def _product(self, V: Tensor, method: str) -> Tensor:
        if method == "double-backward" and self._graph is not None:
            return self._backward(self._graph, self._leaf, V, retain=True)
        if method == "forward-over-reverse" and self._linearized is not None:
            return _linearized_product(self._linearized, V)
        chunk_product = (
            self._double_backward_chunk if method == "double-backward" else self._forward_over_reverse_chunk
        )
        total = torch.zeros_like(V)
        for x, y in self._iter_chunks():
            total += chunk_product(x, y, V)
        return total

    def _build_graph(self) -> None:
        """Keep the full-data gradient with its graph: each later product is one backward pass."""
        leaf = self._w0.clone().requires_grad_(True)
        total = None
        for x, y in self._iter_chunks():
            grad = self._grad_with_graph(x, y, leaf)
            total = grad if total is None else total + grad
        self._graph, self._leaf = total, leaf

    def _linearize(self, x: Tensor, y: Tensor, probe: bool = False) -> fx.GraphModule:
        """``v ↦ H_chunk·v`` at ``w0`` as a traced graph whose tangent-free part is folded into constants.

        This is ``torch.func.linearize`` of the chunk's gradient, with additions of zeros removed
        before folding (:func:`pruning_limits._fx_passes.drop_zero_additions`).

        Args:
            x, y: the chunk.
            probe: first run the jvp eagerly, which raises for an op without a forward-mode
                derivative (tracing such an op can crash the interpreter in torch 2.13).

        Raises:
            RuntimeError: from the probe; other errors from ``make_fx`` for untraceable models.
        """
        if probe:
            self._forward_over_reverse_chunk(x, y, torch.zeros(self.dim, 1, dtype=self.dtype, device=self.device))
        scale = len(x) / self.num_samples
        w0 = self._w0
        grad_fn = torch.func.grad(lambda w: self._loss(w, x, y) * scale)

        def tangent_of_gradient(v: Tensor) -> Tensor:
            with forward_ad.dual_level():
                tangent = forward_ad.unpack_dual(grad_fn(forward_ad.make_dual(w0, v))).tangent
            return torch.zeros_like(w0) if tangent is None else tangent  # None: H = 0

        with eval_mode(self._model):
            graph = make_fx(tangent_of_gradient)(w0.new_empty(()).expand_as(w0))
        drop_zero_additions(graph)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # const_fold's notice on its own get_attr nodes
            folded = const_fold.split_const_subgraphs(graph)
            folded.run_folding()
        if _shared_storages(folded):  # copy_written_constants takes each constant as memory of its own
            raise RuntimeError("the folded constants share memory")
        copy_written_constants(folded)  # in-place ops in the derivative would change the next call's constants
        return folded

    def _build_linearized(self, budget: int) -> None:
        """Linearize every cached chunk, unless tracing or a graph's first run fails or constants exceed ``budget`` bytes.

        When no product uses the double-backward graph, the chunks are first regrouped to fill
        ``budget`` (estimated from the gradient graph's bytes per sample): products loop over
        vectors, and fewer, larger chunks mean fewer, larger operations.
        """
        if self._chunks is None or budget <= 0:
            return
        chunks = self._chunks
        if all(m == "forward-over-reverse" for m in self.methods.values()):
            chunks = _regroup(chunks, max(1, int(budget // self._per_sample)))
        linearized: list[fx.GraphModule] = []
        used, seen = 0, 0
        for x, y in chunks:
            try:
                graph = self._linearize(x, y, probe=not linearized)
                graph(torch.zeros_like(self._w0))  # a folded graph that fails when run falls back too
            except Exception as exc:  # noqa: BLE001 - make_fx cannot trace this model: recompute the jvp instead
                reraise_interrupt(exc)  # unless a Ctrl-C or SIGTERM came back from inside its TorchScript part
                return
            used, seen = used + _constant_bytes(graph), seen + len(x)
            if used * self.num_samples > budget * seen:  # the projected total does not fit
                return
            linearized.append(graph)
        self._linearized, self._chunks = linearized, chunks

    # ------------------------------------------------------------------ construction checks

    def _check_and_measure(self, chunk: tuple[Tensor, Tensor], check: bool) -> float:
        """Refuse a random model; return the bytes per sample of a gradient graph on ``chunk``."""
        x, y = chunk
        saved = [0]

        def pack(t: Tensor) -> Tensor:
            saved[0] += t.element_size() * t.numel()
            return t

        generator = torch.Generator(device="cpu").manual_seed(0)
        v = torch.randn(self.dim, 1, generator=generator, dtype=torch.float64).to(self.device, self.dtype)
        leaf = self._w0.clone().requires_grad_(True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            grad = self._grad_with_graph(x, y, leaf, check=True)
        first = self._backward(grad, leaf, v, retain=False)
        if check and not bool(torch.isfinite(first).all()):
            raise PruningLimitsError(
                "the Hessian-vector product is NaN or infinite at these weights: check the model's weights, its "
                "outputs and the loss on the data for NaN or infinite values"
            )
        if check:
            second = self._double_backward_chunk(x, y, v)
            scale = float(first.norm())
            tol = math.sqrt(torch.finfo(self.dtype).eps) * scale + torch.finfo(self.dtype).tiny
            if not (torch.isfinite(first).all() and float((first - second).norm()) <= tol):
                raise PruningLimitsError(
                    "the model is not deterministic in eval mode (two evaluations of the same Hessian-vector "
                    "product differ): remove always-on dropout or other randomness from forward()"
                )
        return max(saved[0], 1) / len(x)

    def _choose_methods(self, method: str) -> dict[str, str]:
        self._auto_linearized = False
        if method == "forward-over-reverse":  # an op without a forward-mode derivative would fail in the first product
            x, y = next(self._iter_chunks())
            try:
                self._forward_over_reverse_chunk(x[:2], y[:2], self._w0.new_zeros(self.dim, 1))
            except (RuntimeError, NotImplementedError) as err:
                reraise_interrupt(err)
                raise PruningLimitsError(
                    f"method='forward-over-reverse' does not run on this model and loss ({error_line(err)[:200]}): "
                    "use 'double-backward' or 'auto'"
                ) from None
        if method != "auto":
            return {"matvec": method, "matmat": method}
        # a rule, not a timing: the two methods' products differ in rounding (3e-17), which SLQ
        # without re-orthogonalisation amplified to 0.34 points of s* between builds that timing
        # noise sent to different methods (docs/theory.md, "Product method")
        self._auto_linearized = (
            self._cache_ok
            and self.dim <= AUTO_TIMING_MAX_DIM
            and any(isinstance(module, AUTO_LINEARIZED_LAYERS) for module in self._model.modules())
        )
        pick = "forward-over-reverse" if self._auto_linearized else "double-backward"
        return {"matvec": pick, "matmat": pick}

    # ------------------------------------------------------------------ conversions

    def _to_internal(self, value: Any, ndim: int) -> tuple[Tensor, Any]:
        if isinstance(value, Tensor):
            tensor = value
            device, dtype = value.device, value.dtype if value.is_floating_point() else self.dtype

            def restore(out: Tensor) -> Tensor:
                return out.to(device, dtype)

        elif isinstance(value, np.ndarray):
            tensor = torch.from_numpy(np.ascontiguousarray(value))
            dtype_np = value.dtype if np.issubdtype(value.dtype, np.floating) else np.float64

            def restore(out: Tensor) -> np.ndarray:
                return out.detach().to("cpu", torch.float64).numpy().astype(dtype_np, copy=False)

        else:
            raise PruningLimitsError(f"expected a torch.Tensor or numpy array, got {describe(value)}")
        if tensor.is_complex():  # .to(float) kept the real part with a warning only
            raise PruningLimitsError(f"expected real vectors, got {tensor.dtype}")
        expected = "(dim,)" if ndim == 1 else "(dim, k)"
        if tensor.ndim != ndim or tensor.shape[0] != self.dim:
            raise PruningLimitsError(
                f"expected an array of shape {expected} with dim={self.dim}, got shape {tuple(tensor.shape)}"
            )
        tensor = tensor.detach().to(self.device, self.dtype)
        if not torch.isfinite(tensor).all():
            raise PruningLimitsError("the vector contains NaN or infinite values")
        return tensor, restore


@functools.cache
def _linear_operator_type() -> type:
    """The ``scipy.sparse.linalg.LinearOperator`` subclass of :meth:`HessianOperator.to_linear_operator`
    (scipy imported on first use, not with the module)."""
    from scipy.sparse.linalg import LinearOperator

    class HessianLinearOperator(LinearOperator):
        """A :class:`HessianOperator` for scipy: float64 ``dtype``, the products' precision in
        ``product_dtype``, and itself as its adjoint (the Hessian is symmetric)."""

        def __init__(self, operator: HessianOperator) -> None:
            super().__init__(dtype=np.float64, shape=operator.shape)
            self.operator = operator
            self.product_dtype = operator.dtype

        def _matvec(self, v: Any) -> Any:  # scipy passes (D,) or (D, 1) and reshapes what comes back
            return self.operator.matvec(v.reshape(-1))

        def _matmat(self, V: Any) -> Any:
            return self.operator.matmat(V)

        def _rmatvec(self, v: Any) -> Any:
            return self.operator.matvec(v.reshape(-1))

        def _rmatmat(self, V: Any) -> Any:
            return self.operator.matmat(V)

        def _adjoint(self) -> Any:
            return self

    return HessianLinearOperator


def _check_budget(value: Any) -> int:
    """``memory_budget`` of :class:`HessianOperator` as an int: a finite number ``>= 1`` (``0.5`` was
    truncated to a budget of 0 bytes), rounded down to whole bytes as
    :func:`~pruning_limits.spectrum.slq`'s comparisons of whole byte counts with it do (``1e9``,
    or ``2**20 + 0.5``, which :func:`~pruning_limits.pipeline.predict_limit` passes to both and
    this refused until 2026-12-06)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 1:
        raise PruningLimitsError(f"memory_budget must be a number of bytes >= 1, got {describe(value)}")
    return math.floor(value)


def _check_same_reads(first: tuple[Tensor, Tensor], second: tuple[Tensor, Tensor]) -> None:
    """Refuse streamed data whose first batch differs between two reads (bitwise).

    Streamed data are read again for every product, so a random transform (augmentation) or a
    shuffling without a fixed seed gives each product another Hessian: on a 400-sample Dataset
    with a random sign flip two products with the same vector differed by 44 % and the
    column-built matrix was far from symmetric (before 2026-12-05). The construction reads the
    first batch twice anyway (counting the data, then measuring the gradient graph), so the
    check costs no extra read.
    """
    (x1, y1), (x2, y2) = first, second
    same_x = x1.shape == x2.shape and torch.equal(x1, x2)
    same_y = y1.shape == y2.shape and torch.equal(y1, y2)
    if same_x and same_y:
        return
    if x1.shape != x2.shape or y1.shape != y2.shape:
        came = f"batches of shapes {tuple(x1.shape)} and {tuple(x2.shape)}"
    else:
        rows = (x1 != x2).reshape(len(x1), -1).any(1) | (y1 != y2).reshape(len(y1), -1).any(1)
        came = f"{int(rows.sum())} of its {len(x1)} samples changed"
    raise PruningLimitsError(
        "expected the same data on every read (too large to cache under memory_budget, they are read again for "
        f"every product), got a first batch that differs between two reads ({came}): remove random transforms "
        "(augmentation) and unseeded shuffling from the analysis data"
    )


def _regroup(batches: list[tuple[Tensor, Tensor]], samples: int) -> list[tuple[Tensor, Tensor]]:
    """Chunks of at most ``samples`` samples: larger batches split, consecutive ones of equal trailing shapes concatenated."""
    chunks: list[tuple[Tensor, Tensor]] = []
    pending: list[tuple[Tensor, Tensor]] = []
    count = 0
    pieces = (
        (x[start : start + samples], y[start : start + samples])
        for x, y in batches
        for start in range(0, len(x), samples)
    )
    for x, y in pieces:
        if pending and (count + len(x) > samples or x.shape[1:] != pending[0][0].shape[1:]
                        or y.shape[1:] != pending[0][1].shape[1:]):
            chunks.append(_concat(pending))
            pending, count = [], 0
        pending.append((x, y))
        count += len(x)
    if pending:
        chunks.append(_concat(pending))
    return chunks


def _concat(batches: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    if len(batches) == 1:
        return batches[0]
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def _linearized_product(linearized: list[fx.GraphModule], V: Tensor) -> Tensor:
    """``H·V``: each column through each chunk's linearized graph (chunk outer: its constants stay warm)."""
    columns = V.T.contiguous()
    total = torch.zeros_like(columns)
    for graph in linearized:
        for j in range(columns.shape[0]):
            total[j] += graph(columns[j])
    return total.T


def _shared_storages(module: fx.GraphModule) -> bool:
    """Whether two tensors a (folded) graph module keeps share a storage."""
    pointers = [t.untyped_storage().data_ptr() for t in _kept_tensors(module)]
    return len(set(pointers)) < len(pointers)


def _kept_tensors(module: fx.GraphModule) -> list[Tensor]:
    """The distinct tensor objects a (folded) graph module keeps: parameters, buffers, attributes."""
    tensors = [*module.parameters(), *module.buffers()]
    for node in module.graph.nodes:
        if node.op == "get_attr":
            value: Any = module
            for part in node.target.split("."):
                value = getattr(value, part)
            tensors.extend(value if isinstance(value, (list, tuple, nn.ParameterList)) else [value])
    distinct = {id(t): t for t in tensors if isinstance(t, Tensor)}
    return list(distinct.values())


def _constant_bytes(module: fx.GraphModule) -> int:
    """Bytes of the distinct tensor storages a (folded) graph module keeps."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in _kept_tensors(module)}
    return sum(storages.values())
