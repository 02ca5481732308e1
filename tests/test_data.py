import random
import sys
import types
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pruning_limits import PruningLimitsError
from pruning_limits.data import (
    DataBundle,
    check_data_fits_model,
    load_data,
    make_bundle,
    materialize,
)

from conftest import one_line


def test_digits_is_a_fixed_seeded_split_in_unit_range():
    a, b = load_data("digits"), load_data("digits")
    assert (len(a.x_train), len(a.x_test)) == (1400, 397)
    assert a.input_shape == (64,) and a.task == "classification" and a.num_classes == 10
    assert a.x_train.dtype == torch.float32 and a.y_train.dtype == torch.int64
    assert float(a.x_train.min()) >= 0.0 and float(a.x_train.max()) <= 1.0
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    other = load_data("digits", seed=1)
    assert not torch.equal(a.y_train, other.y_train)
    # the split is a partition of all 1 797 images
    from sklearn.datasets import load_digits

    total = torch.cat([a.x_train, a.x_test]) * 16
    reference = torch.from_numpy(load_digits().data.astype(np.float32))
    assert sorted(map(tuple, total.tolist())) == sorted(map(tuple, reference.tolist()))
    assert len(load_data("digits:train=1000").x_train) == 1000


def test_mnist1d_generated_locally_and_leaves_global_rng_alone():
    np.random.seed(123)
    random.seed(7)
    expected_np, expected_py = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(7)
    bundle = load_data("mnist1d:n=500")
    assert np.random.rand() == expected_np and random.random() == expected_py
    assert bundle.input_shape == (40,) and bundle.num_classes == 10
    assert (len(bundle.x_train), len(bundle.x_test)) == (400, 100)
    assert set(bundle.y_train.tolist()) <= set(range(10))
    again = load_data("mnist1d:n=500")
    assert torch.equal(bundle.x_train, again.x_train)
    assert not torch.equal(bundle.x_train, load_data("mnist1d:n=500,seed=3").x_train)
    for seed in ("-1", "1e30", "4294967296"):  # numpy's seeding takes [0, 2**32): a traceback before
        with pytest.raises(PruningLimitsError, match=f"mnist1d:seed must be an integer in \\[0, 2\\*\\*32\\), got"):
            load_data(f"mnist1d:n=20,seed={seed}")


def test_synthetic_teacher_student_regression():
    bundle = load_data("synthetic:n=300,test=50,d=7,out=2,noise=0")
    assert bundle.task == "regression" and bundle.num_outputs == 2 and bundle.num_classes is None
    assert bundle.x_train.shape == (300, 7) and bundle.y_train.shape == (300, 2)
    assert bundle.x_test.shape == (50, 7)
    assert torch.equal(bundle.y_train, load_data("synthetic:n=300,test=50,d=7,out=2,noise=0").y_train)
    assert not torch.equal(bundle.y_train, load_data("synthetic:n=300,test=50,d=7,out=2,noise=0", seed=1).y_train)
    # same seed, same teacher and inputs: the targets differ by exactly the Gaussian noise
    noisy = load_data("synthetic:n=300,test=50,d=7,out=2,noise=0.5")
    assert torch.equal(noisy.x_train, bundle.x_train)
    residual = (noisy.y_train - bundle.y_train).flatten()
    assert abs(float(residual.std()) - 0.5) < 0.05 and abs(float(residual.mean())) < 0.05
    assert float(bundle.y_train.std()) > 0.1
    assert load_data("synthetic").to_dict()["train_size"] == 2000


