import warnings

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


def test_a_nan_in_the_last_chunk_is_found_without_a_copy_of_the_whole_data(monkeypatch):
    """check_pair tested torch.isfinite(x).all() on the whole tensor: a bool copy of the inputs
    (30 MB for 10 000 CIFAR images). It reads chunks of whole samples, at most
    FINITE_CHECK_ELEMENTS elements each (or one sample where a sample holds more), and still
    finds a value in the last chunk, with the same messages."""
    from pruning_limits import objective

    monkeypatch.setattr(objective, "FINITE_CHECK_ELEMENTS", 64)
    sizes = []
    isfinite = torch.isfinite

    def counted(tensor):
        sizes.append(tensor.numel())
        return isfinite(tensor)

    monkeypatch.setattr(torch, "isfinite", counted)
    x, y = torch.zeros(100, 2, 4), torch.zeros(100)  # 8 elements a sample: chunks of 8 samples, the last of 4
    x[-1, -1, -1] = float("nan")
    with pytest.raises(PruningLimitsError, match=r"^inputs contain NaN or infinite values$"):
        objective.check_pair(x, y)
    assert sizes == [64] * 12 + [32]  # every chunk read, none larger than the bound
    sizes.clear()
    y[-1] = float("inf")
    with pytest.raises(PruningLimitsError, match=r"^targets contain NaN or infinite values$"):
        objective.check_pair(torch.zeros(100, 2, 4), y)
    assert sizes == [64] * 12 + [32] + [64, 36]  # the inputs, all finite, then the targets' chunks
    sizes.clear()
    wide = torch.zeros(3, 100)  # a sample above the bound: one sample a chunk
    assert objective.check_pair(wide, torch.zeros(3))[0] is wide and sizes == [100, 100, 100, 3]


def test_loss_gradient_matches_autograd_on_full_data():
    net = small_net()
    x = torch.randn(37, 1, 8, dtype=torch.float64)
    y = torch.randint(0, 3, (37,))
    net.eval()
    loss = nn.functional.cross_entropy(net(x), y)
    expected = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, [net[0].weight, net[4].weight])])
    got = loss_gradient(net, (x, y), batch_size=10)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------- models as users hold them
# (a review of the API, 2026-12-05: each of these crashed or gave a wrong number)


def _api_case():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3)).double()
    return model, torch.randn(300, 6, dtype=torch.float64), torch.randint(0, 3, (300,))


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.o = nn.Linear(6, 6), nn.Linear(6, 6), nn.Linear(6, 3)
        self.b.weight = self.a.weight  # shared, as an embedding tied to a language model's head

    def forward(self, x):
        return self.o(torch.tanh(self.b(torch.tanh(self.a(x)))))


def test_a_tied_weight_is_one_parameter_with_the_gradient_of_both_uses():
    from pruning_limits.hessian import HessianOperator
    from pruning_limits.objective import loss_gradient
    from pruning_limits.spectrum import dense_hessian

    torch.manual_seed(0)
    model = _Tied().double()
    x, y = torch.randn(40, 6, dtype=torch.float64), torch.randint(0, 3, (40,))
    assert [name for name, _ in prunable_parameters(model)] == ["a.weight", "o.weight"]  # a KeyError before
    assert flat_weights(model).size == 36 + 18

    def loss(flat):  # the oracle: both uses of a.weight replaced by the one vector
        a, o = flat[:36].reshape(6, 6), flat[36:].reshape(3, 6)
        params = {"a.weight": a, "o.weight": o}
        return nn.functional.cross_entropy(torch.func.functional_call(model, params, (x,)), y)

    flat = torch.from_numpy(flat_weights(model))
    oracle = torch.autograd.functional.hessian(loss, flat).numpy()
    np.testing.assert_allclose(dense_hessian(HessianOperator(model, (x, y))), oracle, atol=1e-14)
    np.testing.assert_allclose(loss_gradient(model, (x, y)), torch.autograd.functional.jacobian(loss, flat).numpy(), atol=1e-14)


