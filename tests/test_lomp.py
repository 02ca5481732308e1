import copy
import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from pruning_limits import PruningLimitsError
from pruning_limits.data import load_data, make_bundle
from pruning_limits.lomp import accuracy, sweep, train
from pruning_limits.masks import prune_model
from pruning_limits.models import build_model
from pruning_limits.objective import batch_std_epsilon, evaluate_loss, flat_weights


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


@pytest.fixture(scope="module")
def small_trained(digits):
    """A digits MLP with 4 hidden units (D = 296), l1-trained for 30 epochs."""
    model = build_model("mlp:4", digits, seed=0)
    train(model, digits, epochs=30, seed=0)
    return model


def brute_force(model, data, epsilon):
    """Train loss and test accuracy after pruning every count m = 0..D by torch's global pruning."""
    dim = flat_weights(model).size
    losses, accs = [], []
    for m in range(dim + 1):
        pruned = copy.deepcopy(model)
        prune_model(pruned, m)
        losses.append(evaluate_loss(pruned, data.train))
        accs.append(accuracy(pruned, data.test))
    return np.array(losses), np.array(accs)


def test_digits_mlp_defaults_reach_accuracy_and_sparse_weights(digits):
    model = build_model("mlp", digits, seed=0)
    history = train(model, digits, seed=0)
    assert history.test_accuracy[-1] >= 0.95, history.test_accuracy[-1]
    # l1 training leaves many weights near zero (THEORY §6: the theory needs l1-trained nets)
    assert np.mean(np.abs(flat_weights(model)) < 1e-3) > 0.5
    assert len(history.loss) == len(history.l1) == history.settings["epochs"]
    assert history.loss[-1] < history.loss[0]
    json.dumps(history.to_dict())


def test_training_is_reproducible_for_a_seed():
    data = load_data("synthetic:n=200,test=50,d=5")
    runs = []
    for seed in (0, 0, 1):
        model = build_model("mlp:8", data, seed=0)
        history = train(model, data, epochs=3, seed=seed, optimizer="adam", lr=1e-2)
        runs.append((flat_weights(model), history.loss))
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    assert not np.array_equal(runs[0][0], runs[2][0])
    # a DataLoader is read once, in order, into the same tensors: same training run
    model = build_model("mlp:8", data, seed=0)
    loader = DataLoader(TensorDataset(*data.train), batch_size=33)
    train(model, loader, epochs=3, seed=0, optimizer="adam", lr=1e-2)
    assert np.array_equal(flat_weights(model), runs[0][0])


def test_training_with_dropout_is_reproducible_and_leaves_the_global_generator_alone():
    """Dropout draws from torch's global generator: train and finetune_masked seed it for the
    run and restore it after (unseeded before 2026-12-05: two runs of one command differed)."""
    from torch import nn

    from pruning_limits.lomp import finetune_masked

    data = load_data("synthetic:n=200,test=50,d=5")

    def run(global_seed: int) -> tuple[np.ndarray, np.ndarray]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))
        torch.manual_seed(global_seed)  # whatever the caller's generator holds
        state = torch.get_rng_state()
        train(model, data, epochs=2, seed=0, optimizer="adam", lr=1e-2)
        trained = flat_weights(model)
        finetune_masked(model, data, torch.ones(trained.size, dtype=torch.bool), epochs=1, seed=0)
        assert torch.equal(torch.get_rng_state(), state)
        return trained, flat_weights(model)

    first, second = run(1), run(2)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])