def test_npz_with_and_without_test_set(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 3)), rng.integers(0, 4, size=50)
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=y, x_test=x[:5], y_test=y[:5])
    bundle = load_data(str(path))
    assert bundle.test_source == "given" and len(bundle.x_test) == 5 and bundle.num_classes == int(y.max()) + 1
    np.savez(path, x=x, y=y)
    split = load_data(str(path))
    assert split.test_source == "split" and (len(split.x_train), len(split.x_test)) == (40, 10)
    assert torch.equal(split.x_test, load_data(str(path)).x_test)
    # float 1-D targets: regression with targets reshaped to (n, 1)
    np.savez(path, x=x, y=x[:, 0])
    reg = load_data(str(path))
    assert reg.task == "regression" and reg.y_train.shape == (40, 1) and reg.num_outputs == 1


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.zeros((3, 2))}, "lacks array"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(4, dtype=int)}, "differ in length"),
        ({"x": np.full((3, 2), np.nan), "y": np.zeros(3, dtype=int)}, "NaN"),
        ({"x": np.zeros((0, 2)), "y": np.zeros(0, dtype=int)}, "empty"),
        ({"x": np.zeros((3, 2)), "y": np.array([0, -1, 1])}, "labels must lie"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(3, dtype=int), "x_test": np.zeros((1, 2))}, "both x_test and y_test"),
        ({"x": np.array([["a", "b"]] * 3), "y": np.zeros(3, dtype=int)}, "numeric array, got dtype <U1"),
        ({"x": np.zeros((3, 2), dtype="m8[s]"), "y": np.zeros(3, dtype=int)}, "numeric array, got dtype timedelta64"),
    ],
)
def test_npz_errors_are_one_line(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(PruningLimitsError, match=message) as info:
        load_data(str(path))
    assert "\n" not in str(info.value)


def test_npz_arrays_in_big_endian_order_are_read(tmp_path):
    np.savez(tmp_path / "big.npz", x=np.arange(12, dtype=">f8").reshape(6, 2), y=np.array([0, 1] * 3, dtype=">i8"))
    bundle = load_data(str(tmp_path / "big.npz"))
    values = torch.cat([bundle.x_train, bundle.x_test]).flatten().double().sort().values
    assert torch.equal(values, torch.arange(12, dtype=torch.float64))
    assert sorted(torch.cat([bundle.y_train, bundle.y_test]).tolist()) == [0, 0, 0, 1, 1, 1]


def test_an_unreadable_npz_file_is_reported_as_such(tmp_path, monkeypatch):
    np.savez(tmp_path / "locked.npz", x=np.zeros((4, 2)), y=np.zeros(4, dtype=int))
    real_open = open

    def refuse(path, *args, **kwargs):
        if str(path).endswith("locked.npz"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(PruningLimitsError, match="cannot read .*locked.npz.* Permission denied"):
        load_data(str(tmp_path / "locked.npz"))


def test_files_that_are_no_npz_archive(tmp_path):
    np.savez(tmp_path / "good.npz", x=np.zeros((4, 2)), y=np.zeros(4, dtype=int))
    whole = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    np.savez_compressed(tmp_path / "packed.npz", x=np.linspace(0, 1, 400).reshape(200, 2), y=np.zeros(200, dtype=int))
    packed = bytearray((tmp_path / "packed.npz").read_bytes())
    packed[200:600] = bytes(b ^ 0x5A for b in packed[200:600])  # a damaged member, the zip directory intact
    (tmp_path / "corrupt.npz").write_bytes(bytes(packed))
    (tmp_path / "text.npz").write_text("not numpy")
    (tmp_path / "folder.npz").mkdir()
    for name, message in [("truncated", "not an .npz archive or is damaged"), ("text", "not an .npz archive"),
                          ("corrupt", "cannot read .* as an .npz archive"),
                          ("folder", "is not a file")]:
        with pytest.raises(PruningLimitsError, match=message) as info:
            load_data(str(tmp_path / f"{name}.npz"))
        assert "\n" not in str(info.value) and str(info.value).count(".npz archive") <= 1


def test_spec_errors():
    with pytest.raises(PruningLimitsError, match="unknown data spec"):
        load_data("cifar")
    with pytest.raises(PruningLimitsError, match=r"^data file '/nonexistent/file\.npz' does not exist$") as info:
        load_data("/nonexistent/file.npz")
    one_line(info)
    with pytest.raises(PruningLimitsError, match="cannot import module"):
        load_data("no_such_module_xyz:make")
    with pytest.raises(PruningLimitsError, match=(
        r"^data spec 'synthetic' takes options n=\.\.\., test=\.\.\., d=\.\.\., hidden=\.\.\., out=\.\.\., noise=\.\.\., got 'colour=3'$"
    )) as info:
        load_data("synthetic:n=10,colour=3")
    one_line(info)
    with pytest.raises(PruningLimitsError, match="must be an integer"):
        load_data("synthetic:n=10.5")
    for spec in ("synthetic:n=1e20", "patterns:classes=1e19", "tokens:length=1e20"):  # tracebacks of torch's sizes
        with pytest.raises(PruningLimitsError, match="must be at most 9223372036854775807"):
            load_data(spec)
    with pytest.raises(PruningLimitsError, match="data option train is given twice"):
        load_data("digits:train=1000,train=500")
    with pytest.raises(PruningLimitsError, match=r"^digits:train must be between 1 and 1796, got 5000$") as info:
        load_data("digits:train=5000")
    one_line(info)


def test_module_function_specs(monkeypatch):
    module = types.ModuleType("pl_test_user_data")
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 4, generator=gen), torch.randint(0, 3, (30,), generator=gen)
    module.pair = lambda: (x, y)
    module.loader = lambda: DataLoader(TensorDataset(x, y), batch_size=7)
    module.train_test = lambda: (TensorDataset(x, y), (x[:6], y[:6]))
    module.bundle = lambda: make_bundle((x, y), (x[:3], y[:3]), num_outputs=5)
    module.broken = lambda: 1 / 0
    module.wrong = lambda: "hello"
    monkeypatch.setitem(sys.modules, "pl_test_user_data", module)
    pair = load_data("pl_test_user_data:pair")
    assert torch.equal(pair.x_train, x) and pair.test is None and pair.test_source == "none"
    assert torch.equal(load_data("pl_test_user_data:loader").y_train, y)
    both = load_data("pl_test_user_data:train_test")
    assert len(both.x_test) == 6 and both.spec == "pl_test_user_data:train_test"
    assert load_data("pl_test_user_data:bundle").num_classes == 5
    with pytest.raises(PruningLimitsError, match="failed: ZeroDivisionError"):
        load_data("pl_test_user_data:broken")
    with pytest.raises(PruningLimitsError, match=(
        r"^data function 'pl_test_user_data:wrong' must return a DataBundle, an \(x, y\) pair, a Dataset or a DataLoader "
        r"\(or a \(train, test\) pair of those, test None for none\), got 'hello' \(str\)$"
    )) as info:
        load_data("pl_test_user_data:wrong")
    one_line(info)
    with pytest.raises(PruningLimitsError, match=r"^module 'pl_test_user_data' has no callable 'missing' \(data spec 'pl_test_user_data:missing'\)$") as info:
        load_data("pl_test_user_data:missing")
    one_line(info)


def test_make_bundle_from_objects_and_label_range():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(10, 2, 3, generator=g), torch.arange(10) % 4
    from_loader = make_bundle(DataLoader(TensorDataset(x, y), batch_size=3))
    assert from_loader.input_shape == (2, 3) and from_loader.num_outputs == 4
    assert torch.equal(materialize(TensorDataset(x, y))[0], x)
    with pytest.raises(PruningLimitsError, match="labels must lie in \\[0, 3\\)"):
        make_bundle((x, y), num_outputs=3)
    with pytest.raises(PruningLimitsError, match=r"^test labels must lie in \[0, 2\), got labels from 0 to 3$") as info:
        make_bundle((x, y % 2), (x, y), num_outputs=2)
    one_line(info)
    with pytest.raises(PruningLimitsError, match=r"^test inputs have sample shape \(5,\), training inputs \(2, 3\)$") as info:
        make_bundle((x, y), (torch.rand(2, 5, generator=g), y[:2]))
    one_line(info)
    assert isinstance(make_bundle((x.numpy(), y.numpy())), DataBundle)


def test_check_data_fits_model():
    torch.manual_seed(0)  # the inputs and the layers' initialisation
    bundle = load_data("synthetic:n=20,test=5,d=3,out=2")
    check_data_fits_model(nn.Linear(3, 2), bundle)
    with pytest.raises(PruningLimitsError, match="does not accept inputs of shape \\(1, 3\\)") as info:
        check_data_fits_model(nn.Linear(4, 2), bundle)
    assert "\n" not in str(info.value)
    with pytest.raises(PruningLimitsError, match="returns shape \\(1, 3\\)"):
        check_data_fits_model(nn.Linear(3, 3), bundle)
    digits = make_bundle((torch.rand(5, 64), torch.arange(5)), num_outputs=10)
    with pytest.raises(PruningLimitsError, match="expected \\(1, C\\) with C >= 10 \\(10 classes"):
        check_data_fits_model(nn.Linear(64, 9), digits)
    # data that lacks the last classes fits a model with more logits (it was refused)
    check_data_fits_model(nn.Linear(64, 10), make_bundle((torch.rand(5, 64), torch.arange(5))))
    # one class: one logit, a loss of 0 whatever the weights
    with pytest.raises(PruningLimitsError, match=r"at least two classes, got the training labels all 0 and num_outputs not given \(inferred 1\)"):
        make_bundle((torch.rand(5, 64), torch.zeros(5, dtype=torch.long)))
    assert make_bundle((torch.rand(5, 64), torch.zeros(5, dtype=torch.long)), num_outputs=3).num_outputs == 3


def test_a_token_beyond_the_vocabulary_is_named_before_any_work():
    """Every token is checked, not the first sample's alone (an IndexError deep in the gradient before)."""
    torch.manual_seed(0)  # the tokens and the layers' initialisation
    vocab = nn.Sequential(nn.Embedding(8, 4), nn.Flatten(), nn.Linear(12, 2))
    tokens = torch.randint(0, 8, (20, 3))
    check_data_fits_model(vocab, make_bundle((tokens, torch.arange(20) % 2)))
    tokens[7, 1] = 50
    with pytest.raises(PruningLimitsError, match="the training sample with the largest token, 50, of") as info:
        check_data_fits_model(vocab, make_bundle((tokens, torch.arange(20) % 2)))
    assert "\n" not in str(info.value)
    tokens[7, 1] = 3
    test = torch.randint(0, 8, (4, 3))
    test[2, 0] = 9
    with pytest.raises(PruningLimitsError, match="the test sample with the largest token, 9, of"):
        check_data_fits_model(vocab, make_bundle((tokens, torch.arange(20) % 2), (test, torch.arange(4) % 2)))


def _user_module(monkeypatch, **functions):
    module = types.ModuleType("pl_test_user_data")
    for name, function in functions.items():
        setattr(module, name, function)
    monkeypatch.setitem(sys.modules, "pl_test_user_data", module)


def test_a_data_function_returning_three_values_is_refused_in_one_line(monkeypatch):
    """``return x, y, "extra"`` was batched as a data set of three samples: a TypeError of torch's."""
    x, y = np.zeros((6, 2), dtype=np.float32), np.arange(6) % 2
    _user_module(monkeypatch, triple=lambda: (x, y, "extra"), samples=lambda: [(x[i], int(y[i])) for i in range(6)])
    with pytest.raises(PruningLimitsError, match="'pl_test_user_data:triple' must return a DataBundle, an \\(x, y\\) pair, "
                       ".*, got a tuple of 3$") as info:
        load_data("pl_test_user_data:triple")
    assert "\n" not in str(info.value)
    with pytest.raises(PruningLimitsError, match="training data must be an \\(x, y\\) pair or a sequence of \\(x, y\\) "
                       "samples, got a list of 3"):
        make_bundle([x, y, "extra"])
    assert load_data("pl_test_user_data:samples").x_train.shape == (6, 2)  # a list of samples is a data set


class _BrokenDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, index):
        if index == 4:
            raise KeyError("broken sample")
        return torch.zeros(2), index % 2


