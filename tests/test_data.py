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
    with pytest.raises(PruningLimitsError, match="does not exist"):
        load_data("/nonexistent/file.npz")
    with pytest.raises(PruningLimitsError, match="cannot import module"):
        load_data("no_such_module_xyz:make")
    with pytest.raises(PruningLimitsError, match="takes options"):
        load_data("synthetic:n=10,colour=3")
    with pytest.raises(PruningLimitsError, match="must be an integer"):
        load_data("synthetic:n=10.5")
    for spec in ("synthetic:n=1e20", "patterns:classes=1e19", "tokens:length=1e20"):  # tracebacks of torch's sizes
        with pytest.raises(PruningLimitsError, match="must be at most 9223372036854775807"):
            load_data(spec)
    with pytest.raises(PruningLimitsError, match="data option train is given twice"):
        load_data("digits:train=1000,train=500")
    with pytest.raises(PruningLimitsError, match="digits:train"):
        load_data("digits:train=5000")


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
    with pytest.raises(PruningLimitsError, match="must return"):
        load_data("pl_test_user_data:wrong")
    with pytest.raises(PruningLimitsError, match="no callable"):
        load_data("pl_test_user_data:missing")


def test_make_bundle_from_objects_and_label_range():
    x, y = torch.rand(10, 2, 3), torch.arange(10) % 4
    from_loader = make_bundle(DataLoader(TensorDataset(x, y), batch_size=3))
    assert from_loader.input_shape == (2, 3) and from_loader.num_outputs == 4
    assert torch.equal(materialize(TensorDataset(x, y))[0], x)
    with pytest.raises(PruningLimitsError, match="labels must lie in \\[0, 3\\)"):
        make_bundle((x, y), num_outputs=3)
    with pytest.raises(PruningLimitsError, match="test labels"):
        make_bundle((x, y % 2), (x, y), num_outputs=2)
    with pytest.raises(PruningLimitsError, match="sample shape"):
        make_bundle((x, y), (torch.rand(2, 5), y[:2]))
    assert isinstance(make_bundle((x.numpy(), y.numpy())), DataBundle)


def test_check_data_fits_model():
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
    with pytest.raises(PruningLimitsError, match="at least two classes, got the training labels all 0 and num_outputs 1"):
        make_bundle((torch.rand(5, 64), torch.zeros(5, dtype=torch.long)))
    assert make_bundle((torch.rand(5, 64), torch.zeros(5, dtype=torch.long)), num_outputs=3).num_outputs == 3


def test_a_token_beyond_the_vocabulary_is_named_before_any_work():
    """Every token is checked, not the first sample's alone (an IndexError deep in the gradient before)."""
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
    tokens = torch.randint(0, 5, (50, 4))
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
        make_bundle((x, nn.functional.one_hot(torch.arange(30) % 3).float()))  # several targets per sample
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
