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
    for bad in (11, -1, 1.5, -0.1, True, "half"):
        with pytest.raises(PruningLimitsError):
            num_to_prune(bad, 10)


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