class _Stream(torch.utils.data.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter([(torch.full((2,), float(i)), i % 3) for i in range(self.n)])


def test_a_dataset_that_fails_while_read_is_reported_as_user_code(monkeypatch):
    """A Dataset's own error (a KeyError of ``__getitem__``) is the user's, said in one line, not a traceback."""
    from pruning_limits._checks import UserCodeError

    _user_module(monkeypatch, broken=_BrokenDataset)
    with pytest.raises(UserCodeError, match="^data function 'pl_test_user_data:broken': reading the training data "
                       "failed: KeyError: 'broken sample'$"):
        load_data("pl_test_user_data:broken")
    with pytest.raises(UserCodeError, match="^reading the test data failed: KeyError") as info:
        make_bundle((torch.zeros(4, 2), torch.arange(4) % 2), _BrokenDataset())
    assert isinstance(info.value.__cause__, KeyError)  # the library user keeps the traceback


def test_an_iterable_dataset_is_read(monkeypatch):
    """An IterableDataset has no len(): ``TypeError: object of type ... has no len()`` before."""
    _user_module(monkeypatch, stream=lambda: _Stream(200), empty=lambda: _Stream(0))
    bundle = load_data("pl_test_user_data:stream")
    assert bundle.x_train.shape == (200, 2) and torch.equal(bundle.x_train[:, 0], torch.arange(200.0))
    assert bundle.num_classes == 3
    assert torch.equal(materialize(_Stream(5))[1], torch.tensor([0, 1, 2, 0, 1]))
    with pytest.raises(PruningLimitsError, match="training data: the data set is empty"):
        load_data("pl_test_user_data:empty")


def test_npz_long_double_is_read_and_complex256_refused_in_one_line(tmp_path):
    """torch reads neither longdouble nor clongdouble: a TypeError traceback before."""
    x, y = np.linspace(-1, 1, 20).reshape(10, 2), np.arange(10) % 2
    np.savez(tmp_path / "long.npz", x=x.astype(np.longdouble), y=y, x_test=x[:3], y_test=y[:3])
    bundle = load_data(str(tmp_path / "long.npz"))
    assert bundle.x_train.dtype == torch.float32 and torch.equal(bundle.x_train, torch.from_numpy(x).float())
    if np.finfo(np.longdouble).max > np.longdouble("1e400"):  # 80-bit or 128-bit longdouble: finite here, inf as float64
        np.savez(tmp_path / "long.npz", x=x.astype(np.longdouble) * np.longdouble("1e400"), y=y)
        with pytest.raises(PruningLimitsError, match="training inputs exceed float32's range, .* up to 1e\\+400"):
            load_data(str(tmp_path / "long.npz"))
    np.savez(tmp_path / "complex.npz", x=x.astype(np.clongdouble), y=y)
    with pytest.raises(PruningLimitsError, match="training inputs must be real numbers, got .*complex") as info:
        load_data(str(tmp_path / "complex.npz"))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("label", [3_000_000, 10**9, 2**62])
def test_a_stray_huge_label_warns(tmp_path, label):
    """A stray label silently built a model with 3 000 001 outputs, or failed in an allocation
    (10**9, 2**62). A warning, not a refusal: a checkpoint's own large head is legitimate."""
    y = np.arange(60) % 3
    y[7] = label
    np.savez(tmp_path / "stray.npz", x=np.zeros((60, 2)), y=y)
    with pytest.warns(RuntimeWarning, match=f"the largest label, {label}, implies {label + 1} classes for 60 "
                      "samples \\(more than max\\(65536, 2 × samples\\)\\), which a zoo model would get as outputs"):
        assert load_data(str(tmp_path / "stray.npz")).num_outputs == label + 1


def test_many_classes_on_few_samples_pass_the_label_limit():
    """ImageNet-1k (and -21k) labels on a small subset, and more classes given on purpose, are accepted."""
    warnings.simplefilter("error")  # pytest restores the filters after the test
    x = torch.zeros(20, 2)
    assert make_bundle((x, torch.arange(20) * 50)).num_outputs == 951
    assert make_bundle((x, torch.tensor([0] * 19 + [21_840]))).num_outputs == 21_841
    assert make_bundle((torch.zeros(40_000, 1), torch.arange(40_000) * 2)).num_outputs == 79_999  # 2 × samples
    assert make_bundle((x, torch.tensor([0] * 19 + [100_000])), num_outputs=100_001).num_outputs == 100_001


def test_a_stray_huge_token_warns():
    """A token 2**40 asked the zoo's transformer for an embedding of 140 TB, without a word."""
    tokens = torch.randint(0, 5, (50, 4), generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert make_bundle((tokens, torch.arange(50) % 2)).vocab_size == int(tokens.max()) + 1
        assert make_bundle((torch.tensor([[0, 250_000]] * 3), torch.arange(3) % 2)).vocab_size == 250_001  # a real tokenizer
    tokens[3, 2] = 2**40
    with pytest.warns(RuntimeWarning, match=f"int64 inputs are token indices: the largest, {2**40}, implies a "
                      f"vocabulary of {2**40 + 1} for 200 tokens \\(more than max\\(1048576, 2 × tokens\\)\\)"):
        make_bundle((tokens, torch.arange(50) % 2))


def test_float_targets_that_are_exactly_class_indices_warn_that_they_mean_regression():
    x = torch.zeros(30, 2)
    with pytest.warns(RuntimeWarning, match="float targets are exactly 0, 1, ..., 2: read as regression \\(one output, MSE\\); "
                      "if they are class labels, store them as integers"):
        bundle = make_bundle((x, (torch.arange(30) % 3).double()))
    assert bundle.task == "regression"
    with pytest.warns(RuntimeWarning, match="exactly 0, 1, ..., 1"):  # imbalanced 0/1 labels: 10 % ones
        make_bundle((torch.zeros(100, 2), (torch.arange(100) % 10 == 0).float()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_bundle((x, torch.linspace(0, 1, 30)))  # real regression targets
        make_bundle((x, torch.arange(30.0)))  # whole numbers, each once: counts, not classes
        make_bundle((x, (torch.arange(30) % 5 + 1).double()))  # ratings 1..5: no class indices
        counts = torch.from_numpy(np.random.default_rng(0).poisson(3, 1000).astype(np.float32))
        assert torch.equal(torch.unique(counts), torch.arange(11.0))  # 0..10, with thin tails
        make_bundle((torch.zeros(1000, 2), counts))
        load_data("tokens:vocab=3000000,n=4,test=1,length=8")  # a large vocabulary asked for
        make_bundle((x, (torch.arange(60).reshape(30, 2) % 7).float()))  # reconstruction-style targets


def test_npz_object_arrays_other_than_the_data_are_not_read(tmp_path):
    """One unrelated object array made the whole file unreadable, without its name."""
    x, y = np.zeros((10, 2)), np.arange(10) % 2
    np.savez(tmp_path / "meta.npz", x=x, y=y, meta=np.array([{"a": 1}], dtype=object))
    assert len(load_data(str(tmp_path / "meta.npz")).x_train) == 8
    np.savez(tmp_path / "objects.npz", x=x, y=np.array([0, "a"] * 5, dtype=object))
    with pytest.raises(PruningLimitsError, match="array y of .*objects.npz' must be a numeric array, got dtype object") as info:
        load_data(str(tmp_path / "objects.npz"))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.ones((10, 2)) * 1e300, "y": np.arange(10) % 2}, "training data: inputs exceed float32's range"),
    ({"x": np.ones((10, 2)), "y": np.arange(10) % 2, "x_test": np.ones((2, 2)) * -1e39, "y_test": np.arange(2)},
     "test data: inputs exceed float32's range, .* got values up to 1e\\+39"),
    ({"x": np.ones((10, 2)), "y": np.linspace(0, 1e300, 10)}, "training data: targets exceed float32's range"),
])
def test_float64_beyond_float32_range_is_named(tmp_path, arrays, message):
    """Such values became inf after the cast, and later 'inputs contain NaN or infinite values', false for the file."""
    np.savez(tmp_path / "big.npz", **arrays)
    with pytest.raises(PruningLimitsError, match=message) as info:
        load_data(str(tmp_path / "big.npz"))
    assert "\n" not in str(info.value) and "NaN" not in str(info.value)


