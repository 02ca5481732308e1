"""The regularisation path (pruning_limits.regpath): the rule on constructed paths, reproducibility, warm starts."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from pruning_limits import PruningLimitsError
from pruning_limits.data import make_bundle
from pruning_limits.lomp import train
from pruning_limits.models import build_model
from pruning_limits.objective import evaluate_loss, flat_weights
from pruning_limits.regpath import (
    ACCURACY_TOLERANCE,
    FRESH_START,
    GRID_FACTOR,
    LOSS_TOLERANCE,
    acceptable,
    choose_l1,
    default_grid,
    l1_path,
    reference_sparsity,
    stronger_l1,
    tolerance_for,
    train_auto,
    validation_split,
)
from pruning_limits.limits import magnitude_distance_curve

GRID = [1e-4, 1e-3, 1e-2]
SHORT = {"grid": GRID, "warmup_epochs": 2, "path_epochs": 1}


@pytest.fixture(scope="module")
def blobs():
    """Four Gaussian blobs in 6 dimensions: 400 training, 100 test samples."""
    g = torch.Generator().manual_seed(0)
    centres = 3 * torch.randn(4, 6, generator=g)
    y = torch.randint(0, 4, (500,), generator=g)
    x = centres[y] + torch.randn(500, 6, generator=g)
    return make_bundle((x[:400], y[:400]), (x[400:], y[400:]), spec="blobs")


# ----------------------------------------------------------------------------- the rule (pure function)


def test_rule_picks_the_largest_lambda_within_tolerance_of_the_best():
    lams = [1e-4, 2e-4, 4e-4, 8e-4, 1.6e-3, 3.2e-3]
    acc = [0.90, 0.95, 0.960, 0.955, 0.949, 0.80]
    # best 0.96; within 0.01: 0.95, 0.96, 0.955 (0.949 is 0.011 below) -> the largest λ among them is 8e-4
    assert choose_l1(lams, acc, higher_is_better=True, tolerance=0.01) == 3
    assert acceptable(acc, higher_is_better=True, tolerance=0.01).tolist() == [False, True, True, True, False, False]
    # a wider tolerance admits 1.6e-3; zero tolerance only the best
    assert choose_l1(lams, acc, higher_is_better=True, tolerance=0.012) == 4
    assert choose_l1(lams, acc, higher_is_better=True, tolerance=0.0) == 2
    # the order of the path does not matter, only λ
    perm = [5, 2, 0, 4, 1, 3]
    assert perm[choose_l1(np.array(lams)[perm], np.array(acc)[perm], higher_is_better=True, tolerance=0.01)] == 3


def test_rule_on_losses_and_missing_values():
    lams = [1e-4, 1e-3, 1e-2, 1e-1]
    loss = [0.50, 0.40, 0.44, np.nan]
    # best 0.40, tolerance 0.05 absolute: 0.44 passes, NaN never
    assert choose_l1(lams, loss, higher_is_better=False, tolerance=0.05) == 2
    assert choose_l1(lams, loss, higher_is_better=False, tolerance=0.03) == 1
    with pytest.raises(PruningLimitsError, match="no finite value"):
        choose_l1(lams, [np.nan] * 4, higher_is_better=False, tolerance=0.1)
    with pytest.raises(PruningLimitsError, match="differ in shape"):
        choose_l1(lams[:3], loss, higher_is_better=False, tolerance=0.1)


def test_rule_refuses_a_negative_or_nan_tolerance_in_one_line():
    """A tolerance of NaN or -1 (documented ≥ 0, unchecked) failed with numpy's 'attempt to get
    argmax of an empty sequence'; inf, every finite metric acceptable, stays allowed."""
    for bad in (float("nan"), -1, -0.01, "0.01", True):
        with pytest.raises(PruningLimitsError, match=r"^tolerance must be a number >= 0 \(inf allowed\), got "):
            choose_l1([1, 2], [0.5, 0.6], higher_is_better=True, tolerance=bad)
    assert choose_l1([1, 2, 3], [0.9, 0.1, np.nan], higher_is_better=True, tolerance=float("inf")) == 1