class _TiedHead(nn.Module):
    """A head tied to an embedding that is not prunable by default: the default selection names
    the tensor by its second name, ``head.weight``."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.lin, self.head = nn.Embedding(7, 5), nn.Linear(5, 5), nn.Linear(5, 7, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, x):
        return self.head(torch.relu(self.lin(self.emb(x))).mean(1))


def test_every_name_of_a_tied_weight_selects_it_once():
    model = _TiedHead()
    assert [name for name, _ in prunable_parameters(model)] == ["lin.weight", "head.weight"]
    # the name the default selection lists is accepted back (refused as unknown before 2026-12-06)
    assert [name for name, _ in prunable_parameters(model, "head.weight")] == ["head.weight"]
    assert [name for name, _ in prunable_parameters(model, "head.*")] == ["head.weight"]
    assert [name for name, _ in prunable_parameters(model, "*.weight")] == ["emb.weight", "lin.weight"]  # once


def test_the_copy_of_a_masked_tied_head_is_the_network_that_runs():
    from torch.nn.utils import prune

    from pruning_limits.objective import evaluate_loss, model_copy

    torch.manual_seed(0)
    model = _TiedHead().double()
    x, y = torch.randint(0, 7, (32, 4)), torch.randint(0, 7, (32,))
    magnitude = model.head.weight.detach().abs()  # torch masks the head alone: the embedding reads the dense tensor
    prune.custom_from_mask(model.head, "weight", magnitude > magnitude.median())
    copied = model_copy(model)
    assert int((model.emb.weight == 0).sum()) == 0
    assert int((copied.emb.weight == 0).sum()) == 0  # 11 zeros through the shared tensor before
    assert torch.equal(copied.head.weight, model.head.weight)
    assert float(evaluate_loss(copied, (x, y))) == pytest.approx(float(evaluate_loss(model, (x, y))), rel=1e-12)


def test_frozen_weights_and_a_no_grad_caller_get_the_same_answer():
    from pruning_limits import predict_limit
    from pruning_limits.objective import loss_gradient

    model, x, y = _api_case()
    gradient = loss_gradient(model, (x, y))
    answer = predict_limit(model, (x, y), epsilon=0.02, iterations=20, probes=2).sparsity
    model.requires_grad_(False)  # a fine-tuning script's frozen backbone
    np.testing.assert_array_equal(loss_gradient(model, (x, y)), gradient)
    assert predict_limit(model, (x, y), epsilon=0.02, iterations=20, probes=2).sparsity == answer
    assert not any(p.requires_grad for p in model.parameters())  # left as it was
    model.requires_grad_(True)
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            assert predict_limit(model, (x, y), epsilon=0.02, iterations=20, probes=2).sparsity == answer


def test_a_model_pruned_with_torch_masks_is_analysed_as_the_network_that_runs():
    """prune_model(permanent=False) / torch.nn.utils.prune: deepcopy refused the computed weight,
    and the model as it is gave the unmasked weight_orig as its weights."""
    from pruning_limits import predict_limit, validate
    from pruning_limits.masks import prune_model
    from pruning_limits.objective import model_copy

    model, x, y = _api_case()
    prune_model(model, 0.3)
    folded = model_copy(model)
    assert hasattr(model[0], "weight_orig") and not hasattr(folded[0], "weight_orig")  # the original keeps its masks
    assert torch.equal(folded[0].weight, model[0].weight) and int((flat_weights(folded) == 0).sum()) == round(0.3 * 108)
    for dtype in (torch.float64, None):
        assert predict_limit(model, (x, y), epsilon=0.02, iterations=20, probes=2, dtype=dtype).sparsity == \
            predict_limit(folded, (x, y), epsilon=0.02, iterations=20, probes=2, dtype=dtype).sparsity
    assert validate(model, (x, y), epsilon=0.02, iterations=20, probes=2).to_dict()["measured"] == \
        validate(folded, (x, y), epsilon=0.02, iterations=20, probes=2).to_dict()["measured"]


def test_one_target_per_sample_against_one_output_is_not_broadcast():
    """mse_loss broadcast (N, 1) outputs against (N,) targets into an (N, N) difference, warning only."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))
    x, y = torch.randn(30, 6), torch.randn(30)
    with torch.no_grad():
        expected = float(((model(x).squeeze(1) - y) ** 2).mean())
    assert evaluate_loss(model, (x, y)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(PruningLimitsError, match="returns shape \\(30, 2\\) for targets of shape \\(30,\\)"):
        evaluate_loss(nn.Linear(6, 2), (x, y))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m, x, y: (m, (torch.randn(30, 7, dtype=torch.float64), y[:30]), None), "do not take the data .*mat1 and mat2"),
        (lambda m, x, y: (m, (x, y + 5), None), "do not take the data .*IndexError: Target"),
        (lambda m, x, y: (m, (x, torch.cat([y[:-1], torch.tensor([3])])), None), "class labels must lie in \\[0, 3\\) .* got labels from 0 to 3"),
        (lambda m, x, y: (m, (x, y), "mse"), "loss_fn must be a callable"),
        (lambda m, x, y: (m, (x, y), nn.CrossEntropyLoss(reduction="none")), "the loss must return one number .* shape \\(2,\\)"),
        (lambda m, x, y: (None, (x, y), None), "model must be a torch.nn.Module, got None"),
    ],
)
def test_a_model_that_does_not_take_the_data_is_named_in_one_line(change, match):
    from pruning_limits import predict_limit

    model, data, loss_fn = change(*_api_case())
    with pytest.raises(PruningLimitsError, match=match) as info:
        predict_limit(model, data, epsilon=0.02, iterations=5, probes=1, loss_fn=loss_fn)
    assert "\n" not in str(info.value)