def _npy_member(shape, descr="<f4", body=b"\0" * 64) -> bytes:
    """A version 1.0 ``.npy`` file whose header declares ``shape``, whatever the size of ``body``."""
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %r, }" % (descr, shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + body


def test_an_npz_member_declaring_more_data_than_it_holds_is_refused_before_reading(tmp_path):
    """A 64-byte member declaring shape (10**12, 8) was reported as 'out of memory: Unable to
    allocate 29.1 TiB': numpy allocates the declared array before it reads a byte."""
    import zipfile

    for name, shape in [("huge", (10**12, 8)), ("overflow", (2**62, 2**62))]:
        path = tmp_path / f"{name}.npz"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("x.npy", _npy_member(shape))
            archive.writestr("y.npy", _npy_member((60,), "<i8", b"\0" * 480))
        count = shape[0] * shape[1]
        with pytest.raises(PruningLimitsError, match=(
            f"array x of .*{name}.npz' declares shape \\({shape[0]}, {shape[1]}\\) of float32, {count * 4} bytes, "
            "but its member holds 64 bytes of data"
        )) as info:
            load_data(str(path))
        assert "\n" not in str(info.value)
    np.savez_compressed(tmp_path / "fine.npz", x=np.zeros((60, 8), np.float32), y=np.arange(60) % 3)  # compressed members
    assert load_data(str(tmp_path / "fine.npz")).input_shape == (8,)