def test_tolerances_are_one_point_of_accuracy_or_of_r2():
    assert tolerance_for(torch.tensor([0, 1, 2])) == ACCURACY_TOLERANCE == 0.01
    y = torch.tensor([[1.0], [3.0]])  # variance 1
    assert tolerance_for(y) == pytest.approx(LOSS_TOLERANCE * 1.0) and LOSS_TOLERANCE == 0.01


def test_default_grid_is_geometric():
    grid = default_grid()
    assert grid[0] == 1e-4 and np.allclose(grid[1:] / grid[:-1], 2.0) and len(grid) == 8


def test_reference_sparsity_against_brute_force():
    rng = np.random.default_rng(0)
    w = rng.standard_normal(97) * rng.exponential(size=97)
    r2 = magnitude_distance_curve(w)
    total = float(np.sum(w**2))
    # brute force: prune the m smallest squared weights, the largest m keeping the pruned share <= 1 %
    sq = np.sort(w**2)
    best = max(m for m in range(98) if sq[:m].sum() <= 0.01 * total)
    assert reference_sparsity(r2, 0.01) == pytest.approx(best / 97)


def test_validation_split_is_seeded_and_disjoint():
    tr, va = validation_split(100, seed=3)
    assert len(va) == 20 and len(tr) == 80 and set(tr.tolist()).isdisjoint(va.tolist())
    assert sorted(tr.tolist() + va.tolist()) == list(range(100))
    assert torch.equal(validation_split(100, seed=3)[1], va)
    assert not torch.equal(validation_split(100, seed=4)[1], va)


# ----------------------------------------------------------------------------- the path


def test_path_is_reproducible_for_a_seed(blobs):
    model = build_model("mlp:8", blobs, seed=0)
    before = copy.deepcopy(model.state_dict())
    a = l1_path(model, blobs, seed=1, **SHORT)
    b = l1_path(model, blobs, seed=1, **SHORT)
    assert [p.metric for p in a.points] == [p.metric for p in b.points]
    assert [p.validation_loss for p in a.points] == [p.validation_loss for p in b.points]
    assert a.chosen == b.chosen and a.validation_size == 80
    assert a.state.keys() == b.state.keys() and all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    # the model handed in is not modified
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    c = l1_path(model, blobs, seed=2, **SHORT)
    assert [p.validation_loss for p in c.points] != [p.validation_loss for p in a.points]
    record = a.to_dict()
    assert record["l1"] == GRID[a.chosen] and [p["l1"] for p in record["points"]] == GRID[: len(a.points)]
    # the rule's choice is the pure function's on the recorded metrics
    assert a.chosen == choose_l1(GRID[: len(a.points)], [p.metric for p in a.points], higher_is_better=True, tolerance=0.01)


def test_path_starts_from_the_given_weights(blobs):
    """--init: the loss before the first step is the checkpoint's, and a vanishing step leaves its weights."""
    trained = build_model("mlp:8", blobs, seed=0)
    train(trained, blobs, l1=0.0, epochs=5, seed=0)
    fit_idx, _ = validation_split(400, seed=0)
    fit = (blobs.x_train[fit_idx], blobs.y_train[fit_idx])
    path = l1_path(trained, blobs, seed=0, start="ckpt", **SHORT)
    assert path.start_loss == evaluate_loss(trained, fit) and path.start == "ckpt"
    still = l1_path(trained, blobs, seed=0, lr=1e-12, **SHORT)
    np.testing.assert_allclose(flat_weights(trained), np.concatenate([
        still.state[k].flatten().numpy() for k in still.state if k.endswith("weight")
    ]), atol=1e-9)


