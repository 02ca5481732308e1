"""Checkpoints: bundles, state_dicts, TorchScript, refusal of pickles, atomic writes, validation."""

from __future__ import annotations

import os
import re
import stat
from typing import Tuple

import pytest
import torch
from torch import nn

from pruning_limits._checks import PruningLimitsError
from pruning_limits.checkpoint import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    atomic_open,
    atomic_write,
    build_from_checkpoint,
    check_model,
    check_state_dict_fits,
    read_checkpoint,
    save_bundle,
    save_torchscript,
)
from pruning_limits.data import load_data
from pruning_limits.models import build_model

from conftest import one_line


# TorchScript is deprecated upstream but still a checkpoint format users hand us.
pytestmark = pytest.mark.filterwarnings(r"ignore:.*torch\.jit.*:DeprecationWarning")

@pytest.fixture(scope="module")
def digits():
    return load_data("digits", seed=0)


@pytest.fixture()
def model(digits):
    return build_model("mlp:8", digits, seed=1)


class _NoPrunable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _no_temp_files(folder) -> bool:
    return not [name for name in os.listdir(folder) if name.endswith(".tmp")]


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_write_text_and_bytes(tmp_path):
    atomic_write(tmp_path / "a.txt", "héllo\n")
    atomic_write(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert _no_temp_files(tmp_path)


def test_atomic_write_gives_the_mode_open_would(tmp_path):
    # mkstemp's temporary file is private (0600): the result must not stay so
    previous = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.txt", "x")
        open(tmp_path / "b.txt", "w").close()
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o644


def test_atomic_write_over_a_file_keeps_its_mode_and_its_symlink(tmp_path):
    """Overwriting a 0600 file made it 0644; a symbolic link became a regular file."""
    private = tmp_path / "private.pt"
    private.write_text("old")
    private.chmod(0o600)
    atomic_write(private, "new")
    assert private.read_text() == "new" and stat.S_IMODE(private.stat().st_mode) == 0o600
    real = tmp_path / "real"
    real.mkdir()
    (real / "m.pt").write_text("old")
    link = tmp_path / "link.pt"
    link.symlink_to(real / "m.pt")
    atomic_write(link, "new")
    assert link.is_symlink() and (real / "m.pt").read_text() == "new"
    assert _no_temp_files(tmp_path) and _no_temp_files(real)


def test_atomic_open_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="^boom$"):  # the caller's own error, passed on as it was
        with atomic_open(target, "w") as handle:
            handle.write("half of the new content")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert _no_temp_files(tmp_path)


def test_atomic_open_failure_creates_nothing(tmp_path):
    target = tmp_path / "new.pt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(target) as handle:
            handle.write(b"abc")
            raise KeyboardInterrupt
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_atomic_open_missing_directory(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(PruningLimitsError, match=(
        rf"^cannot write {re.escape(repr(str(missing / 'x.txt')))}: directory {re.escape(repr(str(missing)))} does not exist$"
    )) as info:
        atomic_write(missing / "x.txt", "x")
    one_line(info)


# ----------------------------------------------------------------------------- bundles


def test_bundle_round_trip_without_data(tmp_path, model, digits):
    path = tmp_path / "model.pt"
    save_bundle(path, model, model_spec="mlp:8", data_spec="digits", training={"l1": 1e-4, "epochs": 3, "data_seed": 0})
    raw = torch.load(path, weights_only=True)  # the bundle is weights_only-loadable by construction
    assert raw["format"] == BUNDLE_FORMAT and raw["version"] == BUNDLE_VERSION
    assert set(raw) >= {"format", "version", "state_dict", "model_spec", "data_spec", "training", "library_version"}

    checkpoint = read_checkpoint(path)
    assert checkpoint.kind == "bundle"
    assert checkpoint.model_spec == "mlp:8" and checkpoint.data_spec == "digits"
    assert checkpoint.training == {"l1": 1e-4, "epochs": 3, "data_seed": 0}
    rebuilt = build_from_checkpoint(checkpoint, seed=7)  # sizes come from the stored model record
    for (name, a), (_, b) in zip(model.state_dict().items(), rebuilt.state_dict().items()):
        assert torch.equal(a, b), name
    x = digits.x_train[:5]
    assert torch.equal(model.eval()(x), rebuilt(x))
    assert not rebuilt.training


def test_bundle_settings_must_be_plain(tmp_path, model):
    with pytest.raises(PruningLimitsError, match="training settings"):
        save_bundle(tmp_path / "m.pt", model, model_spec="mlp:8", data_spec="digits", training={"f": object()})
    assert not (tmp_path / "m.pt").exists()


def test_subclasses_of_plain_settings_are_stored_as_plain_types(tmp_path, model):
    """``np.float64`` (a float) and torch's ``TorchVersion`` (a str) were stored as they were, and
    the bundle's own reader refused the file (a validation script's cache, 2026-12-06)."""
    import enum

    import numpy as np

    class Size(enum.IntEnum):
        SMALL = 3

    path = tmp_path / "m.pt"
    training = {"loss": np.float64(0.25), "torch": torch.__version__, "size": Size.SMALL, "flag": np.bool_(True),
                "nested": [np.float64(1.5), {"k": np.int64(4)}]}
    save_bundle(path, model, model_spec="mlp:8", data_spec="digits", training=training)
    stored = read_checkpoint(path).training
    assert stored == {"loss": 0.25, "torch": str(torch.__version__), "size": 3, "flag": True,
                      "nested": [1.5, {"k": 4}]}
    assert [type(stored[k]) for k in ("loss", "torch", "size", "flag")] == [float, str, int, bool]
    assert type(stored["nested"][0]) is float and type(stored["nested"][1]["k"]) is int


def test_bundle_of_other_version_is_refused(tmp_path, model):
    """A newer bundle says to upgrade, naming the release that wrote it when it records one (a review)."""
    path = tmp_path / "future.pt"
    torch.save({"format": BUNDLE_FORMAT, "version": 99, "state_dict": model.state_dict()}, path)
    with pytest.raises(PruningLimitsError, match=(
        rf"^{re.escape(repr(str(path)))} is a pruning-limits bundle of version 99; this release reads version {BUNDLE_VERSION}: "
        "upgrade pruning-limits to read it$"
    )) as info:
        read_checkpoint(path)
    one_line(info)
    torch.save({"format": BUNDLE_FORMAT, "version": 99, "state_dict": model.state_dict(), "library_version": "9.1.0"}, path)
    with pytest.raises(PruningLimitsError, match=(
        rf"bundle of version 99 \(written by pruning-limits 9\.1\.0\); this release reads version {BUNDLE_VERSION}: upgrade"
    )):
        read_checkpoint(path)
    torch.save({"format": BUNDLE_FORMAT, "version": 99, "state_dict": model.state_dict(), "library_version": "9\nx"}, path)
    with pytest.raises(PruningLimitsError, match=rf"bundle of version 99; this release reads version {BUNDLE_VERSION}: upgrade") as info:
        read_checkpoint(path)  # a recorded version that is not one is left out, not printed
    one_line(info)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("training", "abc", "stores a training record that is not a mapping, got 'abc' \\(str\\)"),
        ("model_record", [1, 2], "stores a model record that is not a mapping, got \\[1, 2\\] \\(list\\)"),
        ("pruning", "x", "stores a pruning record that is not a mapping"),
        ("training", {"data_seed": "x"}, "stores a data seed that is not an integer in \\[0, 2\\*\\*64\\), got 'x' \\(str\\)"),
        ("training", {"data_seed": 2**70}, "stores a data seed that is not an integer"),
        ("training", {"data_seed": 1.5}, "stores a data seed that is not an integer"),
        ("data_spec", 5, "stores a data spec that is not a string, got 5 \\(int\\)"),
        ("data_spec", ["digits"], "stores a data spec that is not a string, got \\['digits'\\] \\(list\\)"),
        ("model_spec", 7, "stores a model spec that is not a string, got 7 \\(int\\)"),
    ],
)
def test_a_malformed_bundle_record_is_one_line(tmp_path, model, key, value, match):
    """Each record of a bundle is a mapping, its data seed a seed, its specs strings (tracebacks,
    'int' object has no attribute 'strip' among them, or 1.5 read as 1, before)."""
    path = tmp_path / "bad.pt"
    save_bundle(path, model, model_spec="mlp:8", data_spec="digits", training={"data_seed": 0})
    content = torch.load(path, weights_only=True)
    content[key] = value
    torch.save(content, path)
    with pytest.raises(PruningLimitsError, match=match) as info:
        read_checkpoint(path)
    assert "\n" not in str(info.value)


