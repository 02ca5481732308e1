"""User data that loads but means something else than the user thinks (a review of user-data
handling, second look): classes without a training sample, a single class, unscaled or int32
inputs, a 1-D ``x``, negative labels, hints for files in the wrong form, the ``.npz`` hold-out
and the ``--hessian-samples`` checks against it, and the seed of a Hessian subset.

Every message is one line; warnings are checked by their substance, refusals by theirs.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from pruning_limits._checks import PruningLimitsError
from pruning_limits.cli import cli
from pruning_limits.data import NPZ_TEST_FRACTION, check_data_fits_model, load_data, make_bundle
from pruning_limits.subsets import hessian_subset, num_samples, subset_indices, subset_record

pytestmark = pytest.mark.filterwarnings(r"ignore:.*torch\.jit.*:DeprecationWarning")


def _message(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert message and "\n" not in message, message
    return message


def _silent(func, *args, **kwargs):
    """``func(*args, **kwargs)`` with every warning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return func(*args, **kwargs)


def _warned(func, *args, **kwargs):
    """``(result, [messages])`` of the warnings ``func`` emits."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = func(*args, **kwargs)
    messages = [str(w.message) for w in caught]
    assert all("\n" not in m for m in messages), messages
    return result, messages


# --------------------------------------------------------------------------- classes


def test_labels_that_start_at_one_warn_and_keep_their_inferred_classes():
    """Labels {1, 2} built a 3-output network whose dead class 0 moved s* by 10 points, without a word."""
    x = torch.randn(40, 5)
    bundle, messages = _warned(make_bundle, (x, torch.arange(40) % 2 + 1))
    assert bundle.num_outputs == 3  # the inferred number is kept
    assert messages == [
        "the training labels start at 1: class 0 has no sample but gets an output of the model (3 classes), which "
        "changes D and s*; 1-based labels? subtract 1 (y - 1)"
    ]
    _, messages = _warned(make_bundle, (x, torch.arange(40) % 3 + 2))
    assert len(messages) == 1 and messages[0].startswith("the training labels start at 2: classes 0..1 have no sample")
    assert _silent(make_bundle, (x, torch.arange(40) % 2)).num_outputs == 2  # 0-based: nothing to say


def test_integer_values_with_many_gaps_warn_that_they_may_be_regression_targets(tmp_path):
    """Integer ages 18..73 were read as a 74-class classification, 30 classes never occurring."""
    ages = np.random.default_rng(0).integers(18, 74, 200)
    np.savez(tmp_path / "ages.npz", x=np.random.default_rng(1).normal(size=(200, 5)).astype(np.float32), y=ages)
    bundle, messages = _warned(load_data, str(tmp_path / "ages.npz"))
    assert bundle.num_outputs == int(ages.max()) + 1 and bundle.task == "classification"
    assert len(messages) == 1, messages
    assert "classes without a training sample, yet each gets an output of the model: integer values (ages, counts)? " \
        "store float targets for regression" in messages[0]
    present = len(np.unique(bundle.y_train.numpy()))
    assert messages[0].startswith(f"{present} distinct integer labels from ")


def test_a_class_the_training_part_lacks_is_named():
    x = torch.randn(30, 4)
    y, y_test = torch.arange(30) % 2, torch.tensor([0, 1, 2, 0])
    _, messages = _warned(make_bundle, (x, y), (x[:4], y_test))
    assert messages == ["class 2 of the 3 has no training sample (the test part holds it), yet it gets an output of the "
                        "model that training never fits"]


def test_the_missing_class_warning_reads_the_test_part_for_which_classes_it_holds_and_for_1_based_labels():
    """Training labels 1..9 and test labels 1..10 read "classes 0, 10 of the 11 have no training
    sample (the test part holds them)": the test part held 10 alone, and the labels were 1-based."""
    x = torch.randn(40, 3)
    _, messages = _warned(make_bundle, (x, torch.arange(40) % 9 + 1), (x[:10], torch.arange(10) + 1))
    assert messages == ["the training labels start at 1: class 0 has no sample but gets an output of the model (11 classes), "
                        "which changes D and s*; 1-based labels? subtract 1 (y - 1, y_test - 1); class 10 only in the test part"]
    _, messages = _warned(make_bundle, (x, torch.arange(40) % 2 + 2), (x[:6], torch.arange(6) % 3 + 1))
    assert messages == ["the labels start at 1: class 0 has no sample but gets an output of the model (4 classes), which "
                        "changes D and s*; 1-based labels? subtract 1 (y - 1, y_test - 1); class 1 only in the test part"]
    y = torch.arange(40) % 10
    y[y == 4] = 3
    _, messages = _warned(make_bundle, (x, y), (x[:3], torch.tensor([0, 1, 10])))
    assert messages == ["classes 4, 10 of the 11 have no training sample (the test part holds class 10), yet each gets an "
                        "output of the model that training never fits"]
    _, messages = _warned(make_bundle, (x, torch.arange(40) % 2 + 1), (x[:3], torch.tensor([0, 1, 2])))
    assert messages == ["class 0 of the 3 has no training sample (the test part holds it), yet it gets an output of the "
                        "model that training never fits"]  # no 1-based hint: the test part has a 0


