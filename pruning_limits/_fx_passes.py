"""Removal of additions of zeros from a traced Hessian-vector product graph, before folding.

:class:`pruning_limits.hessian.HessianOperator` traces ``v ↦ H·v`` with ``make_fx`` (as
``torch.func.linearize`` does), folds everything that does not depend on ``v`` into constants,
and then runs only the rest. The derivative formulas leave sums with zeros in that rest: the
tangent of a ReLU's backward adds a ``zeros_like``, and the tangent of a first layer adds the
convolution (or matrix product) of the input's tangent, which is zero. Folded, each such zero
becomes an activation-sized constant, read and added once per product. :func:`drop_zero_additions`
removes them where the kept operand has the sum's shape, dtype and strides, so that every later
op, a ``view`` or an ``as_strided`` included, reads the same elements: the result is exact.

A sum is kept when any tensor involved may share memory with a tensor that an in-place op of
the graph writes to (:func:`alias_classes`).

:func:`copy_written_constants` makes a folded graph a function of its input: the derivative of
``binary_cross_entropy_with_logits`` writes in place to folded values in torch 2.13 (``exp_``,
``sub_``), an in-place ReLU to its folded pre-activation, and without a copy each call would
start from the constants the last call left.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import torch
from torch import fx

aten = torch.ops.aten

#: Ops that create zeros whatever their inputs.
_ZERO_FACTORIES = (aten.zeros_like.default, aten.zeros.default, aten.new_zeros.default)

#: Ops whose output is zero when their first argument is.
_ZERO_PRESERVING = (
    aten.expand.default,
    aten.view.default,
    aten.reshape.default,
    aten._unsafe_view.default,
    aten.t.default,
    aten.transpose.int,
    aten.permute.default,
    aten.unsqueeze.default,
    aten.squeeze.dim,
    aten.clone.default,
    aten._to_copy.default,
    aten.alias.default,
)


def drop_zero_additions(graph: fx.GraphModule) -> None:
    """Replace ``z + t`` and ``t + z`` by ``t`` where ``z`` is zero and ``t`` has the sum's shape, dtype and strides.

    The strides matter: the sum is laid out as its operands' layout dictates, and a later
    ``view`` of a transposed ``t`` in its place would fail, an ``as_strided`` read other elements.

    ``z`` is zero when it comes from a zeros factory, from a view or copy of zeros, or from a
    convolution or matrix product with a zero operand (and no non-zero bias); this assumes the
    other operand is finite, as the weights and activations of a network with a finite loss
    are. A sum is kept if ``z``, ``t`` or the sum may alias a tensor that some in-place op of
    the graph writes to.
    """
    root, written = alias_classes(graph.graph)
    zeros = _zero_nodes(graph.graph, lambda node: root(node) in written)
    for node in list(graph.graph.nodes):
        if not _is_plain_add(node):
            continue
        for zero, other in (node.args, node.args[::-1]):
            if (
                zero in zeros
                and isinstance(other, fx.Node)
                and same_layout(other, node)
                and not {root(zero), root(other), root(node)} & written
            ):
                node.replace_all_uses_with(other)
                graph.graph.erase_node(node)
                break
    graph.graph.eliminate_dead_code()
    graph.recompile()


def copy_written_constants(graph: fx.GraphModule) -> int:
    """Let every call write to its own copy of the constants and inputs that in-place ops write to.

    The constants are the graph's attributes and the items of an attribute that holds several
    (``const_fold``'s ``_FX_CONST_FOLDED_ATTRS``); the items are taken not to share memory with
    each other, which the caller checks. Each written one is cloned where it enters the graph
    and all its uses read the clone, so every call computes what the first one did.

    Returns:
        How many were copied.

    Raises:
        RuntimeError: an in-place op still writes to memory outliving a call.
    """
    written = _written_persistent(graph.graph)  # one alias analysis: it is linear in the graph
    for node in written:
        with graph.graph.inserting_after(node):
            clone = graph.graph.call_function(aten.clone.default, (node,))
        node.replace_all_uses_with(clone, delete_user_cb=lambda user, clone=clone: user is not clone)
    if _written_persistent(graph.graph):
        raise RuntimeError("an in-place op of the traced graph writes to its constants")
    graph.recompile()
    return len(written)


def _written_persistent(graph: fx.Graph) -> list[fx.Node]:
    """The persistent nodes (:func:`_is_persistent`) that some in-place op may write to."""
    root, written = alias_classes(graph, separate=_is_constant_item)
    return [node for node in graph.nodes if _is_persistent(node) and root(node) in written]


def _is_persistent(node: fx.Node) -> bool:
    """An attribute, an input, or an item of an attribute: memory that outlives a call."""
    return node.op in ("get_attr", "placeholder") or _is_constant_item(node)


def _is_constant_item(node: fx.Node) -> bool:
    return (
        node.op == "call_function"
        and node.target is operator.getitem
        and isinstance(node.args[0], fx.Node)
        and node.args[0].op == "get_attr"
    )


def same_layout(a: fx.Node, b: fx.Node) -> bool:
    """Whether the traced values of two nodes are tensors of the same shape, dtype and strides."""
    va, vb = a.meta.get("val"), b.meta.get("val")
    return (
        isinstance(va, torch.Tensor)
        and isinstance(vb, torch.Tensor)
        and va.shape == vb.shape
        and va.dtype == vb.dtype
        and va.stride() == vb.stride()
    )


def alias_classes(
    graph: fx.Graph, separate: Callable[[fx.Node], bool] = lambda node: False
) -> tuple[Callable[[fx.Node], fx.Node], set[fx.Node]]:
    """Classes of nodes whose values may share memory, and the classes some in-place op writes to.

    Conservative: an aten op joins its output to every argument its schema marks as aliased;
    any other function (e.g. ``operator.getitem`` of a split) joins its output to all its inputs,
    unless ``separate`` says the node holds memory of its own.
    """
    parent: dict[fx.Node, fx.Node] = {}

    def root(node: fx.Node) -> fx.Node:
        while parent.get(node, node) is not node:
            node = parent[node]
        return node

    def join(a: fx.Node, b: fx.Node) -> None:
        ra, rb = root(a), root(b)
        if ra is not rb:
            parent[ra] = rb

    written: list[fx.Node] = []
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        if not isinstance(node.target, torch._ops.OpOverload):
            if separate(node):
                continue
            for value in node.all_input_nodes:
                join(node, value)
            continue
        aliased_output = any(r.alias_info is not None for r in node.target._schema.returns)
        for argument, value in _schema_values(node):
            if argument.alias_info is None:
                continue
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, fx.Node):
                    if aliased_output:
                        join(node, item)
                    if argument.alias_info.is_write:
                        written.append(item)
    return root, {root(node) for node in written}


# ---------------------------------------------------------------------------- helpers


def _schema_values(node: fx.Node) -> list[tuple[object, object]]:
    """``(schema argument, value)`` of an aten op's node, keyword arguments included."""
    schema = node.target._schema
    values = list(node.args) + [node.kwargs.get(a.name) for a in schema.arguments[len(node.args) :]]
    return list(zip(schema.arguments, values))


def _is_plain_add(node: fx.Node) -> bool:
    return (
        node.op == "call_function"
        and node.target is aten.add.Tensor
        and not node.kwargs
        and len(node.args) == 2
        and not any(user.op == "output" for user in node.users)
    )


def _zero_nodes(graph: fx.Graph, is_written: Callable[[fx.Node], bool]) -> set[fx.Node]:
    zeros: set[fx.Node] = set()
    for node in graph.nodes:
        if node.op != "call_function" or is_written(node):
            continue
        target, args = node.target, node.args
        if target in _ZERO_FACTORIES:
            zeros.add(node)
        elif target in _ZERO_PRESERVING and args and args[0] in zeros:
            zeros.add(node)
        elif target is aten.convolution.default and (args[0] in zeros or args[1] in zeros):
            if args[2] is None or args[2] in zeros:
                zeros.add(node)
        elif target in (aten.mm.default, aten.bmm.default) and (args[0] in zeros or args[1] in zeros):
            zeros.add(node)
    return zeros