def test_train_auto_trains_at_the_chosen_lambda_from_the_path(blobs):
    model = build_model("mlp:8", blobs, seed=0)
    path, history = train_auto(model, blobs, seed=0, epochs=2, path_kwargs=SHORT)
    assert history.settings["l1"] == path.l1 and history.settings["l1_path"]["l1"] == path.l1
    # the final run is lomp.train warm-started from the path's weights at the chosen λ
    again = build_model("mlp:8", blobs, seed=0)
    again.load_state_dict(path.state)
    train(again, blobs, l1=path.l1, epochs=2, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_path_checks_its_grid(blobs):
    model = build_model("mlp:8", blobs, seed=0)
    with pytest.raises(PruningLimitsError, match="grid must be increasing positive"):
        l1_path(model, blobs, grid=[1e-3, 1e-4])
    with pytest.raises(PruningLimitsError, match="grid must be increasing positive"):
        l1_path(model, blobs, grid=[0.0, 1e-4])
    # not numbers at all: numpy's 'could not convert string to float' came through raw
    for bad in ("abc", ["1e-3", "x"], {"a": 1}):
        with pytest.raises(PruningLimitsError, match=r"^grid must be increasing positive numbers, got "):
            l1_path(model, blobs, grid=bad)


def test_path_takes_the_largest_seed(blobs):
    """`train --seed 18446744073709551615` (2**64 − 1, a valid seed) failed after the first point
    with 'seed must be an integer in [0, 2**64), got 18446744073709551616': point i shuffled with
    seed + i. It wraps round."""
    model = build_model("mlp:8", blobs, seed=0)
    path = l1_path(model, blobs, seed=2**64 - 1, grid=[1e-4, 2e-4, 4e-4], warmup_epochs=1, path_epochs=1,
                   tolerance=float("inf"))
    assert [p.l1 for p in path.points] == [1e-4, 2e-4, 4e-4] and path.seed == 2**64 - 1
    # the second point shuffles with seed 0: as the second point of a path seeded 0 does, from the same weights
    fit_idx, _ = validation_split(400, seed=2**64 - 1)
    first = l1_path(model, blobs, seed=2**64 - 1, grid=[1e-4], warmup_epochs=1, tolerance=float("inf"))
    again = build_model("mlp:8", blobs, seed=0)
    again.load_state_dict(first.state)
    train(again, (blobs.x_train[fit_idx], blobs.y_train[fit_idx]), l1=2e-4, epochs=1, seed=0)
    second = l1_path(model, blobs, seed=2**64 - 1, grid=[1e-4, 2e-4], warmup_epochs=1, path_epochs=1,
                     tolerance=float("inf"))
    assert all(torch.equal(second.state[k], v) for k, v in again.state_dict().items())


def test_path_time_counts_epochs_as_the_final_training_does(blobs, monkeypatch):
    """`train` printed "path time (+X % of the final training)" with the path's wall time against
    the final training's summed epoch times: the first optimizer a process builds (about 1.8 s of
    lazy imports) fell in the path's first point only. An optimizer slow to build counts in neither.

    The clock of regpath and lomp (and of this test) is the real perf_counter plus what each
    optimizer construction adds, 1000 s: an optimizer built inside a point's or an epoch's time
    would add 1000 s to it, which no real time outside it can make up."""
    import time

    import pruning_limits.lomp as lomp
    import pruning_limits.regpath as regpath

    slow = 1000.0

    class Clock:
        offset = 0.0

        @staticmethod
        def perf_counter() -> float:
            return time.perf_counter() + Clock.offset

    class SlowSGD(torch.optim.SGD):
        def __init__(self, *args, **kwargs):
            Clock.offset += slow
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(regpath, "time", Clock)
    monkeypatch.setattr(lomp, "time", Clock)
    monkeypatch.setattr(torch.optim, "SGD", SlowSGD)
    model = build_model("mlp:8", blobs, seed=0)
    begin = Clock.perf_counter()
    path = l1_path(model, blobs, seed=0, tolerance=float("inf"), **SHORT)
    wall = Clock.perf_counter() - begin
    assert len(path.points) == 3 and path.seconds == sum(p.seconds for p in path.points)
    assert Clock.offset == 3 * slow  # one optimizer a point
    assert wall - path.seconds >= 3 * slow  # the three slow constructions are outside every point's time
    begin = Clock.perf_counter()
    final = train(build_model("mlp:8", blobs, seed=0), blobs, epochs=2, seed=0)
    assert Clock.offset == 4 * slow
    assert Clock.perf_counter() - begin - sum(final.seconds) >= slow  # as outside the final training's


def test_init_chooses_lambda_on_a_fresh_network_and_fine_tunes_the_checkpoint_up_to_it(blobs):
    from pruning_limits.regpath import fresh_copy

    trained = build_model("mlp:8", blobs, seed=0)
    train(trained, blobs, l1=0.0, epochs=5, seed=0)
    fresh = fresh_copy(trained, seed=0)
    # every parameter re-drawn, the checkpoint untouched
    assert all(not torch.equal(a, b) for a, b in zip(fresh.parameters(), trained.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(fresh_copy(trained, 0).parameters(), fresh.parameters()))
    start_weights = flat_weights(trained)
    tuned = copy.deepcopy(trained)
    path, history = train_auto(tuned, blobs, seed=0, epochs=1, fresh=fresh, start="ckpt", path_kwargs=SHORT)
    record = history.settings["l1_path"]
    choosing = l1_path(fresh, blobs, seed=0, **SHORT)
    assert path.l1 == choosing.l1 == record["l1"]  # the choice is the fresh network's
    route = record["route"]
    assert [p["l1"] for p in route["points"]] == [v for v in GRID if v <= path.l1] and route["start"] == "ckpt"
    # the record's points, start_loss and start are the fresh network's; the checkpoint is the route's start
    # (its start named the checkpoint while its points and start_loss were the fresh network's)
    assert record["start"] == FRESH_START == "fresh (to choose λ)"
    assert record["start_loss"] == choosing.start_loss != route["start_loss"]
    # the route starts from the checkpoint's weights
    fit_idx, _ = validation_split(400, seed=0)
    assert route["start_loss"] == evaluate_loss(trained, (blobs.x_train[fit_idx], blobs.y_train[fit_idx]))
    assert np.array_equal(flat_weights(trained), start_weights)


def test_train_auto_applies_the_users_tolerance_to_the_choosing_path(blobs):
    """`train_auto(..., fresh=net, path_kwargs={..., "tolerance": 0.05})` failed with a bare
    "l1_path() got multiple values for keyword argument 'tolerance'": the route, run up to the
    chosen λ at an infinite tolerance, got the user's too."""
    trained = build_model("mlp:8", blobs, seed=0)
    train(trained, blobs, l1=0.0, epochs=3, seed=0)
    fresh = build_model("mlp:8", blobs, seed=1)
    kwargs = {**SHORT, "tolerance": 0.05}
    path, history = train_auto(copy.deepcopy(trained), blobs, seed=0, epochs=1, fresh=fresh, path_kwargs=kwargs)
    record = history.settings["l1_path"]
    choosing = l1_path(fresh, blobs, seed=0, **kwargs)
    assert record["tolerance"] == path.tolerance == 0.05 and path.l1 == choosing.l1
    assert record["route"]["tolerance"] == float("inf") and [p["l1"] for p in record["route"]["points"]] == [
        v for v in GRID if v <= path.l1]
    # the path's own lr (also a multiple value) overrides the final training's for both paths
    _, history = train_auto(copy.deepcopy(trained), blobs, seed=0, epochs=1, lr=0.05, fresh=fresh,
                            path_kwargs={**kwargs, "lr": 0.02})
    record = history.settings["l1_path"]
    assert record["settings"]["lr"] == record["route"]["settings"]["lr"] == 0.02 and history.settings["lr"] == 0.05
    # what train_auto sets itself is refused in one line, as is what l1_path does not take
    for key in ("keep_state", "seed", "start", "progress", "epochs"):
        with pytest.raises(PruningLimitsError, match=rf"^path_kwargs takes grid, .* got '{key}'$"):
            train_auto(copy.deepcopy(trained), blobs, fresh=fresh, epochs=1, path_kwargs={**SHORT, key: 0})


def test_fresh_copy_refuses_layers_it_cannot_reset():
    class Scale(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(3))

    assert fresh_copy_of(torch.nn.Sequential(torch.nn.Linear(3, 3), Scale())) is None
    # a TorchScript module keeps its compiled methods only: not even its Linear layers can be reset
    assert fresh_copy_of(torch.jit.script(torch.nn.Sequential(torch.nn.Linear(3, 3)))) is None


def fresh_copy_of(model):
    from pruning_limits.regpath import fresh_copy

    return fresh_copy(model, 0)


def _path_record(points, chosen, grid=None, metric="accuracy"):
    """A ``RegularisationPath.to_dict()``-shaped record of (λ, metric, knee at s_ref) triples."""
    return {
        "l1": points[chosen][0], "chosen": chosen, "metric": metric, "grid": grid or [p[0] for p in points],
        "points": [{"l1": lam, "metric": m, "knee_steepness": knee} for lam, m, knee in points],
    }


def test_stronger_l1_names_the_first_sharp_knee_above_the_choice_and_its_cost():
    # a path like make_gaussian_quantiles' in docs/validation.md: the knee sharpens only as the accuracy falls
    path = _path_record(
        [(8e-4, 0.919, 5.0), (1.6e-3, 0.910, 8.0), (3.2e-3, 0.900, 12.0), (6.4e-3, 0.85, 30.0), (1.28e-2, 0.76, 60.0)], 1
    )
    lam, reason = stronger_l1(path)
    assert lam == 6.4e-3  # the smallest sharp one above the choice, not the sharpest
    assert "85.0 %" in reason and "best 91.9 %" in reason
    path["points"][3]["knee_steepness"] = float("nan")  # an undefined knee is not sharp
    assert stronger_l1(path)[0] == 1.28e-2


def test_stronger_l1_past_a_path_that_stopped_before_the_knee_sharpened():
    # the make_hastie_10_2 path: stopped early at 6.4e-3, knee still 13.6 at s_ref
    grid = [1e-4 * 2**i for i in range(8)]
    path = _path_record([(8e-4, 0.935, 4.0), (1.6e-3, 0.944, 6.6), (3.2e-3, 0.925, 9.5), (6.4e-3, 0.910, 13.6)], 1, grid)
    lam, reason = stronger_l1(path)
    assert lam == 1.28e-2 and "stopped at λ = 0.0064" in reason and "91.0 %" in reason and "lower accuracy" in reason
    # a path that ran to the end of its grid: one grid step further
    assert stronger_l1(_path_record([(1e-3, 0.9, 3.0), (2e-3, 0.9, 4.0)], 1))[0] == pytest.approx(2e-3 * GRID_FACTOR)
    # regression: losses, the lowest is best
    lam, reason = stronger_l1(_path_record([(1e-3, 0.5, 3.0), (2e-3, 0.49, 4.0), (4e-3, 0.7, 5.0)], 1, metric="loss"))
    assert lam == pytest.approx(8e-3) and "best 0.49" in reason and "higher loss" in reason


def test_stronger_l1_refuses_a_damaged_record_in_one_line():
    with pytest.raises(PruningLimitsError, match="not a RegularisationPath record"):
        stronger_l1({"points": [{"l1": 1e-3}], "chosen": 0, "metric": "accuracy", "grid": []})
    with pytest.raises(PruningLimitsError, match="not a RegularisationPath record"):
        stronger_l1({"points": [], "chosen": 3, "metric": "accuracy", "grid": []})


def test_stronger_fixed_l1_is_the_grids_next_step_above_a_fixed_lambda():
    """A bundle trained at a fixed λ got a plain `train --init` as its next step, whose path could
    choose a weaker λ and lead round in a circle (0.0256 -> 0.0128 -> 0.0256)."""
    from pruning_limits.regpath import GRID_FACTOR, GRID_START, stronger_fixed_l1

    l1, reason = stronger_fixed_l1(0.0256)
    assert l1 == 0.0256 * GRID_FACTOR and "fixed λ = 0.0256" in reason
    assert stronger_fixed_l1(GRID_START / 10) is None  # the path itself starts above it
    assert stronger_fixed_l1(float("nan")) is None


def test_the_path_keeps_the_weights_of_its_chosen_point_only(blobs):
    """The path kept a copy of the weights of every point (8 on the default grid; twice that with
    --init): it keeps those of the point chosen so far, which is all train_auto reads."""
    model = build_model("mlp:8", blobs, seed=0)
    path = l1_path(model, blobs, seed=1, **SHORT)
    assert not hasattr(path, "states")
    # the weights at the chosen λ: the same path run up to that λ ends there
    upto = l1_path(model, blobs, seed=1, **{**SHORT, "grid": GRID[: path.chosen + 1]}, tolerance=float("inf"))
    assert upto.chosen == path.chosen and all(torch.equal(upto.state[k], v) for k, v in path.state.items())
    assert l1_path(model, blobs, seed=1, keep_state=False, **SHORT).state is None


def test_a_diverging_path_names_its_lambda_and_a_tiny_training_set_names_the_split(blobs):
    """`train --l1 auto --lr 1` ended with a bare 'weights contain NaN or infinite values' (the knee
    was computed on NaN weights); data with one training sample named no λ path."""
    model = build_model("mlp:8", blobs, seed=0)
    with pytest.raises(PruningLimitsError, match=r"^training diverged at λ = 0.0001 of the λ path \(--l1 auto\): .* holds NaN"):
        l1_path(model, blobs, seed=0, lr=1e30, **SHORT)
    with pytest.raises(PruningLimitsError, match=r"needs at least 2 training samples, got 1: pin λ with --l1 X"):
        l1_path(model, (blobs.x_train[:1], blobs.y_train[:1]), **SHORT)


def test_fresh_copy_rebuilds_a_spec_and_resets_attention():
    """`train --init` on the zoo's transformer (a raw position parameter, nn.MultiheadAttention, whose
    reset is `_reset_parameters`) chose λ on the checkpoint's own path, whose validation split it
    had seen: fresh_copy returned None."""
    from torch import nn

    from pruning_limits.data import load_data
    from pruning_limits.objective import parameter_selection, select_parameters
    from pruning_limits.regpath import fresh_copy

    data = load_data("tokens:n=40,test=8,length=8")
    trained = build_model("transformer:8,1,2", data, seed=0)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    select_parameters(trained, "encoder.*weight")
    fresh = fresh_copy(trained, seed=5)
    expected = build_model("transformer:8,1,2", data, seed=5)  # what `train --model transformer:8,1,2 --seed 5` starts from
    assert fresh is not None and parameter_selection(fresh) == ["encoder.*weight"]
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), expected.state_dict().values()))

    class Attend(nn.Module):  # no spec: reset layer by layer, attention by its _reset_parameters
        def __init__(self):
            super().__init__()
            self.attention = nn.MultiheadAttention(8, 2, batch_first=True)
            self.head = nn.Linear(8, 3)

    module = Attend()
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(7.0)
    fresh = fresh_copy(module, seed=0)
    assert fresh is not None
    assert not torch.equal(fresh.attention.in_proj_weight, module.attention.in_proj_weight)
    assert torch.equal(fresh.attention.in_proj_weight, fresh_copy(module, seed=0).attention.in_proj_weight)
    # as a new attention layer has it: out_proj's own reset ran after _reset_parameters and
    # randomised the bias it zeroes (a review: max |bias| 0.235)
    assert torch.count_nonzero(fresh.attention.out_proj.bias) == 0 and torch.count_nonzero(fresh.attention.in_proj_bias) == 0
    assert fresh.attention.out_proj.weight.abs().max() < 7.0


def test_fresh_copy_of_a_model_changed_after_it_was_built_keeps_its_architecture(blobs):
    """A zoo model whose head was replaced after building got a fresh network of its spec (the old
    two-layer MLP), on which λ would have been chosen for another architecture."""
    from torch import nn

    from pruning_limits.regpath import fresh_copy

    model = build_model("mlp:16", blobs, seed=0)
    model[-1] = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, model[-1].out_features))
    fresh = fresh_copy(model, seed=0)
    assert fresh is not None
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert not torch.equal(fresh[-1][0].weight, model[-1][0].weight)