def test_a_truncated_checkpoint_is_called_damaged(tmp_path, model):
    whole = tmp_path / "m.pt"
    torch.save(model.state_dict(), whole)
    data = whole.read_bytes()
    for share in (0.5, 0.9):
        cut = tmp_path / f"cut-{share}.pt"
        cut.write_bytes(data[: int(len(data) * share)])
        with pytest.raises(PruningLimitsError, match="is a damaged or truncated checkpoint") as info:
            read_checkpoint(cut)
        assert "cannot read checkpoint" not in str(info.value)  # it said "Invalid argument" as if the disk failed
        assert len(str(info.value)) < 160, str(info.value)  # not torch's 300-character paragraph (a review)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64])
def test_a_state_dict_of_integers_or_complex_numbers_is_refused(tmp_path, model, digits, dtype):
    """load_state_dict casts them silently (integer weights truncated to 0: a 'prediction' of 100 %)."""
    path = tmp_path / "int.pt"
    torch.save({k: v.to(dtype) for k, v in model.state_dict().items()}, path)
    with pytest.raises(PruningLimitsError, match=f"floating-point tensors expected, got \\[1.weight {dtype}"):
        build_from_checkpoint(read_checkpoint(path), model_spec="mlp:8", data=digits)


@pytest.mark.parametrize(
    "architectures", [{"x": 1}, 5, "BertModel", []], ids=["dict", "int", "string", "empty"]
)
def test_a_hugging_face_config_without_a_list_of_architectures_is_one_line(tmp_path, architectures):
    """Checked before transformers is imported (KeyError, TypeError or 'no model class B' before)."""
    import json

    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": architectures}))
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(PruningLimitsError, match="must name model_type and architectures"):
        read_checkpoint(folder)


# ----------------------------------------------------------------------------- state_dicts


def test_plain_state_dict_needs_model_spec(tmp_path, model, digits):
    path = tmp_path / "sd.pt"
    torch.save(model.state_dict(), path)
    checkpoint = read_checkpoint(path)
    assert checkpoint.kind == "state_dict"
    with pytest.raises(PruningLimitsError, match=(
        rf"^{re.escape(repr(str(path)))} is a plain state_dict: give the architecture with --model SPEC \(and --data to size it\)$"
    )) as info:
        build_from_checkpoint(checkpoint, data=digits)
    one_line(info)
    rebuilt = build_from_checkpoint(checkpoint, model_spec="mlp:8", data=digits)
    assert torch.equal(rebuilt.state_dict()["1.weight"], model.state_dict()["1.weight"])


def test_state_dict_under_a_key(tmp_path, model, digits):
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "state_dict": model.state_dict()}, path)
    checkpoint = read_checkpoint(path)
    assert checkpoint.kind == "state_dict"
    build_from_checkpoint(checkpoint, model_spec="mlp:8", data=digits)


def test_state_dict_mismatch_names_the_keys(model, digits):
    other = build_model("mlp:9", digits)
    with pytest.raises(PruningLimitsError) as info:
        check_state_dict_fits(other, model.state_dict())
    message = str(info.value)
    assert "mis-shaped" in message and "1.weight (8, 64) vs (9, 64)" in message
    assert message.startswith("the state_dict does not fit model Sequential: ")  # no spec: the class
    state = dict(model.state_dict())
    state.pop("3.bias")
    state["extra.weight"] = torch.zeros(2)
    with pytest.raises(PruningLimitsError) as info:
        check_state_dict_fits(model, state)
    message = str(info.value)
    assert "missing keys [3.bias]" in message and "unexpected keys [extra.weight]" in message
    assert "\n" not in message


