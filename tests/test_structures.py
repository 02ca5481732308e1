"""Structures (THEORY §8): nearest allowed points against brute force, masks, R(s), the calculator."""

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from pruning_limits import PruningLimitsError
from pruning_limits.geometry import delta_integrand
from pruning_limits.limits import first_order_curve, magnitude_distance_curve
from pruning_limits.masks import compute_masks, prune_model
from pruning_limits.spectrum import Spectrum
from pruning_limits.structures import (
    Layer,
    distance_curve,
    effective_weights,
    layer_layout,
    model_order,
    needed_epsilon,
    parse_structure,
    predict_structured,
    structured_estimator,
    structured_order,
)

ALL = ("unstructured", "layerwise", "neuron", "channel", "2:4", "1:4", "1:2", "3:8")


def tiny(seed=0):
    """Conv (fan-in 2·2 = 4) + Linear (fan-in 3): groups of unequal size, D = 3·4 + 2·3 + 2·2 = 22."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv1d(2, 3, 2), nn.ReLU(), nn.Flatten(), nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))


def net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 4, 2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 3, 8), nn.ReLU(), nn.Linear(8, 3)
    )


def pruned_sq(weights, keep):
    return float(np.sum(np.asarray(weights)[~keep] ** 2))


def keep_of(plan, count):
    keep = np.ones(plan.dim, dtype=bool)
    keep[plan.order[:count]] = False
    return keep


# --- parsing and bad inputs -------------------------------------------------------------------


def test_parse_structure_names_and_patterns():
    assert parse_structure("neuron").name == "neuron"
    assert parse_structure("global").name == "unstructured" and parse_structure("magnitude").kind == "unstructured"
    s = parse_structure(" 2:4 ")
    assert (s.kind, s.n, s.m, s.name, s.is_pattern) == ("n:m", 2, 4, "2:4", True)
    for bad in ("4:4", "5:4", "0:4", "1:1", "0:1"):
        with pytest.raises(PruningLimitsError, match="M >= 2 and 1 <= N < M"):
            parse_structure(bad)
    for bad in ("rows", "2-4", "2:4:8", ""):
        with pytest.raises(PruningLimitsError, match="structure must be unstructured, layerwise, neuron, channel or N:M"):
            parse_structure(bad)
    with pytest.raises(PruningLimitsError, match="structure must be"):
        parse_structure(3)
    assert parse_structure("neuron+outputs") == parse_structure(" Neuron + outputs ")
    assert (parse_structure("channel+outputs").kind, parse_structure("channel+outputs").outputs) == ("channel", True)
    assert parse_structure("neuron").outputs is False
    cl = parse_structure("2:4+cl")
    assert (cl.kind, cl.n, cl.m, cl.channels_last, cl.name) == ("n:m", 2, 4, True, "2:4+cl")
    for bad in ("layerwise+outputs", "2:4+outputs", "neuron+cl", "neuron+"):
        with pytest.raises(PruningLimitsError, match="structure must be"):
            parse_structure(bad)
    for bad in ("\uff12:\uff14", "\u0662:\u0664"):  # full-width and Arabic-Indic digits were read as 2:4
        with pytest.raises(PruningLimitsError, match="structure must be"):
            parse_structure(bad)


def test_model_without_a_layer_the_structure_applies_to_is_refused():
    convs = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Conv1d(2, 2, 3))  # fan-in 3 and 6
    with pytest.raises(PruningLimitsError, match="structure neuron needs an nn.Linear layer or other 2-D weight besides the output layer"):
        model_order(convs, "neuron")
    with pytest.raises(PruningLimitsError, match="structure 2:4 needs a layer whose input size .* multiple of 4"):
        model_order(convs, "2:4")
    channel = model_order(convs, "channel")  # the last convolution's channels are the outputs
    assert channel.covered == 6 and channel.dense_layers == (("2.weight", 12),)
    assert channel.dense_share == pytest.approx(12 / 18)
    assert model_order(convs, "channel+outputs").covered == 18
    assert model_order(convs, "1:3").covered == 18
    with pytest.raises(PruningLimitsError, match="2:4\\+cl needs a layer whose input size \\(in_channels for"):
        model_order(convs, "2:4+cl")  # in_channels 1 and 2
    # a classifier alone: its rows are the classes, pruned only when asked for
    logistic = nn.Sequential(nn.Linear(5, 3))
    with pytest.raises(PruningLimitsError, match="besides the output layer .*neuron\\+outputs prunes them"):
        model_order(logistic, "neuron")
    assert model_order(logistic, "neuron+outputs").allowed.tolist() == [0, 5, 10, 15]


def test_a_zero_size_layer_stays_dense_under_every_structure():
    """nn.Linear(0, 8) and nn.Linear(8, 0) (a branch configured off) crashed neuron, channel and
    N:M (a maximum over no group; a division by 0 rows), as did a scalar parameter under N:M
    (--params all): they have no group to remove and are listed with the dense layers."""
    import warnings

    from pruning_limits.objective import select_parameters

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Initializing zero-element tensors is a no-op"
        no_inputs = nn.Sequential(nn.Linear(0, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
        no_outputs = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 0), nn.Linear(0, 3))
    for name, dense in (("neuron", ("0.weight", "4.weight")), ("channel", ("0.weight", "4.weight")), ("2:4", ("0.weight",))):
        plan = model_order(no_inputs, name)
        assert [n for n, _ in plan.dense_layers] == list(dense) and dict(plan.dense_layers)["0.weight"] == 0
        assert plan.covered == (64 if name != "2:4" else 88)
        masks = compute_masks(no_inputs, None if name == "2:4" else int(plan.allowed[-1]), name)
        assert masks["0.weight"].shape == (8, 0) and int((~masks["2.weight"]).sum()) == (32 if name == "2:4" else 64)
    for name in ("neuron", "channel", "2:4"):
        plan = model_order(no_outputs, name)
        assert plan.dense_layers == (("2.weight", 0), ("3.weight", 0)) and plan.covered == 32
    assert model_order(no_outputs, "layerwise").covered == 32
    scalar = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
    scalar.register_parameter("scale", nn.Parameter(torch.tensor(1.0)))
    select_parameters(scalar, "all")
    assert ("scale", 1) in model_order(scalar, "2:4").dense_layers


class Conv1D(nn.Module):
    """A stand-in for transformers' Conv1D (GPT-2's attention and MLP): weight (in, out), x @ W."""

    def __init__(self, nf: int, nx: int):
        super().__init__()
        self.nf, self.nx = nf, nx
        self.weight = nn.Parameter(torch.randn(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        return torch.addmm(self.bias, x, self.weight)


def test_transformers_conv1d_is_left_dense_like_a_transposed_convolution():
    """Its weight is (in, out): N:M runs and neuron rows along dimension 0 were runs over outputs
    and whole input columns; neuron, channel and N:M leave it dense and name it."""
    from pruning_limits.objective import select_parameters

    torch.manual_seed(0)
    net = nn.Sequential(Conv1D(8, 4), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    select_parameters(net, "*.weight")
    assert [(layer.name, layer.kind, layer.shape) for layer in layer_layout(net)][0] == ("0.weight", "transposed", (4, 8))
    for name in ("neuron", "channel", "2:4"):
        assert model_order(net, name).dense_layers[0] == ("0.weight", 32)
    masks = compute_masks(net, None, "2:4")
    assert bool(masks["0.weight"].all()) and int((~masks["2.weight"]).sum()) == 32
    assert model_order(net, "unstructured").covered == 32 + 64 + 24


def test_neuron_and_channel_prune_dim_0_slices_of_every_tensor_they_cover():
    """What the docs say they prune: rows (dim 0) of every 2-D prunable tensor, not only of
    nn.Linear (attention in-projections by default; an embedding's vocabulary entries when chosen
    with --params), and under channel the dim-0 slices of tensors of 3 or more dimensions (a
    (1, L, d) position embedding is one slice); neuron leaves those dense."""
    from pruning_limits.objective import select_parameters

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(10, 8)
            self.pos = nn.Parameter(torch.randn(1, 4, 8))
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            h = self.embed(x) + self.pos
            return self.head(self.attn(h, h, h)[0].mean(1))

    torch.manual_seed(0)
    model = Tiny()
    default = model_order(model, "neuron")  # in_proj (24 rows of 8) and out_proj (8 of 8)
    assert default.dense_layers == (("head.weight", 24),) and default.allowed.size == 24 + 8 + 1
    select_parameters(model, "embed.weight,pos,attn.in_proj_weight,attn.out_proj.weight,head.weight")
    neuron = model_order(model, "neuron")
    assert neuron.dense_layers == (("pos", 32), ("head.weight", 24))
    assert neuron.allowed.size == 10 + 24 + 8 + 1 and set(np.diff(neuron.allowed).tolist()) == {8}
    masks = compute_masks(model, int(neuron.allowed[-1]), "neuron")
    assert not masks["embed.weight"].any() and not masks["attn.in_proj_weight"].any() and masks["pos"].all()
    channel = model_order(model, "channel")
    assert channel.dense_layers == (("head.weight", 24),) and sorted(set(np.diff(channel.allowed).tolist())) == [8, 32]


def test_neuron_and_channel_leave_the_output_rows_dense_by_default():
    """Removing a row of the last layer deletes a class: by default it stays dense and is reported."""
    model = net(2)
    for name in ("neuron", "channel"):
        plan = model_order(model, name)
        assert ("5.weight", 24) in plan.dense_layers
        assert plan.to_dict()["dense_layers"][-1] == {"name": "5.weight", "size": 24}
        masks = compute_masks(model, int(plan.allowed[-1]), name)
        assert masks["5.weight"].all()
        assert not masks["3.weight"].any()  # every hidden row goes at the largest allowed count
        with_outputs = model_order(model, name + "+outputs")
        assert "5.weight" not in dict(with_outputs.dense_layers)
        assert with_outputs.allowed[-1] == plan.allowed[-1] + 24
    assert model_order(model, "neuron").dense_layers == (("0.weight", 32), ("5.weight", 24))


def test_the_output_layer_is_the_models_whatever_params_select():
    """The classifier is the model's last Linear/conv weight, not the selection's last tensor: with
    --params all a bias came last and the classifier's rows (the classes) were pruned; with
    hidden layers alone the last hidden layer was kept as if it were the outputs."""
    from pruning_limits.objective import select_parameters

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    everything = model_order(select_parameters(mlp, "all"), "neuron")
    dense = dict(everything.dense_layers)
    assert set(dense) == {"0.bias", "2.bias", "4.weight", "4.bias"}  # no rows in a bias; the classes stay
    steps = np.diff(everything.allowed)
    assert everything.covered == 30 + 20 and steps.size == 5 + 4 and set(steps.tolist()) == {6, 5}  # rows of 6 and 5 inputs
    masks = compute_masks(mlp, int(everything.allowed[-1]), "neuron")
    assert masks["4.weight"].all() and masks["4.bias"].all() and masks["0.bias"].all()
    hidden = model_order(select_parameters(mlp, "0.weight,2.weight"), "neuron")
    assert hidden.dense_layers == () and hidden.covered == 50  # both hidden layers' rows can go
    first = model_order(select_parameters(mlp, "0.weight"), "neuron")
    assert first.covered == 30 and first.allowed.tolist() == [0, 6, 12, 18, 24, 30]
    assert model_order(select_parameters(mlp, "4.weight"), "neuron+outputs").covered == 12
    with pytest.raises(PruningLimitsError, match="besides the output layer"):
        model_order(select_parameters(mlp, "4.weight"), "neuron")
    # a layout made by hand (no output flags): its last layer is taken to be the outputs, as before
    layout = [Layer("a.weight", "linear", (2, 3), 0), Layer("b.weight", "linear", (2, 2), 6)]
    assert structured_order(np.arange(1.0, 11.0), layout, "neuron").dense_layers == (("b.weight", 4),)


def test_pruned_rows_keep_their_bias_in_masks_and_prune():
    """Only the weights of a removed row are zeroed (the prunable weights); its bias stays, so the
    neuron outputs the constant act(b), the same in prediction, measurement and prune_model."""
    model = net(5)
    bias = model[3].bias.detach().clone()
    masks = prune_model(model, 0.3, "neuron", permanent=True)
    removed = ~masks["3.weight"].any(dim=1)
    assert removed.any()
    assert torch.equal(model[3].bias.detach(), bias)
    x = torch.randn(4, 2, 4, 4)
    hidden = model[:5](x)
    assert torch.allclose(hidden[:, removed], torch.relu(bias[removed]).expand(4, -1))


def test_pattern_takes_no_amount_and_other_structures_need_one():
    model = net()
    with pytest.raises(PruningLimitsError, match="fixes the sparsity at 1 - 2/4: give no amount"):
        compute_masks(model, 0.5, "2:4")
    with pytest.raises(PruningLimitsError, match="needs an amount"):
        compute_masks(model, None, "neuron")
    with pytest.raises(PruningLimitsError, match="can prune at most"):
        compute_masks(model, 1.0, "neuron")  # the convolution stays dense under neuron


def test_asking_beyond_a_structures_reach_names_the_sparsity_that_works():
    """It said "...(sparsity 0.8649), asked for 1125; 3.weight stay dense" and not what to ask for."""
    model = net()  # D = 32 + 288 + 24; neuron reaches the 288 of 3.weight
    plan = model_order(model, "neuron")
    assert int(plan.allowed[-1]) == 288 and plan.dim == 344
    with pytest.raises(PruningLimitsError) as raised:
        compute_masks(model, 0.95, "neuron")
    assert str(raised.value) == (
        "structure neuron can prune at most 288 of 344 weights, asked for 327 (0.weight, 5.weight are left dense): "
        "use a sparsity of at most 0.8372"
    )
    assert (~torch.cat([m.reshape(-1) for m in compute_masks(model, 0.8372, "neuron").values()])).sum() == 288
    channel = model_order(model, "channel")  # one layer left dense: "is"
    with pytest.raises(PruningLimitsError, match=r"\(5\.weight is left dense\): use a sparsity of at most 0\.9302$"):
        channel.allowed_at_least(channel.dim)
    # a reach of many weights: the sparsity given is rounded down, so asking for it works (0.8649 would not)
    layout = [Layer("a.weight", "linear", (1024, 1000), 0), Layer("b.weight", "linear", (1, 160_000), 1_024_000)]
    wide = structured_order(np.arange(1.0, 1_184_001.0), layout, "neuron")  # 1024000 / 1184000 = 0.86486...
    with pytest.raises(PruningLimitsError, match="use a sparsity of at most 0.8648$"):
        wide.allowed_at_least(wide.dim)
    assert wide.allowed_at_least(round(0.8648 * wide.dim)) == 1_024_000
    assert round(0.8649 * wide.dim) > 1_024_000


# --- nearest allowed points against brute force -----------------------------------------------


def test_unstructured_point_is_the_nearest_sparse_point():
    w = np.random.default_rng(0).normal(size=10)
    layout = [Layer("a.weight", "linear", (2, 5), 0)]
    plan = structured_order(w, layout, "unstructured")
    for m in range(11):
        best = min(sum(w[list(c)] ** 2) for c in itertools.combinations(range(10), m))
        assert pruned_sq(w, keep_of(plan, m)) == pytest.approx(best, rel=1e-12)


def test_layerwise_point_is_nearest_given_its_per_layer_counts():
    rng = np.random.default_rng(1)
    layout = [Layer("a.weight", "linear", (2, 3), 0), Layer("b.weight", "linear", (2, 2), 6)]
    w = rng.normal(size=10)
    plan = structured_order(w, layout, "layerwise")
    for m in range(11):
        keep = keep_of(plan, m)
        counts = [int((~keep[0:6]).sum()), int((~keep[6:10]).sum())]
        assert all(abs(c - m * n / 10) < 1 for c, n in zip(counts, (6, 4)))  # same fraction, up to rounding
        best = min(
            sum(w[list(a)] ** 2) + sum(w[[6 + i for i in b]] ** 2)
            for a in itertools.combinations(range(6), counts[0])
            for b in itertools.combinations(range(4), counts[1])
        )
        assert pruned_sq(w, keep) == pytest.approx(best, rel=1e-12)


def test_layerwise_fractions_lie_within_one_weight_of_a_common_fraction():
    """The stated guarantee, by brute force on random layouts: at every count m there is a t with
    each layer's pruned fraction in [t - 1/n_l, t]. (The docstring claimed counts within one of the
    quota m n_l/D, which sizes 28, 6, 4, 4 break at m = 3.)"""
    rng = np.random.default_rng(0)
    for _ in range(200):
        sizes = rng.integers(1, 30, size=rng.integers(1, 6)).tolist()
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist()
        layout = [Layer(f"l{i}.weight", "linear", (1, n), start) for i, (n, start) in enumerate(zip(sizes, starts))]
        plan = structured_order(rng.normal(size=sum(sizes)), layout, "layerwise")
        layer_of = np.repeat(np.arange(len(sizes)), sizes)
        counts = np.zeros(len(sizes))
        for m in range(sum(sizes) + 1):
            if m:
                counts[layer_of[plan.order[m - 1]]] += 1
            fractions, share = counts / sizes, 1 / np.asarray(sizes, dtype=float)
            t = fractions.max()
            assert np.all(fractions >= t - share - 1e-12), (sizes, m, counts)
    quota = structured_order(np.arange(1.0, 43.0), [Layer("a.weight", "linear", (1, 28), 0), Layer("b.weight", "linear", (1, 6), 28),
                              Layer("c.weight", "linear", (1, 4), 34), Layer("d.weight", "linear", (1, 4), 38)], "layerwise")
    assert (quota.order[:3] < 28).all()  # the documented example: 3 from the layer of 28, quota 2


@pytest.mark.parametrize("name", ["neuron", "channel", "neuron+outputs", "channel+outputs"])
def test_group_points_are_nearest_among_all_unions_of_groups_with_as_many_zeros(name):
    """At every allowed count a (end of a greedy group) the point is the nearest union of whole
    groups with at least a pruned weights: brute force over all 2^G unions, groups of unequal size."""
    for seed in range(5):
        model = tiny(seed)
        w = effective_weights(model)
        layout = layer_layout(model)
        plan = model_order(model, name)
        outputs = name.endswith("+outputs")
        groups = [  # flat index sets of every row the structure may remove
            list(range(layer.start + r * layer.fan_in, layer.start + (r + 1) * layer.fan_in))
            for layer in layout
            if (layer.kind == "linear" or name.startswith("channel")) and (outputs or layer is not layout[-1])
            for r in range(layer.rows)
        ]
        if name != "neuron":  # neuron without the outputs: the two rows of Linear(3, 2)
            assert len({len(g) for g in groups}) > 1  # unequal group sizes
        unions = []
        for choice in itertools.product((0, 1), repeat=len(groups)):
            idx = [i for g, c in zip(groups, choice) if c for i in g]
            unions.append((len(idx), float(np.sum(w[idx] ** 2))))
        for count in plan.allowed:
            keep = keep_of(plan, int(count))
            best = min(cost for size, cost in unions if size >= count)
            assert pruned_sq(w, keep) == pytest.approx(best, rel=1e-12, abs=1e-15)
            # whole groups only
            for g in groups:
                assert keep[g].all() or not keep[g].any()


def test_between_allowed_counts_the_next_group_point_need_not_be_nearest():
    """What is *not* claimed: with unequal group sizes the nearest union with at least m zeros
    for m between allowed counts is a knapsack problem; rounding up to the next greedy point
    can be beaten (which is why only the ends of greedy groups are allowed points)."""
    # layer A: one row of 3 weights (mean square 1.0); layer B: two rows of 2 (1.1 and 1.2)
    w = np.array([1.0, 1.0, 1.0, math.sqrt(1.1), math.sqrt(1.1), math.sqrt(1.2), math.sqrt(1.2)])
    layout = [Layer("a.weight", "linear", (1, 3), 0), Layer("b.weight", "linear", (2, 2), 3)]
    plan = structured_order(w, layout, "neuron+outputs")
    assert plan.allowed.tolist() == [0, 3, 5, 7]
    greedy = pruned_sq(w, keep_of(plan, plan.allowed_at_least(4)))  # A and B1: 3 + 2.2
    both_b = 2.2 + 2.4  # B1 and B2: 4 zeros as well
    assert greedy == pytest.approx(5.2) and both_b < greedy


@pytest.mark.parametrize("pattern", ["2:4", "1:4", "1:2", "3:8"])
def test_pattern_point_is_the_nearest_point_with_the_pattern(pattern):
    s = parse_structure(pattern)
    layout = [Layer("a.weight", "linear", (1, 8), 0), Layer("b.weight", "linear", (2, 3), 8)]  # b: 3 % M != 0
    for seed in range(3):
        w = np.random.default_rng(seed).normal(size=14)
        plan = structured_order(w, layout, s)
        assert plan.dense_layers == (("b.weight", 6),) and plan.covered == 8
        # the JSON's support is the pattern alone: it said 5 allowed points up to s = 1 (the
        # order's rounds, most of them no pattern) for 2:4
        support = plan.to_dict()
        assert support["pattern_sparsity"] == (8 // s.m) * (s.m - s.n) / 14  # runs × pruned per run
        assert support["allowed_points"] == 1 and support["max_sparsity"] == support["pattern_sparsity"]
        assert plan.max_sparsity == plan.pattern_count / 14
        keep = keep_of(plan, plan.pattern_count)
        assert keep[8:].all()
        best = math.inf
        for mask in itertools.product((0, 1), repeat=8):
            runs = np.array(mask).reshape(-1, s.m)
            if (runs.sum(axis=1) <= s.n).all():
                best = min(best, float(np.sum(w[:8][np.array(mask) == 0] ** 2)))
        assert pruned_sq(w, keep) == pytest.approx(best, rel=1e-12)


# --- masks ------------------------------------------------------------------------------------


def reference_nm_keep(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Plain reference: keep the n largest |w| of every run of m along the flattened input."""
    rows = weight.reshape(weight.shape[0], -1)
    runs = rows.abs().reshape(rows.shape[0], -1, m)
    keep = torch.zeros_like(runs, dtype=torch.bool)
    keep.scatter_(-1, runs.topk(n, dim=-1).indices, True)
    return keep.reshape(weight.shape)


