import numpy as np
import pytest
import torch
import torch.nn.utils.prune
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pruning_limits import PruningLimitsError
from pruning_limits.objective import (
    batch_std_epsilon,
    evaluate_loss,
    flat_weights,
    loss_gradient,
    iter_batches,
    prunable_parameters,
)


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(1, 2, 3), nn.BatchNorm1d(2), nn.ReLU(), nn.Flatten(), nn.Linear(12, 3)
    ).double()


def test_prunable_are_linear_and_conv_weights_only():
    names = [name for name, _ in prunable_parameters(small_net())]
    assert names == ["0.weight", "4.weight"]
    assert len(prunable_parameters(small_net(), "all")) == 6
    assert [n for n, _ in prunable_parameters(small_net(), ["4.bias"])] == ["4.bias"]
    assert flat_weights(small_net()).shape == (2 * 3 + 12 * 3,)


def test_prunable_errors_are_explained():
    with pytest.raises(PruningLimitsError, match="no prunable weights"):
        prunable_parameters(nn.Sequential(nn.ReLU()))
    with pytest.raises(PruningLimitsError, match="unknown parameter names"):
        prunable_parameters(small_net(), ["nope"])


def test_weight_orig_after_torch_prune():
    net = small_net()
    torch.nn.utils.prune.l1_unstructured(net[4], "weight", amount=0.5)
    assert [n for n, _ in prunable_parameters(net)] == ["0.weight", "4.weight_orig"]


def test_loss_is_exact_full_data_mean_with_uneven_batches():
    net = small_net()
    x = torch.randn(37, 1, 8, dtype=torch.float64)
    y = torch.randint(0, 3, (37,))
    with torch.no_grad():
        net.eval()
        full = float(nn.functional.cross_entropy(net(x), y))
    net.train()
    for data in [(x, y), DataLoader(TensorDataset(x, y), batch_size=10), TensorDataset(x, y)]:
        assert evaluate_loss(net, data) == pytest.approx(full, rel=1e-12)
    assert net.training  # mode restored


def test_batch_std_epsilon_matches_numpy():
    net = small_net()
    x = torch.randn(300, 1, 8, dtype=torch.float64)
    y = torch.randint(0, 3, (300,))
    net.eval()
    with torch.no_grad():
        losses = [float(nn.functional.cross_entropy(net(x[i : i + 128]), y[i : i + 128])) for i in (0, 128, 256)]
    assert batch_std_epsilon(net, (x, y)) == pytest.approx(np.std(losses), rel=1e-12)
    with pytest.raises(PruningLimitsError, match="at least two batches"):
        batch_std_epsilon(net, (x[:100], y[:100]))


@pytest.mark.parametrize(
    "data, message",
    [
        ((torch.zeros(3, 2), torch.zeros(4)), "differ in length"),
        ((torch.zeros(0, 2), torch.zeros(0)), "empty"),
        ((torch.tensor([[float("nan"), 0.0]]), torch.zeros(1)), "NaN"),
        ("train.npz", "must be a DataLoader"),
    ],
)
def test_bad_data_is_explained(data, message):
    with pytest.raises(PruningLimitsError, match=message):
        list(iter_batches(data))


def test_loss_gradient_matches_autograd_on_full_data():
    net = small_net()
    x = torch.randn(37, 1, 8, dtype=torch.float64)
    y = torch.randint(0, 3, (37,))
    net.eval()
    loss = nn.functional.cross_entropy(net(x), y)
    expected = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, [net[0].weight, net[4].weight])])
    got = loss_gradient(net, (x, y), batch_size=10)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-12, atol=1e-15)