def test_state_dict_mismatch_names_the_model_spec(tmp_path, model, digits):
    """It named the class ("does not fit model Sequential"), not the spec the user gave or the
    bundle stored."""
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(PruningLimitsError, match=(
        r"^the state_dict does not fit model 'mlp:9': mis-shaped \(checkpoint vs model\) \[1\.weight \(8, 64\) vs \(9, 64\)"
    )) as info:
        build_from_checkpoint(read_checkpoint(path), model_spec="mlp:9", data=digits)
    one_line(info)
    bundle = tmp_path / "bundle.pt"  # a bundle whose stored spec does not fit its weights
    save_bundle(bundle, model, model_spec="mlp:4", data_spec="digits")
    with pytest.raises(PruningLimitsError, match=r"^the state_dict does not fit model 'mlp:4': mis-shaped ") as info:
        build_from_checkpoint(read_checkpoint(bundle))
    one_line(info)


def test_non_finite_weights_are_refused(tmp_path, model, digits):
    state = dict(model.state_dict())
    state["3.weight"] = state["3.weight"].clone()
    state["3.weight"][0, 0] = float("nan")
    path = tmp_path / "nan.pt"
    torch.save(state, path)
    with pytest.raises(PruningLimitsError, match=r"3\.weight contains NaN or infinite"):
        build_from_checkpoint(read_checkpoint(path), model_spec="mlp:8", data=digits)


def test_a_model_declared_larger_than_its_weights_is_refused_before_it_is_built(tmp_path, model, digits, monkeypatch):
    """The model was built at the size the bundle declares before its shapes were checked: a
    2.8 KB bundle naming mlp:16000,16000 took 1.28 GB, and mlp:2000000,2000000 (16 TB) ended in
    an allocation error. It is built on the meta device first, so the mismatch is named at no cost."""
    import pruning_limits.models as models

    construct = models._construct
    built_on_meta = []  # per construction of the model: whether its tensors were meta tensors

    def spied(*args, **kwargs):
        built_on_meta.append(torch.empty(0).is_meta)
        return construct(*args, **kwargs)

    path = tmp_path / "big.pt"
    save_bundle(path, model, model_spec="mlp:8", data_spec="digits")
    content = torch.load(path, weights_only=True)
    content["model_spec"] = content["model_record"]["spec"] = "mlp:2000000,2000000"
    torch.save(content, path)
    with monkeypatch.context() as patch:
        patch.setattr(models, "_construct", spied)
        with pytest.raises(PruningLimitsError, match=r"mis-shaped \(checkpoint vs model\) \[1.weight \(8, 64\) vs \(2000000, 64\)"):
            build_from_checkpoint(read_checkpoint(path))
    assert built_on_meta == [True]  # built once, on the meta device only
    # a model that cannot be built on the meta device is built as before

    def not_on_meta(*args, **kwargs):
        if torch.empty(0).is_meta:
            raise NotImplementedError("no meta tensors here")
        return construct(*args, **kwargs)

    monkeypatch.setattr(models, "_construct", not_on_meta)
    save_bundle(path, model, model_spec="mlp:8", data_spec="digits")
    rebuilt = build_from_checkpoint(read_checkpoint(path))
    assert torch.equal(rebuilt.state_dict()["1.weight"], model.state_dict()["1.weight"])


def test_model_without_prunable_weights_is_refused():
    with pytest.raises(PruningLimitsError, match="no prunable weights"):
        check_model(_NoPrunable())


# ----------------------------------------------------------------------------- TorchScript and pickles


class _WritesOnLoad(nn.Module):
    """Its ``__setstate__``, run by ``torch.jit.load``, writes ``L`` into the file its state names."""

    def __init__(self, victim: str) -> None:
        super().__init__()
        self.victim = victim
        self.marker = torch.zeros(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, torch.Tensor, bool]:
        return (self.victim, self.marker, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, torch.Tensor, bool]) -> None:
        written = torch.from_file(state[0], shared=True, size=1, dtype=torch.uint8)
        written.fill_(76)
        self.victim = state[0]
        self.marker = state[1] + written.sum().float() * 0  # used, so that the compiler keeps the write
        self.training = state[2]


class _ScriptedWithHook(nn.Module):
    def __init__(self, victim: str) -> None:
        super().__init__()
        self.hook = _WritesOnLoad(victim)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.hook(x))