def test_progress_goes_to_stderr_only(capsys):
    data = load_data("synthetic:n=64,test=8,d=4")
    model = build_model("mlp:4", data, seed=0)
    train(model, data, epochs=2, progress=True)
    sweep(model, data, epsilon=0.1, progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "train" in captured.err and "sweep" in captured.err
    train(model, data, epochs=1)
    assert capsys.readouterr().err == ""


def test_l1_penalises_prunable_weights_only():
    data = load_data("synthetic:n=64,test=8,d=4")
    model = build_model("mlp:6", data, seed=0)
    biases = [model[1].bias.detach().clone(), model[3].bias.detach().clone()]
    before = np.abs(flat_weights(model)).sum()
    # zero data loss: only the l1 term moves parameters
    history = train(model, data, l1=1e-2, epochs=5, loss_fn=lambda out, y: 0.0 * out.sum(), optimizer="sgd", lr=0.1)
    assert torch.equal(model[1].bias, biases[0]) and torch.equal(model[3].bias, biases[1])
    assert np.abs(flat_weights(model)).sum() < before
    assert history.l1[-1] == pytest.approx(1e-2 * np.abs(flat_weights(model)).sum(), rel=1e-5)
    assert history.train_accuracy[-1] is None


def _running(module):
    """The weight ``module`` runs: ``weight_orig * weight_mask`` where torch.nn.utils.prune masked
    it (computed here: the module's own ``weight`` is refreshed only by its next forward)."""
    if hasattr(module, "weight_orig"):
        return (module.weight_orig * module.weight_mask).detach()
    return module.weight.detach()


def _effective_l1(model):
    """``Σ|w|`` of the weights the network runs, over its Linear layers."""
    return sum(float(_running(m).abs().sum()) for m in model.modules() if isinstance(m, torch.nn.Linear))


def test_l1_on_a_torch_pruned_model_penalises_the_weights_that_run():
    """A review: on a model masked with torch.nn.utils.prune the penalty covered ``weight_orig``
    whole, so history.l1 recorded 7.004 λ for an effective Σ|w| of 5.737 λ and the l1 shrinkage
    moved pruned entries the network never reads. Oracle: the same network with the mask folded
    in (plain weights, pruned entries 0, whose l1 subgradient is 0) trains to the same weights and
    records the same penalty."""
    from torch.nn.utils import prune

    data = load_data("synthetic:n=64,test=8,d=4")

    def pruned_mlp():  # (a pruned module's computed weight cannot be deep-copied)
        model = build_model("mlp:6", data, seed=0)
        prune.l1_unstructured(model[1], "weight", amount=0.5)
        return model

    masked, folded = pruned_mlp(), pruned_mlp()
    prune.remove(folded[1], "weight")
    mask = masked[1].weight_mask.bool()
    assert int((~mask).sum()) == 12  # half of the 6 x 4 first layer
    assert torch.equal(folded[1].weight, _running(masked[1]))
    start = _effective_l1(masked)
    assert start == pytest.approx(5.7371, abs=1e-4)  # the reviewer's numbers: 5.737 effective, 7.004 with the pruned entries
    assert float(masked[1].weight_orig.detach().abs().sum() + masked[3].weight.detach().abs().sum()) == pytest.approx(7.0042, abs=1e-4)
    pruned_before = masked[1].weight_orig.detach()[~mask].clone()
    zero_loss = lambda out, y: 0.0 * out.sum()  # noqa: E731  only the l1 term moves parameters
    # tiny steps: the recorded penalty is the starting one
    history = train(pruned_mlp(), data, l1=1e-2, epochs=1, lr=1e-9, loss_fn=zero_loss)
    assert history.l1[-1] == pytest.approx(1e-2 * start, rel=1e-6)
    # real steps: the pruned entries of weight_orig stay, and masked trains as its folded twin
    history = train(masked, data, l1=1e-2, epochs=5, lr=0.1, loss_fn=zero_loss)
    twin = train(folded, data, l1=1e-2, epochs=5, lr=0.1, loss_fn=zero_loss)
    assert torch.equal(masked[1].weight_orig.detach()[~mask], pruned_before)
    assert torch.equal(_running(masked[1]), folded[1].weight.detach())
    assert torch.equal(masked[3].weight.detach(), folded[3].weight.detach())
    assert history.l1 == twin.l1
    assert _effective_l1(masked) < start
    assert history.l1[-1] == pytest.approx(1e-2 * _effective_l1(masked), rel=1e-5)


def test_l1_on_a_torch_pruned_model_with_data_loss_leaves_the_pruned_entries_alone(digits):
    """With the data loss as well (its gradient on a pruned entry is 0 through the mask), the
    pruned entries of weight_orig end where they started and history.l1 is λ Σ|weight_orig * mask|."""
    model = build_model("mlp:8", digits, seed=0)
    prune_model(model, 0.6, permanent=False)
    masks = [m.weight_mask.bool() for m in model.modules() if isinstance(m, torch.nn.Linear)]
    origs = [m.weight_orig for m in model.modules() if isinstance(m, torch.nn.Linear)]
    before = [w.detach()[~k].clone() for w, k in zip(origs, masks)]
    history = train(model, digits, l1=1e-3, epochs=2, seed=0)
    for w, k, b in zip(origs, masks, before):
        assert torch.equal(w.detach()[~k], b)
    expected = 1e-3 * sum(float((w.detach() * k).abs().sum()) for w, k in zip(origs, masks))
    assert history.l1[-1] == pytest.approx(expected, rel=1e-6)
    assert history.l1[-1] < 1e-3 * sum(float(w.detach().abs().sum()) for w in origs)


def test_l1_on_a_weight_one_use_reads_unmasked_penalises_all_of_it():
    """A tensor masked in one module but read whole by another: every entry runs, so every entry counts."""
    from torch.nn.utils import prune

    data = load_data("synthetic:n=64,test=8,d=4")
    model = torch.nn.Sequential(torch.nn.Linear(4, 4, bias=False), torch.nn.Tanh(), torch.nn.Linear(4, 4, bias=False),
                                torch.nn.Tanh(), torch.nn.Linear(4, 1))
    model[2].weight = model[0].weight
    prune.l1_unstructured(model[2], "weight", amount=0.5)
    shared = model[0].weight
    assert model[2].weight_orig is shared
    zero_loss = lambda out, y: 0.0 * out.sum()  # noqa: E731
    history = train(model, data, l1=1e-2, epochs=1, lr=1e-9, loss_fn=zero_loss)
    expected = float(shared.detach().abs().sum() + model[4].weight.detach().abs().sum())
    assert history.l1[-1] == pytest.approx(1e-2 * expected, rel=1e-6)


def test_train_validates_arguments(digits):
    model = build_model("mlp:4", digits)
    for kwargs, message in [
        ({"l1": -1.0}, "l1 must be"),
        ({"epochs": 0}, "epochs must be"),
        ({"optimizer": "lbfgs"}, "optimizer must be"),
        ({"lr": 0.0}, "lr must be"),
        ({"weight_decay": float("inf")}, "weight_decay must be a finite number >= 0"),
        ({"l1": "1e-3"}, "l1 must be a finite number >= 0, got '1e-3' \\(str\\)"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"seed": 2**64}, "seed must be an integer in \\[0, 2\\*\\*64\\)"),
    ]:
        with pytest.raises(PruningLimitsError, match=message):
            train(model, digits, **kwargs)


