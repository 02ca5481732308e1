"""Real architectures: attention, BatchNorm ResNets, outputs that are not tensors, token inputs, --params.

Oracles: dense float64 Hessians built with ``torch.func`` (reverse-over-reverse ``jacrev`` of
``grad``) on the math attention backend, independent of :class:`HessianOperator`'s code.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from pruning_limits._checks import PruningLimitsError
from pruning_limits.checkpoint import build_from_checkpoint, read_checkpoint, save_bundle
from pruning_limits.data import check_data_fits_model, load_data, make_bundle
from pruning_limits.hessian import HessianOperator
from pruning_limits.masks import prune_model, prunable_weights
from pruning_limits.models import build_model, resnet18, resnet20
from pruning_limits.objective import (
    evaluate_loss,
    flat_weights,
    loss_gradient,
    prunable_parameters,
    select_parameters,
    selection_summary,
)

from conftest import one_line

torch.set_default_dtype(torch.float32)


def dense_hessian(model: nn.Module, names: list[str], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Dense Hessian of the mean cross-entropy over the named parameters (math attention backend)."""
    params = dict(model.named_parameters())
    fixed = {k: v.detach() for k, v in params.items() if k not in names}
    fixed.update({k: v.detach() for k, v in model.named_buffers()})
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]
    w0 = torch.cat([params[n].detach().reshape(-1) for n in names])

    def loss(w: torch.Tensor) -> torch.Tensor:
        pieces = {n: p.view(s) for n, p, s in zip(names, torch.split(w, sizes), shapes)}
        with sdpa_kernel(SDPBackend.MATH):
            out = functional_call(model, {**fixed, **pieces}, (x,))
        return nn.functional.cross_entropy(out, y)

    model.eval()
    return torch.func.jacrev(torch.func.grad(loss), chunk_size=128)(w0)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


class EncoderClassifier(nn.Module):
    """A stock two-layer ``nn.TransformerEncoder`` (default SDPA attention) with a linear head."""

    def __init__(self, d_model: int = 8, heads: int = 2, classes: int = 3) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=16, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x).mean(dim=1))


def encoder_problem(seed: int = 0):
    torch.manual_seed(seed)
    model = EncoderClassifier().double().eval()
    x = torch.randn(10, 5, 8, dtype=torch.float64)
    y = torch.randint(0, 3, (10,))
    return model, x, y


def test_auto_takes_double_backward_for_the_transformer_encoder():
    """No convolution: auto's rule takes double-backward for both products, the path the
    double-backward case below checks against the dense Hessian."""
    model, x, y = encoder_problem()
    methods = HessianOperator(model, (x, y)).methods
    assert methods == {"matvec": "double-backward", "matmat": "double-backward"}