def test_a_torchscript_archive_runs_no_code_without_trust(tmp_path):
    """torch.jit.load runs the archive's own code (a __setstate__, then its forward): one that
    wrote into any file the user can write was loaded, pruned and written back without a word."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"....")
    path = tmp_path / "evil_ts.pt"
    torch.jit.save(torch.jit.script(_ScriptedWithHook(str(victim))), str(path))
    assert victim.read_bytes() == b"...."
    with pytest.raises(PruningLimitsError, match=(
        "is a TorchScript archive, whose loading and calling run the code stored in it; refusing it. "
        ".*--trust-checkpoint"
    )) as info:
        read_checkpoint(path)
    assert "\n" not in str(info.value)
    assert victim.read_bytes() == b"...."
    assert read_checkpoint(path, trust=True).kind == "torchscript"  # trusted: loaded, and its code ran
    assert victim.read_bytes() == b"L..."


def test_torchscript_archive(tmp_path, model, digits):
    path = tmp_path / "scripted.pt"
    save_torchscript(path, torch.jit.script(model.eval()))
    checkpoint = read_checkpoint(path, trust=True)
    assert checkpoint.kind == "torchscript"
    loaded = build_from_checkpoint(checkpoint)
    x = digits.x_train[:4]
    assert torch.allclose(loaded(x), model(x))


def test_a_torchscript_archive_carries_its_training_record(tmp_path, model):
    """`train --init` from TorchScript wrote TorchScript without its λ or λ path, so the next
    step repeated λ auto and could lead round in a circle."""
    path = tmp_path / "scripted-l1.pt"
    record = {"l1": 0.0064, "data_seed": 3, "l1_path": {"l1": 0.0064, "points": [{"l1": 1e-4, "metric": 0.9}]}}
    save_torchscript(path, torch.jit.script(model.eval()), training=record)
    assert read_checkpoint(path, trust=True).training == record
    save_torchscript(path, torch.jit.script(model.eval()))  # no record: none read
    assert read_checkpoint(path, trust=True).training == {}
    damaged = tmp_path / "damaged-record.pt"
    torch.jit.save(torch.jit.script(model.eval()), str(damaged), _extra_files={"pruning_limits_training.json": "{not json"})
    with pytest.raises(PruningLimitsError, match="carries a training record .* that is not JSON"):
        read_checkpoint(damaged, trust=True)
    torch.jit.save(torch.jit.script(model.eval()), str(damaged), _extra_files={"pruning_limits_training.json": '{"data_seed": -1}'})
    with pytest.raises(PruningLimitsError, match="stores a data seed that is not an integer"):
        read_checkpoint(damaged, trust=True)
    # nested too deep for the decoder: 'maximum recursion depth exceeded', naming no file, before
    torch.jit.save(torch.jit.script(model.eval()), str(damaged), _extra_files={"pruning_limits_training.json": "[" * 200_000})
    with pytest.raises(PruningLimitsError, match="damaged-record.pt' carries a training record .* that is not JSON") as info:
        read_checkpoint(damaged, trust=True)
    assert "\n" not in str(info.value)


def test_a_torchscript_archive_carries_its_selection_and_data_as_a_bundle_does(tmp_path, model):
    """`train --init ts.pt --params layers.1.weight` wrote TorchScript without the selection: later
    commands analysed the default one (weights λ never penalised) and still called it l1-trained.
    The record's data spec and seed (a bundle's data_spec) were not carried either, so predict
    drew the split with --seed 0: training samples in the test set."""
    from pruning_limits.checkpoint import TORCHSCRIPT_PARAMS, scripted_view
    from pruning_limits.objective import parameter_selection, prunable_parameters, select_parameters

    view = select_parameters(scripted_view(torch.jit.script(model.eval())), "layers.1.weight")
    path = tmp_path / "selected.pt"
    save_torchscript(path, view, training={"l1": 0.002, "data_seed": 4, "data_spec": "digits"})
    checkpoint = read_checkpoint(path, trust=True)
    assert checkpoint.params == ["layers.1.weight"] and checkpoint.data_spec == "digits"
    rebuilt = build_from_checkpoint(checkpoint)
    assert parameter_selection(rebuilt) == ["layers.1.weight"] and [n for n, _ in prunable_parameters(rebuilt)] == ["layers.1.weight"]
    save_torchscript(path, scripted_view(torch.jit.script(model.eval())))  # the default selection: no file, no spec
    assert read_checkpoint(path, trust=True).params is None and read_checkpoint(path, trust=True).data_spec is None
    torch.jit.save(torch.jit.script(model.eval()), str(path), _extra_files={TORCHSCRIPT_PARAMS: '{"a": 1}'})
    with pytest.raises(PruningLimitsError, match="stores a parameter selection that is not a list of names"):
        read_checkpoint(path, trust=True)
    torch.jit.save(torch.jit.script(model.eval()), str(path), _extra_files={"pruning_limits_training.json": '{"data_spec": 3}'})
    with pytest.raises(PruningLimitsError, match="carries a data spec that is not a string"):
        read_checkpoint(path, trust=True)


def test_a_pickled_module_carries_its_training_record(tmp_path):
    """A pickled module written by `train --init` kept its selection (an attribute of the module)
    but not its λ: predict could not tell it was l1-trained."""
    from pruning_limits.checkpoint import MODULE_TRAINING_ATTR, save_module

    module = nn.Sequential(nn.Linear(3, 2))
    path = tmp_path / "full-l1.pt"
    save_module(path, module, training={"l1": 0.002, "data_seed": 2, "data_spec": "digits"})
    assert not hasattr(module, MODULE_TRAINING_ATTR)  # the caller's module is left as it was
    checkpoint = read_checkpoint(path, trust=True)
    assert checkpoint.training == {"l1": 0.002, "data_seed": 2, "data_spec": "digits"} and checkpoint.data_spec == "digits"
    assert not hasattr(checkpoint.module, MODULE_TRAINING_ATTR)
    save_module(path, module)
    assert read_checkpoint(path, trust=True).training == {}


def test_scripted_view_hessian_products_match_the_eager_model(model, digits):
    import numpy as np

    from pruning_limits.checkpoint import scripted_view
    from pruning_limits.hessian import HessianOperator

    model.eval()
    view = scripted_view(torch.jit.script(model))
    data = (digits.x_train[:150], digits.y_train[:150])
    eager, scripted = HessianOperator(model, data), HessianOperator(view, data)
    assert scripted.dim == eager.dim == 8 * 64 + 10 * 8
    rng = np.random.default_rng(0)
    v = rng.standard_normal(eager.dim)
    block = rng.standard_normal((eager.dim, 3))
    scale = np.abs(np.asarray(eager.matvec(v))).max()
    assert np.abs(np.asarray(scripted.matvec(v)) - np.asarray(eager.matvec(v))).max() <= 1e-5 * scale
    assert np.abs(np.asarray(scripted.matmat(block)) - np.asarray(eager.matmat(block))).max() <= 1e-5 * scale
    # forward-mode transforms would silently lose their tangents through TorchScript: refused,
    # in one line at construction
    with pytest.raises(PruningLimitsError, match="method='forward-over-reverse' does not run.*reverse-mode"):
        HessianOperator(view, data, method="forward-over-reverse")


def test_scripted_view_prune_and_save(tmp_path, model, digits):
    from pruning_limits.checkpoint import scripted_view
    from pruning_limits.masks import prune_model
    from pruning_limits.objective import flat_weights

    view = scripted_view(torch.jit.script(model.eval()))
    prune_model(view, 0.5, "magnitude", permanent=True)
    assert (flat_weights(view) == 0).sum() == round(0.5 * flat_weights(view).size)
    path = tmp_path / "pruned-scripted.pt"
    save_torchscript(path, view)
    reloaded = build_from_checkpoint(read_checkpoint(path, trust=True))
    assert np_equal(flat_weights(reloaded), flat_weights(view))
    x = digits.x_train[:4]
    assert torch.allclose(reloaded(x), view(x))


def np_equal(a, b) -> bool:
    return a.shape == b.shape and bool((a == b).all())


def test_pickled_module_needs_trust(tmp_path):
    path = tmp_path / "full.pt"
    torch.save(nn.Sequential(nn.Linear(3, 2)), path)
    with pytest.raises(PruningLimitsError, match="--trust-checkpoint"):
        read_checkpoint(path)
    checkpoint = read_checkpoint(path, trust=True)
    assert checkpoint.kind == "module"
    assert isinstance(build_from_checkpoint(checkpoint), nn.Sequential)


def test_malicious_pickle_is_not_executed(malicious_checkpoint):
    path, victim = malicious_checkpoint
    with pytest.raises(PruningLimitsError, match="--trust-checkpoint"):
        read_checkpoint(path)
    assert not victim.exists()


# ----------------------------------------------------------------------------- bad files


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(PruningLimitsError, match=rf"^checkpoint {re.escape(repr(str(tmp_path / 'nope.pt')))} does not exist$") as info:
        read_checkpoint(tmp_path / "nope.pt")
    one_line(info)
    with pytest.raises(PruningLimitsError, match=(
        rf"^checkpoint {re.escape(repr(str(tmp_path)))} is not a file \(a Hugging Face model folder needs config\.json "
        r"and model\.safetensors or model\.safetensors\.index\.json\)$"
    )) as info:
        read_checkpoint(tmp_path)
    one_line(info)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"hello, this is text", "is not a PyTorch checkpoint"),
        (b"", "is empty \\(0 bytes\\)$"),  # it said "not a PyTorch checkpoint (torch.load: EOFError)"
        (b"PK\x03\x04 broken zip", "is a damaged or truncated checkpoint \\(a zip archive cut short\\)$"),
    ],
    ids=["text", "empty", "broken-zip"],
)
def test_not_a_checkpoint(tmp_path, content, match):
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(PruningLimitsError, match=match) as info:
        read_checkpoint(path)
    assert "EOFError: EOFError" not in str(info.value)  # an empty message is not repeated as the type
    one_line(info)


def test_a_pytorch_file_named_safetensors_is_told_to_be_renamed(tmp_path, model, digits):
    """It said only "...is not a readable safetensors file: ... header too large"."""
    import numpy as np

    hint = " (it looks like a PyTorch file: rename it .pt)"
    zipped, legacy, scripted = (tmp_path / f"{name}.safetensors" for name in ("zipped", "legacy", "scripted"))
    torch.save(model.state_dict(), zipped)
    torch.save(model.state_dict(), legacy, _use_new_zipfile_serialization=False)
    torch.jit.save(torch.jit.trace(model, digits.x_train[:2]), scripted)
    cut = tmp_path / "cut.safetensors"  # no zip directory: judged by its first member's name
    cut.write_bytes(zipped.read_bytes()[:200])
    for path in (zipped, legacy, scripted, cut):
        with pytest.raises(PruningLimitsError, match=(
            f"^{re.escape(repr(str(path)))} is not a readable safetensors file: .*{re.escape(hint)}$"
        )) as info:
            read_checkpoint(path)
        one_line(info)
    # a NumPy archive is a zip too, and text is neither: no hint
    numpy_zip = tmp_path / "arrays.safetensors"
    with open(numpy_zip, "wb") as handle:
        np.savez(handle, x=np.zeros(3))
    text = tmp_path / "text.safetensors"
    text.write_bytes(b"hello, this is text")
    for path in (numpy_zip, text):
        with pytest.raises(PruningLimitsError, match="is not a readable safetensors file") as info:
            read_checkpoint(path)
        assert "PyTorch" not in str(info.value)


def test_pickle_of_plain_non_model_content(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(PruningLimitsError, match="not a model checkpoint"):
        read_checkpoint(path)


def test_factory_spec_stored_in_a_bundle_is_not_called_without_trust(tmp_path, monkeypatch, digits):
    import sys

    marker = tmp_path / "factory-was-called"
    (tmp_path / "plm_untrusted_factory.py").write_text(
        "from torch import nn\n"
        f"MARKER = {str(marker)!r}\n"
        "def factory(input_shape, num_outputs):\n"
        "    open(MARKER, 'w').close()\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, num_outputs))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reference = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    path = tmp_path / "bundle.pt"
    torch.save(
        {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "state_dict": reference.state_dict(),
            "model_spec": "plm_untrusted_factory:factory",
            "data_spec": "digits",
            "training": {},
            "library_version": "0.1.0",
        },
        path,
    )
    checkpoint = read_checkpoint(path)
    with pytest.raises(PruningLimitsError, match="--trust-checkpoint"):
        build_from_checkpoint(checkpoint, data=digits)
    assert not marker.exists() and "plm_untrusted_factory" not in sys.modules
    # naming the factory yourself, or trusting the file, runs it
    model = build_from_checkpoint(checkpoint, model_spec="plm_untrusted_factory:factory", data=digits)
    assert marker.exists() and torch.equal(model[1].weight, reference[1].weight)
    marker.unlink()
    build_from_checkpoint(checkpoint, data=digits, trust=True)
    assert marker.exists()


def test_atomic_open_names_its_target_when_the_rename_fails(tmp_path):
    """A directory where the file should go: the error named the hidden temporary file."""
    (tmp_path / "taken").mkdir()
    with pytest.raises(PruningLimitsError, match=r"cannot write '.*taken'"):
        atomic_write(tmp_path / "taken", "text")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no temporary file left


def test_a_damaged_zip_checkpoint_is_one_line(tmp_path):
    """A central-directory name that is not UTF-8 (or a zip claiming several disks) raised
    UnicodeDecodeError/BadZipFile from the TorchScript check, as a traceback."""
    from pruning_limits.checkpoint import read_checkpoint

    good = tmp_path / "sd.pt"
    torch.save({"w": torch.zeros(4, 4)}, good)
    data = bytearray(good.read_bytes())
    header = data.rfind(b"PK\x01\x02")  # the last central-directory header
    data[header + 8] |= 0x08
    data[header + 9] |= 0x08  # its flags: UTF-8 names
    data[header + 46] = 0xFF  # the first byte of its name: not UTF-8
    bad = tmp_path / "badname.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(PruningLimitsError, match="is not a PyTorch checkpoint"):
        read_checkpoint(bad)


def test_a_training_loops_checkpoint_names_where_its_weights_are(tmp_path):
    """{"model": sd, "epoch": 3} and a state_dict with one stray entry got 'is not a model
    checkpoint ... got {...}', naming neither the key nor what to do."""
    from pruning_limits.checkpoint import read_checkpoint

    state = nn.Linear(3, 2).state_dict()
    loop = tmp_path / "loop.pt"
    torch.save({"model": state, "epoch": 3, "optimizer": {"state": {}, "param_groups": []}}, loop)
    assert read_checkpoint(loop).kind == "state_dict"  # under "model": unwrapped
    nested = tmp_path / "nested.pt"
    torch.save({"net": state, "epoch": 3}, nested)
    with pytest.raises(PruningLimitsError, match=r"holds state_dicts under \['net'\].*torch.save\(checkpoint\['net'\]"):
        read_checkpoint(nested)
    stray = tmp_path / "stray.pt"
    torch.save({**state, "epoch": 3}, stray)
    with pytest.raises(PruningLimitsError, match=r"entries that are not tensors \(\['epoch'\]\): save model.state_dict\(\) alone"):
        read_checkpoint(stray)