def test_nan_weights_are_named_not_called_nondeterminism():
    from pruning_limits import HessianOperator

    model, x, y = _api_case()
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    with pytest.raises(PruningLimitsError, match="NaN or infinite at these weights"):
        HessianOperator(model, (x, y))
    with pytest.raises(PruningLimitsError, match="the loss is NaN or infinite on some batches"):
        batch_std_epsilon(model, (x, y))


def test_settings_seeds_and_arrays_are_checked_where_they_enter():
    """Each of these was read by int() or astype (1.5 as 1, a complex vector as its real part), or
    failed inside torch or numpy, or was ignored when spectrum= skipped SLQ."""
    import pruning_limits as pl
    from pruning_limits.spectrum import Spectrum

    model, x, y = _api_case()
    dense = np.diag([1.0, 2.0, 3.0, 4.0])
    for seed, match in ((None, "seed must be an integer >= 0, got None"), (1.5, "got 1.5"), ("0", "got '0'"),
                        (2**64, "seed must be an integer in \\[0, 2\\*\\*64\\)")):
        with pytest.raises(PruningLimitsError, match=match):
            pl.slq(dense, iterations=2, probes=2, seed=seed)
    with pytest.raises(PruningLimitsError, match="generator must be a torch.Generator"):
        pl.slq(dense, iterations=2, probes=2, generator=np.random.default_rng(0))
    with pytest.raises(PruningLimitsError, match="seed must be an integer >= 0, got -1"):
        pl.ellipsoid_width_mc([1.0, 2.0], samples=10, seed=-1)
    with pytest.raises(PruningLimitsError, match="a dense operator must be a finite symmetric matrix"):
        pl.slq(np.array([[1.0, 5.0], [0.0, 2.0]]), iterations=2, probes=2)
    for size in (-5, 0, 2.5):
        with pytest.raises(PruningLimitsError, match="batch_size must be an integer >= 1"):
            evaluate_loss(model, (x, y), batch_size=size)
    assert pl.projected_ellipsoid_dimension([1.0, 2.0], np.int64(1)) == pytest.approx(0.5 + 0.8)  # numpy integers are numbers
    assert pl.circular_cone_statistical_dimension(5, np.int64(1)) == pl.circular_cone_statistical_dimension(5, 1.0)
    spectrum = pl.estimate_spectrum(model, (x, y), iterations=10, probes=2)
    for setting, match in ((dict(iterations=-1), "iterations must be"), (dict(probes="x"), "probes must be"),
                           (dict(seed="junk"), "seed must be"), (dict(tolerance=-5), "tolerance must be"),
                           (dict(hessian_samples=-3), "hessian_samples must be"), (dict(memory_budget="a"), "memory_budget must be"),
                           (dict(gradient_term="no"), "gradient_term must be True or False")):
        with pytest.raises(PruningLimitsError, match=match):
            pl.predict_limit(model, (x, y), epsilon=0.02, spectrum=spectrum, **setting)
    weights = torch.from_numpy(flat_weights(model)).requires_grad_(True)  # a tensor that requires grad
    assert pl.predict_from_spectrum(weights, spectrum, 0.02).sparsity == pl.predict_from_spectrum(flat_weights(model), spectrum, 0.02).sparsity
    with pytest.raises(PruningLimitsError, match="weights must be real numbers"):
        pl.predict_from_spectrum(flat_weights(model) + 0j, spectrum, 0.02)
    with pytest.raises(PruningLimitsError, match="expected real vectors, got torch.complex128"):
        pl.HessianOperator(model, (x, y)).matvec(torch.ones(spectrum.dim, dtype=torch.complex128))
    with pytest.raises(PruningLimitsError, match="spectrum dim must be an integer >= 1, got 2.7"):
        Spectrum(np.ones((1, 1)), np.ones((1, 1)), 2.7)


