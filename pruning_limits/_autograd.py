"""Second derivatives through attention, and a plain error for operations that have none.

PyTorch's fused attention kernels (``F.scaled_dot_product_attention`` with the flash or
memory-efficient backend, used by ``nn.MultiheadAttention`` and ``nn.Transformer*``) implement
only a first derivative: a Hessian-vector product through them fails with ``derivative for
aten::_scaled_dot_product_flash_attention_for_cpu_backward is not implemented``. The math
backend (``torch.nn.attention.sdpa_kernel(SDPBackend.MATH)``, the reference implementation
built from matrix products and a softmax) computes the same function with ordinary
differentiable operations, so every order of derivative exists. :func:`second_order_context`
selects it for the forward passes whose graph is differentiated twice (PyTorch docs,
"torch.nn.attention.sdpa_kernel").

Any other operation without a double backward is reported by
:func:`explain_missing_derivatives` as one line naming the operation and what to do. A custom
``torch.autograd.Function`` whose backward is marked ``@once_differentiable`` raises no error
at all: torch 2.13 hangs its ``DelayedError`` node on detached copies of the backward's
outputs, which ``torch.autograd.grad`` prunes from the second pass, so the Hessian through it
came out silently zero (on a review's 4-6-3 MLP, ``s*`` 0.5952 against the true 0.4286).
:func:`check_twice_differentiable` finds such a Function in the loss's graph instead.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ._checks import PruningLimitsError

F = TypeVar("F", bound=Callable[..., Any])

_MISSING_DERIVATIVE = re.compile(r"derivative for (\S+) is not implemented")
_ONCE_DIFFERENTIABLE = "marked with @once_differentiable"


@contextlib.contextmanager
def second_order_context() -> Iterator[None]:
    """Run the block with the math backend of scaled dot-product attention.

    Forward passes inside the block record attention as differentiable matrix products, so
    Hessian-vector products (reverse-over-reverse and forward-over-reverse) work through
    ``nn.MultiheadAttention``, ``nn.Transformer*`` and ``F.scaled_dot_product_attention``.
    """
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch < 2.3: the older switch of the same backends
        import torch

        with torch.backends.cuda.sdp_kernel(enable_flash=False, enable_math=True, enable_mem_efficient=False):
            yield
        return
    with sdpa_kernel(SDPBackend.MATH):
        yield


def missing_derivative_message(error: BaseException) -> str | None:
    """The one-line explanation for an error raised by a missing second derivative, else ``None``."""
    text = str(error)
    match = _MISSING_DERIVATIVE.search(text)
    if match:
        op = match.group(1)
        return (
            f"the model uses {op}, which PyTorch cannot differentiate twice, so its Hessian cannot be "
            "computed: replace that operation with a twice-differentiable one (e.g. a pure-PyTorch "
            "version), or choose with --params (API: params=) only parameters after it in the network"
        )
    if _ONCE_DIFFERENTIABLE in text:
        return _once_differentiable_message("")
    return None


def _once_differentiable_message(names: str) -> str:
    return (
        f"the model uses a custom autograd.Function{names} marked @once_differentiable, which PyTorch cannot "
        "differentiate twice, so its Hessian cannot be computed: give the Function a differentiable "
        "backward, or choose with --params (API: params=) only parameters after it in the network"
    )


def _is_once_differentiable(function: Any) -> bool:
    """Whether ``function`` (a Function's ``backward`` or ``vjp``) is wrapped by ``@once_differentiable``,
    directly or under other ``functools.wraps`` decorators."""
    from torch.autograd.function import once_differentiable

    wrapper_code = once_differentiable(lambda ctx: None).__code__  # the same code object for every wrapped function
    for _ in range(16):  # a chain of __wrapped__, never a cycle
        if function is None:
            return False
        if getattr(function, "__code__", None) is wrapper_code:
            return True
        function = getattr(function, "__wrapped__", None)
    return False


def check_twice_differentiable(output: Any) -> None:
    """Refuse a graph that runs a custom Function marked ``@once_differentiable``.

    Walks the autograd graph of ``output`` (the loss, before its gradient is taken with
    ``create_graph=True``). A Function appears in it only when one of its inputs depends on the
    weights being differentiated, and then the second derivative through its backward is lost:
    torch 2.13 does not raise (see the module docstring), the Hessian is silently wrong.

    Args:
        output: a tensor (anything else, or a tensor without a graph, passes).

    Raises:
        PruningLimitsError: such a Function is in the graph (one line naming it).
    """
    from torch.autograd.function import BackwardCFunction, Function

    root = getattr(output, "grad_fn", None)
    seen: dict[int, Any] = {}  # the nodes kept alive, so that no id is reused during the walk
    stack, found = [root], []
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen[id(node)] = node
        if isinstance(node, BackwardCFunction):
            cls = node._forward_cls  # type: ignore[attr-defined]
            backward = cls.vjp if getattr(cls, "vjp", Function.vjp) is not Function.vjp else cls.backward
            if _is_once_differentiable(backward) and cls.__name__ not in found:
                found.append(cls.__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    if found:
        raise PruningLimitsError(_once_differentiable_message(f" ({', '.join(found[:3])})"))


@contextlib.contextmanager
def explain_missing_derivatives() -> Iterator[None]:
    """Turn "derivative for X is not implemented" errors of the block into a one-line PruningLimitsError."""
    try:
        yield
    except (RuntimeError, NotImplementedError) as error:
        message = missing_derivative_message(error)
        if message is None:
            raise
        raise PruningLimitsError(message) from error


def with_gradients(func: F) -> F:
    """Run ``func`` with autograd on whatever mode the caller is in (``torch.no_grad()``,
    ``torch.inference_mode()``): its gradients and Hessian products need it, and a caller
    evaluating under ``no_grad`` met ``element 0 of tensors does not require grad``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.inference_mode(False), torch.enable_grad():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