def test_a_wrappers_prefix_or_prune_masks_are_named_in_the_mismatch():
    """'module.'/'_orig_mod.' keys (DDP, torch.compile) and weight_orig/weight_mask were refused
    with the key lists alone."""
    from pruning_limits.checkpoint import check_state_dict_fits

    model = nn.Sequential(nn.Linear(3, 2))
    state = model.state_dict()
    for prefix, advice in (("module.", "model.module.state_dict()"), ("_orig_mod.", "torch.compile")):
        with pytest.raises(PruningLimitsError, match=rf"every key starts with '{prefix}'.*{re.escape(advice)}"):
            check_state_dict_fits(model, {prefix + k: v for k, v in state.items()})
    pruned = nn.Sequential(nn.Linear(3, 2))
    torch.nn.utils.prune.l1_unstructured(pruned[0], "weight", amount=0.5)
    with pytest.raises(PruningLimitsError, match="call prune.remove on it before saving"):
        check_state_dict_fits(model, pruned.state_dict())


def test_check_model_leaves_a_parametrized_layer_to_the_params_selection() -> None:
    """A review: a trusted pickled model with a spectral-norm layer was refused at loading, before
    `--params 2.weight` (the choice the message itself recommends) could be applied."""
    from torch import nn

    from pruning_limits.checkpoint import check_model
    from pruning_limits.objective import prunable_parameters, select_parameters

    model = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 10))
    nn.utils.parametrizations.spectral_norm(model[0])
    check_model(model)  # loading passes; the default selection itself still refuses it
    with pytest.raises(PruningLimitsError, match="parametrization"):
        prunable_parameters(model)
    select_parameters(model, "2.weight")
    assert [name for name, _ in prunable_parameters(model)] == ["2.weight"]