def test_the_unstratified_hold_out_says_so_when_it_takes_a_rare_class(tmp_path):
    """24 × class 0, 24 × class 1, 2 × class 2: with --seed 21 both class-2 samples went to the
    test part, and train fitted a 3-output head on two classes without a word."""
    y = np.r_[np.zeros(24, int), np.ones(24, int), [2, 2]]
    np.savez(tmp_path / "rare.npz", x=np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32), y=y)
    for seed in range(40):
        bundle, messages = _warned(load_data, str(tmp_path / "rare.npz"), seed=seed)
        if 2 not in bundle.y_train.tolist():
            assert messages == ["class 2 of the 3 has no training sample (the test part holds it; the 20 % hold-out is not "
                                "stratified), yet it gets an output of the model that training never fits"]
            break
        assert messages == []
    else:
        pytest.fail("no seed put both class-2 samples in the test part")


def test_labels_of_a_subset_of_many_classes_and_given_classes_stay_silent():
    """Fewer samples than classes cannot hold every class (ImageNet labels on a small subset);
    a given num_outputs and a checkpoint's head (classes_from="model") decide for themselves."""
    x = torch.zeros(20, 2)
    assert _silent(make_bundle, (x, torch.arange(20) * 50)).num_outputs == 951
    assert _silent(make_bundle, (x, torch.arange(20) % 2 + 1), num_outputs=3).num_outputs == 3
    assert _silent(make_bundle, (x, torch.arange(20) % 2 + 1), classes_from="model").num_outputs == 3
    assert _silent(load_data, "digits").num_outputs == 10


def test_one_training_class_is_refused_whichever_label_it_carries(tmp_path):
    """All-0 labels were refused with advice the command line cannot follow (num_outputs), all-1
    labels trained a 2-output head on one class without a word."""
    x = torch.randn(10, 3)
    for label in (0, 1, 4):
        with pytest.raises(PruningLimitsError) as info:
            make_bundle((x, torch.full((10,), label)))
        assert _message(info) == (
            f"classification needs at least two classes, got the training labels all {label} and num_outputs not given "
            f"(inferred {label + 1}): one class; give num_outputs >= 2 to use them with a model of more outputs, or float "
            "targets for regression"
        )
        assert make_bundle((x, torch.full((10,), label)), num_outputs=label + 2).num_outputs == label + 2  # given: kept
        path = tmp_path / f"all{label}.npz"
        np.savez(path, x=x.numpy(), y=np.full(10, label))
        with pytest.raises(PruningLimitsError) as info:
            load_data(str(path))
        assert _message(info) == (
            f"classification needs at least two classes, got the training labels of {str(path)!r} all {label}: one class; "
            "store labels of at least two classes, or float targets for regression"
        )
        assert "num_outputs" not in str(info.value)
        assert load_data(str(path), classes_from="model").y_train.unique().tolist() == [label]
    with pytest.raises(PruningLimitsError) as info:
        make_bundle((x, torch.zeros(10, dtype=torch.long)), num_outputs=1)  # one logit: a loss of 0 whatever the weights
    assert "all 0 and num_outputs 1: one class" in _message(info)  # given: named as given
    with pytest.raises(PruningLimitsError, match="classes_from must be one of labels, model, got 'head'"):
        make_bundle((x, torch.arange(10) % 2), classes_from="head")