@pytest.mark.parametrize("pattern", ["2:4", "1:4", "3:4", "1:2", "4:8"])
def test_pattern_masks_satisfy_the_pattern_and_equal_the_reference(pattern):
    s = parse_structure(pattern)
    for seed in range(4):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(2, 3, 2), nn.Flatten(), nn.Linear(3 * 2 * 2, 16), nn.Linear(16, 5), nn.Linear(5, 2))
        masks = compute_masks(model, None, pattern)
        for name, module in (("0.weight", model[0]), ("2.weight", model[2]), ("3.weight", model[3]), ("4.weight", model[4])):
            mask, weight = masks[name], module.weight.detach()
            fan_in = weight[0].numel()
            if fan_in % s.m:
                assert mask.all(), name  # left dense, reported in dense_layers
                continue
            runs = mask.reshape(weight.shape[0], -1, s.m)
            assert (runs.sum(-1) == s.n).all()  # at most N (and with non-zero weights exactly N) per run
            assert torch.equal(mask, reference_nm_keep(weight, s.n, s.m)), name
        dense = {name for name, _ in model_order(model, pattern).dense_layers}
        assert dense == {n for n, mod in (("0.weight", model[0]), ("2.weight", model[2]), ("3.weight", model[3]), ("4.weight", model[4])) if mod.weight[0].numel() % s.m}