@pytest.mark.parametrize("method", ["double-backward", "forward-over-reverse"])  # 4 to 11 s on one core: not slow
def test_transformer_encoder_products_equal_dense_math_backend_hessian(method):
    model, x, y = encoder_problem()
    operator = HessianOperator(model, (x, y), method=method)  # default SDPA: no context from the caller
    assert "encoder.layers.0.self_attn.in_proj_weight" in operator.names
    assert "encoder.layers.1.self_attn.in_proj_weight" in operator.names
    # in_proj (3·8·8) + out_proj (8·8) + linear1 (16·8) + linear2 (8·16) per layer, head 3·8
    assert operator.dim == 2 * (192 + 64 + 128 + 128) + 24
    dense = dense_hessian(model, operator.names, x, y)
    V = torch.randn(operator.dim, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert relative_error(operator.matmat(V), dense @ V) <= 1e-10
    assert relative_error(operator.matvec(V[:, 0]), dense @ V[:, 0]) <= 1e-10


def test_resnet20_with_batchnorm_in_eval_mode_equals_dense_hessian():
    torch.manual_seed(0)
    model = resnet20(num_classes=4, in_channels=3, width=1).double()
    for module in model.modules():  # non-trivial running statistics and affine parameters
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.2, 0.2)
    x = torch.randn(12, 3, 8, 8, dtype=torch.float64)
    y = torch.randint(0, 4, (12,))
    model.train()  # the operator evaluates in eval mode and restores the mode
    # double-backward: auto would also trace the ResNet for the forward-over-reverse product, which
    # the transformer test above checks against its oracle
    operator = HessianOperator(model, (x, y), method="double-backward")
    assert model.training
    assert all("bn" not in name for name in operator.names)  # BatchNorm parameters are not prunable
    assert operator.dim == sum(p.numel() for n, p in model.named_parameters() if p.ndim >= 2)
    assert operator.dim <= 3000
    dense = dense_hessian(model, operator.names, x, y)
    V = torch.randn(operator.dim, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert relative_error(operator.matmat(V), dense @ V) <= 1e-10


class _ForcedFlashAttention(nn.Module):
    """Attention whose forward insists on the fused flash kernel, which has no second derivative."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(4, 12)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        q, k, v = self.qkv(x).unsqueeze(1).chunk(3, dim=-1)  # (N, 1 head, T, 4)
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            out = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.head(out.squeeze(1).mean(dim=1))


def test_an_operation_without_second_derivative_is_one_line_naming_it():
    torch.manual_seed(0)  # the inputs and the layers' initialisation
    x, y = torch.randn(8, 5, 4), torch.randint(0, 3, (8,))
    with pytest.raises(PruningLimitsError) as info:
        HessianOperator(_ForcedFlashAttention(), (x, y), method="double-backward")
    message = str(info.value)
    assert "\n" not in message and "aten::_scaled_dot_product_flash_attention" in message
    assert "cannot differentiate twice" in message and "--params" in message


def test_what_is_prunable_attention_embeddings_norms():
    model = nn.ModuleDict(
        {
            "embed": nn.Embedding(10, 8),
            "attn": nn.MultiheadAttention(8, 2, batch_first=True),
            "cross": nn.MultiheadAttention(8, 2, kdim=4, vdim=6, batch_first=True),
            "norm": nn.LayerNorm(8),
            "bn": nn.BatchNorm1d(8),
            "fc": nn.Linear(8, 3),
        }
    )
    names = [n for n, _ in prunable_parameters(model)]
    assert names == [
        "attn.in_proj_weight",
        "attn.out_proj.weight",
        "cross.q_proj_weight",
        "cross.k_proj_weight",
        "cross.v_proj_weight",
        "cross.out_proj.weight",
        "fc.weight",
    ]
    # patterns pick parameters with >= 2 dims (embeddings included, norms and biases not); names pick anything
    assert [n for n, _ in prunable_parameters(model, "embed.*,*proj_weight")] == [
        "embed.weight", "attn.in_proj_weight", "cross.q_proj_weight", "cross.k_proj_weight", "cross.v_proj_weight",
    ]
    assert [n for n, _ in prunable_parameters(model, ["*.weight"])] == [
        "embed.weight", "attn.out_proj.weight", "cross.out_proj.weight", "fc.weight",
    ]
    assert [n for n, _ in prunable_parameters(model, "norm.weight")] == ["norm.weight"]
    with pytest.raises(PruningLimitsError, match="matches no parameter"):
        prunable_parameters(model, "decoder.*")
    with pytest.raises(PruningLimitsError, match="selects nothing"):
        select_parameters(model, " , ")


def test_params_selection_flows_through_hessian_weights_masks_prune_and_bundles(tmp_path):
    data = load_data("tokens:n=40,test=8,vocab=12,length=6")
    model = build_model("transformer:8,1,2", data)
    default = selection_summary(model)
    assert "encoder.layers.0.self_attn.in_proj_weight" in default["tensors"]
    select_parameters(model, "encoder.*weight")
    chosen = [n for n, _ in prunable_parameters(model)]
    assert chosen == [
        "encoder.layers.0.self_attn.in_proj_weight",
        "encoder.layers.0.self_attn.out_proj.weight",
        "encoder.layers.0.linear1.weight",
        "encoder.layers.0.linear2.weight",
    ]  # the LayerNorm scales (1-D) are not matched by a pattern; head.weight is outside encoder.
    dim = 3 * 64 + 64 + 128 + 128
    summary = selection_summary(model)
    assert summary["weights"] == dim and summary["selection"] == "encoder.*weight"
    analysed = copy.deepcopy(model).double()  # the pipeline's float64 copy keeps the selection
    assert flat_weights(analysed).size == dim
    assert HessianOperator(analysed, (data.x_train.clone(), data.y_train)).dim == dim
    assert loss_gradient(analysed, data.train).size == dim
    head = model.head.weight.detach().clone()
    masks = prune_model(model, 0.5)
    assert sorted(masks) == sorted(n for n in chosen)
    attention = model.encoder.layers[0].self_attn
    assert hasattr(attention, "in_proj_weight_mask")  # torch.nn.utils.prune on in_proj_weight
    assert int((attention.in_proj_weight == 0).sum()) > 0
    assert torch.equal(model.head.weight, head) and not hasattr(model.head, "weight_mask")  # not selected
    assert [n for n, _, _ in prunable_weights(model)][0] == "encoder.layers.0.self_attn.in_proj_weight"
    evaluate_loss(model, data.train)  # the forward pass uses the masked projection
    path = tmp_path / "bundle.pt"
    save_bundle(path, build_model("transformer:8,1,2", data), model_spec="transformer:8,1,2", data_spec=data.spec)
    assert read_checkpoint(path).params is None
    selected = select_parameters(build_model("transformer:8,1,2", data), "encoder.*weight")
    save_bundle(path, selected, model_spec="transformer:8,1,2", data_spec=data.spec)
    loaded = build_from_checkpoint(read_checkpoint(path), data=data)
    assert [n for n, _ in prunable_parameters(loaded)] == chosen


class _TupleNet(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.kind = kind

    def forward(self, x):
        out = self.fc(x)
        if self.kind == "tuple":
            return out, x.sum()
        if self.kind == "dict":
            return {"logits": out, "hidden": x}
        if self.kind == "object":
            return type("Output", (), {"logits": out})()
        return {"scores": out}


@pytest.mark.parametrize("kind", ["tuple", "dict", "object"])
def test_outputs_that_are_not_tensors_follow_the_logits_rule(kind):
    torch.manual_seed(0)
    net = _TupleNet(kind).double()
    plain = nn.Sequential(net.fc)
    x, y = torch.randn(20, 4, dtype=torch.float64), torch.randint(0, 3, (20,))
    assert evaluate_loss(net, (x, y)) == pytest.approx(evaluate_loss(plain, (x, y)), rel=1e-12)
    V = torch.randn(12, 2, dtype=torch.float64)
    expected = HessianOperator(plain, (x, y)).matmat(V)
    assert torch.allclose(HessianOperator(net, (x, y)).matmat(V), expected, rtol=1e-12, atol=1e-14)
    check_data_fits_model(net, make_bundle((x.float(), y)))


def test_an_output_without_logits_is_one_line():
    torch.manual_seed(0)  # the inputs and the layers' initialisation
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    with pytest.raises(PruningLimitsError, match="without a 'logits' tensor") as info:
        evaluate_loss(_TupleNet("scores"), (x, y))
    assert "\n" not in str(info.value)


def test_token_inputs_stay_int64_and_the_transformer_trains_and_is_analysed():
    from pruning_limits.lomp import train

    data = load_data("tokens:n=64,test=16,vocab=10,length=6")
    assert data.x_train.dtype == torch.int64 and data.vocab_size <= 10
    model = build_model("transformer:8,1,2", data)
    assert isinstance(model.tokens, nn.Embedding)
    assert "tokens.weight" not in dict(prunable_parameters(model))  # embeddings are not prunable by default
    history = train(model, data, epochs=1, seed=0)
    assert history.to_dict()["test_accuracy"][-1] is not None
    operator = HessianOperator(copy.deepcopy(model).double(), data.train)
    assert operator.dim == prunable_parameters(model)[0][1].numel() + 64 + 128 + 128 + 8 * data.num_outputs
    # an npz-like pair of int64 inputs keeps its dtype; other integer inputs become float32
    assert make_bundle((data.x_train, data.y_train)).x_train.dtype == torch.int64
    with pytest.warns(RuntimeWarning, match=r"int32 values .* token indices\? store them as int64"):  # and are told so
        assert make_bundle((data.x_train.to(torch.int32), data.y_train)).x_train.dtype == torch.float32


def test_int64_inputs_to_a_model_without_embedding_say_why():
    g = torch.Generator().manual_seed(0)
    data = make_bundle((torch.randint(0, 5, (10, 4), generator=g), torch.randint(0, 2, (10,), generator=g)))
    with pytest.raises(PruningLimitsError, match=(  # torch's own words in the middle
        r"^model Sequential does not accept inputs of shape \(1, 4\) \(one sample of .*\): .*; "
        r"int64 inputs are kept as token indices \(store floats for a model without an embedding\)$"
    )) as info:
        check_data_fits_model(nn.Sequential(nn.Linear(4, 2)), data)
    one_line(info)


def test_zoo_resnets_have_the_published_shapes():
    torch.manual_seed(0)  # resnet20() and resnet18() initialise from the global generator; the inputs
    # He et al. (2016), Table 6: ResNet-20 has 0.27M parameters
    assert round(sum(p.numel() for p in resnet20().parameters()) / 1e6, 2) == 0.27
    # torchvision's resnet18 (11 689 512 parameters for 1000 classes) with a 3×3 instead of a 7×7 stem
    net = resnet18(num_classes=1000)
    assert sum(p.numel() for p in net.parameters()) == 11_689_512 - 3 * 64 * 49 + 3 * 64 * 9
    keys = set(net.state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer2.0.downsample.0.weight", "layer4.1.bn2.weight", "fc.bias"} <= keys
    assert build_model("resnet20", {"input_shape": [3, 32, 32], "num_outputs": 10})(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert build_model("resnet18:8", {"input_shape": [64], "num_outputs": 5})(torch.randn(2, 64)).shape == (2, 5)


@pytest.mark.parametrize(
    ("shape", "spec"),
    [((40,), "transformer"), ((6, 5), "transformer:8,1,2"), ((3, 8, 8), "transformer:8,1,2,4")],
)
def test_zoo_transformer_takes_sequences_features_and_images(shape, spec):
    model = build_model(spec, {"input_shape": list(shape), "num_outputs": 3})
    assert model(torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))).shape == (2, 3)


def test_zoo_transformer_refuses_bad_sizes_in_one_line():
    with pytest.raises(PruningLimitsError, match="multiple of the heads"):
        build_model("transformer:10,1,3", {"input_shape": [8], "num_outputs": 2})
    with pytest.raises(PruningLimitsError, match="not a multiple of the patch"):
        build_model("transformer:8,1,2,3", {"input_shape": [40], "num_outputs": 2})


def test_a_spec_with_arguments_builds_trains_one_epoch_and_predicts():
    from pruning_limits.pipeline import predict_limit
    from pruning_limits.lomp import train
    from pruning_limits.spectrum import estimate_spectrum

    data = load_data("patterns:n=24,test=8,size=32")
    assert data.input_shape == (3, 32, 32)
    model = build_model("pruning_limits.models:resnet18(num_classes=10, width=2)", data)
    check_data_fits_model(model, data)
    train(model, data, epochs=1, seed=0)
    # the spectrum of the float64 copy predict_limit analyses, with double-backward products: auto
    # would spend most of this test tracing the ResNet for products it times once
    spectrum = estimate_spectrum(copy.deepcopy(model).double(), data.train, iterations=6, probes=1, method="double-backward")
    prediction = predict_limit(model, data.train, epsilon=0.05, spectrum=spectrum, seed=0)
    assert prediction.dim == sum(p.numel() for _, p in prunable_parameters(model))
    assert 0.0 <= prediction.sparsity <= 1.0


def test_torchvision_spec_with_arguments():
    """README's ``--model 'torchvision.models:resnet18(…)'`` route. Skipped only where torchvision
    cannot be imported: not installed, or a CUDA build against a CPU torch (its C++ operators are
    missing); any other failure of the import fails the test."""
    try:
        import torchvision  # noqa: F401
    except ImportError as err:
        pytest.skip(f"torchvision is not installed ({err})")
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
        pytest.skip(f"torchvision does not import: its operators are missing, a build for another torch ({err})")
    from pruning_limits.pipeline import predict_limit

    data = load_data("patterns:n=8,test=4,size=32")
    model = build_model("torchvision.models:resnet18(num_classes=10)", data)
    check_data_fits_model(model, data)
    assert type(model).__module__.startswith("torchvision.models") and model.fc.out_features == 10
    model.eval()
    with torch.no_grad():
        logits = model(data.x_train[:4])
    assert logits.shape == (4, 10) and torch.isfinite(logits).all()
    prediction = predict_limit(model, data.train, epsilon=0.05, iterations=3, probes=1, seed=0)
    # the weights of every Conv2d and Linear, no bias or BatchNorm: ResNet-18's 11 166 912 kernel
    # weights (its 11 689 512 parameters less the 513 000 of the 1000-class head and 9 600 of
    # BatchNorm) plus the 512 × 10 head
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert prediction.dim == weights == 11_166_912 + 512 * 10
    assert 0.0 <= prediction.sparsity <= 1.0