@pytest.mark.parametrize("name", ["prunable_dim", "flat_weights", "selection_summary", "model_order", "compute_masks"])
def test_a_model_that_is_no_module_is_named(name):
    import pruning_limits as pl

    args = (None, 0.5) if name == "compute_masks" else (None,)
    with pytest.raises(PruningLimitsError, match="model must be a torch.nn.Module, got None"):
        getattr(pl, name)(*args)


def test_a_model_on_the_meta_device_is_named():
    x, y = torch.randn(30, 6), torch.randint(0, 3, (30,))
    with pytest.raises(PruningLimitsError, match="on the meta device"):
        evaluate_loss(nn.Linear(6, 3, device="meta"), (x, y))



@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda pl, w, sp: pl.limit_curve(w, sp, ["a"]), "epsilons must be an array of numbers"),
        (lambda pl, w, sp: pl.first_order_limit(0.1, "abc"), "cost must be an array of numbers"),
        (lambda pl, w, sp: pl.knee_steepness("abc", 0.5), "distance_squared must be an array of numbers"),
        (lambda pl, w, sp: pl.dense_hessian(None), "operator must have .dim and .matmat"),
        (lambda pl, w, sp: pl.predict_structured(w, sp, 0.1, None), "plan must be a StructuredOrder"),
        (lambda pl, w, sp: pl.gauss_quadrature([1.0, np.nan], [1.0]), "alpha and beta contain NaN"),
        (lambda pl, w, sp: pl.block_gauss_quadrature(None), "result must be a BlockLanczosResult"),
        (lambda pl, w, sp: pl.spectrum_figure(None), "spectrum must be a pruning_limits.spectrum.Spectrum"),
        (lambda pl, w, sp: pl.save_figure(None, "x.png"), "figure must be a matplotlib Figure"),
    ],
)
def test_the_calculators_name_junk_arguments(call, match):
    import pruning_limits as pl
    from pruning_limits.spectrum import Spectrum

    with pytest.raises(PruningLimitsError, match=match):
        call(pl, np.ones(50), Spectrum.from_eigenvalues(np.linspace(0.0, 1.0, 50)))