@pytest.mark.parametrize("name", ["neuron", "channel"])
def test_group_masks_zero_whole_rows_only(name):
    model = net(3)
    plan = model_order(model, name)
    dim = plan.dim
    for amount in (0.05, 0.2, 0.37, 0.5, 17, 100):
        if (amount if isinstance(amount, int) else round(amount * dim)) > plan.allowed[-1]:
            continue
        masks = compute_masks(model, amount, name)
        total = sum(int((~mask).sum()) for mask in masks.values())
        assert total in set(plan.allowed.tolist())
        assert total >= (amount if isinstance(amount, int) else round(amount * dim))
        for key, mask in masks.items():
            rows = mask.reshape(mask.shape[0], -1)
            assert (rows.all(dim=1) | ~rows.any(dim=1)).all()  # each row all kept or all pruned
            if name == "neuron" and mask.dim() > 2:
                assert mask.all()  # convolutions stay dense under neuron


def test_prune_model_with_a_pattern_is_permanent_and_reported():
    model = net(4)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    masks = prune_model(model, None, "2:4", permanent=True)
    assert not any(name.endswith("_orig") for name in model.state_dict())
    w = model[3].weight.detach()
    assert ((w.reshape(8, -1, 4) != 0).sum(-1) <= 2).all()
    assert torch.equal(model[3].weight.detach(), before["3.weight"] * masks["3.weight"])


