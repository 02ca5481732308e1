"""The zero-addition pass keeps layouts, and a linearized graph that fails when run falls back."""

from __future__ import annotations

import warnings

import torch
from torch import fx, nn
from torch.fx.experimental.proxy_tensor import make_fx

from pruning_limits import hessian
from pruning_limits._fx_passes import drop_zero_additions
from pruning_limits.hessian import HessianOperator

aten = torch.ops.aten


def _added_to_transposed_then_viewed(a: torch.Tensor) -> torch.Tensor:
    t = a.sin().t()  # (4, 3), strides (1, 4)
    s = torch.zeros(4, 3, dtype=a.dtype) + t  # contiguous sum, strides (3, 1)
    return s.view(12).cos()  # valid on the contiguous sum only


def _added_to_transposed_then_as_strided(a: torch.Tensor) -> torch.Tensor:
    t = a.sin().t()
    s = torch.zeros(4, 3, dtype=a.dtype) + t
    return s.as_strided((3,), (1,)) * 1.0  # the first row of the sum, read by strides


def _added_to_contiguous(a: torch.Tensor) -> torch.Tensor:
    return (torch.zeros(3, 4, dtype=a.dtype) + a.sin()).view(12).cos()


def _targets(graph: fx.GraphModule) -> list[object]:
    return [node.target for node in graph.graph.nodes if node.op == "call_function"]


def test_an_addition_of_zeros_whose_other_operand_has_other_strides_is_kept():
    a = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for f in (_added_to_transposed_then_viewed, _added_to_transposed_then_as_strided):
        graph = make_fx(f)(a)
        drop_zero_additions(graph)
        assert aten.add.Tensor in _targets(graph), f.__name__
        torch.testing.assert_close(graph(a), f(a), rtol=0, atol=0)


def test_an_addition_of_zeros_whose_other_operand_has_the_same_layout_is_removed():
    a = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    graph = make_fx(_added_to_contiguous)(a)
    drop_zero_additions(graph)
    assert aten.add.Tensor not in _targets(graph) and aten.zeros.default not in _targets(graph)
    torch.testing.assert_close(graph(a), _added_to_contiguous(a), rtol=0, atol=0)


def _fail_when_run(value: torch.Tensor) -> torch.Tensor:
    raise RuntimeError("view size is not compatible with input tensor's size and stride")


def test_a_linearized_graph_that_fails_when_first_run_falls_back_to_the_recomputed_jvp(monkeypatch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 3)).double()
    x, y = torch.randn(20, 2, 6, dtype=torch.float64), torch.randint(0, 3, (20,))
    reference = HessianOperator(model, (x, y), method="double-backward")
    v = torch.randn(reference.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected = reference.matvec(v)

    linearize = HessianOperator._linearize

    def linearize_into_a_failing_graph(self, x, y, probe=False):
        graph = linearize(self, x, y, probe)
        placeholder = next(node for node in graph.graph.nodes if node.op == "placeholder")
        with graph.graph.inserting_after(placeholder):
            graph.graph.call_function(_fail_when_run, (placeholder,))
        graph.recompile()
        return graph

    monkeypatch.setattr(HessianOperator, "_linearize", linearize_into_a_failing_graph)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explicit = HessianOperator(model, (x, y), method="forward-over-reverse")
        auto = HessianOperator(model, (x, y), method="auto")
    assert explicit._linearized is None and explicit.methods["matvec"] == "forward-over-reverse"
    torch.testing.assert_close(explicit.matvec(v), expected)
    assert auto._linearized is None and auto.methods == {"matvec": "double-backward", "matmat": "double-backward"}
    torch.testing.assert_close(auto.matvec(v), expected)


def test_the_linearized_graph_of_a_convolutional_model_is_used():
    """The fallback's first run is no reason to give up a graph that runs (the case above is not vacuous)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 3)).double()
    x, y = torch.randn(20, 2, 6, dtype=torch.float64), torch.randint(0, 3, (20,))
    assert hessian.AUTO_TIMING_MAX_DIM >= sum(p.numel() for p in model.parameters())
    op = HessianOperator(model, (x, y), method="auto")
    assert op._linearized is not None and op.methods["matvec"] == "forward-over-reverse"
