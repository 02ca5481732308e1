import copy

import numpy as np
import pytest
import torch
import torch.nn.utils.prune as prune
from torch import nn

from pruning_limits import PruningLimitsError
from pruning_limits.masks import (
    apply_masks,
    compute_masks,
    distance_curve,
    effective_flat_weights,
    global_magnitude_masks,
    make_permanent,
    num_to_prune,
    prune_model,
    pruning_order,
)
from pruning_limits.objective import flat_weights


def net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv1d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6, 7), nn.ReLU(), nn.Linear(7, 4)
    )


WEIGHTS = ["0.weight", "3.weight", "5.weight"]


def torch_global_masks(model, amount):
    reference = copy.deepcopy(model)
    targets = [(reference[int(name[0])], "weight") for name in WEIGHTS]
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
    return {name: module.weight_mask.bool() for name, (module, _) in zip(WEIGHTS, targets)}


@pytest.mark.parametrize("amount", [0, 1, 17, 100, 0.0, 0.3, 0.5, 0.77, 1.0])
def test_global_masks_equal_torch_global_unstructured(amount):
    model = net()
    ours = global_magnitude_masks(model, amount)
    theirs = torch_global_masks(model, amount)
    assert list(ours) == WEIGHTS
    for name in WEIGHTS:
        assert torch.equal(ours[name], theirs[name]), name


def test_pruned_model_has_exact_zero_count_and_untouched_biases():
    model = net()
    dim = flat_weights(model).size
    biases = [m.bias.detach().clone() for m in (model[0], model[3], model[5])]
    for amount, expected in [(40, 40), (0.25, round(0.25 * dim)), (0.5, round(0.5 * dim))]:
        pruned = copy.deepcopy(model)
        prune_model(pruned, amount, permanent=True)
        assert not any(hasattr(m, "weight_mask") for m in pruned.modules())
        flat = flat_weights(pruned)
        assert int((flat == 0).sum()) == expected
        for bias, module in zip(biases, (pruned[0], pruned[3], pruned[5])):
            assert torch.equal(module.bias, bias)
        # the kept weights keep their values
        kept = flat != 0
        assert np.array_equal(flat[kept], flat_weights(model)[kept])


def test_apply_then_remove_matches_masking_by_hand():
    model = net()
    masks = compute_masks(model, 0.4)
    apply_masks(model, masks)
    assert hasattr(model[3], "weight_orig")
    # effective weights are read through the pruning re-parametrisation
    assert int((effective_flat_weights(model) == 0).sum()) == round(0.4 * flat_weights(model).size)
    expected = model[3].weight_orig.detach() * masks["3.weight"]
    make_permanent(model)
    assert torch.equal(model[3].weight.detach(), expected)
    with pytest.raises(PruningLimitsError, match="unknown weights"):
        apply_masks(model, {"9.weight": torch.ones(1, dtype=torch.bool)})


def test_ties_are_broken_by_flat_index():
    model = nn.Sequential(nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -1.0, 2.0], [1.0, 0.5, -0.5]]))
    order = pruning_order(model)
    assert order.tolist() == [4, 5, 0, 1, 3, 2]
    mask = global_magnitude_masks(model, 3)["0.weight"]
    assert mask.tolist() == [[False, True, True], [True, False, False]]


def test_num_to_prune_follows_torch_rules():
    assert num_to_prune(0.5, 5) == round(2.5) == 2  # Python's round, as torch
    assert num_to_prune(7, 10) == 7
    for bad in (11, -1, 1.5, -0.1, True, "half", float("nan"), torch.tensor(0.5)):
        with pytest.raises(PruningLimitsError):
            num_to_prune(bad, 10)