# --- R(s) -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_structured_curve_is_never_below_the_unstructured_one(name):
    for seed in range(3):
        model = net(seed)
        w = effective_weights(model)
        r2 = distance_curve(w, model_order(model, name).order)
        assert np.all(r2 >= magnitude_distance_curve(w) - 1e-12)
        assert np.all(np.diff(r2) <= 0) and r2[-1] == 0.0


# --- the calculator on a structure's R(s) -----------------------------------------------------


def random_spectrum(dim, seed, probes=3, steps=7):
    rng = np.random.default_rng(seed)
    nodes = rng.exponential(1.0, size=(probes, steps)) * rng.choice([0.0, 1.0, 30.0], size=(probes, steps))
    weights = rng.dirichlet(np.ones(steps), size=probes)
    return Spectrum(nodes, weights, dim)


def random_case(name, seed):
    """``(weights, plan, spectrum, gradient)``: :func:`net` under ``name`` with a random spectrum and gradient."""
    model = net(seed)
    plan = model_order(model, name)
    gradient = np.random.default_rng(seed).normal(size=plan.dim) * 1e-3
    return effective_weights(model), plan, random_spectrum(plan.dim, seed), gradient


def brute_force_limit(w, spectrum, eps, plan, gradient=None):
    """Largest allowed sparsity s = a/D with s <= δ(R; ε − c)/D, scanning every allowed count."""
    dim = plan.dim
    r2 = distance_curve(w, plan.order)
    steps = np.zeros(dim + 1) if gradient is None else np.concatenate([[0.0], np.cumsum(-gradient[plan.order] * w[plan.order])])
    best = 0.0
    for count in plan.allowed:
        kept = dim - int(count)
        e = eps - max(steps[a] for a in plan.allowed if a <= count)  # c: running maximum over allowed counts only
        assert gradient is None or first_order_curve(w, gradient, plan.order, plan.allowed)[kept] == max(
            steps[a] for a in plan.allowed if a <= count
        )
        if e <= 0:
            continue
        frac = np.mean(np.sum(spectrum.weights * delta_integrand(spectrum.nodes, e, r2[kept]), axis=1))
        if count / dim <= min(frac, 1.0):
            best = max(best, count / dim)
    return best


@pytest.mark.parametrize("name", ["unstructured", "layerwise", "neuron", "channel", "channel+outputs"])
def test_structured_prediction_equals_a_brute_force_scan(name):
    for seed in range(4):
        w, plan, spectrum, gradient = random_case(name, seed)
        for eps in (1e-3, 1e-2, 0.1):
            for g in (None, gradient):
                prediction = predict_structured(w, spectrum, eps, plan, gradient=g)
                assert prediction.sparsity == pytest.approx(brute_force_limit(w, spectrum, eps, plan, g), abs=1e-12)
                assert int(round(prediction.sparsity * plan.dim)) in set(plan.allowed.tolist())
                low, high = prediction.interval
                assert low <= prediction.sparsity <= high


def test_pattern_feasibility_and_needed_epsilon():
    for seed in range(4):
        model = net(seed)
        w = effective_weights(model)
        plan = model_order(model, "2:4")
        spectrum = random_spectrum(plan.dim, seed)
        gradient = np.random.default_rng(seed).normal(size=plan.dim) * 1e-3
        for g in (None, gradient):
            p = predict_structured(w, spectrum, 1e-2, plan, gradient=g)
            assert p.sparsity == plan.pattern_count / plan.dim
            r2 = distance_curve(w, plan.order)[plan.dim - plan.pattern_count]
            assert p.distance == pytest.approx(math.sqrt(r2))
            need = p.needed_epsilon
            assert math.isfinite(need) and need > p.first_order_cost
            # δ(R; ε − c)/D meets the sparsity exactly at the needed ε; feasible iff ε ≥ needed
            frac = np.mean(np.sum(spectrum.weights * delta_integrand(spectrum.nodes, need - p.first_order_cost, r2), axis=1))
            assert frac == pytest.approx(p.sparsity, rel=1e-9)
            for factor, expected in ((1 - 1e-6, False), (1 + 1e-6, True)):
                assert predict_structured(w, spectrum, need * factor, plan, gradient=g).feasible is expected
            assert p.feasible is (1e-2 >= need)
            lo, hi = p.needed_epsilon_interval
            assert lo <= need <= hi
            assert p.dense_layers == ()  # every fan-in (8, 36, 8) is a multiple of 4


@pytest.mark.parametrize("name", ["unstructured", "layerwise", "neuron", "channel+outputs", "2:4"])
def test_the_adaptive_stop_watches_what_the_structure_answers(name):
    """The structured estimator gives s* on the structure's distance curve, which
    predict_structured moves down to an allowed point; for N:M the δ/D its feasibility compares."""
    for seed in range(3):
        w, plan, spectrum, gradient = random_case(name, seed)
        epsilons = (1e-3, 1e-2, 0.1)
        for g in (None, gradient):
            values = structured_estimator(w, epsilons, plan, gradient=g)(spectrum)
            for eps, value in zip(epsilons, values):
                answer = predict_structured(w, spectrum, eps, plan, gradient=g)
                if plan.structure.is_pattern:
                    assert value == answer.delta_fraction
                    assert answer.feasible is (answer.sparsity <= value)
                else:
                    assert plan.allowed_at_most(int(round(value * plan.dim))) / plan.dim == pytest.approx(answer.sparsity, abs=1e-12)
                    assert value >= answer.sparsity - 1e-12