def test_uint64_labels_beyond_int64_are_named_before_the_cast(tmp_path):
    """uint64 labels >= 2**63 wrapped negative in the cast to int64: 'labels must lie in
    [0, -9223372036854775802), got labels from -9223372036854775803'."""
    x = np.zeros((60, 2), np.float32)
    np.savez(tmp_path / "big.npz", x=x, y=np.full(60, 2**63 + 5, dtype=np.uint64))
    with pytest.raises(PruningLimitsError, match=(
        "training data: integer targets \\(class labels\\) must be below 2\\*\\*63, got uint64 labels up to 9223372036854775813"
    )) as info:
        load_data(str(tmp_path / "big.npz"))
    assert "\n" not in str(info.value)
    np.savez(tmp_path / "small.npz", x=x, y=(np.arange(60) % 3).astype(np.uint64))
    assert load_data(str(tmp_path / "small.npz")).num_classes == 3


@pytest.mark.parametrize("arrays, shapes", [
    ({"x": np.float32(1), "y": np.int64(0)}, "\\(\\) and \\(\\)"),
    ({"x": np.zeros((60, 8), np.float32), "y": np.int64(0)}, "\\(60, 8\\) and \\(\\)"),
])
def test_zero_dimensional_npz_arrays_need_a_sample_dimension(tmp_path, arrays, shapes):
    """np.ascontiguousarray made a 0-d array one sample: 'has 1 sample(s) and no test set' and
    '60 inputs, 1 targets' instead of the missing sample dimension."""
    np.savez(tmp_path / "scalar.npz", **arrays)
    with pytest.raises(PruningLimitsError, match=f"training data: inputs and targets need a leading sample dimension, got shapes {shapes}"):
        load_data(str(tmp_path / "scalar.npz"))


# --------------------------------------------------------------------------- review fixes (data)


class _Log:
    """A console for ``load_model_and_data`` that keeps the lines it would print."""

    def __init__(self):
        self.lines = []

    def log(self, message, level=0):
        if level == 0:
            self.lines.append(message)