def test_bisection_limits_equal_brute_force_scan(digits, small_trained):
    epsilon = 0.01
    losses, accs = brute_force(small_trained, digits, epsilon)
    dim = losses.size - 1
    threshold = losses[0] + epsilon
    first_failure = int(np.argmax(losses > threshold))
    assert first_failure > 0
    result = sweep(small_trained, digits, epsilon=epsilon)
    assert result.dim == dim == 296
    # loss criterion: the first crossing over every k, found from a 41-point grid by bisection
    assert result.limit_by_loss * dim == first_failure - 1
    assert result.evaluations < 60
    # accuracy criterion: bisection lands on a crossing past the last passing grid point
    m_acc = round(result.limit_by_accuracy * dim)
    assert accs[m_acc] >= accs[0] > accs[m_acc + 1]
    passing_grid = result.num_pruned[result.test_accuracy >= result.dense_accuracy]
    assert m_acc >= passing_grid.max()
    # with every k on the grid both limits are exactly the brute-force definitions
    full = sweep(small_trained, digits, epsilon=epsilon, sparsities=np.arange(dim + 1) / dim)
    assert full.limit_by_loss * dim == first_failure - 1
    assert full.limit_by_accuracy * dim == np.max(np.nonzero(accs >= accs[0])[0])
    np.testing.assert_allclose(full.train_loss, losses, rtol=1e-6)


def test_sweep_is_reproducible_and_leaves_model_alone(digits, small_trained):
    before = {k: v.clone() for k, v in small_trained.state_dict().items()}
    a = sweep(small_trained, digits, epsilon="batch-std", sparsities=[0.1, 0.5, 0.9])
    b = sweep(small_trained, digits, epsilon="batch-std", sparsities=[0.9, 0.5, 0.1])
    for key, value in small_trained.state_dict().items():
        assert torch.equal(value, before[key])
    assert a.to_dict() == b.to_dict()
    assert a.epsilon == batch_std_epsilon(small_trained, digits.train)
    assert list(a.num_pruned) == [0, round(0.1 * 296), round(0.5 * 296), round(0.9 * 296)]
    assert a.dense_loss == pytest.approx(evaluate_loss(small_trained, digits.train))
    assert a.dense_accuracy == accuracy(small_trained, digits.test)
    json.dumps(a.to_dict())
    # the curve is the loss of the torch-pruned model
    pruned = copy.deepcopy(small_trained)
    prune_model(pruned, 0.5)
    assert a.train_loss[2] == pytest.approx(evaluate_loss(pruned, digits.train), rel=1e-6)


