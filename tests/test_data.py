import random
import sys
import types

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