def test_needed_epsilon_edge_cases():
    nodes, weights = np.array([[0.0, 2.0]]), np.array([[0.5, 0.5]])
    assert needed_epsilon(nodes, weights, 0.4, 1.0) == 0.0  # the zero atom (0.5) alone covers 0.4
    assert needed_epsilon(nodes, weights, 0.4, 1.0, cost=0.3) == 0.3
    assert needed_epsilon(nodes, weights, 1.0, 1.0) == math.inf  # δ/D < 1 for every finite ε
    # closed form: 0.5 + 0.5·2ε/(2ε + 2R²) = 0.75  ⇔  ε = R²
    assert needed_epsilon(nodes, weights, 0.75, 3.0) == pytest.approx(3.0, rel=1e-10)


# --- measurement, pipeline and command line ---------------------------------------------------


@pytest.fixture(scope="module")
def trained():
    from pruning_limits.data import load_data
    from pruning_limits.lomp import train
    from pruning_limits.models import build_model

    data = load_data("synthetic:n=200,test=60,d=8")
    model = build_model("mlp:12", data, seed=0)
    train(model, data, epochs=25, seed=0, l1=1e-3)
    return model, data


def test_sweep_over_allowed_points_equals_a_scan_of_every_allowed_point(trained):
    from pruning_limits.lomp import sweep
    from pruning_limits.objective import evaluate_loss

    model, data = trained
    plan = model_order(model, "neuron")
    eps = 0.02
    result = sweep(model, data.train, epsilon=eps, criterion="neuron", allowed=plan.allowed)
    losses = []
    for count in plan.allowed:
        pruned = copy_pruned(model, plan, int(count))
        losses.append(evaluate_loss(pruned, data.train))
    threshold = losses[0] + eps
    first_fail = next((i for i, loss in enumerate(losses) if loss > threshold), len(losses))
    assert result.limit_by_loss == plan.allowed[first_fail - 1] / plan.dim
    assert set(result.num_pruned.tolist()) <= set(plan.allowed.tolist())


def copy_pruned(model, plan, count):
    import copy

    from pruning_limits.masks import apply_masks, make_permanent, masks_from_order

    pruned = copy.deepcopy(model)
    apply_masks(pruned, masks_from_order(pruned, plan.order, count))
    return make_permanent(pruned)


def test_validate_structures_uses_one_spectrum_and_measures_what_it_says(trained, monkeypatch):
    import pruning_limits.validation as validation
    from pruning_limits.pipeline import predict_limit
    from pruning_limits.objective import evaluate_loss

    model, data = trained
    calls = []
    real_slq = validation.slq
    monkeypatch.setattr(validation, "slq", lambda *a, **k: calls.append(1) or real_slq(*a, **k))
    result = validation.validate_structures(model, data, iterations=20, probes=2)
    assert len(calls) == 1  # one spectrum for every structure
    assert [r.structure for r in result.results] == list(validation.ALL_STRUCTURES)
    by_name = {r.structure: r for r in result.results}
    # the 2:4 measurement is the loss rise of the 2:4-pruned network
    plan = model_order(model, "2:4")
    rise = evaluate_loss(copy_pruned(model, plan, plan.pattern_count), data.train) - evaluate_loss(model, data.train)
    assert by_name["2:4"].pattern["loss_rise"] == pytest.approx(rise, rel=1e-9)
    assert by_name["2:4"].pattern["feasible"] is (rise <= result.epsilon)
    # each prediction equals the pipeline's with the same spectrum and structure
    for name in ("neuron", "2:4"):
        direct = predict_limit(model, data.train, epsilon=result.epsilon, spectrum=result.spectrum, structure=name)
        assert by_name[name].prediction.sparsity == pytest.approx(direct.sparsity)
        if name == "2:4":
            assert by_name[name].prediction.needed_epsilon == pytest.approx(direct.needed_epsilon, rel=1e-9)
        assert direct.seconds > 0 and direct.to_dict()["seconds"] == direct.seconds  # a pattern's was None
    record = result.to_dict()
    assert {e["structure"] for e in record["structures"]} == set(validation.ALL_STRUCTURES)
    from pruning_limits.report import structures_figure, structures_table

    assert "2:4 (s = 50.0)" in structures_table(record)
    assert len(structures_figure(record).axes) == 2
    # a pattern alone has no limit for the right panel, which was drawn empty (a review, 2026-12-06)
    patterns = dict(record, structures=[e for e in record["structures"] if e["pattern"]])
    assert len(structures_figure(patterns).axes) == 1


def run_cli(*args):
    from click.testing import CliRunner

    from pruning_limits.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, match):
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and match in lines[0], result.stderr


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("structures") / "model.pt"
    result = run_cli("train", "--model", "mlp:8", "--data", "digits", "--epochs", "3", "--l1", "1e-3", "-o", path, "-q")
    assert result.exit_code == 0, result.stderr
    return path


SLQ = ["--iterations", "12", "--probes", "2"]


def test_predict_structure_plot_shows_every_epsilon(bundle, tmp_path, monkeypatch):
    """`predict --structure neuron --epsilon A --epsilon B --plot` drew the fixed point at A alone
    (B's answer, printed, was in no figure; a review, 2026-12-06): a curve structure now draws the
    limit against ε, an N:M pattern marks every ε on its one curve."""
    from pruning_limits import report

    drawn = {}
    for name in ("limit_curve_figure", "pattern_figure", "prediction_figure"):
        def record(*args, _name=name, _draw=getattr(report, name), **kwargs):
            drawn[_name] = (args, kwargs)
            return _draw(*args, **kwargs)

        monkeypatch.setattr(report, name, record)
    two = ["--epsilon", "0.01", "--epsilon", "0.1"]
    assert run_cli("predict", bundle, "--structure", "neuron", *two, "--plot", tmp_path / "n.png", *SLQ).exit_code == 0
    (points,), _ = drawn.pop("limit_curve_figure")
    assert sorted(p["epsilon"] for p in points) == [0.01, 0.1] and not drawn
    assert run_cli("predict", bundle, "--structure", "2:4", *two, "--plot", tmp_path / "p.png", *SLQ).exit_code == 0
    _, kwargs = drawn.pop("pattern_figure")
    assert kwargs["marked"] == [0.01, 0.1] and not drawn
    assert (tmp_path / "n.png").stat().st_size > 0 and (tmp_path / "p.png").stat().st_size > 0