def test_sweep_other_criteria_and_regression():
    data = load_data("synthetic:n=200,test=50,d=5")
    model = build_model("mlp:8", data, seed=0)
    train(model, data, epochs=20, seed=0)
    for criterion in ("global", "layerwise", "neuron"):
        result = sweep(model, data, epsilon=0.05, criterion=criterion)
        assert result.test_accuracy is None and result.limit_by_accuracy is None
        assert 0.0 <= result.limit_by_loss <= 1.0
        assert result.train_loss[0] == result.dense_loss
    with pytest.raises(PruningLimitsError, match="epsilon must be"):
        sweep(model, data, epsilon="max")
    with pytest.raises(PruningLimitsError, match="sparsities must be"):
        sweep(model, data, epsilon=0.1, sparsities=[1.5])
    train_only = make_bundle(data.train)
    assert sweep(model, train_only, epsilon=0.1).test_loss is None


def test_a_structured_sweep_stops_at_the_structures_own_counts(digits, small_trained):
    """Without allowed=, neuron and N:M sweeps evaluate whole groups and the pattern's rounds only,
    as with allowed=model_order(...).allowed (it swept every count, up to the classifier rows)."""
    from pruning_limits.structures import model_order

    for criterion in ("neuron", "2:4"):
        plan = model_order(small_trained, criterion)
        own = sweep(small_trained, digits, epsilon=0.05, criterion=criterion)
        given = sweep(small_trained, digits, epsilon=0.05, criterion=criterion, allowed=plan.allowed)
        assert own.to_dict() == given.to_dict()
        assert set(own.num_pruned.tolist()) <= set(plan.allowed.tolist())
        assert round(own.limit_by_loss * own.dim) in set(plan.allowed.tolist())


ACCURACY_TARGETS = [  # digits' mlp at 0.95: test_digits_mlp_defaults_reach_accuracy_and_sparse_weights (not slow)
    ("digits", "cnn", 0.97),
    ("mnist1d", "cnn1d", 0.85),
    ("mnist1d", "mlp", 0.60),
]


@pytest.mark.slow
@pytest.mark.parametrize("data_spec, model_spec, target", ACCURACY_TARGETS)
def test_default_training_reaches_accuracy_targets(data_spec, model_spec, target):
    data = load_data(data_spec)
    model = build_model(model_spec, data, seed=0)
    history = train(model, data, seed=0)
    assert history.test_accuracy[-1] >= target, (data_spec, model_spec, history.test_accuracy[-1])


# ----------------------------------------------------------------------------- re-training with a fixed mask