def test_a_bundle_warns_when_its_data_changed_since_training(tmp_path, monkeypatch):
    """``train`` records the split sizes and a fingerprint of the training part; a later command that
    reloads the bundle's data (no --data, or --data naming the same file) says when they differ: a
    replaced c.npz of 80 samples was analysed as 64 training samples with no word (a review)."""
    from click.testing import CliRunner

    from pruning_limits.cli import cli
    from pruning_limits.cli._common import load_model_and_data

    rng = np.random.default_rng(1)
    data, bundle = tmp_path / "c.npz", tmp_path / "b.pt"
    np.savez(data, x=rng.normal(size=(50, 4)).astype(np.float32), y=rng.integers(0, 3, 50))
    result = CliRunner().invoke(cli, ["train", "--data", str(data), "--model", "mlp:4", "--l1", "0", "--epochs", "1",
                                      "-o", str(bundle), "-q"])
    assert result.exit_code == 0, result.output
    record = torch.load(bundle, weights_only=True)["training"]["data_fingerprint"]
    assert (record["train_size"], record["test_size"]) == (40, 10) and len(record["train_sha256"]) == 64

    def warnings_of(data_spec=None):
        log = _Log()
        load_model_and_data(str(bundle), model_spec=None, data_spec=data_spec, trust=False, seed=0, console=log)
        return [line for line in log.lines if line.startswith("warning:")]

    assert warnings_of() == []  # the same file: nothing to say
    np.savez(data, x=rng.normal(size=(80, 4)).astype(np.float32), y=rng.integers(0, 3, 80))  # replaced
    expected = (f"warning: the data {str(data)!r} differ from those the model was trained on (64 training samples, "
                "training used 40): they changed since training, and the analysis uses them as they are now")
    assert warnings_of() == [expected]
    monkeypatch.chdir(tmp_path)
    assert [line.replace("'c.npz'", repr(str(data))) for line in warnings_of("c.npz")] == [expected]  # the same file
    np.savez(data, x=rng.normal(size=(50, 4)).astype(np.float32), y=rng.integers(0, 3, 50))  # as many, other values
    assert warnings_of() == [f"warning: the data {str(data)!r} differ from those the model was trained on (the same 40 "
                             "training samples in number, other values): they changed since training, and the analysis "
                             "uses them as they are now"]
    old = torch.load(bundle, weights_only=True)
    del old["training"]["data_fingerprint"]  # a bundle written before the record
    torch.save(old, bundle)
    assert warnings_of() == []


def test_the_data_fingerprint_tells_rounding_from_other_data():
    """Bytes equal, or for a built-in generator (whose float32 values may round otherwise on
    another CPU) weighted sums equal up to rounding: the same data. Another size, values that
    move the sums, labels re-paired with other inputs or samples reordered: a difference in
    words (plain sums missed the last two, a review's shuffled digits labels). A file's data
    must match byte for byte."""
    from pruning_limits.data import data_drift, bundle_fingerprint

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 5, generator=gen), torch.randint(0, 4, (200,), generator=gen)
    test = (torch.randn(20, 5, generator=gen), torch.randint(0, 4, (20,), generator=gen))

    def generated(x, y, test=test):
        return make_bundle((x, y), test, spec="synthetic")

    bundle = generated(x, y)
    record = bundle_fingerprint(bundle)
    other = "the same 200 training samples in number, other values"
    assert data_drift(record, bundle) is None
    ulp = torch.nextafter(x, torch.tensor(float("inf")))
    assert not torch.equal(ulp, x) and data_drift(record, generated(ulp, y)) is None
    assert data_drift(record, generated(x + 0.01, y)) == other
    assert data_drift(record, generated(x, y[torch.randperm(200, generator=gen)])) == other  # re-paired labels
    order = torch.randperm(200, generator=gen)
    assert data_drift(record, generated(x[order], y[order])) == other  # reordered samples
    assert data_drift(record, generated(x.flip(1), y)) == other  # values moved within each sample
    from_file = make_bundle((x, y), test, spec="data.npz")
    assert data_drift(bundle_fingerprint(from_file), make_bundle((ulp, y), test, spec="data.npz")) == other
    assert data_drift(record, generated(x, y, (test[0][:5], test[1][:5]))) == "5 test samples, training had 20"
    assert data_drift(record, generated(x[:150], y[:150])) == "150 training samples, training used 200"
    for damaged in (None, "x", {"train_size": "200"}, {**record, "train_sums": ["a", 1, 2, 3]}):
        assert data_drift(damaged, generated(x + 0.01, y)) is None  # nothing usable recorded: nothing compared