def test_what_the_review_of_this_change_found_keeps_working():
    """Regressions a review of the change found (each ran before it): a stored selection naming
    weight_orig on a masked model; integer targets of a custom loss, and cross-entropy's
    ignore_index -100; a custom batch sampler's batches; data made under inference_mode."""
    import torch.nn.functional as F
    from torch.nn.utils import prune
    from torch.utils.data import Sampler

    import pruning_limits as pl
    from pruning_limits.objective import select_parameters

    torch.manual_seed(0)
    x, y = torch.randn(200, 4), torch.randint(0, 3, (200,))
    masked = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    prune.l1_unstructured(masked[0], "weight", amount=0.5)
    for selection in (["0.weight_orig"], "*weight_orig"):
        select_parameters(masked, selection)
        assert pl.predict_limit(masked, (x, y), epsilon=0.05, iterations=10, dtype=None).dim == 24
    one_logit = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 1))

    def bce(output, target):
        return F.binary_cross_entropy_with_logits(output.squeeze(1), target.float())

    pl.predict_limit(one_logit, (x, (x[:, 0] > 0).long()), epsilon=0.05, iterations=10, loss_fn=bce)
    three = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    ignored = y.clone()
    ignored[::7] = -100
    # since 2026-12-05 refused in one line: chunks are weighted by sample count, so the Hessian
    # with ignored labels depended on the chunking (54 % off with chunks of 20 and 17)
    with pytest.raises(PruningLimitsError, match="got 29 of the 200 targets of a batch equal to its ignore_index -100"):
        pl.predict_limit(three, (x, ignored), epsilon=0.05, iterations=10)

    sequences = [(torch.randn(n, 4), torch.tensor(n % 2)) for n in [3, 5, 7] * 4]

    class ByLength(Sampler):
        def __iter__(self):
            return iter([[i for i, (s, _) in enumerate(sequences) if len(s) == n] for n in (3, 5, 7)])

        def __len__(self):
            return 3

    class Pooled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, inputs):
            return self.fc(inputs).mean(1)

    pooled = Pooled()
    with torch.no_grad():
        expected = np.mean([float(F.cross_entropy(pooled(torch.stack([s for s, _ in sequences if len(s) == n])),
                                                  torch.stack([t for s, t in sequences if len(s) == n]))) for n in (3, 5, 7)])
    assert evaluate_loss(pooled, DataLoader(sequences, batch_sampler=ByLength())) == pytest.approx(expected, rel=1e-6)
    with torch.inference_mode():
        made = torch.randn(200, 4), torch.randint(0, 3, (200,))
        pl.predict_limit(three, made, epsilon=0.05, iterations=10)


def _reparametrize(kind: str, module: nn.Module) -> None:
    from torch.nn.utils import parametrizations, parametrize

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the legacy hooks are deprecated
        {
            "parametrizations.weight_norm": parametrizations.weight_norm,
            "parametrizations.spectral_norm": parametrizations.spectral_norm,
            "register_parametrization": lambda m: parametrize.register_parametrization(m, "weight", nn.Identity()),
            "legacy weight_norm": torch.nn.utils.weight_norm,
            "legacy spectral_norm": torch.nn.utils.spectral_norm,
        }[kind](module)