def test_cli_predict_prune_validate_with_structures(bundle, tmp_path):
    import json

    record = json.loads(run_cli("predict", bundle, "--structure", "2:4", "--json", *SLQ).stdout)
    assert record["structure"] == "2:4" and record["sparsity"] == 0.5 and record["interval"] is None
    support = record["support"]  # the pattern is its one allowed point (it said 5, up to s = 1)
    assert (support["allowed_points"], support["max_sparsity"], support["pattern_sparsity"]) == (1, 0.5, 0.5)
    assert isinstance(record["feasible"], bool) and record["needed_epsilon"] > 0
    text = run_cli("predict", bundle, "--structure", "2:4", *SLQ).stdout
    assert text.startswith("2:4 (50.0 %) at ε = ")  # the answer in a line (a review), the rows behind -v
    assert "feasible at ε = " not in text and "feasible at ε = " in run_cli("predict", bundle, "--structure", "2:4", "-v", *SLQ).stdout
    record = json.loads(run_cli("predict", bundle, "--structure", "neuron", "--json", *SLQ).stdout)
    assert record["criterion"] == "neuron" and {"sparsity", "density", "interval", "epsilon", "dim"} <= set(record)
    assert record["params"]["selection"] == "default" and record["params"]["weights"] == record["dim"]
    two = json.loads(run_cli("predict", bundle, "--structure", "neuron", "--epsilon", "0.01", "--epsilon", "0.1", "--json", *SLQ).stdout)
    assert two["params"] == record["params"]  # the JSON always has it (docs/usage.md, "--params")

    out = tmp_path / "p.pt"
    result = run_cli("prune", bundle, "--structure", "2:4", "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["sparsity"] == 0.5
    saved = torch.load(out, weights_only=True)
    assert saved["pruning"]["structure"] == "2:4"
    for name, w in saved["state_dict"].items():
        if name.endswith("weight"):
            assert ((w.reshape(w.shape[0], -1, 4) != 0).sum(-1) <= 2).all()

    report = tmp_path / "r.md"
    result = run_cli("validate", bundle, "--structure", "all", "--json", "--report", report, *SLQ)
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert [e["structure"] for e in record["structures"]] == ["unstructured", "layerwise", "neuron", "channel", "2:4"]
    assert record["params"]["weights"] == record["structures"][0]["predicted"]["dim"]
    assert record["seconds"] > 0 and "seconds" not in json.dumps(record["structures"])  # the command's alone
    assert (tmp_path / "r-structures.png").exists() and "r-structures.png" in report.read_text()
    assert record["spectrum_source"] == "slq" and record["spectrum"]["exact"] is False
    assert record["spectrum"]["stopping"]["adaptive"] is False  # --iterations alone: a fixed run
    # the network's verdict (its λ, the knee at its unstructured answer) on every structure (there
    # was none; then none on an N:M pattern, whose feasibility answer rests on the same bound)
    from pruning_limits.regime import trust_level

    unstructured = record["structures"][0]["predicted"]
    assert record["network_knee_steepness"] == unstructured["knee_steepness"]
    assert record["network_sparsity"] == unstructured["sparsity"]
    assert record["trust"] == {**trust_level(unstructured["knee_steepness"], 1e-3, knee_at="the unstructured s*",
                                             sparsity=unstructured["sparsity"]).to_dict(), "evidence": ""}
    for entry in record["structures"]:
        assert entry["trust"] == record["trust"]
    outside = [e for e in record["structures"] if not e["trust"]["in_regime"]]
    assert (record["next"] is None) == (not outside)

    plain = tmp_path / "plain.pt"  # λ = 0: outside the regime whatever the knee
    assert run_cli("train", "--model", "mlp:8", "--data", "digits", "--epochs", "2", "--l1", "0", "-o", plain, "-q").exit_code == 0
    result = run_cli("validate", plain, "--structure", "neuron", "--report", tmp_path / "plain.md", *SLQ)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()  # the answer, then the verdict with its reason; the table behind -v
    from pruning_limits.report import next_lines, structures_table, trust_lines

    plain_record = json.loads(run_cli("validate", plain, "--structure", "neuron", "--json", *SLQ).stdout)
    shown_next = next_lines(plain_record["next"], plain_record["next_reason"])
    assert lines[0].startswith("neuron: not a limit: predicted ") and lines[0].endswith(" points)")  # the verdict first
    assert lines[1].startswith("trust: outside the regime (λ = 0, no l1")
    assert lines[-len(shown_next):] == shown_next and plain_record["next"].startswith(f"pruning-limit train --init {plain}")
    assert "|" not in result.stdout
    # the verdict in the trust column of the report's table (the terminal's -v table, within 88
    # characters, leaves it to the trust line above it: one verdict for every structure)
    assert "| outside the regime |" in (tmp_path / "plain.md").read_text()
    pattern = json.loads(run_cli("validate", plain, "--structure", "2:4", "--json", *SLQ).stdout)  # the pattern row had "-"
    assert next(line for line in structures_table(pattern).splitlines() if line.startswith("| 2:4")).endswith("| outside the regime |")
    # predict --structure says so too, first (it printed a bare number), for a pattern as well
    lines = run_cli("predict", plain, "--structure", "neuron", *SLQ).stdout.splitlines()
    shown_trust = trust_lines(plain_record["trust"])
    assert lines[0].endswith("neuron sparsity: not a pruning limit for this network") and lines[1].startswith("trust: outside")
    assert lines[1 + len(shown_trust):1 + len(shown_trust) + len(shown_next)] == shown_next
    record = json.loads(run_cli("predict", plain, "--structure", "2:4", "--json", *SLQ).stdout)
    assert record["trust"]["in_regime"] is False and record["next"].startswith("pruning-limit train --init")
    pattern_lines = run_cli("predict", plain, "--structure", "2:4", *SLQ).stdout.splitlines()
    assert pattern_lines[-len(shown_next):] == next_lines(record["next"], record["next_reason"])
    text = (tmp_path / "plain.md").read_text()
    assert "**Trust: outside the regime** (λ = 0, no l1" in text and "Next: `pruning-limit train --init" in text

    # the adaptive stop watches each structure's own answer (before neuron's move to a whole group)
    record = json.loads(run_cli("validate", bundle, "--structure", "neuron", "--json", "--probes", "2").stdout)
    stop = record["spectrum"]["stopping"]
    assert stop["adaptive"] and len(stop["final_estimate"]) == 1
    (neuron,) = record["structures"]
    dim = neuron["predicted"]["dim"]  # at most one neuron of the widest fan-in (digits' 64 inputs) apart
    assert neuron["predicted"]["sparsity"] <= stop["final_estimate"][0] < neuron["predicted"]["sparsity"] + 64 / dim


def test_cli_validate_structure_exact_replaces_slq(bundle):
    import json

    assert "with --structure, predict from it instead of SLQ" in " ".join(run_cli("validate", "--help").stdout.split())
    result = run_cli("validate", bundle, "--structure", "2:4", "--exact", "--json")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["spectrum_source"] == "exact" and record["spectrum"]["exact"] is True


def test_cli_bad_structure_inputs(bundle, tmp_path):
    out = tmp_path / "x.pt"
    conflict = run_cli("prune", bundle, "--structure", "2:4", "--sparsity", "0.5", "-o", out)  # conflicting options: exit 2
    assert conflict.exit_code == 2 and "Error: --sparsity cannot be given with --structure 2:4" in conflict.stderr, conflict.stderr
    for args, said in (  # a missing option is a usage error (exit 2); it said '--structure unstructured' unasked
        (["--structure", "neuron"], "Error: --sparsity is required with --structure neuron"),
        ([], "Error: missing --sparsity S (the fraction of weights to prune, in [0, 1]) or --structure N:M"),
    ):
        missing = run_cli("prune", bundle, *args, "-o", out)
        assert missing.exit_code == 2 and said in missing.stderr, (missing.exit_code, missing.stderr)
    one_line_error(run_cli("predict", bundle, "--structure", "4:4"), "needs M >= 2 and 1 <= N < M, got '4:4'")
    one_line_error(run_cli("predict", bundle, "--structure", "2:1"), "needs M >= 2 and 1 <= N < M")
    one_line_error(run_cli("validate", bundle, "--structure", "rows"), "structure must be unstructured, layerwise, neuron, channel or N:M")
    one_line_error(run_cli("predict", bundle, "--structure", "all"), "got 'all' (every structure side by side is for validate only)")
    one_line_error(run_cli("prune", bundle, "--structure", "All", "-o", out), "got 'All' (every structure side by side is for validate only)")
    one_line_error(run_cli("predict", bundle, "--structure", "\uff12:\uff14"), "structure must be")  # full-width digits
    one_line_error(run_cli("predict", bundle, "--structure", "1:3"), "structure 1:3 needs a layer whose input size")  # 64 and 8 inputs


# --- the first-order cost at a structure's points (gradient not aligned with sign(w)) --------


def mse_model(seed):
    """A small MLP fitted by MSE without l1: its data-loss gradient is not −λ·sign(w)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 12), nn.Tanh(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 4)).double()
    x, y = torch.randn(64, 8, dtype=torch.float64), torch.randn(64, 4, dtype=torch.float64)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(30):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
    opt.zero_grad()
    ((model(x) - y) ** 2).mean().backward()
    return model, torch.cat([m.weight.grad.reshape(-1) for m in model if isinstance(m, nn.Linear)]).numpy()


def test_pattern_cost_is_its_own_step_not_a_running_maximum_over_partial_rounds():
    model, g = mse_model(2)
    w = effective_weights(model)
    plan = model_order(model, "2:4")
    step = plan.order[: plan.pattern_count]
    own = max(0.0, float(-np.sum(g[step] * w[step])))
    prefix_max = float(first_order_curve(w, g, plan.order)[plan.dim - plan.pattern_count])
    assert 0.0 < own < prefix_max  # the case the two differ
    p = predict_structured(w, random_spectrum(plan.dim, 2), 1e-2, plan, gradient=g)
    assert p.first_order_cost == pytest.approx(own, rel=1e-12)
    assert p.needed_epsilon > own
    # a decrease is never credited: with −g the step lowers the loss to first order, c = 0
    assert predict_structured(w, random_spectrum(plan.dim, 2), 1e-2, plan, gradient=-g).first_order_cost == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_group_cost_is_a_maximum_over_allowed_counts_only(seed):
    model, g = mse_model(seed)
    w = effective_weights(model)
    plan = model_order(model, "neuron")
    steps = np.concatenate([[0.0], np.cumsum(-g[plan.order] * w[plan.order])])
    allowed_only = first_order_curve(w, g, plan.order, plan.allowed)
    every_prefix = first_order_curve(w, g, plan.order)
    for a in plan.allowed:
        assert allowed_only[plan.dim - a] == max(steps[b] for b in plan.allowed if b <= a)
    kept = plan.dim - plan.allowed
    assert (allowed_only[kept] < every_prefix[kept]).any()  # partial groups pushed the old c up
    assert np.all(np.diff(allowed_only) <= 0)  # non-increasing in kept: ε − c stays monotone
    spectrum = random_spectrum(plan.dim, seed)
    for eps in (1e-3, 1e-2, 0.1):
        p = predict_structured(w, spectrum, eps, plan, gradient=g)
        assert p.sparsity == pytest.approx(brute_force_limit(w, spectrum, eps, plan, g), abs=1e-12)
        assert p.first_order_cost == allowed_only[p.kept]
    with pytest.raises(PruningLimitsError, match="allowed must be ascending counts"):
        first_order_curve(w, g, plan.order, [1, 5])


# --- N:M+cl: runs along input channels at a fixed kernel position ------------------------------


def reference_channels_last_keep(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Reference: permute to (out, *kernel, in), keep the n largest |w| of every run of m inputs."""
    perm = (0, *range(2, weight.dim()), 1)
    moved = weight.permute(perm)
    keep = reference_nm_keep(moved.reshape(-1, moved.shape[-1]), n, m).reshape(moved.shape)
    inverse = [perm.index(i) for i in range(weight.dim())]
    return keep.permute(inverse).contiguous()


@pytest.mark.parametrize("pattern", ["2:4", "1:4", "1:2"])
def test_channels_last_pattern_masks_equal_the_reference(pattern):
    s = parse_structure(pattern + "+cl")
    for seed in range(3):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(3, 8, 2), nn.ReLU(), nn.Conv2d(8, 4, 3), nn.Flatten(), nn.Linear(4, 4))
        masks = compute_masks(model, None, s.name)
        assert masks["0.weight"].all()  # in_channels 3: left dense (its flattened fan-in 12 would fit)
        conv = model[2].weight.detach()
        assert torch.equal(masks["2.weight"], reference_channels_last_keep(conv, s.n, s.m))
        runs = masks["2.weight"].permute(0, 2, 3, 1).reshape(-1, s.m)
        assert (runs.sum(-1) == s.n).all()
        assert torch.equal(masks["4.weight"], reference_nm_keep(model[4].weight.detach(), s.n, s.m))  # Linear: as N:M
        plan = model_order(model, s.name)
        assert dict(plan.dense_layers) == {"0.weight": 96}
        flat = model_order(model, pattern)  # the flattened runs differ on the convolution
        assert not flat.dense_layers
        assert not torch.equal(compute_masks(model, None, pattern)["2.weight"], masks["2.weight"])