# ----------------------------------------------------------------------------- tied weights, colliding names


class _Tied(nn.Module):
    """A decoder tied to its encoder: one tensor under two names (``dec.weight`` is ``enc.weight``)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(64, 64, bias=False)
        self.dec = nn.Linear(64, 64, bias=False)
        self.dec.weight = self.enc.weight
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        return self.head(torch.relu(self.dec(torch.relu(self.enc(x)))))


@pytest.mark.parametrize("permanent", [True, False])
def test_a_torchscript_models_tied_weights_are_one_weight_in_the_view_and_stay_tied_when_written(tmp_path, digits, permanent):
    """A review: the view held a copy per use of a tied weight, so D doubled (8 832 for 4 736),
    pruning counted each weight twice, and the written archive held two different tensors.
    A second review: masked but not folded (``permanent=False``: ``weight_orig * weight_mask``
    in each shell), the archive got one parameter per use, the tie lost."""
    from pruning_limits.checkpoint import scripted_view
    from pruning_limits.masks import prune_model
    from pruning_limits.objective import flat_weights

    torch.manual_seed(0)
    eager = _Tied().eval()
    view = scripted_view(torch.jit.script(eager))
    assert view.layers.enc.weight is view.layers.dec.weight
    dim = sum(p.numel() for p in eager.parameters() if p.dim() > 1)
    assert flat_weights(view).size == dim == 64 * 64 + 64 * 10
    x = digits.x_train[:4]
    assert torch.allclose(view(x), eager(x))
    prune_model(view, 0.5, "magnitude", permanent=permanent)
    if not permanent:  # one weight_orig under both shells, each with its own mask buffer
        assert view.layers.enc.weight_orig is view.layers.dec.weight_orig
        assert torch.equal(view.layers.enc.weight_mask, view.layers.dec.weight_mask)
    running = torch.cat([view.layers.enc.weight.flatten(), view.layers.head.weight.flatten()])  # weights that run
    assert int((running == 0).sum()) == round(0.5 * dim)
    pruned_out = view(x)
    path = tmp_path / "tied-pruned.pt"
    save_torchscript(path, view)
    written = torch.jit.load(str(path))
    assert written.enc.weight.data_ptr() == written.dec.weight.data_ptr()
    assert len(list(written.parameters())) == 3  # the tied weight once, the head's weight and bias
    assert torch.equal(written.enc.weight, view.layers.enc.weight)  # the masked values, zeros in place
    assert int((written.enc.weight == 0).sum()) == int((view.layers.enc.weight == 0).sum()) > 0
    assert torch.allclose(written(x), pruned_out)
    reloaded = build_from_checkpoint(read_checkpoint(path, trust=True))
    assert flat_weights(reloaded).size == dim and torch.allclose(reloaded(x), pruned_out)
    # safetensors holds each name (a tied one as equal copies, as it must); the archive in memory,
    # which save_safetensors writes the view's weights into, keeps its tie
    from pruning_limits.checkpoint import read_safetensors, save_safetensors

    save_safetensors(tmp_path / "tied-pruned.safetensors", view)
    tensors = read_safetensors(tmp_path / "tied-pruned.safetensors")
    assert torch.equal(tensors["enc.weight"], view.layers.enc.weight) and torch.equal(tensors["dec.weight"], tensors["enc.weight"])
    assert view.scripted.enc.weight is view.scripted.dec.weight
    assert torch.allclose(view(x), pruned_out)


class _Colliding(nn.Module):
    """Submodule paths ``a.0`` and ``a__0`` (both read ``a__0`` with dots as ``__``), and a layer named
    as a method of ``nn.ModuleDict`` (``update``)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Linear(64, 32))
        self.a__0 = nn.Linear(32, 16)
        self.update = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.update(torch.relu(self.a__0(torch.relu(self.a(x.flatten(1))))))