@pytest.mark.parametrize(
    "kind, remedy",
    [
        ("parametrizations.weight_norm", r"remove it first \(torch.nn.utils.parametrize.remove_parametrizations\(module, 'weight'\)\)$"),
        ("parametrizations.spectral_norm", "remove_parametrizations.* or choose the underlying parameters with --params / params=$"),
        ("register_parametrization", "remove_parametrizations.* or choose the underlying parameters with --params / params=$"),
        ("legacy weight_norm", r"from 0.weight_g, 0.weight_v: remove it first \(torch.nn.utils.remove_weight_norm\(module\)\)$"),
        ("legacy spectral_norm", r"from 0.weight_orig: remove it first \(torch.nn.utils.remove_spectral_norm\(module\)\) or choose"),
    ],
    ids=["parametrizations.weight_norm", "parametrizations.spectral_norm", "register_parametrization", "legacy weight_norm",
         "legacy spectral_norm"],
)
def test_a_reparametrized_layer_weight_is_refused_not_left_out(kind, remedy):
    """A parametrized or weight-normed layer's weight is no parameter of its own: the default
    selection left it out of D without a word (D = 96 of 608 Linear weights for weight_norm on
    the first layer) or raised a raw KeyError '0.weight' (register_parametrization), before
    2026-12-05."""
    import pruning_limits as pl

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 3))
    _reparametrize(kind, model[0])
    x, y = torch.randn(300, 16), torch.randint(0, 3, (300,))
    for call in (lambda: prunable_parameters(model), lambda: pl.predict_limit(model, (x, y), iterations=5)):
        with pytest.raises(PruningLimitsError, match="^expected plain weight tensors in the default selection, got "
                           f"[A-Za-z]*Linear '0' whose weight is computed by .*{remedy}") as info:
            call()
        assert "\n" not in str(info.value)
    from pruning_limits.objective import output_weight

    assert output_weight(model) == "2.weight"


def test_the_parameters_under_a_spectral_norm_can_be_chosen_and_match_the_oracle():
    """What the refusal offers: ``params=`` naming the parameter under the norm gives the exact
    Hessian over it (dense float64 oracle). Not offered for weight norm: torch 2.13's fused
    ``_weight_norm`` has a wrong (asymmetric) second derivative."""
    from pruning_limits.hessian import HessianOperator
    from pruning_limits.spectrum import dense_hessian

    torch.manual_seed(0)
    x, y = torch.randn(40, 4, dtype=torch.float64), torch.randint(0, 3, (40,))
    for kind, params in (("legacy spectral_norm", ["0.weight_orig", "2.weight"]),
                         ("parametrizations.spectral_norm", "0.parametrizations.weight.original,2.weight")):
        model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
        _reparametrize(kind, model[0])
        model.eval()
        selected = prunable_parameters(model, params)
        names, shapes = [n for n, _ in selected], [p.shape for _, p in selected]
        fixed = {n: p.detach() for n, p in model.named_parameters() if n not in names}
        fixed.update(dict(model.named_buffers()))

        def loss(w):
            pieces = dict(zip(names, (t.view(s) for t, s in zip(torch.split(w, [s.numel() for s in shapes]), shapes))))
            return nn.functional.cross_entropy(torch.func.functional_call(model, {**fixed, **pieces}, (x,)), y)

        oracle = torch.autograd.functional.hessian(loss, torch.cat([p.detach().reshape(-1) for _, p in selected])).numpy()
        dense = dense_hessian(HessianOperator(model, (x, y), params=params))
        assert np.abs(dense - oracle).max() <= 1e-10 * np.abs(oracle).max()