def test_an_output_weight_shared_with_an_earlier_layer_stays_dense():
    """b.weight = a.weight with b the output layer: the layout compared names, marked no layer as
    the output, and neuron pruning zeroed 4 of b's 8 outputs through the shared tensor."""
    from pruning_limits.masks import prune_model
    from pruning_limits.structures import layer_layout

    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.mid, self.b = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
            self.b.weight = self.a.weight

        def forward(self, x):
            return self.b(torch.relu(self.mid(torch.relu(self.a(x)))))

    torch.manual_seed(0)
    model = Tied()
    assert [layer.output for layer in layer_layout(model)] == [True, False]  # a.weight is b's too
    prune_model(model, 0.4, "neuron", permanent=True)
    assert int((model.b.weight == 0).sum()) == 0 and int((model.mid.weight == 0).all(dim=1).sum()) == 7


def test_a_transposed_convolution_stays_dense_under_structures():
    """Its weight is (in, out, ...): `channel` on a ConvTranspose2d picked with --params pruned
    2 input-channel slices as if they were output channels."""
    from pruning_limits.masks import prune_model
    from pruning_limits.objective import select_parameters
    from pruning_limits.structures import layer_layout, model_order

    torch.manual_seed(0)
    model = nn.Sequential(nn.ConvTranspose2d(4, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3), nn.Flatten(), nn.Linear(16, 3))
    select_parameters(model, "0.weight,2.weight,4.weight")
    assert [layer.kind for layer in layer_layout(model)] == ["transposed", "conv", "linear"]
    for structure in ("channel", "2:4"):
        assert "0.weight" in dict(model_order(model, structure).dense_layers)
    prune_model(model, 0.1, "channel", permanent=True)
    assert int((model[0].weight == 0).sum()) == 0 and int((model[2].weight == 0).sum()) > 0