def test_torchscript_layers_whose_view_names_collide_are_all_kept(tmp_path, digits):
    """A review: 'a.0' and 'a__0' both became the view's layer 'a__0', and one layer was dropped
    silently (D 320 of 2 368); a layer named 'update' could not be held at all."""
    from pruning_limits.checkpoint import scripted_view
    from pruning_limits.masks import prune_model
    from pruning_limits.objective import flat_weights

    torch.manual_seed(0)
    eager = _Colliding().eval()
    view = scripted_view(torch.jit.script(eager))
    assert sorted(view.layers.keys()) == ["a__0", "a__0__2", "update__2"]
    assert view.layers["a__0"].weight.shape == (16, 32)  # the attribute keeps its own name
    assert view.layers["a__0__2"].weight.shape == (32, 64)
    assert flat_weights(view).size == 64 * 32 + 32 * 16 + 16 * 10
    x = digits.x_train[:4]
    assert torch.allclose(view(x), eager(x))
    prune_model(view, 0.5, "magnitude", permanent=True)
    path = tmp_path / "colliding.pt"
    save_torchscript(path, view)
    written = torch.jit.load(str(path))
    assert torch.equal(getattr(written.a, "0").weight, view.layers["a__0__2"].weight)
    assert torch.equal(written.a__0.weight, view.layers["a__0"].weight)