def test_a_loss_module_is_analysed_in_the_dtype_of_the_analysed_model():
    """predict_limit analyses a float64 copy; a loss module's float32 tensors met float64
    outputs: a raw RuntimeError deep in ε before 2026-12-05 (a float64 one: refused as "the model
    and loss do not take the data", the check ran on the caller's float32 model). The loss
    module is now copied and converted with the model; the caller's is left as it is."""
    import pruning_limits as pl
    import torch.nn.functional as F

    class CostLoss(nn.Module):  # expected misclassification cost: a per-sample mean with a (C, C) buffer
        def __init__(self, dtype):
            super().__init__()
            self.register_buffer("cost", (1 - torch.eye(3) + 0.1).to(dtype))

        def forward(self, out, target):
            return (F.softmax(out, 1) @ self.cost)[torch.arange(len(target)), target].mean()

    torch.manual_seed(0)
    x = torch.randn(300, 6)
    y = (x[:, 0] > 0.5).long() + (x[:, 1] > 1).long()
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    losses = {dtype: CostLoss(dtype) for dtype in (torch.float32, torch.float64)}
    got = {dtype: pl.predict_limit(model, (x, y), loss_fn=loss, iterations=20) for dtype, loss in losses.items()}
    assert losses[torch.float32].cost.dtype == torch.float32 and model[0].weight.dtype == torch.float32
    # the oracle: the same pipeline with the loss written in float64 on a float64 model
    reference = pl.predict_limit(
        model.double(), (x.double(), y), loss_fn=CostLoss(torch.float64), iterations=20, dtype=None
    )
    for prediction in got.values():
        assert prediction.epsilon == pytest.approx(reference.epsilon, rel=1e-12)
        assert prediction.spectrum["lambda_max"] == pytest.approx(reference.spectrum["lambda_max"], rel=1e-10)
        assert prediction.sparsity == reference.sparsity


def test_the_loss_checks_see_past_the_first_batch_and_by_settings() -> None:
    """A review of the per-sample-mean check: a loader of batch size 1 left it one sample
    (``reduction='sum'`` passed), class-sorted data gave it one class (class weights passed), a
    lambda around ``F.cross_entropy`` hid its ignore_index (-100 in a later batch passed), and a
    weight norm's ``g``/``v`` chosen with params= were analysed with torch's wrong second derivative."""
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    from pruning_limits.hessian import HessianOperator
    from pruning_limits.pipeline import predict_limit

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x, y = torch.randn(60, 6, dtype=torch.float64), torch.randint(0, 3, (60,))
    mean_loss = "expected a loss that is the mean of per-sample losses"
    with pytest.raises(PruningLimitsError, match=mean_loss):
        HessianOperator(model, DataLoader(TensorDataset(x, y), batch_size=1), loss_fn=nn.CrossEntropyLoss(reduction="sum"))
    order = torch.argsort(y, stable=True)
    weights = torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64)
    with pytest.raises(PruningLimitsError, match=mean_loss):
        HessianOperator(model, DataLoader(TensorDataset(x[order], y[order]), batch_size=16), loss_fn=nn.CrossEntropyLoss(weight=weights))
    padded = y.clone()
    padded[50] = -100
    with pytest.raises(PruningLimitsError, match="equal to its ignore_index -100"):
        HessianOperator(model, DataLoader(TensorDataset(x, padded), batch_size=8), loss_fn=lambda o, t: F.cross_entropy(o, t))
    # per-sample means pass: label smoothing one sample at a time, constant weights, KL's batchmean
    HessianOperator(model, DataLoader(TensorDataset(x, y), batch_size=1), loss_fn=nn.CrossEntropyLoss(label_smoothing=0.1))
    HessianOperator(model, (x, y), loss_fn=nn.CrossEntropyLoss(weight=torch.ones(3, dtype=torch.float64)))
    soft = torch.softmax(torch.randn(60, 3, dtype=torch.float64), 1)
    HessianOperator(model, (x, soft), loss_fn=lambda o, t: F.kl_div(F.log_softmax(o, 1), t, reduction="batchmean"))
    normed = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    nn.utils.parametrizations.weight_norm(normed[0])
    with pytest.raises(PruningLimitsError, match="a weight norm's g or v"):
        predict_limit(normed, (x, y), params="all", iterations=5, probes=1, epsilon=0.1)