def test_the_output_layer_is_the_last_one_the_forward_runs():
    """A head registered before its body: the layout took the last *registered* Linear (the
    body's) as the output layer and `neuron` pruned the head's rows, deleting classes. The
    traced forward now names the head; a forward that does not trace keeps module order."""
    from pruning_limits.masks import prune_model
    from pruning_limits.objective import output_weight
    from pruning_limits.structures import layer_layout

    class HeadFirst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(8, 3)
            self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU())

        def forward(self, x):
            return self.head(self.body(x))

    class Untraceable(HeadFirst):
        def forward(self, x):
            if x.sum() > 0:  # control flow on a tensor value: symbolic tracing raises
                x = 2 * x
            return self.head(self.body(x))

    torch.manual_seed(0)
    model = HeadFirst()
    assert output_weight(model) == "head.weight"
    assert [layer.name for layer in layer_layout(model) if layer.output] == ["head.weight"]
    prune_model(model, 0.3, "neuron", permanent=True)
    assert int((model.head.weight == 0).sum()) == 0 and int((model.body[2].weight == 0).all(dim=1).sum()) > 0
    assert output_weight(Untraceable()) == "body.2.weight"  # the fallback, documented in usage.md

    class Functional(nn.Module):  # the head's weight read by name: F.linear(x, self.head.weight)
        def __init__(self) -> None:
            super().__init__()
            self.head, self.body = nn.Linear(8, 3), nn.Linear(4, 8)

        def forward(self, x):
            return nn.functional.linear(self.body(x), self.head.weight)

    assert output_weight(Functional()) == "head.weight"

    class TwoHeads(nn.Module):  # the logits first, a projection returned beside them (a review's repro)
        def __init__(self) -> None:
            super().__init__()
            self.body, self.proj, self.head = nn.Linear(4, 8), nn.Linear(8, 2), nn.Linear(8, 3)

        def forward(self, x):
            h = torch.relu(self.body(x))
            return self.head(h), self.proj(h)

    assert output_weight(TwoHeads()) == "head.weight"  # the trace's last call, proj, was taken

    class InPlace(nn.Module):  # the logits written into a buffer in place: the walk back missed the head
        def __init__(self) -> None:
            super().__init__()
            self.skip, self.body, self.head = nn.Linear(4, 3), nn.Linear(4, 8), nn.Linear(8, 3)

        def forward(self, x):
            out = self.skip(x)
            out.add_(self.head(torch.relu(self.body(x))))
            return out

    assert output_weight(InPlace()) == "head.weight"

    import collections

    Output = collections.namedtuple("Output", ["aux", "logits"])

    class Named(TwoHeads):  # logits() reads .logits before a tuple's first element
        def forward(self, x):
            h = torch.relu(self.body(x))
            head = self.head(h)
            return Output(aux=self.proj(h), logits=head)

    assert output_weight(Named()) == "head.weight"
    Pair = collections.namedtuple("Pair", ["main", "aux"])

    class Unnamed(TwoHeads):  # no logits field: the first, as logits() reads a tuple
        def forward(self, x):
            h = torch.relu(self.body(x))
            return Pair(self.head(h), self.proj(h))

    assert output_weight(Unnamed()) == "head.weight"

    class Gate(nn.Module):  # an in-place write after the logits read the tensor: not on their path
        def __init__(self) -> None:
            super().__init__()
            self.body, self.head, self.gate, self.aux = nn.Linear(4, 8), nn.Linear(8, 3), nn.Linear(8, 8), nn.Linear(8, 2)

        def forward(self, x):
            h = self.body(x)
            logits = self.head(h)
            h.mul_(self.gate(h).sigmoid())
            return logits, self.aux(h)

    assert output_weight(Gate()) == "head.weight"

    class Written(nn.Module):  # a write through a view of the returned tensor
        def __init__(self) -> None:
            super().__init__()
            self.head, self.body, self.skip = nn.Linear(8, 3), nn.Linear(4, 8), nn.Linear(4, 3)

        def forward(self, x):
            out = self.skip(x)
            out.view(-1).add_(self.head(torch.relu(self.body(x))).view(-1))
            return out

    assert output_weight(Written()) == "head.weight"


def test_api_validate_structure_exact_predicts_from_the_dense_spectrum(trained) -> None:
    """``validate(structure="neuron", exact=True)`` ignored ``exact`` and ran SLQ (a review's repro)."""
    from pruning_limits import validation
    from pruning_limits._checks import PruningLimitsError
    from pruning_limits.objective import model_copy
    from pruning_limits.spectrum import exact_spectrum

    model, data = trained
    result = validation.validate(model, data, structure="neuron", exact=True, iterations=5, probes=1)
    assert result.spectrum.summary()["exact"] is True
    dense = exact_spectrum(model_copy(model).to(torch.float64), data.train)
    np.testing.assert_allclose(result.spectrum.nodes, dense.nodes, rtol=0, atol=1e-12)
    with pytest.raises(PruningLimitsError, match="give exact or spectrum, got both"):
        validation.validate(model, data, structure="neuron", exact=True, spectrum=dense)


def test_cli_validate_structure_on_data_too_small_for_batch_std_names_epsilon(tmp_path) -> None:
    """100 training samples: ``validate --structure all`` advised '--iterations N alone', which then
    failed on the same batch-std ε ('give epsilon as a number'); one line now names --epsilon."""
    path = tmp_path / "tiny.pt"
    result = run_cli("train", "--model", "mlp:4", "--data", "synthetic:n=100,d=3", "--epochs", "2", "--l1", "1e-3", "-o", path, "-q")
    assert result.exit_code == 0, result.stderr
    for args in (["--structure", "all"], ["--structure", "neuron", "--iterations", "5"]):
        one_line_error(run_cli("validate", path, *args), "give epsilon as a number (--epsilon X)")
    fixed = run_cli("validate", path, "--structure", "neuron", "--iterations", "5", "--epsilon", "0.01", "--json")
    assert fixed.exit_code == 0, fixed.stderr


def test_a_pattern_at_the_share_of_zero_eigenvalues_is_feasible_as_the_unstructured_limit_reaches_it():
    """Half the eigenvalues exactly zero, the rest 1e6, ε = 1e-300: δ/D is 1/2 (closed form, up
    to 1e-300 relative), so the unstructured s* is 1/2 and 2:4 (s = 1/2) is feasible at any ε > 0.
    float64 gave δ/D = 0.4999999999999999: after the unstructured limit took rounding slack, 2:4
    was called infeasible and needing ε ≥ 1e-8 in the same run (a review, 2026-12-06)."""
    from pruning_limits.limits import predict_from_spectrum
    from pruning_limits.objective import flat_weights
    from pruning_limits.structures import layer_layout, predict_structured, structured_order

    model = nn.Linear(8, 9, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.linspace(1, 2, 72).reshape(9, 8))
    w = flat_weights(model)
    spectrum = Spectrum.from_eigenvalues(np.r_[np.zeros(36), np.full(36, 1e6)])
    assert predict_from_spectrum(w, spectrum, 1e-300).sparsity == 0.5
    pattern = predict_structured(w, spectrum, 1e-300, structured_order(w, layer_layout(model), "2:4"))
    assert pattern.sparsity == 0.5 and pattern.feasible
    assert pattern.needed_epsilon == 0.0  # every ε > 0 reaches δ/D = 1/2


def test_weights_whose_squares_overflow_are_refused_in_one_line_on_every_curve():
    """Structured and custom curves (distance_curve) gave the generic "criterion array R_k² must be
    finite" after numpy's "overflow encountered in square" (a review); they now give
    magnitude_distance_curve's one line, naming max |w| and the rescaling, and no warning; up to the
    float64 range the curve is the sum of the pruned squares (oracle: math.fsum)."""
    import warnings

    model = tiny()
    layout = layer_layout(model)
    dim = sum(layer.size for layer in layout)
    rng = np.random.default_rng(5)
    base = rng.standard_normal(dim)
    base[np.argmax(np.abs(base))] = 4.0  # max |w| = 4 exactly: the message's number is 4e+160
    huge = base * 1e160
    expected = (
        f"weights too large: max |w| = 4e+160, and R² = Σ w² of the {dim} weights overflows float64 (about 1.8e308); "
        "rescale the weights (and ε by the square of the factor)"
    )
    spectrum = Spectrum.from_eigenvalues(np.concatenate([np.zeros(dim // 2), rng.random(dim - dim // 2)]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("layerwise", "neuron", "channel", "2:4"):
            plan = structured_order(huge, layout, name)  # the order itself: no warning
            with pytest.raises(PruningLimitsError) as raised:
                distance_curve(huge, plan.order)
            assert str(raised.value) == expected
            with pytest.raises(PruningLimitsError) as raised:
                predict_structured(huge, spectrum, 1e300, plan)
            assert str(raised.value) == expected
        with pytest.raises(PruningLimitsError) as raised:
            magnitude_distance_curve(huge)
        assert str(raised.value) == expected
        small = base * 1e150  # Σ w² about 1e302: finite
        order = structured_order(small, layout, "neuron").order
        curve = distance_curve(small, order)
        assert curve[0] == pytest.approx(math.fsum(small**2), rel=1e-13) and curve[-1] == 0.0
        assert curve[dim // 2] == pytest.approx(math.fsum(small[order[: dim - dim // 2]] ** 2), rel=1e-13)