def test_finetune_masked_keeps_pruned_weights_at_zero_and_lowers_the_loss(digits, small_trained):
    from pruning_limits.lomp import finetune_masked
    from pruning_limits.masks import pruning_order

    model = copy.deepcopy(small_trained)
    dim = flat_weights(model).size
    keep = torch.ones(dim, dtype=torch.bool)
    keep[torch.from_numpy(pruning_order(model, "magnitude"))[: dim // 2]] = False
    pruned = copy.deepcopy(model)
    prune_model(pruned, dim // 2)
    finetune_masked(model, digits, keep, epochs=3, seed=0)
    w = flat_weights(model)
    assert np.all(w[~keep.numpy()] == 0) and np.all(w[keep.numpy()] != 0)
    assert evaluate_loss(model, digits.train) < evaluate_loss(pruned, digits.train)


def test_finetune_masked_refuses_bad_arguments_in_one_line(digits, small_trained):
    """`finetune_masked(..., epochs=-1)` returned silently without training, and a mask of the
    wrong length failed with torch's `split_with_sizes expects split_sizes to sum exactly to 5`."""
    from pruning_limits.lomp import finetune_masked

    model = copy.deepcopy(small_trained)
    before = flat_weights(model)
    keep = torch.ones(before.size, dtype=torch.bool)
    for bad, match in (({"epochs": -1}, r"^epochs must be an integer >= 1, got -1 \(int\)$"),
                       ({"epochs": 0}, r"^epochs must be an integer >= 1, got 0"),
                       ({"epochs": 1, "lr": float("nan")}, r"^lr must be a finite number > 0, got nan"),
                       ({"epochs": 1, "batch_size": 0}, r"^batch_size must be an integer >= 1, got 0"),
                       ({"epochs": 1, "seed": -1}, r"^seed must be an integer >= 0, got -1")):
        with pytest.raises(PruningLimitsError, match=match):
            finetune_masked(model, digits, keep, **bad)
    with pytest.raises(PruningLimitsError, match=rf"^keep must be a flat mask of {before.size} entries, .* got shape \(5,\)$"):
        finetune_masked(model, digits, keep[:5], epochs=1)
    assert np.array_equal(flat_weights(model), before)


def test_retrained_limit_brackets_and_is_at_least_the_one_shot_limit(digits, small_trained):
    from pruning_limits.lomp import retrained_limit

    eps = batch_std_epsilon(small_trained, digits.train)
    one_shot = sweep(small_trained, digits, epsilon=eps).limit_by_loss
    result = retrained_limit(small_trained, digits, epsilon=eps, epochs=2, seed=0, resolution=0.05)
    assert result.failed_at - result.limit <= 0.05
    passed = [s for s, _, ok in result.tried if ok]
    failed = [s for s, _, ok in result.tried if not ok]
    assert result.limit == max(passed, default=0.0) and result.failed_at == min(failed, default=1.0)
    # every tried sparsity's verdict is its loss against L* + ε
    assert all(ok == (loss <= result.dense_loss + eps) for _, loss, ok in result.tried)
    # re-training the kept weights can only help: up to the bracket's width, at least the one-shot limit
    assert result.limit >= one_shot - 0.05
    again = retrained_limit(small_trained, digits, epsilon=eps, epochs=2, seed=0, resolution=0.05)
    assert again.tried == result.tried


def test_a_non_finite_dense_loss_is_refused_not_measured_as_full_sparsity(digits, small_trained):
    """Weights scaled by 1e20: the float32 loss is NaN, every check failed, and the search read
    the grid's last count, a measured limit of 100 %."""
    from pruning_limits._search import first_crossing

    overflowing = copy.deepcopy(small_trained)
    with torch.no_grad():
        for name, param in overflowing.named_parameters():
            if name.endswith("weight"):
                param.mul_(1e20)
    assert not np.isfinite(evaluate_loss(overflowing, digits.train))
    with pytest.raises(PruningLimitsError, match=r"unpruned model's training loss is nan in its dtype \(torch.float32\)"):
        sweep(overflowing, digits, epsilon=0.1)
    with pytest.raises(PruningLimitsError, match="fails already at 0 weights pruned"):
        first_crossing(np.array([0, 5, 10]), lambda m: False)
    assert first_crossing(np.array([0, 5, 10]), lambda m: m <= 7) == 7


def test_check_trained_refuses_a_run_that_diverged(digits):
    """`train --lr 50` wrote a bundle at loss 22.8 (and `predict` then said 'in regime', 100 %);
    `--l1 1e300` wrote NaN weights. check_trained is what `train` now calls before writing. A
    strong λ that pulls the network to a constant prediction is not divergence."""
    import math

    from pruning_limits.lomp import DIVERGED_SLACK, constant_prediction_loss, check_trained

    model = build_model("mlp:4", digits, seed=0)
    start = evaluate_loss(model, digits.train)
    diverged = copy.deepcopy(model)
    train(diverged, digits.train, l1=0.0, epochs=2, lr=50.0, seed=0)
    for reference in (start, None):  # a fresh start, or a fine-tune judged against the constant prediction
        with pytest.raises(PruningLimitsError, match="training diverged: the training loss rose to"):
            check_trained(diverged, digits.train, start_loss=reference)
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken[1].weight[0, 0] = float("nan")
    with pytest.raises(PruningLimitsError, match=r"training diverged: 1.weight holds NaN"):
        check_trained(broken, digits.train)
    learned = copy.deepcopy(model)
    train(learned, digits.train, l1=1e-4, epochs=3, seed=0)
    assert check_trained(learned, digits.train, start_loss=start) == evaluate_loss(learned, digits.train) < start
    squeezed = copy.deepcopy(model)  # λ = 1: pulled to (nearly) a constant prediction, above its start on some seeds
    train(squeezed, digits.train, l1=1.0, epochs=3, seed=0)
    constant = constant_prediction_loss(digits.train[1])
    assert evaluate_loss(squeezed, digits.train) <= DIVERGED_SLACK * constant
    check_trained(squeezed, digits.train, start_loss=min(start, constant) * 0.5)
    # the constant prediction's loss: the labels' entropy, the targets' variance
    assert constant_prediction_loss(torch.tensor([0, 0, 1, 1])) == pytest.approx(math.log(2))
    assert constant_prediction_loss(torch.tensor([[1.0, 0.0], [3.0, 4.0]])) == pytest.approx((1.0 + 4.0) / 2)
    # the squeezed network is a constant prediction, the learned one is not (lomp.collapsed)
    from pruning_limits.lomp import COLLAPSE_FRACTION, collapsed

    assert collapsed(evaluate_loss(squeezed, digits.train), constant)
    fitted = copy.deepcopy(model)  # `learned` is barely off its start after 3 epochs
    train(fitted, digits.train, l1=1e-4, epochs=30, seed=0)
    assert not collapsed(evaluate_loss(fitted, digits.train), constant)
    assert collapsed(COLLAPSE_FRACTION * 2.0, 2.0) and not collapsed(0.999 * COLLAPSE_FRACTION * 2.0, 2.0)
    assert not collapsed(float("nan"), 2.0) and not collapsed(1.0, 0.0)  # constant targets: nothing to learn


def test_a_last_batch_of_one_sample_is_folded_so_batchnorm_trains():
    """`train` on a BatchNorm1d model crashed with a traceback ("Expected more than 1 value per
    channel when training") when the training samples were 1 more than a multiple of the batch
    size: the last mini-batch held one sample. It is folded into the batch before it."""
    from torch import nn

    from pruning_limits.lomp import batches_per_epoch, finetune_masked, mini_batches

    perm = torch.arange(9)
    assert [len(b) for b in mini_batches(perm, 4)] == [4, 5] and torch.equal(torch.cat(mini_batches(perm, 4)), perm)
    assert [len(b) for b in mini_batches(torch.arange(10), 4)] == [4, 4, 2]  # any other rest is left as it was
    assert [len(b) for b in mini_batches(torch.arange(1), 4)] == [1]  # one sample in all: nothing to fold into
    assert [batches_per_epoch(n, 4) for n in (1, 8, 9, 10)] == [1, 2, 2, 3]
    # batch size 1 leaves nothing over: its batches stay one sample each (a review saw [0], [1], [2], [3, 4])
    assert [len(b) for b in mini_batches(torch.arange(5), 1)] == [1] * 5 and batches_per_epoch(5, 1) == 5
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(9, 5, generator=g), torch.randint(0, 3, (9,), generator=g)
    model = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    history = train(model, (x, y), l1=1e-3, epochs=2, batch_size=4, seed=0)
    assert len(history.loss) == 2 and all(np.isfinite(history.loss))
    # an epoch takes the folded batches (the cosine schedule counts them: batches_per_epoch)
    optimizer_steps = []
    model2 = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    model2.register_forward_pre_hook(lambda module, args: optimizer_steps.append(len(args[0])) if module.training else None)
    train(model2, (x, y), epochs=1, batch_size=4, seed=0)
    assert optimizer_steps == [4, 5]
    finetune_masked(model, (x, y), torch.ones(5 * 6 + 6 * 3, dtype=torch.bool), epochs=1, batch_size=4)


def test_a_divergence_names_lambda_as_well_as_the_learning_rate(digits):
    """`train --l1 1000` diverged with 'lower the learning rate (--lr)' alone."""
    from pruning_limits.lomp import check_trained

    model = build_model("mlp:4", digits, seed=0)
    start = evaluate_loss(model, digits.train)
    train(model, digits.train, l1=1000.0, epochs=1, seed=0)
    with pytest.raises(PruningLimitsError, match=r"lower the learning rate \(--lr\) or λ \(--l1, here 1000\)$"):
        check_trained(model, digits.train, start_loss=start, l1=1000.0)
    # a λ the path chose is not lowered but pinned (a review: 'or λ (--l1, here 0.0001)' under --l1 auto)
    with pytest.raises(PruningLimitsError, match=r"lower the learning rate \(--lr\), or pin a λ below the path's 1000 with --l1 X$"):
        check_trained(model, digits.train, start_loss=start, l1=1000.0, l1_chosen=True)
    plain = build_model("mlp:4", digits, seed=0)
    train(plain, digits.train, l1=0.0, epochs=2, lr=50.0, seed=0)
    with pytest.raises(PruningLimitsError, match=r"lower the learning rate \(--lr\)$"):  # λ = 0: nothing to lower
        check_trained(plain, digits.train, start_loss=start, l1=0.0)