def test_a_sampler_with_indices_stands_for_those_samples():
    """``DataLoader(ds, sampler=SubsetRandomSampler(range(40)))`` over 60 samples was read as all 60,
    so held-out samples entered the Hessian, ε and the gradient (a review): it is the Subset of its
    sorted indices, read in order; another sampler that draws another number of samples is refused."""
    from torch.utils.data import BatchSampler, RandomSampler, SubsetRandomSampler, WeightedRandomSampler

    from pruning_limits.objective import evaluate_loss, iter_batches
    from pruning_limits.subsets import hessian_subset, num_samples

    x, y = torch.randn(60, 4, generator=torch.Generator().manual_seed(0)), torch.arange(60) % 3
    dataset = TensorDataset(x, y)
    picked = [39, 5, 17, 0, 22] + list(range(40, 50))
    loader = DataLoader(dataset, batch_size=4, sampler=SubsetRandomSampler(picked))
    order = sorted(picked)
    assert num_samples(loader) == 15
    assert torch.equal(materialize(loader)[0], x[order])
    assert sum(len(b) for b, _ in iter_batches(loader)) == 15
    model = nn.Linear(4, 3)
    assert evaluate_loss(model, loader) == pytest.approx(evaluate_loss(model, (x[order], y[order])))
    sub_x, _ = materialize(hessian_subset(loader, 5, seed=1))
    assert len(sub_x) == 5 and all(any(torch.equal(row, x[i]) for i in order) for row in sub_x)
    as_batches = DataLoader(dataset, batch_sampler=BatchSampler(SubsetRandomSampler(range(10)), 3, drop_last=True))
    assert torch.equal(materialize(as_batches)[0], x[:10])  # drop_last and the shuffling are not used
    # shuffling and sampling with replacement: the whole dataset, every sample once, as documented
    assert torch.equal(materialize(DataLoader(dataset, batch_size=8, shuffle=True))[0], x)
    assert num_samples(DataLoader(dataset, sampler=RandomSampler(dataset, replacement=True, num_samples=10))) == 60
    assert torch.equal(materialize(DataLoader(dataset, sampler=WeightedRandomSampler(torch.ones(60), 10)))[0], x)

    class FirstTen(torch.utils.data.Sampler):  # a sampler of its own that draws a part: no way to tell which
        def __iter__(self):
            return iter(range(10))

        def __len__(self):
            return 10

    fewer = DataLoader(dataset, batch_size=8, sampler=FirstTen())
    message = "the DataLoader's sampler (FirstTen) draws 10 samples per pass from a dataset of 60, expected all of them"
    for read in (num_samples, materialize, lambda d: list(iter_batches(d))):
        with pytest.raises(PruningLimitsError, match=message.replace("(", "\\(").replace(")", "\\)")) as info:
            read(fewer)
        assert "\n" not in str(info.value)
    with pytest.raises(PruningLimitsError, match="indices from 0 to 60, expected indices in \\[0, 60\\)"):
        num_samples(DataLoader(dataset, sampler=SubsetRandomSampler([0, 60])))


def test_a_data_spec_with_its_default_options_is_the_same_data():
    """``--data digits:train=1400`` on a bundle trained on ``digits`` was "not the bundle's data" and split
    with --seed 0 (a review): each built-in's defaults are filled in before the options are compared."""
    from pruning_limits.data import same_data_spec

    assert same_data_spec("digits:train=1400", "digits") and same_data_spec("digits", " digits:train=1.4e3 ")
    assert same_data_spec("synthetic:noise=0.1,n=2000", "synthetic:d=20")
    assert same_data_spec("mnist1d:seed=42", "mnist1d:n=5000") and same_data_spec("tokens:vocab=32", "tokens")
    assert not same_data_spec("digits:train=1000", "digits") and not same_data_spec("patterns:size=16", "patterns")
    assert not same_data_spec("synthetic", "patterns") and not same_data_spec("digits:train=x", "digits")