def test_a_spectral_norm_model_trains_without_l1_and_a_loss_that_cannot_be_copied_is_used_as_given() -> None:
    """A review: `lomp.train(l1=0)` refused a spectral-norm model (no selection is needed without
    a penalty), and a loss module holding a non-leaf tensor raised deepcopy's raw RuntimeError."""
    import torch.nn.functional as F

    from pruning_limits.lomp import train
    from pruning_limits.pipeline import predict_limit

    torch.manual_seed(0)
    x, y = torch.randn(60, 6), torch.randint(0, 3, (60,))
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    nn.utils.parametrizations.spectral_norm(model[0])
    history = train(model, (x, y), l1=0.0, epochs=1)
    assert history.l1 == [0.0]

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3)) * 2  # not a leaf: deepcopy refuses it

        def forward(self, outputs, targets):
            return F.cross_entropy(outputs, targets)

    plain = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    given = predict_limit(plain, (x.double(), y), loss_fn=Scaled(), iterations=5, probes=1, epsilon=0.1)
    default = predict_limit(plain, (x.double(), y), iterations=5, probes=1, epsilon=0.1)
    assert given.sparsity == default.sparsity


def test_the_running_weights_are_those_of_the_folded_copy_without_copying(monkeypatch):
    """validate --structure and predict --plot deep-copied the whole model (model_copy) only to read
    s₀ of the weights with torch prune masks folded (a review). flat_running_weights reads
    weight_orig * weight_mask of each module instead: equal to flat_weights(model_copy(model)) on a
    model masked by prune.l1_unstructured (not folded), a stored --params selection, ties masked
    alike and a head masked alone (the one case read from the copy), and a mask loaded by
    load_state_dict after the last forward pass (module.weight is stale then)."""
    from torch.nn.utils import prune

    from pruning_limits import objective
    from pruning_limits.masks import prune_model
    from pruning_limits.objective import flat_running_weights, model_copy, select_parameters

    def oracle(model):
        return flat_weights(model_copy(model))

    torch.manual_seed(0)
    plain = small_net().float()
    np.testing.assert_array_equal(flat_running_weights(plain), flat_weights(plain))
    masked = small_net().float()
    prune.l1_unstructured(masked[0], "weight", amount=0.5)
    prune.l1_unstructured(masked[4], "weight", amount=0.6)
    assert [name for name, _ in prunable_parameters(masked)] == ["0.weight_orig", "4.weight_orig"]
    expected = oracle(masked)
    assert int((expected == 0).sum()) == 3 + round(0.6 * 36) and int((flat_weights(masked) == 0).sum()) == 0
    with monkeypatch.context() as patch:  # no copy of the model: model_copy is not called
        patch.setattr(objective, "model_copy", lambda model: pytest.fail("copied the model"))
        running = flat_running_weights(masked)
    assert running.dtype == np.float64
    np.testing.assert_array_equal(running, expected)
    # a mask loaded after the last forward pass: module.weight holds the old product, not the new mask
    fresh = small_net().float()
    prune.identity(fresh[0], "weight")
    prune.identity(fresh[4], "weight")
    fresh.load_state_dict(masked.state_dict())
    assert int((fresh[4].weight == 0).sum()) == 0  # stale
    np.testing.assert_array_equal(flat_running_weights(fresh), expected)
    # a stored selection
    select_parameters(masked, ["4.weight_orig"])
    np.testing.assert_array_equal(flat_running_weights(masked), oracle(masked))
    assert flat_running_weights(masked).size == 36
    # a tie masked alike in both uses (prune_model), and a tied head masked alone (read from the copy)
    tied = _Tied()
    prune_model(tied, 0.5)
    np.testing.assert_array_equal(flat_running_weights(tied), oracle(tied))
    assert int((flat_running_weights(tied) == 0).sum()) == 27
    head = _TiedHead()
    magnitude = head.head.weight.detach().abs()
    prune.custom_from_mask(head.head, "weight", magnitude > magnitude.median())
    np.testing.assert_array_equal(flat_running_weights(head), oracle(head))
    assert int((flat_running_weights(head) == 0).sum()) == int((magnitude <= magnitude.median()).sum())