def _tied_factory(tmp_path, monkeypatch) -> str:
    (tmp_path / "plm_tied_factory.py").write_text(
        "import torch\nfrom torch import nn\n"
        "class Tied(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.enc = nn.Linear(64, 64, bias=False)\n"
        "        self.dec = nn.Linear(64, 64, bias=False)\n"
        "        self.dec.weight = self.enc.weight\n"
        "        self.head = nn.Linear(64, 10)\n"
        "    def forward(self, x):\n"
        "        return self.head(torch.relu(self.dec(torch.relu(self.enc(x.flatten(1))))))\n"
        "def tied(input_shape, num_outputs):\n"
        "    return Tied()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "plm_tied_factory:tied"


def test_a_file_that_holds_a_tied_weight_once_loads(tmp_path, monkeypatch, digits):
    """A review: safetensors.torch.save_model writes a shared tensor once (here as dec.weight), and
    such a file was refused with 'missing keys [enc.weight]'."""
    from safetensors.torch import save_model

    spec = _tied_factory(tmp_path, monkeypatch)
    torch.manual_seed(0)
    source = _Tied()
    path = tmp_path / "tied.safetensors"
    save_model(source, str(path))
    held = set(read_checkpoint(path).state_dict)
    assert len(held & {"enc.weight", "dec.weight"}) == 1
    model = build_from_checkpoint(read_checkpoint(path), model_spec=spec, data=digits)
    assert model.enc.weight is model.dec.weight and torch.equal(model.enc.weight, source.enc.weight)
    # either name alone, or both with equal values
    state = dict(source.state_dict())
    for absent in ("enc.weight", "dec.weight", None):
        given = {k: v for k, v in state.items() if k != absent}
        check_state_dict_fits(model, given)
    with pytest.raises(PruningLimitsError, match=r"missing keys \[enc.weight, dec.weight\]"):
        check_state_dict_fits(model, {k: v for k, v in state.items() if k not in ("enc.weight", "dec.weight")})


def test_different_values_under_names_the_model_ties_are_refused(tmp_path, monkeypatch, digits):
    """A review: the model ties enc.weight and dec.weight, the file held other values under each,
    and loading kept the last one silently."""
    spec = _tied_factory(tmp_path, monkeypatch)
    state = {k: v.clone() for k, v in _Tied().state_dict().items()}
    state["dec.weight"] = torch.full_like(state["dec.weight"], 0.5)
    path = tmp_path / "conflict.pt"
    torch.save(state, path)
    with pytest.raises(PruningLimitsError, match=r"different values under names the model ties to one tensor \[enc.weight/dec.weight\]") as info:
        build_from_checkpoint(read_checkpoint(path), model_spec=spec, data=digits)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- crafted files


def test_a_float_integer_buffer_is_refused_not_truncated(tmp_path):
    """A review: num_batches_tracked = 0.7 (a float) was cast to 0 silently."""
    sizes = {"input_shape": [3, 8, 8], "num_outputs": 4}
    model = build_model("resnet20:2", sizes)
    state = {k: (v.float() + 0.7 if k.endswith("num_batches_tracked") else v) for k, v in model.state_dict().items()}
    path = tmp_path / "float-count.pt"
    torch.save(state, path)
    with pytest.raises(PruningLimitsError, match=r"integer tensors expected, got \[bn1.num_batches_tracked torch.float32") as info:
        build_from_checkpoint(read_checkpoint(path), model_spec="resnet20:2", data=sizes)
    assert "\n" not in str(info.value)


def test_an_integer_buffer_on_the_meta_device_is_refused_in_one_line():
    """A review: only floating keys were checked for the meta device and a sparse layout; an
    integer buffer on meta ended in load_state_dict's cut-off 'Error(s) in loading state_dict for ResNet:'."""
    sizes = {"input_shape": [3, 8, 8], "num_outputs": 4}
    model = build_model("resnet20:2", sizes)
    state = dict(model.state_dict())
    state["bn1.num_batches_tracked"] = torch.zeros((), dtype=torch.int64, device="meta")
    with pytest.raises(PruningLimitsError, match=r"integer tensors expected, got \[bn1.num_batches_tracked torch.int64 on meta\]") as info:
        check_state_dict_fits(model, state)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("version", [torch.tensor([1, 2]), torch.tensor(1), "1", True, 1.0], ids=["tensor", "scalar-tensor", "str", "bool", "float"])
def test_a_bundle_whose_version_is_not_an_integer_is_one_line(tmp_path, model, version):
    """A review: a tensor version ended in 'Boolean value of Tensor with more than one value is ambiguous'
    (and a one-element tensor, True or 1.0 passed as version 1)."""
    path = tmp_path / "bundle.pt"
    save_bundle(path, model, model_spec="mlp:8", data_spec="digits")
    content = torch.load(path, weights_only=True)
    content["version"] = version
    torch.save(content, path)
    with pytest.raises(PruningLimitsError, match=rf"is a pruning-limits bundle of version .*; this release reads version {BUNDLE_VERSION}$") as info:
        read_checkpoint(path)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- a review's points (2026-12-06)


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open descriptors in /proc/self/fd")
def test_atomic_open_where_chmod_is_refused_writes_and_leaks_no_descriptor(tmp_path, monkeypatch):
    """On a filesystem that refuses chmod (some network, FUSE or FAT mounts) the write failed with a
    PermissionError naming no file, and the temporary file's descriptor stayed open; the mode is
    now copied as best effort, as open() would leave it."""
    import errno

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    target = tmp_path / "out.txt"
    target.write_text("old")
    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(os, "fchmod", refuse, raising=False)
    before = _open_descriptors()
    atomic_write(target, "new")
    assert _open_descriptors() == before
    assert target.read_text() == "new" and _no_temp_files(tmp_path)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open descriptors in /proc/self/fd")
@pytest.mark.parametrize("where", ["write", "fsync"])
def test_a_write_error_names_the_file(tmp_path, monkeypatch, where):
    """A full disk said only "No space left on device" (write() errors carry no file name)."""
    import errno

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "out.pt"
    target.write_bytes(b"old")
    before = _open_descriptors()
    with pytest.raises(PruningLimitsError, match=rf"^cannot write {re.escape(repr(str(target)))}: No space left on device$"):
        with atomic_open(target) as handle:
            if where == "fsync":
                monkeypatch.setattr(os, "fsync", full)
                handle.write(b"new")
            else:  # as the handle's write raises it
                full()
    assert target.read_bytes() == b"old" and _no_temp_files(tmp_path)
    assert _open_descriptors() == before


def test_an_error_about_another_file_in_an_atomic_block_is_passed_on(tmp_path):
    with pytest.raises(FileNotFoundError):
        with atomic_open(tmp_path / "out.pt"):
            open(tmp_path / "missing.txt")  # noqa: SIM115 - the caller's own error, naming its file
    assert os.listdir(tmp_path) == []


def test_a_numpy_archive_given_as_the_checkpoint_says_to_give_it_as_data(tmp_path):
    """It was "not a PyTorch checkpoint (torch.load: RuntimeError: [enforce fail at inline_container.cc:180] ...)"."""
    import numpy as np
    import zipfile

    path = tmp_path / "data.npz"
    np.savez(path, x=np.zeros((4, 2), dtype=np.float32), y=np.zeros(4, dtype=np.int64))
    with pytest.raises(PruningLimitsError, match=(
        rf"^{re.escape(repr(str(path)))} is a NumPy archive \(data\): give it with --data; CHECKPOINT is the model file$"
    )):
        read_checkpoint(path)
    other = tmp_path / "other.zip"  # a whole zip of something else: not a PyTorch checkpoint, as before
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(PruningLimitsError, match="is not a PyTorch checkpoint") as info:
        read_checkpoint(other)
    one_line(info)


@pytest.mark.parametrize("spec", ["os:system(command='touch x')", " pl_no_such_module:make"])
def test_a_stored_model_function_is_refused_with_a_shell_ready_option(tmp_path, model, spec):
    """The refusal proposed `--model os:system(command='touch x')`, a shell syntax error at '(' (a review)."""
    import shlex

    path = tmp_path / "stored.pt"
    save_bundle(path, model, model_spec="mlp:8", data_spec="digits")
    content = torch.load(path, weights_only=True)
    content["model_spec"] = spec
    torch.save(content, path)
    checkpoint = read_checkpoint(path)
    with pytest.raises(PruningLimitsError, match=re.escape(f"give it yourself with --model {shlex.quote(spec.strip())} or pass")) as info:
        build_from_checkpoint(checkpoint)
    one_line(info)


def test_an_unknown_hugging_face_model_type_is_named_in_a_short_line(tmp_path, monkeypatch):
    """transformers' own error listed every model type it knows (12 122 characters, a review)."""
    import json
    import sys

    try:
        import torchvision  # noqa: F401
    except ImportError:
        pass
    except RuntimeError as err:  # "operator torchvision::nms does not exist": a build for another torch
        if "torchvision::" not in str(err):
            raise
        monkeypatch.setitem(sys.modules, "torchvision", None)
    transformers = pytest.importorskip("transformers", reason="the Hugging Face extra (transformers) is not installed")
    config = transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16, n_positions=8)
    folder = tmp_path / "gpt2"
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    stored = json.loads((folder / "config.json").read_text())
    stored["model_type"] = "not_a_model_type"
    (folder / "config.json").write_text(json.dumps(stored))
    with pytest.raises(PruningLimitsError, match=(
        rf"^{re.escape(repr(str(folder / 'config.json')))} names model_type 'not_a_model_type', which transformers "
        rf"{re.escape(transformers.__version__)} does not know$"
    )):
        read_checkpoint(folder)