def test_num_to_prune_counts_as_torch_in_the_amount_s_own_precision():
    """torch multiplies and rounds a numpy float32 amount in float32: np.float32(0.3) of 35 is
    10 there, and was 11 here (float64), on 538 of 10 000 (float32 amount, size) pairs."""
    from fractions import Fraction

    from torch.nn.utils.prune import _compute_nparams_toprune

    assert num_to_prune(np.float32(0.3), 35) == _compute_nparams_toprune(np.float32(0.3), 35) == 10
    differed = 0
    for dim in (1, 7, 35, 100, 1000, 2080, 6464, 100_003):
        for k in range(0, 2001):
            for amount in (np.float32(k / 2000), np.float64(k / 2000), k / 2000, np.float16(k / 2000)):
                if dim > 65_504 and isinstance(amount, np.float16):
                    continue  # the float16 product overflows: torch cannot count it (below)
                expected = _compute_nparams_toprune(amount, dim)
                assert num_to_prune(amount, dim) == expected, (dim, amount)
                differed += expected != round(float(amount) * dim)
    assert differed > 0  # the float64 count of before differs on some of these
    assert num_to_prune(Fraction(1, 3), 35) == round(Fraction(35, 3)) == 12  # a raw TypeError before
    assert num_to_prune(np.float16(0.5), 100_000) == 50_000  # float16 overflows to inf: counted in float64
    assert num_to_prune(np.float32(1.0), 2**24 + 3) == 2**24 + 3  # float32 rounds the product up to 2**24 + 4