def test_a_checkpoints_head_decides_about_one_class():
    x = torch.randn(10, 3)
    for label in (0, 1):
        bundle = make_bundle((x, torch.full((10,), label)), classes_from="model")
        _, messages = _warned(check_data_fits_model, nn.Linear(3, 2), bundle)
        assert messages == [f"the training labels of <python object> are all {label}: one class, analysed with the model's 2 outputs"]
        with pytest.raises(PruningLimitsError) as info:
            check_data_fits_model(nn.Linear(3, 1), bundle)
        assert _message(info).startswith(f"model Linear returns shape (1, 1) for one sample, expected (1, C) with C >= 2 "
                                         f"(one class, the training labels all {label},")
    _silent(check_data_fits_model, nn.Linear(3, 2), make_bundle((x, torch.arange(10) % 2)))


def test_a_raw_pair_is_judged_by_the_models_head_not_by_its_labels():
    """check_data_fits_model(model, (x, y)) refused labels all 3 with advice about a num_outputs
    it does not take, and counted missing classes against the labels, not the 10 outputs."""
    head = nn.Linear(4, 10)
    _, messages = _warned(check_data_fits_model, head, (torch.randn(20, 4), torch.full((20,), 3)))
    assert messages == ["the training labels of <python object> are all 3: one class, analysed with the model's 10 outputs"]
    _silent(check_data_fits_model, head, (torch.randn(20, 4), torch.arange(20) % 3 + 1))  # 1..3 of 10 outputs
    with pytest.raises(PruningLimitsError) as info:
        check_data_fits_model(nn.Linear(4, 3), (torch.randn(20, 4), torch.arange(20) % 5))
    assert _message(info).startswith("model Linear returns shape (1, 3) for one sample, expected (1, C) with C >= 5 (5 classes")


def test_negative_labels_are_refused_without_a_circular_range():
    """Labels {-1, 0} read "must lie in [0, 1), got labels from -1": the bound came from the labels."""
    x = torch.zeros(6, 2)
    with pytest.raises(PruningLimitsError) as info:
        make_bundle((x, torch.tensor([-1, 0, -1, 0, 0, -1])))
    assert _message(info) == ("training labels must lie in [0, K): integer targets are class indices 0, 1, ..., K − 1 "
                              "and must be >= 0, got labels from -1 to 0")
    with pytest.raises(PruningLimitsError) as info:
        make_bundle((x, torch.tensor([0, 1, -100, 1, 0, 1])))
    assert _message(info).endswith("got labels from -100 to 1; -100 (PyTorch's ignore_index) is not skipped here: drop those samples")
    with pytest.raises(PruningLimitsError, match="test labels must lie in \\[0, K\\): .* got labels from -2 to 0"):
        make_bundle((x, torch.arange(6) % 2), (x[:2], torch.tensor([0, -2])))


