"""The fraction ``s₀`` of weights already exactly zero reaches every command's trust verdict.

A review: ``validate --structure`` computed ``s₀`` from ``loaded.model`` apart from the prediction
(on a ``torch.nn.utils.prune``-masked model that read ``weight_orig``, not the masked weights the
prediction used) and its JSON record did not carry it; no test ran a command on a network with
exact zeros. Tiny settings (an 8-unit MLP on digits, 3 epochs, 12 Lanczos steps × 2 probes).

The masked case is a whole pickled module holding ``weight_orig``/``weight_mask`` (read with
``--trust-checkpoint``): the loaders refuse a state_dict with those keys, asking for
``prune.remove`` first (checkpoint.py), so a masked network reaches the commands only as a module.
A second review found the tests ran ``prune``'s output only (zeros stored in the weights, where
``weight_orig`` and the masked weights agree) and nothing covered ``predict --plot``'s ``s₀``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pruning_limits.cli import cli
from pruning_limits.regime import KNEE_MIN_SPARSITY

SLQ = ["--iterations", "12", "--probes", "2"]


def ok(*args: object) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr, result.exception)
    return result.stdout


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    """A λ = 0 MLP magnitude-pruned to 50 % by ``prune``, and its zero counts per tensor (the oracle)."""
    folder = tmp_path_factory.mktemp("zeros")
    ok("train", "--model", "mlp:8", "--data", "digits", "--epochs", "3", "--l1", "0", "-o", folder / "net.pt")
    ok("prune", folder / "net.pt", "--sparsity", "0.5", "-o", folder / "p50.pt")
    state = torch.load(folder / "p50.pt", weights_only=True)["state_dict"]
    zeros = {name: (int((state[name] == 0).sum()), state[name].numel()) for name in ("1.weight", "3.weight")}
    return folder / "p50.pt", zeros


def test_predict_and_validate_structure_carry_the_zero_fraction_to_the_verdict(pruned):
    path, zeros = pruned
    count, dim = (sum(v) for v in zip(*zeros.values()))
    assert dim == 592 and count == 296  # prune --sparsity 0.5 of the 592 prunable weights
    # ε = 1e-9: s* lies just above the zeros, where the guard speaks (the knee alone read it sharp)
    predicted = json.loads(ok("predict", path, *SLQ, "--epsilon", "1e-9", "--json"))
    assert predicted["zero_fraction"] == count / dim == 0.5
    assert 0.5 <= predicted["sparsity"] < 0.5 + KNEE_MIN_SPARSITY
    reason = predicted["trust"]["reason"]
    assert predicted["trust"]["level"] == "outside the regime"
    assert "is less than 6.26 points above the 50.0 % of weights already zero (s₀)" in reason, reason
    validated = json.loads(ok("validate", path, *SLQ, "--epsilon", "1e-9", "--structure", "neuron", "--json"))
    assert validated["network_zero_fraction"] == 0.5
    # equal by construction: one spectrum pipeline (_pipeline.watched_spectrum, same seed and
    # settings), the gradient of a float64 copy of the same weights over the same data
    # (loss_gradient), the same ε and η, into predict_from_spectrum
    assert validated["network_sparsity"] == predicted["sparsity"]
    assert validated["trust"]["level"] == "outside the regime"
    assert "points above the 50.0 % of weights already zero (s₀)" in validated["trust"]["reason"], validated["trust"]
    assert "the unstructured s*" in validated["trust"]["reason"]


def test_the_zero_fraction_is_over_the_selected_weights(pruned):
    """--params 1.weight: s₀ counts the zeros of that tensor alone, in predict and validate --structure."""
    path, zeros = pruned
    count, dim = zeros["1.weight"]
    assert 0 < count < dim and count / dim != 0.5  # global pruning left this tensor a share of its own
    predicted = json.loads(ok("predict", path, *SLQ, "--params", "1.weight", "--json"))
    assert predicted["dim"] == dim and predicted["zero_fraction"] == count / dim
    validated = json.loads(ok("validate", path, *SLQ, "--params", "1.weight", "--structure", "neuron", "--json"))
    assert validated["network_zero_fraction"] == count / dim


@pytest.fixture(scope="module")
def masked(pruned):
    """The λ = 0 MLP masked by ``torch.nn.utils.prune.l1_unstructured`` (60 % of each layer, not folded),
    saved as a whole module: ``weight_orig`` holds no zeros, the network that runs 355 of 592."""
    from torch import nn
    from torch.nn.utils import prune

    net = pruned[0].parent / "net.pt"
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10))
    model.load_state_dict(torch.load(net, weights_only=True)["state_dict"])
    for layer in (model[1], model[3]):
        prune.l1_unstructured(layer, "weight", amount=0.6)
    state = model.state_dict()
    assert {"1.weight_orig", "1.weight_mask", "3.weight_orig", "3.weight_mask"} <= set(state)
    assert int((state["1.weight_orig"] == 0).sum()) == int((state["3.weight_orig"] == 0).sum()) == 0
    path = net.parent / "masked_module.pt"
    torch.save(model, path)
    return path, model


def test_a_torch_prune_masked_module_gives_the_masked_zero_fraction(masked, monkeypatch):
    """s₀ of validate --structure and of predict --plot's fixed-point figure are the masked weights'
    (355 of 592 zero), not weight_orig's (none zero): what the prediction itself used."""
    from pruning_limits import report
    from pruning_limits.limits import magnitude_distance_curve, zero_fraction
    from pruning_limits.objective import flat_weights, model_copy

    path, model = masked
    s0 = (round(0.6 * 512) + round(0.6 * 80)) / 592
    running = flat_weights(model_copy(model))
    assert zero_fraction(magnitude_distance_curve(running)) == s0 and flat_weights(model).min() != 0 != flat_weights(model).max()
    trust = ["--trust-checkpoint", "--data", "digits"]
    predicted = json.loads(ok("predict", path, *trust, *SLQ, "--epsilon", "1e-9", "--json"))
    assert predicted["zero_fraction"] == s0
    validated = json.loads(ok("validate", path, *trust, *SLQ, "--epsilon", "1e-9", "--structure", "neuron", "--json"))
    assert validated["network_zero_fraction"] == s0
    assert f"points above the {100 * s0:.1f} % of weights already zero (s₀)" in validated["trust"]["reason"]
    seen = []
    record = report.fixed_point_record

    def spy(weights, *args, **kwargs):
        seen.append(weights)
        return record(weights, *args, **kwargs)

    monkeypatch.setattr(report, "fixed_point_record", spy)
    ok("predict", path, *trust, *SLQ, "--epsilon", "1e-9", "--plot", path.parent / "fixed_point.png")
    assert len(seen) == 1 and (path.parent / "fixed_point.png").stat().st_size > 0
    np.testing.assert_array_equal(seen[0], running)  # the figure's weights: masked, as the prediction's
    assert zero_fraction(magnitude_distance_curve(seen[0])) == s0