def test_channels_last_images_warn_and_images_are_read_channels_first(tmp_path):
    """``(N, 32, 32, 3)`` images were read as 32 channels of 32 × 3 with no word (a review)."""
    np.savez(tmp_path / "nhwc.npz", x=np.zeros((10, 32, 32, 3), dtype=np.float32), y=np.arange(10) % 2)
    with pytest.warns(RuntimeWarning, match=r"the inputs have sample shape \(32, 32, 3\), which looks channels-last: "
                      r"images are read as \(N, C, H, W\), here 32 channels; transpose to \(N, C, H, W\)"):
        bundle = load_data(str(tmp_path / "nhwc.npz"))
    assert bundle.input_shape == (32, 32, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_bundle((torch.zeros(4, 3, 32, 32), torch.arange(4) % 2))  # channels first
        make_bundle((torch.zeros(4, 1, 8, 8), torch.arange(4) % 2))
        make_bundle((torch.zeros(4, 16, 3), torch.arange(4) % 2))  # a sequence of 16 steps, 3 features
        load_data("patterns:n=4,test=2,channels=8,size=3")  # (channels, size, size) by construction


def test_integer_labels_in_a_column_are_read_as_labels(tmp_path):
    """Keras stores CIFAR labels as ``(n, 1)``: "integer targets must be 1-D, got shape (40, 1)" (a review)."""
    np.savez(tmp_path / "col.npz", x=np.zeros((10, 3), dtype=np.float32), y=(np.arange(10) % 3).reshape(10, 1).astype(np.uint8))
    bundle = load_data(str(tmp_path / "col.npz"))
    assert bundle.y_train.shape == (8,) and bundle.task == "classification" and bundle.num_classes == 3
    with pytest.raises(PruningLimitsError, match="integer targets \\(class labels\\) must be 1-D, got shape \\(10, 2\\)"):
        make_bundle((torch.zeros(10, 3), torch.zeros(10, 2, dtype=torch.int64)))


def test_bool_inputs_and_labels_are_read_as_numbers(tmp_path):
    """bool arrays were refused as "not real numbers" (a review): inputs become 0/1 float32, labels 0/1 classes."""
    x = np.arange(40).reshape(10, 4) % 3 == 0
    np.savez(tmp_path / "bool.npz", x=x, y=np.arange(10) % 2 == 1)
    bundle = load_data(str(tmp_path / "bool.npz"))
    assert bundle.x_train.dtype == torch.float32 and bundle.y_train.dtype == torch.int64 and bundle.num_classes == 2
    assert torch.equal(torch.cat([bundle.x_train, bundle.x_test]).sum(), torch.tensor(float(x.sum())))
    with pytest.raises(PruningLimitsError, match="classification needs at least two classes"):
        make_bundle((torch.zeros(4, 2), torch.zeros(4, dtype=torch.bool)))  # all False: one class


def test_one_hot_float_targets_warn_that_they_mean_regression():
    """``np.eye(3)[labels]`` became 3-output MSE regression with no word (a review)."""
    x = torch.zeros(30, 2)
    with pytest.warns(RuntimeWarning, match=r"the float targets are one-hot rows of 3 values: read as regression \(3 "
                      r"outputs, MSE\); if they are class labels, store integer labels \(y.argmax\(1\)\)"):
        bundle = make_bundle((x, nn.functional.one_hot(torch.arange(30) % 3).float()))
    assert bundle.task == "regression" and bundle.num_outputs == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_bundle((x, torch.tensor([[1.0, 1.0], [0.0, 1.0]]).repeat(15, 1)))  # multi-label 0/1 rows, not one-hot
        make_bundle((x, torch.full((30, 3), 1 / 3)))  # rows summing to 1, not one-hot


def test_a_data_function_returning_train_and_none_has_no_test_set(monkeypatch):
    """``return (X, Y), None`` was "an (x, y) pair or a sequence of (x, y) samples, got a tuple of 2" (a review)."""
    x, y = torch.randn(12, 3, generator=torch.Generator().manual_seed(0)), torch.arange(12) % 2
    _user_module(monkeypatch, pair_none=lambda: ((x, y), None), loader_none=lambda: (DataLoader(TensorDataset(x, y), batch_size=5), None))
    for name in ("pair_none", "loader_none"):
        bundle = load_data(f"pl_test_user_data:{name}")
        assert torch.equal(bundle.x_train, x) and bundle.test is None and bundle.test_source == "none"


def test_generator_options_must_be_finite_and_a_spec_too_large_for_memory_is_one_line():
    """``noise=nan`` gave "targets contain NaN", ``noise=inf`` infinite inputs; ``d=1e15`` a raw allocator
    message; ``tokens:vocab=1e9`` a 16 GB table for 10 samples (a review)."""
    for spec in ("synthetic:noise=nan", "patterns:noise=inf", "synthetic:n=4,noise=-inf"):
        with pytest.raises(PruningLimitsError, match=f"data option noise of '{spec.split(':')[0]}' must be a finite number, got"):
            load_data(spec)
    for spec in ("synthetic:n=4,test=1,d=1e15", "synthetic:n=4,test=1,hidden=1e12"):  # refused by the allocator at once
        with pytest.raises(MemoryError, match=f"^data spec '{spec}' is too large: one of its tensors needs [0-9.e+]+ GiB$"):
            load_data(spec)
    with pytest.raises(PruningLimitsError, match="tokens: classes × vocab must be at most 67108864 \\(its table of token "
                       "probabilities, 256 MiB of float32\\), got 4 × 1000000000"):
        load_data("tokens:n=10,test=1,vocab=1e9")


def test_tokens_drawn_in_chunks_are_those_of_one_draw(monkeypatch):
    """The samples' token distributions are drawn a chunk of rows at a time (all at once they were
    samples × vocab floats); the tokens are those of the single draw, so a seed keeps its data."""
    import pruning_limits.data as data_module

    def one_draw(n, test, classes, vocab, length, seed):
        gen = torch.Generator().manual_seed(seed)
        probabilities = torch.softmax(1.5 * torch.randn(classes, vocab, generator=gen), dim=1)
        labels = torch.randint(classes, (n + test,), generator=gen)
        return torch.multinomial(probabilities[labels], length, replacement=True, generator=gen)

    monkeypatch.setattr(data_module, "TOKENS_CHUNK_VALUES", 40)  # 1 to 5 rows a chunk below
    for n, test, classes, vocab, length, seed in [(30, 7, 3, 8, 5, 0), (11, 2, 2, 40, 1, 3), (9, 4, 4, 50, 3, 1)]:
        bundle = load_data(f"tokens:n={n},test={test},classes={classes},vocab={vocab},length={length}", seed=seed)
        assert torch.equal(torch.cat([bundle.x_train, bundle.x_test]), one_draw(n, test, classes, vocab, length, seed))


def test_seeds_are_checked_a_tilde_is_expanded_and_a_bundle_is_told_to_pass_its_training_pair(tmp_path, monkeypatch):
    """``seed=2**64`` was a raw ValueError and ``-1`` was taken; ``--data='~/x.npz'`` was not expanded;
    ``predict_limit(model, bundle)`` printed the bundle's tensors (a review)."""
    from pruning_limits.objective import iter_batches
    from pruning_limits.subsets import num_samples, subset_indices

    with pytest.raises(PruningLimitsError, match="seed must be an integer in \\[0, 2\\*\\*64\\), got 18446744073709551616"):
        load_data("digits", seed=2**64)
    with pytest.raises(PruningLimitsError, match="seed must be an integer >= 0, got -1"):
        load_data("digits", seed=-1)
    with pytest.raises(PruningLimitsError, match="seed must be an integer >= 0, got -1"):
        subset_indices(10, 3, -1)
    monkeypatch.setenv("HOME", str(tmp_path))
    np.savez(tmp_path / "x.npz", x=np.zeros((5, 2), dtype=np.float32), y=np.arange(5) % 2)
    assert len(load_data("~/x.npz").x_train) == 4
    from pruning_limits.cli._common import absolute_data_spec
    from pruning_limits.data import same_data_spec

    assert absolute_data_spec("~/x.npz") == str(tmp_path / "x.npz") and same_data_spec("~/x.npz", str(tmp_path / "x.npz"))
    bundle = load_data("synthetic:n=6,test=2,d=3")
    message = "data must be .*, got a DataBundle: pass bundle.train, its \\(x, y\\) training pair$"
    with pytest.raises(PruningLimitsError, match=message):
        next(iter_batches(bundle))
    with pytest.raises(PruningLimitsError, match=message):
        num_samples(bundle)