def test_integer_one_hot_targets_are_told_to_use_argmax():
    x = torch.zeros(6, 2)
    with pytest.raises(PruningLimitsError) as info:
        make_bundle((x, nn.functional.one_hot(torch.arange(6) % 3)))
    assert _message(info) == ("training data: integer targets (class labels) must be 1-D, got shape (6, 3); "
                              "one-hot rows? store y.argmax(1)")
    with pytest.raises(PruningLimitsError) as info:
        make_bundle((x, torch.ones(6, 2, dtype=torch.long)))
    assert _message(info) == "training data: integer targets (class labels) must be 1-D, got shape (6, 2)"


# --------------------------------------------------------------------------- inputs


def test_unscaled_integer_inputs_warn_and_are_used_as_stored(tmp_path):
    """uint8 pixels 0..255 diverged in training with an error that blamed the learning rate."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 3, 4, 4)).astype(np.uint8)
    pixels[0, 0, 0, 0], pixels[0, 0, 0, 1] = 255, 0
    y = np.arange(40) % 2
    np.savez(tmp_path / "u8.npz", x=pixels, y=y, x_test=pixels[:4], y_test=y[:4])
    bundle, messages = _warned(load_data, str(tmp_path / "u8.npz"))
    assert messages == ["the training inputs are uint8 values from 0 to 255 of shape (40, 3, 4, 4), used as stored (float32, "
                        "not scaled): pixels? divide them by 255 (x / 255.0); other features: scale them"]  # one: the test part too
    assert torch.equal(bundle.x_train, torch.from_numpy(pixels.astype(np.float32)))  # not scaled
    for dtype in (np.uint16, np.uint32, np.uint64):  # torch has no max of these: read on the float32 copy
        np.savez(tmp_path / "wide.npz", x=np.full((10, 2, 2), 1000, dtype), y=np.arange(10) % 2)
        _, messages = _warned(load_data, str(tmp_path / "wide.npz"))
        assert messages == [f"the training inputs are {np.dtype(dtype).name} values from 1000 to 1000 of shape (8, 2, 2), used "
                            "as stored (float32, not scaled): pixels? divide them by 255 (x / 255.0); other features: scale them"]
    _silent(make_bundle, (torch.from_numpy(pixels // 2), torch.from_numpy(y)))  # below 255
    _silent(make_bundle, (torch.from_numpy(pixels.astype(np.float32)), torch.from_numpy(y)))  # floats: the user's scale
    _silent(make_bundle, (torch.from_numpy(pixels.astype(np.int64)), torch.from_numpy(y)))  # int64: tokens


def test_int32_sequences_are_told_that_only_int64_stays_tokens(tmp_path):
    """int32 token ids became float32 and the transformer answered about its patch size."""
    tokens = np.random.default_rng(0).integers(0, 20, (30, 6)).astype(np.int32)
    np.savez(tmp_path / "tok32.npz", x=tokens, y=np.arange(30) % 2)
    bundle, messages = _warned(load_data, str(tmp_path / "tok32.npz"))
    assert bundle.x_train.dtype == torch.float32
    low, high = int(bundle.x_train.min()), int(bundle.x_train.max())  # the training part's, not the file's
    assert messages == [f"the training inputs are int32 values from {low} to {high} of shape (24, 6), used as "
                        "stored (float32, not scaled): token indices? store them as int64 (x.astype(np.int64))"]
    _, messages = _warned(make_bundle, (torch.full((4, 3), 300, dtype=torch.int16), torch.arange(4) % 2))
    assert messages == ["the training inputs are int16 values from 300 to 300 of shape (4, 3), used as stored (float32, not scaled): "
                        "token indices? store them as int64 (x.astype(np.int64)); pixels? divide them by 255 (x / 255.0); "
                        "other features: scale them"]
    _silent(make_bundle, (torch.ones(4, 3, dtype=torch.uint8), torch.arange(4) % 2))  # small unsigned features


def test_unscaled_test_inputs_beside_float_training_inputs_warn():
    """x / 255 saved for x but forgotten for x_test passed silently: only the training part was read."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(40, 1, 4, 4, generator=g), torch.arange(40) % 2
    pixels = torch.randint(0, 256, (10, 1, 4, 4), generator=g, dtype=torch.uint8)
    pixels[0, 0, 0, :2] = torch.tensor([0, 255], dtype=torch.uint8)
    bundle, messages = _warned(make_bundle, (x, y), (pixels, torch.arange(10) % 2))
    assert messages == ["the test inputs are uint8 values from 0 to 255 of shape (10, 1, 4, 4), beside float32 training "
                        "inputs, used as stored (float32, not scaled): pixels? divide them by 255 (x / 255.0); other "
                        "features: scale them"]
    assert torch.equal(bundle.x_test, pixels.float())  # not scaled
    # integers beside floats speak below 255 too; the parts' roles swapped, the training part speaks
    _, messages = _warned(make_bundle, (pixels // 2, torch.arange(10) % 2), (x, y))
    assert messages == ["the training inputs are uint8 values from 0 to 127 of shape (10, 1, 4, 4), beside float32 test "
                        "inputs, used as stored (float32, not scaled): scale them as the test inputs are"]
    _silent(make_bundle, (pixels // 2, torch.arange(10) % 2), (pixels[:4] // 2, torch.arange(4) % 2))  # alike, small
    _, messages = _warned(make_bundle, (pixels // 2, torch.arange(10) % 2), (pixels, torch.arange(10) % 2))
    assert len(messages) == 1 and messages[0].startswith("the test inputs are uint8 values from 0 to 255 of shape (10, ")


def test_the_integer_input_warning_names_the_range_the_parts_shape_and_the_caller(tmp_path):
    """-300 read "values up to 300", the .npz hold-out gave the whole file's shape as the training
    inputs', and the warning pointed into data.py."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_bundle((torch.tensor([[-300, 2, 7, 1]] * 3, dtype=torch.int16), torch.arange(3) % 2))
    assert [str(w.message).split(" of shape")[0] for w in caught] == ["the training inputs are int16 values from -300 to 7"]
    assert caught[0].filename == __file__
    np.savez(tmp_path / "u8.npz", x=np.full((100, 2, 2), 255, np.uint8), y=np.arange(100) % 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bundle = load_data(str(tmp_path / "u8.npz"))
    assert len(bundle.x_train) == 80
    assert [str(w.message).split(", used")[0] for w in caught] == [
        "the training inputs are uint8 values from 255 to 255 of shape (80, 2, 2)"
    ]
    assert caught[0].filename == __file__  # load_data's caller
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_bundle((torch.full((6, 2), 255, dtype=torch.uint8), torch.arange(6) % 2))
    assert len(caught) == 1 and caught[0].filename == __file__  # make_bundle's caller


def test_one_dimensional_inputs_are_refused_with_the_reshape(tmp_path):
    """x of shape (N,) failed in the model builder: "cannot build a model for input shape ()"."""
    np.savez(tmp_path / "x1d.npz", x=np.linspace(0, 1, 60).astype(np.float32), y=np.arange(60) % 2)
    with pytest.raises(PruningLimitsError) as info:
        load_data(str(tmp_path / "x1d.npz"))
    assert _message(info) == ("training inputs of shape (48,) hold one value per sample: store x as (N, 1) (x[:, None]), "
                              "one feature per sample")
    np.savez(tmp_path / "x2d.npz", x=np.linspace(0, 1, 60).astype(np.float32)[:, None], y=np.arange(60) % 2)
    assert load_data(str(tmp_path / "x2d.npz")).input_shape == (1,)


# --------------------------------------------------------------------------- files


def test_files_in_the_wrong_form_are_told_how_to_save_them(tmp_path):
    x, y = np.zeros((10, 2), np.float32), np.arange(10) % 2
    np.savez(tmp_path / "positional.npz", x, y)
    with pytest.raises(PruningLimitsError) as info:
        load_data(str(tmp_path / "positional.npz"))
    assert _message(info).endswith("found ['arr_0', 'arr_1'] (saved without names: save with np.savez(path, x=x, y=y))")
    np.savez(tmp_path / "named.npz", X=x, Y=y)
    with pytest.raises(PruningLimitsError) as info:
        load_data(str(tmp_path / "named.npz"))
    assert _message(info).endswith("found ['X', 'Y']")
    np.save(tmp_path / "one.npy", x)
    with pytest.raises(PruningLimitsError) as info:
        load_data(str(tmp_path / "one.npy"))
    assert _message(info).endswith("; a .npy file holds one array: put x and y in an .npz (np.savez(path, x=x, y=y))")
    with pytest.raises(PruningLimitsError) as info:
        load_data(str(tmp_path / "table.csv"))
    assert _message(info).endswith("; read it into arrays and save them as an .npz (np.savez(path, x=x, y=y))")


def test_a_member_with_an_oversized_header_is_no_numeric_array(tmp_path):
    """A structured dtype of 600 fields gave numpy's "may not be safe to load securely"."""
    structured = np.zeros(10, dtype=[(f"f{i}", "f4") for i in range(600)])
    path = tmp_path / "hdr.npz"
    np.savez(path, x=structured, y=np.arange(10) % 2)
    with zipfile.ZipFile(path) as archive:
        assert len(archive.read("x.npy")) > 10_000
    with pytest.raises(PruningLimitsError) as info:
        load_data(str(path))
    assert _message(info) == (f"array x of {str(path)!r} must be a numeric array, got a .npy header too large to read "
                              "safely (a structured dtype of many fields?)")


# --------------------------------------------------------------------------- the hold-out


def test_the_hold_out_is_the_same_split_from_one_permuted_copy(tmp_path):
    """The split is unchanged (bundles store its seed and reuse it); its parts are views of one
    permuted copy, not two fancy-indexed copies beside the file's arrays."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(53, 4)).astype(np.float32), rng.integers(0, 3, 53)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    for seed in (0, 7):
        bundle = _silent(load_data, str(tmp_path / "d.npz"), seed=seed)
        n_test = max(1, int(round(NPZ_TEST_FRACTION * len(x))))
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        tr, te = perm[n_test:], perm[:n_test]
        assert torch.equal(bundle.x_train, torch.from_numpy(x)[tr]) and torch.equal(bundle.y_train, torch.from_numpy(y)[tr])
        assert torch.equal(bundle.x_test, torch.from_numpy(x)[te]) and torch.equal(bundle.y_test, torch.from_numpy(y)[te])
        assert bundle.x_train.untyped_storage().data_ptr() == bundle.x_test.untyped_storage().data_ptr()
        assert bundle.to_dict()["train_size"] == 42 and bundle.to_dict()["test_size"] == 11


def test_a_hessian_subset_records_its_seed_and_counts_a_pair_without_rescanning():
    x, y = torch.randn(30, 3), torch.arange(30) % 3
    model = nn.Linear(3, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the rank hazard of so few samples
        record = subset_record(model, (x, y), 5, 12, tolerance=0.002, seed=4)
    assert record["seed"] == 4 and record["samples"] == 5 and record["total"] == 30
    assert "seed" not in subset_record(model, (x, y), None, 12, tolerance=0.002)  # without a seed: as before
    assert subset_record(model, (x, y), None, 12, tolerance=0.002, seed=4)["seed"] == 4
    index = subset_indices(30, 5, 4)
    sub = hessian_subset((x, y), 5, 4)
    assert torch.equal(sub[0], x[index]) and torch.equal(sub[1], y[index])
    assert num_samples((x, y)) == 30 and num_samples((x.numpy(), y.numpy())) == 30
    with pytest.raises(PruningLimitsError, match="differ in length"):
        num_samples((x, y[:3]))


# --------------------------------------------------------------------------- the command line


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _fails(*args, match: str) -> str:
    result = _run(*args)
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and match in lines[0], result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def split_bundle(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny MLP trained on an .npz of 60 samples without a test set (48 train / 12 held out)."""
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    np.savez(folder / "d.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    path = folder / "model.pt"
    result = _run("train", "--model", "mlp:4", "--data", folder / "d.npz", "--l1", "0", "--epochs", "1", "-o", path, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return path, json.loads(result.stdout)


def test_train_reports_the_hold_out(split_bundle, tmp_path):
    path, record = split_bundle
    assert {k: record["data"][k] for k in ("train_size", "test_size", "test_source")} == {
        "train_size": 48, "test_size": 12, "test_source": "split"}
    assert record["training"]["data_seed"] == 0
    result = _run("train", "--model", "mlp:4", "--data", Path(record["data_spec"]), "--l1", "0", "--epochs", "1",
                  "--seed", "3", "-o", tmp_path / "b.pt", "-v")
    assert result.exit_code == 0, result.stderr
    assert "data split            48 train / 12 held out as test (20 %, seed 3)" in result.stdout
    digits = _run("train", "--model", "mlp:4", "--l1", "0", "--epochs", "1", "-o", tmp_path / "c.pt", "-v")
    assert digits.exit_code == 0 and "data split" not in digits.stdout  # a given test set: nothing held out


@pytest.mark.parametrize(("samples", "match"), [
    ("0", "--hessian-samples must be an integer >= 1, got 0 (int)"),
    ("-3", "--hessian-samples must be an integer >= 1, got -3 (int)"),
    ("49", "--hessian-samples must be at most the 48 training samples (60 in the file, 12 held out as test), got 49"),
])
def test_hessian_samples_out_of_range_are_refused_before_any_work(split_bundle, samples, match):
    path, _ = split_bundle
    for command in ("spectrum", "predict"):
        _fails(command, path, "--hessian-samples", samples, "--iterations", "4", "--probes", "1", match=match)


def test_hessian_samples_help_names_the_regression_rank():
    result = _run("spectrum", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Warns when N x (classes - 1), for regression N x outputs, is too small for D" in text
    train_help = " ".join(_run("train", "--help").stdout.split())
    assert "holds out 20 % of its samples as test, drawn with --seed" in train_help and "not stratified" in train_help


def test_one_class_data_the_cli_way(split_bundle, tmp_path):
    """train refuses one class whatever the label, without advising num_outputs; predict against a
    checkpoint with a 2-class head analyses it, with a warning (all 0 was refused before)."""
    path, _ = split_bundle
    x = np.random.default_rng(1).normal(size=(30, 5)).astype(np.float32)
    for label in (0, 1):
        data = tmp_path / f"all{label}.npz"
        np.savez(data, x=x, y=np.full(30, label))
        line = _fails("train", "--model", "mlp:4", "--data", data, "--l1", "0", "--epochs", "1", "-o", tmp_path / "o.pt",
                      match=f"classification needs at least two classes, got the training labels of {str(data)!r} all {label}: one class")
        assert "num_outputs" not in line
        result = _run("predict", path, "--data", data, "--epsilon", "0.1", "--iterations", "4", "--probes", "1", "--seed", "0")
        assert result.exit_code == 0, result.stderr
        assert f"warning: the training labels of {data} are all {label}: one class, analysed with the model's 2 outputs" in result.stderr
    assert not (tmp_path / "o.pt").exists()


def test_spectrum_json_records_the_subset_seed(split_bundle):
    path, _ = split_bundle
    result = _run("spectrum", path, "--hessian-samples", "40", "--iterations", "4", "--probes", "1", "--seed", "5", "--json")
    assert result.exit_code == 0, result.stderr
    subset = json.loads(result.stdout)["stopping"]["hessian_subset"]
    assert subset["seed"] == 5 and subset["samples"] == 40 and subset["total"] == 48