def test_layerwise_prunes_each_layer_by_the_same_fraction():
    model = net(1)
    sizes = [model[0].weight.numel(), model[3].weight.numel(), model[5].weight.numel()]
    dim = sum(sizes)
    for m in (0, 7, dim // 3, dim // 2, dim - 1, dim):
        masks = compute_masks(model, m, "layerwise")
        pruned = [int((~mask).sum()) for mask in masks.values()]
        assert sum(pruned) == m
        for count, size in zip(pruned, sizes):
            assert abs(count - m * size / dim) <= 1
        # inside a layer the smallest magnitudes go first
        for mask, (_, module) in zip(masks.values(), [(0, model[0]), (3, model[3]), (5, model[5])]):
            w = module.weight.detach().abs()
            if (~mask).any() and mask.any():
                assert float(w[~mask].max()) <= float(w[mask].min())


@pytest.mark.parametrize("criterion", ["channel", "channel+outputs"])
def test_channel_criterion_removes_whole_rows_in_order_of_mean_square(criterion):
    model = net(2)
    layers = [("0.weight", model[0]), ("3.weight", model[3]), ("5.weight", model[5])]
    if criterion == "channel":  # the output rows of the last layer (the classes) stay dense
        layers = layers[:-1]
    groups = []  # (mean square, layer name, row) for every output row of every weight
    for name, module in layers:
        w = module.weight.detach().double().reshape(module.weight.shape[0], -1)
        groups += [(float((w[r] ** 2).mean()), name, r, w.shape[1]) for r in range(w.shape[0])]
    groups.sort()
    removed = 0
    for i in range(6):
        removed += groups[i][3]
        masks = compute_masks(model, removed, criterion)
        # exactly the first i + 1 groups are gone, as whole rows, and nothing else
        assert int(sum((~m).sum() for m in masks.values())) == removed
        for _, name, row, _ in groups[: i + 1]:
            assert not masks[name].reshape(masks[name].shape[0], -1)[row].any()
        if criterion == "channel":
            assert masks["5.weight"].all()
    # structured R(s) is never below unstructured R(s) (THEORY §3: magnitude is optimal)
    r_mag, r_neuron, r_layer = (distance_curve(model, c) for c in ("magnitude", "channel", "layerwise"))
    assert np.all(r_neuron >= r_mag - 1e-12) and np.all(r_layer >= r_mag - 1e-12)
    half = r_mag.size // 2
    assert r_neuron[half] > r_mag[half]


def test_distance_curve_matches_direct_sums():
    model = net(3)
    flat = flat_weights(model)
    dim = flat.size
    curve = distance_curve(model)
    assert curve.shape == (dim + 1,)
    assert curve[dim] == 0.0 and np.isclose(curve[0], np.sum(flat**2), rtol=1e-12)
    assert np.all(np.diff(curve) <= 0)
    sorted_sq = np.sort(flat**2)
    for k in (0, 1, 10, dim // 2, dim - 1, dim):
        # w^k keeps the k largest magnitudes: R_k^2 is the sum of the D - k smallest squares
        assert np.isclose(curve[k], sorted_sq[: dim - k].sum(), rtol=1e-12, atol=0)
        masks = compute_masks(model, dim - k)
        kept = np.concatenate([m.reshape(-1).numpy() for m in masks.values()])
        assert np.isclose(curve[k], np.sum(flat[~kept] ** 2), rtol=1e-12, atol=0)


def test_unknown_criterion():
    with pytest.raises(PruningLimitsError, match="structure must be unstructured, layerwise, neuron, channel or N:M"):
        distance_curve(net(), "random")


class TiedLM(nn.Module):
    """A language model's head tied to its input embedding (GPT-2's lm_head)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.mid, self.head = nn.Embedding(10, 8), nn.Linear(8, 8), nn.Linear(8, 10, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, tokens):
        return self.head(torch.tanh(self.mid(self.emb(tokens))))


class TiedLinears(nn.Module):
    """Two prunable layers sharing one weight."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.bn = nn.Linear(6, 6, bias=False), nn.Linear(6, 6, bias=False), nn.BatchNorm1d(6)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.b(torch.tanh(self.bn(self.a(x))))


@pytest.mark.parametrize("build", [TiedLM, TiedLinears])
def test_a_tied_weight_is_pruned_in_every_use_with_or_without_permanent(build):
    """The analysis counts a shared tensor once, so pruning it zeroes it wherever it is used.
    prune_model(permanent=False) masked only the listed module (the embedding read the dense
    tensor), and make_permanent then pruned the embedding too: the outputs changed by 0.27."""
    torch.manual_seed(0)
    base = build().eval()
    inputs = torch.randint(0, 10, (6,)) if build is TiedLM else torch.randn(5, 6)
    first, second = (base.emb, base.head) if build is TiedLM else (base.a, base.b)
    assert len(prune_model(copy.deepcopy(base), 0.5)) == (2 if build is TiedLM else 1)  # the tensor listed once
    masked = copy.deepcopy(base)
    prune_model(masked, 0.5)
    permanent = copy.deepcopy(base)
    prune_model(permanent, 0.5, permanent=True)
    users = (masked.emb, masked.head) if build is TiedLM else (masked.a, masked.b)
    zeros = [int((module.weight == 0).sum()) for module in users]
    assert zeros[0] == zeros[1] > 0  # the embedding (or the first layer) too: 0 zeros before
    assert torch.equal(users[0].weight_mask, users[1].weight_mask)
    out = masked(inputs).detach()
    assert torch.equal(out, permanent(inputs).detach())
    make_permanent(masked)
    assert torch.equal(masked(inputs).detach(), out)  # folding changes nothing
    kept = (masked.emb, masked.head) if build is TiedLM else (masked.a, masked.b)
    assert kept[0].weight is kept[1].weight and isinstance(kept[0].weight, nn.Parameter)  # still tied
    assert int((kept[0].weight == 0).sum()) == zeros[0]
    assert first.weight is second.weight  # the model given to deepcopy is untouched


def test_make_permanent_keeps_the_network_of_a_tied_head_torch_masked_alone():
    """torch.nn.utils.prune on the head alone: the embedding reads the dense tensor. prune.remove
    wrote the masked product into the shared tensor and so pruned the embedding as well; the
    masked use now gets its own copy first, as model_copy analyses it."""
    torch.manual_seed(0)
    model = TiedLM()
    tokens = torch.randint(0, 10, (6,))
    magnitude = model.head.weight.detach().abs()
    prune.custom_from_mask(model.head, "weight", magnitude > magnitude.median())
    out = model(tokens).detach()
    make_permanent(model)
    assert torch.equal(model(tokens).detach(), out)
    assert int((model.emb.weight == 0).sum()) == 0 and int((model.head.weight == 0).sum()) == 40
    assert model.emb.weight is not model.head.weight
    assert not any(hasattr(m, "weight_mask") for m in model.modules())


def test_a_tied_model_pruned_with_or_without_permanent_has_one_analysis():
    """model_copy of prune_model(permanent=False) must keep the tie that permanent=True keeps:
    untied, the Hessian of the head's use alone differed from the tied one by 0.14."""
    from pruning_limits.hessian import HessianOperator
    from pruning_limits.objective import model_copy
    from pruning_limits.spectrum import dense_hessian

    torch.manual_seed(0)
    base = TiedLM().double()
    data = (torch.randint(0, 10, (64,)), torch.randint(0, 10, (64,)))
    masked, permanent = copy.deepcopy(base), copy.deepcopy(base)
    prune_model(masked, 0.3)
    prune_model(permanent, 0.3, permanent=True)
    copied = model_copy(masked)
    assert copied.emb.weight is copied.head.weight
    np.testing.assert_array_equal(
        dense_hessian(HessianOperator(copied, data)), dense_hessian(HessianOperator(permanent, data))
    )
